# Frames that used to stop the meter or slip past its rules, through the whole
# node on both interpreters: each must cost at most its own frame, get the
# answer the rules say, and leave the meter serving.
import struct

from meter import attrs as A
from meter.app import lmon as L
from meter.link import mac
from meter.model import registers as R
from meter.app import security as S
from meter.app import tables as TB
from meter import timers as T
from meterkit import Sim
from test_auth import ACA, KEYS, NOW, exchange, frame, make, read_req
from test_tables import Peer, frame as sim_frame


def plain_answer(node, lsdu, dest=None, disc=8):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, dest or mac.aca_to_air(ACA), b"", disc, False, 0, False, 0, 0, lsdu)
    n = node.on_phy(out, n)
    if not n:
        return b""
    f = mac.Frame()
    ans = bytes(node.out[:n])
    mac.decode(f, ans, n)
    return ans[f.data:f.data + f.data_len]


def still_serves(node):
    ans = plain_answer(node, bytes((A.READ_REQ, R.SERIAL >> 8, R.SERIAL & 0xFF)))
    assert ans[0] == A.READ_RESP and ans[1:3] == b"SN", ans


def test_answer_shaped_frames_from_strangers_are_refused_not_fatal():
    node, _ = make()
    shapes = [bytes((245,)) + bytes(17), bytes((239,)) + bytes(17), bytes((113,)) + bytes(18)]
    shapes += [bytes((a,)) + bytes(20) for a in range(190, 239)]
    shapes += [bytes((a,)) + bytes(20) for a in range(240, 247, 2)]
    for lsdu in shapes:
        assert plain_answer(node, lsdu, mac.BROADCAST, 3) == b""  # broadcast: never an answer
        ans = plain_answer(node, lsdu)
        assert ans[0:2] == bytes((A.NACK_A, A.NACK_UNSUPPORTED)), (lsdu[0], ans)
    assert node.stats["faults"] == 0 and node.secure.lmon.value == 0
    still_serves(node)


def test_ecb_request_not_block_aligned_draws_nack10():
    node, _ = make()
    req = read_req([R.STATUS_WORD], 1, S.ECC_CTR_READ)  # 19 bytes: not ECB-shaped
    ans, ecc = exchange(node, req, S.ECC_ECB_READ)
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == S.NACK_AUTH and node.stats["faults"] == 0


def test_ecb_read_of_any_length_is_padded_both_ways():
    node, _ = make()
    for mon, regs in ((1, [R.STATUS_WORD]), (2, [R.SERIAL, R.LMON]), (3, [R.SERIAL] * 5)):
        apdu = b"".join(struct.pack(">H", r) for r in regs)
        req = S.seal_msg(KEYS, ACA, S.auth_attr(A.READ_REQ), apdu, mon, S.ECC_ECB_READ, NOW)
        ans, ecc = exchange(node, req, S.ECC_ECB_READ)
        assert ans[0] == S.auth_attr(A.READ_RESP) and ecc == S.ECC_ECB_READ
        data, _ = S.open_msg(KEYS, ACA, ans, mon, ecc)
        assert len(data) == sum(R.BY_ID[r][R.R_SIZE] for r in regs)
    bad = bytes(15) + b"\x01"  # DATA with no 80 00.. padding, but block-aligned and sealed
    req = S.seal(KEYS, ACA, S.auth_attr(A.READ_REQ), bad, 4, S.ECC_ECB_READ, NOW)
    ans, _ = exchange(node, req, S.ECC_ECB_READ)
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_BAD_LENGTH


def test_selective_readtab_in_a_small_discipline():
    sim = Sim(keys=True)
    sim.run(3600)
    before = len(sim.node.app.resp)
    for room in (0, 4, 8, 12):
        ans = sim.request(A.READTAB_SEL_REQ, struct.pack(">HIBB", R.EVENT_LOG, 0, 5, 0), room=room)
        assert ans[0] == A.NACK_A and ans[1] == A.NACK_TOO_LONG, (room, ans)
    assert len(sim.node.app.resp) == before
    ans = sim.request(A.READTAB_SEL_REQ, struct.pack(">HIBB", R.EVENT_LOG, 0, 1, 0))
    assert ans[0] == A.READTAB_SEL_RESP


