# What every modem driver of meter/phy/contract.py keeps alike, allocation-free once
# built: the transmit slots, the bytes due on the UART and the event ring.
# LinkDriver adds the T_REQ link both local ports run; a driver
# (meter/phy/st7580.py, meter/phy/hi.py) subclasses it and adds what its modem
# does differently.
from meter.compat import const, ticks_add, ticks_diff
from meter.phy import contract as phy
from meter.phy import st7580_codec as C  # the framing core both local ports share


class DriverBase:
    """Transmit slots: a ring of whole-frame buffers, `queue` waiting plus
    the one in flight, which keeps its buffer until its request ends. Each
    request is written once into its slot (a PHY frame in place, through
    tx_space) and goes to the UART from there.

    Events: a ring of parallel lists (kind, two ints, data); the data stays in
    the receive buffer it came in, named by its index in `gens`, the
    receiver's list of buffer generations. An event whose buffer changed
    generation before next_kind() took it is dropped and counted as lost.
    The subclass sets the event's fields in _fields()."""

    def __init__(self, queue, events, frame_size, payload_at, payload_len, gens, out_size=64):
        slots = queue + 1
        self._tx = [bytearray(frame_size) for _ in range(slots)]
        self._txv = tuple(memoryview(b) for b in self._tx)
        self._txp = tuple(memoryview(b)[payload_at:payload_at + payload_len] for b in self._tx)
        self._tn = [0] * slots  # frame length
        self._qc = [0] * slots  # command
        self._qk = [0] * slots  # tag the driver gave the request
        self._queue = queue
        self._qh = 0
        self._qn = 0  # waiting, the request in flight not counted
        self._fs = -1  # slot of the request in flight
        self._due = -1  # slot whose frame the next to_send() gives
        self._tag = 0
        self._out = bytearray(out_size)  # single bytes due (acknowledgements)
        self._out_mv = memoryview(self._out)
        self._out_n = 0
        self._gens = gens
        self._ev = [0] * events  # kind
        self._ea = [0] * events
        self._eb = [0] * events
        self._ei = [-1] * events  # receive buffer holding the data, -1: none
        self._eg = [0] * events  # its generation when queued
        self._el = [0] * events  # data length
        self._eh = 0
        self._en = 0
        # the contract's fields (meter.phy.contract)
        self.out = self._out_mv
        self.treq = 1
        self.ready = False
        self.rx = None
        self.rx_len = 0
        self.quality = phy.new_quality()
        self.ev_cmd = 0
        self.ev_code = 0
        self.stats = {
            "overflow": 0,  # requests refused (queue full), bytes or frames due but not taken
            "lost": 0,  # events dropped (event queue full, buffer reused)
        }

    # ---- transmit slots
    def tx_space(self):
        i = self._tail()
        return None if i < 0 else self._txp[i]

    def _tail(self):
        # Never the slot in flight: the ring has one slot more than the queue.
        if self._qn >= self._queue:
            return -1
        return (self._qh + self._qn) % len(self._tx)

    def _slot(self):
        i = self._tail()
        if i < 0:
            self.stats["overflow"] += 1
        return i

    def _commit(self, i, cmd, n):
        self._tn[i] = n
        self._qc[i] = cmd
        self._qk[i] = self._tag
        self._qn += 1

    def _pop(self):
        """Put the oldest waiting request in flight; its slot index."""
        i = self._qh
        self._fs = i
        self._qh = (i + 1) % len(self._tx)
        self._qn -= 1
        return i

    def _end(self):
        """The request in flight ended; its slot's tag."""
        fs = self._fs
        if self._due == fs:  # never written: no use any more
            self._due = -1
        self._fs = -1
        return self._qk[fs]

    def answer(self, n, ecc=0):
        """Answer an LSDU event (meter.phy.contract); a driver whose modem
        leaves the data link to the firmware has none to answer."""
        self.stats["overflow"] += 1
        return False

    # ---- bytes for the UART
    def _send_byte(self, b):
        n = self._out_n
        if n < len(self._out):
            self._out[n] = b
            self._out_n = n + 1
        else:
            self.stats["overflow"] += 1

    def _write_frame(self):
        """The frame in flight is due; its length."""
        if self._due >= 0:  # the caller did not take the last one: it is lost
            self.stats["overflow"] += 1
        self._due = self._fs
        return self._tn[self._fs]

    def to_send(self):
        """Count of bytes to write to the UART now from `out` (single bytes
        first, then a frame); call again until 0."""
        n = self._out_n
        if n:
            self._out_n = 0
            self.out = self._out_mv
            return n
        i = self._due
        if i < 0:
            return 0
        self._due = -1
        self.out = self._txv[i]
        return self._tn[i]

    def data_to_send(self):
        """Host form of to_send(): every byte due now as one bytes object, or None."""
        out = b""
        n = self.to_send()
        while n:
            out += bytes(self.out[0:n])
            n = self.to_send()
        return out or None

    # ---- events
    def _event(self, kind, a, b, buf=-1, n=0):
        size = len(self._ev)
        if self._en == size:
            self.stats["lost"] += 1
            return
        i = (self._eh + self._en) % size
        self._ev[i] = kind
        self._ea[i] = a
        self._eb[i] = b
        self._ei[i] = buf
        if buf >= 0:
            self._eg[i] = self._gens[buf]
        self._el[i] = n
        self._en += 1

    def next_kind(self):
        size = len(self._ev)
        while self._en:
            i = self._eh
            self._eh = (i + 1) % size
            self._en -= 1
            b = self._ei[i]
            if b >= 0 and self._gens[b] != self._eg[i]:
                self.stats["lost"] += 1  # its frame was overwritten before it was taken
                continue
            kind = self._ev[i]
            self.rx_len = self._el[i]
            self._fields(kind, self._ea[i], self._eb[i], b)
            return kind
        return phy.NONE

    def _fields(self, kind, a, b, buf):
        raise NotImplementedError


