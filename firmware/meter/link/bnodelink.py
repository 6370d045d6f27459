# The B-Node local link: the A-Node (this meter) and its one secondary node
# (an in-home display, say) on a board's local UART. Sans-io; the codec is
# shared by the meter and the host's B-Node device.
#
# Frame (project choice, docs/protocol.md "B-Nodes"; CLC/TS 50568-4 names the
# B-Node, its local link is not public):
#   SYN (B7) | LEN | SEQ | KIND | DATA (0..100) | CRC-32 (zlib, LE)
# LEN counts SEQ .. end of DATA; the CRC covers LEN .. end of DATA.
# KIND, A-Node -> B-Node: SET (from SETIC.REQ) or TABLE (from WRITETABIC.REQ),
#   bit 6 set when the concentrator's request was authenticated with the write
#   key (a plain one arrives without it: the B-Node can show it unverified).
# KIND, B-Node -> A-Node: ACK (DATA: the B-Node's reply, 0..8 bytes) or NACK
#   (DATA: its code), SEQ as in the frame answered.
# One exchange at a time: the A-Node sends, then waits TIMEOUT_MS for the
# answer with its SEQ; anything else is counted and dropped.
from meter.compat import const, ticks_add, ticks_diff
from meter.link.mac import crc_into

SYN = const(0xB7)
MAX_DATA = const(100)
MAX_REPLY = const(8)
OVERHEAD = const(8)  # SYN, LEN, SEQ, KIND, CRC
MAX_FRAME = const(108)

KIND_SET = const(0x01)
KIND_TABLE = const(0x02)
KIND_AUTH = const(0x40)  # flag: the request was authenticated with the write key
KIND_ACK = const(0x81)
KIND_NACK = const(0x82)

# result() of the A-Node's side
PENDING = const(0)
ACKED = const(1)
REFUSED = const(2)  # the B-Node answered NACK; its code in .code
NO_ANSWER = const(3)
IDLE = const(4)

_CRC = bytearray(4)


def encode(out, seq, kind, data, off, n):
    """A frame into out[0:]: data[off:off + n]; returns its length."""
    if n < 0 or n > MAX_DATA:
        raise ValueError("B-Node data of %d bytes (0..%d)" % (n, MAX_DATA))
    out[0] = SYN
    out[1] = n + 2
    out[2] = seq
    out[3] = kind
    for i in range(n):
        out[4 + i] = data[off + i]
    crc_into(out, 1, 4 + n, out, 4 + n)
    return 8 + n


class Decoder:
    """Bytes in, whole good frames out (SEQ, KIND, DATA in .frame[2:]); hunts
    for SYN, drops a frame with a bad length or CRC and counts it."""

    def __init__(self):
        self.frame = bytearray(MAX_FRAME)
        self.n = 0
        self.bad = 0

    def feed(self, byte):
        """One byte; True when self.frame holds a whole good frame (its length: self.size())."""
        f = self.frame
        if self.n == 0 and byte != SYN:
            return False
        f[self.n] = byte
        self.n += 1
        if self.n == 2 and (byte < 2 or byte > MAX_DATA + 2):
            self.bad += 1
            self.n = 0
            return False
        if self.n < 2 or self.n < f[1] + 6:
            return False
        end = f[1] + 2
        self.n = 0
        crc_into(f, 1, end, _CRC, 0)
        if _CRC[0] != f[end] or _CRC[1] != f[end + 1] or _CRC[2] != f[end + 2] or _CRC[3] != f[end + 3]:
            self.bad += 1
            return False
        return True

    def size(self):
        """Bytes of DATA in the frame just decoded."""
        return self.frame[1] - 2


class ANodeLink:
    """The A-Node's side: send one frame, wait for its answer."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.tx = bytearray(MAX_FRAME)
        self.tx_n = 0
        self.rx = Decoder()
        self.reply = bytearray(MAX_REPLY)
        self.reply_n = 0
        self.code = 0
        self.state = IDLE
        self._seq = 0
        self._deadline = 0
        self.stats = {"sent": 0, "acked": 0, "refused": 0, "timeouts": 0, "stray": 0}

    def send(self, kind, data, off, n, now):
        """Start an exchange (the frame waits in tx for the port)."""
        self._seq = (self._seq + 1) & 0xFF
        self.tx_n = encode(self.tx, self._seq, kind, data, off, n)
        self.state = PENDING
        self._deadline = ticks_add(now, self.timeout_ms)
        self.stats["sent"] += 1

    def to_send(self):
        """Bytes of tx to write now (then taken)."""
        n = self.tx_n
        self.tx_n = 0
        return n

    def receive(self, buf, n):
        """Bytes read from the local UART."""
        rx = self.rx
        for i in range(n):
            if rx.feed(buf[i]):
                self._frame(rx.frame, rx.size())

    def _frame(self, f, size):
        if self.state != PENDING or f[2] != self._seq:
            self.stats["stray"] += 1
            return
        if f[3] == KIND_ACK and size <= MAX_REPLY:
            for i in range(size):
                self.reply[i] = f[4 + i]
            self.reply_n = size
            self.state = ACKED
            self.stats["acked"] += 1
        elif f[3] == KIND_NACK and size == 1:
            self.code = f[4]
            self.state = REFUSED
            self.stats["refused"] += 1
        else:
            self.stats["stray"] += 1

    def result(self, now):
        """PENDING, ACKED, REFUSED, NO_ANSWER (once the wait is over) or IDLE."""
        if self.state == PENDING and ticks_diff(now, self._deadline) >= 0:
            self.state = NO_ANSWER
            self.stats["timeouts"] += 1
        return self.state

    def done(self):
        """The result was taken: ready for the next exchange."""
        self.state = IDLE

    def next_timeout(self, now):
        """ms until result() has news (0: it has now; -1: no exchange)."""
        if self.state == IDLE:
            return -1
        if self.state != PENDING:
            return 0
        t = ticks_diff(self._deadline, now)
        return t if t > 0 else 0


class BNodeDevice:
    """A B-Node's side of the link (an in-home display, say): keeps what it
    received, answers ACK with its reply (messages received, 2 bytes, and the
    last KIND) or NACK. Used by the host's B-Node device and by tests; not
    part of the meter."""

    def __init__(self, refuse=0):
        self.rx = Decoder()
        self.received = []  # (KIND, DATA) in order
        self.refuse = refuse  # a code: NACK everything with it (0: accept)
        self.out = bytearray(MAX_FRAME)

    def feed(self, data):
        """Bytes from the A-Node; returns the bytes to send back (b"": none)."""
        answers = b""
        rx = self.rx
        for b in data:
            if rx.feed(b):
                answers += self._answer(rx.frame, rx.size())
        return answers

    def _answer(self, f, size):
        kind = f[3]
        if kind & 0x80:  # an answer from another B-Node: not for us
            return b""
        if self.refuse:
            n = encode(self.out, f[2], KIND_NACK, bytes((self.refuse,)), 0, 1)
            return bytes(self.out[0:n])
        self.received.append((kind, bytes(f[4:4 + size])))
        count = len(self.received)
        reply = bytes(((count >> 8) & 0xFF, count & 0xFF, kind))
        n = encode(self.out, f[2], KIND_ACK, reply, 0, len(reply))
        return bytes(self.out[0:n])
