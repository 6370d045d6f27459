# The pure-Python AES-128 (meter/aes.py), meter.crypto's fallback on a port
# without cryptolib, against the port's cryptolib, on the MicroPython unix port:
# time per 16-byte block (encrypt, decrypt, key expansion) and per
# authenticated + AES-CTR READ.REQ served by a meter node (as in bench_auth.py).
# Figures for the MCU (instructions): tests/bench/host_bench_mcu.py.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")

from meter import crypto  # noqa: E402
from meter.aes import Aes128  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402


def bench(fn, n, warm=10):
    for _ in range(warm):
        fn()
    samples = [0] * n
    gc.collect()
    gc.disable()
    for i in range(n):
        t0 = ticks_us()
        fn()
        samples[i] = ticks_diff(ticks_us(), t0)
    gc.enable()
    samples.sort()
    return samples[n // 2], samples[n * 95 // 100]


ACA = b"\xa8\x04\x0a\x1e\x89\x84"
K1 = bytes(range(16))
K2 = b"\xaa\x55" * 8


def auth_read(backend, n=200):
    """Median and p95 us per authenticated READ.REQ served, the node's AES on `backend`."""
    from meter.app import security as S
    from meter.app.auth import security_factory
    from meter.app.lmon import KeyStore
    from meter.app.node import MeterNode
    from meter.link import mac
    from meter.model.datamodel import DataModel
    from meter.storage import Store

    saved = crypto._BACKEND
    crypto._BACKEND = backend
    try:
        store = Store()
        KeyStore(store).provision(K1, K2)
        model = DataModel("SN", ACA, "fw", store, lambda: 1700000000)
        node = MeterNode(ACA, model, security_factory(ACA, store, model, lambda: 1700000000))
        keys = S.Keys(K1, K2)
        me = mac.aca_to_air(ACA)
        frames = []
        for mon in range(1, n + 1):
            out = bytearray(mac.MAX_FRAME)
            lsdu = S.seal(keys, ACA, 102, b"\x00\x3f", mon, S.ECC_CTR_READ, 1700000000)
            frames.append(bytes(out[:mac.encode(out, me, b"", 3, False, 0, False, 0, S.ECC_CTR_READ, lsdu)]))
        it = iter(frames)

        def serve():
            f = next(it)
            if not node.on_phy(f, len(f)):
                raise SystemExit("no answer")

        return bench(serve, n - 10)
    finally:
        crypto._BACKEND = saved


def main():
    key = bytes(range(16))
    block = bytearray(16)
    rows = []
    py = Aes128(key)
    rows.append(("python  encrypt block", bench(lambda: py.encrypt_block(block, block), 2000)))
    rows.append(("python  decrypt block", bench(lambda: py.decrypt_block(block, block), 2000)))
    rows.append(("python  key expansion", bench(lambda: Aes128(key), 500)))
    if crypto._mp_aes is not None:
        enc = crypto._mp_aes(key, 1).encrypt
        rows.append(("cryptolib encrypt block", bench(lambda: enc(block, block), 2000)))
    for name, (med, p95) in rows:
        print("%-26s median %5d us  p95 %5d us" % (name, med, p95))
    for backend in ("python", "cryptolib"):
        if backend == "cryptolib" and crypto._mp_aes is None:
            continue
        med, p95 = auth_read(backend)
        print("READ.REQ AUTH + AES-CTR, %-9s median %5d us  p95 %5d us" % (backend, med, p95))


main()
