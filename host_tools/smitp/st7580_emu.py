"""ST7580 emulator: the modem side of the local port (UM0932 Rev 3, section 3), sans-io.

The emulator owns no UART, pin or clock. Whoever runs it feeds what the host
wrote (`from_host`), the host's pin levels (`set_treq`, `set_resetn`) and what
the power line brings (`deliver`, `transmit_done`), calls `poll` when
`next_timeout` says so, and carries `to_host()` bytes back to the host and
`next_transmission()` payloads onto the simulated medium. `now` is in ms
(float or int).

Link rules reproduced (UM0932 sections 3.2-3.5):
- the modem is master: its own frames (confirms, indications) go out as soon
  as the link is free, even while the host holds T_REQ low;
- T_REQ low -> status message 0x3F + status (Table 8) after status_delay_ms;
  the host's frame must start within TSR and keep byte gaps under TIC; a
  frame is accepted after a busy status too (the host decides), and a new
  falling T_REQ edge before any byte of the frame gets a new status;
- each host frame is answered ACK, or NAK on a wrong checksum; a partial
  frame is dropped after TIC without an answer;
- each modem frame waits for ACK within TACK (counted from the end of the
  frame on the wire at `baud`); on NAK it waits TACK, on silence it goes on at
  once, and sends the frame once more with STX 0x03; whatever answers the
  repeat (or nothing) ends it;
- commands: BIO_Reset, MIB_Write/Read/Erase, Ping, PHY_Data, DL_Data (as
  PHY_Data), SS_Data (refused with a general error); 0x36 for unknown codes;
  error 0x02 (WPL) / 0x03 (WPV) for wrong lengths / values.
The framing codec here is written independently of the firmware's, so tests
of the firmware driver against this emulator check one against the other.
"""

from collections import deque

from smitp.modem_emu import (BOOT, HOST_RX, HOST_WAIT, IDLE, OFF, STATUS_DUE, TX_GAP, TX_WAIT, TX_WAIT2,
                              ModemEmulator)

# wire bytes
STX = 0x02
STX_REPEAT = 0x03
ACK = 0x06
NAK = 0x15
STATUS_MSG = 0x3F

# commands (UM0932 Tables 10-12, 15)
RESET_REQ, RESET_CNF, RESET_IND, RESET_ERR = 0x3C, 0x3D, 0x3E, 0x3F
MIB_WRITE_REQ, MIB_READ_REQ, MIB_ERASE_REQ = 0x08, 0x0C, 0x10
PING_REQ = 0x2C
PHY_DATA_REQ, PHY_DATA_IND = 0x24, 0x26
DL_DATA_REQ, DL_DATA_IND = 0x50, 0x52
SS_DATA_REQ, SS_DATA_IND = 0x54, 0x56
SYNTAX_ERR = 0x36
CNF = 1  # confirm = request + 1
ERR = 3  # error = request + 3

# error codes (Table 14)
WPL, WPV, BUSY, GENERAL = 0x02, 0x03, 0x04, 0xFF

# status bits (Table 8)
ST_CONFIG, ST_TX, ST_RX = 0x01, 0x02, 0x04

PHY_MAX_PAYLOAD = 250  # ST library limits (the manual says 254)
DL_MAX_PAYLOAD = 242
IND_MAX_PAYLOAD = 251

# MIB (section 3.6): index -> (factory default, access): r read, w write, e erase
MIB_TABLE = {
    0x00: (bytes([0x11]), "rw"),
    0x01: (bytes.fromhex("014FF00119400E15000002359B58"), "rw"),
    0x02: (bytes(16), "rw"),
    0x03: (bytes(1), "r"),
    0x04: (bytes(4), "r"),
    0x05: (bytes(5), "r"),
    0x06: (bytes(10), "re"),
    0x07: (bytes(8), "re"),
    0x08: (bytes(10), "re"),
    0x09: (bytes([200, 40, 10]), "rw"),
    0x0A: (bytes.fromhex("00420097"), "r"),
}
RESTORED = (0x00, 0x01, 0x02)  # rewritten by the modem after a watchdog or BIO reset

