# Runs ON the emulated MCU (sent through the raw REPL by tests/bench/host_bench_mcu.py,
# the image started with QEMU -icount shift=0: one instruction = 1 ns of virtual
# time, so 1 us of ticks_us = 1,000 instructions). The meter's processing of a
# whole frame (node.on_phy: link layer, application, security), as
# tests/bench/bench_auth.py measures it on the unix port: a plain READ.REQ, a
# frame the meter repeats, an authenticated + AES-CTR encrypted READ.REQ.
# The same authenticated READ.REQ with meter/aes.py, the pure-Python AES, as the
# node's cipher (a port without cryptolib), and one AES block each way.
# Prints "READ <kind> <median us> <min us> <max us> <heap B per frame>" and
# "AES <backend> <us per block>".
import gc
from time import ticks_diff, ticks_us

from meter.app import security as S
from meter.app.auth import security_factory
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.link import mac
from meter.model.datamodel import DataModel
from meter.storage import Store

ACA = b"\xa8\x04\x0a\x1e\x89\x84"
K1 = bytes(range(16))
K2 = b"\xaa\x55" * 8
N = 40


def make_node():
    store = Store()
    KeyStore(store).provision(K1, K2)
    model = DataModel("SN", ACA, "fw", store, lambda: 1700000000)
    return MeterNode(ACA, model, security_factory(ACA, store, model, lambda: 1700000000))


def frame(dst_air, route, lsdu, ecc):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, dst_air, route, 3, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


def timed(kind, node, frames):
    samples = [0] * len(frames)
    node.on_phy(frames[0], len(frames[0]))  # warm-up: first use builds what is cached
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for i in range(1, len(frames)):
        f = frames[i]
        t0 = ticks_us()
        n = node.on_phy(f, len(f))
        samples[i] = ticks_diff(ticks_us(), t0)
        if not n:
            raise SystemExit("no answer to %s" % kind)
    a1 = gc.mem_alloc()
    gc.enable()
    s = sorted(samples[1:])
    print("READ %s %d %d %d %d" % (kind, s[len(s) // 2], s[0], s[-1], (a1 - a0) // (len(frames) - 1)))


def main():
    keys = S.Keys(K1, K2)
    me = mac.aca_to_air(ACA)
    timed("plain", make_node(), [frame(me, b"", b"\x02\x00\x3f", 0)] * N)
    timed("repeated", make_node(), [frame(b"\x01\x02\x03\x04\x05\x06", me, b"\x02\x00\x3f", 0)] * N)
    batch = [frame(me, b"", S.seal(keys, ACA, 102, b"\x00\x3f", mon, S.ECC_CTR_READ, 1700000000), S.ECC_CTR_READ)
             for mon in range(1, N + 1)]
    timed("authenticated", make_node(), batch)
    from meter import crypto
    from meter.aes import Aes128

    saved = crypto._BACKEND
    crypto._BACKEND = "python"
    timed("auth_python_aes", make_node(), batch)
    crypto._BACKEND = saved
    block = bytearray(16)
    for name, enc in (("python", Aes128(K1).encrypt_block), ("cryptolib", crypto.Aes(K1).encrypt_block)):
        enc(block, block)
        t0 = ticks_us()
        for _ in range(10):
            enc(block, block)
        print("AES %s %d" % (name, ticks_diff(ticks_us(), t0) // 10))


main()
