# The protected-LSDU codec (meter.app.security).
#
# The worked vectors below (protocol reference 8.2 "vector set 1" and 8.3
# "vector set 2") were computed from ONE VENDOR'S READING of the protocol
# (Microchip's application layer), with a general-purpose crypto library; they
# are not official vectors and were never checked against a real meter. They
# pin the codec to that reading, in both directions, byte for byte.
from meter.app import security as sec
from meter.crypto import Aes, crc32
from meter.errors import DecodeError
from meter.app.security import (
    ATTR_CHL_RESP,
    ATTR_NACK_A_AUTH,
    ATTR_NACK_B_AUTH,
    ECC_CTR_READ,
    ECC_CTR_WRITE,
    ECC_ECB_READ,
    ECC_ECB_WRITE,
    ECC_NONE,
    AuthError,
    Keys,
    open_,
    open_into,
    seal,
    seal_into,
)
from fwtest import Rng, raises, unhex

# Demo keys of the vendor's example applications (not a standard value).
K1 = unhex("000102030405060708090a0b0c0d0e0f")
K2 = unhex("AA55AA55AA55AA55AA55AA55AA55AA55")
ACA = unhex("A8040A1E8984")  # natural (application-layer) order
N = bytes(range(16))  # CHL.REQ random of vectors D / V3
DT = 0x66FB3B80

KEYS = Keys(K1, K2)

# Vector set 1 (reference 8.2), meter LMON 5.
A_AIR = unhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")
B_AIR = unhex("67B54F5B52C5E6A0AAA4BA4107C6B52AD4E0ED6956C2068568")
C_AIR = unhex("F50A63F20AD7CF5924A5B34CCCCE6788E5B4")
D_AIR = unhex("710000B6F18D047B78B54409DD6957B14D0230")
# Vector set 2 (reference 8.3), meter LMON 0.
V1_AIR = unhex("667fd351742c7a4f2827dcf3f6a47559d82ed8")
V2_AIR = unhex("677fecd14fd71c4f2827dcd011e5215afb2f0934b631de899e")


def _block(attr, mon, crc):
    return bytes(sec.cmac_block(attr, ACA, mon, crc))


# ---- ECC, ATTR helpers -------------------------------------------------------


def test_ecc_nibble_semantics():
    table = {
        0x0: (sec.MODE_NONE, sec.KEY_READ),
        0x1: (sec.MODE_CTR, sec.KEY_READ),
        0x2: (sec.MODE_ECB, sec.KEY_READ),
        0x3: (sec.MODE_NONE, sec.KEY_READ),
        0x4: (sec.MODE_NONE, sec.KEY_WRITE),
        0x5: (sec.MODE_CTR, sec.KEY_WRITE),
        0x6: (sec.MODE_ECB, sec.KEY_WRITE),
        0x7: (sec.MODE_NONE, sec.KEY_WRITE),
    }
    for ecc, (mode, key) in table.items():
        assert sec.ecc_mode(ecc) == mode, ecc
        assert sec.ecc_key(ecc) == key, ecc
    assert sec.make_ecc(sec.MODE_CTR, sec.KEY_READ) == ECC_CTR_READ == 1
    assert sec.make_ecc(sec.MODE_ECB, sec.KEY_READ) == ECC_ECB_READ == 2
    assert sec.make_ecc(sec.MODE_CTR, sec.KEY_WRITE) == ECC_CTR_WRITE == 5
    assert sec.make_ecc(sec.MODE_ECB, sec.KEY_WRITE) == ECC_ECB_WRITE == 6
    assert sec.ECC_CHALLENGE == ECC_ECB_READ


def test_keys_select_by_ecc_bit2():
    assert KEYS.aes(0) is KEYS.read and KEYS.aes(2) is KEYS.read
    assert KEYS.aes(4) is KEYS.write and KEYS.aes(5) is KEYS.write


