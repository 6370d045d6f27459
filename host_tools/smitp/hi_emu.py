"""Meters and More Host Interface emulator: the modem side of the M&M HI, sans-io.

It behaves as the public description of the Microchip PL460 M&M modem
application says (modem-uart reference section 4, corrected by its
mm-hi-ip-mib companion, section 1); no vendor code is used. The interface to
its runner is the ST7580 emulator's (smitp.st7580_emu): `from_host`,
`to_host`, `set_treq`, `set_resetn`, `power_on`, `poll`, `next_timeout`,
`deliver`, `next_transmission`, `transmit_done`, `inject`, so the simulated
network (smitp.network) runs either behind an emulated board.

Host side (UART):
- at power-on and after every reset: BIO_Reset.indication 0x80 | cause (0 power
  or RESETN, 1 watchdog, 3 BIO_Reset), never repeated; every MIB back to its default;
- T_REQ falling edge -> status message 3F, status (bit 0 configured, bit 1 TX
  in progress, always set; bit 3 PLC busy), MIB mask (bit n: MIB n still
  default), low byte first; the host's frame must start within TSR; a host
  frame ends with TIC of silence; ACK, or NAK on a wrong length or checksum;
  an unknown command gets no ACK but HI_Error 0x36; 0x03 frames are executed
  again, as 0x02 ones (the modem does not drop repeats);
- own frames wait TACK for the ACK; after a NAK (at once) or TACK without an
  answer the frame goes once more with 0x03; BIO_Reset.indication waits for nothing;
- commands: BIO_Reset, MIB_Write, MIB_Read, Slave_Data, HI_Ping; Slave_Data.request
  must carry the last indication's ReqID and a protocol whose DSAP is 0..2
  (else 27 03); an LSDU of 128 bytes or more is dropped without a confirm.

Power-line side: the data link is the firmware's own node code
(meter.app.node.MeterNode: MAC decoding, repetition, network management),
with the application forwarded to the host as Slave_Data.indication and the
host's Slave_Data.request answered on air with meter.link.mac.answer, so the
frames on air are the ST7580 path's byte for byte. The modem runs only the
data link (project choice for the emulator, docs/protocol.md): the firmware's
security stays in the path, and the protocol byte carries the LLC ECC in
bits 4-7 both ways. Until MIB 6 gives it an ACA the modem hears nothing.

Faults (inject): nak (the host's next frame), busy (next status message),
reset (spontaneous, watchdog), bad_checksum / truncate / gap (next frame to
the host), lost_confirm (the next confirm is never sent).
The framing here is written independently of the firmware's (the CRC by
binascii), so tests of the driver against this emulator check one against the other.
"""

import binascii
from collections import deque

from smitp.modem_emu import (BOOT, HOST_RX, HOST_WAIT, IDLE, OFF, STATUS_DUE, TX_GAP, TX_WAIT, TX_WAIT2,
                              ModemEmulator)

STX, STX_REPEAT, ACK, NAK, STATUS_MSG = 0x02, 0x03, 0x06, 0x15, 0x3F
CS_SUM, CS_CRC = 0, 1

MIB_WRITE, MIB_WRITE_IND, MIB_READ = 0x08, 0x0A, 0x0C
SLAVE_REQ, SLAVE_CNF, SLAVE_IND, SLAVE_ERR = 0x24, 0x25, 0x26, 0x27
PING, HI_ERROR = 0x2C, 0x36
RESET_REQ, RESET_CNF, RESET_IND = 0x3C, 0x3D, 0x3E
WPL, WPV, BUSY = 0x02, 0x03, 0x04
CONFIRMS = (0x09, 0x0B, 0x0D, 0x0F, SLAVE_CNF, SLAVE_ERR, 0x2D, RESET_CNF)

