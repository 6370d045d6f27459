"""Fault campaign of the meter on a Meters and More modem (CPython, virtual clock): for
each fault kind of the HI emulator (smitp.hi_emu), ROUNDS requests each preceded by
one injected fault, through the firmware's modem task with the HI driver
(tests/host/hi_harness.py); prints how many were answered on air and what the driver and
the emulator counted."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests", "host"), os.path.join(ROOT, "tests", "firmware"), os.path.join(ROOT, "host_tools")):
    sys.path.insert(0, p)

from meter import attrs as A  # noqa: E402
from meter.link import mac  # noqa: E402
from meter.model import registers as R  # noqa: E402
from smitp.hi_emu import FAULTS  # noqa: E402
from hi_harness import HiMeter  # noqa: E402

ACA = bytes.fromhex("A8040A1E8901")
ROUNDS = 50


def read_frame():
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(ACA), b"", 3, False, 0, False, 0, 0,
                   bytes((A.READ_REQ,)) + R.STATUS_WORD.to_bytes(2, "big"))
    return bytes(out[:n])


def main():
    total = answered_all = 0
    for fault in FAULTS:
        m = HiMeter(ACA, sm_ms=200, tack_ms=100, confirm_ms=500)
        m.emu.tack_ms = 100
        m.run(200)
        answered = 0
        for _ in range(ROUNDS):
            m.emu.inject(fault)
            if fault == "reset":
                m.run(300)
            answered += len(m.request(read_frame(), ms=1500)) == 1
        d, e = m.drv.stats, m.emu.stats
        total += ROUNDS
        answered_all += answered
        print("%-13s %3d/%d answered  driver: retries %d, bad frames NAKed or dropped %d, repeats dropped %d, busy %d, "
              "timeouts %d; modem: faults %d, resets %d, repeats %d" % (
                  fault, answered, ROUNDS, d["retries"], d["rx_bad"], d["rx_dup"], d["busy"], d["timeouts"],
                  e["faults"], e["resets"], e["tx_repeats"]))
    print("fault campaign: %d of %d requests answered" % (answered_all, total))
    return 0 if answered_all == total else 1


if __name__ == "__main__":
    sys.exit(main())
