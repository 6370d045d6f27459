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
from meter.phy import base
from meter.compat import const, ticks_add, ticks_diff
from meter.phy import hi_codec as H
from meter.phy.hi_codec import STX, HEAD_LEN, MAX_FRAME, CS_SUM, CS_CRC, CNF_OFFSET, ERR_OFFSET

MAX_LSDU = const(127)  # Microchip drops a Slave_Data.request LSDU of 128 bytes or more, unconfirmed
_PAYLOAD_AT = const(5)  # Slave_Data.request: FS LEN CMD protocol ReqID, then the LSDU
_IND_AT = const(5)  # Slave_Data.indication: the same layout

# modem profiles (meter/phy/hi_codec.py): checksum and MIB set-up
MICROCHIP = H.MICROCHIP
ST75MM = H.ST75MM
setup = H.setup

# driver events beyond the contract's (meter.phy.contract DRIVER and up)
EV_CONFIRM = base.EV_CONFIRM  # a confirm of an unmanaged request: ev_cmd request, rx[0:rx_len] payload
EV_MIB_IND = phy.DRIVER + 1  # MIB_Write.indication: ev_cmd the index, rx[0:rx_len] the value

STATE_NAMES = base.STATE_NAMES  # link states, one request at a time (meter/phy/base.py)

_TAG_CFG, _TAG_PING, _TAG_BOOT = 1, 2, 3  # request tags: a configuration write, a health ping, the boot reset


class HostInterface(base.LinkDriver):
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

    _repeat_mark = True  # a frame sent again starts with STX_REPEAT
    _raise_at_status = True  # T_REQ goes back high as the status message starts

    def __init__(self, profile=MICROCHIP, checksum=CS_CRC, aca=bytes(6), serial="", keeper=None, modem_security=False,
                 managed=True,
                 tic_ms=10, sm_ms=200, tack_ms=1000, confirm_ms=5000, backoff_ms=50, busy_max=40, boot_ms=1500,
                 ping_ms=60000, ping_fails=2, queue=8, events=8, baud=57600):
        self._check = H.check_fn(checksum)
        rx = H.receiver(checksum, tic_ms, 3)
        base.LinkDriver.__init__(self, rx, queue, events, MAX_FRAME, _PAYLOAD_AT, MAX_LSDU, tic_ms, sm_ms, tack_ms,
                                 confirm_ms, 1, backoff_ms, busy_max, baud)  # one repetition only
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
        self._boot = boot_ms
        self._ping_every = ping_ms
        self._ping_max = ping_fails
        self.mib_mask = 0  # the last status message's MIB mask
        self._started = False
        self._boot_at = 0  # when the boot reset is due, while no BIO_Reset.indication came
        self._booted = False
        self._ping_at = self._ping_n = self._ping_bad = 0
        self._ind_proto = -1  # protocol and ReqID of the last Slave_Data.indication (-1: none to answer)
        self._ind_id = 0
        self.stats.update({
            "rx_ignored": 0,  # Slave_Data.indications not for the application
            "requests": 0,  # Slave_Data.indications handed to the application
            "answers": 0, "answer_refused": 0,  # Slave_Data.requests positively / negatively confirmed
            "pings": 0, "ping_failures": 0, "hi_errors": 0, "mib_ind": 0, "lmon_reported": 0,
        })

    # ---- application side
    def request(self, cmd, data):
        """Queue one request (data: its payload of 1..256 bytes, copied now); False when
        the queue is full."""
        if not 0 <= cmd <= 0xFF or not 1 <= len(data) <= H.MAX_PAYLOAD:
            raise ValueError("request 0x%X with %d payload bytes" % (cmd, len(data)))
        i = self._slot()
        if i < 0:
            return False
        self._commit(i, cmd, H.encode_into(self._tx[i], 0, cmd, data, self._check))
        return True

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
    def next_timeout(self, now):
        if not self._started:
            return 0
        due = self._link_timeout(now)
        if not self._booted:
            due = _sooner(due, max(0, ticks_diff(self._boot_at, now)))
        if self.ready and self._ping_every > 0:
            due = _sooner(due, max(0, ticks_diff(self._ping_at, now)))
        return due

    def poll(self, now):
        if not self._started:
            self._started = True
            self._boot_at = ticks_add(now, self._boot)
        self._expire(now)
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
        self._link_poll(now)

    # ---- internals
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
            if not ok:
                self._event(kind, cmd, self._ra)
            if self._configured(ok):
                self._ping_at = ticks_add(now, self._ping_every)
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

    def _on_status(self, rx):
        self.status = rx.status
        self.mib_mask = rx.status_mask
        return rx.status & H.SM_PLC_BUSY

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
            self._abort(H.ERR_GENERAL, now)
            self._drop_queued()
            self._event(phy.RESET, f[3], 0)
            if self.managed:
                self._reconfigure()
        elif cmd == H.CMD_MIB_WRITE_IND:
            st["mib_ind"] += 1
            self._mib_indication(f, n, rx.index)
        elif self._sent and self._match(cmd, n, f):
            self._fire(base.ANSWER, now)
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
            self._confirmed(n)
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
