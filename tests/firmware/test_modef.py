# Mode F of the optical port: the frame codec and reader, the session on a
# virtual clock, the same services and security rules as over the PLC
# (through MeterNode.serve_lsdu), local provisioning and the lockout.
from meter import attrs as A
from meter.optical import iec62056 as I
from meter.app import keychange as KC
from meter.link import mac
from meter.optical import modef as F
from meter.optical import port as optical
from meter.model import registers as R
from meter.app import security as S
from meter import timers as T
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.storage import Store
from fwtest import Rng, unhex
from test_iec62056 import Clock

ACA = unhex("A8040A1E8901")
K1 = bytes(range(16))
K2 = unhex("AA55" * 8)
KEYS = S.Keys(K1, K2)
NOW = 1700000000


def meter(provision=True):
    store = Store()
    if provision:
        KeyStore(store).provision(K1, K2)
    model = DataModel("SN-7", ACA, "fw", store, lambda: NOW)
    node = MeterNode(ACA, model, security_factory(ACA, store, model, lambda: NOW))
    return node, model, store


def frame(dsap, ecc, lsdu, from_meter=False):
    out = bytearray(F.MAX_FRAME)
    n = F.encode(out, dsap, ecc, lsdu, from_meter)
    return bytes(out[:n])


def answers(data):
    """LSDU frames in a byte string from the meter: [(dsap, ecc, lsdu)]."""
    r = F.FrameReader()
    r.feed(data, 0)
    out = []
    f = r.next_frame()
    while f is not None:
        assert f[2] & F.CTL_METER
        out.append((f[3] >> 4, f[3] & 0x0F, f[4:4 + f[1] - 2]))
        f = r.next_frame()
    assert r.n == 0 and r.bad == 0
    return out


class Session:
    """A mode F session over a meter node, driven directly."""

    def __init__(self, node=None, store=None, lockout=None):
        if node is None:
            node, _model, store = meter()
        self.node = node
        self.settings = I.Settings(store)
        self.services = F.Services(node, self.settings, lambda: NOW)
        self.lockout = lockout or I.Lockout()
        self.s = F.ModeFSession(self.services, self.lockout)
        self.t = 0
        self.s.start(self.t)

    def ask(self, dsap, ecc, lsdu):
        self.t += 10
        self.s.receive(frame(dsap, ecc, lsdu), self.t)
        got = answers(self.s.data_to_send() or b"")
        assert len(got) == 1, got
        assert got[0][0] == dsap
        return got[0][2], got[0][1]


def read_req(regs, mon, ecc=S.ECC_CTR_READ, keys=KEYS, attr=A.READ_REQ):
    apdu = b"".join(bytes((r >> 8, r & 0xFF)) for r in regs)
    return S.seal(keys, ACA, S.auth_attr(attr), apdu, mon, ecc, NOW)


def write_req(items, mon, ecc=S.ECC_ECB_WRITE, keys=KEYS):
    apdu = b"".join(bytes((i >> 8, i & 0xFF)) + v for i, v in items)
    return S.seal_msg(keys, ACA, S.auth_attr(A.WRITE_REQ), apdu, mon, ecc, NOW)


def key_change_req(data, mon, keys):
    return S.seal_msg(keys, ACA, S.auth_attr(A.KEY_CHANGE), data, mon, S.ECC_ECB_WRITE, NOW)


def test_frame_bytes():
    f = frame(1, 0, b"\x02\x00\x3f")
    assert f[:6] == unhex("68 05 00 10 02 00") and len(f) == 11
    assert F.frame_ok(f, len(f))
    import binascii

    assert int.from_bytes(f[-4:], "little") == binascii.crc32(f[1:-4]) & 0xFFFFFFFF
    assert frame(3, 5, b"\x04", True)[2:4] == b"\x80\x35"


