# ST7580 local port, host side (UM0932 Rev 3, section 3), sans-io.
#
# The ST7580 PLC modem talks to its host over a UART plus one request line,
# T_REQ. The modem is the master: it sends a local frame whenever it likes and
# the host answers ACK/NAK at once. To send, the host drives T_REQ low, waits
# for the status message (0x3F + status byte), writes its frame, raises T_REQ
# once the STX byte is out, waits for ACK/NAK and then for the confirm or
# error frame.
#
#   local frame   STX(0x02 | 0x03 repeat) LEN CMD DATA[LEN] CS_lo CS_hi
#   CS            16-bit sum of LEN, CMD and DATA, low byte first
#   ACK 0x06, NAK 0x15, status message 0x3F STATUS (modem -> host only)
#
# This module holds the framing codec (checksum, encode_frame, decode_frame),
# FrameReceiver (byte-stream parser with the TIC rule and 0x03 de-duplication)
# and ST7580, the host-side link state machine. Nothing here does I/O, sleeps
# or reads a clock: the caller passes `now` in ms as from ticks_ms(), writes
# what data_to_send() returns and drives the T_REQ pin to `treq`.
# Project choices (timers between attempts, busy back-off, event mapping) are
# marked "project choice" and listed in docs/protocol.md.
from meter.compat import const, ticks_add, ticks_diff
from meter.errors import DecodeError

# ---- wire bytes (UM0932 section 3.2)
STX = const(0x02)
STX_REPEAT = const(0x03)  # used by the modem only, for its single repeat
ACK = const(0x06)
NAK = const(0x15)
STATUS_MSG = const(0x3F)  # first byte of the status message
MAX_DATA = const(255)
MAX_FRAME = const(260)  # STX LEN CMD DATA[255] CS CS

# ---- command codes (UM0932 Tables 10-12, 15)
CMD_RESET_REQ = const(0x3C)
CMD_RESET_CNF = const(0x3D)
CMD_RESET_IND = const(0x3E)
CMD_RESET_ERR = const(0x3F)
CMD_MIB_WRITE_REQ = const(0x08)
CMD_MIB_WRITE_CNF = const(0x09)
CMD_MIB_WRITE_ERR = const(0x0B)
CMD_MIB_READ_REQ = const(0x0C)
CMD_MIB_READ_CNF = const(0x0D)
CMD_MIB_READ_ERR = const(0x0F)
CMD_MIB_ERASE_REQ = const(0x10)
CMD_MIB_ERASE_CNF = const(0x11)
CMD_MIB_ERASE_ERR = const(0x13)
CMD_PING_REQ = const(0x2C)
CMD_PING_CNF = const(0x2D)
CMD_PHY_DATA_REQ = const(0x24)
CMD_PHY_DATA_CNF = const(0x25)
CMD_PHY_DATA_IND = const(0x26)
CMD_PHY_DATA_ERR = const(0x27)
CMD_DL_DATA_REQ = const(0x50)
CMD_DL_DATA_CNF = const(0x51)
CMD_DL_DATA_IND = const(0x52)
CMD_DL_DATA_ERR = const(0x53)
CMD_SS_DATA_REQ = const(0x54)
CMD_SS_DATA_CNF = const(0x55)
CMD_SS_DATA_IND = const(0x56)
CMD_SS_DATA_ERR = const(0x57)
CMD_DL_SNIFFER_IND = const(0x5A)
CMD_SS_SNIFFER_IND = const(0x5E)
CMD_SYNTAX_ERR = const(0x36)
# Every service codes its confirm as request + 1 and its error as request + 3.
_CNF_OFFSET = const(1)
_ERR_OFFSET = const(3)

# ---- error codes carried by error frames (UM0932 Table 14)
ERR_WPL = const(0x02)  # wrong parameter length
ERR_WPV = const(0x03)  # wrong parameter value
ERR_BUSY = const(0x04)
ERR_THERMAL = const(0x0B)
ERR_GENERAL = const(0xFF)
ERR_SYNTAX = const(0x36)  # project choice: EV_ERROR code for a CMD_SyntaxError frame

