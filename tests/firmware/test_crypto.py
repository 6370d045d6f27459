# AES-ECB / AES-CTR / AES-CMAC / CRC-32 primitives against published vectors:
# FIPS-197 appendix C.1, NIST SP 800-38A F.1.1 (ECB) and F.5.1 (CTR),
# RFC 4493 section 4 (CMAC), and the CRC-32 check value.
from meter.crypto import (
    Aes,
    cmac,
    cmac_span,
    crc32,
    crc32_table,
    ctr_xor,
    ecb_decrypt,
    ecb_encrypt,
)
from fwtest import Rng, raises, unhex

# NIST SP 800-38A appendix F: key and the four plaintext blocks.
_SP_KEY = unhex("2b7e151628aed2a6abf7158809cf4f3c")
_SP_PT = unhex(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
_SP_ECB_CT = unhex(  # F.1.1 ECB-AES128.Encrypt
    "3ad77bb40d7a3660a89ecaf32466ef97"
    "f5d3d58503b9699de785895a96fdbaaf"
    "43b1cd7f598ece23881b00e3ed030688"
    "7b0c785e27e8ad3f8223207104725dd4"
)
_SP_CTR_IV = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
_SP_CTR_CT = unhex(  # F.5.1 CTR-AES128.Encrypt
    "874d6191b620e3261bef6864990db6ce"
    "9806f66b7970fdff8617187bb9fffdff"
    "5ae4df3edbd5d35e5b4f09020db03eab"
    "1e031dda2fbe03d1792170a0f3009cee"
)


def _heap_lock():
    # (lock, unlock) on MicroPython; None on CPython, where the check is moot.
    try:
        import micropython

        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        return None


def _allocates(fn):
    hl = _heap_lock()
    if hl is None:
        fn()
        return False
    hl[0]()
    try:
        fn()
        hit = False
    except MemoryError:
        hit = True
    hl[1]()
    return hit


def test_aes_fips197_c1():
    a = Aes(unhex("000102030405060708090a0b0c0d0e0f"))
    out = bytearray(16)
    a.encrypt_block(unhex("00112233445566778899aabbccddeeff"), out)
    assert out == unhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    a.decrypt_block(out, out)
    assert out == unhex("00112233445566778899aabbccddeeff")


def test_aes_sp800_38a_ecb_blocks_in_place():
    a = Aes(_SP_KEY)
    for i in range(4):
        b = bytearray(_SP_PT[16 * i : 16 * i + 16])
        a.encrypt_block(b, b)
        assert b == _SP_ECB_CT[16 * i : 16 * i + 16]


def test_aes_blocks_through_memoryviews():
    a = Aes(_SP_KEY)
    buf = bytearray(48)
    mv = memoryview(buf)
    buf[8:24] = _SP_PT[0:16]
    a.encrypt_block(mv[8:24], mv[24:40])
    assert buf[24:40] == _SP_ECB_CT[0:16]
    assert buf[8:24] == _SP_PT[0:16]


def test_ecb_encrypt_decrypt_span():
    a = Aes(_SP_KEY)
    buf = bytearray(3) + bytearray(_SP_PT) + bytearray(2)
    ecb_encrypt(a, buf, 3, 67)
    assert buf[3:67] == _SP_ECB_CT
    assert buf[0:3] == bytes(3) and buf[67:] == bytes(2)
    ecb_decrypt(a, buf, 3, 67)
    assert buf[3:67] == _SP_PT


def test_ecb_rejects_partial_block():
    a = Aes(_SP_KEY)
    with raises(ValueError):
        ecb_encrypt(a, bytearray(20), 0, 20)


def test_aes_rejects_bad_key_length():
    with raises(ValueError):
        Aes(bytes(15))
    with raises(ValueError):
        Aes(bytes(32))


def test_ctr_sp800_38a_f51():
    a = Aes(_SP_KEY)
    buf = bytearray(_SP_PT)
    ctr_xor(a, _SP_CTR_IV, buf, 0, 64)
    assert buf == _SP_CTR_CT
    ctr_xor(a, _SP_CTR_IV, buf, 0, 64)  # CTR is its own inverse
    assert buf == _SP_PT


def test_ctr_partial_and_offset():
    a = Aes(_SP_KEY)
    buf = bytearray(b"\xee" * 5) + bytearray(_SP_PT[:37]) + bytearray(b"\xee" * 3)
    ctr_xor(a, _SP_CTR_IV, buf, 5, 42)
    assert buf[5:42] == _SP_CTR_CT[:37]
    assert buf[:5] == b"\xee" * 5 and buf[42:] == b"\xee" * 3


def test_ctr_empty_range_is_noop():
    a = Aes(_SP_KEY)
    buf = bytearray(b"abc")
    ctr_xor(a, _SP_CTR_IV, buf, 1, 1)
    assert buf == b"abc"


def test_ctr_counter_carries_over_128_bits():
    # Counter ff..ff wraps to 00..00; 00..00ff carries into the next byte.
    a = Aes(_SP_KEY)
    for iv, nxt in (
        (b"\xff" * 16, bytes(16)),
        (bytes(15) + b"\xff", bytes(14) + b"\x01\x00"),
        (bytes(4) + b"\xff" * 12, bytes(3) + b"\x01" + bytes(12)),
    ):
        buf = bytearray(32)
        ctr_xor(a, iv, buf, 0, 32)
        k0 = bytearray(16)
        k1 = bytearray(16)
        a.encrypt_block(iv, k0)
        a.encrypt_block(nxt, k1)
        assert buf == k0 + k1


def test_ctr_does_not_modify_iv():
    a = Aes(_SP_KEY)
    iv = bytearray(_SP_CTR_IV)
    ctr_xor(a, iv, bytearray(40), 0, 40)
    assert iv == _SP_CTR_IV


def test_cmac_rfc4493_examples():
    a = Aes(_SP_KEY)
    for n, tag in (
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ):
        assert cmac(a, _SP_PT[:n]) == unhex(tag), n


def test_cmac_rfc4493_subkeys():
    a = Aes(_SP_KEY)
    cmac(a, b"")
    assert a._k1 == unhex("fbeed618357133667c85e08f7236a8de")
    assert a._k2 == unhex("f7ddac306ae266ccf90bc11ee46d513b")


def test_cmac_span_equals_cmac_of_slice():
    a = Aes(_SP_KEY)
    rng = Rng(7)
    data = rng.bytes(80)
    for start, end in ((0, 0), (3, 3), (1, 17), (5, 45), (0, 80), (16, 32), (7, 8)):
        assert bytes(cmac_span(a, data, start, end)) == cmac(a, data[start:end])


def test_cmac_span_returns_scratch_clobbered_by_next_call():
    a = Aes(_SP_KEY)
    t1 = cmac_span(a, _SP_PT, 0, 16)
    t2 = cmac_span(a, _SP_PT, 0, 0)
    assert t1 is t2
    assert t2 == unhex("bb1d6929e95937287fa37d129b756746")


def test_cmac_independent_per_key():
    a = Aes(_SP_KEY)
    b = Aes(bytes(16))
    ta = cmac(a, b"x")
    cmac(b, b"x")
    assert cmac(a, b"x") == ta != cmac(b, b"x")


def test_crc32_check_value():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32_table(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0 and crc32_table(b"") == 0


def test_crc32_chaining():
    for f in (crc32, crc32_table):
        assert f(b"56789", f(b"1234")) == 0xCBF43926
        assert f(memoryview(b"xx123456789")[2:]) == 0xCBF43926


def test_crc32_table_equals_fast_path():
    rng = Rng(12345)
    for _ in range(60):
        data = rng.bytes(rng.below(140))
        seed = rng.next()
        assert crc32_table(data) == crc32(data)
        assert crc32_table(data, seed) == crc32(data, seed)


def test_ctr_ecb_cmac_loops_do_not_allocate():
    a = Aes(_SP_KEY)
    buf = bytearray(_SP_PT)
    cmac_span(a, buf, 0, 40)  # warm up: subkeys, decryption schedule
    ecb_decrypt(a, buf, 0, 16)
    ecb_encrypt(a, buf, 0, 16)

    def work():
        ctr_xor(a, _SP_CTR_IV, buf, 0, 64)
        cmac_span(a, buf, 0, 64)
        cmac_span(a, buf, 3, 40)
        ecb_encrypt(a, buf, 16, 48)
        ecb_decrypt(a, buf, 16, 48)

    assert not _allocates(work)
