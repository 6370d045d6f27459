"""Emulated-board launcher: the firmware on the real MicroPython unix interpreter.

The harness owns a pty per UART (the board gets the non-blocking master fd,
the harness keeps the raw-mode slave) and a pipe for the board's output pins
(T_REQ, RESETN). Flash is an image file the board mounts as littlefs2.
A control pipe carries push-button presses and flash write protection to the
board; the board writes its display to a dump file after each change.
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
    def __init__(self, name, aca, serial, workdir, import_w=1200, export_w=0, heap=DEFAULT_HEAP, main=None,
                 load=None, time_scale=1):
        self.name = name
        self.aca = aca.upper()
        self.serial = serial
        self.workdir = Path(workdir)
        self.flash = self.workdir / ("%s.flash" % name)
        self.log_path = self.workdir / ("%s.log" % name)
        self.display_path = self.workdir / ("%s.display" % name)
        self.mains_path = self.workdir / ("%s.mains" % name)  # the load generator's live settings
        self.load = load  # watts per phase, "W1,W2,W3" (default: import_w - export_w on L1)
        self.time_scale = time_scale  # the board's clock runs this many times as fast
        self.import_w = import_w
        self.export_w = export_w
        self.heap = heap
        self.main = Path(main) if main else BOARD_MAIN
        self.proc = None
        self.uart_fd = None  # harness side of the modem UART (pty slave)
        self.pins_fd = None  # read end of the pin pipe
        self.control_fd = None  # write end of the control pipe
        self.optical_fd = None  # harness side of the optical port (pty slave), kept open while the board runs
        self.optical_path = None  # its path: what a hand-held unit (pyserial) opens
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
        ctl_r, ctl_w = os.pipe()
        os.set_blocking(ctl_r, False)
        opt_master, opt_slave = os.openpty()  # the optical port: the board reads the slave's rate on the master
        tty.setraw(opt_slave)
        os.set_blocking(opt_master, False)
        if self.display_path.exists():
            self.display_path.unlink()  # the picture of the last run is not this one's
        self._log = open(self.log_path, "ab")
        cmd = [
            micropython_path(), "-X", "heapsize=%s" % self.heap, str(self.main),
            "--uart", "fd:%d" % master, "--pins", "fd:%d" % pin_w, "--flash", str(self.flash),
            "--aca", self.aca, "--serial", self.serial,
            "--import-w", str(self.import_w), "--export-w", str(self.export_w),
            "--display", str(self.display_path), "--control", "fd:%d" % ctl_r,
            "--optical", "fd:%d" % opt_master,
            "--mains", str(self.mains_path), "--time-scale", str(int(self.time_scale)),
        ] + (["--load", self.load] if self.load else [])
        self.proc = subprocess.Popen(cmd, pass_fds=(master, pin_w, ctl_r, opt_master), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.close(master)
        os.close(pin_w)
        os.close(ctl_r)
        os.close(opt_master)
        self.uart_fd, self.pins_fd, self.control_fd = slave, pin_r, ctl_w
        self.optical_fd, self.optical_path = opt_slave, os.ttyname(opt_slave)

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
        for fd in (self.uart_fd, self.pins_fd, self.control_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.uart_fd = self.pins_fd = self.control_fd = None
        if self.optical_fd is not None:
            os.close(self.optical_fd)
            self.optical_fd = self.optical_path = None
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def button(self, pressed):
        """Push (True) or release (False) the board's button."""
        os.write(self.control_fd, b"B" if pressed else b"b")

    def write_protect(self, on):
        """Make the flash refuse (True) or accept (False) programming and erasing."""
        os.write(self.control_fd, b"W" if on else b"w")

    def set_mains(self, volts=None, watts=None, pf=None):
        """Change the load generator while the board runs: three values each
        (volts 0 = phase out; watts negative = export). Written atomically."""
        lines = []
        for key, vals in (("volts", volts), ("watts", watts), ("pf", pf)):
            if vals is not None:
                lines.append("%s %s\n" % (key, " ".join(str(v) for v in vals)))
        tmp = self.mains_path.with_suffix(".new")
        tmp.write_text("".join(lines))
        os.replace(tmp, self.mains_path)

    def display_dump(self):
        """The board's last display dump (bytes; smitp.display parses it), or None."""
        try:
            return self.display_path.read_bytes()
        except OSError:
            return None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