def test_is_authenticated_rule():
    auth = (102, 103, 104, 113, 130, 142, 239, 241, 243, 245)
    plain = (0, 2, 3, 90, 91, 92, 94, 95, 100, 101, 112, 247, 249, 251, 253, 255)
    for a in auth:
        assert sec.is_authenticated(a), a
    for a in plain:
        assert not sec.is_authenticated(a), a


def test_auth_attr_and_back():
    pairs = (
        (2, 102), (3, 103), (4, 104), (8, 108), (18, 118), (42, 142),
        (253, 243), (255, 245), (251, 241), (249, 239),
        (100, 200), (101, 201),  # REPROG_LOCAL, REPROG_BROADCAST (project choice)
    )
    for p, a in pairs:
        assert sec.auth_attr(p) == a
        assert sec.plain_attr(a) == p
    for bad in (90, 99, 102, 112, 247, 12, 254):
        with raises(ValueError):
            sec.auth_attr(bad)
    for bad in (2, 112, 113, 247, 244, 199, 202):
        with raises(ValueError):
            sec.plain_attr(bad)


# ---- Vector set 1 (reference 8.2), vendor reading, not official -------------


def test_v1a_read_req_auth_parts():
    crc = crc32(ACA + unhex("003F") + unhex("803BFB6600000000"))
    assert crc == 0x9966542B
    blk = _block(0x66, 6, crc)
    assert blk == unhex("66A8040A00000000000000069966542B")
    assert sec.tmac(KEYS.read, blk) == unhex("E320E9DBEEB37E34")
    assert sec.ctr_iv(ACA, 6) == unhex("A8040A1E898400000000000000060001")
    # ECC 0: MAC with K2, no encryption = the plaintext LSDU of the vector.
    plain = seal(KEYS, ACA, 102, unhex("003F"), 6, ECC_NONE, DT)
    assert plain == unhex("66003F803BFB6600000000E320E9DBEEB37E34")


def test_v1a_read_req_auth_both_ways():
    assert seal(KEYS, ACA, 102, unhex("003F"), 6, ECC_CTR_READ, DT) == A_AIR
    assert open_(KEYS, ACA, A_AIR, 6, ECC_CTR_READ) == (unhex("003F"), DT)


def test_v1b_read_resp_auth_both_ways():
    assert _block(0x67, 6, crc32(ACA + bytes(16))) == unhex("67A8040A00000000000000068B27DFBE")
    assert seal(KEYS, ACA, 103, bytes(8), 6, ECC_CTR_READ, 0) == B_AIR
    assert open_(KEYS, ACA, B_AIR, 6, ECC_CTR_READ) == (bytes(8), 0)


def test_v1c_auth_nack_both_ways():
    etm = sec.etm(A_AIR)
    assert etm == unhex("A2272F6EC4672EA3")
    crc = crc32(ACA + b"\x0a" + etm)
    blk = _block(0xF5, 5, crc)
    assert blk == unhex("F5A8040A0000000000000005AC4B38C3")
    assert sec.tmac(KEYS.read, blk) == unhex("4BF0F93CA3F70C18")
    assert sec.seal_auth_nack(KEYS, ACA, 5, etm) == C_AIR
    assert seal(KEYS, ACA, ATTR_NACK_A_AUTH, b"\x0a", 5, ECC_ECB_READ, 5, etm) == C_AIR
    # The DCU takes MON from the LMON the NACK carries, or checks a known one.
    assert open_(KEYS, ACA, C_AIR, None, ECC_ECB_READ, etm) == (b"\x0a", 5)
    assert open_(KEYS, ACA, C_AIR, 5, ECC_ECB_READ, etm) == (b"\x0a", 5)
    # Only PAR1 is in clear; the rest is one ECB block over LMON (LE) | TMAC.
    blk16 = bytearray(C_AIR[2:])
    KEYS.read.decrypt_block(blk16, blk16)
    assert blk16 == unhex("0500000000000000") + unhex("4BF0F93CA3F70C18")


