"""The firmware on MicroPython (an emulated board of the demo feeder, m1, its flash provisioned
with the suite 0 keys and a broadcast key): Gurux, its PDU size cut down, associates with its
reply to HLS in blocks and SETs the clock in blocks; then a DLMS broadcast from the concentrator
shifts the clock, its replay does not, and the meter still answers."""

import datetime

from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSClock

from smitp.dlms import broadcast as B
from dlmsfeeder import AK, TITLE, BoardFeeder
from test_dlms_blocks_gurux import SMALL_PDU, Counting

BK = bytes.fromhex("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")
T_SET = 1772353800  # 2026-03-01 08:30:00 UTC


def test_blocks_and_a_broadcast_on_an_emulated_board(tmp_path):
    feeder = BoardFeeder(tmp_path, bk=BK)
    try:
        d = Counting(feeder, general=False)
        d.c.parseAareResponse(d.run(d.c.aarqRequest()).data)
        d.c.settings.maxPduSize = SMALL_PDU + 22
        d.c.parseApplicationAssociationResponse(d.run(d.c.getApplicationAssociationRequest()).data)
        assert d.count > 1
        clock = GXDLMSClock("0.0.1.0.0.255")
        clock.time = GXDateTime(datetime.datetime.fromtimestamp(T_SET, datetime.timezone.utc))
        d.run(d.c.write(clock, 2))
        assert d.count > 1
        d.c.settings.maxPduSize = 1024

        def clock_now():
            d.read(clock, 2)
            return clock.time.value.timestamp()

        assert abs(clock_now() - T_SET) <= 10
        shift = B.cipher(B.shift_time(600), 7, TITLE, BK, AK)
        B.send(feeder.port, shift)
        assert feeder.port.recv(1.0) is None  # no answer to a broadcast
        assert abs(clock_now() - (T_SET + 600)) <= 15
        B.send(feeder.port, shift)  # replayed
        feeder.port.recv(1.0)
        assert abs(clock_now() - (T_SET + 600)) <= 20
        d.run(d.c.releaseRequest())
    finally:
        feeder.close()
