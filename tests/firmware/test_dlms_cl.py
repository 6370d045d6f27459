# The DLMS convergence layer, meter side (meter/dlms/cl.py): byte-exact CLPDUs
# of each phase of an exchange, repeats, and every error of the exchange.
from meter.dlms import cl as C
from meter.dlms.cl import ClServer
from meter.link import mac
from meter.link.llc import DSAP_DLMS
from meter.app.node import MeterNode
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex

M1 = unhex("A8040A1E8901")
M2 = unhex("A8040A1E8902")


class Echo:
    """A handler answering each request APDU with 0xEE + the request; counts its calls."""

    def __init__(self, scale=1):
        self.calls = 0
        self.scale = scale

    def __call__(self, req, n, resp):
        self.calls += 1
        size = 1 + n * self.scale
        resp[0] = 0xEE
        for i in range(size - 1):
            resp[1 + i] = req[i % n]
        return size


def serve(cl, clpdu, limit=140, now=0):
    n = cl.serve(clpdu, 0, len(clpdu), limit, now)
    return bytes(cl.ans[:n])


def test_unsegmented_confirmed_exchange():
    cl = ClServer(Echo())
    assert serve(cl, unhex("01 07 00 C001")) == unhex("01 07 00 EE C001")


def test_segmented_request_then_segmented_response():
    h = Echo()
    cl = ClServer(h)
    apdu = bytes(range(256)) + bytes(44)  # 300 bytes: 125 + 125 + 50
    assert serve(cl, b"\x00\x05\x00" + apdu[:125]) == unhex("02 05 00")
    assert serve(cl, b"\x00\x05\x01" + apdu[125:250]) == unhex("02 05 01")
    # the last request segment in a 20-byte answer room: 17-byte response segments
    first = serve(cl, b"\x01\x05\x02" + apdu[250:], limit=20)
    assert first == b"\x00\x05\x00\xee" + apdu[:16]
    resp = bytearray(first[3:])
    seg = 0
    while True:
        a = serve(cl, bytes((C.NEXT, 5, seg)), limit=20)
        assert a[1] == 5 and a[2] == seg + 1 and len(a) <= 20
        resp += a[3:]
        seg += 1
        if a[0] == C.DATA_LAST:
            break
        assert a[0] == C.DATA_MORE
    assert bytes(resp) == b"\xee" + apdu and h.calls == 1
    assert seg == (301 + 16) // 17 - 1


def test_repeats_get_the_same_answer_and_run_once():
    h = Echo()
    cl = ClServer(h)
    assert serve(cl, b"\x00\x09\x00" + bytes(125)) == unhex("02 09 00")
    assert serve(cl, b"\x00\x09\x00" + bytes(125)) == unhex("02 09 00")  # NEXT lost
    last = serve(cl, b"\x01\x09\x01" + b"\x01" * 10, limit=20)
    assert serve(cl, b"\x01\x09\x01" + b"\x01" * 10, limit=20) == last  # response lost
    second = serve(cl, unhex("02 09 00"), limit=20)
    assert serve(cl, unhex("02 09 00"), limit=20) == second  # a NEXT's answer lost
    assert h.calls == 1 and cl.stats["repeats"] == 2  # a repeated NEXT is served as any NEXT


def test_out_of_order_segment_ends_the_exchange():
    cl = ClServer(Echo())
    serve(cl, b"\x00\x03\x00" + bytes(125))
    assert serve(cl, b"\x00\x03\x02" + bytes(125)) == unhex("03 03 02 01")
    # the exchange is gone: its next segment is out of sequence too
    assert serve(cl, b"\x01\x03\x01" + bytes(5)) == unhex("03 03 01 01")
    # a segment 0 starts afresh
    assert serve(cl, b"\x01\x04\x00\xaa") == unhex("01 04 00 EE AA")


def test_segment_of_another_exchange_is_out_of_sequence():
    cl = ClServer(Echo())
    serve(cl, b"\x00\x03\x00" + bytes(125))
    assert serve(cl, b"\x01\x04\x01" + bytes(5)) == unhex("03 04 01 01")


def test_request_longer_than_the_mtu():
    cl = ClServer(Echo(), mtu=200)
    serve(cl, b"\x00\x01\x00" + bytes(125))
    assert serve(cl, b"\x01\x01\x01" + bytes(76)) == unhex("03 01 01 02")


