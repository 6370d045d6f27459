# B-Nodes: the local link codec (byte-exact, CRC-32 checked with zlib when the
# vectors were made), and a B-Node updated through its A-Node in process:
# SETIC / WRITETABIC in RB disciplines, plain (only when allowed) and
# authenticated (write key), ACK / NACK B-Node, and bad input.
from meter.link import mac
from meter.link import bnodelink as L
from meter import attrs as A
from meter.model import registers as R
from meter.app import security as S
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.storage import Store
from meter import timers as T
from fwtest import unhex

ACA = unhex("A8040A1E8901")
K1 = bytes(range(16))
K2 = bytes(range(16, 32))
KEYS = S.Keys(K1, K2)
NOW = 1700000000
RB1, RB2, RB3, RA7 = 0x9, 0xA, 0xB, 0x8
SCA = unhex("010000 01 02 03")

VECTORS = (  # (seq, kind, data, frame)
    (1, L.KIND_SET | L.KIND_AUTH, b"HELLO", "b707014148454c4c4f2697f20a"),
    (1, L.KIND_ACK, b"\x00\x01\x41", "b7050181000141b9884a91"),
    (7, L.KIND_NACK, b"\x09", "b7030782091a24d746"),
    (2, L.KIND_TABLE, b"\x01\x00\x00AB", "b707020201000041421a1160f9"),
)


def test_link_vectors_both_ways():
    out = bytearray(L.MAX_FRAME)
    for seq, kind, data, hx in VECTORS:
        n = L.encode(out, seq, kind, data, 0, len(data))
        assert bytes(out[:n]) == unhex(hx), hx
        d = L.Decoder()
        got = [d.feed(b) for b in unhex(hx)]
        assert got[-1] and not any(got[:-1])
        assert d.frame[2] == seq and d.frame[3] == kind and bytes(d.frame[4:4 + d.size()]) == data


def test_link_decoder_resynchronises_and_counts_bad_frames():
    d = L.Decoder()
    good = unhex(VECTORS[0][3])
    bad = bytearray(good)
    bad[5] ^= 1
    stream = b"\x00\x55" + bytes(bad) + b"\xb7\xff" + good
    hits = [i for i, b in enumerate(stream) if d.feed(b)]
    assert hits == [len(stream) - 1] and d.bad == 2
    try:
        L.encode(bytearray(200), 0, 1, bytes(101), 0, 101)
        raise AssertionError("oversized data encoded")
    except ValueError:
        pass


def make(link=True, keys=False, plain_allowed=False):
    store = Store()
    if keys:
        KeyStore(store).provision(K1, K2)
    model = DataModel("SN", ACA, "fw", store, lambda: NOW)
    if plain_allowed:
        model.set(R.CONTROL_FLAGS, model.get(R.CONTROL_FLAGS) | (1 << R.CF_BNODE_PLAIN))
    sec = security_factory(ACA, store, model, lambda: NOW) if keys else None
    node = MeterNode(ACA, model, sec, store=store, bnode=L.ANodeLink(T.BNODE_TIMEOUT_MS) if link else None)
    return node


def frame(lsdu, disc=RB1, ecc=0, addr=None):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, addr or mac.aca_to_air(ACA), b"", disc, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


def answer(node, n):
    assert n, "no answer"
    out = bytes(node.out[:n])
    f = mac.decode(mac.Frame(), out, n)
    return bytes(out[f.data:f.data + f.data_len]), f.ecc, bytes(out[f.addr:f.addr + 6])


def now_answer(node, lsdu, disc=RB1, ecc=0):
    req = frame(lsdu, disc, ecc)
    return answer(node, node.on_phy(req, len(req), 1000))


def relay(node, lsdu, device, disc=RB1, ecc=0, addr=None, t=1000):
    """Send lsdu, let the B-Node device answer over the link; the A-Node's answer."""
    req = frame(lsdu, disc, ecc, addr)
    assert node.on_phy(req, len(req), t) == 0  # the answer waits for the B-Node
    link = node.bnode.link
    n = link.to_send()
    assert n and node.next_timeout(t) == T.BNODE_TIMEOUT_MS
    if device is not None:
        back = device.feed(bytes(link.tx[:n]))
        link.receive(back, len(back))
    return answer(node, node.poll(t + (5 if device is not None else T.BNODE_TIMEOUT_MS)))


def test_plain_setic_refused_unless_allowed():
    node = make()
    data, _e, _a = now_answer(node, b"\x28HELLO")
    assert data == b"\xff\x02\x00\x00"  # NACK A-Node, access denied
    assert node.bnode.link.to_send() == 0


