# ST7580 local port, host side (UM0932 Rev 3, section 3), sans-io: the link
# state machine over the wire format of meter/phy/st7580_codec.py.
#
# The ST7580 PLC modem talks to its host over a UART plus one request line,
# T_REQ. The modem is the master: it sends a local frame whenever it likes and
# the host answers ACK/NAK at once. To send, the host drives T_REQ low, waits
# for the status message (0x3F + status byte), writes its frame, raises T_REQ
# once the STX byte is out, waits for ACK/NAK and then for the confirm or
# error frame.
#
# Nothing here does I/O, sleeps or reads a clock: the caller passes `now` in
# ms as from ticks_ms(), writes what to_send() gives and drives the T_REQ pin
# to `treq`. driver() is the meter's modem driver (the contract of
# meter/phy/contract.py). Project choices (timers between attempts, busy back-off,
# event mapping) are marked "project choice" and listed in docs/protocol.md.
from meter.phy import contract as phy
from meter.phy.base import DriverBase
from meter.compat import const, ticks_add, ticks_diff
from meter.phy.st7580_codec import (  # noqa: F401 - the wire format's names are this module's too
    ACK, NAK, STX, STX_REPEAT, STATUS_MSG, MAX_DATA, MAX_FRAME, HEAD_LEN, CMD_RESET_REQ, CMD_RESET_CNF,
    CMD_RESET_IND, CMD_RESET_ERR, CMD_MIB_WRITE_REQ, CMD_MIB_WRITE_CNF, CMD_MIB_WRITE_ERR, CMD_MIB_READ_REQ,
    CMD_MIB_READ_CNF, CMD_MIB_READ_ERR, CMD_MIB_ERASE_REQ, CMD_MIB_ERASE_CNF, CMD_MIB_ERASE_ERR,
    CMD_PING_REQ, CMD_PING_CNF, CMD_PHY_DATA_REQ, CMD_PHY_DATA_CNF, CMD_PHY_DATA_IND, CMD_PHY_DATA_ERR,
    CMD_DL_DATA_REQ, CMD_DL_DATA_CNF, CMD_DL_DATA_IND, CMD_DL_DATA_ERR, CMD_SS_DATA_REQ, CMD_SS_DATA_CNF,
    CMD_SS_DATA_IND, CMD_SS_DATA_ERR, CMD_DL_SNIFFER_IND, CMD_SS_SNIFFER_IND, CMD_SYNTAX_ERR, CNF_OFFSET,
    ERR_OFFSET, ERR_WPL, ERR_WPV, ERR_BUSY, ERR_THERMAL, ERR_GENERAL, ERR_SYNTAX, STATUS_CONFIG, STATUS_TX,
    STATUS_RX, STATUS_BUSY, STATUS_LAYER_SHIFT, RESET_CAUSE_MASK, RESET_MIB0_DEFAULT, RESET_MIB1_DEFAULT,
    RESET_NEEDS_CONFIG, MIB_MODEM_CONFIG, MIB_PHY_CONFIG, MIB_SS_KEY, MIB_LAST_IND, MIB_LAST_CNF,
    MIB_PHY_COUNTERS, MIB_DL_COUNTERS, MIB_SS_COUNTERS, MIB_TIMEOUTS, MIB_FW_VERSION, MOD_BPSK, MOD_QPSK,
    MOD_8PSK, MOD_BFSK, MOD_BPSK_CODED, MOD_QPSK_CODED, MOD_BPSK_PNA, MSG_NONE, MSG_FRAME, MSG_DUP, MSG_BAD,
    MSG_DROP, MSG_ACK, MSG_NAK, MSG_STATUS, MSG_JUNK, FrameReceiver, checksum, seal, encode_into,
    encode_frame, decode_frame,
)

