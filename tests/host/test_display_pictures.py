"""The display of an emulated meter (the firmware on the real MicroPython
interpreter, its LCD drawn into a framebuf): pictures of each mode, saved
under artifacts/display/ and compared with the reference images in
tests/host/display_refs/; the scroll on the board's clock; the button;
utility messages written with the write key over PLC and through the
optical port; alarms; a power cut.

Set SMITP_UPDATE_REFS=1 to replace the reference images by the pictures of
this run (then look at them before committing).
"""

import json
import os
import shutil
import struct
import time

import pytest
from tools import ROOT

from meter import attrs as A
from meter.display import manager as D

from meter.display import screen as SC
from meter.model import registers as R
from smitp.cli import main
from smitp.concentrator import Nack
from smitp.display import (METER_ACA, EmulatedMeter, DumpError, Frame, frame_paths, list_value, message_state,
                           message_value, parse_dump, special_value, timing_value)
from smitp.png import decode_png, encode_png, read_png

ARTIFACTS = os.path.join(ROOT, "artifacts", "display")
REFS = os.path.join(ROOT, "tests", "host", "display_refs")
SERIAL = "SN1E8901"  # serial_for() of the meter's ACA


def picture(meter, name, want):
    """Wait until the display shows what `want` accepts, save it as
    artifacts/display/<name>.png and compare it with the reference image."""
    frame = meter.wait_frame(want)
    os.makedirs(ARTIFACTS, exist_ok=True)
    out = os.path.join(ARTIFACTS, name + ".png")
    frame.png(out)
    same_picture(out, os.path.join(REFS, name + ".png"), frame.text)
    return frame.fields


def same_picture(out, ref, what):
    """The picture `out` has the colours of the reference image `ref`, pixel by pixel."""
    if os.environ.get("SMITP_UPDATE_REFS"):
        os.makedirs(REFS, exist_ok=True)
        shutil.copy(out, ref)
    assert os.path.exists(ref), "no reference image %s: look at %s and copy it there" % (ref, out)
    w, h, pal, px = read_png(ref)
    w2, h2, pal2, px2 = read_png(out)
    assert (w, h) == (w2, h2), "%s is %d x %d, the reference %d x %d" % (out, w2, h2, w, h)
    differ = sum(1 for a, b in zip(px, px2) if pal[a] != pal2[b])
    assert differ == 0, "%s differs from %s in %d pixels (screen: %s)" % (out, ref, differ, what)


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with EmulatedMeter(tmp_path_factory.mktemp("display"), import_w=0) as m:
        m.wait_frame()
        m.write({R.DISPLAY_SCROLL: list_value([R.ENERGY_IMPORT, R.ENERGY_EXPORT]),
                 R.DISPLAY_ALTERNATE: list_value([R.ENERGY_IMPORT, R.SERIAL, R.ACA]),
                 R.DISPLAY_TIMING: timing_value(dwell=60)})
        yield m


def normal(code):
    return lambda f: f["mode"] == "normal" and f["show"] == "value" and f["code"] == code


# ---- the emulated meter, mode by mode (the tests share one board, in this order)

def test_normal_mode_picture(meter):
    f = picture(meter, "normal", normal("1.8.0"))
    assert (f["value"], f["unit"], f["line"], f["icons"]) == ("0.000", "kWh", "ACTIVE IMPORT", ["clock"])
    assert meter.read([R.DISPLAY_SCROLL])[R.DISPLAY_SCROLL] == list_value([R.ENERGY_IMPORT, R.ENERGY_EXPORT])


def test_scroll_list_steps_with_the_programmed_dwell(meter):
    meter.write({R.DISPLAY_TIMING: timing_value(dwell=1)})
    seen = []
    end = time.monotonic() + 3.6
    while time.monotonic() < end:
        f = meter.frame()
        if not seen or seen[-1][1] != f.fields["code"]:
            seen.append((time.monotonic(), f.fields["code"]))
        meter.run_for(0.02)
    codes = [c for _, c in seen]
    assert codes[:4] == ["1.8.0", "2.8.0", "1.8.0", "2.8.0"], seen
    steps = [b[0] - a[0] for a, b in zip(seen[1:], seen[2:])]
    assert all(0.7 < s < 1.5 for s in steps), steps  # 1 s dwell on the board's clock
    meter.write({R.DISPLAY_TIMING: timing_value(dwell=60)})
    meter.wait_frame(normal("1.8.0"))


