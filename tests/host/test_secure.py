# The concentrator side of the security (smitp.secure) against the worked
# vectors of the protocol reference (8.2 set 1, 8.3 set 2). Those vectors come
# from one vendor's reading of the protocol, not from the standard; see
# tests/firmware/test_security.py. The meter in the session tests is built from
# the firmware's own pieces (meter.lmon, meter.security).
import json

import pytest

from meter import security as sec
from meter.lmon import KeyStore, LmonCounter, ResponseCache
from meter.storage import Store
from smitp import secure
from smitp.secure import KeyRing, LmonMismatch, MeterSecurity, SecureError

K1 = bytes(range(16))
K2 = bytes.fromhex("AA55" * 8)
ACA = bytes.fromhex("A8040A1E8984")
N = bytes(range(16))
DT = 0x66FB3B80
READ = 2  # READ.REQ, plain ATTR
A_AIR = bytes.fromhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")
B_AIR = bytes.fromhex("67B54F5B52C5E6A0AAA4BA4107C6B52AD4E0ED6956C2068568")
C_AIR = bytes.fromhex("F50A63F20AD7CF5924A5B34CCCCE6788E5B4")
D_AIR = bytes.fromhex("710000B6F18D047B78B54409DD6957B14D0230")
V1_AIR = bytes.fromhex("667fd351742c7a4f2827dcf3f6a47559d82ed8")
V2_AIR = bytes.fromhex("677fecd14fd71c4f2827dcd011e5215afb2f0934b631de899e")


def session(lmon=5, k2=K2):
    return MeterSecurity(ACA, K1, k2, lmon)


# ---- vectors -------------------------------------------------------------------------------


def test_vector_set_1_request_and_answer():
    s = session(5)
    assert s.cmon == 6
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == A_AIR
    assert s.pending == A_AIR and s.lmon == 5  # nothing adopted before the answer
    assert s.unprotect(B_AIR) == (3, bytes(8))
    assert s.lmon == 6 and s.cmon == 7 and s.pending is None


def test_vector_set_2_from_lmon_0():
    s = MeterSecurity("a8040a1e8984", K1.hex(), K2.hex().upper())  # text forms too
    assert s.protect(READ, bytes.fromhex("003f"), sec.ECC_CTR_READ, DT) == V1_AIR
    assert s.unprotect(V2_AIR) == (3, bytes(8))
    assert s.lmon == 1


def test_resync_from_nack_10_vector():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    assert s.resync_from(C_AIR) == 5  # C covers the Etm* of A
    assert s.lmon == 5 and s.pending is None


def test_unprotect_turns_nack_10_into_lmon_mismatch():
    s = session(2)  # the concentrator is behind: the meter is at 5
    sent = s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    nack = sec.seal_auth_nack(sec.Keys(K1, K2), ACA, 5, sec.etm(sent))
    with pytest.raises(LmonMismatch) as e:
        s.unprotect(nack)
    assert e.value.lmon == 5 and s.lmon == 5
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == A_AIR
    assert s.unprotect(B_AIR) == (3, bytes(8))


def test_challenge_vector(monkeypatch):
    monkeypatch.setattr(secure.os, "urandom", lambda n: N[:n])
    s = session(77)
    data = s.challenge()
    assert data == b"\x00\x00" + N and len(data) == sec.CHL_REQ_LEN
    assert sec.challenge_of(data) == N
    assert s.accept_challenge(D_AIR) == 5
    assert s.lmon == 5 and s.cmon == 6


def test_challenge_is_fresh_and_answers_once():
    s = session(77)
    a, b = s.challenge(), s.challenge()
    assert a[2:] != b[2:] and len(a) == 18
    with pytest.raises(sec.AuthError):
        s.accept_challenge(D_AIR)  # answers N = 00..0F, not our N
    assert s.lmon == 77
    keys = sec.Keys(K1, K2)
    resp = sec.seal_challenge_resp(keys, ACA, 9, sec.challenge_of(b))
    assert s.accept_challenge(resp) == 9
    with pytest.raises(SecureError):
        s.accept_challenge(resp)  # replayed: no challenge outstanding
    s.challenge()
    with pytest.raises(sec.AuthError):
        s.accept_challenge(resp)  # replayed against a new N
    assert s.lmon == 9


