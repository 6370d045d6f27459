"""Run the benchmarks: tests/bench/bench_*.py under MicroPython (the venv's
unix port), tests/bench/host_bench_*.py under CPython; each script's output is
printed under a heading. Arguments select scripts by name substring.

    python tests/bench/run.py [crypto ...]

Exits 1 if a script failed. Benchmarks measure; they do not assert speed.
Each script's end says how long it took; while one runs, a heartbeat line on
stderr every few seconds (smitp.progress) says which and for how long.
"""

import glob
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def micropython():
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.access(here, os.X_OK) else shutil.which("micropython")


def main(selected):
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    scripts += sorted(glob.glob(os.path.join(HERE, "host_bench_*.py")))
    scripts = [s for s in scripts if not selected or any(x in os.path.basename(s) for x in selected)]
    mp = micropython()
    env = dict(os.environ)
    # Firmware importable as `meter` on both; ".frozen" keeps the unix port's asyncio.
    env["MICROPYPATH"] = os.pathsep.join([os.path.join(ROOT, "firmware"), HERE, ".frozen"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.join(ROOT, "firmware"), env.get("PYTHONPATH")] if p)
    sys.path.insert(0, os.path.join(ROOT, "host_tools"))
    from smitp.progress import Progress

    failed = []
    t0 = time.monotonic()
    beat = Progress("bench", first_s=10.0, every_s=30.0)
    for i, path in enumerate(scripts):
        name = os.path.basename(path)
        on_mp = name.startswith("bench_")
        print("\n== %s (%s) ==" % (name, "micropython" if on_mp else "cpython"), flush=True)
        if on_mp and not mp:
            print("micropython not found: run `make setup`")
            failed.append(name)
            continue
        beat.update(name, i, len(scripts))
        t1 = time.monotonic()
        rc = subprocess.run([mp if on_mp else sys.executable, path], cwd=ROOT, env=env).returncode
        print("-- %s: %s, %.1f s" % (name, "done" if rc == 0 else "exited with %d" % rc, time.monotonic() - t1),
              flush=True)
        if rc != 0:
            failed.append(name)
    beat.close()
    print("\nbench: %d scripts, %d failed%s; %.0f s" % (len(scripts), len(failed),
                                                      (": " + ", ".join(failed)) if failed else "",
                                                      time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
