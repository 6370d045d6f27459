"""Fleet simulation: discovery, registration and one read of every meter.

1,000 meters with seed 1 (every reachable meter must be discovered,
registered and read), then the same with 10 repeaters powered off, then
10,000 meters. Reports wall time (target: 1,000 meters within 60 s on a
2-core machine), frames per meter, simulated time and where it went, and the
simulated time against two floors of the longest section: the airtime of the
frames that must be sent to discover, silence, register and read each meter
once over its route (target: within 8 times it), and that airtime plus the
windows the protocol imposes whatever the schedule (sim.fixed_windows_s).
"""

import sys

from smitp import sim


def show(label, rep):
    longest = max(rep["details"], key=lambda r: r["sim_time_s"])
    floor = rep["airtime_min_s"] + rep["fixed_windows_s"]
    print("%s" % label)
    print("  meters %(meters)d, reachable %(reachable)d, discovered %(discovered)d, registered %(registered)d, "
          "read %(read_ok)d, deepest %(max_hops)d hops, %(sections)d section(s)" % rep)
    print("  wall %.1f s; %d frames = %.1f per meter; %.0f s on air in all"
          % (rep["wall_s"], rep["frames"], rep["frames_per_meter"], rep["airtime_s"]))
    print("  simulated time %.0f s (%.1f h; sections run in parallel, the longest counts): %s"
          % (rep["sim_time_s"], rep["sim_time_s"] / 3600,
             ", ".join("%s %.0f s" % (k, v) for k, v in longest["phases_s"].items())))
    print("  lower bound (airtime of the frames that must be sent, that section): %.0f s -> ratio %.1f"
          % (rep["airtime_min_s"], rep["sim_to_min_airtime"]))
    print("  protocol floor: that airtime + %.0f s of fixed windows (un-silencing gap, a slot per direct answer,"
          " a REQADDR window per level) = %.0f s -> ratio %.1f"
          % (rep["fixed_windows_s"], floor, rep["sim_time_s"] / floor))
    if "rerouted" in rep:
        print("  after powering off %d repeaters: %d affected, %d rerouted, read %d of %d reachable"
              % (len(rep["failed_repeaters"]), rep["affected"], rep["rerouted"], rep["read_ok_after"],
                 rep["reachable_after"]))
    ok = rep["discovered"] == rep["registered"] == rep["read_ok"] == rep["reachable"]
    print("  every reachable meter discovered, registered and read: %s" % ("yes" if ok else "NO"))
    return ok


def main():
    ok = show("1,000 meters, seed 1", sim.run(1000, seed=1))
    ok &= show("1,000 meters, seed 1, 10 repeaters powered off after registration",
               sim.run(1000, seed=1, fail_repeaters=10))
    ok &= show("10,000 meters, seed 1", sim.run(10000, seed=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
