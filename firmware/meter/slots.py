# Download slots on the flash store and the boot choice between them.
#
# Three places a firmware runs from: the built-in one (frozen in the MCU's
# flash, or the source tree on the emulated board), and two slots, A and B,
# each a folder of .mpy files on the store ("s1/", "s2/"). A download goes
# into the slot that does not run. Its records, each written atomically
# (meter/storage.py), so that a power cut at any instant leaves a state this
# module reads back:
#   "dl.hdr"   the session: image header (64) | target slot (1) | stage (1)
#   "dl.log"   the blocks received, in arrival order: index (2) | data padded
#              to the block size. One append a block, no other write: littlefs
#              commits an append at close, so a power cut loses at most the
#              block in flight; the bitmap of received blocks is read back
#              from it at power-up (writing in the middle of a file would
#              copy the rest of it, an erase a block)
#   "sN.ok"    the header of the image slot N holds whole; written after the
#              last file, removed before the first one is touched
#   "boot"     active slot | previous slot | trial | last failure
#   "starts"   slot | starts of that confirmed slot since it last reported
#              healthy (power-on starts not counted)
#   "floor"    the version floor (4, big-endian): the highest version of an
#              image confirmed healthy; only raised, never lowered. No image
#              below it is opened nor activated (an old, vulnerable one)
# The boot chooser runs before the firmware is imported: it boots a slot only
# if its "sN.ok" is there, and a new slot only once on trial; a trial that
# restarts before the running firmware confirms its health goes back to the
# previous slot (a crash, a hang caught by the watchdog, a power cut alike).
# A confirmed slot that restarts MAX_STARTS times (resets other than a
# power-on) without reporting healthy is left too: for the previous slot if
# it holds a whole, verified image, else for the built-in firmware, which is
# always there and is never left by this rule (the retries stop there).
import hashlib
from array import array

from meter import fwimage as F
from meter.compat import const
from meter.errors import DecodeError

BUILTIN = const(0)
SLOT_A = const(1)
SLOT_B = const(2)
CONFIRMED = const(0)
TRIAL_NEW = const(1)  # activated, not started yet
TRIAL_BOOTED = const(2)  # started once, health not confirmed yet

# the last failure (download-area register and the concentrator's report)
FAIL_NONE = const(0)
FAIL_SEAL = const(1)
FAIL_HASH = const(2)
FAIL_TABLE = const(3)
FAIL_FLASH = const(4)
FAIL_NO_BOOT = const(5)
FAIL_SLOT = const(6)
FAIL_START = const(7)
FAIL_OLD = const(8)
FAIL_REPEATED = const(9)
FAILURES = {
    FAIL_NONE: "none",
    FAIL_SEAL: "wrong seal",
    FAIL_HASH: "image hash mismatch",
    FAIL_TABLE: "bad file table",
    FAIL_FLASH: "flash refused",
    FAIL_NO_BOOT: "new firmware did not report healthy",
    FAIL_SLOT: "slot damaged",
    FAIL_START: "new firmware failed to start",
    FAIL_OLD: "version below the floor",
    FAIL_REPEATED: "firmware failed to start repeatedly",
}
MAX_STARTS = const(3)  # starts of a confirmed slot without a healthy report before it is left

# session stages
RECEIVING = const(1)
INSTALLED = const(2)

_HDR = "dl.hdr"
_LOG = "dl.log"
NONE = const(0xFFFF)
MAX_LOG = const(32768)  # records read back at most: 4 x fwimage.MAX_BLOCKS (a log grown by refused writes)
_BOOT = "boot"
_STARTS = "starts"
_FLOOR = "floor"
_CHUNK = const(256)


def folder(slot):
    return "s%d" % slot


def _ok(slot):
    return "s%d.ok" % slot


