# DLMS broadcast (meter/dlms/broadcast.py): an unconfirmed SET or ACTION to
# all meters, general-glo-ciphered with the broadcast key, never answered;
# replays, the unicast key, plain requests, confirmed services and targets
# outside the allowed list are refused, across power cuts too; through the
# meter node and the convergence layer.
from meter.app.node import MeterNode
from meter.dlms import broadcast as B
from meter.dlms import cl as CL
from meter.link import mac
from meter.link.llc import DSAP_DLMS
from fwtest import unhex
from dlmskit import EK, Meter, aarq, glo

BK = unhex("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")
HEAD_END = unhex("4D4D4D0000000002")  # the broadcast's sender
# unconfirmed (invoke-id-and-priority 0x81): SET the clock to 2026-01-01 12:00:00 UTC; shift it by +/-60 s
SET_CLOCK = unhex("C1 01 81 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00")
T_SET = 1767268800
SHIFT = unhex("C3 01 81 0008 0000010000FF 06 01 10 003C")
BACK = unhex("C3 01 81 0008 0000010000FF 06 01 10 FFC4")


def _meter(key=True):
    m = Meter()
    if key:
        assert B.provision(m.store, BK)
        m.server.load_keys()
    return m


def bcast(plain, ic, sc=0x70, ek=BK):
    return glo(plain, ic, title=HEAD_END, sc=sc, ek=ek)


def _take(m, apdu):
    buf = bytearray(apdu)
    return m.server.broadcast.serve(buf, 0, len(buf))


def test_a_broadcast_sets_the_clock_once():
    m = _meter()
    assert _take(m, bcast(SET_CLOCK, 5)) and m.t == T_SET
    m.t = T_SET + 1000
    assert not _take(m, bcast(SET_CLOCK, 5)) and m.t == T_SET + 1000  # the same again: a replay
    assert not _take(m, bcast(SET_CLOCK, 4)) and m.t == T_SET + 1000  # an older one
    assert _take(m, bcast(SET_CLOCK, 6)) and m.t == T_SET
    assert _take(m, bcast(SHIFT, 7)) and m.t == T_SET + 60
    assert _take(m, bcast(BACK, 8)) and m.t == T_SET
    s = m.server.stats
    assert s["broadcasts"] == 4 and s["broadcasts_refused"] == 2 and s["replays"] == 2


def test_broadcast_refusals():
    m = _meter()
    t = m.t
    refused = [
        bcast(SET_CLOCK, 1, sc=0x30, ek=EK),  # the unicast key
        bcast(SET_CLOCK, 1, ek=EK),  # key set 1, another key
        bcast(SET_CLOCK, 1, sc=0x30),  # the broadcast key under the unicast key set
        SET_CLOCK,  # plain
        bcast(SET_CLOCK, 1)[:-1],  # cut
        bcast(SET_CLOCK, 1)[:-1] + b"\x00",  # tag tampered
        bcast(SET_CLOCK.replace(b"\xc1\x01\x81", b"\xc1\x01\xc1"), 2),  # confirmed
        bcast(unhex("C0 01 81 0008 0000010000FF 02 00"), 3),  # a GET
        bcast(unhex("C3 01 81 0046 00006003 0AFF 01 01 0F00"), 4),  # disconnect: not for broadcast
        bcast(SET_CLOCK[:12] + b"\x01" + SET_CLOCK[13:], 5),  # an access selection
        bcast(SET_CLOCK + b"\x00", 6),  # a byte after the Data
        bcast(unhex("C3 01 81 0008 0000010000FF 06 01 10 0385"), 7),  # shift by 901 s
        bcast(unhex("C3 01 81 0008 0000010000FF 06 01 12 003C"), 8),  # shift as long-unsigned
        bcast(unhex("C3 01 81 0008 0000010000FF 05 01 10 003C"), 9),  # another clock method
        unhex("DB 08") + HEAD_END + unhex("8205") + bytes(5),  # a length past the end
    ]
    for apdu in refused:
        assert not _take(m, apdu), apdu.hex()
    assert m.t == t and m.server.stats["broadcasts_refused"] == len(refused)
    # unicast still served
    assert m.ask(aarq())[0] == 0x61 and m.ask(unhex("C0 01 C1 0008 0000010000FF 02 00"))[:4] == unhex("C4 01 C1 00")


def test_no_broadcast_key_no_broadcast():
    m = _meter(key=False)
    assert not _take(m, bcast(SET_CLOCK, 1)) and not _take(m, SET_CLOCK) and m.t != T_SET


def test_the_broadcast_counter_survives_a_power_cut():
    m = _meter()
    assert _take(m, bcast(SET_CLOCK, 41))
    again = Meter(store=m.store)  # the same flash, booted again
    again.t = T_SET + 500
    assert not _take(again, bcast(SET_CLOCK, 41)) and again.t == T_SET + 500
    assert _take(again, bcast(SET_CLOCK, 42)) and again.t == T_SET


def _node(m):
    s = m.server
    cl = CL.ClServer(s.handle, server=s, on_broadcast=s.broadcast.serve)
    return MeterNode(unhex("A8040A1E8901"), m.model, store=m.store, dlms=cl), cl


def _frame(addr, disc, clpdu):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, addr, b"", disc, False, 0, False, DSAP_DLMS, 0, clpdu)
    return out, n


def test_a_broadcast_through_the_node_and_the_convergence_layer():
    m = _meter()
    node, cl = _node(m)
    apdu = bcast(SET_CLOCK, 9)
    out, n = _frame(mac.BROADCAST, mac.DISC_S, b"\x01\x33\x00" + apdu)
    assert node.on_phy(out, n, 1000) == 0 and m.t == T_SET  # applied, nothing sent
    assert node.on_phy(out, n, 2000) == 0 and m.server.stats["replays"] == 1
    m.t = 5
    apdu = bcast(SET_CLOCK, 10)
    for clpdu in (b"\x00\x34\x00" + apdu, b"\x01\x34\x01" + apdu, b"\x01\x34\x00"):  # more, segment 1, empty
        out, n = _frame(mac.BROADCAST, mac.DISC_S, clpdu)
        assert node.on_phy(out, n, 3000) == 0
    out, n = _frame(mac.BROADCAST, mac.DISC_RA7, b"\x01\x35\x00" + apdu)  # a broadcast asking an answer
    assert node.on_phy(out, n, 3000) == 0
    assert m.t == 5 and cl.stats["errors"] == 3 and node.stats["faults"] == 0


def test_a_broadcast_leaves_a_unicast_exchange_alone():
    m = _meter()
    _node_, cl = _node(m)
    req = aarq()
    cut = 20
    assert cl.serve(b"\x00\x07\x00" + req[:cut], 0, 3 + cut, 140, 0) == 3  # NEXT: send segment 1
    clpdu = b"\x01\x07\x00" + bcast(SET_CLOCK, 11)  # even the XID of the exchange
    assert cl.broadcast(clpdu, 0, len(clpdu)) and m.t == T_SET
    n = cl.serve(b"\x01\x07\x01" + req[cut:], 0, 3 + len(req) - cut, 140, 10)
    assert cl.ans[0] == CL.DATA_LAST and cl.ans[3] == 0x61 and n > 20  # the AARE