def test_lmon_at_its_maximum_refuses_authenticated_serves_plain():
    node, store = make()
    node.secure.lmon.set(L.LMON_MAX)
    for mon in (0, 1, L.LMON_MAX):
        ans, ecc = exchange(node, read_req([R.STATUS_WORD], mon), S.ECC_CTR_READ)
        assert ans[0:2] == bytes((A.NACK_A, A.NACK_LMON_EXHAUSTED)) and ecc == 0
    again, _ = make(store, provision=False)  # and on every boot
    ans, _ = exchange(again, read_req([R.STATUS_WORD], 5), S.ECC_CTR_READ)
    assert ans[1] == A.NACK_LMON_EXHAUSTED
    assert node.stats["faults"] == again.stats["faults"] == 0
    still_serves(again)


def test_clock_outside_its_range_is_refused():
    sim = Sim(keys=True)
    for t in (0, 946684799, 4102444800, 0xFFFFFFFF):
        ans = sim.write(R.CLOCK, struct.pack(">I", t))
        assert ans[0] == A.NACK_A and ans[1] == A.NACK_BAD_VALUE, t
        assert sim.command(TB.CMD_SYNC_CLOCK, struct.pack(">I", t))[1] == A.NACK_BAD_VALUE
    assert sim.write(R.CLOCK, struct.pack(">I", 1800000000))[0] == A.ACK_A


def test_nack10_and_challenges_are_rate_limited():
    node, _ = make()
    forged = bytearray(read_req([R.STATUS_WORD], 1))
    forged[-1] ^= 1
    answered = 0
    for i in range(100):
        req = frame(bytes(forged), 1)
        answered += node.on_phy(req, len(req), 1000 + i) > 0  # 100 within 0.1 s
    assert answered == T.AUTH_NACK_BURST
    assert node.secure.stats["auth_failures"] == 100 and node.secure.stats["silenced"] == 100 - answered
    chl = frame(bytes((A.CHL_REQ, 0, 0)) + bytes(16), 0)
    assert node.on_phy(chl, len(chl), 1100) == 0  # the same budget
    assert node.on_phy(chl, len(chl), 1100 + T.AUTH_NACK_REFILL_MS) > 0
    req = frame(read_req([R.STATUS_WORD], 1), 1)  # a valid request is served at once
    assert node.on_phy(req, len(req), 1100 + T.AUTH_NACK_REFILL_MS)


def test_plain_broadcast_writes_cannot_starve_authenticated_ones():
    sim = Sim(keys=True)
    label = struct.pack(">H", R.POINT_LABEL) + b"X" * 16
    busy = 0
    for i in range(T.WRITE_BURST + 5):
        ans = sim.request(A.WRITE_REQ, label, grant=R.ACC_PLAIN)
        busy += ans[1] == A.NACK_BUSY if ans[0] == A.NACK_A else 0
    assert busy == T.WRITE_BURST + 5 - T.PLAIN_WRITE_BURST
    peer = Peer(sim)
    assert peer.exchange(A.WRITE_REQ, label, S.ECC_ECB_WRITE)[0] == A.ACK_A


def test_a_fault_costs_one_frame_and_is_counted():
    node, _ = make()

    def broken():
        raise RuntimeError("sensor gone")

    node.app.model.provide(R.OPERATING_TIME, broken)
    ans = plain_answer(node, bytes((A.READ_REQ, R.OPERATING_TIME >> 8, R.OPERATING_TIME & 0xFF)))
    assert ans == b"" and node.stats["faults"] == 1
    ans = plain_answer(node, bytes((A.READ_REQ, R.DIAGNOSTICS >> 8, R.DIAGNOSTICS & 0xFF)))
    assert struct.unpack(">IHH", ans[1:]) == (1, 0, 0)
    still_serves(node)


def test_failed_multi_register_write_leaves_every_register_as_it_was():
    sim = Sim(keys=True)
    old_label = sim.reg(R.POINT_LABEL)
    items = struct.pack(">H", R.POINT_LABEL) + b"NEW" + bytes(13) + struct.pack(">H", R.READING_MODE) + b"\x07"
    assert sim.request(A.WRITE_REQ, items)[1] == A.NACK_BAD_VALUE
    assert sim.reg(R.POINT_LABEL) == old_label

    def broken(raw):
        raise RuntimeError("flash driver")

    owner = sim.model.owner(R.READING_MODE)
    owner.reg_check = lambda reg, raw: True
    owner.written = broken
    before = sim.node.stats["faults"]
    items = items[:-1] + b"\x01"
    req = S.seal_msg(Peer(sim).keys, sim.aca, S.auth_attr(A.WRITE_REQ), items, 1, S.ECC_ECB_WRITE, sim.now())
    f = sim_frame(req, S.ECC_ECB_WRITE)
    assert sim.node.on_phy(f, len(f)) == 0  # the fault: no answer
    assert sim.node.stats["faults"] == before + 1 and sim.reg(R.POINT_LABEL) == old_label
