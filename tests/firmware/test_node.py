# The meter node end to end in process: frames in, frames out, through the
# data link, the plain application services and the register table.
from meter.link import mac
from meter import attrs as A
from meter.model import registers as R
from meter.app.node import MeterNode
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex, Rng

M1 = unhex("A8040A1E8901")
M2 = unhex("A8040A1E8902")
M3 = unhex("A8040A1E8903")


def make(aca, store=None, now=1700000000):
    model = DataModel("SN-%s" % aca[-1], aca, "smitp-meter test", store or Store(), lambda: now)
    return MeterNode(aca, model)


def request(dst, data, route=(), disc=8):
    out = bytearray(mac.MAX_FRAME)
    rp = b"".join(mac.aca_to_air(r) for r in route)
    n = mac.encode(out, mac.aca_to_air(dst), rp, disc, False, 0, False, 0, 0, data)
    return bytes(out[:n])


def answer_data(frame_bytes):
    f = mac.Frame()
    mac.decode(f, frame_bytes, len(frame_bytes))
    assert f.uplink
    return bytes(frame_bytes[f.data:f.data + f.data_len]), f


def test_read_status_word_direct():
    node = make(M1)
    req = request(M1, b"\x02\x00\x3f")
    n = node.on_phy(req, len(req))
    data, f = answer_data(bytes(node.out[:n]))
    # clock unset since power-up: bit 0 of the status word
    assert data == b"\x03" + b"\x00" * 7 + b"\x01"
    assert f.position == 1 and f.repeaters == 0
    assert bytes(f.buf[f.addr:f.addr + 6]) == mac.aca_to_air(M1)


def test_read_several_registers_in_order():
    node = make(M1)
    req = request(M1, b"\x02\x00\x20\x00\x11\x00\x30")
    n = node.on_phy(req, len(req))
    data, _ = answer_data(bytes(node.out[:n]))
    assert data == b"\x03" + (1700000000).to_bytes(4, "big") + M1 + bytes(4)


def test_repeater_and_destination():
    m2, m3, m1 = make(M2), make(M3), make(M1)
    req = request(M3, b"\x02\x00\x3f", route=(M2,))
    assert m3.on_phy(req, len(req)) == 0  # not yet: m2 must repeat first
    assert m1.on_phy(req, len(req)) == 0
    n = m2.on_phy(req, len(req))
    rep = bytes(m2.out[:n])
    assert m2.stats["repeated"] == 1
    assert m2.on_phy(rep, len(rep)) == 0  # its own copy again: not its turn
    n = m3.on_phy(rep, len(rep))
    ans = bytes(m3.out[:n])
    assert m1.on_phy(ans, len(ans)) == 0
    n = m2.on_phy(ans, len(ans))
    back = bytes(m2.out[:n])
    data, f = answer_data(back)
    assert f.position == 1 and data[0] == A.READ_RESP
    assert m3.on_phy(back, len(back)) == 0


def test_nacks():
    node = make(M1)
    cases = (
        (b"\x02\x12\x34", A.NACK_UNKNOWN_REGISTER, 0x1234),
        (b"\x02\x00", A.NACK_BAD_LENGTH, 0),
        (b"\x04\x00\x20\x00\x00\x00\x00", A.NACK_ACCESS_DENIED, R.CLOCK),
        (b"\x04\x00\x13AB", A.NACK_BAD_LENGTH, R.POINT_LABEL),
        (b"\x63\x00", A.NACK_UNSUPPORTED, 0),
    )
    for data, code, reg in cases:
        req = request(M1, data)
        n = node.on_phy(req, len(req))
        ans, _ = answer_data(bytes(node.out[:n]))
        assert ans == bytes([A.NACK_A, code, reg >> 8, reg & 0xFF]), (data, ans)


def test_answer_must_fit_discipline():
    node = make(M1)
    req = request(M1, b"\x02\x00\x12", disc=2)  # RA1: 20 bytes, firmware id is 48
    n = node.on_phy(req, len(req))
    ans, _ = answer_data(bytes(node.out[:n]))
    assert ans[0] == A.NACK_A and ans[1] == A.NACK_TOO_LONG


def test_write_then_read_persists():
    store = Store()
    node = make(M1, store)
    label = b"KITCHEN-42" + bytes(6)
    req = request(M1, b"\x04\x00\x13" + label)
    n = node.on_phy(req, len(req))
    ans, _ = answer_data(bytes(node.out[:n]))
    assert ans == bytes([A.ACK_A])
    again = make(M1, store)  # a reboot: a new model over the same store
    req = request(M1, b"\x02\x00\x13")
    n = again.on_phy(req, len(req))
    ans, _ = answer_data(bytes(again.out[:n]))
    assert ans == b"\x03" + label


def test_broadcast_and_class_s_get_no_answer():
    node = make(M1)
    req = request(M1, b"\x02\x00\x3f", disc=0)
    assert node.on_phy(req, len(req)) == 0
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.BROADCAST, b"", 3, False, 0, False, 0, 0, b"\x02\x00\x3f")
    assert node.on_phy(out, n) == 0


def test_answer_and_relay_written_where_the_caller_says():
    # As the modem task does: the request in the driver's receive buffer (a
    # view longer than the frame), the answer in its transmit slot.
    req = request(M1, b"\x02\x00\x3f")
    node = make(M1)
    n = node.on_phy(req, len(req))
    want = bytes(node.out[:n])
    slot = bytearray(260)
    space = memoryview(slot)[4:254]
    node = make(M1)
    assert node.on_phy(memoryview(req + b"tail"), len(req), 0, None, space) == n
    assert bytes(slot[4:4 + n]) == want and node.out == bytearray(len(node.out))
    rep = request(M3, b"\x02\x00\x3f", route=(M1,))
    n = node.on_phy(rep, len(rep), 0, None, space)
    f = mac.Frame()
    mac.decode(f, space, n)
    assert f.position == 1 and node.stats["repeated"] == 1


def test_garbage_never_raises_and_node_keeps_serving():
    node = make(M1)
    rng = Rng(3)
    good = request(M1, b"\x02\x00\x3f")
    for i in range(400):
        if i % 3 == 0:
            b = bytearray(good)
            b[rng.below(len(b))] ^= 1 << rng.below(8)
        else:
            b = rng.bytes(rng.below(200))
        node.on_phy(b, len(b))
    n = node.on_phy(good, len(good))
    assert n > 0 and node.stats["bad"] > 0
