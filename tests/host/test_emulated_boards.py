"""Integration: firmware on the real MicroPython interpreter, behind pty UARTs,
ST7580 emulators and the simulated medium, read by the concentrator."""

import json
import os
import random

import pytest

from meter.model import registers as R
from smitp import topology
from smitp.cli import main
from smitp.concentrator import Concentrator, Nack, parse_aca
from smitp.demo import wait_until_ready
from smitp.network import neighbourhood

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


@pytest.fixture
def feeder(tmp_path):
    net, port = neighbourhood(topology.demo_feeder(), tmp_path, boards=True)
    try:
        wait_until_ready(net)
        yield net, Concentrator(port)
    finally:
        net.close()


def test_demo_json_reads_three_meters_one_through_a_repeater(capsys):
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    meters = {m["aca"]: m for m in report["meters"]}
    assert meters["A8040A1E8903"]["route"] == ["A8040A1E8902", "A8040A1E8903"]
    assert meters["A8040A1E8901"]["route"] == ["A8040A1E8901"]
    for m in meters.values():
        assert m["firmware"].startswith("smitp-meter ") and " micropython " in m["firmware"]
        regs = {r["id"]: r for r in m["registers"]}
        assert len(regs["0x003F"]["raw"]) == 16
        assert set(regs) >= {"0x003F", "0x0030", "0x0031", "0x0012"}


def test_write_persists_across_a_power_cut(feeder):
    net, conc = feeder
    label = b"STREET 12".ljust(16, b"\0")
    conc.write(M3, {R.POINT_LABEL: label}, route=(M2,))
    slot = net.boards["m3"]
    slot.board.power_cut()
    slot.board.start()
    slot.emu.power_on(net.clock.now() * 1000)
    assert net.run_until(lambda: slot.board.log_text().count("modem configured") >= 2, 20), slot.board.log_text()
    assert conc.read(M3, [R.POINT_LABEL], route=(M2,))[R.POINT_LABEL] == label


def test_plain_write_of_a_protected_register_is_refused(feeder):
    _net, conc = feeder
    with pytest.raises(Nack) as e:
        conc.write(M1, {R.CLOCK: (1).to_bytes(4, "big")})
    assert e.value.reg_id == R.CLOCK


def test_garbage_on_the_line_and_the_uart_does_not_stop_the_meter(feeder):
    net, conc = feeder
    rng = random.Random(5)
    slot = net.boards["m1"]
    for _ in range(100):  # random PLC frames through the modem
        slot.emu.deliver(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))), now=net.clock.now() * 1000)
        net.run_for(0.01)
    os.write(slot.board.uart_fd, bytes(rng.randrange(256) for _ in range(300)))  # and raw junk on the UART
    net.run_for(0.3)
    assert slot.board.alive(), slot.board.log_text()
    assert conc.read(M1, [R.STATUS_WORD])[R.STATUS_WORD][-1] & 1
