"""Emulated-board launcher: the firmware on the real MicroPython unix interpreter.

The harness owns a pty per UART (the board gets the non-blocking master fd,
the harness keeps the raw-mode slave) and a pipe for the board's output pins
(T_REQ, RESETN). Flash is an image file the board mounts as littlefs2.
Killing the process is a power cut; starting it again over the same image is
the next power-up.
"""

import os
import shutil
import subprocess
import sys
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOARD_MAIN = ROOT / "boards" / "unix" / "main.py"
DEFAULT_HEAP = "256wK"


class BoardError(Exception):
    pass


def micropython_path():
    """The MicroPython unix interpreter: next to this Python, else on PATH."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise BoardError("the MicroPython interpreter is not installed: run `make setup`")
    return found


class EmulatedBoard:
    def __init__(self, name, aca, serial, workdir, import_w=1200, export_w=0, heap=DEFAULT_HEAP, main=None):
        self.name = name
        self.aca = aca.upper()
        self.serial = serial
        self.workdir = Path(workdir)
        self.flash = self.workdir / ("%s.flash" % name)
        self.log_path = self.workdir / ("%s.log" % name)
        self.import_w = import_w
        self.export_w = export_w
        self.heap = heap
        self.main = Path(main) if main else BOARD_MAIN
        self.proc = None
        self.uart_fd = None  # harness side of the modem UART (pty slave)
        self.pins_fd = None  # read end of the pin pipe
        self._log = None

    def start(self):
        """Power the board up (the flash image keeps what it had)."""
        if self.proc is not None:
            raise BoardError("%s is already running" % self.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        master, slave = os.openpty()
        tty.setraw(slave)  # before any byte flows: no echo, no CR/LF mangling
        os.set_blocking(master, False)  # inherited: partial, non-blocking reads in the board
        os.set_blocking(slave, False)
        pin_r, pin_w = os.pipe()
        os.set_blocking(pin_r, False)
        self._log = open(self.log_path, "ab")
        cmd = [
            micropython_path(), "-X", "heapsize=%s" % self.heap, str(self.main),
            "--uart", "fd:%d" % master, "--pins", "fd:%d" % pin_w, "--flash", str(self.flash),
            "--aca", self.aca, "--serial", self.serial,
            "--import-w", str(self.import_w), "--export-w", str(self.export_w),
        ]
        self.proc = subprocess.Popen(cmd, pass_fds=(master, pin_w), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        os.close(master)
        os.close(pin_w)
        self.uart_fd, self.pins_fd = slave, pin_r

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def power_cut(self):
        """Kill the process at once, as pulling the supply would."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._close()

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        for fd in (self.uart_fd, self.pins_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.uart_fd = self.pins_fd = None
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
