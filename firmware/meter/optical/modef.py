# Mode F of the optical port, sans-io: Original-SMITP application messages
# between a hand-held unit and the meter, after the IEC 62056-21 prologue
# (meter/optical/iec62056.py) switched the line to 8N1 at the agreed rate. Annex E of
# CLC/TS 50568-8 defines mode F but is not public; this framing is the
# project's (docs/protocol.md, "Optical port"):
#
#   SOF 0x68 | LEN | CTL | LSAP | LLC data (ATTR + APDU, 1..128) | CRC-32 (4)
#   LEN   bytes from CTL to the end of the LLC data (3..130)
#   CTL   bit 7: sent by the meter (so an echo of its own frame is ignored);
#         bits 0-6 zero
#   LSAP  DSAP (high nibble) | ECC (low nibble), as on the PLC (meter/link/llc.py)
#   CRC   zlib CRC-32 of LEN .. end of the LLC data, least significant byte first
#
# DSAP (public: the host interfaces name 0x01 and 0x03 "F mode"; which is
# which is the project's reading, the PLC pair 0x00 application / 0x02
# management with bit 0 marking F mode):
#   0x01  the application services of DSAP 0x00 on the PLC (read, write,
#         tables, commands, their authenticated variants): MeterNode.serve_lsdu,
#         so the same LMON rules and key rights apply;
#   0x03  local provisioning of keys and optical port parameters (LocalConfig):
#         every item needs an authenticated request, writes the write key with
#         encryption.
# Any other DSAP gets NACK A-Node "unsupported service". Each request frame
# gets one answer frame with the request's DSAP. The session ends with the
# IEC 62056-21 break message (SOH B 0 ETX BCC) outside a frame, after
# OPT_F_IDLE_MS without a valid frame, or when failed authentications lock
# the port (meter/optical/iec62056.py Lockout). Garbage, bad checks and partial frames
# (OPT_F_INTERCHAR_MS) are dropped and counted; the reader resynchronises on
# the next SOF.
from meter.compat import const, ticks_add, ticks_diff
from meter import attrs as A
from meter.model import registers as R
from meter import timers as T
from meter.app.services import Responder, write_nack
from meter.crypto import crc32
from meter.link.llc import DSAP_FMODE_1, DSAP_FMODE_3
from meter.link.mac import MAX_LLC_DATA

SOF = const(0x68)
CTL_METER = const(0x80)
HEADER_LEN = const(4)  # SOF LEN CTL LSAP
CRC_LEN = const(4)
MIN_LEN = const(3)  # CTL LSAP ATTR
MAX_LEN = const(130)  # CTL LSAP + 128 bytes of LLC data
MAX_FRAME = const(136)  # SOF LEN + MAX_LEN + CRC
BREAK = b"\x01B0\x03q"  # IEC 62056-21 break message (BCC "q")

# ---- local provisioning items (DSAP 0x03), project choice
# (item 0x0001 held the keys; they change by the key-change procedure now,
# meter/app/keychange.py, on either DSAP)
ITEM_OPT_BAUD = const(0x0002)  # 1 byte: highest rate the identification offers, 0..6
ITEM_OPT_ADDRESS = const(0x0003)  # 16 bytes: IEC 62056-21 device address, ASCII, zero padded
_ITEMS = {  # id: (size, read access, write access)
    ITEM_OPT_BAUD: (1, R.ACC_READ_KEY, R.ACC_WRITE_KEY),
    ITEM_OPT_ADDRESS: (16, R.ACC_READ_KEY, R.ACC_WRITE_KEY),
}


def encode(out, dsap, ecc, data, from_meter=True):
    """A mode F frame carrying LLC data `data` into bytearray `out`; returns its length."""
    n = len(data)
    if n < 1 or n > MAX_LLC_DATA:
        raise ValueError("LLC data must be 1..128 bytes")
    out[0] = SOF
    out[1] = n + 2
    out[2] = CTL_METER if from_meter else 0
    out[3] = ((dsap & 0x0F) << 4) | (ecc & 0x0F)
    out[HEADER_LEN:HEADER_LEN + n] = data
    end = HEADER_LEN + n
    c = crc32(memoryview(out)[1:end])
    out[end] = c & 0xFF
    out[end + 1] = (c >> 8) & 0xFF
    out[end + 2] = (c >> 16) & 0xFF
    out[end + 3] = (c >> 24) & 0xFF
    return end + CRC_LEN


