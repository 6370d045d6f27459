# The meter's receive rules for authenticated messages, through the whole
# node (frame in, frame out). Requests are built with the codec, whose bytes
# are checked against the reference vectors and independent oracles elsewhere.
from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.app import security as S
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.storage import Store
from fwtest import unhex

ACA = unhex("A8040A1E8984")
K1 = bytes(range(16))
K2 = unhex("AA55" * 8)
KEYS = S.Keys(K1, K2)
NOW = 1700000000


def make(store=None, provision=True):
    store = store or Store()
    if provision:
        KeyStore(store).provision(K1, K2)
    model = DataModel("SN", ACA, "fw", store, lambda: NOW)
    return MeterNode(ACA, model, security_factory(ACA, store, model, lambda: NOW)), store


def frame(lsdu, ecc):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(ACA), b"", 8, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


def exchange(node, lsdu, ecc):
    req = frame(lsdu, ecc)
    n = node.on_phy(req, len(req))
    assert n, "no answer"
    f = mac.Frame()
    out = bytes(node.out[:n])
    mac.decode(f, out, n)
    return bytes(out[f.data:f.data + f.data_len]), f.ecc


def read_req(regs, mon, ecc=S.ECC_CTR_READ):
    apdu = b"".join(bytes((r >> 8, r & 0xFF)) for r in regs)
    return S.seal(KEYS, ACA, S.auth_attr(A.READ_REQ), apdu, mon, ecc, NOW)


def assert_nack10(ans, lmon, req):
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == S.NACK_AUTH
    data, carried = S.open_(KEYS, ACA, ans, None, S.ECC_CHALLENGE, S.etm(req))
    assert carried == lmon


def test_authenticated_read_then_lmon_advances():
    node, _ = make()
    for mon in (1, 2, 3):
        req = read_req([R.STATUS_WORD, R.LMON], mon)
        ans, ecc = exchange(node, req, S.ECC_CTR_READ)
        assert ans[0] == S.auth_attr(A.READ_RESP) and ecc == S.ECC_CTR_READ
        data, when = S.open_(KEYS, ACA, ans, mon, ecc)
        assert data[8:] == bytes(7) + bytes((mon,)) and when == NOW


def test_identical_repeat_gets_the_cached_answer_unprocessed():
    node, _ = make()
    req = read_req([R.LMON], 1)
    first, _ = exchange(node, req, 1)
    again, _ = exchange(node, req, 1)
    assert again == first
    assert node.secure.lmon.value == 1 and node.secure.stats["repeats"] == 1


def test_stale_bitflip_and_forged_tmac_get_nack10_with_lmon():
    node, _ = make()
    exchange(node, read_req([R.STATUS_WORD], 1), 1)
    stale = read_req([R.STATUS_WORD], 1)[:-1] + b"\x00"  # not identical, old MON
    ans, ecc = exchange(node, stale, 1)
    assert ecc == S.ECC_CHALLENGE
    assert_nack10(ans, 1, stale)
    good = read_req([R.STATUS_WORD], 2)
    flipped = bytearray(good)
    flipped[3] ^= 0x01
    assert_nack10(exchange(node, bytes(flipped), 1)[0], 1, flipped)
    forged = good[:-8] + bytes(8)
    assert_nack10(exchange(node, forged, 1)[0], 1, forged)
    assert node.secure.stats["auth_failures"] == 3
    ans, _ = exchange(node, good, 1)  # the genuine request still passes
    assert ans[0] == S.auth_attr(A.READ_RESP)


def test_challenge_reports_lmon():
    node, _ = make()
    exchange(node, read_req([R.STATUS_WORD], 1), 1)
    n = bytes(range(16))
    ans, ecc = exchange(node, bytes((A.CHL_REQ, 0, 0)) + n, 0)
    assert ans[0] == A.CHL_RESP and ecc == S.ECC_CHALLENGE
    _t, lmon = S.open_(KEYS, ACA, ans, None, ecc, n)
    assert lmon == 1


