"""docs/cosem.md names what a DLMS broadcast may reach, generated from meter.dlms.broadcast.ALLOWED."""

from meter.dlms import broadcast as B
from meter.dlms import cosem as C
from smitp.dlms import cosemdoc


def _rows(text):
    part = text.split("## Reached by broadcast", 1)[1]
    return [line for line in part.splitlines() if line.startswith("| SET ") or line.startswith("| ACTION ")]


def test_the_page_lists_exactly_the_allowed_targets():
    with open(cosemdoc.path(), encoding="utf-8") as f:
        rows = _rows(f.read())
    assert rows == [
        "| SET | 0.0.1.0.0.255 | 8 Clock | 2 `time` | its Data, as a SET in an association |",
        "| ACTION | 0.0.1.0.0.255 | 8 Clock | method 6 `shift_time` | long (-900..900 s) |",
    ]
    assert len(rows) == len(B.ALLOWED)


def test_a_target_added_to_allowed_appears_on_the_page(monkeypatch):
    limiter = (B.SET_REQUEST, C.LIMITER, bytes((0, 0, 17, 0, 0, 255)), 4)
    monkeypatch.setattr(B, "ALLOWED", B.ALLOWED + (limiter,))
    rows = _rows(cosemdoc.render())
    assert rows[-1] == ("| SET | 0.0.17.0.0.255 | 71 Limiter | 4 `threshold_normal` | "
                        "its Data, as a SET in an association |")
    assert len(rows) == 3
