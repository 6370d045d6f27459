# A fuzz campaign of one entry point: inputs (seed, index) from its generator
# into its target, crashes grouped by where they happen, state checks every
# `segment` inputs (then a fresh target), and the crash corpus. A crash is an
# exception out of the entry point, a fault counted by the node's guard, or
# a broken per-input invariant (a bad frame sent, a shared buffer resized).
import sys

import checks
import gen
import script as SC
import targets
from meter.link import mac
from meter.optical import modef as F
from meter.compat import ticks_diff, ticks_ms
from meter.crypto import crc32
from xrng import Rng

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
CORPUS = HERE + "/corpus"
SEGMENT = 5000  # inputs one target takes before its state checks and a fresh one


def where(e):
    """file:line of the innermost frame of exception e, on both runtimes."""
    try:
        tb = e.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        path, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
    except AttributeError:  # MicroPython: parse its printed traceback
        import io

        s = io.StringIO()
        sys.print_exception(e, s)
        path, line = "?", 0
        for ln in s.getvalue().split("\n"):
            ln = ln.strip()
            if ln.startswith('File "'):
                path = ln[6:ln.index('"', 6)]
                line = int(ln.split("line ")[1].split(",")[0])
    return "%s:%d" % (path.rsplit("/", 1)[-1], line)


def run_one(t, blob):
    """(signature, message) of the crash blob causes on target t, or None."""
    f0 = t.faults()
    try:
        t.apply(blob)
    except Exception as e:
        return "%s@%s" % (type(e).__name__, where(e)), "%s: %s" % (type(e).__name__, e)
    if t.faults() != f0:
        e = t.last_fault()
        if e is None:
            return "fault", "fault counted by the node's guard"
        return "%s@%s" % (type(e).__name__, where(e)), "%s: %s (caught by the node's guard)" % (type(e).__name__, e)
    p = t.problem
    if p is None and t.sizes() != t.base:
        p = "buffer sizes %s, were %s" % (t.sizes(), t.base)
    if p is not None:
        t.problem = None
        t.base = t.sizes()
        return "invariant:%s" % p[:40], p
    return None


class Crash:
    def __init__(self, sig, msg, index, blob):
        self.sig = sig
        self.msg = msg
        self.index = index  # first input that showed it
        self.blob = blob
        self.count = 0


class Result:
    def __init__(self, entry, seed, start, total, segment):
        self.entry = entry
        self.seed = seed
        self.start = start
        self.total = total
        self.segment = segment
        self.inputs = 0
        self.ms = 0
        self.crashes = {}  # signature -> Crash
        self.checks = 0  # state check runs
        self.failed = []  # (first index, last index, problems)

    def crashed(self):
        return sum(c.count for c in self.crashes.values())


def campaign(entry, seed, count, start=0, segment=SEGMENT, progress=None):
    """Run inputs start .. start+count-1 of entry; return a Result."""
    make = targets.TARGETS[entry]
    generate = gen.GENERATORS[entry]
    res = Result(entry, seed, start, count, segment)
    t0 = ticks_ms()
    t = make()
    first = start
    end = start + count
    for i in range(start, end):
        blob = generate(Rng(seed, i))
        got = run_one(t, blob)
        if got is not None:
            c = res.crashes.get(got[0])
            if c is None:
                c = res.crashes[got[0]] = Crash(got[0], got[1], i, blob)
            c.count += 1
        if i + 1 == end or (i + 1 - start) % segment == 0:
            res.checks += 1
            problems = checks.run(entry, t)
            if problems:
                res.failed.append((first, i, problems))
            if i + 1 < end:
                t = make()
                first = i + 1
            if progress is not None:
                progress(res, i + 1 - start, ticks_diff(ticks_ms(), t0))
    res.inputs = count
    res.ms = ticks_diff(ticks_ms(), t0)
    return res


def replay(entry, blob):
    """(crash or None, state problems) of one input on a fresh target."""
    t = targets.TARGETS[entry]()
    got = run_one(t, blob)
    return got, checks.run(entry, t)


