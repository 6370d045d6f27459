"""docs/cosem.md is what the firmware's COSEM object list generates (smitp.dlms.cosemdoc)."""

from smitp.dlms import cosemdoc


def test_cosem_page_is_generated_from_the_object_list():
    with open(cosemdoc.path(), encoding="utf-8") as f:
        assert f.read() == cosemdoc.render(), "run `python -m smitp.dlms.cosemdoc --write`"


def test_every_object_and_attribute_is_on_the_page():
    from meter.dlms.cosem import ATTRS, METHODS, OBJECTS

    text = cosemdoc.render()
    rows = [line for line in text.splitlines() if line.startswith("| 0.") or line.startswith("| 1.")]
    assert len(rows) == sum(ATTRS[o[0]] + METHODS[o[0]] for o in OBJECTS)
    assert "| 1.0.1.8.0.255 | 3 Register (v0) | 2 `value` | reader (LLS) | - | yes | `0x0030` active energy" in text
    assert "7 `secret` | nobody |" in text
