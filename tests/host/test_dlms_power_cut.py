"""Invocation counters of the DLMS profile across power cuts, on an emulated board (the firmware on
MicroPython, its records in littlefs on a file-backed flash image): after every restart the meter
never reuses a counter, and a SET seen before the cut is refused when replayed after it."""

import pytest

from smitp import topology
from smitp.concentrator import Concentrator, parse_aca
from smitp.dlms.cl import ClClient, plc_link
from smitp.dlms.client import DlmsError, Session
from smitp.dlms.command import provision_image
from smitp.emulated_board import EmulatedBoard
from smitp.medium import Medium
from smitp.network import Network

ACA = parse_aca("A8040A1E8901")
EK, AK = bytes(range(16)), bytes(range(16, 32))
BOOT_S = 20
CUTS = 3
SET_CLOCK = bytes.fromhex("C101C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00")
GET_CLOCK = bytes.fromhex("C001C1 0008 0000010000FF 02 00")


def boot(net, board, times):
    assert net.run_until(lambda: board.log_text().count("modem configured") >= times, BOOT_S), board.log_text()


@pytest.mark.timeout(180)
def test_counters_survive_power_cuts(tmp_path):
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": ACA.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=48000, topology=topo))
    board = EmulatedBoard("m1", ACA.hex(), "SNDLMS", tmp_path)
    provision_image(board.flash, {"ek": EK.hex(), "ak": AK.hex()})
    slot = net.add_board("m1", board)
    conc = Concentrator(net.add_concentrator("dcu"))
    cl = ClClient(plc_link(conc, ACA))
    ic = 0
    seen = []  # every counter the meter used, in order
    try:
        boot(net, board, 1)
        for cut in range(CUTS + 1):
            s = Session(cl.exchange, "hls", ek=EK, ak=AK, ic=ic)
            s.associate()
            assert not seen or s.meter_ic > max(seen), "counter %d reused after a cut" % s.meter_ic
            seen.append(s.meter_ic)
            if cut:  # the SET sent before the last cut, replayed as it was on the line
                with pytest.raises(DlmsError, match="invocation counter error"):
                    s._check(cl.exchange(recorded))
            sent = []
            s.exchange = lambda apdu: (sent.append(apdu), cl.exchange(apdu))[1]
            assert s.request(SET_CLOCK) == bytes.fromhex("C501C100")
            recorded = sent[-1]
            for _ in range(3):
                s.request(GET_CLOCK)
                seen.append(s.meter_ic)
            ic = s.ic
            if cut < CUTS:  # the supply goes, the board starts again on the same flash
                board.power_cut()
                slot.out = b""
                board.start()
                slot.emu.power_on(net.clock.now() * 1000)
                boot(net, board, cut + 2)
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
    finally:
        net.close()