def test_alternate_mode_picture_and_button_steps(meter):
    meter.press()
    f = picture(meter, "alternate", lambda f: f["mode"] == "alternate")
    assert f["code"] == "1.8.0" and f["icons"] == ["alternate", "clock"]
    meter.press()
    f = meter.wait_frame(lambda f: f["code"] == "C.1.0").fields
    assert f["line"] == SERIAL and f["mode"] == "alternate"
    meter.press()
    assert meter.wait_frame(lambda f: f["code"] == "0.0.0").fields["line"] == "A8040A1E8901"
    assert meter.read([R.DISPLAY_MODE])[R.DISPLAY_MODE] == bytes((SC.MODE_ALTERNATE,))


def test_test_mode_picture(meter):
    meter.press(long=True)
    f = picture(meter, "test", lambda f: f["mode"] == "test")
    assert f["show"] == "test" and f["icons"] == ["alarm", "message", "alternate", "clock"]
    meter.press()  # a short press leaves test mode
    meter.wait_frame(normal("1.8.0"))


def test_utility_message_over_plc_picture_and_acknowledgement(meter):
    text = "WORKS ON 3 JULY"
    with pytest.raises(Nack) as e:  # a plain write may not put a message on the display
        meter.write({R.DISPLAY_MESSAGE: message_value(text, D.PRIO_HIGH)}, auth=False)
    assert e.value.code == 2 and e.value.reg_id == R.DISPLAY_MESSAGE
    meter.write({R.DISPLAY_MESSAGE: message_value(text, D.PRIO_HIGH, minutes=30)})
    f = picture(meter, "message", lambda f: f["show"] == "message")
    assert f["line"] == text and f["icons"] == ["message", "clock"]
    state = message_state(meter.read([R.DISPLAY_MESSAGE_STATE])[R.DISPLAY_MESSAGE_STATE])
    assert state["state"] == "showing" and state["time"] > 0
    meter.press()  # the customer acknowledges it
    meter.wait_frame(normal("1.8.0"))
    state = message_state(meter.read([R.DISPLAY_MESSAGE_STATE])[R.DISPLAY_MESSAGE_STATE])
    assert state["state"] == "acknowledged"
    assert meter.frame().fields["icons"] == ["clock"]


def test_special_message_over_plc(meter):
    meter.write({R.DISPLAY_SPECIAL: special_value(3)})
    f = meter.wait_frame(lambda f: f["show"] == "message").fields
    assert f["line"] == "CONTACT YOUR SUP"
    meter.write({R.DISPLAY_SPECIAL: special_value(0)})
    meter.wait_frame(normal("1.8.0"))
    assert message_state(meter.read([R.DISPLAY_SPECIAL_STATE])[R.DISPLAY_SPECIAL_STATE])["state"] == "cleared"


def test_alarm_picture_when_the_flash_refuses_a_write(meter):
    meter.board.write_protect(True)
    try:
        with pytest.raises(Nack) as refused:  # not on flash: not written, and the alarm shows
            meter.write({R.POINT_LABEL: b"KIOSK 4".ljust(16, b"\0")}, auth=False)
        assert refused.value.code == A.NACK_NOT_STORED
        f = picture(meter, "alarm", lambda f: f["show"] == "alarm")
    finally:
        meter.board.write_protect(False)
    assert (f["code"], f["value"], f["line"]) == ("F.F", "00000002", "STORAGE FAULT")
    assert f["icons"] == ["alarm", "clock"]
    assert meter.read([R.STATUS_WORD])[R.STATUS_WORD][-1] & 2
    meter.run_for(0.2)
    assert meter.board.alive(), meter.board.log_text()


def test_message_and_settings_survive_a_power_cut(meter):
    meter.write({R.DISPLAY_MESSAGE: message_value("BACK SOON", D.PRIO_URGENT, minutes=10)})
    meter.wait_frame(lambda f: f["line"] == "BACK SOON")
    meter.power_cycle()
    f = meter.wait_frame(lambda f: f["show"] == "message").fields
    assert f["line"] == "BACK SOON" and "alarm" not in f["icons"]  # the status word starts clean
    meter.press()
    meter.wait_frame(normal("1.8.0"))
    meter.power_cycle()
    f = meter.wait_frame().fields
    assert f["show"] == "value" and f["code"] == "1.8.0"
    values = meter.read([R.DISPLAY_MESSAGE_STATE, R.DISPLAY_ALTERNATE])
    assert message_state(values[R.DISPLAY_MESSAGE_STATE])["state"] == "acknowledged"
    assert values[R.DISPLAY_ALTERNATE] == list_value([R.ENERGY_IMPORT, R.SERIAL, R.ACA])