class Boot:
    """The boot record."""

    def __init__(self, store):
        self.store = store
        raw = store.get(_BOOT)
        if raw is None or len(raw) != 4 or raw[0] > SLOT_B or raw[1] > SLOT_B or raw[2] > TRIAL_BOOTED:
            raw = b"\0\0\0\0"
        self.active, self.previous, self.trial, self.failure = raw[0], raw[1], raw[2], raw[3]

    def save(self):
        return self.store.put(_BOOT, bytes((self.active, self.previous, self.trial, self.failure)))

    def header(self, slot):
        """The header of the image slot holds whole, None if none (BUILTIN: None)."""
        if slot == BUILTIN:
            return None
        raw = self.store.get(_ok(slot))
        try:
            return F.unpack_header(raw) if raw is not None else None
        except DecodeError:
            return None

    def usable(self, slot):
        return slot == BUILTIN or self.header(slot) is not None

    def rollback(self, failure):
        back = self.previous if self.usable(self.previous) else BUILTIN
        self.active, self.previous, self.trial, self.failure = back, BUILTIN, CONFIRMED, failure
        self.save()


def starts(store, slot):
    """Starts of confirmed slot `slot` since it last reported healthy."""
    raw = store.get(_STARTS)
    return raw[1] if raw is not None and len(raw) == 2 and raw[0] == slot else 0


def floor(store):
    """The version floor: no image below it is opened nor activated."""
    raw = store.get(_FLOOR)
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else 0


def raise_floor(store, version):
    """The floor to `version` if that is higher (never lower); False: the flash refused."""
    if version <= floor(store):
        return True
    return store.put(_FLOOR, version.to_bytes(4, "big"))


def choose(store, cause=None):
    """At boot, before the firmware is imported: (slot, trial) to run; cause:
    the board's reset cause ("power" is not counted against a slot). A slot,
    trial or not, must run under the watchdog (the caller arms it first)."""
    boot = Boot(store)
    if boot.trial == TRIAL_BOOTED:
        boot.rollback(FAIL_NO_BOOT)
    elif boot.active != BUILTIN and not boot.usable(boot.active):
        boot.rollback(FAIL_SLOT)
    elif boot.trial == TRIAL_NEW:
        boot.trial = TRIAL_BOOTED
        if not boot.save():  # a trial that cannot be recorded is not started
            boot.rollback(FAIL_FLASH)
    elif boot.active != BUILTIN and cause != "power":
        n = starts(store, boot.active)
        if n >= MAX_STARTS:
            boot.rollback(FAIL_REPEATED)  # to a verified previous slot, else the built-in firmware
            n = 0
        if boot.active == BUILTIN:
            store.remove(_STARTS)
        else:  # counted before it runs: a hang or a crash cannot skip the count
            store.put(_STARTS, bytes((boot.active, n + 1)))
    return boot.active, boot.trial != CONFIRMED


def healthy(store):
    """The running firmware passed its self-test: a trial slot stays, the
    count of unhealthy starts ends, and the floor rises to the running
    image's version (again at every healthy start: a cut between the
    confirmation and the floor is made good). True if a trial ended here."""
    boot = Boot(store)
    ended = False
    if boot.trial == TRIAL_BOOTED:
        boot.trial = CONFIRMED
        ended = boot.save()
        if not ended:
            return False
    if boot.trial == CONFIRMED and boot.active != BUILTIN:
        h = boot.header(boot.active)
        if h is not None:
            raise_floor(store, h.version)
        if store.get(_STARTS) is not None:
            store.remove(_STARTS)
    return ended


def confirm(store):
    """The running firmware passed its self-test (healthy). True if a trial
    ended here."""
    return healthy(store)


def _nothing():
    pass


