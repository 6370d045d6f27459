# Byte fidelity with the public Meters and More application layer (one
# vendor's, summarised in the protocol reference): where the firmware follows
# it, where it differs on purpose, and the project choices next to it
# (docs/protocol.md, choices table). Vectors use the demo keys and ACA of
# test_security.py; the NACK vectors were computed with the codec, which
# test_security.py pins to the reference's vector C.
from meter import attrs as A
from meter.link import mac
from meter.link import netmgmt as NM
from meter.model import registers as R
from meter.app import security as S
from meter.app.auth import nack_etm, security_factory
from meter.app.lmon import KeyStore, LmonCounter
from meter.app.node import MeterNode
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex

ACA = unhex("A8040A1E8984")  # natural order; on air 84 89 1E 0A 04 A8
K1 = bytes(range(16))
K2 = unhex("AA55" * 8)
KEYS = S.Keys(K1, K2)
NOW = 1700000000
A_AIR = unhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")  # reference 8.2 A: CMON 6
C_AIR = unhex("F50A63F20AD7CF5924A5B34CCCCE6788E5B4")  # reference 8.2 C: NACK-10 to A, LMON 5
D_AIR = unhex("710000B6F18D047B78B54409DD6957B14D0230")  # reference 8.2 D: CHL.RESP, N = 00..0F
SHORT = unhex("66B570DB693E80A0AAA4BAA2")  # A cut to 12 bytes: no room for DATE-TIME and TMAC
NACK_SHORT = unhex("f50a4e4880b53a04691112b3815ef42a2a0a")  # over SHORT's last 8 bytes, LMON 5
NACK_8 = unhex("f50a3d27b97277740f3a68c3823f4c9fd45d")  # over A[:8], ATTR included
NACK_ZEROS = unhex("f50a5027cafd21bbf054f435b4baa389fa58")  # over 8 zero bytes
RA1 = 0x2
RC4 = 0xF
LABEL = 0x0013  # a plain-writable register of 16 bytes


def make(lmon=5, provision=True):
    store = Store()
    if provision:
        KeyStore(store).provision(K1, K2)
        LmonCounter(store).set(lmon)
    model = DataModel("SN", ACA, "fw", store, lambda: NOW)
    return MeterNode(ACA, model, security_factory(ACA, store, model, lambda: NOW))


def frame(lsdu, ecc, dsap=0, disc=8, dst=ACA, poll=False):
    out = bytearray(mac.MAX_FRAME)
    addr = mac.BROADCAST if dst is None else mac.aca_to_air(dst)
    n = mac.encode(out, addr, b"", disc, False, 0, poll, dsap, ecc, lsdu)
    return bytes(out[:n])


def answer(node, req, now=0):
    """(whole frame, LLC data, ECC) of the immediate answer to req, or None."""
    n = node.on_phy(req, len(req), now)
    if not n:
        return None
    out = bytes(node.out[:n])
    f = mac.Frame()
    mac.decode(f, out, n)
    return out, out[f.data:f.data + f.data_len], f.ecc


# ---- 1. Etm* of short requests: the request's last 8 bytes from 8 bytes on


def test_nack_etm_rule():
    assert nack_etm(A_AIR) == A_AIR[-8:] == S.etm(A_AIR)
    assert nack_etm(SHORT) == SHORT[-8:]
    assert nack_etm(A_AIR[:8]) == A_AIR[:8]  # exactly 8 bytes: the ATTR too
    for n in range(1, 8):  # fewer: 8 zero bytes (project choice)
        assert nack_etm(A_AIR[:n]) == bytes(8)
    assert nack_etm(memoryview(bytearray(SHORT))) == SHORT[-8:]


def test_nack10_to_a_short_request_covers_its_last_8_bytes():
    node = make(5)
    _f, ans, ecc = answer(node, frame(SHORT, S.ECC_CTR_READ))
    assert ans == NACK_SHORT and ecc == S.ECC_CHALLENGE
    assert ans != NACK_ZEROS  # what the firmware sent before it followed the public rule
    assert S.open_(KEYS, ACA, ans, None, S.ECC_CHALLENGE, SHORT[-8:]) == (b"\x0a", 5)
    assert node.secure.lmon.value == 5