def test_message_written_through_the_optical_port(tmp_path):
    hhu = pytest.importorskip("smitp.hhu")
    from smitp.secure import KeyRing

    k1, k2 = os.urandom(16), os.urandom(16)
    ring = KeyRing()
    ring.add(METER_ACA, k1, k2)
    with hhu.emulated_meter(tmp_path, METER_ACA, keys=(k1, k2)) as board:
        with hhu.open_line(board.optical_path) as line:
            unit = hhu.HandHeldUnit(line, ring)
            unit.sign_on("F")
            with pytest.raises(hhu.Nack):  # plain: refused, as over PLC
                unit.write({R.DISPLAY_MESSAGE: message_value("NOT THIS ONE", D.PRIO_HIGH)})
            unit.write({R.DISPLAY_MESSAGE: message_value("READ BY HAND", D.PRIO_HIGH)}, auth=True)
            end = time.monotonic() + 5
            while True:
                raw = board.display_dump()
                if raw and parse_dump(raw).fields["line"] == "READ BY HAND":
                    break
                assert time.monotonic() < end, raw and parse_dump(raw).text
                time.sleep(0.05)
            state = message_state(unit.read([R.DISPLAY_MESSAGE_STATE])[R.DISPLAY_MESSAGE_STATE])
            assert state["state"] == "showing"
            unit.sign_off()


# ---- the command

def test_smitp_display_writes_a_sequence_of_pictures(tmp_path, capsys):
    out = tmp_path / "shot.png"
    assert main(["display", "--emulated", "--png", str(out), "--frames", "2", "--interval", "0.3",
                 "--import-w", "0", "--mode", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = [tmp_path / "shot-01.png", tmp_path / "shot-02.png"]
    assert [f["file"] for f in report["frames"]] == [str(p) for p in files]
    for p in files:
        w, h, _pal, px = read_png(p)
        assert (w, h) == (800, 288) and len(px) == w * h
    assert report["frames"][0]["mode"] == "test" and report["message"]["state"] == "none"


def test_smitp_display_needs_emulated(capsys):
    assert main(["display", "--png", "x.png"]) == 2
    assert "--emulated" in capsys.readouterr().err


# ---- pieces

def test_png_round_trip_and_filters():
    pixels = bytes((x * y) % 3 for y in range(5) for x in range(7))
    pal = [(0, 0, 0), (255, 0, 0), (1, 2, 3)]
    assert decode_png(encode_png(7, 5, pixels, pal)) == (7, 5, pal, pixels)
    w, h, _p, px = decode_png(encode_png(7, 5, pixels, pal, scale=3))
    assert (w, h) == (21, 15) and px[:3] == bytes([pixels[0]] * 3)
    with pytest.raises(ValueError):
        decode_png(b"GIF89a")


def test_dump_parsing():
    text = b"normal|value|1.8.0|0.000|kWh|ACTIVE IMPORT|clock"
    raw = struct.pack(">4sBHHIH", b"SMDP", 2, 8, 2, 7, len(text)) + bytes((0x1B, 0xFF, 0, 0)) + text
    f = parse_dump(raw)
    assert f.seq == 7 and f.pixels[:8] == bytes((3, 2, 1, 0, 3, 3, 3, 3)) and len(f.pixels) == 16
    assert f.fields == {"mode": "normal", "show": "value", "code": "1.8.0", "value": "0.000", "unit": "kWh",
                        "line": "ACTIVE IMPORT", "icons": ["clock"]}
    for bad in (raw[:10], raw[:-1], b"XXXX" + raw[4:]):
        with pytest.raises(DumpError):
            parse_dump(bad)
    with pytest.raises(DumpError):
        Frame(1, 1, 0, b"\0", "a|b").fields


def test_register_values():
    assert message_value("HI", D.PRIO_URGENT, 300) == bytes((2, 1, 44)) + b"HI" + bytes(30)
    assert len(message_value("x" * 32)) == 35 == R.BY_ID[R.DISPLAY_MESSAGE][R.R_SIZE]
    for bad in (lambda: message_value("x" * 33), lambda: message_value("é"), lambda: special_value(256),
                lambda: list_value([1] * 9), lambda: timing_value(300)):
        with pytest.raises(ValueError):
            bad()
    assert message_state(bytes((2, 0, 0, 1, 0))) == {"state": "acknowledged", "time": 256}
    assert [p.name for p in frame_paths("a/pic.png", 3)] == ["pic-01.png", "pic-02.png", "pic-03.png"]