# ---- status byte (UM0932 Table 8)
STATUS_CONFIG = const(0x01)  # 1 = auto-reconfiguration failed or MIB 00h/01h/02h still default
STATUS_TX = const(0x02)
STATUS_RX = const(0x04)
STATUS_BUSY = const(0x06)  # TX or RX on the power line: the host backs off
STATUS_LAYER_SHIFT = const(3)  # bits 3-4: 0 PHY, 1 DL, 2 SS, 3 not configured

# ---- BIO_ResetIndication byte (UM0932 section 3.3.1)
RESET_CAUSE_MASK = const(0x03)  # 0 RESETN or power-on, 1 watchdog, 2 BIO_ResetRequest
RESET_MIB0_DEFAULT = const(0x08)
RESET_MIB1_DEFAULT = const(0x10)
RESET_NEEDS_CONFIG = const(0x18)  # MIB 00h or 01h back to factory default: call configure()

# ---- MIB indices (UM0932 section 3.6)
MIB_MODEM_CONFIG = const(0x00)
MIB_PHY_CONFIG = const(0x01)
MIB_SS_KEY = const(0x02)
MIB_LAST_IND = const(0x04)
MIB_LAST_CNF = const(0x05)
MIB_PHY_COUNTERS = const(0x06)
MIB_DL_COUNTERS = const(0x07)
MIB_SS_COUNTERS = const(0x08)
MIB_TIMEOUTS = const(0x09)
MIB_FW_VERSION = const(0x0A)

# ---- modulations (options byte bits 4-6, indication byte 0 bits 0-2)
MOD_BPSK = const(0)
MOD_QPSK = const(1)
MOD_8PSK = const(2)
MOD_BFSK = const(3)
MOD_BPSK_CODED = const(4)
MOD_QPSK_CODED = const(5)
MOD_BPSK_PNA = const(7)

# ---- the project's modem set-up, in one place (project choices)
PHY_OPTIONS = const(0x44)  # PHY_Data options: high frequency of MIB 01h, B-PSK coded
PHY_MAX_PAYLOAD = const(250)  # ST library limit (the manual says 254)
MODEM_CONFIG = const(0x00)  # MIB 00h: PHY access mode, sniffer off
# MIB 01h: high 86000 Hz, low 72000 Hz (factory values: the M&M carrier is not
# public), RX on the high channel, PSK on both channels, current control on,
# TX gain 21, ZC delay 0, PSK preamble 32 bits, FSK fields at their defaults.
PHY_CONFIG = b"\x01\x4f\xf0\x01\x19\x40\x0e\x15\x00\x00\x02\x35\x9b\x58"

# ---- driver events (tuples returned by ST7580.next_event)
EV_RESET = const(1)  # (EV_RESET, reset_byte)
EV_PHY_DATA = const(2)  # (EV_PHY_DATA, payload, snr, modulation)
EV_CONFIRM = const(3)  # (EV_CONFIRM, request_cmd, data)
EV_ERROR = const(4)  # (EV_ERROR, request_cmd, error_code)
EV_TIMEOUT = const(5)  # (EV_TIMEOUT, request_cmd)

# ---- FrameReceiver message kinds (FrameReceiver.kind after feed)
MSG_NONE = const(0)  # data ran out: nothing complete
MSG_FRAME = const(1)  # a new good frame in .frame: answer ACK
MSG_DUP = const(2)  # a 0x03 repeat equal to the previous good frame: answer ACK, drop it
MSG_BAD = const(3)  # a complete frame with a wrong checksum or LEN above the cap: answer NAK
MSG_DROP = const(4)  # a partial frame dropped after a gap longer than TIC: no answer
MSG_ACK = const(5)
MSG_NAK = const(6)
MSG_STATUS = const(7)  # status message; the byte is in .status
MSG_JUNK = const(8)  # a stray byte outside any message


def checksum(data, start=0, stop=None):
    """16-bit sum of data[start:stop] (a frame's LEN, CMD and DATA bytes)."""
    if stop is None:
        stop = len(data)
    s = 0
    for i in range(start, stop):
        s += data[i]
    return s & 0xFFFF


