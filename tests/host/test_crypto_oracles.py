"""Firmware crypto and LSDU codec against independent oracles (CPython only).

`cryptography` provides AES-ECB/CTR and AES-CMAC, `zlib` the CRC-32. The
reference sealer at the bottom re-derives the protected LSDU from the layout
described in the protocol reference (one vendor's reading, not the standard),
with those libraries only, so it shares no code with meter.app.security.
"""

import random
import struct
import zlib

import pytest
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from meter import crypto
from meter.app import security

CASES = 300


def _rng(seed):
    return random.Random(seed)


def _bytes(r, n):
    return bytes(r.getrandbits(8) for _ in range(n))


def _oracle_cmac(key, msg):
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def _oracle_ctr(key, iv, data):
    e = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return e.update(data) + e.finalize()


def _oracle_ecb(key, data, encrypt=True):
    c = Cipher(algorithms.AES(key), modes.ECB())
    ctx = c.encryptor() if encrypt else c.decryptor()
    return ctx.update(data) + ctx.finalize()


def test_cmac_vs_cryptography():
    r = _rng(1)
    for i in range(CASES):
        key = _bytes(r, 16)
        n = r.choice((0, 1, 15, 16, 17, 31, 32, 33, 48)) if i % 3 == 0 else r.randrange(200)
        msg = _bytes(r, n)
        aes = crypto.Aes(key)
        assert crypto.cmac(aes, msg) == _oracle_cmac(key, msg), (key.hex(), msg.hex())
        # The same object again, on a sub-span (cached subkeys, scratch reuse).
        a, b = sorted((r.randrange(len(msg) + 1), r.randrange(len(msg) + 1)))
        assert bytes(crypto.cmac_span(aes, msg, a, b)) == _oracle_cmac(key, msg[a:b])


def test_ctr_vs_cryptography():
    r = _rng(2)
    for i in range(CASES):
        key = _bytes(r, 16)
        iv = _bytes(r, 16)
        if i % 4 == 0:  # exercise carries across the 128-bit counter
            iv = iv[: 16 - (i % 17)] + b"\xff" * (i % 17)
        data = _bytes(r, r.randrange(300))
        pad = r.randrange(5)
        buf = bytearray(b"\xa5" * pad + data + b"\x5a" * 3)
        crypto.ctr_xor(crypto.Aes(key), iv, buf, pad, pad + len(data))
        assert bytes(buf[pad : pad + len(data)]) == _oracle_ctr(key, iv, data)
        assert buf[:pad] == b"\xa5" * pad and buf[pad + len(data) :] == b"\x5a" * 3


def test_ecb_vs_cryptography():
    r = _rng(3)
    for _ in range(CASES):
        key = _bytes(r, 16)
        data = _bytes(r, 16 * r.randrange(1, 9))
        aes = crypto.Aes(key)
        buf = bytearray(data)
        crypto.ecb_encrypt(aes, buf, 0, len(buf))
        assert bytes(buf) == _oracle_ecb(key, data)
        crypto.ecb_decrypt(aes, buf, 0, len(buf))
        assert bytes(buf) == data
        blk = bytearray(16)
        aes.decrypt_block(data[:16], blk)
        assert bytes(blk) == _oracle_ecb(key, data[:16], encrypt=False)


def test_crc32_fast_and_table_vs_zlib():
    r = _rng(4)
    for _ in range(CASES):
        data = _bytes(r, r.randrange(260))
        seed = r.getrandbits(32)
        assert crypto.crc32(data) == zlib.crc32(data)
        assert crypto.crc32_table(data) == zlib.crc32(data)
        assert crypto.crc32(data, seed) == zlib.crc32(data, seed)
        assert crypto.crc32_table(data, seed) == zlib.crc32(data, seed)


# ---- Independent reference sealer (reading of protocol reference section 7) --


def _ref_seal(k1, k2, aca, attr, data, mon, ecc, trailer, covered=None):
    key = k1 if ecc & 4 else k2
    trailer8 = struct.pack("<Q", trailer)
    if attr == 113:
        crc_in, clear = aca + covered, data
    elif attr in (239, 245):
        crc_in, clear = aca + data + covered, data
    else:
        crc_in, clear = aca + data + trailer8, b""
    body = b"" if clear else data
    block = bytes([attr]) + aca[:3] + struct.pack(">Q", mon) + struct.pack(">I", zlib.crc32(crc_in))
    tag = _oracle_cmac(key, block)[:8]
    region = body + trailer8 + tag
    if ecc & 3 == 1:
        region = _oracle_ctr(key, aca + struct.pack(">Q", mon) + b"\x00\x01", region)
    elif ecc & 3 == 2:
        region = _oracle_ecb(key, region)
    return bytes([attr]) + clear + region


@pytest.mark.parametrize("seed", range(4))
def test_seal_vs_reference_sealer(seed):
    r = _rng(100 + seed)
    for _ in range(CASES // 4):
        k1, k2, aca = _bytes(r, 16), _bytes(r, 16), _bytes(r, 6)
        keys = security.Keys(k1, k2)
        ecc = r.choice((0, 1, 2, 4, 5, 6))
        mon = r.getrandbits(64)
        trailer = r.getrandbits(64)
        shape = r.randrange(4)
        if shape == 0:
            attr, data, covered = 113, _bytes(r, 2), _bytes(r, 16)
        elif shape == 1:
            attr, data, covered = r.choice((239, 245)), _bytes(r, 1), _bytes(r, 8)
        else:
            attr = r.choice((102, 103, 104, 106, 109, 118, 123, 131, 140, 241, 243))
            n = 16 * r.randrange(7) if ecc & 3 == 2 else r.randrange(112)
            data, covered = _bytes(r, n), None
        want = _ref_seal(k1, k2, aca, attr, data, mon, ecc, trailer, covered)
        got = security.seal(keys, aca, attr, data, mon, ecc, trailer, covered)
        assert got == want, (attr, ecc, data.hex())
        assert security.open_(keys, aca, want, mon, ecc, covered) == (data, trailer)


def test_reference_sealer_reproduces_worked_vector():
    # Guards the test's own sealer against drifting from the reference text.
    k2 = bytes.fromhex("AA55" * 8)
    aca = bytes.fromhex("A8040A1E8984")
    got = _ref_seal(bytes(16), k2, aca, 102, bytes.fromhex("003F"), 6, 1, 0x66FB3B80)
    assert got == bytes.fromhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")