def test_v1d_chl_resp_both_ways():
    crc = crc32(ACA + N)
    assert crc == 0xA9527663
    blk = _block(0x71, 5, crc)
    assert blk == unhex("71a8040a0000000000000005a9527663")
    assert sec.tmac(KEYS.read, blk) == unhex("F9FE255608B20A92")
    assert sec.seal_challenge_resp(KEYS, ACA, 5, N) == D_AIR
    assert seal(KEYS, ACA, ATTR_CHL_RESP, b"\x00\x00", 5, ECC_ECB_READ, 5, N) == D_AIR
    assert open_(KEYS, ACA, D_AIR, None, ECC_ECB_READ, N) == (b"\x00\x00", 5)


def test_chl_req_challenge_helper():
    assert sec.challenge_of(b"\x00\x00" + N) == N
    with raises(DecodeError) as r:
        sec.challenge_of(N)
    assert r.value.field == "length"


# ---- Vector set 2 (reference 8.3), vendor reading, not official -------------


def test_v2_v1_read_req_auth_both_ways():
    crc = crc32(ACA + unhex("003f803bfb6600000000"))
    assert crc == 0x9966542B
    blk = _block(0x66, 1, crc)
    assert blk == unhex("66a8040a00000000000000019966542b")
    assert sec.tmac(KEYS.read, blk) == unhex("23e741540323dc14")
    assert sec.ctr_iv(ACA, 1) == unhex("a8040a1e898400000000000000010001")
    assert seal(KEYS, ACA, 0x66, unhex("003f"), 1, ECC_CTR_READ, DT) == V1_AIR
    assert open_(KEYS, ACA, V1_AIR, 1, ECC_CTR_READ) == (unhex("003f"), DT)


def test_v2_v2_read_resp_auth_both_ways():
    crc = crc32(ACA + bytes(16))
    assert crc == 0x8B27DFBE
    blk = _block(0x67, 1, crc)
    assert blk == unhex("67a8040a00000000000000018b27dfbe")
    assert sec.tmac(KEYS.read, blk) == unhex("ddc5f226c006c50e")
    assert seal(KEYS, ACA, 0x67, bytes(8), 1, ECC_CTR_READ, 0) == V2_AIR
    assert open_(KEYS, ACA, V2_AIR, 1, ECC_CTR_READ) == (bytes(8), 0)
    # Request and response share the CTR keystream (same ACA, MON, key).
    assert V1_AIR[1:3] == bytes(a ^ b for a, b in zip(V2_AIR[1:3], unhex("003f")))


def test_v2_v3_chl_resp_is_vector_d():
    assert sec.seal_challenge_resp(KEYS, ACA, 5, N) == D_AIR
    assert open_(KEYS, ACA, D_AIR, None, ECC_ECB_READ, N) == (b"\x00\x00", 5)


# ---- Negatives: every failure is a project error -----------------------------


def _auth_fails(lsdu, mon=6, ecc=ECC_CTR_READ, keys=KEYS, covered=None, field="tmac"):
    with raises(AuthError) as r:
        open_(keys, ACA, lsdu, mon, ecc, covered)
    assert isinstance(r.value, DecodeError)
    assert r.value.field == field, r.value.field


def _flip(b, i, mask=1):
    x = bytearray(b)
    x[i] ^= mask
    return bytes(x)


def test_flipped_ciphertext_bit_fails_tmac():
    for i in range(len(A_AIR)):  # ATTR included: it is in the CMAC block
        _auth_fails(_flip(A_AIR, i))
    _auth_fails(_flip(A_AIR, 5, 0x80))


def test_forged_tmac_fails():
    rng = Rng(99)
    for _ in range(20):
        _auth_fails(A_AIR[:-8] + rng.bytes(8))
    # A TMAC valid for another message does not transfer either.
    _auth_fails(A_AIR[:-8] + B_AIR[-8:])


def test_wrong_key_fails():
    _auth_fails(A_AIR, ecc=ECC_CTR_WRITE)  # K1 instead of K2
    _auth_fails(A_AIR, keys=Keys(K1, K1))
    _auth_fails(C_AIR, mon=None, ecc=ECC_ECB_WRITE, covered=sec.etm(A_AIR))


