# The DLMS/COSEM profile on MicroPython (micropython tests/bench/bench_dlms.py):
# - GHASH: one 16-byte block multiplied by H (meter/dlms/gcm.py, 4-bit tables
#   on 16-bit limbs), AES-GCM seal of a 13-byte GET and of a 128-byte APDU;
# - an authenticated GET of the clock, HLS-GMAC + suite 0, as a whole frame
#   through the meter node (MAC decode, convergence layer, deciphering, GET,
#   enciphering, MAC answer): median and p95 time per frame and heap allocated
#   per frame (GC disabled); the HLS association itself, once;
# - the heap its modules take imported from source (the COSEM class modules
#   apart) and the size of the object list's encoding;
# - the heap the profile takes when built (buffers, GCM tables), and the
#   smallest -X heapsize (32-bit word sizing, bisection) that runs a meter node
#   with and without the DLMS profile through 50 authenticated GETs.
import gc
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE + "/../firmware")

from meter.link import mac  # noqa: E402
from meter.link.llc import DSAP_DLMS  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.app.node import MeterNode  # noqa: E402
from meter.model.datamodel import DataModel  # noqa: E402
from meter.storage import Store  # noqa: E402

K = None  # dlmskit, imported only where the DLMS profile runs (the heap probe without it stays without)


def kit():
    global K
    import dlmskit

    K = dlmskit
    return dlmskit

ACA = b"\xa8\x04\x0a\x1e\x89\x01"
GET_CLOCK = b"\xc0\x01\xc1\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00"
N = 200


def stats(name, samples, alloc=None):
    samples.sort()
    line = "%-44s median %6d us  p95 %6d us" % (name, samples[len(samples) // 2], samples[len(samples) * 95 // 100])
    if alloc is not None:
        alloc.sort()
        line += "  heap/call median %d B, max %d B" % (alloc[len(alloc) // 2], alloc[-1])
    print(line + "  (n=%d)" % len(samples))


def timed_frames(name, node, frames, want_answer=True):
    """Each frame through node.on_phy: its time and the heap it allocated (GC off), then the stats."""
    samples = [0] * len(frames)
    alloc = [0] * len(frames)
    for i in range(len(frames)):
        f = frames[i]
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        t0 = ticks_us()
        n = node.on_phy(f, len(f))
        samples[i] = ticks_diff(ticks_us(), t0)
        alloc[i] = gc.mem_alloc() - a0
        gc.enable()
        if want_answer and not n:
            raise SystemExit("%s: no answer to frame %d" % (name, i))
    stats(name, samples, alloc)


def measure(name, fn, n=N):
    samples = [0] * n
    alloc = [0] * n
    for i in range(n):
        gc.collect()  # GHASH allocates ints: collect between calls, never inside one
        gc.disable()
        a0 = gc.mem_alloc()
        t0 = ticks_us()
        fn()
        samples[i] = ticks_diff(ticks_us(), t0)
        alloc[i] = gc.mem_alloc() - a0
        gc.enable()
    stats(name, samples, alloc)


def node_with_dlms(with_dlms=True):
    store = Store()
    model = DataModel("SN", ACA, "fw", store, lambda: 1764676800)
    dlms = None
    if with_dlms:
        from meter.dlms.server import profile, provision

        provision(store, kit().EK, K.AK)
        dlms = profile(model, store, ACA, lambda n: K.STOC)
    return MeterNode(ACA, model, store=store, dlms=dlms)


def frame(xid, apdu):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(ACA), b"", 8, False, 0, False, DSAP_DLMS, 0, bytes((1, xid & 0xFF, 0)) + apdu)
    return bytes(out[:n])


def associate(node):
    """HLS-GMAC + suite 0 with the Green Book's vectors; returns the client's next IC."""
    server = node.dlms.server
    server.ic = server.ic_end = 0x01234565
    for xid, apdu in ((1, K.hls_aarq()), (2, K.glo(K.REPLY_TO_HLS, 1))):
        f = frame(xid, apdu)
        if not node.on_phy(f, len(f)):
            raise SystemExit("no answer to the association")
    if server.level != 2:
        raise SystemExit("HLS failed")
    return 2


def gets(node, ic, count):
    """`count` authenticated GET frames, prepared ahead as the concentrator would send them."""
    return [frame(3 + k, K.glo(GET_CLOCK, ic + k)) for k in range(count)]


def module_heap():
    """Heap the DLMS profile's modules take imported from source (bytecode included; frozen in
    flash on a board), and the part of it the COSEM class modules take."""
    import meter.model.metering  # noqa: F401 (the engines they map onto: not counted)

    gc.collect()
    a0 = gc.mem_alloc()
    from meter.dlms import base, calendar, demand  # noqa: F401

    gc.collect()
    a1 = gc.mem_alloc()
    from meter.dlms import server  # noqa: F401

    gc.collect()
    print("%-44s %d B (of which base, demand, calendar: %d B)"
          % ("heap of the DLMS modules, from source", gc.mem_alloc() - a0, a1 - a0))


def bench():
    module_heap()
    from meter.dlms.gcm import Gcm

    g = Gcm(kit().EK)
    y = bytearray(range(16))
    measure("GHASH, one block (y * H)", lambda: g._mul(y))
    iv = K.CLIENT_TITLE + b"\x00\x00\x00\x01"
    buf13 = bytearray(GET_CLOCK)
    buf128 = bytearray(128)
    tag = bytearray(12)
    measure("AES-GCM seal, 13-byte GET", lambda: g.seal(iv, (b"\x30", K.AK), buf13, 0, 13, tag))
    measure("AES-GCM seal, 128-byte APDU", lambda: g.seal(iv, (b"\x30", K.AK), buf128, 0, 128, tag))
    gc.collect()
    a0 = gc.mem_alloc()
    node = node_with_dlms()
    gc.collect()
    a1 = gc.mem_alloc()
    plain = node_with_dlms(False)
    gc.collect()
    a2 = gc.mem_alloc()
    print("%-44s %d B (a node without it: %d B; modules not counted)"
          % ("heap of a meter node with the DLMS profile", a1 - a0, a2 - a1))
    del plain
    t0 = ticks_us()
    ic = associate(node)
    print("%-44s %6d us (AARQ + reply to HLS, 2 frames)" % ("HLS-GMAC association", ticks_diff(ticks_us(), t0)))
    timed_frames("authenticated GET of the clock, whole frame", node, gets(node, ic, N))


def probe(with_dlms):
    node = node_with_dlms(with_dlms)
    if with_dlms:
        ic = associate(node)
        for f in gets(node, ic, 50):
            if not node.on_phy(f, len(f)):
                raise MemoryError
    gc.collect()


def smallest_heap(with_dlms, lo=8, hi=512):
    def ok(kib):
        cmd = "%s -X heapsize=%dwK %s --probe %d >/dev/null 2>&1" % (sys.executable, kib, __file__, with_dlms)
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


def main():
    if "--probe" in sys.argv:
        try:
            probe(sys.argv[sys.argv.index("--probe") + 1] == "1")
        except MemoryError:
            sys.exit(1)
        sys.exit(0)
    bench()
    base = smallest_heap(0)
    full = smallest_heap(1)
    print("%-44s %4s KiB: a meter node without the DLMS profile (its modules not imported)"
          % ("smallest heap (-X heapsize=NwK, sources)", base))
    print("%-44s %4s KiB: with it, an HLS association and 50 authenticated GETs" % ("", full))


if __name__ == "__main__":
    main()
