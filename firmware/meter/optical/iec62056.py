# The meter's optical port, sans-io: the IEC 62056-21 sign-on prologue, the
# lockout after failed authentications, and the hand-over to a session: the
# mode C data readout (meter/optical/readout.py) or a mode F session (meter/optical/modef.py).
#
#   HHU   request          / ? [address] ! CR LF                   300 Bd 7E1
#   meter identification   / XXx Z \ F identification CR LF         after tr
#   HHU   option select    ACK V Z Y CR LF
#           V = 0, Y = 0   mode C data readout at the rate of Z (7E1)
#           V = F, Y = F   mode F at the rate of Z (8N1)           project choice
#         anything else (programming mode, mode E) ends the sign-on silently
#   both switch to the rate of Z at once; after the session the port is back
#   at 300 Bd 7E1 once its last byte has left.
#
# Z is the mode C rate character ('0'..'6' = 300..19200 Bd); the meter offers
# its highest and accepts any lower one. The identification's "\F" (enhanced
# identification) announces mode F; IEC 62056-21 assigns only digits there.
# IEC 62056-21 gives the message syntax, the BCC and the timer ranges; what
# annex E of CLC/TS 50568-8 does beyond that is not public, and every such
# detail here is a project choice listed in docs/protocol.md ("Optical port"),
# the timers in meter/timers.py (OPT_*).
#
# The board's UART does the framing (7E1 or 8N1, `seven_e1`) at `baud`; this
# module takes the bytes received and `now` (ms ticks) and says what to send
# (data_to_send) and when to wake it (next_timeout / poll). A character with
# its 8th bit set or a NUL in 7E1 is a parity, framing or break error.
from meter.compat import const, ticks_add, ticks_diff
from meter import timers as T
from meter.optical.readout import ReadoutSession

SOH = const(0x01)
ACK = const(0x06)
NAK = const(0x15)
CR = const(0x0D)
LF = const(0x0A)
_SLASH = const(0x2F)  # "/"
_QUERY = const(0x3F)  # "?"
_BANG = const(0x21)  # "!"
_ZERO = const(0x30)  # "0"
_F = const(0x46)  # "F"

# Mode C rate characters '0'..'6' (IEC 62056-21); index = character - '0'.
BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200)
SIGN_ON_BAUD = const(300)

# ---- project choices (docs/protocol.md, "Optical port") ----------------------
# Manufacturer id: a placeholder, not a registered FLAG id (a manufacturer puts
# its own here). The lower-case third letter announces the 20 ms reaction time.
MANUFACTURER = "XXx"
IDENTIFICATION = "SMITP"  # followed by the firmware version, at most 16 characters
MODE_F_MARK = "F"  # enhanced identification "\F": mode F offered
MODE_F_PROTOCOL = const(0x46)  # V of the option select for mode F ("F")
MODE_F_MODE = const(0x46)  # Y of the option select for mode F ("F")
DEFAULT_MAX_BAUD = const(5)  # 9600 Bd offered
ADDRESS_LEN = const(16)  # longest device address a request may carry (project choice)
_MAX_MSG = const(5 + ADDRESS_LEN)  # "/?" address "!" CR LF

# ---- port states
IDLE = const(0)  # 300 Bd 7E1, waiting for a request
IDENT = const(1)  # a request came: the identification goes out after tr
OPTION = const(2)  # waiting for the option select
SESSION = const(3)  # a readout or mode F session owns the line
DRAIN = const(4)  # the session ended: its last bytes are leaving
LOCKED = const(5)  # failed authentications: silent until the lock ends
STATE_NAMES = ("idle", "ident", "option", "session", "drain", "locked")

# ---- events (tuples from next_event), for the firmware's log
EV_SESSION = const(1)  # (EV_SESSION, "C" or "F", baud)
EV_END = const(2)  # (EV_END, reason)
EV_LOCKED = const(3)  # (EV_LOCKED, ms)
_EVENTS_MAX = const(4)


def parity_even(c):
    """The even-parity bit of a 7-bit character."""
    c ^= c >> 4
    c ^= c >> 2
    c ^= c >> 1
    return c & 1


def airtime_ms(nbytes, baud):
    """Time nbytes take on the line: 10 bits each (7E1 and 8N1 alike)."""
    return (nbytes * 10000 + baud - 1) // baud


def identification(max_baud=DEFAULT_MAX_BAUD, ident=None, mode_f=True):
    """The identification message, as bytes."""
    if ident is None:
        from meter import VERSION

        ident = IDENTIFICATION + VERSION
    ident = ident[:16]
    enh = "\\" + MODE_F_MARK if mode_f else ""
    return ("/%s%c%s%s\r\n" % (MANUFACTURER, _ZERO + max_baud, enh, ident)).encode()