def test_wrong_mon_fails():
    for mon in (5, 7, 0, 6 + (1 << 32)):  # stale LMON, skipped, reset, high word
        _auth_fails(A_AIR, mon=mon)
    _auth_fails(C_AIR, mon=4, ecc=ECC_ECB_READ, covered=sec.etm(A_AIR))


def test_wrong_covered_bytes_fail():
    _auth_fails(C_AIR, mon=None, ecc=ECC_ECB_READ, covered=sec.etm(B_AIR))
    _auth_fails(D_AIR, mon=None, ecc=ECC_ECB_READ, covered=bytes(16))


def test_wrong_aca_fails():
    with raises(AuthError):
        open_(KEYS, unhex("A8040A1E8985"), A_AIR, 6, ECC_CTR_READ)


def test_truncated_lsdu():
    _auth_fails(A_AIR[:-1])  # still long enough: the tag no longer matches
    for n in range(1, 17):
        _auth_fails(A_AIR[:n], field="length")
    _auth_fails(C_AIR[:-1], mon=None, ecc=ECC_ECB_READ, covered=sec.etm(A_AIR), field="length")
    _auth_fails(D_AIR + b"\x00", mon=None, ecc=ECC_ECB_READ, covered=N, field="length")
    with raises(DecodeError):
        open_(KEYS, ACA, b"", 6, ECC_CTR_READ)


def test_ecb_region_not_block_multiple_is_length_error():
    _auth_fails(A_AIR, ecc=ECC_ECB_READ, field="length")


def test_missing_key_is_key_error():
    only_write = Keys(K1, None)
    _auth_fails(A_AIR, keys=only_write, field="key")
    with raises(AuthError):
        seal(only_write, ACA, 102, b"\x00\x3f", 6, ECC_NONE, DT)


def test_failed_open_restores_buffer():
    for lsdu, mon, ecc, cov in (
        (_flip(A_AIR, 4), 6, ECC_CTR_READ, None),
        (A_AIR, 5, ECC_CTR_READ, None),
        (C_AIR, None, ECC_ECB_READ, bytes(8)),
    ):
        buf = bytearray(lsdu)
        with raises(AuthError):
            open_into(KEYS, ACA, buf, len(buf), mon, ecc, cov)
        assert buf == lsdu


# ---- Round trips and in-place use ------------------------------------------


def test_round_trip_random_all_eccs():
    rng = Rng(2024)
    for ecc in (0, 1, 2, 4, 5, 6):
        for _ in range(12):
            if ecc & 3 == 2:
                dlen = 16 * rng.below(7)  # ECB: DATA + 16 a multiple of 16
            else:
                dlen = rng.below(112)
            data = rng.bytes(dlen)
            attr = (102, 103, 104, 109, 118, 243)[rng.below(6)]
            mon = rng.next() << 32 | rng.next()
            dt = rng.next()
            lsdu = seal(KEYS, ACA, attr, data, mon, ecc, dt)
            assert len(lsdu) == 1 + dlen + 16 and lsdu[0] == attr
            assert open_(KEYS, ACA, lsdu, mon, ecc) == (data, dt)
            if dlen and ecc & 3:
                assert lsdu[1 : 1 + dlen] != data  # encrypted
            _auth_fails(lsdu, mon=mon + 1, ecc=ecc)


def test_b_node_nack_and_other_par1():
    etm = sec.etm(V1_AIR)
    for attr in (ATTR_NACK_A_AUTH, ATTR_NACK_B_AUTH):
        for par1 in (10, 1):
            lsdu = sec.seal_auth_nack(KEYS, ACA, 77, etm, par1, attr)
            assert len(lsdu) == 18 and lsdu[0] == attr and lsdu[1] == par1
            assert open_(KEYS, ACA, lsdu, None, ECC_ECB_READ, etm) == (bytes((par1,)), 77)


