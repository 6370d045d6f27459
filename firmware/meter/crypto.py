# Crypto primitives for the application-layer security: AES-128 ECB block,
# AES-CTR, AES-CMAC (RFC 4493) and CRC-32 (zlib / IEEE 802.3).
#
# Everything is built on one primitive, the AES-128 ECB block encryption:
#   MicroPython: cryptolib.aes(key, 1) (mode 1 = ECB), encrypt(in, out) form;
#   CPython:     `cryptography` AES-ECB, imported only when that branch runs;
#   neither (a port built without cryptolib): meter/aes.py, pure Python.
#
# Each Aes object owns its scratch buffers; CTR and CMAC work in them with
# index loops, so their block loops do not allocate. Results returned in an
# Aes scratch buffer stay valid until the next call with the same Aes object.
# On 32-bit ports ints >= 2**30 are heap objects: CRC-32 values do allocate
# there; the byte loops here only handle small ints.

from meter.compat import const

_BLOCK = const(16)
_MP_ECB = const(1)  # cryptolib mode constant for ECB
_RB = const(0x87)  # RFC 4493 constant for the subkey doubling

try:
    # Not in every build: on the stm32 port cryptolib comes with MICROPY_PY_SSL.
    from cryptolib import aes as _mp_aes  # pyright: ignore[reportMissingImports]
except ImportError:  # CPython (or a port built without cryptolib)
    _mp_aes = None

# Which block cipher Aes uses: "cryptolib", "cryptography" or "python"
# (meter/aes.py); None until the first key when there is no cryptolib.
_BACKEND = "cryptolib" if _mp_aes is not None else None


def backend():
    global _BACKEND
    if _BACKEND is None:
        try:
            import cryptography  # noqa: F401  # pyright: ignore[reportMissingImports]

            _BACKEND = "cryptography"
        except ImportError:  # MicroPython without cryptolib
            _BACKEND = "python"
    return _BACKEND


def _block_fn(key, encrypt):
    """The key's ECB block function, (src, dst) form, from the backend."""
    which = backend()
    if which == "cryptolib":
        c = _mp_aes(key, _MP_ECB)  # pyright: ignore[reportOptionalCall]
        return c.encrypt if encrypt else c.decrypt
    if which == "cryptography":
        return _cpython_ecb(key, encrypt)
    from meter.aes import Aes128

    a = Aes128(key)
    return a.encrypt_block if encrypt else a.decrypt_block


def _cpython_ecb(key, encrypt):
    # CPython branch only: the MicroPython path never gets here.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.ECB())
    update = (cipher.encryptor() if encrypt else cipher.decryptor()).update

    def run(src, dst):
        dst[0:16] = update(bytes(src[0:16]))

    return run


class Aes:
    """AES-128 in ECB mode on single 16-byte blocks.

    encrypt_block(src, dst) and decrypt_block(src, dst) take 16-byte buffers
    (bytearray or memoryview; src may be dst). The decryption schedule is
    built on first use, since a MicroPython cryptolib object serves one
    direction only.
    """

    def __init__(self, key):
        if len(key) != _BLOCK:
            raise ValueError("AES-128 key must be 16 bytes")
        self._key = bytes(key)
        self._enc = _block_fn(self._key, True)
        self._dec = None
        # Scratch, clobbered by the next call with this object.
        self._ctr = bytearray(_BLOCK)  # CTR counter block
        self._ks = bytearray(_BLOCK)  # CTR keystream / ECB staging block
        self._x = bytearray(_BLOCK)  # CMAC chaining value and result
        self._k1 = None  # CMAC subkeys, computed on first use
        self._k2 = None

    def encrypt_block(self, src, dst):
        self._enc(src, dst)

    def decrypt_block(self, src, dst):
        if self._dec is None:
            self._dec = _block_fn(self._key, False)
        self._dec(src, dst)


def _ecb(fn, s, buf, start, end):
    if (end - start) % _BLOCK:
        raise ValueError("ECB length must be a multiple of 16")
    for i in range(start, end, _BLOCK):
        for j in range(_BLOCK):
            s[j] = buf[i + j]
        fn(s, s)
        for j in range(_BLOCK):
            buf[i + j] = s[j]