def test_write_needs_the_write_key():
    node, _ = make()
    clock = bytes((R.CLOCK >> 8, R.CLOCK & 0xFF)) + (NOW + 60).to_bytes(4, "big")
    req = S.seal(KEYS, ACA, S.auth_attr(A.WRITE_REQ), clock, 1, S.ECC_CTR_READ, NOW)
    ans, _ = exchange(node, req, S.ECC_CTR_READ)
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_ACCESS_DENIED
    req = S.seal(KEYS, ACA, S.auth_attr(A.WRITE_REQ), clock, 2, S.ECC_CTR_WRITE, NOW)
    ans, ecc = exchange(node, req, S.ECC_CTR_WRITE)  # CTR: steerable (W1), so read rights only
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_ACCESS_DENIED
    req = S.seal_msg(KEYS, ACA, S.auth_attr(A.WRITE_REQ), clock, 3, S.ECC_ECB_WRITE, NOW)
    ans, ecc = exchange(node, req, S.ECC_ECB_WRITE)
    assert ans[0] == A.ACK_A_AUTH and ecc == S.ECC_ECB_WRITE
    assert S.open_msg(KEYS, ACA, ans, 3, ecc)[0] == b""


def test_a_repeated_request_gets_its_authenticated_nack_as_it_went():
    # The cached answer goes with the ECC it first went with: an authenticated NACK is ECB under
    # the read key (ECC 2) whatever the request's ECC, so a concentrator that lost the first one
    # and repeats the request can open the repeat.
    node, _ = make()
    clock = bytes((R.CLOCK >> 8, R.CLOCK & 0xFF)) + (NOW + 60).to_bytes(4, "big")
    req = S.seal(KEYS, ACA, S.auth_attr(A.WRITE_REQ), clock, 1, S.ECC_CTR_WRITE, NOW)
    first, ecc = exchange(node, req, S.ECC_CTR_WRITE)
    assert first[0] == S.ATTR_NACK_A_AUTH and ecc == S.ECC_CHALLENGE
    again, ecc = exchange(node, req, S.ECC_CTR_WRITE)
    assert again == first and ecc == S.ECC_CHALLENGE and node.secure.stats["repeats"] == 1
    assert S.open_(KEYS, ACA, again, 1, ecc, S.etm(req))[0] == bytes((A.NACK_ACCESS_DENIED,))


def test_write_key_without_encryption_only_reads():
    node, _ = make()
    label = bytes((R.POINT_LABEL >> 8, R.POINT_LABEL & 0xFF)) + b"X" * 16
    ecc = S.make_ecc(S.MODE_NONE, S.KEY_WRITE)
    ans, _ = exchange(node, S.seal(KEYS, ACA, S.auth_attr(A.WRITE_REQ), label, 1, ecc, NOW), ecc)
    assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_ACCESS_DENIED
    ans, _ = exchange(node, read_req([R.LMON], 2, ecc), ecc)
    assert ans[0] == S.auth_attr(A.READ_RESP)


def test_protected_register_refused_in_plain():
    node, _ = make()
    req = frame(bytes((A.READ_REQ, R.LMON >> 8, R.LMON & 0xFF)), 0)
    n = node.on_phy(req, len(req))
    f = mac.Frame()
    mac.decode(f, node.out, n)
    assert node.out[f.data] == A.NACK_A and node.out[f.data + 1] == A.NACK_ACCESS_DENIED


def test_unprovisioned_meter_refuses():
    node, _ = make(provision=False)
    ans, ecc = exchange(node, read_req([R.STATUS_WORD], 1), 1)
    assert ans[0] == A.NACK_A and ans[1] == A.NACK_AUTH and ecc == 0


def test_lmon_survives_reboot_and_skips_the_reserved_range():
    node, store = make()
    exchange(node, read_req([R.STATUS_WORD], 1), 1)
    again, _ = make(store, provision=False)
    old = read_req([R.STATUS_WORD], 2)
    ans, _ = exchange(again, old, 1)  # 2 was reserved before the reboot: now refused
    lmon = again.secure.lmon.value
    assert lmon >= 2
    assert_nack10(ans, lmon, old)
    ans, _ = exchange(again, read_req([R.STATUS_WORD], lmon + 1), 1)
    assert ans[0] == S.auth_attr(A.READ_RESP)
