"""Emulated-MCU board runner: the firmware image of boards/qemu_f401re (MicroPython's
qemu port, the meter frozen into flash) on QEMU's netduinoplus2 Cortex-M4.

The harness side is the unix board's (smitp.emulated_board.EmulatedBoard): the
same ST7580 emulator drives the modem UART, the same pin codes and watchdog
messages arrive, a power cut kills the process, a reset starts it again over
the same flash image. What differs is the wiring: QEMU's USART1 (console),
USART2 (modem) and USART3 (pins, watchdog) each open the slave of a pty the
harness made; the harness keeps the slaves open as well, so a board that is
off (between a reset and the next start) does not hang the lines up, and
watches the process itself to see it end. Flash and RTC are host files the
board reaches by semihosting (boards/qemu_f401re/board.py).
"""

import os
import select
import shutil
import subprocess
import termios
import time
import tty
from pathlib import Path

from smitp.emulated_board import CRASH_RESTART_S, ROOT, BoardError, EmulatedBoard

IMAGE = ROOT / "build" / "mcu" / "fw" / "firmware.elf"
MACHINE = "netduinoplus2"
DEFAULT_HEAP = 81920  # bytes: the whole heap the image reserves (--heap: less)
QEMU = "qemu-system-arm"
POLL_S = 0.2  # how often the supervisor looks whether QEMU still runs


def image_path():
    """The built image, or BoardError saying how to build it."""
    if not shutil.which(QEMU):
        raise BoardError("%s not found: apt-get install qemu-system-arm (see README, MCU)" % QEMU)
    if not IMAGE.exists():
        raise BoardError("no MCU image at %s: run `make mcu`" % os.path.relpath(IMAGE, ROOT))
    return IMAGE


FLASH_BYTES = 64 * 4096  # the flash store of boards/qemu_f401re/board.py (_BLOCK_COUNT x _BLOCK_SIZE)


def qemu_command(image, append, serials, icount=None):
    """QEMU's command line for the image: serials are the USART1, 2, 3 backends."""
    cmd = [QEMU, "-machine", MACHINE, "-nographic", "-monitor", "null",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(image), "-append", append]
    for s in serials:
        cmd += ["-serial", s]
    if icount is not None:
        cmd += ["-icount", "shift=%d" % icount]
    return cmd


def _pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


