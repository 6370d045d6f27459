# Download slots on the flash store and the boot choice between them.
#
# Three places a firmware runs from: the built-in one (frozen in the MCU's
# flash, or the source tree on the emulated board), and two slots, A and B,
# each a folder of .mpy files on the store ("s1/", "s2/"). A download goes
# into the slot that does not run. Its records, each written atomically
# (meter/storage.py), so that a power cut at any instant leaves a state this
# module reads back:
#   "dl.hdr"   the session: image header (64) | target slot (1) | stage (1)
#   "dl.map"   the block bitmap (bit i of byte i // 8, LSB first: block i kept)
#   "dl.N"     the image body, blocks written in place, CHUNK blocks a record
#              (a write in the middle of a littlefs file rewrites the rest
#              of it: small records keep a block's cost flat). At most the
#              block in flight is lost: the bitmap is written after its block
#   "sN.ok"    the header of the image slot N holds whole; written after the
#              last file, removed before the first one is touched
#   "boot"     active slot | previous slot | trial | last failure
# The boot chooser runs before the firmware is imported: it boots a slot only
# if its "sN.ok" is there, and a new slot only once on trial; a trial that
# restarts before the running firmware confirms its health goes back to the
# previous slot (a crash, a hang caught by the watchdog, a power cut alike).
import hashlib
import struct

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
FAILURES = {
    FAIL_NONE: "none",
    FAIL_SEAL: "wrong seal",
    FAIL_HASH: "image hash mismatch",
    FAIL_TABLE: "bad file table",
    FAIL_FLASH: "flash refused",
    FAIL_NO_BOOT: "new firmware did not report healthy",
    FAIL_SLOT: "slot damaged",
}

# session stages
RECEIVING = const(1)
INSTALLED = const(2)

_HDR = "dl.hdr"
_MAP = "dl.map"
CHUNK = const(32)  # blocks a staging record
_BOOT = "boot"
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


def choose(store):
    """At boot, before the firmware is imported: (slot, trial) to run. A
    trial must run under the watchdog (the caller arms it first)."""
    boot = Boot(store)
    if boot.trial == TRIAL_BOOTED:
        boot.rollback(FAIL_NO_BOOT)
    elif boot.active != BUILTIN and not boot.usable(boot.active):
        boot.rollback(FAIL_SLOT)
    elif boot.trial == TRIAL_NEW:
        boot.trial = TRIAL_BOOTED
        if not boot.save():  # a trial that cannot be recorded is not started
            boot.rollback(FAIL_FLASH)
    return boot.active, boot.trial != CONFIRMED


def confirm(store):
    """The running firmware passed its self-test: its slot stays. True if
    a trial ended here."""
    boot = Boot(store)
    if boot.trial != TRIAL_BOOTED:
        return False
    boot.trial = CONFIRMED
    return boot.save()


class Session:
    """The download in progress (at most one), from its records."""

    def __init__(self, store):
        self.store = store
        self.header = None
        self.slot = BUILTIN
        self.stage = 0
        self.map = bytearray(0)
        self.received = 0
        raw = store.get(_HDR)
        if raw is not None and len(raw) == F.HEADER_LEN + 2:
            try:
                self.header = F.unpack_header(raw)
            except DecodeError:
                return
            self.slot, self.stage = raw[F.HEADER_LEN], raw[F.HEADER_LEN + 1]
            bits = store.get(_MAP)
            need = (self.header.blocks + 7) // 8
            self.map = bytearray(bits) if bits is not None and len(bits) == need else bytearray(need)
            self.received = sum(_bits(b) for b in self.map)

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
        self._drop_staging()
        self.header, self.slot, self.stage = header, slot, RECEIVING
        self._drop_staging()  # (a staging record of the new image's size, left by a cut)
        self.map = bytearray((header.blocks + 7) // 8)
        self.received = 0
        return store.put(_MAP, self.map) and self._save()

    def abort(self):
        self._drop_staging()
        for name in (_HDR, _MAP):
            self.store.remove(name)
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
        if len(data) != self.block_len(index):
            raise DecodeError("block", "%d bytes for block %d of %d" % (len(data), index, self.block_len(index)))
        if not self.store.write_at(_chunk(index // CHUNK), (index % CHUNK) * h.block, data):
            return False
        self.map[index >> 3] |= 1 << (index & 7)
        if not self.store.put(_MAP, self.map):
            self.map[index >> 3] &= ~(1 << (index & 7)) & 0xFF
            return False
        self.received += 1
        return True

    @property
    def complete(self):
        return self.header is not None and self.received == self.header.blocks

    def _read_into(self, pos, buf, n):
        """Read body bytes pos..pos+n into buf (across staging records)."""
        h = self.header
        assert h is not None
        per = CHUNK * h.block
        done = 0
        mv = memoryview(buf)
        while done < n:
            p = pos + done
            k = min(n - done, per - p % per)
            got = self.store.read_into(_chunk(p // per), p % per, mv[done:done + k])
            if got != k:
                raise DecodeError("image body", "short read at %d" % p)
            done += k

    def _read(self, pos, n):
        buf = bytearray(n)
        self._read_into(pos, buf, n)
        return buf

    def _drop_staging(self):
        h = self.header
        if h is not None:
            for k in range((h.blocks + CHUNK - 1) // CHUNK):
                self.store.remove(_chunk(k))

    def _digest(self):
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
        return sha.digest()

    def install(self, k1):
        """Check the seal (K1) and the hash of a complete image, then write
        its files into the slot; FAIL_NONE or the failure. A failed image is
        forgotten (a new OPEN starts again)."""
        h = self.header
        assert h is not None and self.complete
        if self.stage == INSTALLED:
            return FAIL_NONE
        store = self.store
        if store.get(_ok(self.slot)) == h.pack():  # installed, a cut came before its stage was kept
            return self._installed()
        if k1 is None or not F.seal_ok(k1, h):
            return self._fail(FAIL_SEAL)
        try:
            digest = self._digest()
        except DecodeError:  # a staging record lost: start again
            digest = None
        if digest != h.digest:
            return self._fail(FAIL_HASH)
        name = folder(self.slot)
        store.remove(_ok(self.slot))
        store.wipe(name)
        base = store.folder(name)
        try:
            for path, pos, n in F.walk_body(self._read, h.size):
                if not self._write_file(base, name + "/" + path, pos, n):
                    return FAIL_FLASH  # kept: the next try writes it again
        except (DecodeError, ValueError, UnicodeError):
            return self._fail(FAIL_TABLE)
        if not store.put(_ok(self.slot), h.pack()):
            return FAIL_FLASH
        return self._installed()

    def _installed(self):
        self._drop_staging()  # the slot holds it now: room for the next one
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
        boot.previous = boot.active
        boot.active, boot.trial, boot.failure = self.slot, TRIAL_NEW, FAIL_NONE
        if not boot.save():  # the switch: one atomic record
            return False
        self.store.remove(_HDR)
        self.store.remove(_MAP)
        self.__init__(self.store)
        return True

    def bitmap_from(self, start, out, off, room):
        """Copy the bitmap bytes from block `start` (a multiple of 8) into
        out[off:]; returns how many bytes were copied."""
        first = start >> 3
        n = max(0, min(room, len(self.map) - first))
        out[off:off + n] = self.map[first:first + n]
        return n


def _chunk(k):
    return "dl.%d" % k


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


def pack_state(fmt, *values):
    return struct.pack(fmt, *values)
