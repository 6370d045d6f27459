# Software download, the meter's side (CLC/TS 50568-8 5.7.5, 9.1.7.1):
# REPROG_LOCAL and REPROG_BROADCAST served into the slot that does not run
# (meter/slots.py), the download-area registers, activation at a programmed
# time or by command, and the health confirmation of a new firmware.
# Payload layouts: meter/fwimage.py (project choices, docs/protocol.md).
#
# Rights: every REPROG_LOCAL operation needs the write key in ECB (as every
# request with an effect, docs/security.md W1); REPROG_BROADCAST carries only
# blocks, kept only for the session a write-key holder opened, under the image
# ID of its sealed header: a block of another image is dropped, and a forged
# one fails the hash of the whole image before anything can run.
import struct

from meter import attrs as A
from meter import fwimage as F
from meter import slots as S
from meter.compat import const
from meter.errors import DecodeError, Refused
from meter.model import registers as R
from meter.model.engine import Engine

# download state (register DOWNLOAD_STATE)
ST_IDLE = const(0)
ST_RECEIVING = const(1)
ST_READY = const(2)  # verified and installed, waiting for its activation
ST_PROGRAMMED = const(3)  # ready, activation time set
ST_RESTART = const(4)  # activated: the meter restarts into the new slot
ST_TRIAL = const(5)  # the new firmware runs, its health not confirmed yet
STATES = ("idle", "receiving", "ready", "programmed", "restarting", "trial")

_SETTINGS = ">HI"  # health window (s), activation time (UTC s, 0: none)
_MISSING_HEAD = const(10)  # ATTR | op | ID (4) | from (2) | received (2)