# MIB index -> (default, writable); sizes are the defaults' (Microchip D-MIB)
MIB_TABLE = {
    3: (b"\x01\x01", True),
    4: (bytes.fromhex("A5AA000000000100"), False),
    6: (bytes(22), True),
    7: (b"\x00\x00\x00\x00\x00\x03", True),
    8: (bytes(32), True),
    9: (b"\x00", True),
    10: (bytes(8), True),
    12: (bytes.fromhex("1400E8030000FA00FF"), True),
}
# The ST75MM profile (byte-sum checksum) has the HI timings object too (UM2241 MIB 14;
# its default is not public: the nominal TSR 125, TACK 40, TIC 10 ms, a project choice)
ST75MM_EXTRA = {14: (bytes((125, 40, 10)), True)}
DSAP_OF_PROTOCOL = (0x00, 0x00, 0x02, 0xFF, 0x03, 0xFF, 0x01, 0xFF)
MAX_LSDU = 127

FAULTS = ("nak", "busy", "reset", "bad_checksum", "truncate", "gap", "lost_confirm")



def checksum(body, kind=CS_CRC):
    """Of LEN, CMD and payload: the 16-bit byte sum, or Microchip's CRC-16,
    which is CRC-16/XMODEM of all but the last two bytes XOR those two bytes."""
    if kind == CS_SUM:
        return sum(body) & 0xFFFF
    return binascii.crc_hqx(bytes(body[:-2]), 0) ^ (body[-2] << 8 | body[-1])


def frame(cmd, payload, kind=CS_CRC, fs=STX):
    body = bytes([len(payload) - 1, cmd]) + bytes(payload)
    cs = checksum(body, kind)
    return bytes([fs]) + body + bytes([cs & 0xFF, cs >> 8])


class _Model:
    """What the modem's link node needs of a data model: nothing."""

    def provide(self, *_args):
        pass


def _link_node(aca, sink):
    """The modem's data link: the firmware's node, its application handed to sink."""
    from meter.app.node import MeterNode

    class LinkNode(MeterNode):
        def _serve_lsdu(self, buf, off, n, ecc, limit, now_ms):
            sink(self.frame, bytes(buf[off:off + n]), ecc, limit)
            return 0  # the host answers later, through Slave_Data.request

    return LinkNode(aca, _Model())