# ---- the T_REQ link both local ports run (meter/phy/st7580.py, meter/phy/hi.py)
# States, one request at a time. IDLE: nothing in flight, T_REQ high; STATUS:
# T_REQ low, waiting for the status message (status_ms); ACK: frame written,
# T_REQ high, waiting for ACK/NAK (tack_ms + wire time); REPLY: ACKed, waiting
# for the confirm or error frame (confirm_ms); PAUSE: T_REQ high between two
# attempts (retry gap or busy back-off). Pseudo-states, resolved at once by
# _fire: RETRY (PAUSE while a retry is left, else FAIL), BACKOFF (PAUSE while
# under busy_max, else FAILED(ERR_BUSY)), FAIL (FAILED(phy.NO_ANSWER)), DONE
# (the request's result is set by _result: _done reports it, back to IDLE).
_IDLE = const(0)
_STATUS = const(1)
_ACK = const(2)
_REPLY = const(3)
_PAUSE = const(4)
_RETRY = const(5)
_BACKOFF = const(6)
_FAIL = const(7)
_DONE = const(8)
STATE_NAMES = ("IDLE", "STATUS", "ACK", "REPLY", "PAUSE")
EV_CONFIRM = phy.DRIVER  # the result of a confirmed request (a driver event)

# link events
GO = const(0)  # a request is queued and T_REQ has been high long enough
FREE = const(1)  # status message, not busy
BUSY = const(2)  # status message, busy
ACKED = const(3)
NAKED = const(4)
EXPIRED = const(5)  # the state's deadline passed
ANSWER = const(6)  # confirm or error frame for the request in flight
ABORT = const(7)  # the modem reset while a request is in flight

# The whole link machine: _NEXT[state][event] -> next state, -1 = event ignored.
_NEXT = (
    # GO       FREE  BUSY      ACKED   NAKED   EXPIRED  ANSWER ABORT
    (_STATUS, -1, -1, -1, -1, -1, -1, -1),  # IDLE
    (-1, _ACK, _BACKOFF, -1, -1, _RETRY, _DONE, _DONE),  # STATUS
    (-1, -1, -1, _REPLY, _RETRY, _RETRY, _DONE, _DONE),  # ACK
    (-1, -1, -1, -1, -1, _FAIL, _DONE, _DONE),  # REPLY
    (-1, -1, -1, -1, -1, _STATUS, _DONE, _DONE),  # PAUSE
)


