# Profile generic (class 7) over the data model's tables: the load profile and
# the event log, their records as they are on flash (meter/model/ring.py),
# read whole or by range (selector 1: from / to time) or by entry (selector 2:
# from / to entry number). The buffer can be longer than any RAM buffer: its
# encoding has a fixed size per entry, so any byte range of it is made on
# demand, block by block (meter/dlms/server.py GET with block transfer).
#
# An entry is a structure of the record's fields: the first, the record's
# time, as a date-time; then B as unsigned, H as long-unsigned, I as
# double-long-unsigned (registers.LAYOUTS formats).
from meter.compat import const
from meter.errors import DecodeError
from meter.model import registers as R
from meter.dlms import axdr as X
from meter.dlms import cosem as C

_SIZES = {"B": (X.U8, 1), "H": (X.U16, 2), "I": (X.U32, 4)}
_DT = const(14)  # a date-time Data: 09 0C + 12 bytes
HEAD = const(4)  # the buffer's array tag and a 3-byte length (82 nn nn): a fixed header

# OBIS of the profile -> (its table register, its capture objects: class, OBIS, attribute)
PROFILES = {
    b"\x01\x00\x63\x01\x00\xff": (R.LOAD_PROFILE, (
        (C.CLOCK, b"\x00\x00\x01\x00\x00\xff", 2), (C.DATA, b"\x00\x00\x60\x0a\x01\xff", 2),
        (C.REGISTER, b"\x01\x00\x01\x1d\x00\xff", 2), (C.REGISTER, b"\x01\x00\x02\x1d\x00\xff", 2),
        (C.REGISTER, b"\x01\x00\x03\x1d\x00\xff", 2), (C.REGISTER, b"\x01\x00\x04\x1d\x00\xff", 2))),
    b"\x00\x00\x63\x62\x00\xff": (R.EVENT_LOG, (
        (C.CLOCK, b"\x00\x00\x01\x00\x00\xff", 2), (C.DATA, b"\x00\x00\x60\x0b\x00\xff", 2),
        (C.DATA, b"\x00\x00\x60\x0b\x01\xff", 2))),
}


def _fields(reg):
    # the struct format of a table's records, without its byte-order mark
    fmt = R.LAYOUTS[reg][0]
    return fmt[1:] if fmt[0] in "<>!=" else fmt


def entry_size(reg):
    n = 2 + _DT
    f = _fields(reg)
    for k in range(1, len(f)):
        n += 1 + _SIZES[f[k]][1]
    return n


