"""Emulated board on MicroPython: answer latency at the UART and the smallest heap.

Latency: the harness plays the modem on the board's UART pty. It writes a whole
PHY_Data.indication carrying a READ.REQ (t0 = after the write of its last
byte) and timestamps (a) the board's T_REQ falling edge, the first thing the
meter does to send its answer, and (b) the STX of the PHY_Data.request that
carries the answer (after the harness returned the status message at once).
The same for a frame the meter repeats. Heap: the demo scenario (3 boards,
every register read, one meter through a repeater) under
`-X heapsize=NwK` (32-bit word sizing), bisected.
"""

import os
import select
import shutil
import subprocess
import statistics
import sys
import tempfile
import time

from meter.link import mac
from meter.phy import st7580
from smitp import demo
from smitp.emulated_board import BOARD_MAIN, EmulatedBoard, micropython_path
from smitp.image import build_image
from smitp.network import Network

N = 300
# Pause between exchanges. On the line the answer's airtime (> 50 ms at 4800
# bit/s) separates two requests; the driver keeps T_REQ high for at least the
# TIC between two local-port sequences, which back-to-back tests would measure.
SPACING_S = 0.03
ACA = "A8040A1E8901"
OTHER = bytes.fromhex("A8040A1E8909")


def _pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


def _read_until(fd, want, deadline):
    """Read bytes until `want(buffer)` is true; return the buffer."""
    buf = b""
    while not want(buf):
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(buf.hex())
        r, _, _ = select.select([fd], [], [], left)
        if r:
            buf += os.read(fd, 512)
    return buf


def _exchange(board, frame):
    """One indication in, one answer out; returns (t_req_us, stx_us)."""
    ind = st7580.encode_frame(st7580.CMD_PHY_DATA_IND, b"\x44\x14\x00\x00" + frame)
    deadline = time.perf_counter() + 2.0
    os.write(board.uart_fd, ind)
    t0 = time.perf_counter()
    _read_until(board.pins_fd, lambda b: b"t" in b, deadline)
    t1 = time.perf_counter()
    os.write(board.uart_fd, b"\x3f\x00")  # status: idle, configured, PHY layer
    got = _read_until(board.uart_fd, lambda b: b"\x02" in b, deadline)
    t2 = time.perf_counter()
    got = got[got.index(b"\x02"):]
    got += _read_until(board.uart_fd, lambda b: len(got) + len(b) >= 2 and len(got + b) >= (got + b)[1] + 5, deadline)
    os.write(board.uart_fd, b"\x06")
    os.write(board.uart_fd, st7580.encode_frame(st7580.CMD_PHY_DATA_CNF, b"\x00\x00\x00\x00\x00"))
    _read_until(board.uart_fd, lambda b: b"\x06" in b, deadline)  # ACK of the confirm
    time.sleep(SPACING_S)
    return (t1 - t0) * 1e6, (t2 - t0) * 1e6


def latency():
    with tempfile.TemporaryDirectory() as tmp:
        board = EmulatedBoard("bench", ACA, "SNBENCH", tmp)
        net = Network()
        net.medium.add_node("bench")
        slot = net.add_board("bench", board)
        if not net.run_until(lambda: "modem configured" in board.log_text(), 20):
            sys.exit("board did not boot:\n" + board.log_text())
        net.run_for(0.2)
        out = bytearray(mac.MAX_FRAME)
        me = mac.aca_to_air(bytes.fromhex(ACA))
        n = mac.encode(out, me, b"", 3, False, 0, False, 0, 0, b"\x02\x00\x3f")
        read = bytes(out[:n])
        n = mac.encode(out, mac.aca_to_air(OTHER), me, 3, False, 0, False, 0, 0, b"\x02\x00\x3f")
        repeat = bytes(out[:n])
        results = {}
        for name, frame in (("READ answered", read), ("frame repeated", repeat)):
            for _ in range(20):
                _exchange(board, frame)
            samples = [_exchange(board, frame) for _ in range(N)]
            results[name] = samples
        board.stop()
        del slot
    for name, samples in results.items():
        treq = [s[0] for s in samples]
        stx = [s[1] for s in samples]
        print("%-15s to T_REQ low: median %6.0f us  p95 %6.0f us | to response STX: median %6.0f us  p95 %6.0f us  (n=%d)"
              % (name, statistics.median(treq), _pct(treq, 0.95), statistics.median(stx), _pct(stx, 0.95), len(samples)))


def demo_passes(heap_kib, main):
    try:
        report = demo.run(heap="%dwK" % heap_kib, main=main)
    except Exception:
        return False
    return all(not m.get("error") for m in report["meters"])


def bisect(passes, lo=8, hi=256):
    """Smallest heap (KiB, 32-bit word sizing) for which passes(kib) holds, or None."""
    if not passes(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def imports_pass(heap_kib, main):
    """The compiled firmware only loaded (every module the board imports), nothing run."""
    image = os.path.dirname(main)
    code = "import sys; sys.path.insert(0, %r); import board, meter.runtime.firmware, meter.optical.port" % image
    r = subprocess.run([micropython_path(), "-X", "heapsize=%dwK" % heap_kib, "-c", code], capture_output=True)
    return r.returncode == 0


def image_main(workdir):
    """The unix image as a board would run it: .mpy modules and main.py."""
    out = os.path.join(workdir, "image")
    build_image("unix", out)
    shutil.copy(BOARD_MAIN, out)
    return os.path.join(out, "main.py")


def main():
    print("emulated board latency (MicroPython unix port, pty UART)")
    latency()
    if "--latency-only" in sys.argv:
        return
    with tempfile.TemporaryDirectory() as tmp:
        main_py = image_main(tmp)
        kib = bisect(lambda k: demo_passes(k, main_py))
        code = bisect(lambda k: imports_pass(k, main_py))
    print("smallest heap completing the demo scenario (compiled image, 3 boards): %s"
          % ("%d KiB (-X heapsize=%dwK)" % (kib, kib) if kib else "none up to 256 KiB"))
    print("smallest heap that only loads the compiled firmware (bytecode in RAM, as on the unix port): %s KiB"
          % code)
    if kib and code:
        print("heap the meter needs beyond its code (what a board with frozen code needs): %d KiB" % (kib - code))


if __name__ == "__main__":
    main()