def test_nack10_boundaries_8_and_7_bytes():
    node = make(5)
    _f, ans, _e = answer(node, frame(A_AIR[:8], S.ECC_CTR_READ))
    assert ans == NACK_8
    _f, ans, _e = answer(node, frame(A_AIR[:7], S.ECC_CTR_READ))
    assert ans == NACK_ZEROS


def test_nack10_to_a_full_request_unchanged():
    node = make(5)
    forged = bytearray(A_AIR)
    forged[1] ^= 0x01  # DATA changed, the last 8 bytes (Etm*) kept
    _f, ans, ecc = answer(node, frame(bytes(forged), S.ECC_CTR_READ))
    assert ans == C_AIR and ecc == S.ECC_CHALLENGE


# ---- 2. ECC other than 0 on non-authenticated ATTRs: not decrypted


def test_plain_request_with_ecc_gets_plain_nack_in_clear_with_ecc_0():
    for provision in (True, False):
        node = make(5, provision)
        for ecc in (1, 2, 4, 5, 6):
            _f, ans, ans_ecc = answer(node, frame(unhex("02 003F"), ecc))
            assert ans == unhex("FF 06 0000") and ans_ecc == 0, (provision, ecc)
        if provision:
            assert node.secure.lmon.value == 5  # no LMON change
    node = make(5)
    assert answer(node, frame(unhex("02 003F"), S.ECC_CTR_READ, dst=None)) is None  # broadcast: nothing


def test_plain_write_with_ecc_has_no_effect():
    node = make(5)
    before = node.app.model.get(LABEL)
    write = bytes((A.WRITE_REQ, LABEL >> 8, LABEL & 0xFF)) + b"ABCDEFGHIJKLMNOP"
    assert len(write) - 1 == 18
    for ecc in (S.ECC_ECB_WRITE, S.ECC_CTR_WRITE):
        _f, ans, ans_ecc = answer(node, frame(write, ecc))
        assert ans == unhex("FF 06 0000") and ans_ecc == 0
    assert node.app.model.get(LABEL) == before
    _f, ans, _e = answer(node, frame(write, 0))  # the same write in clear: served, plain rights
    assert ans == bytes((A.ACK_A,))


def test_serve_lsdu_answers_plain_with_ecc_0_on_any_port():
    node = make(5)
    req = bytearray(unhex("02 003F"))
    size, ecc, buf = node.serve_lsdu(req, 0, len(req), S.ECC_CTR_READ, 20)
    assert bytes(buf[:size]) == unhex("FF 06 0000") and ecc == 0
    size, ecc, buf = node.serve_lsdu(req, 0, len(req), 0, 20)
    assert buf[0] == A.READ_RESP and ecc == 0


def test_network_management_with_ecc_is_dropped():
    node = make(5)
    for ecc in (1, 2, 6):
        req = frame(unhex("5a 02 55 00 00"), ecc, dsap=2, disc=RC4, dst=None)  # ADDRESS.REQ
        assert node.on_phy(req, len(req), 0) == 0 and node.next_timeout(0) == -1
        req = frame(unhex("5c 01"), ecc, dsap=2, disc=RA1, poll=True)  # TCT_SET.REQ
        assert node.on_phy(req, len(req), 0) == 0
        req = frame(unhex("5e 02 55 00 00"), ecc, dsap=2, disc=RA1)  # REQADDR.REQ
        assert node.on_phy(req, len(req), 0) == 0 and node.next_timeout(0) == -1
    assert node.nm.tct == NM.DEFAULT_TCT and node.nm.stats["bad"] == 9
    req = frame(unhex("5c 01"), 0, dsap=2, disc=RA1, poll=True)
    _f, ans, ecc = answer(node, req)
    assert ans[0:2] == unhex("f7 00") and ecc == 0 and node.nm.tct == 1


