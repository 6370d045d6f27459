"""What the two modem emulators (smitp.st7580_emu, smitp.hi_emu) share: the
bytes due to the host, the fault injection and the faults on the frames they
send, the UART's wire time, and what a reset or RESETN low throws away, the power and RESETN pins.

A subclass sets FAULTS (the names inject() takes, each with its counter) and
keeps its own states, framing and commands; its state names come from here."""

from collections import deque

OFF = "off"  # RESETN low
BOOT = "boot"  # leaving reset, indication after boot_ms
IDLE = "idle"
STATUS_DUE = "status_due"  # T_REQ low seen, status after status_delay_ms
HOST_WAIT = "host_wait"  # status sent, host frame must start within TSR
HOST_RX = "host_rx"  # receiving the host's frame (TIC between bytes)
TX_GAP = "tx_gap"  # own frame half sent (gap fault), rest held back
TX_WAIT = "tx_wait"  # own frame sent, ACK expected within TACK
TX_WAIT2 = "tx_wait2"  # repeat (0x03) sent, any answer or TACK ends it


class ModemEmulator:
    FAULTS: "tuple[str, ...]" = ()
    stats: "dict[str, int]"  # the subclass's counters, "faults", "tx_frames" and "tx_repeats" among them

    def __init__(self, tic_ms, tack_ms, tsr_ms, status_delay_ms, boot_ms, baud):
        self.tic_ms = tic_ms
        self.tack_ms = tack_ms
        self.tsr_ms = tsr_ms
        self.status_delay_ms = status_delay_ms
        self.boot_ms = boot_ms
        self.baud = baud
        self._faults = dict.fromkeys(self.FAULTS, 0)
        self.mib = {}
        self._state = OFF
        self._resetn = 1
        self._treq = 1
        self._treq_fell = False  # a status message is owed
        self._deadline = None
        self._out: bytearray = bytearray()
        self._held: bytes = b""  # rest of a frame held back by the gap fault
        self._after_gap = TX_WAIT
        self._txq = deque()  # own frames (cmd, data) and ("reset", cause) markers
        self._cur = None  # own frame in flight (cmd, data)
        self._rx = bytearray()
        self._powered = False

    # ---- pins and power
    def power_on(self, now):
        """Power-on: BIO_Reset.indication cause 0."""
        self._powered = True
        self._resetn = 1
        self._reset(0, now)

    def set_resetn(self, level, now):
        level = 1 if level else 0
        if level == self._resetn:
            return
        self._resetn = level
        if not level:
            self._halt()
            self._state = OFF
            self._deadline = None
        elif self._powered:
            self._reset(0, now)  # cause 0 covers RESETN

    def _reset(self, cause, now):
        raise NotImplementedError

    # ---- UART
    def to_host(self):
        out = bytes(self._out)
        self._out.clear()
        return out

    # ---- faults
    def inject(self, fault, count=1):
        """Count more of a fault of FAULTS: 'nak' the host's next frame, 'busy'
        status, spontaneous 'reset' (watchdog), or 'bad_checksum' / 'truncate'
        / 'gap' on the next frame sent to the host (and the subclass's own)."""
        if fault not in self._faults:
            raise ValueError("unknown fault %r (one of %s)" % (fault, ", ".join(self.FAULTS)))
        self._faults[fault] += count

    def _take(self, fault):
        if self._faults[fault]:
            self._faults[fault] -= 1
            self.stats["faults"] += 1
            return True
        return False

    # ---- own frames
    def _damaged(self, raw, repeat):
        """Count a frame for the host and apply the faults due on it."""
        self.stats["tx_frames"] += 1
        self.stats["tx_repeats"] += repeat
        if self._take("bad_checksum"):
            raw = raw[:-2] + bytes([raw[-2] ^ 0x5A, raw[-1]])
        if self._take("truncate"):
            raw = raw[: max(2, len(raw) // 2)]
        return raw

    def _gap(self, raw, nxt, now):
        """The gap fault: half of raw goes now, the rest after twice TIC, then
        state nxt; False when no gap fault is due."""
        if not self._take("gap"):
            return False
        half = max(2, len(raw) // 2)
        self._out += raw[:half]
        self._held = raw[half:]
        self._after_gap = nxt
        self._deadline = now + self._wire(half) + 2 * self.tic_ms
        return True

    def _release(self, now):
        """The rest of a gapped frame goes; the state to wait in."""
        self._out += self._held
        self._deadline = now + self._wire(len(self._held)) + self.tack_ms
        self._held = b""
        return self._after_gap

    def _wire(self, n):
        """Time n bytes take on the UART (8N1)."""
        return n * 10000.0 / self.baud if self.baud else 0.0

    def _halt(self):
        """Everything in progress is lost (reset or RESETN low)."""
        self._out.clear()
        self._held = b""
        self._rx = bytearray()
        self._txq.clear()
        self._cur = None
        self._treq_fell = False
