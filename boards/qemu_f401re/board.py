# The emulated microcontroller board: MicroPython's qemu port on QEMU's
# netduinoplus2 machine (STM32F405, Cortex-M4) with the NUCLEO-F401RE's memory
# (512 KiB flash, 96 KiB RAM), the meter frozen into flash.
# - the modem UART is the emulated USART2, driven by register access
#   (machine.mem32); QEMU hands it to the host's ST7580 emulator as a pty,
# - the T_REQ and RESETN pins and the watchdog go over USART3, one byte a level
#   change (b"T"/b"t", b"R"/b"r"; b"A<ms>\n" arms the watchdog, b"F" feeds
#   it), as the unix board's pin pipe: QEMU's STM32 GPIO blocks are
#   unimplemented placeholders, so no pin level reaches the host through them,
# - the console (print) is USART1,
# - non-volatile storage: littlefs2 on a block device whose blocks live in a
#   host file reached by ARM semihosting (an external NOR flash: a write can
#   only clear bits, an erase sets 0xFF). QEMU models the STM32's internal
#   flash as ROM (no flash controller), so the store cannot sit there,
# - the RTC: the host's clock (semihosting) plus the offset the meter sets,
#   kept in a host file beside the flash image, as a backup battery would,
# - simulated metrology: constant power per phase from the command line.
# Its command line (QEMU -append, read through semihosting) takes the unix
# board's options: --flash IMAGE --aca HEX12 --serial S [--import-w W]
# [--export-w W] [--load W1,W2,W3] [--reset-cause C] [--heap N] [--heap-report 1].
import gc
import io
import time

import machine
import semihost
import vfs
from micropython import const

_USART2 = const(0x40004400)  # the modem
_USART3 = const(0x40004800)  # pins and watchdog
_SR = const(0)
_DR = const(4)
_CR1 = const(12)
_SR_RXNE = const(0x20)
_SR_TXE = const(0x80)
_CR1_ON = const(0x200C)  # UE | TE | RE
_POLL = const(3)  # MP_STREAM_POLL
_POLL_RD = const(1)
_POLL_WR = const(4)

_BLOCK_SIZE = const(4096)
_BLOCK_COUNT = const(64)  # 256 KiB
_IOCTL_BLK_COUNT = const(4)
_IOCTL_BLK_SIZE = const(5)
_IOCTL_BLK_ERASE = const(6)
_SH_RW = const(3)  # semihosting "r+b"
_SH_NEW = const(7)  # "w+b"
_SH_W = const(4)  # "w"
_ERASED = b"\xff" * 256
_FEED_GAP_MS = const(100)
_REANCHOR_MS = const(1 << 27)  # about 37 h: far inside ticks_diff's 2**29 ms


class Usart(io.IOBase):
    """machine.UART-like stream over an emulated STM32 USART's registers:
    one byte per RXNE (QEMU holds the next byte until DR is read, so none is
    lost), writes go out at once. Pollable by asyncio (ioctl MP_STREAM_POLL)."""

    def __init__(self, base):
        self._sr = base + _SR
        self._dr = base + _DR
        machine.mem32[base + _CR1] = _CR1_ON

    def any(self):
        return 1 if machine.mem32[self._sr] & _SR_RXNE else 0

    def readinto(self, buf, n=-1):
        m = machine.mem32
        sr, dr = self._sr, self._dr
        if n < 0:
            n = len(buf)
        i = 0
        while i < n and m[sr] & _SR_RXNE:
            buf[i] = m[dr] & 0xFF
            i += 1
        return i if i else None

    def read(self, n=256):
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got]) if got else None

    def write(self, buf, n=-1):
        """Write buf, or buf[0:n] without slicing it (as MicroPython streams do)."""
        m = machine.mem32
        sr, dr = self._sr, self._dr
        if n < 0:
            n = len(buf)
        for i in range(n):
            while not m[sr] & _SR_TXE:
                pass
            m[dr] = buf[i]
        return n

    def ioctl(self, req, arg):
        if req == _POLL:
            ready = arg & _POLL_WR
            if arg & _POLL_RD and machine.mem32[self._sr] & _SR_RXNE:
                ready |= _POLL_RD
            return ready
        return 0


