# The pure-Python AES-128 (meter/aes.py) that meter.crypto falls back to on a
# port without cryptolib: FIPS-197 appendix C.1, NIST SP 800-38A F.1.1, random
# keys and blocks against the runtime's own AES (cryptolib on MicroPython, the
# `cryptography` package on CPython), and the whole crypto suite
# (tests/firmware/test_crypto.py: ECB, CTR, CMAC vectors, no allocation) run
# again with the fallback as meter.crypto's block cipher.
from meter import crypto
from meter.aes import Aes128
from fwtest import Rng, raises, unhex
import test_crypto as suite


def test_fips197_c1_encrypt_and_decrypt():
    a = Aes128(unhex("000102030405060708090a0b0c0d0e0f"))
    block = bytearray(unhex("00112233445566778899aabbccddeeff"))
    a.encrypt_block(block, block)
    assert bytes(block) == unhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    a.decrypt_block(block, block)
    assert bytes(block) == unhex("00112233445566778899aabbccddeeff")


def test_sp800_38a_ecb_blocks():
    a = Aes128(suite._SP_KEY)
    out = bytearray(16)
    for i in range(0, 64, 16):
        a.encrypt_block(suite._SP_PT[i:i + 16], out)
        assert bytes(out) == suite._SP_ECB_CT[i:i + 16]
        a.decrypt_block(suite._SP_ECB_CT[i:i + 16], out)
        assert bytes(out) == suite._SP_PT[i:i + 16]


def test_random_keys_and_blocks_match_the_runtime_aes():
    assert crypto.backend() in ("cryptolib", "cryptography")  # the oracle is not the fallback
    rng = Rng(197)
    out, ref = bytearray(16), bytearray(16)
    for _ in range(64):
        key, block = rng.bytes(16), rng.bytes(16)
        mine, theirs = Aes128(key), crypto.Aes(key)
        mine.encrypt_block(block, out)
        theirs.encrypt_block(block, ref)
        assert out == ref
        mine.decrypt_block(block, out)
        theirs.decrypt_block(block, ref)
        assert out == ref


def test_rejects_bad_key_length():
    with raises(ValueError):
        Aes128(b"\x00" * 15)


def test_crypto_suite_on_the_fallback():
    saved = crypto._BACKEND
    crypto._BACKEND = "python"
    try:
        assert crypto.backend() == "python"
        for name in sorted(dir(suite)):
            if name.startswith("test_"):
                getattr(suite, name)()
    finally:
        crypto._BACKEND = saved
