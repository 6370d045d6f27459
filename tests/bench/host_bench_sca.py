"""Logical (SCA) addressing: what one READ costs a meter addressed by ACA and
by SCA after registration, direct and behind 1-3 repeaters in a chain,
measured on the simulated medium (every byte of every hop, both ways).
"""

from meter.model import registers as R
from smitp.scabook import read_cost

REGS = [R.STATUS_WORD, R.ENERGY_IMPORT]


def main():
    print("READ of the status word and the imported energy, request and answer over every hop")
    print("  repeaters   ACA bytes  SCA bytes  saved      ACA airtime  SCA airtime  saved")
    for reps in (0, 1, 2, 3):
        c = read_cost(reps, REGS)
        a, s = c["aca"], c["sca"]
        print("  %9d   %9d  %9d  %3d (%2.0f %%)  %8.0f ms  %8.0f ms  %3.0f ms (%2.0f %%)"
              % (c["route"], a["bytes"], s["bytes"], a["bytes"] - s["bytes"],
                 100.0 * (a["bytes"] - s["bytes"]) / a["bytes"], a["airtime_s"] * 1000, s["airtime_s"] * 1000,
                 (a["airtime_s"] - s["airtime_s"]) * 1000, 100.0 * (a["airtime_s"] - s["airtime_s"]) / a["airtime_s"]))
    print("  (a direct meter keeps its ACA: the SCA is 6 bytes too, only repeater entries shrink, 6 -> 2)")


if __name__ == "__main__":
    main()
