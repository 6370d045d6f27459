# The full data model on MicroPython (micropython tests/bench/bench_datamodel.py):
#
# Heap: the smallest `-X heapsize=NwK` (32-bit word sizing), found by
# bisection on this interpreter, with which
#   code   the firmware modules import (compiled with mpy-cross, as on a board),
#   full   ... and the meter is built (data model, engines, tables on flash,
#          security layer), runs a simulated day, and serves READTAB of every
#          load profile block, BUFF_SELECT, GETTAB and DATASPONT;
# full - code is the heap the data model itself needs (what a board with the
# firmware frozen into flash needs beyond its baseline). gc.mem_alloc figures
# of the same steps are printed too (this port's own word size).
#
# Time: one READTAB.REQ of a full load-profile block (8 records) processed,
# request in, answer out: at the application layer, as a whole frame through
# the node (plain), and authenticated + AES-CTR encrypted; records on the
# emulated board's flash (littlefs2 on a file-backed NOR image) and, for
# comparison, in a RAM store. Median and p95 over 1000 requests.
import gc
import os
import struct
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = HERE + "/../.."
TMP = "/tmp/smitp-bench-datamodel-%d" % (os.getpid() if hasattr(os, "getpid") else 0)
MODULES = ("meter.runtime.firmware", "meter.model.metering", "meter.app.tables", "meter.app.services", "meter.app.auth", "meter.app.node",
           "meter.model.datamodel", "meter.model.registers", "meter.model.ring", "meter.clock", "meter.model.tariff", "meter.model.events")
N = 1000


def _path(firmware):
    sys.path[:0] = [firmware, ROOT + "/boards/unix", ROOT + "/tests/firmware"]


def build(store):
    from meter.model import registers as R
    from meter.app.auth import security_factory
    from meter.model.datamodel import DataModel
    from meter.app.lmon import KeyStore
    from meter.model.metering import Metering, Sample
    from meter.app.node import MeterNode

    aca = b"\xa8\x04\x0a\x1e\x89\x01"
    clock = [1772146800]
    KeyStore(store).provision(bytes(range(16)), bytes(range(16, 32)))
    model = DataModel("SN-BENCH", aca, "smitp-meter bench", store, lambda: clock[0], None)
    meter = Metering(model, store)
    node = MeterNode(aca, model, security_factory(aca, store, model, lambda: clock[0]))
    s = Sample()
    for k in range(3):
        s.set(k, 2300, 435, 1000, 100)
    t = clock[0] * 1000
    meter.advance(t, s)
    for _ in range(24 * 60):
        t += 60000
        clock[0] = t // 1000
        meter.advance(t, s)
    return aca, model, meter, node, R


def serve_all(model, node, R):
    app = node.app
    req = bytearray(16)
    struct.pack_into(">BHII", req, 0, 22, R.LOAD_PROFILE, 0, 0)
    app.handle(req, 0, 11, 128, R.ACC_READ_KEY)
    blocks = (len(model.tables[R.LOAD_PROFILE]) + 7) // 8
    for b in range(blocks):
        struct.pack_into(">BHH", req, 0, 8, R.LOAD_PROFILE, b)
        if app.handle(req, 0, 5, 128, R.ACC_READ_KEY) != 6 + 8 * 13 and b < blocks - 1:
            raise SystemExit("short block")
    app.handle(b"\x1e\x01\x00", 0, 3, 128, R.ACC_READ_KEY)
    app.handle(b"\x14\x00\x00\x00\x00", 0, 5, 128, R.ACC_READ_KEY)


def probe(what, firmware):
    _path(firmware)
    for m in MODULES:
        __import__(m)
    if what == "full":
        from meter.storage import Store

        aca, model, meter, node, R = build(Store(TMP + "/probe"))
        serve_all(model, node, R)


def smallest_heap(what, firmware, lo=16, hi=512):
    def ok(kib):
        cmd = "%s -X heapsize=%dwK %s --probe %s %s >/dev/null 2>&1" % (sys.executable, kib, __file__, what, firmware)
        os.system("rm -rf %s/probe && mkdir -p %s/probe" % (TMP, TMP))
        return os.system(cmd) == 0

    if not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def compiled():
    """The firmware compiled with mpy-cross (as a board image has it), or the sources."""
    exe = sys.executable.rsplit("/", 1)[0] + "/mpy-cross"
    out = TMP + "/mpy"
    dirs = ["meter"]
    while dirs:  # the package and its sub-packages
        d = dirs.pop()
        os.system("mkdir -p %s/%s" % (out, d))
        for name in os.listdir(ROOT + "/firmware/" + d):
            if name.endswith(".py"):
                src = "%s/firmware/%s/%s" % (ROOT, d, name)
                if os.system("%s -o %s/%s/%s.mpy %s" % (exe, out, d, name[:-3], src)) != 0:
                    return ROOT + "/firmware", "sources (mpy-cross not found)"
            elif "." not in name and name != "__pycache__":
                dirs.append(d + "/" + name)
    return out, "compiled .mpy"


