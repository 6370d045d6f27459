# Structure-aware fuzzing of the meter's entry points (tests/fuzz/README.md).
#
#   run.py [--entry NAME|all] [--count N] [--seed S] [--start I]
#          [--interpreter cpython|micropython] [--segment N] [--save]
#   run.py --replay [FILE ...]        the corpus (all of it without FILEs)
#   run.py --digest [--entry ..] [--count N] [--seed S]
#                                     a checksum of the inputs, not run: the
#                                     same on both interpreters
#
# Runs under CPython and MicroPython alike; --interpreter other than the one
# running re-runs this file under it. Exit status 1 on any crash or failed
# state check.
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (HERE + "/../firmware", HERE + "/../../firmware", HERE):
    sys.path.insert(0, _p)



def parse(argv):
    opts = {"entry": "all", "count": 2000, "seed": 1, "start": 0, "segment": 0, "interpreter": None,
            "save": False, "digest": False, "replay": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--save" or a == "--digest":
            opts[a[2:]] = True
        elif a == "--replay":
            opts["replay"] = argv[i + 1:]
            break
        elif a.startswith("--") and a[2:] in opts and i + 1 < len(argv):
            v = argv[i + 1]
            opts[a[2:]] = v if a[2:] in ("entry", "interpreter") else int(v)
            i += 1
        else:
            raise SystemExit("unknown argument %r; usage: run.py [--entry NAME|all] [--count N] [--seed S] "
                             "[--start I] [--interpreter cpython|micropython] [--segment N] [--save] "
                             "[--digest] | --replay [FILE ...]" % a)
        i += 1
    return opts


def elsewhere(name, argv):
    """Run this file under interpreter `name` (from CPython); its exit status."""
    import os
    import shutil
    import subprocess

    exe = sys.executable if name == "cpython" else None
    if name == "micropython":
        here = os.path.join(os.path.dirname(sys.executable), "micropython")
        exe = here if os.access(here, os.X_OK) else shutil.which("micropython")
    if not exe:
        raise SystemExit("%s not found" % name)
    rest = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--interpreter":
            skip = True
        else:
            rest.append(a)
    return subprocess.call([exe, __file__] + rest)


def show_crashes(res):
    import campaign

    for c in sorted(res.crashes.values(), key=lambda c: c.index):
        print("  CRASH %s x%d: %s" % (c.sig, c.count, c.msg[:160]))
        print("    reproduce: tests/fuzz/run.py --entry %s --seed %d --start %d --count 1" % (
            res.entry, res.seed, c.index))
        try:
            print("    input: %s" % campaign.describe(c.blob))
        except Exception as e:  # a description is a courtesy, never a second crash
            print("    input: (not described: %s)" % e)
        print("    hex: %s" % c.blob.hex())


def entries(opts):
    import gen

    names = gen.ENTRIES if opts["entry"] == "all" else opts["entry"].split(",")
    for e in names:
        if e not in gen.GENERATORS:
            raise SystemExit("no entry point %r; there are: %s" % (e, " ".join(gen.ENTRIES)))
    return names


def digest(opts):
    import gen
    from meter.crypto import crc32
    from xrng import Rng

    for e in entries(opts):
        c = 0
        for i in range(opts["start"], opts["start"] + opts["count"]):
            c = crc32(gen.GENERATORS[e](Rng(opts["seed"], i)), c)
        print("digest %s %08x" % (e, c))
    return 0


def progress(res, done, ms):
    # a line every tenth of a long run
    step = res.total // 10
    if res.total >= 100000 and done % step < res.segment:
        print("  %s: %d inputs, %d s, %d crashing" % (res.entry, done, ms // 1000, res.crashed()))


def fuzz(opts):
    import campaign

    names = entries(opts)
    bad = 0
    print("fuzz on %s: %s, %d inputs each from index %d, seed %d" % (
        sys.implementation.name, " ".join(names), opts["count"], opts["start"], opts["seed"]))
    for e in names:
        res = campaign.campaign(e, opts["seed"], opts["count"], opts["start"], opts["segment"] or campaign.SEGMENT,
                                progress)
        rate = res.inputs * 1000 // max(res.ms, 1)
        print("entry %s: %d inputs in %.1f s, %d inputs/s, %d crashing inputs (%d kinds), state checks %d: %s" % (
            e, res.inputs, res.ms / 1000, rate, res.crashed(), len(res.crashes), res.checks,
            "ok" if not res.failed else "%d FAILED" % len(res.failed)))
        show_crashes(res)
        for first, last, problems in res.failed:
            print("  STATE after inputs %d..%d (seed %d): %s" % (first, last, res.seed, "; ".join(problems)))
        if opts["save"]:
            for c in res.crashes.values():
                if campaign.save(e, c, res.seed):
                    print("  saved %s" % campaign.corpus_name(e, c.sig))
        bad += len(res.crashes) + len(res.failed)
    return bad


def replay(files):
    import campaign

    files = files or campaign.corpus_files()
    bad = 0
    for path in files:
        entry, blob = campaign.load(path)
        got, problems = campaign.replay(entry, blob)
        name = path.rsplit("/", 1)[-1]
        if got is None and not problems:
            print("replay %s: ok" % name)
            continue
        bad += 1
        print("replay %s: %s%s" % (name, "CRASH %s: %s" % (got[0], got[1][:160]) if got else "no crash",
                                   "; STATE " + "; ".join(problems) if problems else ""))
    print("replayed %d corpus inputs on %s: %d failing" % (len(files), sys.implementation.name, bad))
    return bad


def main(argv):
    opts = parse(argv)
    if opts["interpreter"] and opts["interpreter"] != sys.implementation.name:
        if sys.implementation.name != "cpython":
            raise SystemExit("run.py starts other interpreters from CPython only")
        return elsewhere(opts["interpreter"], argv)
    if opts["replay"] is not None:
        return 1 if replay(opts["replay"]) else 0
    if opts["digest"]:
        return digest(opts)
    return 1 if fuzz(opts) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