def test_special_shapes_in_ctr_need_mon():
    etm = sec.etm(V1_AIR)
    lsdu = seal(KEYS, ACA, ATTR_NACK_A_AUTH, b"\x0a", 9, ECC_CTR_READ, 9, etm)
    assert open_(KEYS, ACA, lsdu, 9, ECC_CTR_READ, etm) == (b"\x0a", 9)
    with raises(ValueError):
        open_(KEYS, ACA, lsdu, None, ECC_CTR_READ, etm)


def test_plain_attr_with_ecc_is_encrypted_only():
    data = b"\x02\x55\x00\x00"
    for ecc in (ECC_NONE, ECC_CTR_READ, ECC_CTR_WRITE):
        lsdu = seal(KEYS, ACA, 90, data, 3, ecc)
        assert len(lsdu) == 5
        assert (lsdu[1:] == data) == (ecc == ECC_NONE)
        assert open_(KEYS, ACA, lsdu, 3, ecc) == (data, None)
    lsdu = seal(KEYS, ACA, 2, bytes(16), 3, ECC_ECB_READ)
    assert open_(KEYS, ACA, lsdu, 0, ECC_ECB_READ) == (bytes(16), None)


def test_seal_into_open_into_in_a_frame_buffer():
    frame = bytearray(160)
    hdr = 9  # room for lower-layer headers in front
    lsdu = memoryview(frame)[hdr:]
    lsdu[0] = 102
    lsdu[1] = 0x00
    lsdu[2] = 0x3F
    end = seal_into(KEYS, ACA, lsdu, 3, 6, ECC_CTR_READ, DT)
    assert end == 19
    assert frame[hdr : hdr + end] == A_AIR
    assert frame[:hdr] == bytes(hdr)
    dend, trailer = open_into(KEYS, ACA, lsdu, end, 6, ECC_CTR_READ)
    assert (dend, trailer) == (3, DT)
    assert frame[hdr + 1 : hdr + 3] == b"\x00\x3f"


def test_keys_from_pair_and_shared_aes():
    assert seal((K1, K2), ACA, 102, unhex("003F"), 6, ECC_CTR_READ, DT) == A_AIR
    assert open_((K1, K2), ACA, A_AIR, 6, ECC_CTR_READ) == (unhex("003F"), DT)
    assert isinstance(KEYS.read, Aes)


def test_seal_rejects_impossible_calls():
    for args in (
        (102, bytes(112), 6, ECC_CTR_READ, DT, None),  # 129 bytes > 128
        (102, bytes(3), 6, ECC_ECB_READ, DT, None),  # ECB, not 16-aligned
        (102, b"\x00\x3f", 6, ECC_CTR_READ, None, None),  # no trailer
        (102, b"\x00\x3f", 6, ECC_CTR_READ, DT, N),  # covered on a plain shape
        (113, b"\x00\x00", 5, ECC_ECB_READ, 5, None),  # CHL.RESP without N
        (113, b"\x00\x00", 5, ECC_ECB_READ, 5, N[:8]),  # N too short
        (113, b"\x00", 5, ECC_ECB_READ, 5, N),  # T field of 1 byte
        (245, b"\x0a\x00", 5, ECC_ECB_READ, 5, bytes(8)),  # NACK with 2 bytes
        (102, b"\x00\x3f", -1, ECC_CTR_READ, DT, None),  # negative MON
        (102, b"\x00\x3f", 1 << 64, ECC_CTR_READ, DT, None),  # MON > uint64
        (90, b"\x02", 1, ECC_NONE, DT, None),  # trailer on a plain ATTR
    ):
        attr, data, mon, ecc, trailer, cov = args
        with raises(ValueError):
            seal(KEYS, ACA, attr, data, mon, ecc, trailer, cov)
    assert len(seal(KEYS, ACA, 102, bytes(111), 6, ECC_CTR_READ, DT)) == 128
    with raises(ValueError):
        seal(KEYS, ACA[:5], 102, b"\x00\x3f", 6, ECC_CTR_READ, DT)
