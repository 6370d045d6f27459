"""Emulated-board launcher: the firmware on the real MicroPython unix interpreter.

The harness owns a pty per UART (the board gets the non-blocking master fd,
the harness keeps the raw-mode slave) and a pipe for the board's output pins
(T_REQ, RESETN). Flash is an image file the board mounts as littlefs2.
A control pipe carries push-button presses and flash write protection to the
board; the board writes its display to a dump file after each change.
Killing the process is a power cut; starting it again over the same image is
the next power-up.

The board's watchdog talks on the pin pipe too (boards/unix/board.py,
PipeWatchdog). A supervisor thread reads that pipe, passes the pin levels on
to `pins_fd` and resets the board as hardware would: a new process over the
same flash image, ptys and pipes, told why it started (--reset-cause), when
the armed watchdog goes unfed for its timeout ("watchdog") or when the process
ends without the harness asking ("other": a crash, an uncaught exception).
The timeout is real time: --time-scale speeds up the board's RTC, not its ticks.
"""

import os
import select
import shutil
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOARD_MAIN = ROOT / "boards" / "unix" / "main.py"
# The unix port compiles the firmware from source into its heap: with every profile
# (SCA, B-Node, Host Interface, DLMS) 256wK no longer boots; boards freeze the code instead.
DEFAULT_HEAP = "384wK"
WDT_ARM = b"A"  # b"A<timeout ms>\n": the board armed its watchdog
WDT_FEED = b"F"
# A board that dies at once is started again at most this often: a crash loop
# must not take the host's CPU (and callers see it not alive() meanwhile).
CRASH_RESTART_S = 1.0


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
    # What a concentrator waits for this board's answers beyond its margin (MARGIN_S): none,
    # the unix port keeps up with the wall clock.
    answer_slack_s = 0.0

    def __init__(self, name, aca, serial, workdir, import_w=1200, export_w=0, heap=DEFAULT_HEAP, main=None,
                 load=None, time_scale=1, bnode=False, modem="st7580"):
        self.name = name
        self.bnode = bnode  # give the board a B-Node local link (a pty; smitp.bnode sits on its slave)
        self.bnode_fd = None  # harness side of the B-Node link (pty slave) while the board runs
        self.aca = aca.upper()
        self.serial = serial
        self.workdir = Path(workdir)
        self.flash = self.workdir / ("%s.flash" % name)
        self.log_path = self.workdir / ("%s.log" % name)
        self.display_path = self.workdir / ("%s.display" % name)
        self.mains_path = self.workdir / ("%s.mains" % name)  # the load generator's live settings
        self.load = load  # watts per phase, "W1,W2,W3" (default: import_w - export_w on L1)
        self.time_scale = time_scale  # the board's clock runs this many times as fast
        self.modem = modem  # "st7580", or a Meters and More modem on the Host Interface: "hi", "hi-sum", "hi-sec"
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
        self.resets = 0  # resets the harness made (watchdog, exit), across power cuts
        self.reset_causes = []  # the cause of each
        self.watchdog_ms = None  # the armed watchdog's timeout, None until the firmware arms it
        self.feeds = 0  # feeds received since the last start or reset
        self._log = None
        self._lock = threading.Lock()  # the supervisor's restart against stop() and power_cut()
        self._stopping = threading.Event()
        self._supervisor = None
        self._board_ends: tuple[int, ...] = ()  # the board's ends of the UART pty, control pipe and optical pty
        self._pins_w = None  # write end of the pin pipe the supervisor passes levels on to
        self._board_pins = None  # read end of the current process's pin pipe (the supervisor's)
        self._levels = {}  # pin -> its last level code, b"T" or b"t" for T_REQ
        self._deadline = None  # monotonic time the watchdog bites without a feed
        self._started = 0.0

    def start(self):
        """Power the board up (the flash image keeps what it had)."""
        if self.proc is not None:
            raise BoardError("%s is already running" % self.name)
        micropython_path()
        self.workdir.mkdir(parents=True, exist_ok=True)
        master, slave = os.openpty()
        tty.setraw(slave)  # before any byte flows: no echo, no CR/LF mangling
        os.set_blocking(master, False)  # inherited: partial, non-blocking reads in the board
        os.set_blocking(slave, False)
        pin_r, pin_w = os.pipe()
        os.set_blocking(pin_r, False)
        os.set_blocking(pin_w, False)  # nobody reading: levels are dropped, the supervisor goes on
        ctl_r, ctl_w = os.pipe()
        os.set_blocking(ctl_r, False)
        opt_master, opt_slave = os.openpty()  # the optical port: the board reads the slave's rate on the master
        tty.setraw(opt_slave)
        os.set_blocking(opt_master, False)
        if self.display_path.exists():
            self.display_path.unlink()  # the picture of the last run is not this one's
        self._log = open(self.log_path, "ab")
        # The harness keeps the board's ends open: a reset starts a process on the same ones.
        self._board_ends = (master, ctl_r, opt_master)
        if self.bnode:
            bn_master, self.bnode_fd = os.openpty()
            tty.setraw(self.bnode_fd)
            os.set_blocking(bn_master, False)
            self._board_ends += (bn_master,)
        self._pins_w = pin_w
        self.uart_fd, self.pins_fd, self.control_fd = slave, pin_r, ctl_w
        self.optical_fd, self.optical_path = opt_slave, os.ttyname(opt_slave)
        self._launch()

    def _launch(self):
        """Power on: the first process, then the supervisor that resets it like hardware."""
        self._stopping.clear()
        self._levels = {}
        try:
            self._spawn("power")
        except OSError:
            self._close()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="%s supervisor" % self.name, daemon=True)
        self._supervisor.start()

    def _spawn(self, cause):
        master, ctl_r, opt_master = self._board_ends[:3]
        extra = self._board_ends[3:]  # the B-Node link's master, if any
        pins_r, pins_w = os.pipe()
        cmd = [
            micropython_path(), "-X", "heapsize=%s" % self.heap, str(self.main),
            "--uart", "fd:%d" % master, "--pins", "fd:%d" % pins_w, "--flash", str(self.flash),
            "--aca", self.aca, "--serial", self.serial,
            "--import-w", str(self.import_w), "--export-w", str(self.export_w),
            "--display", str(self.display_path), "--control", "fd:%d" % ctl_r,
            "--optical", "fd:%d" % opt_master,
            "--mains", str(self.mains_path), "--time-scale", str(int(self.time_scale)),
            "--reset-cause", cause,
        ] + (["--load", self.load] if self.load else []) + (["--bnode", "fd:%d" % extra[0]] if extra else [])
        cmd += ["--modem", self.modem] if self.modem != "st7580" else []
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(master, pins_w, ctl_r, opt_master) + extra, stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError:
            os.close(pins_r)
            raise
        finally:
            os.close(pins_w)  # the process holds the only write end: its exit is end of file
        self._board_pins = pins_r
        self._started = time.monotonic()
        self._deadline = self.watchdog_ms = None  # a reset disarms the watchdog
        self.feeds = 0

    def _supervise(self):
        """Pass the board's pin levels on, watch its watchdog and its process."""
        pending = b""
        try:
            while True:
                pins = self._board_pins
                assert pins is not None  # _spawn() set it; only this thread takes it away
                deadline = self._deadline
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if select.select([pins], [], [], wait)[0]:
                    data = os.read(pins, 4096)
                    if data:
                        pending = self._take(pending + data)
                        continue
                    cause = "other"  # end of file: the process is gone
                elif deadline is None or time.monotonic() < deadline:  # (select waits for bytes without one)
                    continue
                else:
                    cause = "watchdog"
                pending = b""
                if not self._reset(cause):
                    return
        finally:
            if self._board_pins is not None:
                os.close(self._board_pins)
                self._board_pins = None

    def _take(self, data):
        """Watchdog messages from the pin pipe bytes, the rest passed on to pins_fd;
        returns an incomplete message to keep for the next read."""
        levels = bytearray()
        i = 0
        while i < len(data):
            code = data[i:i + 1]
            if code == WDT_ARM:
                end = data.find(b"\n", i)
                if end < 0:
                    break
                self.watchdog_ms = int(data[i + 1:end])
                i = end
            elif code == WDT_FEED:
                self.feeds += 1
            else:
                levels += code
                self._levels[code.upper()] = code
            if self.watchdog_ms is not None and code in (WDT_ARM, WDT_FEED):
                self._deadline = time.monotonic() + self.watchdog_ms / 1000.0
            i += 1
        self._pass_on(levels)
        return data[i:]

    def _pass_on(self, levels):
        if levels and self._pins_w is not None:
            try:
                os.write(self._pins_w, levels)
            except BlockingIOError:
                pass

    def _reset(self, cause):
        """Restart the board's process, as a reset would; False: the harness stops the board."""
        proc = self.proc
        assert proc is not None  # the board runs until the supervisor ends
        proc.kill()  # the watchdog pulls the reset line (a process that exited: nothing to do)
        proc.wait()
        if cause == "watchdog":
            why = "no watchdog feed for %d ms" % self.watchdog_ms
        else:
            why = "the firmware ended, exit status %s" % proc.returncode
        holdoff = self._started + CRASH_RESTART_S - time.monotonic()
        if holdoff > 0 and self._stopping.wait(holdoff):
            return False
        with self._lock:
            if self._stopping.is_set():
                return False
            log, pins = self._log, self._board_pins
            assert log is not None and pins is not None  # both live until _close(), after stopping
            log.write(("harness: reset (%s): %s\n" % (cause, why)).encode())
            log.flush()
            os.close(pins)
            self._board_pins = None
            # pins a reset leaves low go back to their idle high (Board drives them high)
            self._pass_on(b"".join(pin for pin, level in self._levels.items() if level != pin))
            self._levels = {}
            termios.tcflush(self._board_ends[0], termios.TCIFLUSH)  # a UART in reset loses what arrives
            self._spawn(cause)
            self.resets += 1
            self.reset_causes.append(cause)
        return True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def power_cut(self):
        """Kill the process at once, as pulling the supply would."""
        if self.proc is None:
            return
        self._halt(lambda proc: proc.kill())
        self._close()

    def stop(self):
        if self.proc is None:
            return
        self._halt(_terminate)
        self._close()

    def _halt(self, end):
        # The supervisor must not take the end of the process for a crash.
        with self._lock:
            self._stopping.set()
            proc = self.proc
        supervisor = self._supervisor
        assert proc is not None and supervisor is not None  # callers check that the board runs
        end(proc)
        proc.wait()
        supervisor.join()
        self._supervisor = None

    def _close(self):
        for fd in (self.uart_fd, self.pins_fd, self.control_fd, self._pins_w) + self._board_ends:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.uart_fd = self.pins_fd = self.control_fd = self._pins_w = None
        self._board_ends = ()
        if self.optical_fd is not None:
            os.close(self.optical_fd)
            self.optical_fd = self.optical_path = None
        if self.bnode_fd is not None:
            os.close(self.bnode_fd)
            self.bnode_fd = None
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def button(self, pressed):
        """Push (True) or release (False) the board's button."""
        os.write(self._control(), b"B" if pressed else b"b")

    def write_protect(self, on):
        """Make the flash refuse (True) or accept (False) programming and erasing."""
        os.write(self._control(), b"W" if on else b"w")

    def _control(self):
        if self.control_fd is None:
            raise BoardError("%s is not running" % self.name)
        return self.control_fd

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


def _terminate(proc):
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
