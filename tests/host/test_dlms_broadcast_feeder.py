"""DLMS broadcast from the concentrator side (smitp.dlms.broadcast: `cryptography`'s AES-GCM)
over the simulated medium to an in-process DLMS meter next to the concentrator: the clock set
and shifted, replays, the unicast key and a plain request refused, no answer on the line, and the
meter's unicast DLMS service unchanged afterwards."""

import pytest

from meter.app.node import MeterNode
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
from dlmsfeeder import AK, EK, M1, TITLE

BK = bytes.fromhex("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")
T0 = 1764676800


class Line:
    """The demo feeder with m1 (next to the concentrator) a DLMS meter holding a broadcast key."""

    def __init__(self):
        self.net, self.port = neighbourhood(topology.demo_feeder(), boards=False)
        self.t = T0
        store = Store()
        provision(store, EK, AK)
        MB.provision(store, BK)
        self.model = DataModel("SN0E8901", M1, "in-process", store, lambda: self.t, self.set_now)
        self.cl = profile(self.model, store, M1)
        self.net.meters["m1"] = MeterNode(M1, self.model, store=store, dlms=self.cl)

    def set_now(self, t):
        self.t = t

    def broadcast(self, plain, ic, key=BK, sc_key=True):
        apdu = B.cipher(plain, ic, TITLE, key, AK) if sc_key else plain
        B.send(self.port, apdu, xid=ic)
        return self.port.recv(2.0)  # whatever comes back in 2 s of line time


def test_broadcast_sets_and_shifts_the_clock_and_refuses_replays():
    line = Line()
    t1 = T0 + 86400
    assert line.broadcast(B.set_clock(t1), 1) is None and line.t == t1  # applied, no answer
    line.t = T0
    assert line.broadcast(B.set_clock(t1), 1) is None and line.t == T0  # replayed: refused
    assert line.broadcast(B.shift_time(-30), 2) is None and line.t == T0 - 30
    assert line.broadcast(B.set_clock(t1), 3, key=EK) is None and line.t == T0 - 30  # the unicast key
    assert line.broadcast(B.set_clock(t1), 4, sc_key=False) is None and line.t == T0 - 30  # plain
    stats = line.cl.server.stats
    assert stats["broadcasts"] == 2 and stats["broadcasts_refused"] == 3 and stats["replays"] == 1
    # unicast service afterwards: a public GET of the clock through the convergence layer
    cl = ClClient(plc_link(Concentrator(line.port), M1))
    assert cl.exchange(bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0"))[0] == 0x61
    ans = cl.exchange(bytes.fromhex("C001C10008000001 0000FF0200".replace(" ", "")))
    assert ans[:6] == bytes.fromhex("C401C100090C")
    assert line.model.get(R.CLOCK) == line.t


@pytest.mark.parametrize("bad", [lambda: B.shift_time(901), lambda: B.clpdu(bytes(126)),
                                 lambda: B.cipher(b"\xc1", 1, b"short", BK, AK)])
def test_broadcast_builders_refuse_what_the_meter_would(bad):
    with pytest.raises(ValueError):
        bad()
