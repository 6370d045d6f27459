# A-XDR (EN 62056-5-3 / IEC 61334-6) for the xDLMS server: the length
# encoding, the COSEM Data type tags, reading one Data at an offset of a
# request (no slicing, one DecodeError naming what was wrong) and a Writer
# that appends to a preallocated buffer (its overflow is a DecodeError too:
# the answer does not fit).
from meter.compat import const
from meter.errors import DecodeError

NULL = const(0)
ARRAY = const(1)
STRUCT = const(2)
BOOL = const(3)
BITS = const(4)
S32 = const(5)  # double-long
U32 = const(6)  # double-long-unsigned
OCTETS = const(9)
VISIBLE = const(10)
UTF8 = const(12)
S8 = const(15)  # integer
S16 = const(16)  # long
U8 = const(17)  # unsigned
U16 = const(18)  # long-unsigned
S64 = const(20)
U64 = const(21)
ENUM = const(22)
_MAX_DEPTH = const(8)  # nesting of arrays and structures in a request

# Data types of fixed size: tag -> bytes
_FIXED = {BOOL: 1, S32: 4, U32: 4, S8: 1, S16: 2, U8: 1, U16: 2, S64: 8, U64: 8, ENUM: 1,
          25: 12, 26: 5, 27: 4}
_SIGNED = (S8, S16, S32, S64)


def get_len(buf, off, end):
    """A-XDR length at buf[off]: (length, offset after it)."""
    if off >= end:
        raise DecodeError("length", "missing")
    b = buf[off]
    if b < 0x80:
        return b, off + 1
    k = b & 0x7F
    if k == 0 or k > 2 or off + 1 + k > end:
        raise DecodeError("length", "bad length form 0x%02x" % b)
    n = 0
    for i in range(k):
        n = (n << 8) | buf[off + 1 + i]
    return n, off + 1 + k


def uint(buf, off, size):
    v = 0
    for i in range(size):
        v = (v << 8) | buf[off + i]
    return v


def skip(buf, off, end, depth=0):
    """Offset after the Data at buf[off]; checks that it lies within end."""
    if off >= end:
        raise DecodeError("data", "missing")
    tag = buf[off]
    off += 1
    size = _FIXED.get(tag)
    if size is not None:
        pass
    elif tag == NULL:
        size = 0
    elif tag == OCTETS or tag == VISIBLE or tag == UTF8:
        size, off = get_len(buf, off, end)
    elif tag == BITS:
        bits, off = get_len(buf, off, end)
        size = (bits + 7) // 8
    elif tag == ARRAY or tag == STRUCT:
        if depth >= _MAX_DEPTH:
            raise DecodeError("data", "nested too deep")
        count, off = get_len(buf, off, end)
        for _ in range(count):
            off = skip(buf, off, end, depth + 1)
        return off
    else:
        raise DecodeError("data", "type %d not supported" % tag)
    if off + size > end:
        raise DecodeError("data", "type %d runs past the end" % tag)
    return off + size


def read_int(buf, off, end):
    """An integer-typed Data (or enum, boolean) at buf[off]: (value, offset after)."""
    if off >= end:
        raise DecodeError("data", "missing")
    tag = buf[off]
    size = _FIXED.get(tag)
    if size is None or size > 8 or tag >= 25:
        raise DecodeError("data", "type %d is not an integer" % tag)
    if off + 1 + size > end:
        raise DecodeError("data", "integer runs past the end")
    v = uint(buf, off + 1, size)
    if tag in _SIGNED and v >> (8 * size - 1):
        v -= 1 << (8 * size)
    return v, off + 1 + size


def read_octets(buf, off, end, tag=OCTETS):
    """An octet-string (or `tag`) Data at buf[off]: (start, length, offset after)."""
    if off >= end or buf[off] != tag:
        raise DecodeError("data", "not of type %d" % tag)
    n, start = get_len(buf, off + 1, end)
    if start + n > end:
        raise DecodeError("data", "string runs past the end")
    return start, n, start + n


class Writer:
    """Appends to buf from `n` on; raises DecodeError when buf is full."""

    def __init__(self, buf):
        self.buf = buf
        self.n = 0

    def reset(self, buf):
        """Start again at the beginning of buf (a Writer made once, reused per frame)."""
        self.buf = buf
        self.n = 0
        return self

    def put32(self, at, v):
        """Write v as 4 bytes big-endian at buf[at] (not appended)."""
        b = self.buf
        b[at] = (v >> 24) & 0xFF
        b[at + 1] = (v >> 16) & 0xFF
        b[at + 2] = (v >> 8) & 0xFF
        b[at + 3] = v & 0xFF

    def _room(self, k):
        if self.n + k > len(self.buf):
            raise DecodeError("answer", "longer than %d bytes" % len(self.buf))

    def byte(self, b):
        self._room(1)
        self.buf[self.n] = b
        self.n += 1

    def uint(self, v, size):
        self._room(size)
        buf = self.buf
        i = self.n + size - 1
        while i >= self.n:
            buf[i] = v & 0xFF
            v >>= 8
            i -= 1
        self.n += size

    def length(self, k):
        if k < 0x80:
            self.byte(k)
        elif k < 0x100:
            self.byte(0x81)
            self.byte(k)
        else:
            self.byte(0x82)
            self.uint(k, 2)

    def raw(self, data, start=0, end=-1):
        if end < 0:
            end = len(data)
        self._room(end - start)
        buf = self.buf
        n = self.n
        for i in range(start, end):
            buf[n + i - start] = data[i]
        self.n = n + end - start

    def value(self, tag, v):
        """A Data of an integer type (or enum, boolean); negative values in two's complement."""
        self.byte(tag)
        self.uint(v, _FIXED[tag])

    def octets(self, data, tag=OCTETS):
        self.byte(tag)
        self.length(len(data))
        self.raw(data)

    def group(self, tag, count):
        """An array or structure header; its `count` elements follow."""
        self.byte(tag)
        self.length(count)
