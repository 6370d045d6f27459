# Micro-benchmark of the crypto primitives and the protected-LSDU codec.
# Run with the MicroPython unix port (or CPython, without allocation figures):
#     micropython tests/bench/bench_crypto.py [n]
# Prints median and p95 in microseconds and the heap allocated per call with
# the GC disabled. Numbers are a trend signal: confirm on the target board.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")

from meter.compat import ticks_diff, ticks_us
from meter.crypto import Aes, cmac_span, crc32, crc32_table, ctr_xor
from meter.app.security import ECC_CTR_READ, Keys, open_, open_into, seal, seal_into

_HAS_ALLOC = hasattr(gc, "mem_alloc")


def bench(fn, n, warm=20):
    for _ in range(warm):
        fn()
    samples = [0] * n  # preallocated: measuring must not allocate
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc() if _HAS_ALLOC else 0
    for i in range(n):
        t0 = ticks_us()
        fn()
        samples[i] = ticks_diff(ticks_us(), t0)
    a1 = gc.mem_alloc() if _HAS_ALLOC else 0
    gc.enable()
    samples.sort()
    return samples[n // 2], samples[n * 95 // 100], (a1 - a0) / n


def main(n):
    k1 = bytes(range(16))
    k2 = b"\xaa\x55" * 8
    aca = b"\xa8\x04\x0a\x1e\x89\x84"
    keys = Keys(k1, k2)
    aes = keys.read
    msg16 = bytearray(range(16))
    buf32 = bytearray(32)
    iv = bytearray(16)
    frame = bytearray(128)
    dt = 0x66FB3B80
    lmon = [5]

    def f_cmac():
        cmac_span(aes, msg16, 0, 16)

    def f_ctr():
        ctr_xor(aes, iv, buf32, 0, 32)

    def f_crc():
        crc32(buf32)

    def f_crc_table():
        crc32_table(buf32)

    def f_into():
        # DCU side seals READ.REQ AUTH in a frame buffer, meter side opens it.
        frame[0] = 102
        frame[1] = 0x00
        frame[2] = 0x3F
        mon = lmon[0] + 1
        end = seal_into(keys, aca, frame, 3, mon, ECC_CTR_READ, dt)
        open_into(keys, aca, frame, end, mon, ECC_CTR_READ)

    def f_pair():
        mon = lmon[0] + 1
        lsdu = seal(keys, aca, 102, b"\x00\x3f", mon, ECC_CTR_READ, dt)
        open_(keys, aca, lsdu, mon, ECC_CTR_READ)

    print("bench_crypto on %s, n=%d" % (sys.implementation.name, n))
    print("%-38s %9s %9s %12s" % ("case", "median_us", "p95_us", "alloc_B/call"))
    for name, fn in (
        ("cmac 16 B", f_cmac),
        ("ctr 32 B", f_ctr),
        ("crc32 32 B (binascii)", f_crc),
        ("crc32 32 B (table fallback)", f_crc_table),
        ("READ.REQ AUTH CTR seal_into+open_into", f_into),
        ("READ.REQ AUTH CTR seal+open_", f_pair),
    ):
        med, p95, alloc = bench(fn, n)
        print("%-38s %9d %9d %12s" % (name, med, p95, ("%.0f" % alloc) if _HAS_ALLOC else "n/a"))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