# ---- the project's modem set-up, in one place (project choices)
PHY_OPTIONS = const(0x44)  # PHY_Data options: high frequency of MIB 01h, B-PSK coded
PHY_MAX_PAYLOAD = const(250)  # ST library limit (the manual says 254)
MODEM_CONFIG = const(0x00)  # MIB 00h: PHY access mode, sniffer off
# MIB 01h: high 86000 Hz, low 72000 Hz (factory values: the M&M carrier is not
# public), RX on the high channel, PSK on both channels, current control on,
# TX gain 21, ZC delay 0, PSK preamble 32 bits, FSK fields at their defaults.
PHY_CONFIG = b"\x01\x4f\xf0\x01\x19\x40\x0e\x15\x00\x00\x02\x35\x9b\x58"

# ---- driver events: next_kind() gives the kind, the fields are attributes
# (meter.phy.contract); next_event() is the host form, one tuple per event
EV_PHY_DATA = phy.DATA  # (EV_PHY_DATA, payload, snr, modulation)
EV_READY = phy.READY  # (EV_READY,): managed drivers only
EV_RESET = phy.RESET  # (EV_RESET, reset_byte)
EV_ERROR = phy.FAILED  # (EV_ERROR, request_cmd, error_code)
EV_CONFIRM = phy.DRIVER  # (EV_CONFIRM, request_cmd, data); a managed driver keeps them
EV_TIMEOUT = phy.DRIVER + 1  # (EV_TIMEOUT, request_cmd): host form of EV_ERROR with phy.NO_ANSWER

_IND_HEAD = const(4)  # PHY_Data.indication DATA: modulation, SNR, 2 bytes, then the PHY payload
_PAYLOAD_AT = const(4)  # PHY_Data.request: STX LEN CMD options, then the payload
_CFG_ROUNDS = const(0x3FFF)

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
_DONE = const(8)  # the request's result is set (_result): report it, back to IDLE
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


