"""The firmware on the emulated Cortex-M4 (boards/qemu_f401re, `make mcu`):

- flash: the image's text + data against the NUCLEO-F401RE's 512 KiB, the frozen
  part (bytecode and constants of asyncio, the meter, the board) in it;
- heap: the demo feeder with its repeater and the meter behind it on the MCU,
  read plain then authenticated (AES-CTR), at 80 KiB (all the image reserves),
  72 KiB, 64 KiB and 48 KiB of GC heap:
  live heap after boot, peak live heap (after a collection, once a second) and
  peak allocated (garbage included) as the board reports them, and whether
  every read was answered without a reset;
- instructions per READ: tests/mcu/mcu_read.py on the bare image under QEMU
  -icount shift=0 (1 instruction = 1 ns of virtual time), converted to time
  at the F401RE's 84 MHz.

Skips with one line when the toolchain or the image is missing.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "host_tools"))
sys.path.insert(0, os.path.join(ROOT, "firmware"))

FLASH = 512 * 1024
RAM = 96 * 1024
MHZ = 84
ELABORATION_MS = 20  # meter/timers.py ELABORATION_MS
HEAPS = (80 * 1024, 72 * 1024, 64 * 1024, 48 * 1024)  # the image reserves 80 KiB: the F401RE's RAM less the C stack;
# 72 KiB: the smallest it ran the scenario on (docs/mcu.md)


def flash_figures(elf):
    size = shutil.which("arm-none-eabi-size")
    out = subprocess.run([size, elf], capture_output=True, text=True, check=True).stdout.split("\n")[1].split()
    text, data, bss = int(out[0]), int(out[1]), int(out[2])
    frozen = os.path.join(os.path.dirname(elf), "frozen_content.o")
    ftext = int(subprocess.run([size, frozen], capture_output=True, text=True, check=True).stdout.split("\n")[1].split()[0])
    print("flash: image %d B of %d (%.0f %%), of which frozen Python %d B; RAM: data+bss %d B of %d"
          % (text + data, FLASH, 100.0 * (text + data) / FLASH, ftext, data + bss, RAM))


def heap_scenario(heap):
    """The demo feeder, m2 and m3 on the MCU with `heap` bytes of GC heap, read plain then authenticated."""
    from smitp import demo, topology
    from smitp.concentrator import Concentrator, aca_text
    from smitp.network import neighbourhood

    topo = topology.load(topology.demo_feeder())
    meters = demo._meters(topo)
    keys = {aca_text(a): (os.urandom(16), os.urandom(16)) for a in meters}
    with tempfile.TemporaryDirectory(prefix="smitp-mcu-bench-") as workdir:
        net, port = neighbourhood(topo, workdir, boards=True, keys=keys, mcu=demo.MCU_METERS,
                                  mcu_options={"heap": heap, "heap_report": True})
        answered, error = 0, None
        try:
            demo.wait_until_ready(net)
            conc = Concentrator(port, keyring=demo._keyring(keys, meters))
            for auth in (False, True):
                for m in demo.read_meters(conc, meters, auth=auth):
                    answered += 0 if m.get("error") else 1
            net.run_for(1.5)  # one more metrology sample: the peaks after the last read
        except Exception as e:  # noqa: BLE001 - a bench reports what happened
            error = str(e).splitlines()[0]
        finally:
            net.close()
        for name in demo.MCU_METERS:
            board = net.boards[name].board
            lines = board.heap_lines()
            boot = [ln for ln in lines if ln.startswith("heap: boot")]
            peak = [ln for ln in lines if ln.startswith("heap: peak")]
            died = [ln for ln in board.log_text().splitlines() if "firmware stopped" in ln]
            print("  %s: %s; %s; resets %d%s" % (
                name, boot[0][6:] if boot else "no boot report", peak[-1][6:] if peak else "no peak report",
                board.resets, "; " + died[0] if died else ""))
    print("  reads answered: %d of %d%s" % (answered, 2 * len(meters), "; " + error if error else ""))


_BREAKDOWN = """
import gc
gc.collect(); a0 = gc.mem_alloc()
import asyncio
import meter.runtime.firmware as F
gc.collect(); a1 = gc.mem_alloc()
import board
b = board.Board("%s", "A8040A1E8902", "SN1")
gc.collect(); a2 = gc.mem_alloc()
parts = F.build(b)
gc.collect(); a3 = gc.mem_alloc()
print("HEAP %%d %%d %%d %%d" %% (a0, a1 - a0, a2 - a1, a3 - a2))
"""


def heap_breakdown():
    """Live heap by stage of the firmware's start, on the bare image."""
    from smitp import mcu_board

    with tempfile.TemporaryDirectory(prefix="smitp-mcu-bench-") as workdir:
        out = mcu_board.run_script(_BREAKDOWN % os.path.join(workdir, "probe.flash"))
    start, modules, board, build = (int(x) for x in re.search(r"HEAP (\d+) (\d+) (\d+) (\d+)", out).groups())
    print("live heap at start %d B; + asyncio and the firmware's modules %d B; + board (flash mounted) %d B; "
          "+ data model and node (build) %d B; = %d B before the tasks start"
          % (start, modules, board, build, start + modules + board + build))


def instructions():
    from smitp import mcu_board

    code = open(os.path.join(ROOT, "tests", "mcu", "mcu_read.py")).read()
    out = mcu_board.run_script(code, icount=0)
    for kind, med, lo, hi, heap in re.findall(r"READ (\w+) (\d+) (\d+) (\d+) (-?\d+)", out):
        n = int(med) * 1000
        print("READ %-13s %7d instructions (min %d, max %d): %5.2f ms at %d MHz if 1 cycle each, "
              "%5.2f ms at 1.5; %d B heap/frame" % (kind, n, int(lo) * 1000, int(hi) * 1000, n / (MHZ * 1000.0),
                                                   MHZ, 1.5 * n / (MHZ * 1000.0), int(heap)))
    for name, us in re.findall(r"AES (\w+) (\d+)", out):
        print("AES-128 block, %-9s %7d instructions" % (name, int(us) * 1000))
    print("  against the %d ms elaboration time. Limits: QEMU counts instructions, not cycles: flash wait "
          "states (2 at 84 MHz, hidden in part by the ART accelerator), multi-cycle loads, branches and "
          "divisions are not modelled; 1.5 cycles per instruction is an assumption, not a measurement. "
          "Counted: node.on_phy (link, application, security), not the modem UART and driver." % ELABORATION_MS)


def main():
    from smitp import mcu_board

    try:
        elf = str(mcu_board.image_path())
    except mcu_board.BoardError as e:
        print("skipped: %s" % e)
        return 0
    if not shutil.which("arm-none-eabi-size"):
        print("skipped: arm-none-eabi-size not found (apt-get install gcc-arm-none-eabi)")
        return 0
    flash_figures(elf)
    instructions()
    heap_breakdown()
    for heap in HEAPS:
        t0 = time.monotonic()
        print("heap %d B (%d KiB), demo feeder read plain then authenticated:" % (heap, heap // 1024))
        heap_scenario(heap)
        print("  (%.0f s)" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
