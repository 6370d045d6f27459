"""Integration: the firmware on the real MicroPython interpreter behind Meters
and More modems (smitp.hi_emu) and ST7580 modems on one simulated feeder,
read by the concentrator, plain and authenticated, one through a repeater."""

import json

import pytest

from meter.model import registers as R
from smitp import topology
from smitp.cli import main
from smitp.concentrator import Concentrator, parse_aca
from smitp.demo import wait_until_ready
from smitp.network import neighbourhood
from smitp.secure import KeyRing

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))
KEYS = {"A8040A1E8901": (bytes(range(16)), bytes(range(16, 32))),
        "A8040A1E8902": (bytes(range(32, 48)), bytes(range(48, 64))),
        "A8040A1E8903": (bytes(range(64, 80)), bytes(range(80, 96)))}


def test_demo_mixed_json_names_each_meters_modem(capsys):
    assert main(["demo", "--modem", "mixed", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    meters = {m["aca"]: m for m in report["meters"]}
    assert {a: m["modem"] for a, m in meters.items()} == {
        "A8040A1E8901": "st7580", "A8040A1E8902": "hi", "A8040A1E8903": "st7580"}
    assert meters["A8040A1E8903"]["route"] == ["A8040A1E8902", "A8040A1E8903"]  # through the HI meter
    for m in meters.values():
        assert m["firmware"].startswith("smitp-meter ") and " micropython " in m["firmware"]


@pytest.mark.parametrize("modems", [{"m1": "hi", "m2": "st7580", "m3": "hi"}, {"m1": "hi-sum", "m2": "hi", "m3": "hi"},
                                    {"m1": "hi-sec", "m2": "st7580", "m3": "hi-sec"}])
def test_feeder_of_mixed_modems_read_plain_and_authenticated(tmp_path, modems):
    net, port = neighbourhood(topology.demo_feeder(), tmp_path, boards=True, keys=KEYS, modems=modems)
    try:
        wait_until_ready(net)
        ring = KeyRing.from_dict({a: {"k1": k[0].hex(), "k2": k[1].hex()} for a, k in KEYS.items()})
        conc = Concentrator(port, keyring=ring)
        for aca, route in ((M1, ()), (M2, ()), (M3, (M2,))):
            plain = conc.read(aca, [R.SERIAL, R.STATUS_WORD], route)
            auth = conc.read(aca, [R.SERIAL, R.LMON], route, auth=True)
            assert plain[R.SERIAL] == auth[R.SERIAL] and plain[R.SERIAL].rstrip(b"\0").endswith(aca.hex()[-6:].upper().encode())
            assert int.from_bytes(auth[R.LMON], "big") >= 1
        for name, modem in modems.items():
            emu = net.boards[name].emu
            assert type(emu).__name__ == ("ST7580Emulator" if modem == "st7580" else "HIEmulator")
        hi_names = [n for n, m in modems.items() if m != "st7580"]
        assert sum(net.boards[n].emu.stats["answers"] for n in hi_names) >= 4
        for n in (n for n, m in modems.items() if m == "hi-sec"):  # the modem opened and sealed
            emu = net.boards[n].emu
            assert emu.sec.lmon() >= 1 and emu.mib[10] == emu.sec.lmon().to_bytes(8, "little")
            assert "fault" not in net.boards[n].board.log_text()
    finally:
        net.close()