def encode_into(buf, pos, cmd, data, stx=STX):
    """Write one local frame into buf at pos; returns the position after it.
    The caller checks the sizes (encode_frame does)."""
    n = len(data)
    buf[pos] = stx
    buf[pos + 1] = n
    buf[pos + 2] = cmd
    s = n + cmd
    p = pos + 3
    for i in range(n):
        b = data[i]
        buf[p] = b
        s += b
        p += 1
    buf[p] = s & 0xFF
    buf[p + 1] = (s >> 8) & 0xFF
    return p + 2


def encode_frame(cmd, data=b"", stx=STX):
    """One local frame as bytes. ValueError on a command, STX or length out of range."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError("CMD 0x%X out of range" % cmd)
    if stx != STX and stx != STX_REPEAT:
        raise ValueError("STX 0x%02X" % stx)
    if len(data) > MAX_DATA:
        raise ValueError("%d data bytes, at most 255" % len(data))
    buf = bytearray(len(data) + 5)
    encode_into(buf, 0, cmd, data, stx)
    return bytes(buf)


def decode_frame(frame):
    """One complete local frame -> (stx, cmd, data bytes). Raises DecodeError naming the field."""
    n = len(frame)
    if n < 5:
        raise DecodeError("frame", "%d bytes, at least 5" % n)
    stx = frame[0]
    if stx != STX and stx != STX_REPEAT:
        raise DecodeError("STX", "0x%02X is not 0x02 or 0x03" % stx)
    if frame[1] + 5 != n:
        raise DecodeError("LEN", "%d data bytes announced, %d present" % (frame[1], n - 5))
    cs = frame[n - 2] | (frame[n - 1] << 8)
    calc = checksum(frame, 1, n - 2)
    if cs != calc:
        raise DecodeError("CS", "0x%04X received, 0x%04X computed" % (cs, calc))
    return stx, frame[2], bytes(frame[3 : n - 2])


# FrameReceiver states
_R_HUNT = const(0)  # between messages
_R_LEN = const(1)  # STX seen, LEN next
_R_BODY = const(2)  # CMD, DATA and checksum, counted by LEN
_R_SKIP = const(3)  # LEN above the cap: swallow the announced bytes, then MSG_BAD
_R_STATUS = const(4)  # 0x3F seen, status byte next


class FrameReceiver:
    """Byte-stream parser for the local port, allocation-free per byte.

    Feed it with `pos = rx.feed(data, pos, now)` in a loop; after each call
    `rx.kind` says what completed (MSG_*), MSG_NONE when data ran out. A good
    frame stays in `rx.frame` (bytearray: STX LEN CMD DATA CS CS, `rx.total`
    bytes, `rx.mv` a memoryview of it) until the next MSG_FRAME. Two buffers
    alternate, so the previous good frame is still at hand to recognise a 0x03
    repeat (UM0932 section 3.2.7) without copying.

    A partial frame is dropped when the gap between two chunks exceeds tic_ms
    (MSG_DROP). Bytes of one feed call count as arriving together, so the caller
    should pass `now` taken when it read them. A 0x03 frame is a repeat only if
    it equals the last good frame and nothing was dropped in between (project
    choice: after a bad or dropped frame the repeat is that frame's, so it is
    delivered). The status message (0x3F) is parsed only while accept_status.
    """

    def __init__(self, tic_ms=10, max_data=MAX_DATA):
        if not 0 <= max_data <= MAX_DATA:
            raise ValueError("max_data %d" % max_data)
        size = max_data + 5
        a = bytearray(size)
        b = bytearray(size)
        self._bufs = (a, b)
        self._mvs = (memoryview(a), memoryview(b))
        self._wi = 0  # index of the buffer being filled
        self.frame = b
        self.mv = self._mvs[1]
        self.total = 0  # bytes of the last good frame; 0: none to compare a repeat with
        self.tic_ms = tic_ms
        self.max_data = max_data
        self.accept_status = False
        self.kind = MSG_NONE
        self.status = 0
        self._st = _R_HUNT
        self._got = 0
        self._need = 0
        self._last = 0

    def reset(self):
        self._st = _R_HUNT
        self.total = 0

    def busy(self):
        """True while a message is partly received."""
        return self._st != _R_HUNT

    def expire(self, now):
        """Drop a partial message older than TIC; True if one was dropped."""
        if self._st != _R_HUNT and ticks_diff(now, self._last) > self.tic_ms:
            self._st = _R_HUNT
            self.total = 0
            return True
        return False

    def payload(self, start=0):
        """Copy of the last good frame's DATA from offset start (one bytes object)."""
        return bytes(self.mv[3 + start : 3 + self.frame[1]])

    def feed(self, data, pos, now):
        if self.expire(now):
            self.kind = MSG_DROP
            return pos
        self._last = now
        n = len(data)
        buf = self._bufs[self._wi]
        while pos < n:
            st = self._st
            if st == _R_BODY:
                got = self._got
                need = self._need
                while pos < n and got < need:
                    buf[got] = data[pos]
                    got += 1
                    pos += 1
                self._got = got
                if got < need:
                    break
                self._st = _R_HUNT
                return self._complete(buf, need, pos)
            if st == _R_SKIP:
                k = min(self._need - self._got, n - pos)
                self._got += k
                pos += k
                if self._got < self._need:
                    break
                self._st = _R_HUNT
                self.total = 0
                self.kind = MSG_BAD
                return pos
            b = data[pos]
            pos += 1
            if st == _R_HUNT:
                if b == STX or b == STX_REPEAT:
                    buf[0] = b
                    self._st = _R_LEN
                    continue
                if b == STATUS_MSG and self.accept_status:
                    self._st = _R_STATUS
                    continue
                if b == ACK:
                    self.kind = MSG_ACK
                elif b == NAK:
                    self.kind = MSG_NAK
                else:
                    self.kind = MSG_JUNK
                return pos
            if st == _R_LEN:
                buf[1] = b
                self._got = 2
                self._need = b + 5
                self._st = _R_SKIP if b > self.max_data else _R_BODY
                continue
            # _R_STATUS
            self.status = b
            self._st = _R_HUNT
            self.kind = MSG_STATUS
            return pos
        self.kind = MSG_NONE
        return pos

    def _complete(self, buf, need, pos):
        if checksum(buf, 1, need - 2) != buf[need - 2] | (buf[need - 1] << 8):
            self.total = 0
            self.kind = MSG_BAD
            return pos
        if buf[0] == STX_REPEAT and self.total == need:
            prev = self.frame
            i = 1
            while i < need and prev[i] == buf[i]:
                i += 1
            if i == need:
                self.kind = MSG_DUP
                return pos
        wi = self._wi
        self.frame = buf
        self.mv = self._mvs[wi]
        self._wi = 1 - wi
        self.total = need
        self.kind = MSG_FRAME
        return pos