def test_unfinished_request_times_out():
    cl = ClServer(Echo())
    serve(cl, b"\x00\x01\x00" + bytes(125), now=1000)
    assert serve(cl, b"\x01\x01\x01\x00", now=1000 + C.TIMEOUT_MS + 1) == unhex("03 01 01 03")
    serve(cl, b"\x00\x02\x00" + bytes(125), now=5000)
    assert serve(cl, b"\x01\x02\x01\x00", now=5000 + C.TIMEOUT_MS)[:3] == unhex("00 02 00")  # in time


def test_next_without_exchange_or_past_the_end():
    cl = ClServer(Echo())
    assert serve(cl, unhex("02 01 00")) == unhex("03 01 00 04")
    serve(cl, unhex("01 01 00 AA"))
    assert serve(cl, unhex("02 01 00")) == unhex("03 01 00 04")  # the response was one segment
    assert serve(cl, unhex("02 02 00")) == unhex("03 02 00 04")


def test_next_with_less_room_than_the_exchange():
    cl = ClServer(Echo(scale=3))
    serve(cl, b"\x01\x01\x00" + bytes(60), limit=140)
    assert serve(cl, unhex("02 01 00"), limit=20) == unhex("03 01 00 06")


def test_bad_clpdus():
    cl = ClServer(Echo())
    assert serve(cl, unhex("01 01")) == unhex("03 00 00 05")
    assert serve(cl, unhex("07 01 00 00")) == unhex("03 01 00 05")


def test_handler_without_response():
    cl = ClServer(lambda req, n, resp: 0)
    assert serve(cl, unhex("01 01 00 AA")) == unhex("03 01 00 07")


def _node(aca, dlms=None):
    model = DataModel("SN", aca, "smitp-meter test", Store(), lambda: 1700000000)
    return MeterNode(aca, model, dlms=dlms)


def _frame(dst, data, route=(), disc=8, ecc=0, dsap=DSAP_DLMS):
    out = bytearray(mac.MAX_FRAME)
    rp = b"".join(mac.aca_to_air(r) for r in route)
    n = mac.encode(out, mac.aca_to_air(dst), rp, disc, False, 0, False, dsap, ecc, data)
    return bytes(out[:n])


def test_node_serves_dlms_dsap_through_a_repeater():
    m1 = _node(M1, ClServer(Echo()))
    m2 = _node(M2)
    req = _frame(M1, unhex("01 01 00 C0"), route=(M2,))
    assert m1.on_phy(req, len(req)) == 0  # m2 repeats first
    n = m2.on_phy(req, len(req))
    rep = bytes(m2.out[:n])
    n = m1.on_phy(rep, len(rep))
    f = mac.Frame()
    mac.decode(f, bytes(m1.out[:n]), n)
    assert f.uplink and f.dsap == DSAP_DLMS and f.ecc == 0 and f.repeaters == 1
    assert bytes(f.buf[f.data:f.data + f.data_len]) == unhex("01 01 00 EE C0")


def test_node_ignores_dlms_ciphered_llc_broadcast_or_unserved():
    m1 = _node(M1, ClServer(Echo()))
    for req in (_frame(M1, unhex("01 01 00 C0"), ecc=1), _frame(M1, unhex("01 01 00 C0"), disc=0)):
        assert m1.on_phy(req, len(req)) == 0
    plain = _node(M1)  # no DLMS profile: DSAP 4 is ignored
    req = _frame(M1, unhex("01 01 00 C0"))
    assert plain.on_phy(req, len(req)) == 0 and plain.stats["ignored"] == 1


def test_a_fault_in_dlms_costs_one_frame():
    def boom(req, n, resp):
        raise ValueError("handler bug")

    m1 = _node(M1, ClServer(boom))
    m1.diag._log = lambda *a: None
    req = _frame(M1, unhex("01 01 00 C0"))
    assert m1.on_phy(req, len(req)) == 0 and m1.stats["faults"] == 1
    m1.dlms.handler = Echo()
    req = _frame(M1, unhex("01 02 00 C0"))
    assert m1.on_phy(req, len(req)) > 0


def test_new_exchange_reusing_the_xid_is_not_a_repeat():
    h = Echo()
    cl = ClServer(h)
    assert serve(cl, unhex("01 07 00 C001")) == unhex("01 07 00 EE C001")
    assert serve(cl, unhex("01 07 00 C002")) == unhex("01 07 00 EE C002")  # other bytes: served
    assert serve(cl, unhex("01 07 00 C002")) == unhex("01 07 00 EE C002") and h.calls == 2  # a repeat
