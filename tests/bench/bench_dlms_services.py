# SET in blocks and broadcast of the DLMS/COSEM profile on MicroPython
# (micropython tests/bench/bench_dlms_services.py), whole frames through the
# meter node (MAC decode, convergence layer, suite 0, the service, the answer):
# - a manager's SET of the clock in two blocks (as Gurux sends it at a 24-byte
#   PDU), per block frame;
# - one 60-byte block of a SET gathered (not the last: no effect yet);
# - a broadcast SET of the clock (broadcast key, counter written to the store).
# Median and p95 time per frame, heap allocated per frame (GC disabled).
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE + "/../firmware")

from meter.link import mac  # noqa: E402
from meter.link.llc import DSAP_DLMS  # noqa: E402
from meter.app.node import MeterNode  # noqa: E402
from meter.dlms import broadcast as B  # noqa: E402
from meter.dlms.server import profile, provision  # noqa: E402
from meter.model.datamodel import DataModel  # noqa: E402
from meter.storage import Store  # noqa: E402
import dlmskit as K  # noqa: E402
from bench_dlms import timed_frames  # noqa: E402
from test_dlms_blocks import SET_FIRST, SET_NEXT  # noqa: E402

ACA = b"\xa8\x04\x0a\x1e\x89\x01"
BK = b"\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
SET_BCAST = (b"\xc1\x01\x81\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00"  # unconfirmed SET of the clock
             b"\x09\x0c\x07\xea\x01\x01\x04\x0c\x00\x00\x00\x00\x00\x00")
N = 100


class Clock:
    t = 1764676800

    def now(self):
        return self.t

    def set(self, t):
        self.t = t


def node():
    c = Clock()
    store = Store()
    model = DataModel("SN", ACA, "fw", store, c.now, c.set)
    provision(store, K.EK, K.AK)
    B.provision(store, BK)
    n = MeterNode(ACA, model, store=store, dlms=profile(model, store, ACA, lambda k: K.STOC))
    server = n.dlms.server
    server.ic = server.ic_end = 0x01234565
    for xid, apdu in ((1, K.hls_aarq()), (2, K.glo(K.REPLY_TO_HLS, 1))):
        f = frame(xid, apdu)
        if not n.on_phy(f, len(f)):
            raise SystemExit("no answer to the association")
    return n


def frame(xid, apdu, addr=None, disc=8):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(ACA) if addr is None else addr, b"", disc, False, 0, False, DSAP_DLMS, 0,
                   bytes((1, xid & 0xFF, 0)) + apdu)
    return bytes(out[:n])


def main():
    nd = node()
    ic = 2
    frames = []
    for k in range(N):  # first block, last block, first block, ...
        frames.append(frame(3 + k, K.glo(SET_NEXT if k % 2 else SET_FIRST, ic + k)))
    timed_frames("SET of the clock in 2 blocks, per block frame", nd, frames)
    ic += N
    head = SET_FIRST[:13] + b"\x00\x00\x00\x00\x01\x3c"  # first block, not the last, 60 raw bytes
    frames = [frame(k, K.glo(head + bytes(60), ic + k)) for k in range(N)]
    timed_frames("a 60-byte SET block gathered", nd, frames)
    frames = [frame(k, K.glo(SET_BCAST, 1 + k, title=b"MMM\x00\x00\x00\x00\x02", sc=0x70, ek=BK), mac.BROADCAST, 0)
              for k in range(N)]
    timed_frames("broadcast SET of the clock (no answer)", nd, frames, want_answer=False)
    s = nd.dlms.server.stats
    print("exceptions %d, broadcasts applied %d, refused %d" % (s["exceptions"], s["broadcasts"],
                                                              s["broadcasts_refused"]))


main()
