# The meter's processing of a whole frame on MicroPython (micropython tests/bench/bench_auth.py):
# - a plain READ.REQ of the status word, and a frame the meter repeats,
# - an authenticated + AES-CTR encrypted READ.REQ (decrypt, verify, LMON
#   commit, serve, seal the answer): median and p95 time per frame, heap
#   allocated per frame (GC disabled), and the live heap over 10,000
#   exchanges (it must not grow);
# - the same three through the modem task (ModemPort on a stand-in board,
#   tests/firmware/modemkit.py): the ST7580's bytes in, the ACK, the T_REQ
#   handshake, the PHY_Data.request out, its ACK and confirm; heap per
#   exchange (target 0 for plain and repeated) and time per exchange (the
#   stand-in UART's Python copy loop included).
# Requests are prepared in batches outside the timed window, as the
# concentrator would send them.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE + "/../firmware")

from meter.link import mac  # noqa: E402
from meter.app import security as S  # noqa: E402
from meter.app.auth import security_factory  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.model.datamodel import DataModel  # noqa: E402
from meter.app.lmon import KeyStore  # noqa: E402
from meter.app.node import MeterNode  # noqa: E402
from meter.storage import Store  # noqa: E402
import modemkit  # noqa: E402

ACA = b"\xa8\x04\x0a\x1e\x89\x84"
K1 = bytes(range(16))
K2 = b"\xaa\x55" * 8
TOTAL = 10000
BATCH = 500


def make_node():
    store = Store()
    KeyStore(store).provision(K1, K2)
    model = DataModel("SN", ACA, "fw", store, lambda: 1700000000)
    return MeterNode(ACA, model, security_factory(ACA, store, model, lambda: 1700000000))


def frame(dst_air, route, lsdu, ecc):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, dst_air, route, 3, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


def timed(node, frames, samples, alloc, at=0):
    """Serve each frame; samples/alloc are preallocated (measuring must not allocate)."""
    gc.collect()
    gc.disable()
    for i in range(len(frames)):
        f = frames[i]
        a0 = gc.mem_alloc()
        t0 = ticks_us()
        n = node.on_phy(f, len(f))
        samples[at + i] = ticks_diff(ticks_us(), t0)
        alloc[at + i] = gc.mem_alloc() - a0
        if not n:
            raise SystemExit("no answer")
    gc.enable()


def report(name, samples, alloc):
    samples.sort()
    alloc.sort()
    print("%-34s median %4d us  p95 %4d us  heap/frame median %d B, max %d B  (n=%d)"
          % (name, samples[len(samples) // 2], samples[len(samples) * 95 // 100], alloc[len(alloc) // 2], alloc[-1],
             len(samples)))


def through_modem(node, frames, samples, alloc):
    """Each frame as a whole exchange with the modem task (preallocated results)."""
    port, now = modemkit.ready_port(node)
    inds = [modemkit.indication(f) for f in frames]
    uart = port.board.uart
    now = modemkit.exchange(port, inds[0], now)  # warm-up
    uart.n = 0
    gc.collect()
    gc.disable()
    for i in range(1, len(inds)):
        ind = inds[i]
        a0 = gc.mem_alloc()
        t0 = ticks_us()
        now = modemkit.exchange(port, ind, now)
        samples[i - 1] = ticks_diff(ticks_us(), t0)
        alloc[i - 1] = gc.mem_alloc() - a0
        if uart.n < 20:
            raise SystemExit("no answer")
        uart.n = 0
    gc.enable()


def modem(keys, me):
    print("through the modem task (UART in -> UART out, per exchange):")
    count = 500
    plain = frame(me, b"", b"\x02\x00\x3f", 0)
    other = frame(b"\x01\x02\x03\x04\x05\x06", me, b"\x02\x00\x3f", 0)
    for name, f in (("plain READ.REQ answered", plain), ("frame repeated", other)):
        samples, alloc = [0] * (count - 1), [0] * (count - 1)
        through_modem(make_node(), [f] * count, samples, alloc)
        report("  " + name, samples, alloc)
    batch = [frame(me, b"", S.seal(keys, ACA, 102, b"\x00\x3f", mon, S.ECC_CTR_READ, 1700000000), S.ECC_CTR_READ)
             for mon in range(1, count + 1)]
    samples, alloc = [0] * (count - 1), [0] * (count - 1)
    through_modem(make_node(), batch, samples, alloc)
    report("  READ.REQ AUTH + AES-CTR answered", samples, alloc)


def main():
    keys = S.Keys(K1, K2)
    me = mac.aca_to_air(ACA)
    node = make_node()
    samples, alloc = [0] * 1000, [0] * 1000
    plain = frame(me, b"", b"\x02\x00\x3f", 0)
    timed(node, [plain] * 1000, samples, alloc)
    report("plain READ.REQ answered", samples, alloc)
    samples, alloc = [0] * 1000, [0] * 1000
    other = frame(b"\x01\x02\x03\x04\x05\x06", me, b"\x02\x00\x3f", 0)
    timed(node, [other] * 1000, samples, alloc)
    report("frame repeated", samples, alloc)

    samples, alloc, live = [0] * TOTAL, [0] * TOTAL, [0] * (TOTAL // BATCH)
    mon = 1
    while mon <= TOTAL:
        batch = []
        for _ in range(BATCH):
            lsdu = S.seal(keys, ACA, 102, b"\x00\x3f", mon, S.ECC_CTR_READ, 1700000000)
            batch.append(frame(me, b"", lsdu, S.ECC_CTR_READ))
            mon += 1
        timed(node, batch, samples, alloc, mon - 1 - BATCH)
        batch = None
        gc.collect()
        live[(mon - 1) // BATCH - 1] = gc.mem_alloc()
    report("READ.REQ AUTH + AES-CTR answered", samples, alloc)
    print("live heap after each %d exchanges: first %d B, last %d B, max %d B (%d exchanges, LMON %d)"
          % (BATCH, live[0], live[-1], max(live), mon - 1, node.secure.lmon.value))
    modem(keys, me)


main()
