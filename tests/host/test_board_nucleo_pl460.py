"""boards/nucleo_f401re_pl460/board.py (NUCLEO-F401RE on a Meters and More modem)
against a fake `machine` module (no hardware)."""

import importlib.util
import json
import sys
import types

from tools import ROOT

from meter.phy import hi
from test_board_nucleo import UID, FakePin, FakeRTC


def _load(monkeypatch, tmp_path):
    machine = types.SimpleNamespace(Pin=FakePin, RTC=FakeRTC, unique_id=lambda: UID)
    machine.UART = lambda *a, **kw: ("UART", a, kw)
    monkeypatch.setitem(sys.modules, "machine", machine)
    spec = importlib.util.spec_from_file_location("board_pl460", f"{ROOT}/boards/nucleo_f401re_pl460/board.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.IDENTITY_FILE = str(tmp_path / "identity.json")
    return mod


def test_pins_uart_and_the_hi_driver(monkeypatch, tmp_path):
    m = _load(monkeypatch, tmp_path)
    (tmp_path / "identity.json").write_text(json.dumps({"aca": "A8040A1E8984", "serial": "SN42"}))
    b = m.Board()
    assert (b.treq.pin, b.treq.value(), b.resetn.value()) == ("cpu.A5", 1, 1)
    _kind, args, kw = b.modem_uart()
    assert args == (1, 57600) and kw["timeout"] == 0 and kw["rxbuf"] >= 2 * 262
    drv = b.modem_driver()
    assert isinstance(drv, hi.HostInterface) and drv.profile == hi.MICROCHIP and drv.modem_security
    assert drv._setup[0] == (6, b"SN42" + bytes(12) + bytes.fromhex("84891E0A04A8"))  # its identity, ACA little-endian
    assert b.pins()["modem"].startswith("Meters and More")
