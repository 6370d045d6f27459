"""boards/nucleo_f401re_plm01a1/board.py against a fake `machine` module (no hardware)."""

import calendar
import importlib.util
import json
import sys
import time
import types

import pytest
from tools import ROOT

UID = bytes.fromhex("0a0b0c0d07") + b"LOT1234"  # wafer X/Y, wafer number, lot number (ASCII)


class FakePin:
    OUT = 1

    class cpu:
        A5, A8 = "cpu.A5", "cpu.A8"

    def __init__(self, pin, mode, value=None):
        self.pin, self.mode, self._v = pin, mode, value

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v


class FakeRTC:
    dt = (2000, 1, 1, 6, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return FakeRTC.dt
        FakeRTC.dt = dt


def _load(monkeypatch, tmp_path, epoch_2000, uid=UID):
    machine = types.SimpleNamespace(Pin=FakePin, RTC=FakeRTC, unique_id=lambda: uid, UART=None)
    machine.UART = lambda *a, **kw: ("UART", a, kw)
    monkeypatch.setitem(sys.modules, "machine", machine)
    off = 946684800 if epoch_2000 else 0
    fake_time = types.SimpleNamespace(  # MicroPython's time: UTC, counted from the port's epoch
        gmtime=lambda t: time.gmtime(t + off), mktime=lambda tm: calendar.timegm(tuple(tm[:6]) + (0, 0, 0)) - off
    )
    spec = importlib.util.spec_from_file_location("board", f"{ROOT}/boards/nucleo_f401re_plm01a1/board.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.time = fake_time
    mod.IDENTITY_FILE = str(tmp_path / "identity.json")
    return mod


@pytest.mark.parametrize("epoch_2000", [True, False])
def test_clock_is_unix_time(monkeypatch, tmp_path, epoch_2000):
    b = _load(monkeypatch, tmp_path, epoch_2000).Board()
    t = 1767225600 + 3723  # 2026-01-01 01:02:03 UTC, a Thursday
    b.set_unix_time(t)
    assert FakeRTC.dt == (2026, 1, 1, 4, 1, 2, 3, 0)  # RTC weekday 1 = Monday
    assert b.unix_time() == t


def test_pins_idle_high_and_uart(monkeypatch, tmp_path):
    m = _load(monkeypatch, tmp_path, True)
    b = m.Board()
    assert (b.treq.pin, b.treq.value(), b.resetn.pin, b.resetn.value()) == ("cpu.A5", 1, "cpu.A8", 1)
    kind, args, kw = b.modem_uart()
    assert args == (1, 57600) and kw["timeout"] == 0 and kw["rxbuf"] >= 57600 // 10 * 50 // 1000
    assert b.modem_uart() is b.modem_uart()
    assert b.storage_dir == "/flash" and b.power_w() == (0, 0)
    assert b.pins()["pl_tx_on"] == "PC0" and b.pins()["pl_rx_on"] == "PC1"


def test_identity_derived_from_unique_id(monkeypatch, tmp_path):
    aca, serial = _load(monkeypatch, tmp_path, True).Board().identity()
    lot = 0
    for c in b"LOT1234":
        lot ^= c
    assert aca == bytes.fromhex("0a0b0c0d07") + bytes([lot])
    assert serial == "NUC-" + aca.hex().upper()
    # a first byte 0x03 would read as a logical address: it is changed
    aca, _ = _load(monkeypatch, tmp_path, True, uid=b"\x03" + UID[1:]).Board().identity()
    assert aca[0] != 0x03 and aca[1:] == bytes.fromhex("0b0c0d07") + bytes([lot])


def test_identity_from_file(monkeypatch, tmp_path):
    m = _load(monkeypatch, tmp_path, True)
    (tmp_path / "identity.json").write_text(json.dumps({"aca": "A8040A1E8984", "serial": "SN42"}))
    assert m.Board().identity() == (bytes.fromhex("A8040A1E8984"), "SN42")
    for bad in ({"aca": "A8040A1E89"}, {"aca": "03040A1E8984"}, {"aca": "zz040A1E8984"}, {"serial": "x"}):
        (tmp_path / "identity.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="identity.json"):
            m.Board().identity()