def test_reader_byte_by_byte_with_garbage_and_bad_checks():
    good = frame(1, 0, b"\x02\x00\x3f")
    bad = bytearray(good)
    bad[5] ^= 1
    stream = b"\x00\xff\x68\x01" + bytes(bad) + b"xyz" + good + b"\x68\xff" + good
    r = F.FrameReader()
    got = []
    for b in stream:
        r.feed(bytes((b,)), 0)
        f = r.next_frame()
        while f is not None:
            got.append(f)
            f = r.next_frame()
    assert got == [good, good]
    assert r.bad == 3 and r.n == 0


def test_reader_finds_the_break_message_outside_frames():
    r = F.FrameReader()
    r.feed(b"\x01B0", 0)
    assert r.next_frame() is None and r.breaks == 0
    r.feed(b"\x03q", 0)
    assert r.next_frame() is None and r.breaks == 1
    inside = frame(1, 0, b"\x02" + F.BREAK)  # inside a frame it is data
    r.feed(inside, 0)
    assert r.next_frame() == inside and r.breaks == 1


def test_plain_read_and_write_as_over_the_plc():
    x = Session()
    ans, ecc = x.ask(1, 0, b"\x02\x00\x3f\x00\x10")
    assert ans[0] == A.READ_RESP and ans[9:].rstrip(b"\x00") == b"SN-7" and ecc == 0
    label = b"OPTICAL" + bytes(9)
    ans, _ = x.ask(1, 0, bytes((A.WRITE_REQ, 0x00, 0x13)) + label)
    assert ans == bytes((A.ACK_A,))
    ans, _ = x.ask(1, 0, b"\x02\x00\x13")
    assert ans[1:] == label
    ans, _ = x.ask(1, 0, b"\x04\x00\x20\x00\x00\x00\x01")  # clock: write key only
    assert ans == bytes((A.NACK_A, A.NACK_ACCESS_DENIED, 0x00, 0x20))
    ans, _ = x.ask(0, 0, b"\x02\x00\x3f")  # the PLC's DSAP is not mode F's
    assert ans[:2] == bytes((A.NACK_A, A.NACK_UNSUPPORTED))


def test_authenticated_read_and_write_share_lmon_with_the_plc():
    x = Session()
    req = read_req([R.LMON], 1)
    ans, ecc = x.ask(1, S.ECC_CTR_READ, req)
    data, _ = S.open_(KEYS, ACA, ans, 1, ecc)
    assert ans[0] == S.auth_attr(A.READ_RESP) and data == (1).to_bytes(8, "big")
    assert x.lockout.fails == 0
    req = write_req([(R.CLOCK, (NOW + 5).to_bytes(4, "big"))], 2)
    ans, ecc = x.ask(1, S.ECC_ECB_WRITE, req)
    assert S.open_msg(KEYS, ACA, ans, 2, ecc)[0] == b""  # ACK A-Node AUTH, verified
    assert ans[0] == A.ACK_A_AUTH
    ans, _ = x.ask(1, S.ECC_ECB_WRITE, req)  # a repeat gets the cached answer, nothing else
    assert x.node.secure.stats["repeats"] == 1
    # the PLC side continues from LMON 2
    out = bytearray(mac.MAX_FRAME)
    lsdu = read_req([R.STATUS_WORD], 3)
    n = mac.encode(out, mac.aca_to_air(ACA), b"", 8, False, 0, False, 0, S.ECC_CTR_READ, lsdu)
    assert x.node.on_phy(out, n) and x.node.secure.lmon.value == 3


def test_failed_authentications_lock_and_success_resets():
    x = Session()
    stale = read_req([R.STATUS_WORD], 1)
    x.ask(1, S.ECC_CTR_READ, stale)  # accepted: LMON 1
    for i in range(2):  # the same MON again, with other content: NACK-10
        ans, _ = x.ask(1, S.ECC_CTR_READ, read_req([R.SERIAL], 1))
        assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == S.NACK_AUTH
    assert x.lockout.fails == 2 and x.s.done is None
    x.ask(1, S.ECC_CTR_READ, read_req([R.SERIAL], 2))  # success: the count starts again
    assert x.lockout.fails == 0
    forged = bytearray(read_req([R.SERIAL], 3))
    forged[-1] ^= 1
    for i in range(3):
        x.t += T.AUTH_NACK_REFILL_MS  # slower than the NACK-10 rate limit: each one answered
        x.ask(1, S.ECC_CTR_READ, bytes(forged))
    assert x.s.done == "locked" and x.lockout.locked(x.t)
    assert x.lockout.last_ms == T.OPT_LOCK_BASE_MS


