"""The concentrator against in-process meters (the firmware's MeterNode under
CPython) on the simulated medium with a virtual clock."""

import types
import zlib

import pytest

from meter.model import registers as R
from smitp import topology
from smitp.concentrator import Concentrator, parse_aca, response_timeout
from smitp.demo import read_meters
from smitp.errors import Nack, NoAnswer
from smitp.network import neighbourhood

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


@pytest.fixture
def conc():
    net, port = neighbourhood(topology.demo_feeder(), boards=False)
    return Concentrator(port)


def test_reads_every_meter_and_finds_the_repeater(conc):
    results = read_meters(conc, [M1, M2, M3])
    assert [r["route"] for r in results] == [["A8040A1E8901"], ["A8040A1E8902"], ["A8040A1E8902", "A8040A1E8903"]]
    for r in results:
        regs = {reg["id"]: reg for reg in r["registers"]}
        assert regs["0x0010"]["value"] == "SN" + r["aca"][-6:]
        assert r["firmware"].startswith("smitp-meter ") and "cpython" in r["firmware"]
        assert regs["0x003F"]["raw"] == "0000000000000001"  # clock not set since power-up
        assert regs["0x003F"]["value"] == ["clock unset"]


def test_meter3_is_silent_without_repeater(conc):
    with pytest.raises(NoAnswer):
        conc.read(M3, [R.STATUS_WORD])
    assert conc.stats["retries"] == conc.retries


def test_write_then_read_back_through_repeater(conc):
    label = b"FEEDER-7 POS 3".ljust(16, b"\0")
    conc.write(M3, {R.POINT_LABEL: label}, route=(M2,))
    assert conc.read(M3, [R.POINT_LABEL], route=(M2,))[R.POINT_LABEL] == label


def test_nack_is_reported_with_code_and_register(conc):
    with pytest.raises(Nack) as e:
        conc.write(M1, {R.CLOCK: (1700000000).to_bytes(4, "big")})
    assert e.value.code == 2 and e.value.reg_id == R.CLOCK


def test_frames_on_the_medium_carry_a_zlib_crc(conc):
    """Independent check of the frame check sequence with zlib."""
    sent = []
    port = conc.port
    orig = port.send
    port.send = lambda p: (sent.append(bytes(p)), orig(p))[1]
    conc.read(M1, [R.STATUS_WORD])
    frame = sent[0]
    assert zlib.crc32(frame[:-4]) == int.from_bytes(frame[-4:], "little")
    assert frame[0] == len(frame) - 5


def test_timeout_grows_with_hops():
    assert response_timeout(2, 30, 40) > response_timeout(1, 30, 40) > response_timeout(0, 30, 40)


def test_the_wait_for_an_answer_includes_the_slack_of_the_boards_on_the_line():
    """Boards slower than the wall clock (QEMU's) get their answer_slack_s on top of the window."""
    from smitp.emulated_board import EmulatedBoard
    from smitp.mcu_board import McuBoard
    from smitp.network import ConcentratorPort

    class Silent:
        boards: dict = {}

        def __init__(self):
            self.t = 0.0
            self.clock = self

        def now(self):
            return self.t

    net = Silent()
    port = ConcentratorPort(net, "dcu")
    port.send = lambda payload: None
    port.recv = lambda timeout: setattr(net, "t", net.t + timeout)  # silence for the whole wait
    conc = Concentrator(port, retries=0)

    def waited():
        start = net.t
        with pytest.raises(NoAnswer):
            conc.read(M1, [R.STATUS_WORD])
        return net.t - start

    alone = waited()
    assert port.slack_s() == 0.0
    net.boards = {"m1": types.SimpleNamespace(board=types.SimpleNamespace(answer_slack_s=EmulatedBoard.answer_slack_s)),
                  "m2": types.SimpleNamespace(board=types.SimpleNamespace(answer_slack_s=McuBoard.answer_slack_s))}
    assert port.slack_s() == McuBoard.answer_slack_s > 0
    assert abs(waited() - alone - McuBoard.answer_slack_s) < 1e-9


def test_in_process_meters_serve_the_table_services(conc):
    """The fleet's in-process meters run the same engines as the boards."""
    profiles = conc.read_table(M3, R.DAY_PROFILES_1, route=(M2,))
    assert profiles and all(len(raw) == R.BY_ID[R.DAY_PROFILES_1][R.R_SIZE] for _n, raw in profiles)
    assert conc.read_table(M3, R.EVENT_LOG, route=(M2,)) == []  # nothing happened yet
