# Tables behind ENC_TABLE registers: rings of records on flash (profiles,
# logs, billing data) and fixed arrays (tariff tables, holidays).
#
# Every record has a number: the first record a ring ever held is 0, and a
# number stays with its record. `first` is the oldest number kept, `end` the
# number the next record will get. The table services address records by
# these numbers, so a selection stays valid while new records arrive.
#
# On flash (project choice, docs/data-model.md "Persistence"): record number n
# lives in page file NAME<k> with k = (n // per_page) % pages, at byte
# 4 + (n % per_page) * size; each page file starts with the number of its
# first record (4 bytes, big-endian). A new page replaces the oldest one, so a
# ring keeps between (pages - 1) * per_page and pages * per_page records.
#
# littlefs copies the last block of a file on every append, so an append to a
# page costs a block erase. Rings whose pages are small enough to live inline
# in a directory entry (<= 128 bytes) append each record to its page; the
# others collect `batch` records in a tail record NAMEt (inline, cheap to
# append), then move them to the page in one append. Order on flash: page
# first, then the tail is emptied; a power cut in between leaves records in
# both, which the start-up scan drops from the tail by number.
import struct

from meter.compat import const

_HDR = const(4)


def _hdr(n):
    return struct.pack(">I", n)


class Ring:
    def __init__(self, store, name, size, pages, per_page, batch=0):
        self._store = store
        self._name = name
        self.size = size
        self._pages = pages
        self._per = per_page
        self._batch = batch
        self.faults = 0
        self.wrapped = False  # set when a page of old records was dropped
        self._hb = bytearray(_HDR)
        first = None
        end = 0
        for k in range(pages):
            n = self._store.size(self._page(k))
            if n < _HDR:
                continue
            self._store.read_into(self._page(k), 0, self._hb)
            h = struct.unpack(">I", self._hb)[0]
            if h % per_page or (h // per_page) % pages != k:
                continue  # not a page of this ring
            cnt = min((n - _HDR) // size, per_page)
            if first is None or h < first:
                first = h
            if h + cnt > end:
                end = h + cnt
        self.first = end if first is None else first
        self.end = end
        self._tail = bytearray(batch * size)  # empty without a tail record
        self._tail_n = 0
        if batch:
            raw = store.get(name + "t")
            if raw is not None and len(raw) >= _HDR:
                tf = struct.unpack_from(">I", raw, 0)[0]
                cnt = (len(raw) - _HDR) // size
                skip = min(cnt, end - tf) if end > tf else 0  # already moved to the page
                keep = min(cnt - skip, batch)
                start = tf + skip
                if keep:
                    self._tail[0:keep * size] = memoryview(raw)[_HDR + skip * size:_HDR + (skip + keep) * size]
                    self._tail_n = keep
                    self.end = start + keep
                if first is None:
                    self.first = start
                    if not keep:
                        self.end = start
                if skip:  # the cut came between the page append and the tail reset
                    store.put(name + "t", _hdr(start) + bytes(memoryview(self._tail)[0:keep * size]))
                if keep == batch:  # the cut came before the tail was moved
                    self._flush()

    def _page(self, k):
        return "%s%d" % (self._name, k)

    def __len__(self):
        return self.end - self.first

    @property
    def capacity(self):
        return self._pages * self._per

    def append(self, rec):
        """Add one record (bytes of `size`); False if the flash refused it."""
        if self._batch:
            if self._tail_n == 0 and not self._store.put(self._name + "t", _hdr(self.end)):
                self.faults += 1
                return False
            if not self._store.append(self._name + "t", rec):
                self.faults += 1
                return False
            n = self._tail_n
            self._tail[n * self.size:(n + 1) * self.size] = rec
            self._tail_n = n + 1
            self.end += 1
            if self._tail_n == self._batch:
                self._flush()
            return True
        n = self.end
        if not self._write_page(n, rec):
            self.faults += 1
            return False
        self.end = n + 1
        return True

    def _write_page(self, n, data):
        k = (n // self._per) % self._pages
        if n % self._per == 0:
            ok = self._store.put(self._page(k), _hdr(n) + bytes(data))
            if ok:
                oldest = n - (self._pages - 1) * self._per
                if oldest > self.first:
                    self.first = oldest
                    self.wrapped = True
            return ok
        return self._store.append(self._page(k), data)

    def _flush(self):
        n0 = self.end - self._tail_n
        if not self._write_page(n0, memoryview(self._tail)[0:self._tail_n * self.size]):
            self.faults += 1
            return  # stays in the tail record; retried at the next append
        self._tail_n = 0
        self._store.put(self._name + "t", _hdr(self.end))

    def read_into(self, n, out, off):
        """Copy record n (first <= n < end) to out[off:]; return the offset after it."""
        size = self.size
        t0 = self.end - self._tail_n
        if n >= t0:
            p = (n - t0) * size
            out[off:off + size] = memoryview(self._tail)[p:p + size]
        else:
            k = (n // self._per) % self._pages
            self._store.read_into(self._page(k), _HDR + (n % self._per) * size,
                                  memoryview(out)[off:off + size])
        return off + size

    def read_run(self, n, count, out, off):
        """Copy records n .. n+count-1 (one store read per page); return the offset after them."""
        size = self.size
        while count > 0:
            t0 = self.end - self._tail_n
            if n >= t0:
                p = (n - t0) * size
                out[off:off + count * size] = memoryview(self._tail)[p:p + count * size]
                return off + count * size
            k = n // self._per
            run = min(count, (k + 1) * self._per - n, t0 - n)
            self._store.read_into(self._page(k % self._pages), _HDR + (n % self._per) * size,
                                  memoryview(out)[off:off + run * size])
            off += run * size
            n += run
            count -= run
        return off

    def reset(self):
        """Drop every record; numbering goes on from the next page."""
        for k in range(self._pages):
            self._store.remove(self._page(k))
        per = self._per
        n = (self.end + per - 1) // per * per
        self.first = self.end = n
        if self._batch:
            self._tail_n = 0
            self._store.put(self._name + "t", _hdr(n))


class Array:
    """A fixed number of records in one flash record (tariff tables, holidays)."""

    def __init__(self, store, name, size, count, default):
        self._store = store
        self._name = name
        self.size = size
        self.first = 0
        self.end = count
        self._default = default
        raw = store.get(name)
        self.data = bytearray(raw if raw is not None and len(raw) == size * count else default)

    def __len__(self):
        return self.end

    def read_into(self, n, out, off):
        s = self.size
        out[off:off + s] = memoryview(self.data)[n * s:n * s + s]
        return off + s

    def read_run(self, n, count, out, off):
        s = self.size
        out[off:off + count * s] = memoryview(self.data)[n * s:(n + count) * s]
        return off + count * s

    def write(self, n, buf, off, count):
        """Records n .. n+count-1 from buf[off:]; False if the flash refused (nothing changed)."""
        s = self.size
        new = bytearray(self.data)
        new[n * s:(n + count) * s] = buf[off:off + count * s]
        if not self._store.put(self._name, new):
            return False
        self.data = new
        return True

    def load(self, raw):
        """Replace the whole table (contract switch); False if the flash refused."""
        if not self._store.put(self._name, raw):
            return False
        self.data = bytearray(raw)
        return True

    def reset(self):
        return self.load(self._default)
