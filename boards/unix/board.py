# The emulated board: the real MicroPython unix interpreter with
# - the modem UART on a pty master handed over by the harness ("fd:N", already
#   non-blocking, raw mode set on the slave side by the harness),
# - the T_REQ and RESETN pins on a pipe: one byte per level change,
#   b"T"/b"t" for T_REQ high/low, b"R"/b"r" for RESETN high/low;
#   the watchdog on the same pipe: b"A<timeout ms>\n" arms it, b"F" feeds it
#   (PipeWatchdog); the harness resets the board when it goes unfed, and says
#   why on the command line (--reset-cause),
# - non-volatile storage: littlefs2 on a block device backed by an image file,
#   with NOR-flash rules (a write can only clear bits, an erase sets 0xFF),
# - simulated metrology (constant import/export power per phase) and an RTC
#   that is the host clock plus an offset the meter may set (kept across
#   restarts, as a battery would; optionally running faster: --time-scale),
# - a load generator per phase (voltage, power, power factor) that the harness
#   changes at run time through a file: dips and outages (LoadGenerator),
#   and the cut-off device (set_relay),
# - the display: an LCD (meter/display/lcd.py) drawn into a framebuf, two bits a pixel,
#   written to a dump file after each change (EmulatedDisplay),
# - a control pipe from the harness: b"B"/b"b" push-button down/up,
#   b"W"/b"w" flash write protection on/off (ControlPipe).
# - the optical port's UART on a second pty master ("--optical fd:N"): the
#   rate the hand-held unit sets on the slave is read with termios (OpticalUart).
# - the B-Node's local link on a third pty master ("--bnode fd:N", optional):
#   the harness's B-Node device sits on the slave (smitp.bnode).
import io
import os
import struct
import time
import vfs
from micropython import const

_BLOCK_SIZE = const(4096)
_BLOCK_COUNT = const(256)  # 1 MiB of flash for a new image: room for two download slots
_IOCTL_BLK_COUNT = const(4)
_IOCTL_BLK_SIZE = const(5)
_IOCTL_BLK_ERASE = const(6)
_GET_FILENO = const(10)
_ERASED = b"\xff" * 256  # written in chunks: erasing must not need a block of RAM


class FdUart(io.IOBase):
    """machine.UART-like stream over an inherited non-blocking pty master."""

    def __init__(self, fd):
        self._f = open(fd, "r+b")

    def read(self, n=256):
        return self._f.read(n) or None

    def readinto(self, buf):
        return self._f.readinto(buf)

    def write(self, buf, n=-1):
        """Write buf, or buf[0:n] without slicing it (as MicroPython streams do)."""
        return self._f.write(buf) if n < 0 else self._f.write(buf, n)

    def ioctl(self, req, arg):
        # Unix select/asyncio wait on the real fd when asked for it.
        if req == _GET_FILENO:
            return self._f.fileno()
        return -1


# termios speed codes (Linux) of the optical port's rates
_SPEEDS = {7: 300, 8: 600, 9: 1200, 11: 2400, 12: 4800, 13: 9600, 14: 19200, 15: 38400}
_ISPEED = const(4)
_OSPEED = const(5)


class OpticalUart(FdUart):
    """The optical port's UART on an inherited non-blocking pty master; the
    hand-held unit opens the slave. The firmware sets `baud` and `seven_e1`
    (Board.set_optical_line); the rates the hand-held unit set on the slave
    are read on the master with termios, so a rate mismatch is real: each
    byte then arrives as 0x00, as a UART sampling at the wrong rate reports
    framing errors. A pty forces 8 data bits without parity on its termios,
    so the framing cannot be observed: bytes pass as characters, masked to 7
    bits in 7E1 as a 7-bit UART would; a break is a run of 0x00 bytes."""

    def __init__(self, fd):
        super().__init__(fd)
        self._fd = fd
        self.baud = 300
        self.seven_e1 = True

    def _rate_ok(self, which):
        import termios

        try:
            return _SPEEDS.get(termios.tcgetattr(self._fd)[which]) == self.baud
        except OSError:
            return False

    def read(self, n=256):
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got]) if got else None

    def readinto(self, buf):
        n = self._f.readinto(buf)
        if n and not self._rate_ok(_OSPEED):  # the hand-held unit sends at its output rate
            for i in range(n):
                buf[i] = 0
        return n

    def write(self, buf):
        if not self._rate_ok(_ISPEED):
            buf = bytes(len(buf))
        elif self.seven_e1:
            buf = bytes(b & 0x7F for b in buf)
        return self._f.write(buf)