class Settings:
    """The optical port's parameters that local provisioning may change:
    the highest rate offered (0..6) and the device address (bytes, b"" for
    none). Kept in the store's record "optical": max baud (1) | address."""

    _RECORD = "optical"

    def __init__(self, store=None):
        self._store = store
        self.max_baud = DEFAULT_MAX_BAUD
        self.address = b""
        raw = store.get(self._RECORD) if store is not None else None
        if raw and raw[0] < len(BAUDS) and len(raw) <= 1 + ADDRESS_LEN:
            self.max_baud = raw[0]
            self.address = bytes(raw[1:])

    def save(self):
        """Persist; False if the flash refused (the values apply anyway until a reset)."""
        if self._store is None:
            return True
        return self._store.put(self._RECORD, bytes((self.max_baud,)) + self.address)


class Lockout:
    """After OPT_LOCK_AFTER failed authentications in a row the port locks
    for OPT_LOCK_BASE_MS, each further lock twice as long as the one before
    (up to OPT_LOCK_MAX_MS); a successful authentication resets both the
    count and the growth. RAM only: a reset forgets it."""

    def __init__(self, after=T.OPT_LOCK_AFTER, base_ms=T.OPT_LOCK_BASE_MS, max_ms=T.OPT_LOCK_MAX_MS):
        self.after = after
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.fails = 0  # consecutive failures
        self.locks = 0  # locks since the last success
        self.until = None  # ticks at which the current lock ends
        self.last_ms = 0  # length of the last lock
        self.total_failures = 0
        self.total_locks = 0

    def failed(self, now):
        """Count a failed authentication; True if it locks the port."""
        self.fails += 1
        self.total_failures += 1
        if self.fails < self.after:
            return False
        self.fails = 0
        ms = self.base_ms
        for _ in range(self.locks):
            ms *= 2
            if ms >= self.max_ms:
                break
        ms = min(ms, self.max_ms)
        self.locks += 1
        self.total_locks += 1
        self.last_ms = ms
        self.until = ticks_add(now, ms)
        return True

    def succeeded(self):
        self.fails = 0
        self.locks = 0

    def locked(self, now):
        if self.until is None:
            return False
        if ticks_diff(now, self.until) >= 0:
            self.until = None
            return False
        return True