def test_plain_setic_reaches_the_b_node_and_is_acknowledged():
    node, dev = make(plain_allowed=True), L.BNodeDevice()
    data, ecc, _ = relay(node, b"\x28HELLO", dev)
    assert data == bytes((A.ACK_B, 0, 1, L.KIND_SET)) and ecc == 0
    assert dev.received == [(L.KIND_SET, b"HELLO")]  # no KIND_AUTH: the B-Node sees it plain
    data, _e, _a = relay(node, b"\x2a\x01\x00\x05ABC", dev)
    assert data == bytes((A.ACK_B, 0, 2, L.KIND_TABLE)) and dev.received[1] == (L.KIND_TABLE, b"\x01\x00\x05ABC")


def test_nack_b_node_when_nobody_answers_it_refuses_or_there_is_no_link():
    node = make(plain_allowed=True)
    data, _e, _a = relay(node, b"\x28HI", None)
    assert data == bytes((A.NACK_B, A.BNACK_NO_ANSWER, 0, 0))
    data, _e, _a = relay(node, b"\x28HI", L.BNodeDevice(refuse=9))
    assert data == bytes((A.NACK_B, A.BNACK_REFUSED, 9, 0))
    # a corrupted answer is not an answer: the wait runs out
    req = frame(b"\x28HI")
    node.on_phy(req, len(req), 0)
    n = node.bnode.link.to_send()
    back = bytearray(L.BNodeDevice().feed(bytes(node.bnode.link.tx[:n])))
    back[6] ^= 0x20
    node.bnode.link.receive(back, len(back))
    assert node.poll(10) == 0
    data, _e, _a = answer(node, node.poll(T.BNODE_TIMEOUT_MS))
    assert data[:2] == bytes((A.NACK_B, A.BNACK_NO_ANSWER)) and node.bnode.link.rx.bad == 1
    bare = make(link=False, plain_allowed=True)
    data, _e, _a = now_answer(bare, b"\x28HI")
    assert data == bytes((A.NACK_B, A.BNACK_NO_BNODE, 0, 0))


def test_bad_input_is_refused_before_anything_is_sent():
    node = make(plain_allowed=True)
    cases = (
        (b"\x28", RB1, A.NACK_BAD_LENGTH),  # truncated SETIC
        (b"\x28" + bytes(L.MAX_DATA + 1), RB1, A.NACK_BAD_LENGTH),  # oversized
        (b"\x2a\x01\x00\x00", RB1, A.NACK_BAD_LENGTH),  # WRITETABIC without entries
        (b"\x28HI", RA7, A.NACK_DISCIPLINE),  # an RA discipline
    )
    for lsdu, disc, code in cases:
        data, _e, _a = now_answer(node, lsdu, disc)
        assert data[:2] == bytes((A.NACK_A, code)), (lsdu, data)
    assert node.bnode.link.stats["sent"] == 0 and node.stats["faults"] == 0
    # broadcast: no answer and nothing for the B-Node
    req = frame(b"\x28HI", RB1, 0, mac.BROADCAST)
    assert node.on_phy(req, len(req), 0) == 0 and node.bnode.link.to_send() == 0
    # one exchange at a time
    req = frame(b"\x28HI")
    assert node.on_phy(req, len(req), 0) == 0
    data, _e, _a = now_answer(node, b"\x28HO")
    assert data[:2] == bytes((A.NACK_A, A.NACK_BUSY))
    # the optical port (serve_lsdu) does not relay
    size, _ecc, buf = node.serve_lsdu(b"\x28HI", 0, 3, 0, 128)
    assert bytes(buf[:2]) == bytes((A.NACK_A, A.NACK_DISCIPLINE))


def test_plain_budget_limits_a_stranger():
    node, dev = make(plain_allowed=True), L.BNodeDevice()
    ok = 0
    for i in range(T.BNODE_PLAIN_BURST + 3):
        data, _e, _a = relay(node, b"\x28X", dev, t=1000 * i) if ok < T.BNODE_PLAIN_BURST else now_answer(node, b"\x28X")
        ok += data[0] == A.ACK_B
        if ok == T.BNODE_PLAIN_BURST and data[0] != A.ACK_B:
            assert data[:2] == bytes((A.NACK_A, A.NACK_BUSY))
    assert len(dev.received) == T.BNODE_PLAIN_BURST


def test_authenticated_setic_with_the_write_key():
    node, dev = make(keys=True), L.BNodeDevice()
    req = S.seal_msg(KEYS, ACA, S.auth_attr(A.SETIC_REQ), b"PRICE 0.21", 1, S.ECC_ECB_WRITE, NOW)
    data, ecc, _ = relay(node, req, dev, RB3, S.ECC_ECB_WRITE)
    assert data[0] == A.ACK_B_AUTH and ecc == S.ECC_ECB_WRITE and len(data) <= 50
    plain, when = S.open_msg(KEYS, ACA, data, 1, ecc)
    assert plain == bytes((0, 1, L.KIND_SET | L.KIND_AUTH)) and when == NOW
    assert dev.received == [(L.KIND_SET | L.KIND_AUTH, b"PRICE 0.21")]
    # the same request again: its cached answer, the B-Node not bothered twice
    again = frame(req, RB3, S.ECC_ECB_WRITE)
    got, _e, _a = answer(node, node.on_phy(again, len(again), 2000))
    assert got == data and len(dev.received) == 1