def test_chl_req_with_ecc_takes_n_as_on_air():
    # The public meter decrypts N first, the public concentrator keeps N as it
    # sent it (encrypted): the firmware agrees with the concentrator.
    for ecc in (0, S.ECC_CTR_READ):
        node = make(5)
        _f, ans, ans_ecc = answer(node, frame(bytes((A.CHL_REQ, 0, 0)) + bytes(range(16)), ecc))
        assert ans == D_AIR and ans_ecc == S.ECC_CHALLENGE


# ---- 3. REQADDR.RESP always ECC 0


def test_reqaddr_resp_byte_exact_with_ecc_0():
    m2 = unhex("A8040A1E8902")
    relay = MeterNode(m2, DataModel("SN", m2, "fw", Store(), lambda: NOW))
    req = frame(unhex("5e 02 55 00 00"), 0, dsap=2, disc=RA1, dst=m2)
    assert relay.on_phy(req, len(req), 0)  # its own ADDRESS.REQ, ECC 0
    assert relay.out[10] == 0x20  # INF-LSAP: DSAP 2, ECC 0
    stray = frame(unhex("5b a8040a1e8901 461a32 ffffff"), S.ECC_CTR_READ, dsap=2, disc=0)
    f = mac.Frame()
    mac.decode(f, stray, len(stray))
    assert not relay.nm.collect(f)  # an encrypted record is not collected
    end = relay.next_timeout(0)
    n = relay.poll(end)
    assert bytes(relay.out[:n]) == unhex("0c02891e0a04a8018100205f00368faa6b")


# ---- 4. ADDRESS.REQ filter byte: one named switch


def _filtered(node, add, shift):
    req = frame(bytes((A.ADDRESS_REQ, 2, 0x55, add, shift)), 0, dsap=2, disc=RA1)
    return node.on_phy(req, len(req), 0) == 0


def test_address_filter_byte_is_the_least_significant():
    # least significant 0x84: (0x84 + 4) mod 8 = 0; most significant 0xA8: (0xA8 + 0) mod 8 = 0
    assert NM.FILTER_ACA_BYTE == 5
    node = make(5)
    assert not _filtered(node, 4, 3) and _filtered(node, 0, 3)
    saved = NM.FILTER_ACA_BYTE
    try:
        NM.FILTER_ACA_BYTE = 0  # the reading of one vendor's code
        node = make(5)
        assert _filtered(node, 4, 3) and not _filtered(node, 0, 3)
    finally:
        NM.FILTER_ACA_BYTE = saved


# ---- 5. Project choices next to the public layout (docs/protocol.md)


def test_plain_nack_carries_the_item():
    node = make(5)
    out, ans, _e = answer(node, frame(unhex("02 1234"), 0))
    assert ans == unhex("FF 01 1234")  # ATTR | PAR1 | item (2)


def test_uplink_address_is_the_answering_meter():
    node = make(5)
    out, ans, _e = answer(node, frame(unhex("02 003F"), 0))
    assert out[1:7] == unhex("84891E0A04A8")


def test_authenticated_answer_in_ra1_holds_4_bytes_of_attr_and_data():
    node = make(0)
    ids = (R.SECURITY_STATE, R.KEY_CHANGES)  # 1 + 2 bytes of DATA
    apdu = b"".join(bytes((r >> 8, r & 0xFF)) for r in ids)
    req = S.seal(KEYS, ACA, S.auth_attr(A.READ_REQ), apdu, 1, S.ECC_CTR_READ, NOW)
    _f, ans, ecc = answer(node, frame(req, S.ECC_CTR_READ, disc=RA1))
    assert len(ans) == 20 and ans[0] == S.auth_attr(A.READ_RESP)
    data, when = S.open_(KEYS, ACA, ans, 1, ecc)
    assert len(data) == 3
    assert when == NOW  # DATE-TIME: the meter clock, Unix seconds
    req = S.seal(KEYS, ACA, S.auth_attr(A.READ_REQ), unhex("0020"), 2, S.ECC_CTR_READ, NOW)  # 4 bytes
    _f, ans, _e = answer(node, frame(req, S.ECC_CTR_READ, disc=RA1))
    assert ans[0:2] == bytes((S.ATTR_NACK_A_AUTH, A.NACK_TOO_LONG))