class Profiles:
    """The class 7 objects of one data model; `objects`: meter.dlms.cosem.Objects."""

    def __init__(self, model, objects):
        self.model = model
        self.objects = objects
        self.rec = bytearray(32)  # one record, read from the table
        self.enc = bytearray(64)  # one entry, encoded
        self.w = X.Writer(self.enc)
        self.table = None  # the selection a buffer read is made of
        self.reg = 0
        self.first = 0
        self.count = 0
        self.size = 0

    def attr(self, obis, attr, w):
        """Attribute `attr` into w. The buffer (2) whole, when it fits w (a GET
        with list); a GET of it alone goes through select/emit, in blocks."""
        reg, captures = PROFILES[bytes(obis)]
        tb = self.model.tables.get(reg)
        if attr == 2:
            n = self.select(obis, b"", 0, 0)
            if n < 0:
                return -n
            if w.n + n > len(w.buf):
                return C.OTHER
            self.emit(w, 0, n)
        elif attr == 3:
            w.group(X.ARRAY, len(captures))
            for cls, ln, a in captures:
                w.group(X.STRUCT, 4)
                w.value(X.U16, cls)
                w.octets(ln)
                w.value(X.S8, a)
                w.value(X.U16, 0)
        elif attr == 4:
            w.value(X.U32, self.model.get(R.PROFILE_PERIOD) if reg == R.LOAD_PROFILE else 0)
        elif attr == 5:
            w.value(X.ENUM, 1)  # FIFO
        elif attr == 6:
            w.group(X.STRUCT, 4)
            w.value(X.U16, 0)
            w.octets(bytes(6))
            w.value(X.S8, 0)
            w.value(X.U16, 0)
        elif attr == 7:
            w.value(X.U32, (tb.end - tb.first) if tb is not None else 0)
        elif attr == 8:
            w.value(X.U32, R.CAPACITY[reg])
        else:
            return C.UNAVAILABLE
        return C.OK

    def select(self, obis, buf, off, end):
        """Choose the entries of a buffer read: off == end: all; else the access
        selection at buf[off] (selector, parameters). Returns the length of the
        buffer's encoding, or -dar when refused."""
        reg = PROFILES[bytes(obis)][0]
        tb = self.model.tables.get(reg)
        if tb is None:
            return -C.UNAVAILABLE
        first, stop = tb.first, tb.end
        if off < end:
            sel = buf[off]
            try:
                at = off + 1
                if buf[at] != X.STRUCT or buf[at + 1] != 4:
                    return -C.TYPE_UNMATCHED
                at += 2
                if sel == 1:  # range: restricting object, from, to, columns (all)
                    at = X.skip(buf, at, end)
                    t0 = C.parse_date_time(buf, at, end)
                    at = X.skip(buf, at, end)
                    t1 = C.parse_date_time(buf, at, end)
                    at = X.skip(buf, at, end)
                    if X.get_len(buf, at + 1, end)[0] != 0:
                        return -C.OTHER  # a choice of columns: not offered
                    first, stop = self._index(tb, t0), self._index(tb, t1 + 1)
                elif sel == 2:  # entry: from, to (1-based, 0: the last), columns (all)
                    e0, at = X.read_int(buf, at, end)
                    e1, at = X.read_int(buf, at, end)
                    c0, at = X.read_int(buf, at, end)
                    c1, at = X.read_int(buf, at, end)
                    if c0 > 1 or (c1 != 0 and c1 != len(_fields(reg))):
                        return -C.OTHER
                    n = tb.end - tb.first
                    if e1 == 0 or e1 > n:
                        e1 = n
                    first, stop = tb.first + (e0 - 1 if e0 > 0 else 0), tb.first + e1
                else:
                    return -C.OTHER
            except DecodeError:
                return -C.TYPE_UNMATCHED
        if stop < first:
            stop = first
        self.table, self.reg, self.first = tb, reg, first
        self.count = stop - first
        self.size = entry_size(reg)
        return HEAD + self.count * self.size

    def _index(self, tb, t):
        # first record whose time (its first 4 bytes) is >= t: records are in time order
        lo, hi = tb.first, tb.end
        rec = self.rec
        while lo < hi:
            mid = (lo + hi) // 2
            tb.read_into(mid, rec, 0)
            if X.uint(rec, 0, 4) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def emit(self, w, start, size):
        """Bytes start .. start + size of the selected buffer's encoding into w."""
        pos = start
        stop = start + size
        if pos < HEAD:
            head = self.enc
            head[0] = X.ARRAY
            head[1] = 0x82
            head[2] = self.count >> 8 & 0xFF
            head[3] = self.count & 0xFF
            k = min(stop, HEAD)
            w.raw(head, pos, k)
            pos = k
        es = self.size
        while pos < stop:
            n = (pos - HEAD) // es
            self._entry(self.first + n)
            at = pos - HEAD - n * es
            k = min(es - at, stop - pos)
            w.raw(self.enc, at, at + k)
            pos += k

    def _entry(self, n):
        # record n as an entry in self.enc (select() chose the table)
        rec = self.rec
        tb = self.table
        if tb is None:
            raise DecodeError("profile", "no selection")
        tb.read_into(n, rec, 0)
        ew = self.w.reset(self.enc)
        f = _fields(self.reg)
        ew.group(X.STRUCT, len(f))
        C.date_time(ew, X.uint(rec, 0, 4), 0)
        at = 4
        for k in range(1, len(f)):
            tag, size = _SIZES[f[k]]
            ew.value(tag, X.uint(rec, at, size))
            at += size
