"""The firmware's AES-GCM (meter/dlms/gcm.py, on the firmware's AES block) against `cryptography`'s
AESGCM on random keys, IVs, AADs and texts of every length around the block boundaries."""

import random

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meter.dlms.gcm import Gcm


def test_seal_and_open_agree_with_cryptography():
    rng = random.Random(50)
    for n in list(range(0, 50)) + [rng.randrange(50, 1100) for _ in range(30)]:
        key, iv = rng.randbytes(16), rng.randbytes(12)
        parts = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 4))]
        plain = rng.randbytes(n)
        ref = AESGCM(key).encrypt(iv, plain, b"".join(parts))
        buf, tag = bytearray(plain), bytearray(12)
        g = Gcm(key)
        g.seal(iv, tuple(parts), buf, 0, n, tag)
        assert bytes(buf) == ref[:n] and bytes(tag) == ref[n:n + 12], n
        assert g.open(iv, tuple(parts), buf, 0, n, tag) and bytes(buf) == plain
