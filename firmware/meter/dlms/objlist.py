# The object list of the Association LN (class 15, attribute 2): one entry per
# object of meter/dlms/cosem.py OBJECTS, with the access rights of the
# association's level. The list is never held whole: like a profile's buffer
# (meter/dlms/profile.py) any byte range of its encoding is made on demand,
# entry by entry, so its length is bounded by no RAM buffer and a GET of it
# goes in blocks (meter/dlms/server.py) whatever the number of objects.
from meter.compat import const
from meter.dlms import axdr as X
from meter.dlms import cosem as C

ENTRY_MAX = const(160)  # the longest entry (the clock's: 120 bytes) with room to spare


class ObjectList:
    def __init__(self):
        self.enc = bytearray(ENTRY_MAX)  # one entry (or the list's header), encoded
        self.w = X.Writer(self.enc)
        self.level = C.PUBLIC
        self.cur = -1  # the object whose entry self.enc holds (-1: the header, -2: none)
        self.len = 0  # its length
        self.head = 0  # the length of the list's header (array tag and count)
        self.i = 0  # a cursor: entry i starts at byte self.at of the list
        self.at = 0

    def select(self, level):
        """Choose the list of an association of `level`; return its encoding's length."""
        self.level = level
        self.cur = -2
        n = self.head = self._encode(-1)
        for i in range(len(C.OBJECTS)):
            n += self._encode(i)
        self.i, self.at = 0, self.head
        return n

    def _encode(self, i):
        # entry i (-1: the array header) into self.enc, unless it is there; its length
        if i == self.cur:
            return self.len
        w = self.w.reset(self.enc)
        if i < 0:
            w.group(X.ARRAY, len(C.OBJECTS))
        else:
            self._entry(C.OBJECTS[i], w)
        self.cur = i
        self.len = w.n
        return w.n

    def _entry(self, obj, w):
        lvl = self.level
        cls = obj[C.O_CLASS]
        w.group(X.STRUCT, 4)
        w.value(X.U16, cls)
        w.value(X.U8, obj[C.O_VERSION])
        w.octets(obj[C.O_OBIS])
        w.group(X.STRUCT, 2)
        w.group(X.ARRAY, C.ATTRS[cls])
        for a in range(1, C.ATTRS[cls] + 1):
            mode = (1 if C.may_read(obj, a, lvl) else 0) | (2 if C.may_write(obj, a, lvl) else 0)
            w.group(X.STRUCT, 3)
            w.value(X.S8, a)
            w.value(X.ENUM, mode)
            C.access_selectors(obj, a, w)
        w.group(X.ARRAY, C.METHODS[cls])
        for m in range(1, C.METHODS[cls] + 1):
            w.group(X.STRUCT, 2)
            w.value(X.S8, m)
            w.value(X.ENUM, 1 if C.may_invoke(obj, m, lvl) else 0)

    def emit(self, w, start, size):
        """Bytes start .. start + size of the selected list's encoding into w.
        Blocks are asked for in order: the cursor goes on from the last one."""
        head = self.head
        pos = start
        stop = start + size
        if pos < head:
            self._encode(-1)
            k = min(stop, head)
            w.raw(self.enc, pos, k)
            pos = k
        if pos < self.at:  # asked again from before the cursor: from the top
            self.i, self.at = 0, head
        i, at = self.i, self.at
        count = len(C.OBJECTS)
        while pos < stop and i < count:
            n = self._encode(i)
            if pos >= at + n:
                i += 1
                at += n
                continue
            k = min(at + n, stop)
            w.raw(self.enc, pos - at, k - at)
            pos = k
        self.i, self.at = i, at