def test_authenticated_nack_other_than_10_is_an_answer():
    s = session(5)
    sent = s.protect(4, bytes.fromhex("00200000"), sec.ECC_CTR_WRITE, DT)
    keys = sec.Keys(K1, K2)
    nack = sec.seal(keys, ACA, sec.ATTR_NACK_A_AUTH, b"\x02", 6, sec.ECC_CTR_WRITE, DT, sec.etm(sent))
    assert s.unprotect(nack) == (255, b"\x02")
    assert s.lmon == 6


# ---- rejections ----------------------------------------------------------------------------


def test_wrong_key_rejected_and_nothing_adopted():
    s = session(5, k2=bytes(16))  # the concentrator holds a wrong read key
    sent = s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    assert sent != A_AIR
    right = sec.Keys(K1, K2)
    answer = sec.seal(right, ACA, 103, bytes(8), 6, sec.ECC_CTR_READ, 0)
    with pytest.raises(sec.AuthError):
        s.unprotect(answer)
    nack = sec.seal_auth_nack(right, ACA, 9, sec.etm(sent))
    with pytest.raises(sec.AuthError):
        s.unprotect(nack)
    with pytest.raises(sec.AuthError):
        s.resync_from(nack)
    s.challenge()
    with pytest.raises(sec.AuthError):
        s.accept_challenge(D_AIR)
    assert s.lmon == 5 and s.pending == sent and s.stats["rejected"] == 4


def test_replayed_answer_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    s.unprotect(B_AIR)
    with pytest.raises(SecureError):
        s.unprotect(B_AIR)  # nothing outstanding
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    with pytest.raises(sec.AuthError):
        s.unprotect(B_AIR)  # MON 6 answer against CMON 7
    assert s.lmon == 6


def test_stale_nack_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("0020"), sec.ECC_CTR_READ, DT)  # not request A
    with pytest.raises(sec.AuthError):
        s.resync_from(C_AIR)  # covers A's Etm*, not ours
    with pytest.raises(sec.AuthError):
        s.unprotect(C_AIR)
    assert s.lmon == 5


def test_tampered_answers_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    for i in range(len(B_AIR)):
        bad = bytearray(B_AIR)
        bad[i] ^= 0x40
        with pytest.raises((sec.AuthError, SecureError)):
            s.unprotect(bytes(bad))
    for bad in (b"", b"\x03" + bytes(8), D_AIR, B_AIR[:10]):
        with pytest.raises((sec.AuthError, SecureError)):
            s.unprotect(bad)
    assert s.lmon == 5 and s.pending is not None
    assert s.unprotect(B_AIR) == (3, bytes(8))


def test_bad_construction():
    for args in ((ACA[:5], K1, K2), (ACA, K1[:15], K2), (ACA, K1, "zz" * 16), (ACA, K1, K2, -1), (ACA, K1, K2, 1 << 64)):
        with pytest.raises(SecureError):
            MeterSecurity(*args)
    with pytest.raises(SecureError):
        session().unprotect(B_AIR)
    with pytest.raises(SecureError):
        session().resync_from(C_AIR)
    with pytest.raises(SecureError):
        session().accept_challenge(D_AIR)


# ---- a whole session against a meter built from the firmware pieces -------------------------


class Meter:
    """The meter's receive order for authenticated requests (meter.lmon), in miniature."""

    def __init__(self, store, reserve=4):
        self.store, self.reserve = store, reserve
        self.boot()
        self.executed = 0

    def boot(self):
        self.keys = KeyStore(self.store).keys()
        self.lmon = LmonCounter(self.store, self.reserve)
        self.cache = ResponseCache(self.store)

    def receive(self, lsdu, ecc):
        cached = self.cache.lookup(lsdu, ecc)
        if cached is not None:
            return bytes(cached)
        mon = self.lmon.candidate()
        try:
            data, _dt = sec.open_(self.keys, ACA, lsdu, mon, ecc)
        except sec.AuthError:
            return sec.seal_auth_nack(self.keys, ACA, self.lmon.value, sec.etm(lsdu))
        assert self.lmon.commit()
        self.executed += 1
        answer = sec.seal(self.keys, ACA, 103, data + bytes(6), self.lmon.value, ecc, 0)
        self.cache.put(lsdu, answer, ecc)
        return answer


def exchange(s, meter, apdu, tries=3):
    for _ in range(tries):
        lsdu = s.protect(READ, apdu, sec.ECC_CTR_READ, DT)
        try:
            return s.unprotect(meter.receive(lsdu, sec.ECC_CTR_READ))
        except LmonMismatch:
            continue
    raise AssertionError("no exchange")