# ST7580 link states (one request at a time)
_IDLE = const(0)  # nothing in flight; T_REQ high
_STATUS = const(1)  # T_REQ low, waiting for 0x3F + status (tsr_ms)
_ACK = const(2)  # frame written, T_REQ high, waiting for ACK/NAK (tack_ms + wire time)
_REPLY = const(3)  # ACKed, waiting for the confirm or error frame (confirm_ms)
_PAUSE = const(4)  # T_REQ high between two attempts (retry gap or busy back-off)
# pseudo-states, resolved at once by _fire
_RETRY = const(5)  # failed attempt: PAUSE while a retry is left, else EV_TIMEOUT
_BACKOFF = const(6)  # busy status: PAUSE while under busy_max, else EV_ERROR(ERR_BUSY)
_FAIL = const(7)  # EV_TIMEOUT
_DONE = const(8)  # the request's event is in _result: queue it, back to IDLE
STATE_NAMES = ("IDLE", "STATUS", "ACK", "REPLY", "PAUSE")

# link events
_GO = const(0)  # a request is queued and T_REQ has been high long enough
_FREE = const(1)  # status message, not busy
_BUSY = const(2)  # status message, busy
_ACKED = const(3)
_NAKED = const(4)
_EXPIRED = const(5)  # the state's deadline passed
_ANSWER = const(6)  # confirm or error frame for the request in flight
_ABORT = const(7)  # BIO_ResetIndication while a request is in flight