FAULTS = ("nak", "busy", "reset", "bad_checksum", "truncate", "gap")


def checksum(body):
    """16-bit sum of LEN, CMD and DATA."""
    return sum(body) & 0xFFFF


def frame(cmd, data=b"", stx=STX):
    body = bytes([len(data), cmd]) + bytes(data)
    cs = checksum(body)
    return bytes([stx]) + body + bytes([cs & 0xFF, cs >> 8])


# link states: smitp.modem_emu's, and
TX_PAUSE = "tx_pause"  # NAKed, repeat after TACK

# The whole link machine: (state, event) -> handler; the handler returns the
# next state. Events: work (idle with something to do), timer (the state's
# deadline passed), stx / frame (host frame starts / completes), ack, nak.
# Pairs not listed are ignored (and counted).
TABLE = {
    (BOOT, "timer"): "_booted",  # -> IDLE, reset indication queued
    (IDLE, "work"): "_start",  # -> TX_WAIT / TX_GAP (own frame first) or STATUS_DUE
    (STATUS_DUE, "timer"): "_send_status",  # -> HOST_WAIT, or IDLE if T_REQ went high
    (HOST_WAIT, "stx"): "_host_starts",  # -> HOST_RX
    (HOST_WAIT, "timer"): "_tsr_expired",  # -> IDLE
    (HOST_RX, "frame"): "_host_frame",  # -> IDLE, ACK/NAK sent, command run
    (HOST_RX, "timer"): "_tic_expired",  # -> IDLE, partial frame dropped
    (TX_GAP, "timer"): "_release",  # -> TX_WAIT / TX_WAIT2
    (TX_WAIT, "ack"): "_tx_done",  # -> IDLE
    (TX_WAIT, "nak"): "_tx_nak",  # -> TX_PAUSE
    (TX_WAIT, "timer"): "_tx_repeat",  # -> TX_WAIT2 / TX_GAP
    (TX_PAUSE, "timer"): "_tx_repeat",
    (TX_WAIT2, "ack"): "_tx_done",
    (TX_WAIT2, "nak"): "_tx_done",  # the answer to a repeat counts as positive
    (TX_WAIT2, "timer"): "_tx_done",
}


