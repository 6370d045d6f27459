# Micro-benchmark of the software download on the meter (MicroPython unix port):
# the seal check (AES-CMAC over the 48-byte header), SHA-256 per KiB (the
# image check), keeping one block (append to the staging log, RAM store),
# and opening a session. Prints medians and p95 in microseconds.
#     micropython tests/bench/bench_download.py [n]
import hashlib
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")

from meter import fwimage as F  # noqa: E402
from meter import slots as S  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.crypto import Aes  # noqa: E402
from meter.storage import Store  # noqa: E402


def bench(fn, n):
    for _ in range(5):
        fn()
    samples = []
    for _ in range(n):
        t0 = ticks_us()
        fn()
        samples.append(ticks_diff(ticks_us(), t0))
    samples.sort()
    return samples[len(samples) // 2], samples[len(samples) * 95 // 100]


def main(n):
    k1 = Aes(bytes(range(16)))
    body = F.pack_body([("meter/x.mpy", bytes(range(256)) * 40)])
    h = F.Header(F.MAX_BLOCK, 0x000200, len(body), hashlib.sha256(body).digest(), bytes(16))
    h.seal = F.make_seal(k1, h)
    kib = bytes(1024)
    rows = [("seal check (CMAC, 3 blocks)", bench(lambda: F.seal_ok(k1, h), n)),
            ("SHA-256 of 1 KiB", bench(lambda: hashlib.sha256(kib).digest(), n)),
            ("header decode", bench(lambda: F.unpack_header(h.pack()), n))]
    store = Store()
    s = S.Session(store)
    s.open(h, S.Boot(store))
    blocks = [body[i * h.block:(i + 1) * h.block] for i in range(h.blocks)]
    state = [0]

    def put():
        i = state[0]
        if i >= h.blocks:
            s.open(F.Header(h.block, h.version + i, h.size, h.digest, h.seal), S.Boot(store))
            state[0] = i = 0
        s.put_block(i, blocks[i])
        state[0] = i + 1

    rows.append(("keep a block (RAM store)", bench(put, n)))
    for name, (med, p95) in rows:
        print("%-32s median %6d us  p95 %6d us" % (name, med, p95))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