def frame_ok(buf, total):
    """Does buf[0:total] (SOF and LEN already checked) carry a good CRC?"""
    end = total - CRC_LEN
    c = crc32(memoryview(buf)[1:end])
    return (buf[end] | (buf[end + 1] << 8) | (buf[end + 2] << 16) | (buf[end + 3] << 24)) == c


class FrameReader:
    """Byte stream in, whole frames out. Holds at most one partial frame;
    everything that is not part of a good frame is dropped and counted, and
    the IEC break message among the dropped bytes is noticed (`breaks`)."""

    def __init__(self):
        self.buf = bytearray(2 * MAX_FRAME)
        self.n = 0
        self._brk = 0  # characters of BREAK matched so far
        self._last = 0  # ticks of the last byte of the partial frame
        self.breaks = 0
        self.bad = 0  # frames with a bad LEN or CRC
        self.junk = 0  # bytes outside frames
        self.timeouts = 0  # partial frames dropped after a gap

    def feed(self, data, now):
        """Append what fits of data; returns how many bytes were taken."""
        self._last = now
        k = min(len(data), len(self.buf) - self.n)
        self.buf[self.n:self.n + k] = data[:k]
        self.n += k
        return k

    def stale(self, now):
        """Has the partial frame waited longer than OPT_F_INTERCHAR_MS?"""
        return self.n > 0 and ticks_diff(now, self._last) > T.OPT_F_INTERCHAR_MS

    def skip(self):
        """Drop the first byte of a stale partial frame; a frame may start
        after it (a false SOF with a long LEN hid it)."""
        self._discard(1)

    def partial_due(self):
        """Ticks at which the partial frame goes stale, or None."""
        return ticks_add(self._last, T.OPT_F_INTERCHAR_MS + 1) if self.n else None

    def _discard(self, k, junk=True):
        buf = self.buf
        if junk:
            self.junk += k
            for i in range(k):  # the break message only counts outside frames
                b = buf[i]
                if b == BREAK[self._brk]:
                    self._brk += 1
                    if self._brk == len(BREAK):
                        self.breaks += 1
                        self._brk = 0
                else:
                    self._brk = 1 if b == BREAK[0] else 0
        buf[0:self.n - k] = buf[k:self.n]
        self.n -= k

    def next_frame(self):
        """The next good frame (bytes, SOF .. CRC), or None until more bytes come."""
        buf = self.buf
        while self.n:
            i = 0
            while i < self.n and buf[i] != SOF:
                i += 1
            if i:
                self._discard(i)
                continue
            if self.n < 2:
                return None
            length = buf[1]
            if length < MIN_LEN or length > MAX_LEN:
                self.bad += 1
                self._discard(1)
                continue
            total = 2 + length + CRC_LEN
            if self.n < total:
                return None
            if not frame_ok(buf, total):
                self.bad += 1
                self._discard(1)  # resynchronise on the next SOF inside it
                continue
            frame = bytes(buf[0:total])
            self._brk = 0
            self._discard(total, False)
            return frame
        return None