def pct(samples, p):
    return samples[min(len(samples) - 1, len(samples) * p // 100)]


def timed(label, fn, samples):
    from meter.compat import ticks_diff, ticks_us

    for i in range(len(samples)):
        t0 = ticks_us()
        fn()
        samples[i] = ticks_diff(ticks_us(), t0)
    samples.sort()
    print("%-50s median %5d us  p95 %5d us  (n=%d)" % (label, samples[len(samples) // 2], pct(samples, 95),
                                                       len(samples)))
    return samples[len(samples) // 2]


def timing(store, where):
    from meter.link import mac
    from meter.app import security as S

    aca, model, meter, node, R = build(store)
    app = node.app
    req = struct.pack(">BHII", 22, R.LOAD_PROFILE, 0, 0)
    app.handle(req, 0, len(req), 128, R.ACC_READ_KEY)
    block = struct.pack(">BHH", 8, R.LOAD_PROFILE, 5)
    samples = [0] * N
    med = timed("READTAB load profile block, application (%s)" % where,
                lambda: app.handle(block, 0, 5, 128, R.ACC_READ_KEY), samples)
    if app.handle(block, 0, 5, 128, R.ACC_READ_KEY) != 6 + 8 * 13:
        raise SystemExit("not a full block")
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for _ in range(100):
        app.handle(block, 0, 5, 128, R.ACC_READ_KEY)
    per = (gc.mem_alloc() - a0) // 100
    gc.enable()
    print("%-50s %d B" % ("  heap allocated per READTAB block", per))
    out = bytearray(mac.MAX_FRAME)
    me = mac.aca_to_air(aca)
    # a plain frame reads a full block of a plain table (the load profile needs a key)
    dp = struct.pack(">BHH", 8, R.DAY_PROFILES_1, 0)
    n = mac.encode(out, me, b"", 8, False, 0, False, 0, 0, dp)
    frame = bytes(out[:n])
    timed("READTAB day profiles block, plain frame (%s)" % where, lambda: node.on_phy(frame, len(frame)), samples)
    keys = S.Keys(bytes(range(16)), bytes(range(16, 32)))
    frames = []
    for mon in range(1, N + 1):
        lsdu = S.seal(keys, aca, 108, block[1:], mon, S.ECC_CTR_READ, 1772146800)
        n = mac.encode(out, me, b"", 8, False, 0, False, 0, S.ECC_CTR_READ, lsdu)
        frames.append(bytes(out[:n]))
    it = iter(frames)

    def auth():
        f = next(it)
        if not node.on_phy(f, len(f)):
            raise SystemExit("no answer")

    timed("READTAB block, authenticated frame, AES-CTR (%s)" % where, auth, samples)
    return med


def main():
    if "--probe" in sys.argv:
        i = sys.argv.index("--probe")
        try:
            probe(sys.argv[i + 1], sys.argv[i + 2])
        except MemoryError:
            sys.exit(1)
        sys.exit(0)
    os.system("rm -rf %s && mkdir -p %s" % (TMP, TMP))
    firmware, how = compiled()
    print("firmware: %s" % how)
    code = smallest_heap("code", firmware)
    full = smallest_heap("full", firmware)
    print("smallest heap, modules imported:                %4s KiB (-X heapsize=NwK, 32-bit words)" % code)
    print("smallest heap, full data model + a day + reads: %4s KiB" % full)
    if code and full:
        print("heap the data model needs beyond the code:      %4d KiB (limit 64)" % (full - code))
    _path(firmware)
    gc.collect()
    a0 = gc.mem_alloc()
    for m in MODULES:
        __import__(m)
    gc.collect()
    a1 = gc.mem_alloc()
    from meter.storage import Store

    os.system("mkdir -p %s/live" % TMP)
    aca, model, meter, node, R = build(Store(TMP + "/live"))
    serve_all(model, node, R)
    gc.collect()
    a2 = gc.mem_alloc()
    print("gc.mem_alloc (this port's words): modules %d B, data model %d B" % (a1 - a0, a2 - a1))
    meter = node = model = None  # noqa: F841 (drop the meter before the timing runs)
    gc.collect()

    # timing: records on the emulated board's flash, then in RAM
    import vfs
    from board import FileFlash

    flash = FileFlash(TMP + "/flash.img")
    vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), "/benchflash")
    med = timing(Store("/benchflash"), "littlefs flash")
    vfs.umount("/benchflash")
    timing(Store(), "RAM store")
    print("READTAB of a full load-profile block, median %d us (limit 2000 us)" % med)
    os.system("rm -rf %s" % TMP)


main()
