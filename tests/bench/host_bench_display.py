"""Display refresh against PLC answers on the emulated board.

The board is set up over PLC first (authenticated writes, smitp.display):
- still: the scroll list holds one value that does not change (export
  energy, no export power): nothing is redrawn;
- scrolling: three values with a 1 s dwell, import power so that the values
  change, and a 32-character info message that moves along the line every
  400 ms while it shows.
It is then powered up again over the same flash and timed as in
host_bench_board.py: the harness plays the modem on the UART pty and measures
a READ.REQ's answer (to T_REQ low, to the response's STX). Both settings are
run twice, alternately; each line gives the median and p95 over the samples
of that setting and how many frames the board drew meanwhile.
"""

import statistics
import sys
import tempfile
import time

from host_bench_board import _exchange, _pct
from meter.display import manager as D
from meter.link import mac
from meter.model import registers as R
from smitp.display import METER_ACA, EmulatedMeter, list_value, message_value, parse_dump, timing_value
from smitp.emulated_board import EmulatedBoard
from smitp.network import Network, serial_for

N = 300  # exchanges per run
ROUNDS = 3
WARM = 20
IMPORT_W = 3600  # 1 Wh a second: the value on screen changes every second


def configure(workdir, scrolling):
    with EmulatedMeter(workdir, import_w=0) as m:
        m.wait_frame()
        if scrolling:
            m.write({R.DISPLAY_SCROLL: list_value([R.ENERGY_IMPORT, R.ENERGY_EXPORT, R.CLOCK]),
                     R.DISPLAY_TIMING: timing_value(dwell=1),
                     R.DISPLAY_MESSAGE: message_value("PLANNED WORKS ON YOUR LINE 3 JUL", D.PRIO_INFO)})
        else:
            m.write({R.DISPLAY_SCROLL: list_value([R.ENERGY_EXPORT]), R.DISPLAY_TIMING: timing_value(dwell=60),
                     R.DISPLAY_MESSAGE: message_value("")})


def run(workdir, scrolling, frame):
    board = EmulatedBoard("m1", METER_ACA, serial_for(METER_ACA), workdir, import_w=IMPORT_W if scrolling else 0)
    boots = board.log_text().count("modem configured")
    net = Network()
    net.medium.add_node("m1")
    net.add_board("m1", board)
    try:
        if not net.run_until(lambda: board.log_text().count("modem configured") > boots, 20):
            sys.exit("board did not boot:\n" + board.log_text()[-2000:])
        net.run_for(0.3)
        for _ in range(WARM):
            _exchange(board, frame)
        seq0 = parse_dump(board.display_dump()).seq
        t0 = time.monotonic()
        samples = [_exchange(board, frame) for _ in range(N)]
        seconds = time.monotonic() - t0
        drawn = parse_dump(board.display_dump()).seq - seq0
    finally:
        board.stop()
    return samples, drawn, seconds


def main():
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(bytes.fromhex(METER_ACA)), b"", 3, False, 0, False, 0, 0, b"\x02\x00\x3f")
    frame = bytes(out[:n])
    results = {False: [], True: []}
    drawn = {False: 0, True: 0}
    seconds = {False: 0.0, True: 0.0}
    with tempfile.TemporaryDirectory() as still_dir, tempfile.TemporaryDirectory() as scroll_dir:
        dirs = {False: still_dir, True: scroll_dir}
        for scrolling in (False, True):
            configure(dirs[scrolling], scrolling)
        for _ in range(ROUNDS):
            for scrolling in (False, True):
                s, d, t = run(dirs[scrolling], scrolling, frame)
                results[scrolling] += s
                drawn[scrolling] += d
                seconds[scrolling] += t
    print("READ.REQ answered by the emulated board, display still vs scrolling (%d x %d exchanges each)"
          % (ROUNDS, N))
    p95 = {}
    for scrolling in (False, True):
        samples = results[scrolling]
        treq = [s[0] for s in samples]
        stx = [s[1] for s in samples]
        p95[scrolling] = (_pct(treq, 0.95), _pct(stx, 0.95))
        print("display %-9s to T_REQ low: median %6.0f us  p95 %6.0f us | to response STX: median %6.0f us  "
              "p95 %6.0f us  (%d frames drawn, %.1f a second)"
              % ("scrolling" if scrolling else "still", statistics.median(treq), p95[scrolling][0],
                 statistics.median(stx), p95[scrolling][1], drawn[scrolling], drawn[scrolling] / seconds[scrolling]))
    print("p95 scrolling / still: to T_REQ low %+.1f %%, to response STX %+.1f %% (target: within 10 %%)"
          % (100.0 * (p95[True][0] / p95[False][0] - 1), 100.0 * (p95[True][1] / p95[False][1] - 1)))


if __name__ == "__main__":
    main()