class McuBoard(EmulatedBoard):
    port = "qemu"
    # QEMU's emulated time falls behind the wall clock on a loaded host: a relayed read through
    # two of these boards then answers up to a second or two late.
    answer_slack_s = 2.0

    def __init__(self, name, aca, serial, workdir, import_w=1200, export_w=0, heap=DEFAULT_HEAP, load=None,
                 heap_report=False, icount=None, **_unix_only):
        super().__init__(name, aca, serial, workdir, import_w=import_w, export_w=export_w, load=load)
        self.heap = heap  # bytes (the unix board's is a -X heapsize string)
        self.heap_report = heap_report
        self.icount = icount
        self._console = -1  # the console pty's master, from start()
        if not self.flash.exists():  # the board's 256 KiB, erased: provisioning keeps a file's size
            self.flash.write_bytes(b"\xff" * FLASH_BYTES)

    def start(self):
        if self.proc is not None:
            raise BoardError("%s is already running" % self.name)
        image_path()
        self.workdir.mkdir(parents=True, exist_ok=True)
        modem_m, modem_s = _pty()
        pins_m, pins_s = _pty()
        con_m, con_s = _pty()
        pin_r, pin_w = os.pipe()
        os.set_blocking(pin_r, False)
        os.set_blocking(pin_w, False)
        self._log = open(self.log_path, "ab")
        # modem slave first: EmulatedBoard._reset flushes _board_ends[0]
        self._board_ends = (modem_s, pins_m, pins_s, con_m, con_s)
        self._board_pins = pins_m
        self._console = con_m
        self._pins_w = pin_w
        self.uart_fd, self.pins_fd, self.control_fd = modem_m, pin_r, None
        self._launch()

    def command(self, cause):
        modem_s, _pm, pins_s, _cm, con_s = self._board_ends
        append = "--flash %s --aca %s --serial %s --import-w %d --export-w %d --reset-cause %s --heap %d" % (
            self.flash, self.aca, self.serial, self.import_w, self.export_w, cause, int(self.heap))
        if self.load:
            append += " --load %s" % self.load
        if self.heap_report:
            append += " --heap-report 1"
        return qemu_command(image_path(), append, [os.ttyname(s) for s in (con_s, modem_s, pins_s)], self.icount)

    def _spawn(self, cause):
        self.proc = subprocess.Popen(self.command(cause), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(self.workdir))
        self._started = time.monotonic()
        self._deadline = self.watchdog_ms = None
        self.feeds = 0

    def _supervise(self):
        """Copy the console to the log, pass the pin levels on, watch the
        watchdog and the process (QEMU exits when the firmware resets)."""
        pending = b""
        pins = self._board_pins
        assert pins is not None  # start() set it; it lives as long as the board
        while not self._stopping.is_set():
            deadline = self._deadline
            wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            ready = select.select([pins, self._console], [], [], wait)[0]
            if self._console in ready:
                self._copy_console()
            if pins in ready:
                pending = self._take(pending + _read(pins))
                continue
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                cause = "other"
            elif deadline is not None and time.monotonic() >= deadline:
                cause = "watchdog"
            else:
                continue
            pending = b""
            self._copy_console()
            if not self._reset(cause):
                return

    def _copy_console(self):
        data = _read(self._console)
        if data and self._log is not None:
            self._log.write(data.replace(b"\r\n", b"\n"))
            self._log.flush()

    def _reset(self, cause):
        """Start QEMU again, as a reset would (EmulatedBoard._reset, the ptys staying);
        False: the harness stops the board."""
        proc = self.proc
        assert proc is not None
        proc.kill()
        proc.wait()
        why = ("no watchdog feed for %d ms" % self.watchdog_ms if cause == "watchdog"
               else "the firmware ended, exit status %s" % proc.returncode)
        holdoff = self._started + CRASH_RESTART_S - time.monotonic()
        if holdoff > 0 and self._stopping.wait(holdoff):
            return False
        with self._lock:
            if self._stopping.is_set():
                return False
            log = self._log
            assert log is not None
            log.write(("harness: reset (%s): %s\n" % (cause, why)).encode())
            log.flush()
            self._pass_on(b"".join(pin for pin, level in self._levels.items() if level != pin))
            self._levels = {}
            termios.tcflush(self._board_ends[0], termios.TCIFLUSH)  # a UART in reset loses what arrives
            self._spawn(cause)
            self.resets += 1
            self.reset_causes.append(cause)
        return True

    def heap_lines(self):
        """The board's "heap: ..." console lines (--heap-report)."""
        return [line for line in self.log_text().splitlines() if line.startswith("heap: ")]


def _read(fd):
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return b""


def run_script(code, heap=DEFAULT_HEAP, icount=None, timeout_s=120.0):
    """Run MicroPython code on the bare image (--repl 1: the firmware does not
    start) through the raw REPL on the console; returns what it printed.
    BoardError with the device's error text when the code raised."""
    cmd = qemu_command(image_path(), "--repl 1 --heap %d" % heap, ["stdio", "null", "null"], icount)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    out = proc.stdout.fileno()
    os.set_blocking(out, False)
    end = time.monotonic() + timeout_s
    seen = b""

    def until(marker):
        nonlocal seen
        while marker not in seen:
            left = end - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise BoardError("MCU script: no %r from the board (said %r)" % (marker, seen[-300:]))
            if select.select([out], [], [], min(left, 0.5))[0]:
                seen += _read(out)
        head, _sep, seen = seen.partition(marker)
        return head

    try:
        until(b">>> ")
        proc.stdin.write(b"\r\x01")
        proc.stdin.flush()
        until(b"raw REPL; CTRL-B to exit\r\n>")
        proc.stdin.write(code.encode() + b"\x04")
        proc.stdin.flush()
        until(b"OK")
        printed = until(b"\x04")
        error = until(b"\x04")
    finally:
        proc.kill()
        proc.wait()
    if error.strip():
        raise BoardError("MCU script failed: %s" % error.decode(errors="replace").strip())
    return printed.decode(errors="replace").replace("\r\n", "\n")