def crashes_alone(entry, blob, sig):
    """Does blob crash a fresh target the same way?"""
    got = run_one(targets.TARGETS[entry](), blob)
    return got is not None and got[0] == sig


def shrink(entry, blob, sig):
    """blob without the operations it needs not to crash a fresh target with
    sig (None if it does not crash one at all: earlier inputs set it up)."""
    if not crashes_alone(entry, blob, sig):
        return None
    parts = SC.split(blob)
    i = 0
    while i < len(parts) and len(parts) > 1:
        trial = parts[0:i] + parts[i + 1:]
        if crashes_alone(entry, b"".join(trial), sig):
            parts = trial
        else:
            i += 1
    return b"".join(parts)


def describe(blob):
    """What an input holds, shortly: LMON, and per frame its address, DSAP,
    ECC, discipline, ATTR and LSDU length (PLC, mode F) or its length."""
    out = []
    for op, arg in SC.ops(blob):
        if op == SC.OP_LMON:
            out.append("LMON %d" % arg)
        elif op == SC.OP_WAIT:
            out.append("wait %d ms" % arg)
        elif op == SC.OP_REQUEST:
            out.append("request %d" % arg)
        elif op == SC.OP_DATA:
            out.append(_frame(arg))
    return "; ".join(out)


def _frame(b):
    f = mac.Frame()
    try:
        mac.decode(f, b, len(b))
    except Exception:
        f = None
    if f is not None:
        to = "broadcast" if mac.same_addr(b, f.addr, mac.BROADCAST) else "to %s" % bytes(b[1:7]).hex()
        pos = "" if not f.repeaters else " %d repeaters at %d%s" % (f.repeaters, f.position, " up" if f.uplink else "")
        return "PLC %s%s DSAP %d ECC %d discipline %d ATTR %d LSDU %d bytes" % (
            to, pos, f.dsap, f.ecc, f.discipline, b[f.data], f.data_len)
    out = []
    p = 0
    while p + 4 < len(b) and b[p] == F.SOF and 3 <= b[p + 1] and p + b[p + 1] + 6 <= len(b):
        out.append("mode F DSAP %d ECC %d ATTR %d LSDU %d bytes" % (b[p + 3] >> 4, b[p + 3] & 15, b[p + 4],
                                                                   b[p + 1] - 2))
        p += b[p + 1] + 6
    if p < len(b):
        out.append("%d bytes" % (len(b) - p))
    return ", ".join(out)


# ---- corpus: one file per crash kind, "# comment" lines and "ENTRY HEX"

def corpus_name(entry, sig):
    return "%s-%08x.hex" % (entry, crc32(sig.encode()))


def save(entry, crash, seed):
    """Write a crash to the corpus unless a file for its kind exists, shrunk
    to the operations it needs on a fresh target; True if written."""
    import os

    path = "%s/%s" % (CORPUS, corpus_name(entry, crash.sig))
    try:
        os.stat(path)
        return False
    except OSError:
        pass
    blob = shrink(entry, crash.blob, crash.sig)
    with open(path, "w") as f:
        f.write("# %s\n" % crash.msg.replace("\n", " ")[:200])
        f.write("# at %s; seed %d index %d (%s)\n" % (crash.sig, seed, crash.index, sys.implementation.name))
        if blob is None:
            f.write("# not on a fresh meter: the inputs before it in its run of %d set it up\n" % SEGMENT)
            blob = crash.blob
        f.write("# %s\n" % describe(blob))
        f.write("%s %s\n" % (entry, blob.hex()))
    return True


def load(path):
    """(entry, input bytes) of a corpus file."""
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if ln and not ln.startswith("#"):
                entry, hx = ln.split()
                return entry, bytes.fromhex(hx)
    raise ValueError("%s holds no input" % path)


def corpus_files():
    import os

    return sorted("%s/%s" % (CORPUS, n) for n in os.listdir(CORPUS) if n.endswith(".hex"))