class HIEmulator(ModemEmulator):
    FAULTS = FAULTS

    def __init__(self, checksum_kind=CS_CRC, tic_ms=10, tack_ms=1000, tsr_ms=1250, status_delay_ms=0.2,
                 boot_ms=0.0, baud=57600, security="link"):
        if security not in ("link", "modem"):
            raise ValueError("security %r: link (the firmware's) or modem" % (security,))
        ModemEmulator.__init__(self, tic_ms, tack_ms, tsr_ms, status_delay_ms, boot_ms, baud)
        self.kind = checksum_kind
        self.security = security
        self.sec = None  # the modem's own security (smitp.hi_emu_security), security="modem"
        self.table = {**MIB_TABLE, **({} if checksum_kind == CS_CRC else ST75MM_EXTRA)}
        self.stats = dict.fromkeys((
            "rx_frames", "rx_bad", "rx_ignored", "tsr_expired", "tx_frames", "tx_repeats", "acks", "naks",
            "no_answer", "status", "busy", "resets", "hi_errors", "indications", "answers", "answers_refused",
            "answers_dropped", "answered_alone", "on_air", "faults"), 0)
        self.mask = 0
        self.node = None
        self._air = deque()  # (payload, confirm or None) for the medium
        self._on_air = deque()  # confirm due when each transmission ends (None: none)
        self._cause = 0
        self._now = 0.0
        self._req_id = 0
        self._req = None  # the last application request: (MAC frame bytes, reply allowed, limit)
        self._tct = None

    # ---- pins and power
    def set_treq(self, level, now):
        level = 1 if level else 0
        if level == self._treq:
            return
        self._treq = level
        if not level and self._state not in (OFF, BOOT):
            self._treq_fell = True  # falling edge: a status message is owed
            if self._state == HOST_WAIT:
                self._state, self._deadline = IDLE, None
        self.poll(now)

    # ---- UART
    def from_host(self, data, now):
        self.poll(now)
        for b in bytes(data):
            st = self._state
            if st == HOST_WAIT:
                self._rx = bytearray([b])
                self._state = HOST_RX
                self._deadline = now + self.tic_ms
            elif st == HOST_RX:
                self._rx.append(b)
                self._deadline = now + self.tic_ms  # a frame ends with TIC of silence
            elif st in (TX_WAIT, TX_WAIT2) and b in (ACK, NAK):
                self.stats["acks" if b == ACK else "naks"] += 1
                self._answered(b == ACK, now)
            else:
                self.stats["rx_ignored"] += 1
        self.poll(now)

    # ---- power line
    def deliver(self, payload, snr=20, now=None):
        """A frame heard on the medium: the data link takes it."""
        if self.node is None or self._state in (OFF, BOOT) or now is None:
            return False
        node = self.node
        n = node.on_phy(bytes(payload), len(payload), int(now), [None, snr, None, None])
        if n:  # a repetition or a network-management answer, after Tel (MIB 12)
            self._air.append((now + self._tel(), bytes(node.out[:n]), None))
        self._tct_changed(node)
        self.poll(now)
        return True

    def _tct_changed(self, node):
        tct = node.nm.tct
        if tct != self._tct:
            self._tct = tct
            value = self.mib[12][:8] + bytes([tct])
            self.mib[12] = value
            self._txq.append((MIB_WRITE_IND, b"\x0c" + value))

    def _indicate(self, f, lsdu, ecc, limit):
        """The node served an application request: Slave_Data.indication
        (where the modem runs the security: of the request it opened, or
        nothing when it answers alone)."""
        from meter.link import mac

        broadcast = mac.same_addr(f.buf, f.addr, mac.BROADCAST)
        reply = not broadcast and mac.DISCIPLINES[f.discipline][0] != mac.CLASS_S
        context = None
        sec, node = self.sec, self.node
        assert node is not None  # the node called: the modem has its ACA
        if sec is not None and (ecc or sec.handles(lsdu[0])):
            lmon = sec.lmon()
            if not sec.handles(lsdu[0]):  # a plain ATTR sent encrypted: refused in clear, as a meter does
                from meter import attrs as A

                kind, answer, answer_ecc = "modem", bytes((A.NACK_A, A.NACK_UNSUPPORTED, 0, 0)), 0
            else:
                kind, answer, answer_ecc = sec.open(node.aca, lsdu, ecc, limit, int(self._now))
            self._lmon_report(lmon, sec.lmon() if kind == "modem" else sec.lmon_next)
            if kind == "modem":
                self.stats["answered_alone"] += 1
                if reply and answer:
                    out = bytearray(mac.MAX_FRAME)
                    n = mac.answer(out, f, node.air, answer_ecc, answer, len(answer))
                    self._air.append((self._now + self._tel(), bytes(out[:n]), None))
                return
            lsdu, context = answer, answer_ecc  # the opened request; ecc: the one it came under
        self._req_id = self._req_id % 255 + 1
        self._req = (bytes(f.buf[:f.length]), reply, limit, context)
        self.stats["indications"] += 1
        self._txq.append((SLAVE_IND, bytes([(ecc & 0x0F) << 4, self._req_id]) + lsdu))

    def _lmon_report(self, before, now):
        """MIB_Write.indication of MIB 10 when the modem's LMON moved (the host
        persists it before the request it belongs to is served)."""
        if now != before:
            value = now.to_bytes(8, "little")
            self.mib[10] = value
            self._txq.append((MIB_WRITE_IND, b"\x0a" + value))

    def next_transmission(self):
        """The next frame due on the medium (at the time of the last poll), or None."""
        if not self._air or self._air[0][0] > self._now:
            return None
        _due, payload, cnf = self._air.popleft()
        self._on_air.append(cnf)
        self.stats["on_air"] += 1
        return payload

    def transmit_done(self, now):
        if self._on_air:
            cnf = self._on_air.popleft()
            if cnf is not None:
                self._txq.append(cnf)
            self.poll(now)

    # ---- timers
    def next_timeout(self, now):
        """ms until poll() is due (0: bytes for the host wait in to_host()), or None."""
        times = [0.0] if self._out else []
        if self._air:
            times.append(max(0.0, self._air[0][0] - now))
        if self._deadline is not None:
            times.append(max(0.0, self._deadline - now))
        if self._state == IDLE and (self._txq or (self._treq_fell and not self._treq) or self._faults["reset"]):
            times.append(0.0)
        if self.node is not None and self._state not in (OFF, BOOT):
            t = self.node.next_timeout(int(now))
            if t >= 0:
                times.append(float(t))
        return min(times) if times else None

    def poll(self, now):
        self._now = now
        for _ in range(64):
            if self._faults["reset"] and self._state not in (OFF, BOOT):
                self._take("reset")
                self._reset(1, now)
                continue
            if self._deadline is not None and now >= self._deadline:
                self._deadline = None
                self._timer(now)
                continue
            if self._state == IDLE and self._txq:
                self._start_frame(now)
                continue
            if self._state == IDLE and self._treq_fell and not self._treq:
                self._treq_fell = False
                self._state, self._deadline = STATUS_DUE, now + self.status_delay_ms
                continue
            break
        if self.node is not None and self._state not in (OFF, BOOT):
            n = self.node.poll(int(now))
            while n:  # a network-management answer in its RC slot
                self._air.append((now, bytes(self.node.out[:n]), None))
                n = self.node.poll(int(now))

    def _timer(self, now):
        st = self._state
        if st == BOOT:
            self._txq.appendleft((RESET_IND, bytes([0x80 | self._cause])))
            self._state = IDLE
        elif st == STATUS_DUE:
            self._send_status(now)
        elif st == HOST_WAIT:
            self.stats["tsr_expired"] += 1
            self._state = IDLE
        elif st == HOST_RX:
            self._state = IDLE
            self._host_frame(bytes(self._rx), now)
        elif st == TX_GAP:
            self._state = self._release(now)
        elif st == TX_WAIT:
            self.stats["no_answer"] += 1
            self._send(now, repeat=True)
        elif st == TX_WAIT2:
            self.stats["no_answer"] += 1
            self._cur, self._state = None, IDLE

    def _send_status(self, now):
        if self._treq:
            self._state = IDLE  # the host gave up before the status went out
            return
        status = 0x03 | (0x08 if self._take("busy") else 0)
        self.stats["status"] += 1
        if status & 0x08:
            self.stats["busy"] += 1
        self._out += bytes([STATUS_MSG, status, self.mask & 0xFF, self.mask >> 8])
        self._state, self._deadline = HOST_WAIT, now + self._wire(4) + self.tsr_ms

    def _start_frame(self, now):
        item = self._txq.popleft()
        if item[0] == "reset":
            self._reset(item[1], now)
            return
        if item[0] in CONFIRMS and self._take("lost_confirm"):
            return
        self._cur = item
        self._send(now, repeat=False)

    def _send(self, now, repeat):
        assert self._cur is not None  # called with a frame in flight
        cmd, payload = self._cur
        raw = self._damaged(frame(cmd, payload, self.kind, STX_REPEAT if repeat else STX), repeat)
        nxt = TX_WAIT2 if repeat else TX_WAIT
        if cmd == RESET_IND:  # never repeated: nothing to wait for
            self._out += raw
            self._cur, self._state = None, IDLE
            return
        if self._gap(raw, nxt, now):
            self._state = TX_GAP
            return
        self._out += raw
        self._state, self._deadline = nxt, now + self._wire(len(raw)) + self.tack_ms

    def _answered(self, ack, now):
        if ack or self._state == TX_WAIT2:
            self._cur, self._state, self._deadline = None, IDLE, None
        else:
            self._send(now, repeat=True)  # a NAK: the repeat goes at once

    # ---- host frames
    def _host_frame(self, rx, now):
        n = len(rx)
        if n < 6 or rx[0] not in (STX, STX_REPEAT) or rx[1] + 6 != n or \
                checksum(rx[1:-2], self.kind) != rx[-2] | rx[-1] << 8:
            self.stats["rx_bad"] += 1
            self._out.append(NAK)
            return
        cmd, payload = rx[2], rx[3:-2]
        handler = {RESET_REQ: self._cmd_reset, MIB_WRITE: self._cmd_mib_write, MIB_READ: self._cmd_mib_read,
                   SLAVE_REQ: self._cmd_slave, PING: self._cmd_ping}.get(cmd)
        if handler is None:  # no ACK: HI_Error instead
            self.stats["hi_errors"] += 1
            self._txq.append((HI_ERROR, bytes([cmd])))
            return
        if cmd == RESET_REQ and len(payload) != 1:
            self.stats["rx_bad"] += 1
            self._out.append(NAK)
            return
        if self._take("nak"):
            self._out.append(NAK)
            return
        self.stats["rx_frames"] += 1
        self._out.append(ACK)
        err = handler(payload)
        if err is not None:
            self._txq.append((cmd + 3, bytes([err])))

    def _cmd_reset(self, payload):
        self._txq.append((RESET_CNF, b"\x00"))
        self._txq.append(("reset", 3))

    def _cmd_mib_write(self, payload):
        index, value = payload[0], bytes(payload[1:])
        if len(value) > 32:
            return WPL
        row = self.table.get(index)
        if row is None or not row[1]:
            return WPV
        if len(value) != len(row[0]):
            return WPL
        if index == 3 and any(b > 1 for b in value):
            return WPV
        self.mib[index] = value
        self._set_mask(index)
        if index == 6:
            self.node = _link_node(bytes(reversed(value[16:22])), self._indicate)
            self._tct = self.node.nm.tct
        elif index == 12 and self.node is not None:
            self.node.nm.tct = self._tct = value[8]
        elif index == 8 and self.sec is not None:
            self.sec.set_keys(value)
        elif index == 10 and self.sec is not None:
            self.sec.set_lmon(value)
        self._txq.append((0x09, bytes([index])))
        return None

    def _cmd_mib_read(self, payload):
        index = payload[0]
        if index not in self.mib or index == 8:
            return WPV
        self._txq.append((0x0D, self.mib[index]))
        return None

    def _cmd_slave(self, payload):
        if len(payload) < 3:
            return WPL
        proto, req_id, lsdu = payload[0], payload[1], bytes(payload[2:])
        if DSAP_OF_PROTOCOL[proto & 7] > 2 or req_id != self._req_id or self._req is None:
            return WPV
        if len(lsdu) > MAX_LSDU:
            self.stats["answers_dropped"] += 1  # acknowledged, then nothing
            return None
        raw, reply, limit, context = self._req
        node = self.node
        assert node is not None  # a request was indicated: the modem has its ACA
        if not reply:
            self._txq.append((SLAVE_CNF, b"\x00"))
            return None
        if len(lsdu) > limit:
            self.stats["answers_refused"] += 1
            return WPV
        from meter.link import mac

        ecc = proto >> 4
        if context is not None and self.sec is not None:  # the modem seals the host's answer (LMON reported)
            lsdu, ecc = self.sec.seal(context, lsdu)
        f = mac.Frame()
        mac.decode(f, raw, len(raw))
        out = bytearray(mac.MAX_FRAME)
        n = mac.answer(out, f, node.air, ecc, lsdu, len(lsdu))
        self._req = None  # answered
        self.stats["answers"] += 1
        self._air.append((self._now, bytes(out[:n]), (SLAVE_CNF, b"\x00")))
        return None

    def _cmd_ping(self, payload):
        self._txq.append((0x2D, bytes(payload)))

    # ---- helpers
    def _set_mask(self, index):
        if self.mib[index] == self.table[index][0]:
            self.mask |= 1 << index
        else:
            self.mask &= ~(1 << index)

    def _tel(self):
        """Tel of MIB 12 (ms): the node's time to answer or repeat."""
        return float(self.mib[12][0] | self.mib[12][1] << 8)

    def _halt(self):
        ModemEmulator._halt(self)
        self._air.clear()
        self._on_air.clear()

    def _reset(self, cause, now):
        self._halt()
        self.stats["resets"] += 1
        self.mib = {i: row[0] for i, row in self.table.items()}  # nothing survives a reset
        self.mask = 0x10D8  # MIB 3, 4, 6, 7 and 12 at their defaults (8, 9, 10 not shown)
        self.node = None
        if self.security == "modem":
            from smitp.hi_emu_security import ModemSecurity

            self.sec = ModemSecurity()
        self._req_id = 0
        self._req = None
        self._tct = None
        self._cause = cause
        self._state, self._deadline = BOOT, now + self.boot_ms