class Session:
    """The download in progress (at most one), from its records."""

    def __init__(self, store):
        self.store = store
        self.header = None
        self.slot = BUILTIN
        self.stage = 0
        self.map = bytearray(0)  # bit i: block i received
        self.where = None  # block index -> its record number in the log (NONE: missing)
        self.received = 0
        raw = store.get(_HDR)
        if raw is not None and len(raw) == F.HEADER_LEN + 2:
            try:
                self.header = F.unpack_header(raw)
            except DecodeError:
                return
            self.slot, self.stage = raw[F.HEADER_LEN], raw[F.HEADER_LEN + 1]
            self._scan()

    def _rec(self):
        h = self.header
        assert h is not None
        return 2 + h.block

    def _scan(self):
        """The bitmap and the block positions, from the log."""
        h = self.header
        assert h is not None
        self.map = bytearray((h.blocks + 7) // 8)
        self.where = array("H", (NONE for _ in range(h.blocks)))
        self.received = 0
        rec = self._rec()
        size = self.store.size(_LOG)
        head = bytearray(2)
        for k in range(min(size // rec, MAX_LOG)):
            if self.store.read_into(_LOG, k * rec, head) != 2:
                break
            i = head[0] << 8 | head[1]
            if i < h.blocks and not self.has(i):
                self._mark(i, k)
        self.records = size // rec
        if size % rec:  # a record cut short by a refused write: the log is put back in step
            self._trim(self.records * rec)

    def _trim(self, n):
        buf = bytearray(_CHUNK)

        def pieces():
            done = 0
            while done < n:
                k = min(_CHUNK, n - done)
                self.store.read_into(_LOG, done, memoryview(buf)[0:k])
                yield memoryview(buf)[0:k]
                done += k

        self.store.put_chunks(_LOG, pieces())

    def _mark(self, i, k):
        where = self.where
        assert where is not None  # set by _scan, before any mark
        self.map[i >> 3] |= 1 << (i & 7)
        where[i] = k
        self.received += 1

    @property
    def image_id(self):
        return self.header.image_id if self.header is not None else b"\0\0\0\0"

    def _save(self):
        h = self.header
        assert h is not None  # only a session with a header saves
        return self.store.put(_HDR, h.pack() + bytes((self.slot, self.stage)))

    def open(self, header, boot):
        """Start (or resume: same image) the download of header's image into
        the slot that does not run. False: the flash refused."""
        if self.header is not None and self.header.pack() == header.pack():
            return True
        store = self.store
        slot = SLOT_B if boot.active == SLOT_A else SLOT_A
        if boot.previous == slot:  # its image will be overwritten: no rollback to it
            boot.previous = BUILTIN
            if not boot.save():
                return False
        store.remove(_ok(slot))
        store.remove(_HDR)  # (a cut from here on leaves no session, never a log under another header)
        store.remove(_LOG)
        self.header, self.slot, self.stage = header, slot, RECEIVING
        self.records = 0
        self._scan()
        return self._save()

    def abort(self):
        self.store.remove(_HDR)
        self.store.remove(_LOG)
        self.__init__(self.store)

    def has(self, index):
        return (self.map[index >> 3] >> (index & 7)) & 1

    def block_len(self, index):
        h = self.header
        assert h is not None
        return min(h.block, h.size - index * h.block)

    def put_block(self, index, data):
        """Keep block `index` (data: its bytes). Returns True if kept now;
        a block already kept is not written again (the first copy stays)."""
        h = self.header
        if h is None or self.stage != RECEIVING or index >= h.blocks or self.has(index):
            return False
        n = self.block_len(index)
        if len(data) != n:
            raise DecodeError("block", "%d bytes for block %d of %d" % (len(data), index, n))
        rec = bytearray(self._rec())
        rec[0] = index >> 8
        rec[1] = index & 0xFF
        rec[2:2 + n] = data
        if not self.store.append(_LOG, rec):
            self._scan()  # what the flash kept, and the log in step again
            return False
        self._mark(index, self.records)
        self.records += 1
        return True

    @property
    def complete(self):
        return self.header is not None and self.received == self.header.blocks

    def _read_into(self, pos, buf, n):
        """Read body bytes pos..pos+n into buf, block by block from the log."""
        h = self.header
        where = self.where
        assert h is not None and where is not None
        rec = self._rec()
        done = 0
        mv = memoryview(buf)
        while done < n:
            p = pos + done
            i = p // h.block
            k = min(n - done, h.block - p % h.block)
            if i >= h.blocks or where[i] == NONE:
                raise DecodeError("image body", "block %d missing" % i)
            got = self.store.read_into(_LOG, where[i] * rec + 2 + p % h.block, mv[done:done + k])
            if got != k:
                raise DecodeError("image body", "short read at %d" % p)
            done += k

    def _read(self, pos, n):
        buf = bytearray(n)
        self._read_into(pos, buf, n)
        return buf

    def _digest(self, keepalive):
        h = self.header
        assert h is not None
        sha = hashlib.sha256()
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        pos = 0
        while pos < h.size:
            n = min(_CHUNK, h.size - pos)
            self._read_into(pos, buf, n)
            sha.update(mv[0:n])
            pos += n
            if not pos & 0xFFF:
                keepalive()
        return sha.digest()

    def install(self, k1, keepalive=None):
        """Check the seal (K1) and the hash of a complete image, then write
        its files into the slot; FAIL_NONE or the failure. A failed image is
        forgotten (a new OPEN starts again). keepalive() is called every few
        KB: a long install that progresses keeps the watchdog fed."""
        h = self.header
        assert h is not None and self.complete
        keepalive = keepalive or _nothing
        if self.stage == INSTALLED:
            return FAIL_NONE
        store = self.store
        if store.get(_ok(self.slot)) == h.pack():  # installed, a cut came before its stage was kept
            return self._installed()
        if k1 is None or not F.seal_ok(k1, h):
            return self._fail(FAIL_SEAL)
        try:
            digest = self._digest(keepalive)
        except DecodeError:  # the log lost a block: start again
            digest = None
        if digest != h.digest:
            return self._fail(FAIL_HASH)
        name = folder(self.slot)
        store.remove(_ok(self.slot))
        store.wipe(name)
        base = store.folder(name)
        try:
            for path, pos, n in F.walk_body(self._read, h.size):
                keepalive()
                if not self._write_file(base, name + "/" + path, pos, n):
                    return FAIL_FLASH  # kept: the next try writes it again
        except (DecodeError, ValueError, UnicodeError):
            return self._fail(FAIL_TABLE)
        if not store.put(_ok(self.slot), h.pack()):
            return FAIL_FLASH
        return self._installed()

    def _installed(self):
        self.store.remove(_LOG)  # the slot holds it now: room for the next one
        self.stage = INSTALLED
        return FAIL_NONE if self._save() else FAIL_FLASH

    def _write_file(self, base, name, pos, n):
        store = self.store
        # sub-folders of the slot (meter/app/...), created on the way
        cut = name.find("/")
        while cut >= 0:
            store.folder(name[0:cut])
            cut = name.find("/", cut + 1)
        return store.put_chunks(name, self._pieces(pos, n))

    def _pieces(self, pos, n):
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        done = 0
        while done < n:
            k = min(_CHUNK, n - done)
            self._read_into(pos + done, buf, k)
            yield mv[0:k]
            done += k

    def _fail(self, code):
        self.abort()
        return code

    def activate(self, boot):
        """Make the installed slot the one to boot, on trial. False if the
        session is not installed or the flash refused."""
        if self.header is None or self.stage != INSTALLED or boot.header(self.slot) is None:
            return False
        if self.header.version < floor(self.store):  # an old image: never run again
            return False
        boot.previous = boot.active
        boot.active, boot.trial, boot.failure = self.slot, TRIAL_NEW, FAIL_NONE
        if not boot.save():  # the switch: one atomic record
            return False
        self.store.remove(_HDR)
        self.__init__(self.store)
        return True

    def first_gap(self, start):
        """The first multiple of 8 from `start` (one) whose byte of the bitmap lacks a block:
        what a MISSING answer starts from; the bitmap's end when nothing lacks."""
        blocks = self.header.blocks if self.header is not None else 0
        k = start >> 3
        while k < len(self.map):
            left = blocks - 8 * k
            if self.map[k] != (0xFF if left >= 8 else (1 << left) - 1):
                break
            k += 1
        return k << 3

    def bitmap_from(self, start, out, off, room):
        """Copy the bitmap bytes from block `start` (a multiple of 8) into
        out[off:]; returns how many bytes were copied."""
        first = start >> 3
        n = max(0, min(room, len(self.map) - first))
        out[off:off + n] = self.map[first:first + n]
        return n


def _bits(b):
    n = 0
    while b:
        b &= b - 1
        n += 1
    return n


def version_of(boot, slot, builtin):
    """Firmware version (number) of a slot; builtin: the built-in one's."""
    if slot == BUILTIN:
        return builtin
    h = boot.header(slot)
    return h.version if h is not None else 0
