"""Logical (SCA) addressing: what one READ costs a meter addressed by ACA and
by SCA after registration, direct and behind 1-3 repeaters in a chain,
measured on the simulated medium (every byte of every hop, both ways).
B-Nodes: the round trip of a B-Node update through its A-Node (SETIC, plain
and authenticated), in process on the virtual clock and on an emulated board.
"""

import statistics
import tempfile

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
    bnode_round_trips()


def bnode_round_trips(n=5):
    from smitp import bnode, demo, topology
    from smitp.concentrator import Concentrator
    from smitp.network import neighbourhood
    from smitp.secure import KeyRing

    m2, m3 = bytes.fromhex("A8040A1E8902"), bytes.fromhex("A8040A1E8903")
    k1, k2 = bytes(range(16)), bytes(range(16, 32))
    keys = {"A8040A1E8903": (k1, k2)}
    print("\nB-Node update of 5 bytes through meter A8040A1E8903 (behind one repeater), %d each, after one warm-up" % n)
    for emulated in (False, True):
        with tempfile.TemporaryDirectory() as workdir:
            net, port = neighbourhood(topology.demo_feeder(), workdir, boards=emulated, keys=keys,
                                      **({"bnode": True} if emulated else {}))
            try:
                if emulated:
                    demo.wait_until_ready(net)
                bnode.attach(net)
                ring = KeyRing.from_dict({"A8040A1E8903": {"k1": k1.hex(), "k2": k2.hex()}})
                conc = Concentrator(port, keyring=ring)
                bnode.allow_plain(conc, m3, (m2,))
                for auth in (False, True):
                    conc.bnode_update(m3, b"WARM", route=(m2,), auth=auth)
                    took = []
                    for _ in range(n):
                        t0 = net.clock.now()
                        conc.bnode_update(m3, b"HELLO", route=(m2,), auth=auth)
                        took.append(net.clock.now() - t0)
                    print("  %-44s %-13s median %4.0f ms (min %4.0f, max %4.0f)"
                          % ("emulated board (real MicroPython, real time)" if emulated else
                             "in process (simulated time)", "authenticated" if auth else "plain",
                             1000 * statistics.median(took), 1000 * min(took), 1000 * max(took)))
            finally:
                bnode.detach(net)
                net.close()


if __name__ == "__main__":
    main()