class OpticalPort:
    """The optical port's state machine (module comment).

    readout(): the data lines of a mode C readout (bytes, each line ended by
    CR LF), built when the readout goes out. mode_f(lockout): a new mode F
    session, or None to not offer mode F. settings: a Settings (rate and
    address). Sessions have start(now), receive(data, now), poll(now),
    next_timeout(now), data_to_send(), `done` (None or the reason they ended)
    and `seven_e1`.
    """

    def __init__(self, readout, mode_f=None, settings=None, lockout=None, ident=None):

        self._readout_session = ReadoutSession
        self._readout = readout
        self._mode_f = mode_f
        self.settings = settings or Settings()
        self.lockout = lockout or Lockout()
        self._ident = ident
        self.baud = SIGN_ON_BAUD
        self.seven_e1 = True
        self.state = IDLE
        self.session = None
        self._due = None  # ticks of the state's timer
        self._rx = bytearray(_MAX_MSG)
        self._n = 0
        self._last = 0  # ticks of the last character of a partial message
        self._out = bytearray()
        self._tx_end = 0  # ticks at which the queued bytes will have left
        self._events = []
        self.stats = {"requests": 0, "sessions_c": 0, "sessions_f": 0, "errors": 0, "timeouts": 0,
                      "refused": 0, "discarded": 0, "locked_out": 0}

    # ---- the caller's side
    def receive(self, data, now):
        """Bytes from the UART (at `baud`, framed per `seven_e1`)."""
        st = self.state
        s = self.session  # set in state SESSION, and only then
        if s is not None:
            s.receive(data, now)
            self._pull(now)
            return
        if st == DRAIN or st == LOCKED:
            self.stats["discarded"] += len(data)
            return
        for b in data:
            self._char(b, now)

    def poll(self, now):
        """Run the timers that are due."""
        st = self.state
        s = self.session
        if s is not None:
            s.poll(now)
            self._pull(now)
            return
        if self._due is None or ticks_diff(now, self._due) < 0:
            return
        self._due = None
        if st == IDENT:
            self._send(identification(self.settings.max_baud, self._ident, self._mode_f is not None), now)
            self.state = OPTION
            self._n = 0
            self._due = ticks_add(self._tx_end, T.OPT_OPTION_MS)
        elif st == OPTION:
            self.stats["timeouts"] += 1
            self._idle()
        elif st == DRAIN:
            if self.lockout.locked(now):
                self._idle()  # back at 300 Bd 7E1, but deaf
                self.state = LOCKED
                self._due = self.lockout.until
            else:
                self._idle()
        elif st == LOCKED:
            self._idle()

    def next_timeout(self, now):
        """Milliseconds until poll() has work (0: now), -1 if only bytes can wake it."""
        s = self.session
        if s is not None:
            return s.next_timeout(now)
        if self._due is None:
            return -1
        return max(0, ticks_diff(self._due, now))

    def data_to_send(self):
        """Bytes to write now at `baud` (None if nothing)."""
        if not self._out:
            return None
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def next_event(self):
        return self._events.pop(0) if self._events else None

    # ---- internals
    def _event(self, ev):
        if len(self._events) >= _EVENTS_MAX:
            self._events.pop(0)
        self._events.append(ev)

    def _idle(self):
        self.state = IDLE
        self.session = None
        self.baud = SIGN_ON_BAUD
        self.seven_e1 = True
        self._n = 0
        self._due = None

    def _send(self, data, now):
        self._out.extend(data)
        start = self._tx_end if ticks_diff(self._tx_end, now) > 0 else now
        self._tx_end = ticks_add(start, airtime_ms(len(data), self.baud))

    def _pull(self, now):
        s = self.session
        if s is None:
            return
        out = s.data_to_send()
        if out:
            self._send(out, now)
        if s.done is not None:
            self._event((EV_END, s.done))
            if s.done == "locked":
                self.stats["locked_out"] += 1
                self._event((EV_LOCKED, self.lockout.last_ms))
            self.session = None
            self.state = DRAIN
            self._due = ticks_add(self._tx_end if ticks_diff(self._tx_end, now) > 0 else now, T.OPT_DRAIN_GUARD_MS)

    def _char(self, b, now):
        n = self._n
        if n and ticks_diff(now, self._last) > T.OPT_INTERCHAR_MS:
            self.stats["timeouts"] += 1  # ta: the partial message is dropped
            n = 0
        self._last = now
        if b == 0 or b & 0x80:  # parity, framing or break error
            if n:
                self.stats["errors"] += 1
            self._n = 0
            return
        if b == _SLASH or (b == ACK and self.state == OPTION):
            n = 0  # a start character always begins a new message
        elif n == 0:
            self._n = 0  # noise between messages
            return
        if n >= _MAX_MSG:
            self.stats["errors"] += 1
            self._n = 0
            return
        self._rx[n] = b
        self._n = n + 1
        if b == LF:
            self._message(now)

    def _message(self, now):
        rx, n = self._rx, self._n
        self._n = 0
        if rx[0] == _SLASH:
            if n < 5 or rx[1] != _QUERY or rx[n - 3] != _BANG or rx[n - 2] != CR:
                self.stats["errors"] += 1
                return
            addr = bytes(rx[2:n - 3])
            if addr and addr != self.settings.address:
                self.stats["refused"] += 1  # another device's address: stay silent
                return
            self.stats["requests"] += 1
            self.state = IDENT  # a request also restarts a sign-on in progress
            self._due = ticks_add(now, T.OPT_REACTION_MS)
            return
        # ACK V Z Y CR LF, only expected in OPTION
        if n != 6 or rx[4] != CR:
            self.stats["errors"] += 1
            return
        self._option(rx[1], rx[2] - _ZERO, rx[3], now)

    def _option(self, v, z, y, now):
        if z < 0 or z > self.settings.max_baud:
            session = None
        elif v == _ZERO and y == _ZERO:
            session = self._readout_session(self._readout)
            kind = "C"
        elif v == MODE_F_PROTOCOL and y == MODE_F_MODE and self._mode_f is not None:
            session = self._mode_f(self.lockout)
            kind = "F"
        else:
            session = None
        if session is None:
            self.stats["refused"] += 1
            self._idle()
            return
        self.stats["sessions_c" if kind == "C" else "sessions_f"] += 1
        self.state = SESSION
        self.session = session
        self._due = None
        self.baud = BAUDS[z]  # both sides switch at once after the option select
        self.seven_e1 = session.seven_e1
        self._event((EV_SESSION, kind, self.baud))
        session.start(now)
        self._pull(now)
