# AES-GCM-128 with a 12-byte tag (NIST SP 800-38D), the cipher of DLMS
# security suite 0, built on the firmware's AES-128 ECB block (meter.crypto:
# cryptolib on MicroPython, `cryptography` under CPython).
#
# The 96-bit IV is the DLMS one: system title (8) | invocation counter (4).
# CTR runs in place over the caller's buffer. GHASH multiplies in GF(2^128)
# with Shoup's 4-bit tables (16 multiples of H, 16 reduction values): 32
# table steps a block on Python ints, a block value read from the buffer
# without slicing. Ints above 2^30 live on the heap on MicroPython, so GHASH
# allocates; its cost is measured in `make bench` (tests/bench/bench_dlms.py).
from meter.compat import const
from meter.crypto import Aes, ctr_xor

TAG_LEN = const(12)  # DLMS suites 0 to 2: the GCM tag truncated to 12 bytes
_R = 0xE1 << 120  # the GCM reduction polynomial, bit-reflected

# Z * x^4 = (Z >> 4) ^ _RED4[Z & 15]: the reduction of the 4 bits shifted out
_RED4 = []
for _j in range(16):
    _v = _j
    for _k in range(4):
        _v = (_v >> 1) ^ _R if _v & 1 else _v >> 1
    _RED4.append(_v)
del _j, _v, _k


def _block(buf, i, end):
    # buf[i:i + 16] as a 128-bit big-endian int, zero padded past `end`
    v = 0
    for k in range(16):
        v = (v << 8) | (buf[i + k] if i + k < end else 0)
    return v


class Gcm:
    """One AES-128 key. seal() and open() work in place on buf[start:end]."""

    def __init__(self, key):
        self.aes = Aes(key)
        h = bytearray(16)
        self.aes.encrypt_block(h, h)
        hv = _block(h, 0, 16)
        # _tab[n] = n * H, n's bits (8, 4, 2, 1) the coefficients of x^0..x^3
        t = [0] * 16
        t[8] = hv
        v = hv
        for bit in (4, 2, 1):
            v = (v >> 1) ^ _R if v & 1 else v >> 1
            t[bit] = v
        for n in range(16):
            if n & (n - 1):
                a = n & -n
                t[n] = t[a] ^ t[n ^ a]
        self._tab = t
        self._ctr = bytearray(16)  # counter block J0 and the tag's keystream
        self._ek = bytearray(16)

    def _mul(self, x):
        # x * H in GF(2^128): Horner on the nibbles, last (highest degree) first
        t = self._tab
        red = _RED4
        z = 0
        for _ in range(32):
            z = (z >> 4) ^ red[z & 15] ^ t[x & 15]
            x >>= 4
        return z

    def _ghash(self, aad_parts, buf, start, end):
        # GHASH over the AAD (the concatenation of aad_parts) and buf[start:end]
        y = 0
        alen = 0
        pend = bytearray(16)  # AAD bytes gathered into whole blocks
        fill = 0
        for part in aad_parts:
            for b in part:
                pend[fill] = b
                fill += 1
                if fill == 16:
                    y = self._mul(y ^ _block(pend, 0, 16))
                    fill = 0
            alen += len(part)
        if fill:
            y = self._mul(y ^ _block(pend, 0, fill))
        for i in range(start, end, 16):
            y = self._mul(y ^ _block(buf, i, end))
        return self._mul(y ^ ((alen * 8) << 64) ^ ((end - start) * 8))

    def _j0(self, iv):
        c = self._ctr
        for k in range(12):
            c[k] = iv[k]
        c[12] = c[13] = c[14] = 0
        c[15] = 1
        return c

    def _tag_into(self, s, out, at):
        # tag = E_K(J0) xor S, truncated: out[at:at + TAG_LEN]
        ek = self._ek
        self.aes.encrypt_block(self._ctr, ek)
        for k in range(TAG_LEN):
            out[at + k] = ek[k] ^ ((s >> (120 - 8 * k)) & 0xFF)

    def seal(self, iv, aad_parts, buf, start, end, tag_out, tag_at=0):
        """Encrypt buf[start:end] in place (nothing when start == end: GMAC)
        and write the 12-byte tag over the AAD and the ciphertext."""
        c = self._j0(iv)
        c[15] = 2
        ctr_xor(self.aes, c, buf, start, end)
        s = self._ghash(aad_parts, buf, start, end)
        self._j0(iv)
        self._tag_into(s, tag_out, tag_at)

    def open(self, iv, aad_parts, buf, start, end, tag, tag_at=0):
        """Check the tag at tag[tag_at:] then decrypt buf[start:end] in place;
        False (buf untouched) if the tag is wrong."""
        s = self._ghash(aad_parts, buf, start, end)
        self._j0(iv)
        ek = self._ek
        self.aes.encrypt_block(self._ctr, ek)
        diff = 0
        for k in range(TAG_LEN):
            diff |= tag[tag_at + k] ^ ek[k] ^ ((s >> (120 - 8 * k)) & 0xFF)
        if diff:
            return False
        c = self._j0(iv)
        c[15] = 2
        ctr_xor(self.aes, c, buf, start, end)
        return True