# The whole link machine: _NEXT[state][event] -> next state, -1 = event ignored.
_NEXT = (
    # GO       FREE  BUSY      ACKED   NAKED   EXPIRED  ANSWER ABORT
    (_STATUS, -1, -1, -1, -1, -1, -1, -1),  # IDLE
    (-1, _ACK, _BACKOFF, -1, -1, _RETRY, _DONE, _DONE),  # STATUS
    (-1, -1, -1, _REPLY, _RETRY, _RETRY, _DONE, _DONE),  # ACK
    (-1, -1, -1, -1, -1, _FAIL, _DONE, _DONE),  # REPLY
    (-1, -1, -1, -1, -1, _STATUS, _DONE, _DONE),  # PAUSE
)

_OUT_SPARE = const(64)  # room for ACK/NAK bytes next to one frame


class ST7580:
    """Host side of the ST7580 local port.

    After every receive() or poll() the caller writes data_to_send() to the
    UART, then drives T_REQ to `treq`, and calls poll() again within
    next_timeout() ms. Results come out of next_event(). Frames from the modem
    are ACKed (or NAKed) in the same call that completes them.

    Project choices (docs/protocol.md): T_REQ stays high at least tic_ms
    between two handshakes; a failed attempt (no status within tsr_ms, NAK, or
    no ACK within tack_ms plus the frame's wire time at `baud`) restarts the
    whole handshake `retries` times, then EV_TIMEOUT; a busy status releases
    T_REQ for backoff_ms, at most busy_max times, then EV_ERROR(ERR_BUSY); a
    BIO_ResetIndication aborts the request in flight with EV_ERROR(ERR_GENERAL)
    before EV_RESET; a confirm or error frame that arrives before the ACK also
    ends the request. Status bits 0 and 3-4 are kept in `status` but do not
    gate requests.
    """

    def __init__(self, tic_ms=10, tack_ms=40, tsr_ms=200, confirm_ms=4000, retries=1, queue=4,
                 events=8, backoff_ms=50, busy_max=40, baud=57600):
        self._rx = FrameReceiver(tic_ms)
        self._tack = tack_ms
        self._tsr = tsr_ms
        self._confirm = confirm_ms
        self._retries = retries
        self._gap = tic_ms
        self._backoff = backoff_ms
        self._busy_max = busy_max
        self._baud = baud
        self._out = bytearray(MAX_FRAME + _OUT_SPARE)
        self._out_mv = memoryview(self._out)
        self._out_n = 0
        # request queue: fixed ring of (cmd, data) in two lists
        self._qc = [0] * queue
        self._qd = [None] * queue
        self._qh = 0
        self._qn = 0
        # event queue: fixed ring of tuples
        self._ev = [None] * events
        self._eh = 0
        self._en = 0
        self._state = _IDLE
        self._deadline = 0
        self._pause = 0
        self._cmd = -1  # request in flight
        self._data = None
        self._fails = 0
        self._busies = 0
        self._sent = 0
        self._result = None
        self._rise = 0
        self._risen = False  # T_REQ went low and back high at least once
        self.treq = 1
        self.status = -1  # last status byte, -1 before the first
        self.stats = {
            "rx_frames": 0,  # good frames delivered to the state machine
            "rx_bad": 0,  # frames NAKed (checksum, length) or dropped (TIC), malformed indications
            "rx_dup": 0,  # 0x03 repeats dropped
            "rx_junk": 0,  # stray bytes, ACK/NAK nobody waited for
            "rx_unexpected": 0,  # good frames that match nothing
            "tx_frames": 0,  # frames written, retries included
            "naks": 0,  # NAKs received for our frames
            "retries": 0,  # handshakes restarted after a failed attempt
            "busy": 0,  # busy status messages
            "timeouts": 0,  # EV_TIMEOUT events
            "overflow": 0,  # requests refused (queue full) and ACK bytes lost (output full)
            "lost": 0,  # events dropped (event queue full)
        }

    # ---- application side
    @property
    def idle(self):
        return self._state == _IDLE and self._qn == 0

    @property
    def state(self):
        return STATE_NAMES[self._state]

    def request(self, cmd, data=b""):
        """Queue one local-port request (any command code, DATA as given); False (and
        stats overflow) when the queue is full. ValueError on a code or length out of range."""
        if not 0 <= cmd <= 0xFF:
            raise ValueError("CMD 0x%X out of range" % cmd)
        if len(data) > MAX_DATA:
            raise ValueError("%d data bytes, at most 255" % len(data))
        size = len(self._qc)
        if self._qn == size:
            self.stats["overflow"] += 1
            return False
        if type(data) is not bytes:  # kept until sent: never a view of the caller's buffer
            data = bytes(data)
        i = (self._qh + self._qn) % size
        self._qc[i] = cmd
        self._qd[i] = data
        self._qn += 1
        return True

    def phy_data(self, payload):
        """PHY_Data.request with the project's options byte (PHY_OPTIONS).
        payload is copied (once), so the caller may reuse its buffer."""
        n = len(payload)
        if n > PHY_MAX_PAYLOAD:
            raise ValueError("%d payload bytes, at most %d" % (n, PHY_MAX_PAYLOAD))
        data = bytearray(n + 1)
        data[0] = PHY_OPTIONS
        data[1:] = payload
        return self.request(CMD_PHY_DATA_REQ, data)

    def mib_write(self, index, value):
        return self.request(CMD_MIB_WRITE_REQ, bytes((index,)) + bytes(value))

    def mib_read(self, index):
        return self.request(CMD_MIB_READ_REQ, bytes((index,)))

    def configure(self):
        """Queue the boot configuration: MIB 00h (PHY access mode), MIB 01h (PHY set-up)."""
        if len(self._qc) - self._qn < 2:
            self.stats["overflow"] += 1
            return False
        self.mib_write(MIB_MODEM_CONFIG, bytes((MODEM_CONFIG,)))
        self.mib_write(MIB_PHY_CONFIG, PHY_CONFIG)
        return True

    def next_event(self):
        if not self._en:
            return None
        i = self._eh
        ev = self._ev[i]
        self._ev[i] = None
        self._eh = (i + 1) % len(self._ev)
        self._en -= 1
        return ev

    # ---- UART side
    def data_to_send(self):
        """Bytes to write to the UART now, or None. Write them, then apply `treq`."""
        n = self._out_n
        if not n:
            return None
        self._out_n = 0
        return bytes(self._out_mv[:n])

    def receive(self, data, now):
        """Bytes read from the UART (any chunking), read at time now."""
        rx = self._rx
        n = len(data)
        pos = 0
        while pos < n:
            pos = rx.feed(data, pos, now)
            kind = rx.kind
            if kind != MSG_NONE:
                self._on_message(kind, now)

    def next_timeout(self, now):
        """ms until poll() is due, 0 if now, -1 if no timer runs."""
        if self._state == _IDLE:
            if not self._qn:
                return -1
            return self._gap_left(now)
        d = ticks_diff(self._deadline, now)
        return d if d > 0 else 0

    def poll(self, now):
        if self._rx.expire(now):
            self.stats["rx_bad"] += 1
        if self._state == _IDLE:
            if self._qn and not self._gap_left(now):
                self._pop()
                self._fire(_GO, now)
        elif ticks_diff(now, self._deadline) >= 0:
            self._fire(_EXPIRED, now)

    # ---- internals
    def _gap_left(self, now):
        if not self._risen:
            return 0
        d = ticks_diff(now, self._rise)
        if d < 0 or d >= self._gap:  # d < 0: idle for more than half the ticks period
            return 0
        return self._gap - d

    def _pop(self):
        i = self._qh
        self._cmd = self._qc[i]
        self._data = self._qd[i]
        self._qd[i] = None
        self._qh = (i + 1) % len(self._qc)
        self._qn -= 1
        self._fails = 0
        self._busies = 0
        self._sent = 0

    def _event(self, ev):
        size = len(self._ev)
        if self._en == size:
            self.stats["lost"] += 1
            return
        self._ev[(self._eh + self._en) % size] = ev
        self._en += 1

    def _send_byte(self, b):
        n = self._out_n
        if n < len(self._out):
            self._out[n] = b
            self._out_n = n + 1
        else:
            self.stats["overflow"] += 1

    def _set_treq(self, level, now):
        if level and not self.treq:
            self._rise = now
            self._risen = True
        self.treq = level

    def _fire(self, ev, now):
        """The one place where the link state changes."""
        nxt = _NEXT[self._state][ev]
        if nxt < 0:
            return False
        st = self.stats
        if nxt == _RETRY:
            self._fails += 1
            if self._fails > self._retries:
                nxt = _FAIL
            else:
                st["retries"] += 1
                self._pause = self._gap
                nxt = _PAUSE
        elif nxt == _BACKOFF:
            st["busy"] += 1
            self._busies += 1
            if self._busies > self._busy_max:
                self._result = (EV_ERROR, self._cmd, ERR_BUSY)
                nxt = _DONE
            else:
                self._pause = self._backoff
                nxt = _PAUSE
        if nxt == _FAIL:
            st["timeouts"] += 1
            self._result = (EV_TIMEOUT, self._cmd)
            nxt = _DONE
        if nxt == _DONE:
            self._event(self._result)
            self._result = None
            self._cmd = -1
            self._data = None
            nxt = _IDLE
        self._state = nxt
        self._rx.accept_status = nxt == _STATUS
        if nxt == _IDLE:
            self._set_treq(1, now)
        elif nxt == _STATUS:
            self._set_treq(0, now)
            self._deadline = ticks_add(now, self._tsr)
        elif nxt == _ACK:
            n = self._write_frame()
            self._set_treq(1, now)
            self._sent += 1
            st["tx_frames"] += 1
            # TACK runs from the end of the frame: add its time on the wire
            self._deadline = ticks_add(now, self._tack + (n * 10000 + self._baud - 1) // self._baud)
        elif nxt == _REPLY:
            self._deadline = ticks_add(now, self._confirm)
        else:  # _PAUSE
            self._set_treq(1, now)
            self._deadline = ticks_add(now, self._pause)
        return True

    def _write_frame(self):
        data = self._data
        n = len(data) + 5
        if self._out_n + n > len(self._out):  # caller did not drain: pending ACKs are lost
            self.stats["overflow"] += 1
            self._out_n = 0
        self._out_n = encode_into(self._out, self._out_n, self._cmd, data)
        return n

    def _on_message(self, kind, now):
        st = self.stats
        if kind == MSG_FRAME:
            st["rx_frames"] += 1
            self._send_byte(ACK)
            self._on_frame(now)
        elif kind == MSG_DUP:
            st["rx_dup"] += 1
            self._send_byte(ACK)
        elif kind == MSG_BAD:
            st["rx_bad"] += 1
            self._send_byte(NAK)
        elif kind == MSG_DROP:
            st["rx_bad"] += 1
        elif kind == MSG_STATUS:
            self.status = self._rx.status
            self._fire(_BUSY if self.status & STATUS_BUSY else _FREE, now)
        elif kind == MSG_ACK:
            if not self._fire(_ACKED, now):
                st["rx_junk"] += 1
        elif kind == MSG_NAK:
            if self._fire(_NAKED, now):
                st["naks"] += 1
            else:
                st["rx_junk"] += 1
        else:
            st["rx_junk"] += 1

    def _on_frame(self, now):
        rx = self._rx
        f = rx.frame
        n = f[1]
        cmd = f[2]
        if cmd == CMD_PHY_DATA_IND:
            if n < 4:
                self.stats["rx_bad"] += 1
                return
            snr = f[4]
            if snr > 127:
                snr -= 256
            self._event((EV_PHY_DATA, rx.payload(4), snr, f[3] & 0x07))
        elif cmd == CMD_RESET_IND:
            if self._state != _IDLE:
                self._result = (EV_ERROR, self._cmd, ERR_GENERAL)
                self._fire(_ABORT, now)
            self._event((EV_RESET, f[3] if n else 0))
        elif self._sent and self._match(cmd, n, f):
            self._fire(_ANSWER, now)
        else:
            self.stats["rx_unexpected"] += 1

    def _match(self, cmd, n, f):
        """Confirm or error frame for the request in flight? Sets _result."""
        req = self._cmd
        if cmd == req + _CNF_OFFSET:
            self._result = (EV_CONFIRM, req, self._rx.payload())
        elif cmd == req + _ERR_OFFSET:
            self._result = (EV_ERROR, req, f[3] if n else ERR_GENERAL)
        elif cmd == CMD_SYNTAX_ERR and (n == 0 or f[3] == req):
            self._result = (EV_ERROR, req, ERR_SYNTAX)
        else:
            return False
        return True