class ST7580Emulator(ModemEmulator):
    FAULTS = FAULTS

    def __init__(self, tic_ms=10, tack_ms=40, tsr_ms=200, status_delay_ms=0.2, boot_ms=0.0, baud=57600):
        ModemEmulator.__init__(self, tic_ms, tack_ms, tsr_ms, status_delay_ms, boot_ms, baud)
        self.stats = dict.fromkeys(
            (
                "rx_frames",  # good host frames ACKed
                "rx_bad",  # host frames NAKed (checksum)
                "rx_dropped",  # partial host frames dropped after TIC
                "rx_ignored",  # host bytes outside a handshake
                "tsr_expired",  # status sent, no frame within TSR
                "tx_frames",  # own frames sent (repeats included)
                "tx_repeats",
                "acks",  # ACKs from the host for own frames
                "naks",  # NAKs from the host for own frames
                "no_answer",  # own frames with no ACK/NAK within TACK
                "status",  # status messages sent
                "busy",  # ... of which busy
                "resets",
                "syntax_errors",
                "faults",  # injected faults applied
            ),
            0,
        )
        self._written = set()
        self._tx_pending = deque()  # payloads accepted, not yet taken by the medium
        self._tx_active = 0  # payloads on the line (accepted, not confirmed)
        self._tx_cmd = deque()  # confirm code for each active transmission
        self._reset_byte = 0  # ResetData of the next BIO_ResetIndication

    # ---- pins and power
    def set_treq(self, level, now):
        level = 1 if level else 0
        if level == self._treq:
            return
        self._treq = level
        if not level and self._state == HOST_WAIT:
            # a new request before any byte of the last one: the host gave up, answer again
            self._treq_fell = True
            self._state = IDLE
            self._deadline = None
        elif not level and self._state not in (OFF, BOOT):
            self._treq_fell = True
        elif level and self._state == STATUS_DUE:
            self._treq_fell = False
            self._state = IDLE  # the host gave up before the status went out
            self._deadline = None
        self.poll(now)

    # ---- UART
    def from_host(self, data, now):
        self.poll(now)  # expire TIC / TSR / TACK first
        for b in bytes(data):
            st = self._state
            if st == HOST_WAIT:
                if b in (STX, STX_REPEAT):
                    self._rx = bytearray([b])
                    self._fire("stx", now)
                else:
                    self.stats["rx_ignored"] += 1
            elif st == HOST_RX:
                self._rx.append(b)
                self._deadline = now + self.tic_ms
                if len(self._rx) >= 2 and len(self._rx) == self._rx[1] + 5:
                    self._fire("frame", now)
            elif st in (TX_WAIT, TX_WAIT2) and b in (ACK, NAK):
                self.stats["acks" if b == ACK else "naks"] += 1
                self._fire("ack" if b == ACK else "nak", now)
            elif st in (TX_WAIT, TX_WAIT2) and b == STX:
                self._fire("nak", now)  # "any other frame" instead of the ACK
            else:
                self.stats["rx_ignored"] += 1
        self.poll(now)

    # ---- power line
    def deliver(self, payload, snr=20, now=None, modulation=4):
        """A PLC frame heard on the medium -> data indication to the host."""
        payload = bytes(payload)
        if not 1 <= len(payload) <= IND_MAX_PAYLOAD:
            raise ValueError("indication payload of %d bytes" % len(payload))
        if self._state in (OFF, BOOT) or not self._powered:
            return False
        mode = self.mib[0x00][0] & 0x03
        cmd = (PHY_DATA_IND, DL_DATA_IND, SS_DATA_IND, PHY_DATA_IND)[mode]
        # byte 0: modulation, high channel (bit 3), PGA 1; SNR signed; ZC delay 0
        head = bytes([(modulation & 0x07) | 0x08 | 0x10, snr & 0xFF, 0, 0])
        self.mib[0x04] = head
        self._count(0x06, 0)  # unique words received
        self._count(0x06, 1)  # valid PHY frames
        self._txq.append((cmd, head + payload))
        if now is not None:
            self.poll(now)
        return True

    def next_transmission(self):
        """Pop the next payload the host asked to put on the power line, or None."""
        return self._tx_pending.popleft() if self._tx_pending else None

    def transmit_done(self, now):
        """Airtime of the oldest transmission ended -> its 5-byte confirm."""
        if not self._tx_active:
            return
        self._tx_active -= 1
        gain = self.mib[0x01][7] & 0x1F
        cnf = bytes([gain << 2, gain << 2, 0, 0, 0])
        self.mib[0x05] = cnf
        self._count(0x06, 2)  # PHY frames transmitted
        self._txq.append((self._tx_cmd.popleft(), cnf))
        self.poll(now)

    # ---- timers
    def next_timeout(self, now):
        """ms until poll() is due, or None."""
        if self._deadline is not None:
            return max(0.0, self._deadline - now)
        if self._state == IDLE and (self._has_work() or self._faults["reset"]):
            return 0.0
        return None

    def poll(self, now):
        for _ in range(64):  # bounded: each pass makes progress or stops
            if self._faults["reset"] and self._state not in (OFF, BOOT):
                self._take("reset")
                self._reset(1, now, factory=False)
                continue
            if self._deadline is not None and now >= self._deadline:
                self._deadline = None
                if not self._fire("timer", now):
                    break
                continue
            if self._state == IDLE and self._has_work():
                self._fire("work", now)
                continue
            break

    # ---- the state machine
    def _fire(self, event, now):
        handler = TABLE.get((self._state, event))
        if handler is None:
            self.stats["rx_ignored"] += 1
            return False
        self._state = getattr(self, handler)(now)
        return True

    def _has_work(self):
        return bool(self._txq) or (self._treq_fell and not self._treq)

    def _booted(self, now):
        self._txq.append((RESET_IND, bytes([self._reset_byte])))
        return IDLE

    def _start(self, now):
        if self._txq:
            item = self._txq.popleft()
            if item[0] == "reset":
                self._reset(item[1], now, factory=False)
                return self._state
            self._cur = item
            return self._send(now, repeat=False)
        self._treq_fell = False
        self._deadline = now + self.status_delay_ms
        return STATUS_DUE

    def _send_status(self, now):
        if self._treq:
            return IDLE
        status = self._status_byte()
        if self._take("busy"):
            status |= ST_RX
        self.stats["status"] += 1
        if status & (ST_TX | ST_RX):  # the host should back off; a frame is still accepted
            self.stats["busy"] += 1
        self._out += bytes([STATUS_MSG, status])
        self._deadline = now + self._wire(2) + self.tsr_ms
        return HOST_WAIT

    def _host_starts(self, now):
        self._deadline = now + self.tic_ms
        return HOST_RX

    def _tsr_expired(self, now):
        self.stats["tsr_expired"] += 1
        return IDLE

    def _tic_expired(self, now):
        self.stats["rx_dropped"] += 1
        self._rx = bytearray()
        return IDLE

    def _host_frame(self, now):
        rx, self._rx = bytes(self._rx), bytearray()
        self._deadline = None
        if checksum(rx[1:-2]) != rx[-2] | rx[-1] << 8:
            self.stats["rx_bad"] += 1
            self._out.append(NAK)
            return IDLE
        if self._take("nak"):
            self._out.append(NAK)
            return IDLE
        self.stats["rx_frames"] += 1
        self._out.append(ACK)
        self._command(rx[2], rx[3:-2])
        return IDLE

    def _send(self, now, repeat):
        cur = self._cur
        assert cur is not None  # called with a frame in flight
        cmd, data = cur
        raw = self._damaged(frame(cmd, data, STX_REPEAT if repeat else STX), repeat)
        if self._gap(raw, TX_WAIT2 if repeat else TX_WAIT, now):
            return TX_GAP
        self._out += raw
        self._deadline = now + self._wire(len(raw)) + self.tack_ms
        return TX_WAIT2 if repeat else TX_WAIT

    def _tx_nak(self, now):
        self._deadline = now + self.tack_ms
        return TX_PAUSE

    def _tx_repeat(self, now):
        if self._state == TX_WAIT:
            self.stats["no_answer"] += 1
        return self._send(now, repeat=True)

    def _tx_done(self, now):
        if self._deadline is None:  # the timer fired (poll clears the deadline first)
            self.stats["no_answer"] += 1
        self._deadline = None
        self._cur = None
        return IDLE

    # ---- commands
    def _command(self, cmd, data):
        handler = {
            RESET_REQ: self._cmd_reset,
            MIB_WRITE_REQ: self._cmd_mib_write,
            MIB_READ_REQ: self._cmd_mib_read,
            MIB_ERASE_REQ: self._cmd_mib_erase,
            PING_REQ: self._cmd_ping,
            PHY_DATA_REQ: self._cmd_data,
            DL_DATA_REQ: self._cmd_data,
            SS_DATA_REQ: self._cmd_ss_data,
        }.get(cmd)
        if handler is None:
            self.stats["syntax_errors"] += 1
            self._txq.append((SYNTAX_ERR, bytes([cmd])))
            return
        err = handler(cmd, data)
        if err is not None:
            self._txq.append((cmd + ERR, bytes([err])))

    def _cmd_reset(self, cmd, data):
        if data:
            return WPL
        self._txq.append((RESET_CNF, b"\x00"))
        self._txq.append(("reset", 2))  # once the confirm is through
        return None

    def _cmd_mib_write(self, cmd, data):
        if not data:
            return WPL
        index, value = data[0], bytes(data[1:])
        row = MIB_TABLE.get(index)
        if row is None or "w" not in row[1]:
            return WPV
        if len(value) != len(row[0]):
            return WPL
        if index == 0x00 and value[0] & 0x03 == 3:  # no access mode 3
            return WPV
        if index == 0x09 and 0 in value:
            return WPV
        self.mib[index] = value
        self._written.add(index)
        if index == 0x09:
            self._apply_timeouts()
        self._txq.append((cmd + CNF, b""))
        return None

    def _cmd_mib_read(self, cmd, data):
        if len(data) != 1:
            return WPL
        if data[0] not in self.mib:
            return WPV
        self._txq.append((cmd + CNF, self.mib[data[0]]))
        return None

    def _cmd_mib_erase(self, cmd, data):
        if len(data) != 1:
            return WPL
        row = MIB_TABLE.get(data[0])
        if row is None or "e" not in row[1]:
            return WPV
        self.mib[data[0]] = bytes(len(row[0]))
        self._txq.append((cmd + CNF, b""))
        return None

    def _cmd_ping(self, cmd, data):
        self._txq.append((cmd + CNF, bytes(data)))
        return None

    def _cmd_data(self, cmd, data):
        """PHY_Data / DL_Data request: options byte, optional frequency and gain, payload."""
        if not data:
            return WPL
        opt = data[0]
        pos = 1 + (3 if opt & 0x01 else 0) + (1 if opt & 0x08 else 0)
        if (opt >> 4) & 0x07 == 6:  # reserved modulation
            return WPV
        if opt & 0x01 and len(data) >= 4 and int.from_bytes(data[1:4], "big") == 0:
            return WPV
        payload = bytes(data[pos:])
        limit = PHY_MAX_PAYLOAD if cmd == PHY_DATA_REQ else DL_MAX_PAYLOAD
        if not 1 <= len(payload) <= limit:
            return WPL
        if self._tx_active:
            self._count(0x06, 3)  # PHY TX refused
            return BUSY
        if opt & 0x03 == 0x03:  # custom frequency written into MIB 01h
            phy = bytearray(self.mib[0x01])
            at = 0 if opt & 0x04 else 3
            phy[at : at + 3] = data[1:4]
            self.mib[0x01] = bytes(phy)
        self._tx_active += 1
        self._tx_cmd.append(cmd + CNF)
        self._tx_pending.append(payload)
        return None

    def _cmd_ss_data(self, cmd, data):
        return GENERAL  # SS (AES) frames are not emulated

    # ---- helpers
    def _status_byte(self):
        s = 0
        if any(i not in self._written for i in RESTORED):
            s |= ST_CONFIG
        if self._tx_active:
            s |= ST_TX
        s |= (self.mib[0x00][0] & 0x03) << 3  # active layer = access mode
        return s

    def _count(self, index, slot):
        """Increment a 16-bit big-endian counter of a counter MIB (project choice: big-endian)."""
        v = bytearray(self.mib[index])
        n = (int.from_bytes(v[2 * slot : 2 * slot + 2], "big") + 1) & 0xFFFF
        v[2 * slot : 2 * slot + 2] = n.to_bytes(2, "big")
        self.mib[index] = bytes(v)

    def _apply_timeouts(self):
        self.tsr_ms, self.tack_ms, self.tic_ms = self.mib[0x09]

    def _halt(self):
        ModemEmulator._halt(self)
        self._tx_pending.clear()
        self._tx_cmd.clear()
        self._tx_active = 0

    def _reset(self, cause, now, factory=True):
        # factory: power-on and RESETN (cause 0, smitp.modem_emu) bring the factory MIBs back
        self._halt()
        self.stats["resets"] += 1
        kept = {} if factory else {i: self.mib[i] for i in RESTORED if i in self._written}
        if factory:
            self._written = set()
        self.mib = {i: row[0] for i, row in MIB_TABLE.items()}
        self.mib.update(kept)
        self._apply_timeouts()
        # ResetData: cause, then auto-reconfiguration bits for MIB 00h/01h/02h
        b = cause & 0x03
        for bit, index in ((0x08, 0x00), (0x10, 0x01), (0x20, 0x02)):
            if index not in self._written:
                b |= bit | 0x04
        self._reset_byte = b
        self._state = BOOT
        self._deadline = now + self.boot_ms
