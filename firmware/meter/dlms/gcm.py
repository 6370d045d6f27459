# AES-GCM-128 with a 12-byte tag (NIST SP 800-38D), the cipher of DLMS
# security suite 0, built on the firmware's AES-128 ECB block (meter.crypto:
# cryptolib on MicroPython, `cryptography` under CPython).
#
# The 96-bit IV is the DLMS one: system title (8) | invocation counter (4).
# CTR runs in place over the caller's buffer. GHASH multiplies in GF(2^128)
# with Shoup's 4-bit tables (16 multiples of H, 16 reduction values) kept as
# 16-bit limbs, so that every value is a small int on a 32-bit port: GHASH
# allocates nothing. Its cost is measured in `make bench` (bench_dlms.py).
from array import array

from meter.compat import const
from meter.crypto import Aes, ctr_xor

TAG_LEN = const(12)  # DLMS suites 0 to 2: the GCM tag truncated to 12 bytes


class Gcm:
    """One AES-128 key. seal() and open() work in place on buf[start:end]."""

    def __init__(self, key):
        self.aes = Aes(key)
        h = bytearray(16)
        self.aes.encrypt_block(h, h)
        # _tab[8 n + k]: limb k (0 = most significant) of n * H, n's bits
        # (8, 4, 2, 1) the coefficients of x^0..x^3
        t = array("H", bytes(256))
        v = [h[2 * k] << 8 | h[2 * k + 1] for k in range(8)]
        for bit in (8, 4, 2, 1):
            for k in range(8):
                t[8 * bit + k] = v[k]
            carry = v[7] & 1  # v = v * x: shift right one bit, reduce
            for k in range(7, 0, -1):
                v[k] = (v[k] >> 1) | ((v[k - 1] & 1) << 15)
            v[0] >>= 1
            if carry:
                v[0] ^= 0xE100
        for n in range(16):
            if n & (n - 1):
                a = n & -n
                for k in range(8):
                    t[8 * n + k] = t[8 * a + k] ^ t[8 * (n ^ a) + k]
        self._tab = t
        self._y = bytearray(16)  # the GHASH state
        self._pend = bytearray(16)  # AAD gathered into blocks, the lengths block
        self._ctr = bytearray(16)  # counter block J0
        self._ek = bytearray(16)  # E_K(J0)

    def _mul(self, y):
        # y = y * H in place (16 bytes): Horner on the 32 nibbles, the last
        # (highest degree) first; Z in eight 16-bit limbs, z0 the first
        t = self._tab
        red = _RED
        z0 = z1 = z2 = z3 = z4 = z5 = z6 = z7 = 0
        for j in range(31, -1, -1):
            b = y[j >> 1]
            k = (b & 15 if j & 1 else b >> 4) << 3
            r = red[z7 & 15]
            z7 = (z7 >> 4) | ((z6 & 15) << 12)
            z6 = (z6 >> 4) | ((z5 & 15) << 12)
            z5 = (z5 >> 4) | ((z4 & 15) << 12)
            z4 = (z4 >> 4) | ((z3 & 15) << 12)
            z3 = (z3 >> 4) | ((z2 & 15) << 12)
            z2 = (z2 >> 4) | ((z1 & 15) << 12)
            z1 = (z1 >> 4) | ((z0 & 15) << 12)
            z0 = (z0 >> 4) ^ r ^ t[k]
            z1 ^= t[k + 1]
            z2 ^= t[k + 2]
            z3 ^= t[k + 3]
            z4 ^= t[k + 4]
            z5 ^= t[k + 5]
            z6 ^= t[k + 6]
            z7 ^= t[k + 7]
        # one store each: a multiple assignment would build a tuple
        y[0] = z0 >> 8
        y[1] = z0 & 0xFF
        y[2] = z1 >> 8
        y[3] = z1 & 0xFF
        y[4] = z2 >> 8
        y[5] = z2 & 0xFF
        y[6] = z3 >> 8
        y[7] = z3 & 0xFF
        y[8] = z4 >> 8
        y[9] = z4 & 0xFF
        y[10] = z5 >> 8
        y[11] = z5 & 0xFF
        y[12] = z6 >> 8
        y[13] = z6 & 0xFF
        y[14] = z7 >> 8
        y[15] = z7 & 0xFF

    def _ghash(self, aad_parts, buf, start, end):
        # GHASH over the AAD (the concatenation of aad_parts) and buf[start:end], into self._y
        y = self._y
        pend = self._pend
        for k in range(16):
            y[k] = 0
        alen = 0
        fill = 0
        for p in range(len(aad_parts)):  # index loops: an iterator would be allocated
            part = aad_parts[p]
            for i in range(len(part)):
                y[fill] ^= part[i]
                fill += 1
                if fill == 16:
                    self._mul(y)
                    fill = 0
            alen += len(part)
        if fill:
            self._mul(y)
        for i in range(start, end, 16):
            n = end - i
            if n > 16:
                n = 16
            for k in range(n):
                y[k] ^= buf[i + k]
            self._mul(y)
        # the lengths block: bit lengths of the AAD and the text, 64 bits each
        for k in range(16):
            pend[k] = 0
        _put_bits(pend, 7, alen)
        _put_bits(pend, 15, end - start)
        for k in range(16):
            y[k] ^= pend[k]
        self._mul(y)

    def _j0(self, iv):
        c = self._ctr
        for k in range(12):
            c[k] = iv[k]
        c[12] = c[13] = c[14] = 0
        c[15] = 1
        return c

    def seal(self, iv, aad_parts, buf, start, end, tag_out, tag_at=0):
        """Encrypt buf[start:end] in place (nothing when start == end: GMAC)
        and write the 12-byte tag over the AAD and the ciphertext."""
        c = self._j0(iv)
        c[15] = 2
        ctr_xor(self.aes, c, buf, start, end)
        self._ghash(aad_parts, buf, start, end)
        ek = self._ek
        self.aes.encrypt_block(self._j0(iv), ek)
        y = self._y
        for k in range(TAG_LEN):
            tag_out[tag_at + k] = ek[k] ^ y[k]

    def open(self, iv, aad_parts, buf, start, end, tag, tag_at=0):
        """Check the tag at tag[tag_at:] then decrypt buf[start:end] in place;
        False (buf untouched) if the tag is wrong."""
        self._ghash(aad_parts, buf, start, end)
        ek = self._ek
        self.aes.encrypt_block(self._j0(iv), ek)
        y = self._y
        diff = 0
        for k in range(TAG_LEN):
            diff |= tag[tag_at + k] ^ ek[k] ^ y[k]
        if diff:
            return False
        c = self._j0(iv)
        c[15] = 2
        ctr_xor(self.aes, c, buf, start, end)
        return True


def _put_bits(block, last, nbytes):
    # the bit count of nbytes, big-endian, ending at block[last] (counts < 2^29 bytes)
    v = nbytes << 3
    k = last
    while v:
        block[k] = v & 0xFF
        v >>= 8
        k -= 1


def _reductions():
    out = array("H", bytes(32))
    for j in range(16):
        top = 0
        for bit in range(4):  # the bits shifted out, lowest degree first: x^124 .. x^127
            if j >> (3 - bit) & 1:
                # coefficient of x^(124 + bit) times x^4 = x^(128 + bit): R shifted right by bit
                top ^= 0xE100 >> bit
        out[j] = top
    return out


_RED = _reductions()
