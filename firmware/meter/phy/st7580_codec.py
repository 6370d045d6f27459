# ST7580 local-port wire format (UM0932 Rev 3, section 3), sans-io: the
# frame codec, the codes frames carry and the byte-stream receiver. The link
# state machine that uses them is meter/phy/st7580.py; host tools decode
# captures with the codec.
#
#   local frame   STX(0x02 | 0x03 repeat) LEN CMD DATA[LEN] CS_lo CS_hi
#   CS            16-bit sum of LEN, CMD and DATA, low byte first
#   ACK 0x06, NAK 0x15, status message 0x3F STATUS (modem -> host only)
from meter.compat import const, ticks_diff
from meter.errors import DecodeError

# ---- wire bytes (UM0932 section 3.2)
STX = const(0x02)
STX_REPEAT = const(0x03)  # used by the modem only, for its single repeat
ACK = const(0x06)
NAK = const(0x15)
STATUS_MSG = const(0x3F)  # first byte of the status message
MAX_DATA = const(255)
MAX_FRAME = const(260)  # STX LEN CMD DATA[255] CS CS
HEAD_LEN = const(3)  # STX LEN CMD: DATA starts here

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
CNF_OFFSET = const(1)
ERR_OFFSET = const(3)

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


def seal(buf, pos=0):
    """Write the checksum of the frame at buf[pos] (STX, LEN, CMD and DATA in
    place); returns the position after it."""
    end = pos + HEAD_LEN + buf[pos + 1]
    s = checksum(buf, pos + 1, end)
    buf[end] = s & 0xFF
    buf[end + 1] = s >> 8
    return end + 2


def encode_into(buf, pos, cmd, data, stx=STX):
    """Write one local frame into buf at pos; returns the position after it.
    The caller checks the sizes (encode_frame does)."""
    n = len(data)
    buf[pos] = stx
    buf[pos + 1] = n
    buf[pos + 2] = cmd
    p = pos + HEAD_LEN
    for i in range(n):
        buf[p + i] = data[i]
    return seal(buf, pos)


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
    return open_frame(frame, checksum)


def open_frame(frame, check, lead=0, start="STX", unit="data"):
    """One complete frame of this framing -> (start byte, cmd, data bytes);
    DecodeError names the field. LEN counts the data bytes less lead, check
    is the checksum function (buf, start, stop); start and unit name the
    start byte and the data in the errors (meter/phy/hi_codec.py: FS, payload)."""
    n = len(frame)
    if n < 5 + lead:
        raise DecodeError("frame", "%d bytes, at least %d" % (n, 5 + lead))
    stx = frame[0]
    if stx != STX and stx != STX_REPEAT:
        raise DecodeError(start, "0x%02X is not 0x02 or 0x03" % stx)
    if frame[1] + lead + 5 != n:
        raise DecodeError("LEN", "%d %s bytes announced, %d present" % (frame[1] + lead, unit, n - 5))
    cs = frame[n - 2] | (frame[n - 1] << 8)
    calc = check(frame, 1, n - 2)
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
    """Byte-stream parser for the local port, allocation-free; the framing
    core the M&M Host Interface shares (meter/phy/hi_codec.py builds it with
    its own length rule, checksum and status message).

    Feed it with `pos = rx.feed(data, pos, now)` in a loop; after each call
    `rx.kind` says what completed (MSG_*), MSG_NONE when data ran out. A good
    frame stays in `rx.frame` (bytearray: STX LEN CMD DATA CS CS, `rx.total`
    bytes, `rx.mv` a memoryview of it, `rx.index` its place in the ring)
    until `buffers - 1` more frames have started. The buffers take turns, so
    the previous good frame is still at hand to recognise a 0x03 repeat (UM0932
    section 3.2.7) without copying, and frames can wait for their reader;
    `rx.gen[i]` changes whenever buffer i starts to be overwritten.

    A partial frame is dropped when the gap between two chunks exceeds tic_ms
    (MSG_DROP). Bytes of one feed call count as arriving together, so the caller
    should pass `now` taken when it read them. A 0x03 frame is a repeat only if
    it equals the last good frame and nothing was dropped in between (project
    choice: after a bad or dropped frame the repeat is that frame's, so it is
    delivered). The status message (0x3F) is parsed only while accept_status.

    Profile settings: len_bias, bytes the frame holds beyond LEN + 5 (0 here,
    1 for the HI, whose LEN is payload - 1); check(buf, start, stop), the
    checksum of LEN..DATA; status_len, bytes after 0x3F (the first one in
    .status, the next two, low byte first, in .status_mask).
    """

    def __init__(self, tic_ms=10, max_data=MAX_DATA, buffers=2, len_bias=0, check=checksum, status_len=1):
        if not 0 <= max_data <= MAX_DATA:
            raise ValueError("max_data %d" % max_data)
        if buffers < 2:
            raise ValueError("buffers %d" % buffers)
        self._bias = len_bias
        self._check = check
        self._status_len = status_len
        self.status_mask = 0
        bufs = [bytearray(max_data + 5 + len_bias) for _ in range(buffers)]
        self._bufs = tuple(bufs)
        self._mvs = tuple(memoryview(b) for b in bufs)
        self.gen = [0] * buffers
        self._wi = 0  # index of the buffer being filled
        self.index = buffers - 1
        self.frame = bufs[-1]
        self.mv = self._mvs[-1]
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

    def in_status(self):
        """True once a status message has started and is not complete."""
        return self._st == _R_STATUS

    def expire(self, now):
        """Drop a partial message older than TIC; True if one was dropped."""
        if self._st != _R_HUNT and ticks_diff(now, self._last) > self.tic_ms:
            self._st = _R_HUNT
            self.total = 0
            return True
        return False

    def payload(self, start=0):
        """Copy of the last good frame's DATA from offset start (one bytes object)."""
        return bytes(self.mv[HEAD_LEN + start : HEAD_LEN + self.frame[1] + self._bias])

    def feed(self, data, pos, now, end=-1):
        """Parse data[pos:end] (end < 0: to the end) up to the first complete
        message; returns the position after it."""
        if self.expire(now):
            self.kind = MSG_DROP
            return pos
        self._last = now
        n = len(data) if end < 0 else end
        wi = self._wi
        buf = self._bufs[wi]
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
                    self.gen[wi] = (self.gen[wi] + 1) & 0xFFFF
                    buf[0] = b
                    self._st = _R_LEN
                    continue
                if b == STATUS_MSG and self.accept_status:
                    self._st = _R_STATUS
                    self._got = 0
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
                self._need = b + 5 + self._bias
                self._st = _R_SKIP if b > self.max_data else _R_BODY
                continue
            # _R_STATUS: the status byte, then the mask bytes when the profile has them
            got = self._got
            if got == 0:
                self.status = b
                self.status_mask = 0
            else:
                self.status_mask |= b << (8 * (got - 1))
            got += 1
            self._got = got
            if got < self._status_len:
                continue
            self._st = _R_HUNT
            self.kind = MSG_STATUS
            return pos
        self.kind = MSG_NONE
        return pos

    def _complete(self, buf, need, pos):
        if self._check(buf, 1, need - 2) != buf[need - 2] | (buf[need - 1] << 8):
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
        self.index = wi
        self._wi = (wi + 1) % len(self._bufs)
        self.total = need
        self.kind = MSG_FRAME
        return pos