def test_authenticated_nack_b_node_and_refusals():
    node = make(keys=True)
    req = S.seal_msg(KEYS, ACA, S.auth_attr(A.SETIC_REQ), b"X", 1, S.ECC_ECB_WRITE, NOW)
    data, ecc, _ = relay(node, req, None, RB3, S.ECC_ECB_WRITE)
    assert data[0] == A.NACK_B_AUTH and data[1] == A.BNACK_NO_ANSWER and ecc == S.ECC_CHALLENGE
    _d, carried = S.open_(KEYS, ACA, data, None, S.ECC_CHALLENGE, S.etm(req))
    assert carried == 1
    # the read key never writes to the B-Node
    req = S.seal_msg(KEYS, ACA, S.auth_attr(A.SETIC_REQ), b"X", 2, S.ECC_ECB_READ, NOW)
    data, _e, _a = now_answer(node, req, RB3, S.ECC_ECB_READ)
    assert data[0] == A.NACK_A_AUTH and data[1] == A.NACK_ACCESS_DENIED
    # an authenticated ACK does not fit RB1 (20 bytes): refused before sending
    req = S.seal_msg(KEYS, ACA, S.auth_attr(A.SETIC_REQ), b"X", 3, S.ECC_ECB_WRITE, NOW)
    data, _e, _a = now_answer(node, req, RB1, S.ECC_ECB_WRITE)
    assert data[0] == A.NACK_A_AUTH and data[1] == A.NACK_TOO_LONG and len(data) <= 20
    assert node.bnode.link.stats["sent"] == 1


def test_rb_response_sizes():
    # RB1 20, RB2 30, RB3 50 bytes of answer LSDU (the public sizes)
    assert [mac.DISCIPLINES[d][:2] for d in (RB1, RB2, RB3)] == [(mac.CLASS_RB, 20), (mac.CLASS_RB, 30),
                                                                  (mac.CLASS_RB, 50)]
    node, dev = make(plain_allowed=True), L.BNodeDevice()
    for disc in (RB1, RB2, RB3):
        data, _e, _a = relay(node, b"\x28Z", dev, disc)
        assert data[0] == A.ACK_B and len(data) == 4
    # a reply longer than the discipline leaves is cut (plain RB1: 19 bytes after the ATTR)
    node.bnode._room = 2
    req = frame(b"\x28Z")
    node.on_phy(req, len(req), 0)
    n = node.bnode.link.to_send()
    node.bnode._room = 2
    back = dev.feed(bytes(node.bnode.link.tx[:n]))
    node.bnode.link.receive(back, len(back))
    data, _e, _a = answer(node, node.poll(1))
    assert data == bytes((A.ACK_B, 0))


def test_b_node_update_by_sca_answers_from_the_sca():
    node, dev = make(plain_allowed=True), L.BNodeDevice()
    node.nm.sca = SCA
    data, _e, addr = relay(node, b"\x28SCA", dev, addr=SCA)
    assert data[0] == A.ACK_B and addr == SCA


def test_modem_task_writes_to_the_b_node_uart_and_answers_when_it_replies():
    # the firmware's modem task (ModemPort) with a B-Node UART, as meter.runtime.firmware wires it
    import modemkit as K

    node = make(plain_allowed=True)
    port, now = K.ready_port(node)
    port.bnode_uart = K.Uart()
    K.feed(port, K.indication(frame(b"\x28HI")), now)
    K.feed(port, b"", now + 1)
    assert port.board.uart.take() == K.ACK  # the indication acknowledged, no answer yet
    sent = port.bnode_uart.take()
    dev = L.BNodeDevice()
    back = dev.feed(sent)
    assert dev.received == [(L.KIND_SET, b"HI")] and node.next_timeout(now + 5) == T.BNODE_TIMEOUT_MS - 5
    node.bnode.link.receive(back, len(back))
    assert node.next_timeout(now + 5) == 0
    K.feed(port, b"", now + 5)  # what the B-Node task does once it read the answer
    K.feed(port, b"", now + 6)
    K.feed(port, K.STATUS_FREE, now + 7)
    got = port.board.uart.take()
    other = make(plain_allowed=True)  # the same answer by the copying path
    relay(other, b"\x28HI", L.BNodeDevice(), t=now)
    n = len(got) - 6  # STX LEN CMD options | the frame | CS CS
    assert got == K.phy_request(bytes(other.out[:n]))
