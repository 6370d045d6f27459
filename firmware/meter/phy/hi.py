# Meters and More Host Interface, host (meter) side, sans-io: the link machine over
# the wire format of meter/phy/hi_codec.py (ST UM2241; Microchip's M&M modem documents).
# A Meters and More modem runs the data link on air: the meter gets the application
# requests (Slave_Data.indication) and answers each with a Slave_Data.request of the
# same ReqID and protocol. Modem frames come at any time and are ACKed at once (0x03
# copies of the last one ACKed and dropped). To send, the host pulls T_REQ low, raises
# it as the status message starts, backs off while it says PLC busy, else writes its
# frame, waits TACK for the ACK and sends it once more with 0x03 in a new handshake
# when no ACK (or a NAK) comes; then waits for the confirm. No I/O, no clock
# (meter/phy/contract.py); project choices: docs/protocol.md.
from meter.phy import contract as phy
from meter.phy.base import DriverBase
from meter.compat import const, ticks_add, ticks_diff
from meter.phy import hi_codec as H
from meter.phy.hi_codec import (ACK, NAK, STX, STX_REPEAT, HEAD_LEN, MAX_FRAME, CS_SUM, CS_CRC, CNF_OFFSET,
                                ERR_OFFSET)
from meter.phy.st7580_codec import (MSG_NONE, MSG_FRAME, MSG_DUP, MSG_BAD, MSG_DROP, MSG_ACK, MSG_NAK,
                                    MSG_STATUS)

MAX_LSDU = const(127)  # Microchip drops a Slave_Data.request LSDU of 128 bytes or more, unconfirmed
_PAYLOAD_AT = const(5)  # Slave_Data.request: FS LEN CMD protocol ReqID, then the LSDU
_IND_AT = const(5)  # Slave_Data.indication: the same layout

# modem profiles (meter/phy/hi_codec.py): checksum and MIB set-up
MICROCHIP = H.MICROCHIP
ST75MM = H.ST75MM
setup = H.setup

# driver events beyond the contract's (meter.phy.contract DRIVER and up)
EV_CONFIRM = phy.DRIVER  # a confirm of an unmanaged request: ev_cmd request, rx[0:rx_len] payload
EV_MIB_IND = phy.DRIVER + 1  # MIB_Write.indication: ev_cmd the index, rx[0:rx_len] the value

# link states, one request at a time (as meter/phy/st7580.py)
# IDLE; STATUS: T_REQ low, waiting for the status message (sm_ms); ACK: frame written,
# waiting for ACK/NAK (tack_ms + wire time); REPLY: ACKed, waiting for the confirm
# (confirm_ms); PAUSE: T_REQ high between two handshakes (gap or busy back-off);
# RETRY, BACKOFF, FAIL, DONE: pseudo-states resolved at once by _fire.
_IDLE, _STATUS, _ACK, _REPLY, _PAUSE, _RETRY, _BACKOFF, _FAIL, _DONE = range(9)
STATE_NAMES = ("IDLE", "STATUS", "ACK", "REPLY", "PAUSE")
# link events
_GO, _FREE, _BUSY, _ACKED, _NAKED, _EXPIRED, _ANSWER, _ABORT = range(8)

_NEXT = (
    # GO       FREE  BUSY      ACKED   NAKED   EXPIRED  ANSWER ABORT
    (_STATUS, -1, -1, -1, -1, -1, -1, -1),  # IDLE
    (-1, _ACK, _BACKOFF, -1, -1, _RETRY, _DONE, _DONE),  # STATUS
    (-1, -1, -1, _REPLY, _RETRY, _RETRY, _DONE, _DONE),  # ACK
    (-1, -1, -1, -1, -1, _FAIL, _DONE, _DONE),  # REPLY
    (-1, -1, -1, -1, -1, _STATUS, _DONE, _DONE),  # PAUSE
)

_TAG_CFG, _TAG_PING, _TAG_BOOT = 1, 2, 3  # request tags: a configuration write, a health ping, the boot reset


