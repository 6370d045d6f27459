# The emulated board: the real MicroPython unix interpreter with
# - the modem UART on a pty master handed over by the harness ("fd:N", already
#   non-blocking, raw mode set on the slave side by the harness),
# - the T_REQ and RESETN pins on a pipe: one byte per level change,
#   b"T"/b"t" for T_REQ high/low, b"R"/b"r" for RESETN high/low,
# - non-volatile storage: littlefs2 on a block device backed by an image file,
#   with NOR-flash rules (a write can only clear bits, an erase sets 0xFF),
# - simulated metrology (constant import/export power per phase) and an RTC
#   that is the host clock plus an offset the meter may set.
import io
import time
import vfs
from micropython import const

_BLOCK_SIZE = const(4096)
_BLOCK_COUNT = const(64)  # 256 KiB of flash
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

    def write(self, buf):
        return self._f.write(buf)

    def ioctl(self, req, arg):
        # Unix select/asyncio wait on the real fd when asked for it.
        if req == _GET_FILENO:
            return self._f.fileno()
        return -1


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


class FileFlash:
    """Block device on an image file with NOR semantics, for vfs.VfsLfs2."""

    def __init__(self, path):
        self.erases = 0
        try:
            self._f = open(path, "r+b")
        except OSError:  # a new chip: every block erased
            self._f = open(path, "w+b")
            for block in range(_BLOCK_COUNT):
                self._erase(block)
        self._scratch = bytearray(256)

    def readblocks(self, block, buf, off=0):
        self._f.seek(block * _BLOCK_SIZE + off)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, off=0):
        # Programming can only turn 1 bits into 0 bits, as on NOR flash.
        pos = block * _BLOCK_SIZE + off
        done = 0
        while done < len(buf):
            n = min(len(self._scratch), len(buf) - done)
            old = memoryview(self._scratch)[0:n]
            self._f.seek(pos + done)
            self._f.readinto(old)
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
            return _BLOCK_COUNT
        if op == _IOCTL_BLK_SIZE:
            return _BLOCK_SIZE
        if op == _IOCTL_BLK_ERASE:
            self._erase(arg)
            return 0
        return None


class Board:
    name = "unix"

    def __init__(self, uart, pins, flash, aca, serial, import_w=1200, export_w=0):
        self._uart_fd = int(uart[3:]) if uart.startswith("fd:") else int(uart)
        pin_file = open(int(pins[3:]) if pins.startswith("fd:") else int(pins), "wb")
        self.treq = PipePin(pin_file, b"T", b"t")
        self.resetn = PipePin(pin_file, b"R", b"r")
        self._aca = bytes.fromhex(aca)
        self._serial = serial
        self._power = (import_w, export_w)
        self._clock_offset = 0
        self.flash = FileFlash(flash)
        try:
            fs = vfs.VfsLfs2(self.flash)
        except OSError:  # blank or damaged image: format it, as a factory would
            vfs.VfsLfs2.mkfs(self.flash)
            fs = vfs.VfsLfs2(self.flash)
        vfs.mount(fs, "/flash")
        self.storage_dir = "/flash"

    def modem_uart(self):
        return FdUart(self._uart_fd)

    def unix_time(self):
        return int(time.time()) + self._clock_offset

    def set_unix_time(self, t):
        self._clock_offset = t - int(time.time())

    def power_w(self):
        return self._power

    def identity(self):
        return self._aca, self._serial

    def pins(self):
        return {"uart": "fd:%d" % self._uart_fd, "t_req": "pipe", "resetn": "pipe"}
