"""DLMS broadcast through a repeater (smitp.dlms.broadcast with SCA repeater entries): over the
simulated medium, m3 of the demo feeder, which hears only the repeater m2, takes a broadcast sent
along (m2,) and not one sent to the concentrator's neighbours alone; through the repeater the
refusals stay: replay, the unicast key, a plain APDU; the meter answers none of them and serves
unicast DLMS afterwards."""

import pytest

from meter.app.node import MeterNode
from meter.link import mac
from meter.dlms import broadcast as MB
from meter.dlms.server import profile, provision
from meter.model import registers as R
from meter.model.datamodel import DataModel
from meter.storage import Store
from smitp import topology
from smitp.concentrator import Concentrator
from smitp.dlms import broadcast as B
from smitp.dlms.cl import ClClient, plc_link
from smitp.network import neighbourhood
from dlmsfeeder import AK, EK, M2, M3, TITLE
from test_dlms_broadcast_feeder import BK, T0

GET_CLOCK = bytes.fromhex("C001C1000800000100 00FF0200".replace(" ", ""))
PUBLIC_AARQ = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0")


class Behind:
    """The demo feeder with m3 (behind the repeater m2) a DLMS meter holding a broadcast key."""

    def __init__(self):
        self.net, self.port = neighbourhood(topology.demo_feeder(), boards=False)
        self.conc = Concentrator(self.port)
        self.t = T0
        store = Store()
        provision(store, EK, AK)
        MB.provision(store, BK)
        self.model = DataModel("SN0E8903", M3, "in-process", store, lambda: self.t, self.set_now)
        self.cl = profile(self.model, store, M3)
        self.net.meters["m3"] = MeterNode(M3, self.model, store=store, dlms=self.cl)
        self.rp = B.entries(self.conc, (M2,))

    def set_now(self, t):
        self.t = t

    def answers(self, heard):
        """The uplink frames among those heard: answers (a broadcast gets none)."""
        up = []
        for payload in heard:
            f = mac.Frame()
            mac.decode(f, payload, len(payload))
            if f.uplink:
                up.append(payload)
        return up

    def broadcast(self, plain, ic, key=BK, sc_key=True, route=True):
        apdu = B.cipher(plain, ic, TITLE, key, AK) if sc_key else plain
        B.send(self.port, apdu, xid=ic, entries=self.rp if route else b"")
        heard = []
        while True:  # whatever comes back in 2 s of line time: the repetition, never an answer
            f = self.port.recv(2.0)
            if f is None:
                return heard
            heard.append(f)


def test_a_broadcast_along_the_repeater_reaches_the_meter_behind_it():
    line = Behind()
    assert len(line.rp) == 2  # m2 by its SCA (learnt by STATUS, given by REGISTER when it held none)
    t1 = T0 + 86400
    assert line.broadcast(B.set_clock(t1), 1, route=False) == []
    assert line.t == T0 and line.cl.server.stats["broadcasts"] == 0  # m3 does not hear the concentrator
    heard = line.broadcast(B.set_clock(t1), 2)
    assert line.t == t1 and line.cl.server.stats["broadcasts"] == 1
    assert len(heard) == 1 and line.answers(heard) == []  # m2's repetition of the frame, no answer
    line.broadcast(B.shift_time(-30), 3)
    assert line.t == t1 - 30


def test_refusals_stay_through_the_repeater_and_the_meter_serves_on():
    line = Behind()
    t1 = T0 + 86400
    line.broadcast(B.set_clock(t1), 5)
    assert line.t == t1
    line.t = T0
    heard = line.broadcast(B.set_clock(t1), 5)  # replayed
    heard += line.broadcast(B.set_clock(t1), 4)  # an older counter
    heard += line.broadcast(B.set_clock(t1), 6, key=EK)  # the unicast key
    heard += line.broadcast(B.set_clock(t1), 7, sc_key=False)  # plain
    assert line.t == T0 and len(heard) == 4 and line.answers(heard) == []
    stats = line.cl.server.stats
    assert stats["broadcasts"] == 1 and stats["broadcasts_refused"] == 4 and stats["replays"] == 2
    cl = ClClient(plc_link(line.conc, M3, (M2,)))
    assert cl.exchange(PUBLIC_AARQ)[0] == 0x61
    assert cl.exchange(GET_CLOCK)[:6] == bytes.fromhex("C401C100090C")
    assert line.model.get(R.CLOCK) == T0


def test_repeater_entries_are_whole_sca_entries():
    with pytest.raises(ValueError, match="2-byte SCA entries"):
        B.frame(B.clpdu(b"\xc1"), b"\x01\xc9\x02")
    assert B.entries(Concentrator(Behind().port), ()) == b""