def test_keys_change_on_either_dsap_only_by_the_procedure():
    for dsap in (1, 3):
        node, _model, store = meter()
        x = Session(node, store)
        new_k1, new_k2 = bytes(range(16, 32)), bytes(range(32, 48))
        stage = KC.stage_data(K1, new_k1, new_k2)
        plain = bytes((A.KEY_CHANGE,)) + stage
        ans, _ = x.ask(dsap, 0, plain)
        assert ans[:2] == bytes((A.NACK_A, A.NACK_UNSUPPORTED))
        ans, _ = x.ask(dsap, S.ECC_CTR_WRITE, S.seal(KEYS, ACA, S.auth_attr(A.KEY_CHANGE), stage, 1, S.ECC_CTR_WRITE,
                                                     NOW))
        assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_ACCESS_DENIED  # CTR: no write rights
        ans, ecc = x.ask(dsap, S.ECC_ECB_WRITE, key_change_req(stage, 2, KEYS))
        assert ans[0] == A.ACK_A_AUTH and S.open_msg(KEYS, ACA, ans, 2, ecc)[0] == b""
        new = S.Keys(new_k1, new_k2)
        ans, _ = x.ask(1, S.ECC_CTR_READ, read_req([R.STATUS_WORD], 3, keys=new))
        assert ans[1] == S.NACK_AUTH  # staged, not in force
        activate = KC.activate_data(new_k1, new_k2)
        ans, _ = x.ask(dsap, S.ECC_ECB_WRITE, key_change_req(activate, 3, KEYS))
        assert ans[1] == A.NACK_BAD_VALUE  # sealed with the old key: no proof of the new one
        ans, ecc = x.ask(dsap, S.ECC_ECB_WRITE, key_change_req(activate, 4, new))
        assert ans[0] == A.ACK_A_AUTH and S.open_msg(new, ACA, ans, 4, ecc)[0] == b""  # under the new keys
        ans, ecc = x.ask(1, S.ECC_CTR_READ, read_req([R.KEY_CHANGES], 5, keys=new))
        assert S.open_(new, ACA, ans, 5, ecc)[0] == b"\x00\x01"
        assert KeyStore(store).keys() is not None and store.get("keys")[0:32] == new_k1 + new_k2


def test_local_optical_parameters():
    node, _model, store = meter()
    x = Session(node, store)
    addr = b"12345678" + bytes(8)
    ans, ecc = x.ask(3, S.ECC_ECB_WRITE, write_req([(F.ITEM_OPT_BAUD, b"\x03"), (F.ITEM_OPT_ADDRESS, addr)], 1))
    assert ans[0] == A.ACK_A_AUTH
    assert I.Settings(store).max_baud == 3 and I.Settings(store).address == b"12345678"
    ans, ecc = x.ask(3, S.ECC_CTR_READ, read_req([F.ITEM_OPT_BAUD, F.ITEM_OPT_ADDRESS], 2))
    data, _ = S.open_(KEYS, ACA, ans, 2, ecc)
    assert data == b"\x03" + addr
    for bad in ([(F.ITEM_OPT_BAUD, b"\x07")], [(F.ITEM_OPT_ADDRESS, b"/?!" + bytes(13))],
                [(F.ITEM_OPT_ADDRESS, b"A\x00B" + bytes(13))]):
        ans, _ = x.ask(3, S.ECC_ECB_WRITE, write_req(bad, x.node.secure.lmon.value + 1))
        assert ans[1] == A.NACK_BAD_VALUE, bad
    assert I.Settings(store).max_baud == 3


