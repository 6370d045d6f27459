"""City scale on Dask: `smitp sim --engine dask` on a LocalCluster of this machine.

Default 5,000 meters (10 sections, a few minutes on 2 cores, so that `make
bench` stays short); BENCH_CLUSTER_METERS=100000 for the city-scale figure
(about an hour on 2 cores: 200 sections). Reports wall time, sections per
second, the peak resident memory of each worker process, and whether every
reachable meter was discovered, registered and read.

    BENCH_CLUSTER_METERS=100000 .venv/bin/python tests/bench/host_bench_cluster.py
"""

import os
import sys

from smitp import sim

METERS = int(os.environ.get("BENCH_CLUSTER_METERS", "5000"))


def main():
    workers = os.cpu_count() or 1
    rep = sim.run(METERS, seed=1, engine="dask", workers=workers)
    eng = rep["engine"]
    print("%d meters, seed 1, Dask LocalCluster of %d single-thread worker processes" % (METERS, workers))
    print("  %d sections; wall %.1f s; %.3f sections/s (%.1f meters/s) from the cluster's start"
          % (rep["sections"], rep["wall_s"], eng["sections_per_s"], eng["sections_per_s"] * METERS / rep["sections"]))
    print("  peak resident memory per worker: %.0f MB (the largest of %d workers)"
          % (eng["worker_peak_rss_mb"], eng["workers"]))
    print("  reachable %(reachable)d, discovered %(discovered)d, registered %(registered)d, read %(read_ok)d; "
          "deepest %(max_hops)d hops; %(frames)d frames" % rep)
    ok = rep["discovered"] == rep["registered"] == rep["read_ok"] == rep["reachable"]
    print("  every reachable meter discovered, registered and read: %s" % ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":  # the workers start by spawning: they must not run this again
    sys.exit(main())