class LinkDriver(DriverBase):
    """DriverBase plus the T_REQ handshake of a local port: status, frame,
    ACK/NAK, confirm; retries, busy back-off and timers (project choices,
    docs/protocol.md). The subclass keeps what its modem does differently:
    _on_status (the status message), _on_frame (the modem's frames), _done
    (the result of a request) and, as attributes, `_repeat_mark` (a retried
    frame goes again with STX_REPEAT) and `_raise_at_status` (T_REQ goes back
    high as the status message starts, not once the frame is out)."""

    _repeat_mark = False
    _raise_at_status = False

    def __init__(self, rx, queue, events, frame_size, payload_at, payload_len, tic_ms, status_ms, tack_ms, confirm_ms,
                 retries, backoff_ms, busy_max, baud):
        DriverBase.__init__(self, queue, events, frame_size, payload_at, payload_len, rx.gen)
        self._rx = rx
        self._tic = tic_ms
        self._status_ms = status_ms
        self._tack = tack_ms
        self._confirm = confirm_ms
        self._retries = retries
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
        # the request's result until _done reports it: kind, code, data (buffer, length)
        self._rk = 0
        self._ra = 0
        self._ri = -1
        self._rl = 0
        self._rise = 0
        self._risen = False  # T_REQ went low and back high at least once
        self.status = -1  # last status byte, -1 before the first
        self._cfg = 0  # configuration requests not answered yet (managed)
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
            "timeouts": 0,  # requests that got no answer
        })

    # ---- application side
    @property
    def idle(self):
        return self._state == _IDLE and self._qn == 0

    @property
    def state(self):
        return STATE_NAMES[self._state]

    def request(self, cmd, data):
        """Queue one request of the modem's (cmd, its data); False when the
        queue is full."""
        raise NotImplementedError

    def configure(self):
        """Queue the modem's configuration (managed: counted in _cfg)."""
        raise NotImplementedError

    def mib_write(self, index, value):
        return self.request(C.CMD_MIB_WRITE_REQ, bytes((index,)) + bytes(value))

    def mib_read(self, index):
        return self.request(C.CMD_MIB_READ_REQ, bytes((index,)))

    # ---- UART side
    def receive(self, data, now, n=-1):
        """Bytes read from the UART (data[0:n], all of it if n < 0; any
        chunking), read at time now."""
        rx = self._rx
        end = len(data) if n < 0 else n
        pos = 0
        while pos < end:
            pos = rx.feed(data, pos, now, end)
            if self._raise_at_status and self._state == _STATUS and rx.in_status():
                self._set_treq(1, now)
            kind = rx.kind
            if kind != C.MSG_NONE:
                self._on_message(kind, now)

    def _link_timeout(self, now):
        """ms until the link needs poll(), 0 if now, -1 if no timer runs."""
        if self._state == _IDLE:
            if not self._qn:
                return -1
            return self._gap_left(now)
        d = ticks_diff(self._deadline, now)
        return d if d > 0 else 0

    def _expire(self, now):
        if self._rx.expire(now):
            self.stats["rx_bad"] += 1

    def _link_poll(self, now):
        """Start the next request, or act on the state's deadline."""
        if self._state == _IDLE:
            if self._qn and not self._gap_left(now):
                self._cmd = self._qc[self._pop()]
                self._fails = 0
                self._busies = 0
                self._sent = 0
                self._fire(GO, now)
        elif ticks_diff(now, self._deadline) >= 0:
            self._fire(EXPIRED, now)

    # ---- internals
    def _gap_left(self, now):
        if not self._risen:
            return 0
        d = ticks_diff(now, self._rise)
        if d < 0 or d >= self._tic:  # d < 0: idle for more than half the ticks period
            return 0
        return self._tic - d

    def _result(self, kind, code):
        self._rk = kind
        self._ra = code
        self._ri = -1
        self._rl = 0

    def _confirmed(self, n):
        """The request in flight is confirmed by the frame just received,
        whose n data bytes go with the result."""
        self._result(EV_CONFIRM, 0)
        self._ri = self._rx.index
        self._rl = n

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
                if self._repeat_mark:
                    self._tx[self._fs][0] = C.STX_REPEAT  # the same frame, marked as a repetition
                self._pause = self._tic
                nxt = _PAUSE
        elif nxt == _BACKOFF:
            st["busy"] += 1
            self._busies += 1
            if self._busies > self._busy_max:
                self._result(phy.FAILED, C.ERR_BUSY)
                nxt = _DONE
            else:
                self._pause = self._backoff
                nxt = _PAUSE
        if nxt == _FAIL:
            st["timeouts"] += 1
            self._result(phy.FAILED, phy.NO_ANSWER)
            nxt = _DONE
        if nxt == _DONE:
            self._done(now)
            nxt = _IDLE
        self._state = nxt
        self._rx.accept_status = nxt == _STATUS
        if nxt == _IDLE:
            self._set_treq(1, now)
        elif nxt == _STATUS:
            self._set_treq(0, now)
            self._deadline = ticks_add(now, self._status_ms)
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
        if kind == C.MSG_FRAME:
            st["rx_frames"] += 1
            self._send_byte(C.ACK)
            self._on_frame(now)
        elif kind == C.MSG_DUP:
            st["rx_dup"] += 1
            self._send_byte(C.ACK)
        elif kind == C.MSG_BAD:
            st["rx_bad"] += 1
            self._send_byte(C.NAK)
        elif kind == C.MSG_DROP:
            st["rx_bad"] += 1
        elif kind == C.MSG_STATUS:
            self._fire(BUSY if self._on_status(self._rx) else FREE, now)
        elif kind == C.MSG_ACK:
            if not self._fire(ACKED, now):
                st["rx_junk"] += 1
        elif kind == C.MSG_NAK:
            if self._fire(NAKED, now):
                st["naks"] += 1
            else:
                st["rx_junk"] += 1
        else:
            st["rx_junk"] += 1

    def _abort(self, code, now):
        """The modem reset: the request in flight fails with code."""
        if self._state != _IDLE:
            self._result(phy.FAILED, code)
            self._fire(ABORT, now)

    def _reconfigure(self):
        """The modem reset (managed): not ready until configured anew."""
        self.ready = False
        self._cfg = 0
        self._cfg_bad = False
        self.configure()

    def _configured(self, ok):
        """One configuration request ended (ok: confirmed); again after a
        failure, READY once all are confirmed: True then."""
        self._cfg -= 1
        self._cfg_bad = self._cfg_bad or not ok
        if not self._cfg and self._cfg_bad:
            self._cfg_bad = False
            self.configure()
        elif not self._cfg:
            self.ready = True
            self._event(phy.READY, 0, 0)
            return True
        return False

    def _on_status(self, rx):
        """A status message came (rx.status): keep it; True when busy."""
        raise NotImplementedError

    def _on_frame(self, now):
        raise NotImplementedError

    def _done(self, now):
        raise NotImplementedError