class ModeFSession:
    """One mode F session on the optical port (see OpticalPort for the interface)."""

    seven_e1 = False  # 8N1

    def __init__(self, services, lockout):
        self.services = services
        self.lockout = lockout
        self.reader = FrameReader()
        self.done = None
        self._out = bytearray()
        self._frame = bytearray(MAX_FRAME)
        self._idle_due = 0
        self.stats = {"frames": 0, "answers": 0, "echoes": 0}

    def start(self, now):
        self._idle_due = ticks_add(now, T.OPT_F_IDLE_MS)

    def receive(self, data, now):
        self._expire(now)
        i = 0
        mv = memoryview(data)
        while i < len(data) and self.done is None:
            i += self.reader.feed(mv[i:], now)
            self._frames(now)

    def _frames(self, now):
        r = self.reader
        while self.done is None:
            if r.breaks:
                self.done = "break"
                return
            frame = r.next_frame()
            if frame is None:
                if r.breaks:
                    self.done = "break"
                return
            self._idle_due = ticks_add(now, T.OPT_F_IDLE_MS)
            if frame[2] & CTL_METER:
                self.stats["echoes"] += 1
                continue
            self._serve(frame, now)

    def _serve(self, frame, now):
        self.stats["frames"] += 1
        lsap = frame[3]
        dsap = lsap >> 4
        n = frame[1] - 2
        size, ecc, answer, auth = self.services.serve(dsap, frame, HEADER_LEN, n, lsap & 0x0F, now)
        if size:
            m = encode(self._frame, dsap, ecc, memoryview(answer)[0:size])
            self._out.extend(memoryview(self._frame)[0:m])
            self.stats["answers"] += 1
        if auth > 0:
            self.lockout.succeeded()
        elif auth < 0 and self.lockout.failed(now):
            self.done = "locked"

    def _expire(self, now):
        r = self.reader
        if r.stale(now):
            r.timeouts += 1
            while r.n and self.done is None:
                r.skip()
                self._frames(now)

    def poll(self, now):
        if self.done is not None:
            return
        self._expire(now)
        if self.done is None and ticks_diff(now, self._idle_due) >= 0:
            self.done = "idle"

    def next_timeout(self, now):
        if self.done is not None:
            return 0
        due = self.reader.partial_due()
        t = ticks_diff(self._idle_due, now)
        if due is not None:
            t = min(t, ticks_diff(due, now))
        return max(0, t)

    def data_to_send(self):
        if not self._out:
            return None
        out = bytes(self._out)
        self._out = bytearray()
        return out


class Services:
    """What mode F frames reach (module comment): serve(dsap, buf, off, n,
    ecc) -> (answer length, answer ECC, answer buffer, auth), auth 1 after an
    accepted authenticated request, -1 after a failed authentication, else 0."""

    def __init__(self, node, settings, clock=None):
        self.node = node
        self.config = None
        self.local = None
        if node.secure is not None:
            from meter.app.auth import SecureLayer

            s = node.secure
            self.config = LocalConfig(settings)
            self.local = SecureLayer(s.aca, self.config, s.lmon, s.keystore, s.cache, clock or (lambda: 0),
                                     s.on_keys_changed)
        self._nack = bytearray(4)

    def serve(self, dsap, buf, off, n, ecc, now=None):
        try:
            return self._serve(dsap, buf, off, n, ecc, now)
        except Exception as e:  # noqa: BLE001 - the guard: a fault costs this frame only
            return self.node._fault("optical", e), 0, self._nack, 0

    def _serve(self, dsap, buf, off, n, ecc, now):
        local = self.local
        config = self.config  # set with local
        if dsap == DSAP_FMODE_1:
            layer = self.node.secure
            before = _counts(layer)
            size, ecc, answer = self.node.serve_lsdu(buf, off, n, ecc, MAX_LLC_DATA, now)
        elif dsap == DSAP_FMODE_3 and local is not None and config is not None:
            layer = local
            before = _counts(layer)
            if layer.handles(buf[off]):
                size, ecc = layer.handle(buf, off, n, ecc, MAX_LLC_DATA, now)
                answer = layer.resp
            else:  # plain: every item needs a key, so this is refused
                size = config.handle(buf, off, n, MAX_LLC_DATA) if ecc == 0 else config.refuse()
                answer = config.resp
                ecc = 0  # a plain answer goes in clear (docs/protocol.md, plain ATTRs with ECC)
        else:
            return write_nack(self._nack, A.NACK_UNSUPPORTED), 0, self._nack, 0
        after = _counts(layer)
        auth = -1 if after[1] > before[1] else 1 if after[0] > before[0] else 0
        return size, ecc, answer, auth