class Download(Engine):
    """Owner of the download-area registers and the REPROG services."""

    def __init__(self, model, store, app, builtin_version):
        Engine.__init__(self, model)
        self.store = store
        self.app = app
        self.builtin = builtin_version
        self.session = S.Session(store)
        self.boot = S.Boot(store)
        self.restart_due = False  # the runtime restarts the board when set
        self.keepalive = None  # the board watchdog's feed, while an install runs (the runtime sets it)
        self.stats = {"blocks": 0, "dropped": 0}
        model.register("download", self)

    # ---- registers
    def state(self):
        s = self.session
        if self.restart_due:
            return ST_RESTART
        if s.header is not None:
            if s.stage != S.INSTALLED:
                return ST_RECEIVING
            return ST_PROGRAMMED if self.activation_time() else ST_READY
        return ST_TRIAL if self.boot.trial != S.CONFIRMED else ST_IDLE

    def settings(self):
        return struct.unpack(_SETTINGS, self.model.get(R.DOWNLOAD_SETTINGS))

    def activation_time(self):
        return self.settings()[1]

    def health_window_s(self):
        return self.settings()[0]

    def reg_get(self, reg):
        s, b = self.session, self.boot
        if reg == R.DOWNLOAD_STATE:
            h = s.header
            return struct.pack(">BBHHBI", self.state(), s.slot, s.received, h.blocks if h is not None else 0,
                               b.failure, struct.unpack(">I", s.image_id)[0])
        if reg == R.DOWNLOAD_FLOOR:
            return struct.pack(">I", S.floor(self.store))
        if reg == R.DOWNLOAD_VERSIONS:
            return struct.pack(">BBIII", b.active, b.previous, self.builtin,
                               S.version_of(b, S.SLOT_A, self.builtin), S.version_of(b, S.SLOT_B, self.builtin))
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg != R.DOWNLOAD_SETTINGS or struct.unpack(_SETTINGS, raw)[0] >= 10

    # ---- services
    def _k1(self):
        sec = self.model.owner(R.LMON)  # the security state (meter/app/auth.py)
        keys = sec.keystore.keys() if sec is not None else None
        return keys.write if keys is not None else None

    def _failed(self, code):
        self.boot.failure = code
        self.boot.save()

    def local(self, req, off, n, room, grant):
        """REPROG_LOCAL: the write key's operations (meter/fwimage.py)."""
        if grant != R.ACC_WRITE_KEY:
            raise Refused(A.NACK_ACCESS_DENIED)
        if n < 1:
            raise Refused(A.NACK_BAD_LENGTH)
        op = req[off]
        if op == F.OP_OPEN:
            return self._open(req, off + 1, n - 1)
        if op == F.OP_BLOCK:
            self._block(req, off + 1, n - 1, True)
            return self.app.ack(True)
        if op == F.OP_MISSING:
            return self._missing(req, off + 1, n - 1, room)
        if op == F.OP_ACTIVATE:
            return self._activate(req, off + 1, n - 1)
        if op == F.OP_ABORT and n == 1:
            self.session.abort()
            self.model.keep(R.DOWNLOAD_SETTINGS, struct.pack(_SETTINGS, self.health_window_s(), 0))
            return self.app.ack(True)
        raise Refused(A.NACK_BAD_VALUE)

    def broadcast(self, req, off, n, room, grant):
        """REPROG_BROADCAST: a block, never an answer (one frame for a section)."""
        try:
            self._block(req, off, n, False)
        except Refused:
            self.stats["dropped"] += 1
        return 0

    def _open(self, req, off, n):
        if n != F.HEADER_LEN and n != F.HEADER_LEN + 4:
            raise Refused(A.NACK_BAD_LENGTH)
        try:
            h = F.unpack_header(bytes(req[off:off + n]))
        except DecodeError:
            raise Refused(A.NACK_BAD_VALUE)
        k1 = self._k1()
        if k1 is None or not F.seal_ok(k1, h):
            self._failed(S.FAIL_SEAL)
            raise Refused(A.NACK_BAD_VALUE)
        if h.version < S.floor(self.store):  # an old image (maybe a vulnerable one): never again
            self._failed(S.FAIL_OLD)
            raise Refused(A.NACK_BAD_VALUE)
        if not self.session.open(h, self.boot):
            raise Refused(A.NACK_NOT_STORED)
        # the activation time it carries (none: 0, an ACTIVATE later); the one of an earlier image goes
        when = struct.unpack(">I", bytes(req[off + F.HEADER_LEN:off + n]))[0] if n > F.HEADER_LEN else 0
        if when != self.activation_time():
            if self.model.keep(R.DOWNLOAD_SETTINGS, struct.pack(_SETTINGS, self.health_window_s(), when)):
                raise Refused(A.NACK_NOT_STORED)
        return self.app.ack(True)

    def _session_for(self, req, off):
        s = self.session
        if s.header is None or bytes(req[off:off + F.ID_LEN]) != s.image_id:
            raise Refused(A.NACK_BAD_VALUE)
        return s

    def _block(self, req, off, n, strict):
        if n <= F.BLOCK_HEAD:
            raise Refused(A.NACK_BAD_LENGTH)
        s = self._session_for(req, off)
        index = req[off + 4] << 8 | req[off + 5]
        try:
            kept = s.put_block(index, memoryview(req)[off + F.BLOCK_HEAD:off + n])
        except DecodeError:
            raise Refused(A.NACK_BAD_LENGTH)
        if not kept:
            self.stats["dropped"] += 1
            return
        self.stats["blocks"] += 1
        self._install_if_complete(s)

    def _install_if_complete(self, s):
        """Check and install a complete image not installed yet: on its last block, or on the
        next MISSING or ACTIVATE after a power cut or a reset cut the first try short (every
        block is there: nothing else would start it again). A failed image is forgotten."""
        if s.complete and s.stage != S.INSTALLED:
            code = s.install(self._k1(), self.keepalive)
            if code != S.FAIL_NONE:
                self._failed(code)

    def _missing(self, req, off, n, room):
        if n != F.ID_LEN + 2:
            raise Refused(A.NACK_BAD_LENGTH)
        s = self._session_for(req, off)
        self._install_if_complete(s)
        if s.header is None:  # its install failed: the state register says why
            raise Refused(A.NACK_BAD_VALUE)
        # from the first byte of the bitmap, at or after the index asked, that lacks a block:
        # a meter that lacks nothing there answers in one exchange, whatever the image's size
        start = s.first_gap((req[off + 4] << 8 | req[off + 5]) & ~7)
        out = self.app.resp
        out[0] = A.REPROG_LOCAL
        out[1] = F.OP_MISSING_RESP
        out[2:6] = s.image_id
        struct.pack_into(">HH", out, 6, start, s.received)
        return _MISSING_HEAD + s.bitmap_from(start, out, _MISSING_HEAD, room - _MISSING_HEAD)

    def _activate(self, req, off, n):
        if n != F.ID_LEN + 4:
            raise Refused(A.NACK_BAD_LENGTH)
        s = self._session_for(req, off)
        self._install_if_complete(s)
        if s.stage != S.INSTALLED or s.header is None:
            raise Refused(A.NACK_BAD_VALUE)
        when = struct.unpack(">I", bytes(req[off + 4:off + 8]))[0]
        if when:
            if self.model.keep(R.DOWNLOAD_SETTINGS, struct.pack(_SETTINGS, self.health_window_s(), when)):
                raise Refused(A.NACK_NOT_STORED)
        elif not self.activate():
            raise Refused(A.NACK_NOT_STORED)
        return self.app.ack(True)

    # ---- activation and health
    def activate(self):
        """Switch to the installed slot (on trial); the runtime restarts."""
        if not self.session.activate(self.boot):
            h = self.session.header
            if h is not None and h.version < S.floor(self.store):  # the floor rose since the OPEN
                self.session.abort()
                self._failed(S.FAIL_OLD)
            return False
        if self.activation_time():
            self.model.keep(R.DOWNLOAD_SETTINGS, struct.pack(_SETTINGS, self.health_window_s(), 0))
        self.restart_due = True
        return True

    def tick(self, now_s):
        """The programmed activation, when its time has come."""
        when = self.activation_time()
        if when and now_s >= when and self.session.stage == S.INSTALLED and not self.restart_due:
            self.activate()

    def confirm(self):
        """The self-test passed: a trial slot stays."""
        done = S.confirm(self.store)
        self.boot = S.Boot(self.store)
        return done


def attach(node, model, store):
    """The download engine on a meter node: its services in the node's
    application layer, its registers in the data model."""
    from meter import VERSION

    dl = Download(model, store, node.app, F.version_number(VERSION))
    node.app.services[A.REPROG_LOCAL] = dl.local
    node.app.services[A.REPROG_BROADCAST] = dl.broadcast
    return dl