class PipePin:
    """Output pin whose level changes are written to the harness's pin pipe."""

    def __init__(self, f, high, low, level=1):
        self._f = f
        self._codes = (low, high)
        self._level = level

    def value(self, v=None):
        if v is None:
            return self._level
        v = 1 if v else 0
        if v != self._level:
            self._level = v
            self._f.write(self._codes[v])
        return None


_FEED_GAP_MS = const(100)


class PipeWatchdog:
    """machine.WDT on the pin pipe: the harness restarts the board when no
    feed arrives within the timeout. Feeds closer than _FEED_GAP_MS are not
    written (a busy loop may feed often), so a reset may come that much early."""

    def __init__(self, f, timeout_ms):
        self._f = f
        f.write(b"A%d\n" % timeout_ms)
        self._sent = time.ticks_ms()

    def feed(self):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._sent) >= _FEED_GAP_MS:
            self._f.write(b"F")
            self._sent = now


# vfs.AbstractBlockDev: a class to the type checker, none on the device, where
# a block device is any object with the block protocol's methods.
TYPE_CHECKING = const(False)
if TYPE_CHECKING:
    from vfs import AbstractBlockDev as _BlockDev
else:
    _BlockDev = object


class FileFlash(_BlockDev):
    """Block device on an image file with NOR semantics, for vfs.VfsLfs2."""

    def __init__(self, path):
        self.erases = 0
        self.blocks = _BLOCK_COUNT
        try:
            self._f = open(path, "r+b")
            self.blocks = os.stat(path)[6] // _BLOCK_SIZE or _BLOCK_COUNT  # an older, smaller chip keeps its size
        except OSError:  # a new chip: every block erased
            self._f = open(path, "w+b")
            for block in range(_BLOCK_COUNT):
                self._erase(block)
        self._scratch = bytearray(256)
        self.protected = False  # write protection: programming and erasing fail

    def _check_writable(self):
        if self.protected:
            raise OSError(5)  # EIO, as a chip that refuses to program

    def readblocks(self, block, buf, off=0):
        self._f.seek(block * _BLOCK_SIZE + off)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, off=0):
        # Programming can only turn 1 bits into 0 bits, as on NOR flash.
        self._check_writable()
        pos = block * _BLOCK_SIZE + off
        done = 0
        while done < len(buf):
            n = min(len(self._scratch), len(buf) - done)
            old = memoryview(self._scratch)[0:n]
            self._f.seek(pos + done)
            self._f.readinto(old)
            if bytes(old) == _ERASED[0:n]:  # programming erased cells: the new bits as they are
                old[0:n] = buf[done:done + n]
            else:
                for i in range(n):
                    old[i] &= buf[done + i]
            self._f.seek(pos + done)
            self._f.write(old)
            done += n
        self._f.flush()

    def _erase(self, block):
        self.erases += 1
        self._f.seek(block * _BLOCK_SIZE)
        for _ in range(_BLOCK_SIZE // len(_ERASED)):
            self._f.write(_ERASED)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == _IOCTL_BLK_COUNT:
            return self.blocks
        if op == _IOCTL_BLK_SIZE:
            return _BLOCK_SIZE
        if op == _IOCTL_BLK_ERASE:
            self._check_writable()
            self._erase(arg)
            return 0
        return None


class EmulatedDisplay:
    """The board's LCD: the display model drawn into a framebuf (GS2_HMSB:
    0 background, 1 unlit segment, 3 lit) and, after each change, written
    with the screen's text to `path` (renamed into place, so a reader never
    sees half a frame). Dump: b"SMDP", format 2 (GS2_HMSB), width, height,
    sequence number, text length (big-endian: B H H I H), pixels, text."""

    parts = 1

    def __init__(self, path=None):
        import framebuf
        from meter.display.lcd import LCD, Panel

        self.width, self.height = LCD["size"]
        self.buf = bytearray(self.width * self.height // 4)
        self.fb = framebuf.FrameBuffer(self.buf, self.width, self.height, framebuf.GS2_HMSB)
        self.panel = Panel(self.fb, LCD, on=3, ghost=1, off=0)
        self.path = path
        self.seq = 0
        self._text = b""

    def show(self, screen):
        self.panel.draw(screen)
        self._text = screen.text().encode()

    def flush(self, part):
        if self.path is None:
            return
        self.seq += 1
        tmp = self.path + ".new"
        with open(tmp, "wb") as f:
            f.write(struct.pack(">4sBHHIH", b"SMDP", 2, self.width, self.height, self.seq, len(self._text)))
            f.write(self.buf)
            f.write(self._text)
        os.rename(tmp, self.path)


class ControlPipe(io.IOBase):
    """The harness's control bytes on an inherited non-blocking pipe: the
    push-button's levels (for the firmware) and flash write protection."""

    def __init__(self, fd, flash):
        self._f = open(fd, "rb")
        self._flash = flash
        self._reader = None
        self._pending = b""

    def readinto(self, buf):
        return self._f.readinto(buf)

    def read(self, n=16):
        return self._f.read(n)

    def ioctl(self, req, arg):
        if req == _GET_FILENO:
            return self._f.fileno()
        return -1

    async def wait(self):
        """The next button level (1 pressed, 0 released); None when the pipe closed."""
        import asyncio

        if self._reader is None:
            self._reader = asyncio.StreamReader(self)
        while True:
            while self._pending:
                code = self._pending[0]
                self._pending = self._pending[1:]
                if code in b"Bb":
                    return 1 if code == 0x42 else 0
                if code in b"Ww":
                    self._flash.protected = code == 0x57
            data = await self._reader.read(16)
            if not data:
                return None
            self._pending = data



class LoadGenerator:
    """Simulated metrology of a three-phase meter: per phase a voltage, an
    active power (W, negative = export) and a power factor. The harness may
    change them while the meter runs through a small text file (--mains FILE),
    read again whenever it changes:
        volts 230 230 190      0 takes a phase out; all three out = outage
        watts 1200 0 -300
        pf 1 0.9 1
    With the cut-off device open no current flows (the voltages stay)."""

    def __init__(self, import_w=1200, export_w=0, load=None, mains=None):
        self.volts = [230.0, 230.0, 230.0]
        self.watts = [float(import_w - export_w), 0.0, 0.0]
        self.pf = [1.0, 1.0, 1.0]
        if load:
            for k, w in enumerate(load.split(",")[:3]):
                self.watts[k] = float(w)
        self._path = mains
        self._stamp = None

    def _reload(self, path):
        try:
            st = os.stat(path)
        except OSError:
            return
        stamp = (st[1], st[8], st[6])  # inode: the harness replaces the file
        if stamp == self._stamp:
            return
        self._stamp = stamp
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[0] in ("volts", "watts", "pf"):
                    getattr(self, parts[0])[:] = [float(x) for x in parts[1:]]

    def measure(self, sample, relay_open):
        if self._path:
            self._reload(self._path)
        for k in range(3):
            v = self.volts[k]
            w = 0.0 if relay_open or v <= 0 else self.watts[k]
            pf = self.pf[k] or 1.0
            va = abs(w) / pf
            q = (va * va - w * w) ** 0.5
            sample.set(k, int(v * 10), int(va * 100 / v) if v > 0 else 0, int(w), int(q))
        sample.phases = 3
        sample.f = 5000
        return sample


class Board:
    name = "unix"

    def __init__(self, uart, pins, flash, aca, serial, import_w=1200, export_w=0, display=None, control=None,
                 optical=None, load=None, mains=None, time_scale="1", reset_cause="power", bnode=None,
                 modem="st7580"):
        self._uart_fd = int(uart[3:]) if uart.startswith("fd:") else int(uart)
        self._optical = None if optical is None else OpticalUart(int(optical[3:]) if optical.startswith("fd:")
                                                                 else int(optical))
        self._bnode = None
        self._bnode_fd = None if bnode is None else int(bnode[3:]) if bnode.startswith("fd:") else int(bnode)
        self._pin_file = open(int(pins[3:]) if pins.startswith("fd:") else int(pins), "wb")
        self.treq = PipePin(self._pin_file, b"T", b"t")
        self.resetn = PipePin(self._pin_file, b"R", b"r")
        self._reset_cause = reset_cause
        if modem not in ("st7580", "hi", "hi-sum", "hi-sec"):
            raise SystemExit("--modem st7580, hi (Microchip M&M modem), hi-sum (ST75MM) or hi-sec (the modem runs the security)")
        self._modem = modem
        self._aca = bytes.fromhex(aca)
        self._serial = serial
        self._power = (import_w, export_w)
        self._clock_offset = 0
        self._gen = LoadGenerator(import_w, export_w, load, mains)
        self._relay_open = False
        # The RTC has a backup battery: (time, host time) of its last setting, in
        # ms, live in IMAGE.rtc; --time-scale N makes it run N times as fast.
        self._scale = int(time_scale)
        self._rtc_path = flash + ".rtc"
        self._rtc = None
        try:
            with open(self._rtc_path) as f:
                v0, h0 = f.read().split()
                self._rtc = (int(v0), int(h0))
        except (OSError, ValueError):
            pass
        if self._rtc is None and self._scale != 1:
            self._set_rtc(time.time_ns() // 1000000)
        self.flash = FileFlash(flash)
        try:
            fs = vfs.VfsLfs2(self.flash)
        except OSError:  # blank or damaged image: format it, as a factory would
            vfs.VfsLfs2.mkfs(self.flash)
            fs = vfs.VfsLfs2(self.flash)
        vfs.mount(fs, "/flash")
        self.storage_dir = "/flash"
        self._display_path = display
        self._control_fd = None
        if control is not None:
            self._control_fd = int(control[3:]) if control.startswith("fd:") else int(control)
        self._button = None

    def watchdog(self, timeout_ms):
        """Arm the watchdog (it stays armed until the next reset); feed() it."""
        return PipeWatchdog(self._pin_file, timeout_ms)

    def reset_cause(self):
        """Why the board started: "power", "watchdog", "soft" or "other"."""
        return self._reset_cause

    def display(self):
        return EmulatedDisplay(self._display_path)

    def button(self):
        if self._button is None and self._control_fd is not None:
            self._button = ControlPipe(self._control_fd, self.flash)
        return self._button

    def modem_uart(self):
        return FdUart(self._uart_fd)

    def modem_driver(self):
        """The driver of the modem the harness emulates (--modem): the ST7580, or a
        Meters and More modem on the Host Interface (meter/phy/hi.py)."""
        if self._modem == "st7580":
            from meter.phy import st7580

            return st7580.driver()
        from meter.phy import hi

        profile = hi.ST75MM if self._modem == "hi-sum" else hi.MICROCHIP
        return hi.driver(profile, aca=self._aca, serial=self._serial, modem_security=self._modem == "hi-sec")

    def optical_uart(self):
        """The optical port's UART (None: the harness gave none)."""
        return self._optical

    def bnode_uart(self):
        """The B-Node's local UART (None: the harness gave none); one stream per fd."""
        if self._bnode is None and self._bnode_fd is not None:
            self._bnode = FdUart(self._bnode_fd)
        return self._bnode

    def set_optical_line(self, baud, seven_e1):
        optical = self._optical
        if optical is not None:  # the firmware calls it only when optical_uart() gave a port
            optical.baud = baud
            optical.seven_e1 = seven_e1

    def unix_time(self):
        return self.now_ms() // 1000

    def set_unix_time(self, t):
        self._set_rtc(t * 1000)

    def _set_rtc(self, ms):
        self._rtc = (ms, time.time_ns() // 1000000)
        with open(self._rtc_path, "w") as f:
            f.write("%d %d" % self._rtc)

    def now_ms(self):
        host = time.time_ns() // 1000000
        if self._rtc is None:
            return host
        return self._rtc[0] + (host - self._rtc[1]) * self._scale

    def measure(self, sample):
        """The metrology sample (meter.model.metering.Sample) from the load generator."""
        return self._gen.measure(sample, self._relay_open)

    def set_relay(self, open_):
        """The cut-off device: the firmware opens and closes it."""
        self._relay_open = bool(open_)
        print("meter: cut-off device", "open" if open_ else "closed")

    def power_w(self):
        return self._power

    def identity(self):
        return self._aca, self._serial

    def pins(self):
        pins = {"uart": "fd:%d" % self._uart_fd, "t_req": "pipe", "resetn": "pipe"}
        if self._optical is not None:
            pins["optical"] = "fd:%d" % self._optical._fd
        return pins


def from_argv(argv):
    """The Board for main.py's command line (the usage is in main.py)."""
    opts = {}
    i = 1
    while i < len(argv):
        if not argv[i].startswith("--") or i + 1 >= len(argv):
            raise SystemExit("usage: main.py --uart fd:N --pins fd:M --flash IMAGE --aca HEX12 --serial S")
        opts[argv[i][2:].replace("-", "_")] = argv[i + 1]
        i += 2
    for k in ("import_w", "export_w"):
        if k in opts:
            opts[k] = int(opts[k])
    return Board(**opts)