class HostInterface(DriverBase):
    """Host side of the M&M HI. profile: MICROCHIP or ST75MM (its MIB set-up);
    checksum: CS_CRC or CS_SUM; aca (6 bytes, natural order) and serial: the
    manufacturer-data MIB; modem_security: the modem runs the LMON-protected
    security, with the keys and LMON of keeper (set by the firmware before the
    first configuration, meter/app/modemkeys.py: modem_secrets(), lmon_reported(value));
    else the firmware's security layer stays in the path and the ECC of each
    request and answer rides in the protocol byte. managed: configure after every reset, then READY;
    confirms stay inside. Timings in ms (project choices): T_REQ high at least
    tic_ms between handshakes; status message within sm_ms; ACK within
    tack_ms plus the frame's wire time; confirm within confirm_ms; PLC busy:
    T_REQ released for backoff_ms, at most busy_max times; no BIO_Reset.indication
    within boot_ms: BIO_Reset.request; HI_Ping every ping_ms, ping_fails
    failures in a row: BIO_Reset.request."""

    def __init__(self, profile=MICROCHIP, checksum=CS_CRC, aca=bytes(6), serial="", keeper=None, modem_security=False,
                 managed=True,
                 tic_ms=10, sm_ms=200, tack_ms=1000, confirm_ms=5000, backoff_ms=50, busy_max=40, boot_ms=1500,
                 ping_ms=60000, ping_fails=2, queue=8, events=8, baud=57600):
        self._check = H.check_fn(checksum)
        rx = self._rx = H.receiver(checksum, tic_ms, 3)
        DriverBase.__init__(self, queue, events, MAX_FRAME, _PAYLOAD_AT, MAX_LSDU, rx.gen)
        self._lsdu = tuple(memoryview(b)[_IND_AT:] for b in rx._bufs)
        self._cnf = tuple(memoryview(b)[HEAD_LEN:] for b in rx._bufs)
        self._mibv = tuple(memoryview(b)[HEAD_LEN + 1:] for b in rx._bufs)
        self.rx = self._lsdu[0]
        self.profile = profile
        self.checksum = checksum
        self.keeper = keeper
        self.modem_security = modem_security or keeper is not None
        self.managed = managed
        self._setup = setup(profile, aca, serial, tic_ms, tack_ms)
        self._timing = None  # MIB 12 as the modem last reported it (a TCT from the concentrator)
        self._tic = tic_ms
        self._sm = sm_ms
        self._tack = tack_ms
        self._confirm = confirm_ms
        self._backoff = backoff_ms
        self._busy_max = busy_max
        self._boot = boot_ms
        self._ping_every = ping_ms
        self._ping_max = ping_fails
        self._baud = baud
        self._state = _IDLE
        self._deadline = self._pause = self._fails = self._busies = self._sent = 0
        self._cmd = -1
        self._rk = self._ra = self._rl = 0  # the result of the request in flight, its data's buffer
        self._ri = -1
        self._rise = 0
        self._risen = False
        self.status = -1  # last status byte (-1: none yet) and its MIB mask
        self.mib_mask = 0
        self._started = False
        self._boot_at = 0  # when the boot reset is due, while no BIO_Reset.indication came
        self._booted = False
        self._ping_at = self._ping_n = self._ping_bad = self._cfg = 0
        self._cfg_bad = False
        self._ind_proto = -1  # protocol and ReqID of the last Slave_Data.indication (-1: none to answer)
        self._ind_id = 0
        self.stats.update({
            "rx_frames": 0, "rx_bad": 0, "rx_dup": 0, "rx_junk": 0, "rx_unexpected": 0, "rx_ignored": 0,
            "tx_frames": 0, "naks": 0, "retries": 0, "busy": 0, "timeouts": 0,
            "requests": 0,  # Slave_Data.indications handed to the application
            "answers": 0, "answer_refused": 0,  # Slave_Data.requests positively / negatively confirmed
            "pings": 0, "ping_failures": 0, "hi_errors": 0, "mib_ind": 0, "lmon_reported": 0,
        })

    # ---- application side
    @property
    def idle(self):
        return self._state == _IDLE and self._qn == 0

    @property
    def state(self):
        return STATE_NAMES[self._state]

    def request(self, cmd, payload):
        """Queue one request (payload of 1..256 bytes, copied now); False when
        the queue is full."""
        if not 0 <= cmd <= 0xFF or not 1 <= len(payload) <= H.MAX_PAYLOAD:
            raise ValueError("request 0x%X with %d payload bytes" % (cmd, len(payload)))
        i = self._slot()
        if i < 0:
            return False
        self._commit(i, cmd, H.encode_into(self._tx[i], 0, cmd, payload, self._check))
        return True

    def mib_write(self, index, value):
        return self.request(H.CMD_MIB_WRITE_REQ, bytes((index,)) + bytes(value))

    def mib_read(self, index):
        return self.request(H.CMD_MIB_READ_REQ, bytes((index,)))

    def bio_reset(self):  # payload ignored by the modem (LEN 0)
        return self.request(H.CMD_RESET_REQ, b"\x00")

    def configure(self):
        """Queue the MIB writes of the profile's set-up (and of the security
        the modem runs, and the timing record it last reported)."""
        writes = list(self._setup)
        if self._timing is not None:
            writes.append((H.MIB_TIMING, self._timing))
        if self.modem_security and self.keeper is not None and self.profile == MICROCHIP:
            k1, k2, flags, lmon = self.keeper.modem_secrets()
            writes += [(H.MIB_KEYS, bytes(k1) + bytes(k2)), (H.MIB_SEC_FLAGS, bytes((flags,))),
                       (H.MIB_LMON, bytes(lmon))]
        if self._queue - self._qn < len(writes):
            self.stats["overflow"] += 1
            return False
        if self.managed:
            self._tag = _TAG_CFG
            self._cfg += len(writes)
        for index, value in writes:
            self.mib_write(index, value)
        self._tag = 0
        return True

    def use_keeper(self, keeper):
        """The firmware's key and LMON store, for a modem that runs the security."""
        if self.modem_security:
            self.keeper = keeper

    def send(self, n):
        """A MAC frame to put on air: the modem runs the data link, so none
        goes (False, counted)."""
        self.stats["overflow"] += 1
        return False

    def answer(self, n, ecc=0):
        """Slave_Data.request of the LSDU in tx_space()[0:n] answering the last
        indication (its ReqID and protocol; ecc in the protocol byte when the
        firmware runs the security); False when there is nothing to answer,
        the LSDU is empty or too long, or the queue is full."""
        if self._ind_proto < 0 or not 1 <= n <= MAX_LSDU:
            self.stats["overflow"] += 1
            return False
        i = self._slot()
        if i < 0:
            return False
        buf = self._tx[i]
        buf[0] = STX
        buf[1] = n + 1  # protocol, ReqID and the LSDU, minus one
        buf[2] = H.CMD_SLAVE_REQ
        buf[3] = self._ind_proto | (0 if self.modem_security else (ecc & 0x0F) << H.PROTO_ECC_SHIFT)
        buf[4] = self._ind_id
        self._ind_proto = -1  # one answer per indication
        self._commit(i, H.CMD_SLAVE_REQ, H.seal(buf, 0, self._check))
        return True

    def _fields(self, kind, a, b, buf):
        if kind == phy.LSDU:
            self.rx = self._lsdu[buf]
            self.ev_code = a
            self.ev_cmd = b
            return
        self.ev_cmd = a
        self.ev_code = b
        if kind == EV_MIB_IND:
            self.rx = self._mibv[buf]
        elif buf >= 0:
            self.rx = self._cnf[buf]

    # ---- UART side
    def receive(self, data, now, n=-1):
        rx = self._rx
        end = len(data) if n < 0 else n
        pos = 0
        while pos < end:
            pos = rx.feed(data, pos, now, end)
            if self._state == _STATUS and rx.in_status():
                self._set_treq(1, now)  # the status message has started: T_REQ goes back high
            kind = rx.kind
            if kind != MSG_NONE:
                self._on_message(kind, now)

    def next_timeout(self, now):
        if not self._started:
            return 0
        due = -1
        if self._state == _IDLE:
            if self._qn:
                due = self._gap_left(now)
        else:
            due = max(0, ticks_diff(self._deadline, now))
        if not self._booted:
            due = _sooner(due, max(0, ticks_diff(self._boot_at, now)))
        if self.ready and self._ping_every > 0:
            due = _sooner(due, max(0, ticks_diff(self._ping_at, now)))
        return due

    def poll(self, now):
        if not self._started:
            self._started = True
            self._boot_at = ticks_add(now, self._boot)
        if self._rx.expire(now):
            self.stats["rx_bad"] += 1
        if not self._booted and ticks_diff(now, self._boot_at) >= 0:
            self._boot_at = ticks_add(now, self._boot)
            self._tag = _TAG_BOOT
            self.bio_reset()  # no BIO_Reset.indication: reset the modem to a known state
            self._tag = 0
        if self.ready and self._ping_every > 0 and ticks_diff(now, self._ping_at) >= 0:
            self._ping_at = ticks_add(now, self._ping_every)
            self._ping_n = (self._ping_n + 1) & 0xFF
            self._tag = _TAG_PING
            self.request(H.CMD_PING_REQ, bytes((0x48, 0x49, self._ping_n)))
            self._tag = 0
        if self._state == _IDLE:
            if self._qn and not self._gap_left(now):
                self._cmd = self._qc[self._pop()]
                self._fails = self._busies = self._sent = 0
                self._fire(_GO, now)
        elif ticks_diff(now, self._deadline) >= 0:
            self._fire(_EXPIRED, now)

    # ---- internals
    def _gap_left(self, now):
        if not self._risen:
            return 0
        d = ticks_diff(now, self._rise)
        if d < 0 or d >= self._tic:
            return 0
        return self._tic - d

    def _result(self, kind, code):
        self._rk = kind
        self._ra = code
        self._ri = -1
        self._rl = 0

    def _set_treq(self, level, now):
        if level and not self.treq:
            self._rise = now
            self._risen = True
        self.treq = level

    def _fire(self, ev, now):
        nxt = _NEXT[self._state][ev]
        if nxt < 0:
            return False
        st = self.stats
        if nxt == _RETRY:
            self._fails += 1
            if self._fails > 1:  # one repetition only
                nxt = _FAIL
            else:
                st["retries"] += 1
                self._tx[self._fs][0] = STX_REPEAT  # the same frame, marked as a repetition
                self._pause = self._tic
                nxt = _PAUSE
        elif nxt == _BACKOFF:
            st["busy"] += 1
            self._busies += 1
            if self._busies > self._busy_max:
                self._result(phy.FAILED, H.ERR_BUSY)
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
            self._deadline = ticks_add(now, self._sm)
        elif nxt == _ACK:
            n = self._write_frame()
            self._set_treq(1, now)
            self._sent += 1
            st["tx_frames"] += 1
            self._deadline = ticks_add(now, self._tack + (n * 10000 + self._baud - 1) // self._baud)
        elif nxt == _REPLY:
            self._deadline = ticks_add(now, self._confirm)
        else:
            self._set_treq(1, now)
            self._deadline = ticks_add(now, self._pause)
        return True

    def _done(self, now):
        kind = self._rk
        cmd = self._cmd
        ok = kind == EV_CONFIRM
        self._cmd = -1
        tag = self._end()
        if cmd == H.CMD_SLAVE_REQ:
            self.stats["answers" if ok else "answer_refused"] += 1
        if tag == _TAG_PING:
            self._ping_done(ok, now)
        elif tag == _TAG_BOOT:
            if not ok:
                self._event(kind, cmd, self._ra)
        elif tag == _TAG_CFG:
            self._cfg -= 1
            self._cfg_bad = self._cfg_bad or not ok
            if not ok:
                self._event(kind, cmd, self._ra)
            if not self._cfg and self._cfg_bad:
                self._cfg_bad = False
                self.configure()
            elif not self._cfg:
                self.ready = True
                self._ping_at = ticks_add(now, self._ping_every)
                self._event(phy.READY, 0, 0)
        elif not (self.managed and ok):
            self._event(kind, cmd, self._ra, self._ri, self._rl)

    def _ping_done(self, ok, now):
        st = self.stats
        st["pings"] += 1
        if ok:
            f = self._rx.frame  # the echo must be the request's payload
            ok = f[1] == 2 and f[3] == 0x48 and f[4] == 0x49 and f[5] == self._ping_n
        if ok:
            self._ping_bad = 0
            return
        st["ping_failures"] += 1
        self._ping_bad += 1
        self._event(phy.FAILED, H.CMD_PING_REQ, phy.NO_ANSWER if self._rk != EV_CONFIRM else H.ERR_GENERAL)
        if self._ping_bad >= self._ping_max:  # the modem no longer answers as it should: reset it
            self._ping_bad = 0
            self.ready = False
            self._booted = False
            self._boot_at = now

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
            rx = self._rx
            self.status = rx.status
            self.mib_mask = rx.status_mask
            self._fire(_BUSY if rx.status & H.SM_PLC_BUSY else _FREE, now)
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
        n = f[1] + 1  # payload bytes
        cmd = f[2]
        st = self.stats
        if cmd == H.CMD_SLAVE_IND:
            proto = f[3] & H.PROTO_BASE_MASK
            if n < 3 or proto != H.PROTO_PLC or f[4] == 0 or not self.ready:
                st["rx_ignored"] += 1  # no ATTR, not for the application, ReqID 0, not configured
                return
            self._ind_proto = proto
            self._ind_id = f[4]
            st["requests"] += 1
            ecc = f[3] >> H.PROTO_ECC_SHIFT  # where the modem runs the security: it opened it (OPENED)
            self._event(phy.LSDU, ecc | phy.OPENED if ecc and self.modem_security else ecc, MAX_LSDU, rx.index, n - 2)
        elif cmd == H.CMD_RESET_IND:
            self._booted = True
            self._ind_proto = -1
            if self._state != _IDLE:
                self._result(phy.FAILED, H.ERR_GENERAL)
                self._fire(_ABORT, now)
            self._drop_queued()
            self._event(phy.RESET, f[3], 0)
            if self.managed:
                self.ready = False
                self._cfg = 0
                self._cfg_bad = False
                self.configure()
        elif cmd == H.CMD_MIB_WRITE_IND:
            st["mib_ind"] += 1
            self._mib_indication(f, n, rx.index)
        elif self._sent and self._match(cmd, n, f):
            self._fire(_ANSWER, now)
        else:
            st["rx_unexpected"] += 1

    def _drop_queued(self):
        # What was asked before a reset no longer counts (the configuration is queued anew).
        while self._qn:
            self._pop()
            self._end()

    def _mib_indication(self, f, n, index):
        mib = f[3]
        if mib == H.MIB_LMON and n == 9 and self.keeper is not None:
            self.stats["lmon_reported"] += 1
            self.keeper.lmon_reported(bytes(f[4:12]))  # persisted: the modem forgets it at reset
        elif mib == H.MIB_TIMING and n == 10:
            self._timing = bytes(f[4:13])  # a TCT from the concentrator: written again after a reset
        self._event(EV_MIB_IND, mib, 0, index, n - 1)

    def _match(self, cmd, n, f):
        req = self._cmd
        if cmd == req + CNF_OFFSET:
            self._result(EV_CONFIRM, 0)
            self._ri = self._rx.index
            self._rl = n
        elif cmd == req + ERR_OFFSET:
            self._result(phy.FAILED, f[3])  # any negative confirm fails (Microchip sends 27 00)
        elif cmd == H.CMD_HI_ERROR and f[3] == req:
            self.stats["hi_errors"] += 1
            self._result(phy.FAILED, H.ERR_UNKNOWN_CMD)
        else:
            return False
        return True


def _sooner(a, b):  # the nearer of two timeouts, -1 being none
    return b if a < 0 or b < a else a


def driver(profile=MICROCHIP, checksum=None, **settings):
    """The M&M HI as the meter's modem driver (meter.phy.contract): resets
    the modem if it does not announce itself, configures it after every
    reset, reports READY, checks it with HI_Ping. checksum: the profile's
    (Microchip CRC-16, ST75MM byte sum) unless given."""
    if checksum is None:
        checksum = CS_CRC if profile == MICROCHIP else CS_SUM
    return HostInterface(profile, checksum, managed=True, **settings)