def _counts(layer):
    if layer is None:
        return (0, 0)
    st = layer.stats
    return (st["accepted"], st["auth_failures"])


class LocalConfig(Responder):
    """Local provisioning (DSAP 0x03): READ.REQ / WRITE.REQ over the items
    above, in the application layer's layouts (meter/app/services.py)."""

    def __init__(self, settings):
        Responder.__init__(self)
        self.settings = settings
        self.stats["writes"] = 0

    def serves(self, attr):
        return attr == A.READ_REQ or attr == A.WRITE_REQ

    def handle(self, req, off, n, max_resp, grant=R.ACC_PLAIN):
        self.stats["requests"] += 1
        self.changed = False
        attr = req[off]
        if attr == A.READ_REQ:
            size = self._read(req, off + 1, n - 1, grant)
        elif attr == A.WRITE_REQ:
            size = self._write(req, off + 1, n - 1, grant)
        else:
            size = self._nack(A.NACK_UNSUPPORTED)
        if size > max_resp:
            size = self._nack(A.NACK_TOO_LONG)
        return size

    def _value(self, item, out, pos):
        s = self.settings
        if item == ITEM_OPT_BAUD:
            out[pos] = s.max_baud
            return pos + 1
        a = s.address
        out[pos:pos + 16] = a + bytes(16 - len(a))
        return pos + 16

    def _read(self, req, off, n, grant):
        if n < 2 or n & 1:
            return self._nack(A.NACK_BAD_LENGTH)
        out = self.resp
        out[0] = A.READ_RESP
        pos = 1
        for p in range(off, off + n, 2):
            item = (req[p] << 8) | req[p + 1]
            spec = _ITEMS.get(item)
            if spec is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, item)
            if not R.allowed(spec[1], grant):
                return self._nack(A.NACK_ACCESS_DENIED, item)
            if pos + spec[0] > MAX_LLC_DATA:
                return self._nack(A.NACK_TOO_LONG, item)
            pos = self._value(item, out, pos)
        return pos

    def _write(self, req, off, n, grant):
        end = off + n
        p = off
        if n < 3:
            return self._nack(A.NACK_BAD_LENGTH)
        while p < end:  # all checked before anything is applied
            if p + 2 > end:
                return self._nack(A.NACK_BAD_LENGTH)
            item = (req[p] << 8) | req[p + 1]
            spec = _ITEMS.get(item)
            if spec is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, item)
            if grant == R.ACC_READ_KEY or not R.allowed(spec[2], grant):
                return self._nack(A.NACK_ACCESS_DENIED, item)
            if p + 2 + spec[0] > end:
                return self._nack(A.NACK_BAD_LENGTH, item)
            if not _valid(item, req, p + 2):
                return self._nack(A.NACK_BAD_VALUE, item)
            p += 2 + spec[0]
        p = off
        s = self.settings
        save = False
        while p < end:
            item = (req[p] << 8) | req[p + 1]
            v = p + 2
            if item == ITEM_OPT_BAUD:
                s.max_baud = req[v]
                save = True
            else:
                a = bytes(req[v:v + 16])
                k = 16
                while k and a[k - 1] == 0:
                    k -= 1
                s.address = a[:k]
                save = True
            p = v + _ITEMS[item][0]
        if save and not s.save():
            return self._nack(A.NACK_BAD_VALUE, ITEM_OPT_BAUD)  # the flash refused the settings
        self.stats["writes"] += 1
        return self.ack(True)


def _valid(item, req, v):
    if item == ITEM_OPT_BAUD:
        return req[v] <= 6
    if item == ITEM_OPT_ADDRESS:
        zeros = False
        for i in range(v, v + 16):
            c = req[i]
            if c == 0:
                zeros = True
            elif zeros or c < 0x21 or c > 0x7E or c in b"/?!":
                return False  # printable, no sign-on characters, zeros only at the end
        return True
    return True
