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
from meter.phy import base
from meter.compat import const
from meter.phy import st7580_codec as _codec
from meter.phy.st7580_codec import (
    ACK, NAK, STX, MAX_DATA, MAX_FRAME, HEAD_LEN, CMD_RESET_IND, CMD_PHY_DATA_REQ, CMD_PHY_DATA_IND, CMD_SYNTAX_ERR,
    CNF_OFFSET, ERR_OFFSET, ERR_BUSY, ERR_GENERAL, ERR_SYNTAX, STATUS_BUSY, MIB_MODEM_CONFIG, MIB_PHY_CONFIG,
    FrameReceiver, seal, encode_into,
)


def __getattr__(name):
    """The wire format's other names (meter/phy/st7580_codec.py) are this
    module's too, looked up when asked for: copied into this module's
    globals they would cost a board RAM for each."""
    return getattr(_codec, name)


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
EV_CONFIRM = base.EV_CONFIRM  # (EV_CONFIRM, request_cmd, data); a managed driver keeps them
EV_TIMEOUT = phy.DRIVER + 1  # (EV_TIMEOUT, request_cmd): host form of EV_ERROR with phy.NO_ANSWER

_IND_HEAD = const(4)  # PHY_Data.indication DATA: modulation, SNR, 2 bytes, then the PHY payload
_PAYLOAD_AT = const(4)  # PHY_Data.request: STX LEN CMD options, then the payload
_CFG_ROUNDS = const(0x3FFF)

STATE_NAMES = base.STATE_NAMES  # link states (meter/phy/base.py)


class ST7580(base.LinkDriver):
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
        rx = FrameReceiver(tic_ms, buffers=3)
        base.LinkDriver.__init__(self, rx, queue, events, MAX_FRAME, _PAYLOAD_AT, PHY_MAX_PAYLOAD, tic_ms, tsr_ms,
                                 tack_ms, confirm_ms, retries, backoff_ms, busy_max, baud)
        # views of each receive buffer: an indication's PHY payload, a confirm's data
        self._ind = tuple(memoryview(b)[HEAD_LEN + _IND_HEAD:] for b in rx._bufs)
        self._cnf = tuple(memoryview(b)[HEAD_LEN:] for b in rx._bufs)
        self.rx = self._ind[0]
        self.ev_mod = 0  # modulation of the last indication (MOD_*)
        self.managed = managed
        self._round = 0  # configuration round (managed): older rounds' answers do not count

    # ---- application side
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
    def next_timeout(self, now):
        """ms until poll() is due, 0 if now, -1 if no timer runs."""
        return self._link_timeout(now)

    def poll(self, now):
        self._expire(now)
        self._link_poll(now)

    # ---- internals
    def _done(self, now):
        """The request in flight ended with the result in _rk: report it."""
        kind = self._rk
        if not (self.managed and kind == EV_CONFIRM):
            self._event(kind, self._cmd, self._ra, self._ri, self._rl)
        self._cmd = -1
        tag = self._end()
        if tag and tag == self._round:
            self._configured(kind == EV_CONFIRM)

    def _on_status(self, rx):
        self.status = rx.status
        return self.status & STATUS_BUSY

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
            self._abort(ERR_GENERAL, now)
            self._event(EV_RESET, f[3] if n else 0, 0)
            if self.managed:
                self._reconfigure()
        elif self._sent and self._match(cmd, n, f):
            self._fire(base.ANSWER, now)
        else:
            self.stats["rx_unexpected"] += 1

    def _match(self, cmd, n, f):
        """Confirm or error frame for the request in flight? Sets the result."""
        req = self._cmd
        if cmd == req + CNF_OFFSET:
            self._confirmed(n)
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
