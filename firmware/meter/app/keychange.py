# The key-change procedure: the only way K1 and K2 change through a port.
# Project choice (the standard's procedure is not public; docs/security.md):
#
#   KEY_CHANGE (ATTR 24, authenticated 124), accepted only authenticated,
#   AES-ECB with the write key (ECC 6), DATA padded as every ECB request:
#     stage     24 | 01 | E(K1' | K2') (32) | KCV(K1') (3) | KCV(K2') (3)
#               sealed with the current K1; E = AES-ECB under the current K1
#     activate  24 | 02 | KCV(K1') (3) | KCV(K2') (3)
#               sealed with the NEW K1': proves the sender holds the new keys
#   KCV(K) = the first 3 bytes of AES_K(16 zero bytes), the usual key check value.
#
# The meter keeps the staged pair in its own record next to the current one;
# the current keys stay in force until an activate sealed with the new write
# key arrives, and the switch is one record write (meter/app/lmon.py KeyStore).
# Codec only: shared by the meter (meter/app/auth.py) and the host tools.
from meter.attrs import KEY_CHANGE  # noqa: F401 (the ATTR, re-exported)
from meter.compat import const
from meter.crypto import Aes, ecb_decrypt, ecb_encrypt
from meter.errors import DecodeError

STAGE = const(1)
ACTIVATE = const(2)
KEY_LEN = const(16)
KCV_LEN = const(3)
STAGE_LEN = const(1 + 2 * KEY_LEN + 2 * KCV_LEN)  # DATA after the ATTR
ACTIVATE_LEN = const(1 + 2 * KCV_LEN)


def kcv(key):
    """Key check value of a 16-byte key (as bytes, or an Aes object)."""
    aes = key if isinstance(key, Aes) else Aes(bytes(key))
    block = bytearray(16)
    ecb_encrypt(aes, block, 0, 16)
    return bytes(block[0:KCV_LEN])


def stage_data(current_k1, k1, k2):
    """DATA of a stage request: the new pair under the current write key."""
    if len(k1) != KEY_LEN or len(k2) != KEY_LEN:
        raise ValueError("K1 and K2 must be 16 bytes each")
    blob = bytearray(k1) + bytearray(k2)
    aes = current_k1 if isinstance(current_k1, Aes) else Aes(bytes(current_k1))
    ecb_encrypt(aes, blob, 0, 2 * KEY_LEN)
    return bytes((STAGE,)) + bytes(blob) + kcv(k1) + kcv(k2)


def activate_data(k1, k2):
    """DATA of an activate request (seal it with the new K1)."""
    return bytes((ACTIVATE,)) + kcv(k1) + kcv(k2)


def open_stage(current_k1_aes, data, off, n):
    """(K1', K2') from the stage DATA at data[off:off+n], decrypted under
    the current write key; DecodeError when the length or a KCV is wrong."""
    if n != STAGE_LEN or data[off] != STAGE:
        raise DecodeError("length", "stage DATA of %d bytes" % n)
    blob = bytearray(data[off + 1:off + 1 + 2 * KEY_LEN])
    ecb_decrypt(current_k1_aes, blob, 0, 2 * KEY_LEN)
    k1 = bytes(blob[0:KEY_LEN])
    k2 = bytes(blob[KEY_LEN:])
    p = off + 1 + 2 * KEY_LEN
    if kcv(k1) != bytes(data[p:p + KCV_LEN]) or kcv(k2) != bytes(data[p + KCV_LEN:p + 2 * KCV_LEN]):
        raise DecodeError("kcv", "key check value mismatch")
    return k1, k2


def is_activate(data, off, n, k1, k2):
    """Does data[off:off+n] activate exactly the pair (k1, k2)?"""
    if n != ACTIVATE_LEN or data[off] != ACTIVATE:
        return False
    return bytes(data[off + 1:off + 1 + 2 * KCV_LEN]) == kcv(k1) + kcv(k2)