class UsartPin:
    """Output pin whose level changes go to the host as one byte on a USART."""

    def __init__(self, usart, high, low, level=1):
        self._u = usart
        self._codes = (low, high)
        self._level = level

    def value(self, v=None):
        if v is None:
            return self._level
        v = 1 if v else 0
        if v != self._level:
            self._level = v
            self._u.write(self._codes[v])
        return None


class UsartWatchdog:
    """machine.WDT on the pin USART: the host restarts the board when no feed
    arrives within the timeout (feeds closer than _FEED_GAP_MS are not sent)."""

    def __init__(self, usart, timeout_ms):
        self._u = usart
        usart.write(b"A%d\n" % timeout_ms)
        self._sent = time.ticks_ms()

    def feed(self):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._sent) >= _FEED_GAP_MS:
            self._u.write(b"F")
            self._sent = now


# vfs.AbstractBlockDev: a class to the type checker, none on the device, where
# a block device is any object with the block protocol's methods.
TYPE_CHECKING = const(False)
if TYPE_CHECKING:
    from vfs import AbstractBlockDev as _BlockDev
else:
    _BlockDev = object


class HostFlash(_BlockDev):
    """Block device for vfs.VfsLfs2 with NOR semantics, its blocks in a host
    file (semihosting): the board's external flash chip."""

    def __init__(self, path):
        try:
            self._h = semihost.open(path, _SH_RW)
            have = semihost.flen(self._h) // _BLOCK_SIZE
        except OSError:  # a new chip: every block erased
            self._h = semihost.open(path, _SH_NEW)
            have = 0
        for block in range(have, _BLOCK_COUNT):  # a short file: the blocks past its end, erased
            self._erase(block)
        self._scratch = bytearray(256)
        self.erases = 0

    def readblocks(self, block, buf, off=0):
        semihost.readinto(self._h, block * _BLOCK_SIZE + off, buf)

    def writeblocks(self, block, buf, off=0):
        # Programming can only turn 1 bits into 0 bits.
        pos = block * _BLOCK_SIZE + off
        done = 0
        while done < len(buf):
            n = min(len(self._scratch), len(buf) - done)
            old = memoryview(self._scratch)[0:n]
            semihost.readinto(self._h, pos + done, old)
            for i in range(n):
                old[i] &= buf[done + i]
            semihost.write(self._h, pos + done, old)
            done += n

    def _erase(self, block):
        for k in range(_BLOCK_SIZE // len(_ERASED)):
            semihost.write(self._h, block * _BLOCK_SIZE + k * len(_ERASED), _ERASED)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLK_COUNT:
            return _BLOCK_COUNT
        if op == _IOCTL_BLK_SIZE:
            return _BLOCK_SIZE
        if op == _IOCTL_BLK_ERASE:
            self.erases += 1
            self._erase(arg)
            return 0
        return None


class HeapReport:
    """--heap-report 1: the GC heap on the console, for the host's figures.
    "heap: boot" once the firmware samples its first metrology (booted);
    "heap: peak" whenever a peak grows: `live` after a collection at each
    sample (once a second), `alloc` the most allocated (garbage included)
    seen at a sample or a modem UART transfer."""

    def __init__(self):
        self.total = gc.mem_free() + gc.mem_alloc()
        self.live = 0
        self.alloc = 0
        self.booted = False

    def touch(self):
        a = gc.mem_alloc()
        if a > self.alloc:
            self.alloc = a

    def sample(self):
        self.touch()
        gc.collect()
        live = gc.mem_alloc()
        if not self.booted:
            self.booted = True
            print("heap: boot live %d free %d total %d" % (live, gc.mem_free(), self.total))
        if live > self.live:
            self.live = live
            print("heap: peak live %d alloc %d total %d" % (self.live, self.alloc, self.total))


class ReportingUsart(Usart):
    def __init__(self, base, report):
        super().__init__(base)
        self._report = report

    def readinto(self, buf, n=-1):
        got = super().readinto(buf, n)
        if got:
            self._report.touch()
        return got

    def write(self, buf, n=-1):
        self._report.touch()
        return super().write(buf, n)


class Board:
    name = "qemu_f401re"
    storage_dir = "/flash"

    def __init__(self, flash, aca, serial, import_w="1200", export_w="0", load=None, reset_cause="power",
                 heap=None, heap_report=None):
        self._pins = Usart(_USART3)
        self.treq = UsartPin(self._pins, b"T", b"t")
        self.resetn = UsartPin(self._pins, b"R", b"r")
        self._reset_cause = reset_cause
        self._aca = bytes(int(aca[i:i + 2], 16) for i in range(0, 12, 2))
        self._serial = serial
        self._power = (int(import_w), int(export_w))
        self._watts = [int(import_w) - int(export_w), 0, 0]
        if load:
            for k, w in enumerate(load.split(",")[:3]):
                self._watts[k] = int(w)
        self._relay_open = False
        self._started = False  # the first metering sample: the firmware has started
        self._report = HeapReport() if heap_report == "1" else None
        self._uart = None
        # The RTC: the host's clock plus an offset the meter sets, the offset
        # kept beside the flash image (the backup battery).
        self._rtc_path = flash + ".rtc"
        self._offset_ms = 0
        try:
            h = semihost.open(self._rtc_path, 0)
            buf = bytearray(24)
            n = semihost.readinto(h, 0, buf)
            semihost.close(h)
            self._offset_ms = int(bytes(buf[:n]))
        except (OSError, ValueError):
            pass
        self._t0 = semihost.time() * 1000  # the host clock has seconds: ticks give the ms
        self._tick0 = time.ticks_ms()
        self.flash = HostFlash(flash)
        try:
            fs = vfs.VfsLfs2(self.flash)
        except OSError:  # blank or damaged image: format it, as a factory would
            vfs.VfsLfs2.mkfs(self.flash)
            fs = vfs.VfsLfs2(self.flash)
        vfs.mount(fs, "/flash")

    def modem_uart(self):
        if self._uart is None:
            report = self._report
            self._uart = Usart(_USART2) if report is None else ReportingUsart(_USART2, report)
        return self._uart

    def watchdog(self, timeout_ms):
        return UsartWatchdog(self._pins, timeout_ms)

    def serves_download(self):
        # No downloaded slot ever runs here: the board starts the firmware frozen into its flash,
        # and a slot (~150 KB of modules) fits neither the 64 KiB flash filesystem nor, loaded
        # from it, the 80 KiB heap. The engine is left out, its RAM with it; REPROG is answered
        # NACK 6 (docs/flashing.md "Software download", docs/mcu.md).
        return False

    def serves_dlms(self):
        # The F401RE's 96 KB of RAM holds the Original-SMITP profile; with the
        # DLMS/COSEM profile beside it the heap runs out at start (docs/mcu.md).
        return False

    def reset_cause(self):
        return self._reset_cause

    def now_ms(self):
        now = time.ticks_ms()
        dt = time.ticks_diff(now, self._tick0)
        if dt > _REANCHOR_MS:  # ticks wrap (2**30 ms): move the anchor on well before
            self._t0 += dt
            self._tick0 = now
            dt = 0
        return self._t0 + dt + self._offset_ms

    def unix_time(self):
        return self.now_ms() // 1000

    def set_unix_time(self, t):
        self._offset_ms += t * 1000 - self.now_ms()
        h = semihost.open(self._rtc_path, _SH_W)
        semihost.write(h, 0, b"%d" % self._offset_ms)
        semihost.close(h)

    def measure(self, sample):
        """The metrology sample: 230 V, the configured power per phase, pf 1."""
        if self._report is not None:
            self._report.sample()
        if not self._started:  # the firmware has started: main.py's start-up threshold ends
            self._started = True
            gc.threshold(-1)  # collections when the heap is full again: no extra pause in a frame
        for k in range(3):
            w = 0 if self._relay_open else self._watts[k]
            sample.set(k, 2300, abs(w) * 100 // 230, w, 0)
        sample.phases = 3
        sample.f = 5000
        return sample

    def set_relay(self, open_):
        self._relay_open = bool(open_)
        print("meter: cut-off device", "open" if open_ else "closed")

    def power_w(self):
        return self._power

    def identity(self):
        return self._aca, self._serial

    def pins(self):
        return {"uart": "USART2", "t_req": "USART3", "resetn": "USART3", "console": "USART1"}


def from_cmdline(text):
    """The Board for the emulator's command line (options as the unix board's)."""
    words = text.split()
    opts = {}
    i = 0
    while i + 1 < len(words):
        if not words[i].startswith("--"):
            raise SystemExit("usage: --flash IMAGE --aca HEX12 --serial S [--import-w W] ...")
        opts[words[i][2:].replace("-", "_")] = words[i + 1]
        i += 2
    return Board(**opts)