class ST7580(DriverBase):
    """Host side of the ST7580 local port.

    After every receive() or poll() the caller writes what to_send() gives
    to the UART, then drives T_REQ to `treq`, and calls poll() again within
    next_timeout() ms. Results come out of next_kind() (fields in attributes,
    meter.phy.contract) or, on a host, next_event() (tuples). Frames from the modem are
    ACKed (or NAKed) in the same call that completes them. Requests are
    encoded into their transmit slot when queued (meter/phy/base.py); a PHY
    frame can be built in place: tx_space(), then send(n). Three receive
    buffers take turns, so two frames can wait for next_kind() while a third
    comes in.

    Project choices (docs/protocol.md): T_REQ stays high at least tic_ms
    between two handshakes; a failed attempt (no status within tsr_ms, NAK, or
    no ACK within tack_ms plus the frame's wire time at `baud`) restarts the
    whole handshake `retries` times, then EV_TIMEOUT; a busy status releases
    T_REQ for backoff_ms, at most busy_max times, then EV_ERROR(ERR_BUSY); a
    BIO_ResetIndication aborts the request in flight with EV_ERROR(ERR_GENERAL)
    before EV_RESET; a confirm or error frame that arrives before the ACK also
    ends the request. Status bits 0 and 3-4 are kept in `status` but do not
    gate requests. managed (the meter.phy.contract driver): after every reset the
    driver writes the configuration itself, again after a failure, then
    EV_READY; confirms stay inside.
    """

    def __init__(self, tic_ms=10, tack_ms=40, tsr_ms=200, confirm_ms=4000, retries=1, queue=4,
                 events=8, backoff_ms=50, busy_max=40, baud=57600, managed=False):
        rx = self._rx = FrameReceiver(tic_ms, buffers=3)
        DriverBase.__init__(self, queue, events, MAX_FRAME, _PAYLOAD_AT, PHY_MAX_PAYLOAD, rx.gen)
        # views of each receive buffer: an indication's PHY payload, a confirm's data
        self._ind = tuple(memoryview(b)[HEAD_LEN + _IND_HEAD:] for b in rx._bufs)
        self._cnf = tuple(memoryview(b)[HEAD_LEN:] for b in rx._bufs)
        self.rx = self._ind[0]
        self.ev_mod = 0  # modulation of the last indication (MOD_*)
        self.managed = managed
        self._tack = tack_ms
        self._tsr = tsr_ms
        self._confirm = confirm_ms
        self._retries = retries
        self._gap = tic_ms
        self._backoff = backoff_ms
        self._busy_max = busy_max
        self._baud = baud
        self._state = _IDLE
        self._deadline = 0
        self._pause = 0
        self._cmd = -1  # request in flight
        self._fails = 0
        self._busies = 0
        self._sent = 0
        # the request's result until _done queues it: kind, code, data (buffer, length)
        self._rk = 0
        self._ra = 0
        self._ri = -1
        self._rl = 0
        self._rise = 0
        self._risen = False  # T_REQ went low and back high at least once
        self.status = -1  # last status byte, -1 before the first
        self._round = 0  # configuration round (managed): older rounds' answers do not count
        self._cfg = 0  # requests of this round not answered yet
        self._cfg_bad = False
        self.stats.update({
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
        })

    # ---- application side
    @property
    def idle(self):
        return self._state == _IDLE and self._qn == 0

    @property
    def state(self):
        return STATE_NAMES[self._state]

    def request(self, cmd, data=b""):
        """Queue one local-port request (any command code, DATA as given, copied
        now); False (and stats overflow) when the queue is full. ValueError on a
        code or length out of range."""
        if not 0 <= cmd <= 0xFF:
            raise ValueError("CMD 0x%X out of range" % cmd)
        if len(data) > MAX_DATA:
            raise ValueError("%d data bytes, at most 255" % len(data))
        i = self._slot()
        if i < 0:
            return False
        self._commit(i, cmd, encode_into(self._tx[i], 0, cmd, data))
        return True

    def send(self, n):
        """PHY_Data.request (options PHY_OPTIONS) of tx_space()[0:n], whose
        PHY_MAX_PAYLOAD bytes sit in the transmit slot; False (and stats
        overflow) when the queue is full."""
        if not 0 <= n <= PHY_MAX_PAYLOAD:
            raise ValueError("%d payload bytes, at most %d" % (n, PHY_MAX_PAYLOAD))
        i = self._slot()
        if i < 0:
            return False
        buf = self._tx[i]
        buf[0] = STX
        buf[1] = n + 1
        buf[2] = CMD_PHY_DATA_REQ
        buf[3] = PHY_OPTIONS
        self._commit(i, CMD_PHY_DATA_REQ, seal(buf))
        return True

    def phy_data(self, payload):
        """send() of a copy of payload, so the caller may reuse its buffer."""
        n = len(payload)
        if n > PHY_MAX_PAYLOAD:
            raise ValueError("%d payload bytes, at most %d" % (n, PHY_MAX_PAYLOAD))
        space = self.tx_space()
        if space is not None:
            space[0:n] = payload
        return self.send(n)

    def mib_write(self, index, value):
        return self.request(CMD_MIB_WRITE_REQ, bytes((index,)) + bytes(value))

    def mib_read(self, index):
        return self.request(CMD_MIB_READ_REQ, bytes((index,)))

    def configure(self):
        """Queue the boot configuration: MIB 00h (PHY access mode), MIB 01h (PHY set-up)."""
        if self._queue - self._qn < 2:
            self.stats["overflow"] += 1
            return False
        if self.managed:
            self._tag = self._round
            self._cfg += 2
        self.mib_write(MIB_MODEM_CONFIG, bytes((MODEM_CONFIG,)))
        self.mib_write(MIB_PHY_CONFIG, PHY_CONFIG)
        self._tag = 0
        return True

    def _fields(self, kind, a, b, buf):
        # next_kind(): rx[0:rx_len] (indication payload, confirm data), quality
        # (the SNR), ev_mod, ev_cmd, ev_code (error, phy.NO_ANSWER, reset byte)
        if kind == EV_PHY_DATA:
            self.rx = self._ind[buf]
            self.quality[phy.Q_SNR] = a
            self.ev_mod = b
            return
        self.ev_cmd = a
        self.ev_code = a if kind == EV_RESET else b
        if buf >= 0:
            self.rx = self._cnf[buf]

    def next_event(self) -> "tuple | None":
        """Host form of next_kind(): the next event as a tuple, or None."""
        kind = self.next_kind()
        if kind == phy.NONE:
            return None
        if kind == EV_PHY_DATA:
            return kind, bytes(self.rx[0:self.rx_len]), self.quality[phy.Q_SNR], self.ev_mod
        if kind == EV_RESET:
            return kind, self.ev_code
        if kind == EV_CONFIRM:
            return kind, self.ev_cmd, bytes(self.rx[0:self.rx_len])
        if kind == EV_ERROR:
            if self.ev_code == phy.NO_ANSWER:
                return EV_TIMEOUT, self.ev_cmd
            return kind, self.ev_cmd, self.ev_code
        return (kind,)

    # ---- UART side
    def receive(self, data, now, n=-1):
        """Bytes read from the UART (data[0:n], all of it if n < 0; any
        chunking), read at time now."""
        rx = self._rx
        end = len(data) if n < 0 else n
        pos = 0
        while pos < end:
            pos = rx.feed(data, pos, now, end)
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
                self._cmd = self._qc[self._pop()]
                self._fails = 0
                self._busies = 0
                self._sent = 0
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

    def _result(self, kind, code):
        self._rk = kind
        self._ra = code
        self._ri = -1
        self._rl = 0

    def _done(self):
        """The request in flight ended with the result in _rk: report it."""
        kind = self._rk
        if not (self.managed and kind == EV_CONFIRM):
            self._event(kind, self._cmd, self._ra, self._ri, self._rl)
        self._cmd = -1
        tag = self._end()
        if tag and tag == self._round:
            self._cfg -= 1
            self._cfg_bad = self._cfg_bad or kind != EV_CONFIRM
            if not self._cfg and self._cfg_bad:
                self._cfg_bad = False
                self.configure()
            elif not self._cfg:
                self.ready = True
                self._event(EV_READY, 0, 0)

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
                self._result(EV_ERROR, ERR_BUSY)
                nxt = _DONE
            else:
                self._pause = self._backoff
                nxt = _PAUSE
        if nxt == _FAIL:
            st["timeouts"] += 1
            self._result(EV_ERROR, phy.NO_ANSWER)
            nxt = _DONE
        if nxt == _DONE:
            self._done()
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
            if n < _IND_HEAD:
                self.stats["rx_bad"] += 1
                return
            snr = f[4]
            if snr > 127:
                snr -= 256
            self._event(EV_PHY_DATA, snr, f[3] & 0x07, rx.index, n - _IND_HEAD)
        elif cmd == CMD_RESET_IND:
            if self.managed:  # what was asked before the reset no longer counts
                self._round = self._round % _CFG_ROUNDS + 1
            if self._state != _IDLE:
                self._result(EV_ERROR, ERR_GENERAL)
                self._fire(_ABORT, now)
            self._event(EV_RESET, f[3] if n else 0, 0)
            if self.managed:
                self.ready = False
                self._cfg = 0
                self._cfg_bad = False
                self.configure()
        elif self._sent and self._match(cmd, n, f):
            self._fire(_ANSWER, now)
        else:
            self.stats["rx_unexpected"] += 1

    def _match(self, cmd, n, f):
        """Confirm or error frame for the request in flight? Sets the result."""
        req = self._cmd
        if cmd == req + CNF_OFFSET:
            self._result(EV_CONFIRM, 0)
            self._ri = self._rx.index
            self._rl = n
        elif cmd == req + ERR_OFFSET:
            self._result(EV_ERROR, f[3] if n else ERR_GENERAL)
        elif cmd == CMD_SYNTAX_ERR and (n == 0 or f[3] == req):
            self._result(EV_ERROR, ERR_SYNTAX)
        else:
            return False
        return True


def driver(**settings):
    """The ST7580 as the meter's modem driver (meter.phy.contract): it configures the
    modem after every reset and reports READY. settings: as ST7580()."""
    return ST7580(managed=True, **settings)