def ecb_encrypt(aes, buf, start, end):
    """Encrypt buf[start:end] in place with AES-ECB (length a multiple of 16)."""
    _ecb(aes._enc, aes._ks, buf, start, end)


def ecb_decrypt(aes, buf, start, end):
    """Decrypt buf[start:end] in place with AES-ECB (length a multiple of 16)."""
    if aes._dec is None:
        aes.decrypt_block(aes._ks, aes._ks)  # builds the decryption schedule
    _ecb(aes._dec, aes._ks, buf, start, end)


def ctr_xor(aes, iv16, buf, start, end):
    """AES-CTR in place over buf[start:end]; encryption and decryption alike.

    iv16 is the initial counter block; the counter is the whole block read as
    a 128-bit big-endian integer, incremented by one per block (wrapping).
    """
    ctr = aes._ctr
    ks = aes._ks
    enc = aes._enc
    for j in range(_BLOCK):
        ctr[j] = iv16[j]
    i = start
    while i < end:
        enc(ctr, ks)
        n = end - i
        if n > _BLOCK:
            n = _BLOCK
        for j in range(n):
            buf[i + j] ^= ks[j]
        i += n
        j = _BLOCK - 1
        while j >= 0:
            v = (ctr[j] + 1) & 0xFF
            ctr[j] = v
            if v:
                break
            j -= 1


def _double(src):
    # GF(2^128) doubling of RFC 4493 (shift left one bit, xor Rb on carry).
    out = bytearray(_BLOCK)
    carry = 0
    for j in range(_BLOCK - 1, -1, -1):
        v = src[j]
        out[j] = ((v << 1) | carry) & 0xFF
        carry = v >> 7
    if carry:
        out[_BLOCK - 1] ^= _RB
    return out


def _subkeys(aes):
    l = bytearray(_BLOCK)
    aes._enc(l, l)
    k1 = aes._k1 = _double(l)
    k2 = aes._k2 = _double(k1)
    return k1, k2


def cmac_span(aes, msg, start, end):
    """AES-CMAC (RFC 4493) of msg[start:end].

    Returns the Aes object's own 16-byte scratch buffer holding the tag: copy
    what you need before the next call with the same Aes object.
    """
    k1 = aes._k1
    k2 = aes._k2
    if k1 is None or k2 is None:
        k1, k2 = _subkeys(aes)
    x = aes._x
    enc = aes._enc
    n = end - start
    if n < 0:
        raise ValueError("end before start")
    for j in range(_BLOCK):
        x[j] = 0
    i = start
    if n:
        full = (n - 1) // _BLOCK  # blocks before the last one
        complete = n % _BLOCK == 0
    else:
        full = 0
        complete = False
    for _ in range(full):
        for j in range(_BLOCK):
            x[j] ^= msg[i + j]
        enc(x, x)
        i += _BLOCK
    if complete:
        k = k1
        for j in range(_BLOCK):
            x[j] ^= msg[i + j] ^ k[j]
    else:
        k = k2
        rem = end - i
        for j in range(rem):
            x[j] ^= msg[i + j] ^ k[j]
        x[rem] ^= 0x80 ^ k[rem]
        for j in range(rem + 1, _BLOCK):
            x[j] ^= k[j]
    enc(x, x)
    return x


def cmac(aes, msg):
    """AES-CMAC (RFC 4493) of the whole of msg, as new 16 bytes."""
    return bytes(cmac_span(aes, msg, 0, len(msg)))


# ---- CRC-32 (reflected 0xEDB88320, init and final xor 0xFFFFFFFF) ----------

_POLY = const(0xEDB88320)
_table = None


def _crc_table():
    global _table
    if _table is None:
        try:
            from array import array

            t = array("I", [0] * 256)
        except ImportError:
            t = [0] * 256
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ _POLY if c & 1 else c >> 1
            t[i] = c
        _table = t
    return _table


def crc32_table(data, crc=0):
    """CRC-32 by a 256-entry table built once on first use; same result and
    chaining as zlib.crc32(data, crc). The fallback where binascii has no
    crc32; callable directly so tests can compare it with the fast path."""
    t = _crc_table()
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    from binascii import crc32
except ImportError:  # port built without binascii.crc32
    crc32 = crc32_table
