# The meter on a Meters and More modem, on MicroPython (micropython tests/bench/bench_hi.py):
# the latency from a Slave_Data.indication arriving on the UART to the Slave_Data.request
# written back, through the firmware's modem task (ModemPort on a stand-in board,
# tests/firmware/hikit.py) with the HI driver, for a plain READ of the status word and an
# authenticated + AES-CTR encrypted one (the firmware's security in the path).
# The latency is the firmware's own time: the indication's turn (ACK, the node's
# answer, T_REQ pulled low) plus the status message's turn (the request written);
# the modem's time to send the status message and the T_REQ gap (TIC, 10 ms, only
# right after a previous handshake) come on top on a real line. Heap per exchange
# with GC disabled.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE + "/../firmware")

from meter.app import security as S  # noqa: E402
from meter.app.auth import security_factory  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.model.datamodel import DataModel  # noqa: E402
from meter.app.lmon import KeyStore  # noqa: E402
from meter.app.node import MeterNode  # noqa: E402
from meter.storage import Store  # noqa: E402
import hikit  # noqa: E402
from modemkit import feed  # noqa: E402

ACA = hikit.ACA
K1 = bytes(range(16))
K2 = b"\xaa\x55" * 8
CLOCK = 1700000000
N = 2000


def make_node(auth):
    store = Store()
    if auth:
        KeyStore(store).provision(K1, K2)
    model = DataModel("SN", ACA, "fw", store, lambda: CLOCK)
    return MeterNode(ACA, model, security_factory(ACA, store, model, lambda: CLOCK) if auth else None)


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, len(s) * p // 100)]


def run(label, auth):
    node = make_node(auth)
    port, now = hikit.ready_port(node)
    keys = S.Keys(K1, K2)
    if auth:
        inds = [hikit.indication(S.seal(keys, ACA, 102, b"\x00\x3f", mon, S.ECC_CTR_READ, CLOCK),
                                 1 + mon % 255, S.ECC_CTR_READ) for mon in range(1, N + 1)]
    else:
        inds = [hikit.indication(b"\x02\x00\x3f", 1 + i % 255) for i in range(N)]
    lat = [0] * N
    heap = [0] * N
    uart = port.board.uart
    gc.collect()
    gc.disable()
    for i in range(N):
        ind = inds[i]
        a0 = gc.mem_alloc()
        t0 = ticks_us()
        feed(port, ind, now)  # ACK out, the answer queued
        t1 = ticks_us()
        feed(port, b"", now + 11)  # T_REQ low
        t2 = ticks_us()
        feed(port, hikit.STATUS_FREE, now + 12)  # the Slave_Data.request out
        t3 = ticks_us()
        heap[i] = gc.mem_alloc() - a0
        lat[i] = ticks_diff(t1, t0) + ticks_diff(t3, t2) + ticks_diff(t2, t1)
        feed(port, hikit.ACK, now + 13)
        feed(port, hikit.CONFIRM, now + 14)
        uart.n = 0
        now += 30
        if i % 200 == 199:
            gc.enable()
            gc.collect()
            gc.disable()
    gc.enable()
    answers = port.drv.stats["answers"]
    print("%-28s indication -> request: median %5d us  p95 %5d us  heap/exchange median %d B, max %d B  "
          "(n=%d, answered %d)" % (label, pct(lat, 50), pct(lat, 95), pct(heap, 50), max(heap), N, answers))
    return answers == N


ok = run("plain READ (status word)", False)
ok = run("authenticated READ, AES-CTR", True) and ok
if not ok:
    raise SystemExit("not every indication was answered")