def test_session_ends_on_break_idle_and_survives_garbage():
    x = Session()
    rng = Rng(3)
    for _ in range(30):
        x.t += 50
        x.s.receive(rng.bytes(rng.below(60)), x.t)
        x.s.poll(x.t)
    x.t += T.OPT_F_INTERCHAR_MS + 1
    x.s.poll(x.t)
    x.s.data_to_send()
    if x.s.done is None:  # random bytes seldom make a frame; answers are fine
        ans, _ = x.ask(1, 0, b"\x02\x00\x3f")
        assert ans[0] == A.READ_RESP
        x.s.receive(b"junk" + F.BREAK, x.t)
        assert x.s.done == "break"
    y = Session()
    y.s.poll(T.OPT_F_IDLE_MS - 1)
    assert y.s.done is None and y.s.next_timeout(T.OPT_F_IDLE_MS - 1) == 1
    y.s.poll(T.OPT_F_IDLE_MS)
    assert y.s.done == "idle"


def test_a_false_start_does_not_hide_the_next_frame_for_long():
    x = Session()
    x.t += 10
    x.s.receive(b"\x68\x80\x00" + frame(1, 0, b"\x02\x00\x3f"), x.t)  # SOF, LEN 128: waits for more
    assert x.s.data_to_send() is None
    x.t += T.OPT_F_INTERCHAR_MS + 1
    x.s.poll(x.t)
    got = answers(x.s.data_to_send())
    assert got[0][2][0] == A.READ_RESP


def test_echo_of_the_meters_own_frames_is_ignored():
    x = Session()
    x.s.receive(frame(1, 0, b"\x02\x00\x3f", from_meter=True), 5)
    assert x.s.data_to_send() is None and x.s.stats["echoes"] == 1


def test_sign_on_to_mode_f_and_back():
    node, model, store = meter()
    p = optical.build(node, model, store, lambda: NOW)
    c = Clock(p)
    c.feed(b"/?!\r\n")
    c.run(800)  # the identification takes 0.7 s at 300 Bd
    assert c.sent == [(300, True, I.identification())]
    c.feed(b"\x06F4F\r\n")  # mode F at 4800 Bd
    assert (p.baud, p.seven_e1, p.state) == (4800, False, I.SESSION)
    c.feed(frame(1, 0, b"\x02\x00\x3f"))
    baud, seven, out = c.sent[-1]
    assert (baud, seven) == (4800, False) and answers(out)[0][2][0] == A.READ_RESP
    c.feed(F.BREAK)
    assert p.state == I.DRAIN
    c.run(100)
    assert (p.state, p.baud, p.seven_e1) == (I.IDLE, 300, True)
    c.feed(b"/?!\r\n")  # and a new sign-on works
    c.run(800)
    c.feed(b"\x06F5F\r\n")
    c.run(T.OPT_F_IDLE_MS + 100)
    assert p.state == I.IDLE and p.stats["sessions_f"] == 2


def test_locked_port_is_silent_until_the_lock_ends():
    node, model, store = meter()
    p = optical.build(node, model, store, lambda: NOW)
    c = Clock(p)
    c.feed(b"/?!\r\n")
    c.run(800)
    c.feed(b"\x06F5F\r\n")
    forged = bytearray(read_req([R.SERIAL], 1))
    forged[-1] ^= 1
    for _ in range(T.OPT_LOCK_AFTER):
        c.feed(frame(1, S.ECC_CTR_READ, bytes(forged)))
    assert len(c.sent) == 1 + T.OPT_LOCK_AFTER  # every failure answered NACK-10
    locked_at = c.t
    c.run(300)
    assert p.state == I.LOCKED and p.baud == 300
    n = len(c.sent)
    c.feed(b"/?!\r\n")
    c.run(locked_at + T.OPT_LOCK_BASE_MS - 50 - c.t)
    assert len(c.sent) == n and p.state == I.LOCKED
    c.run(100)
    assert p.state == I.IDLE
    c.feed(b"/?!\r\n")
    c.run(100)
    assert c.sent[-1][2] == I.identification()