def test_session_survives_meter_reboots():
    store = Store()
    KeyStore(store).provision(K1, K2)
    meter = Meter(store, reserve=4)
    s = session(0)
    for i in range(10):
        assert exchange(s, meter, bytes((0, i))) == (3, bytes((0, i)) + bytes(6))
    assert s.lmon == meter.lmon.value == 10
    meter.boot()  # power cut: the meter skips to its ceiling
    assert meter.lmon.value == 12
    assert exchange(s, meter, b"\x00\x3f")[0] == 3  # one NACK-10, then served
    assert s.lmon == 13 and s.stats["resyncs"] == 1
    assert meter.executed == 11


def test_lost_answer_is_repeated_from_the_cache_across_a_reboot():
    store = Store()
    KeyStore(store).provision(K1, K2)
    meter = Meter(store)
    s = session(0)
    lsdu = s.protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)
    meter.receive(lsdu, sec.ECC_CTR_READ)  # the answer is lost on the line
    meter.boot()
    assert s.unprotect(meter.receive(s.pending, sec.ECC_CTR_READ))[0] == 3
    assert meter.executed == 1 and s.lmon == 1


# ---- key ring ------------------------------------------------------------------------------


def test_keyring_loads_and_hides_keys(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({
        "A8040A1E8984": {"k1": K1.hex(), "k2": K2.hex()},
        "a8040a1e8901": {"k1": K2.hex(), "k2": K1.hex(), "lmon": 41},
    }))
    ring = KeyRing.load(path)
    assert len(ring) == 2 and sorted(ring) == ["A8040A1E8901", "A8040A1E8984"]
    s = ring.get(ACA)
    assert ring["a8040a1e8984"] is s and ACA in ring and "A8040A1E8985" not in ring
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == V1_AIR
    assert ring.lmons() == {"A8040A1E8984": 0, "A8040A1E8901": 41}
    text = repr(ring) + repr(s) + str(ring.lmons())
    for key in (K1, K2):
        assert key.hex() not in text.lower()
    with pytest.raises(SecureError):
        ring.get("A8040A1E8985")


@pytest.mark.parametrize("content", [
    "not json",
    "[]",
    '{"A8040A1E8984": {"k1": "00"}}',
    '{"A8040A1E8984": {"k1": "%s", "k2": "%s"}}' % ("ab" * 15, "cd" * 16),
    '{"A8040A1E8984": {"k1": "%s", "k2": "%sx"}}' % ("ab" * 16, "cd" * 15 + "c"),
    '{"A8040A1E89": {"k1": "%s", "k2": "%s"}}' % ("ab" * 16, "cd" * 16),
])
def test_keyring_errors_never_show_keys(tmp_path, content):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(SecureError) as e:
        KeyRing.load(path)
    assert "abab" not in str(e.value) and "cdcd" not in str(e.value)


# ---- the documented weakness W1 (docs/security.md), reproduced ------------------------------


def test_w1_ctr_bitflip_keeps_the_tmac_without_the_key():
    # Turn request A (READ 00 3F) into READ 00 40 on the ciphertext alone: CRC-32 is affine, so
    # 32 flipped DATE-TIME bits cancel the change in the CRC and the TMAC stays valid.
    import zlib

    n = 16  # CRC input: ACA (6) | DATA (2) | DATE-TIME (8)
    zero = zlib.crc32(bytes(n))

    def lin(offset, mask):
        d = bytearray(n)
        d[offset] = mask
        return zlib.crc32(bytes(d)) ^ zero

    target = lin(7, 0x3F ^ 0x40)
    rows = []  # GF(2) basis over single bits of DATE-TIME bytes 0..3: (vector, bits used)
    for i in range(32):
        v, used = lin(8 + i // 8, 1 << (i % 8)), 1 << i
        for rv, ru in rows:
            if v ^ rv < v:
                v, used = v ^ rv, used ^ ru
        if v:
            rows.append((v, used))
            rows.sort(reverse=True)
    t, used = target, 0
    for rv, ru in rows:
        if t ^ rv < t:
            t, used = t ^ rv, used ^ ru
    assert t == 0
    forged = bytearray(A_AIR)
    forged[2] ^= 0x3F ^ 0x40  # LSDU index = CRC offset - 5
    for i in range(32):
        if used >> i & 1:
            forged[3 + i // 8] ^= 1 << (i % 8)
    data, dt = sec.open_(sec.Keys(K1, K2), ACA, bytes(forged), 6, sec.ECC_CTR_READ)
    assert data == b"\x00\x40" and dt != DT
