# The Association LN object list on MicroPython (micropython
# tests/bench/bench_dlms_objlist.py): a public association reads it with GET
# in blocks, at the xDLMS server (request APDU in, response APDU out), each
# block encoded from the object table as it is asked for (meter/dlms/objlist.py).
# For the firmware's list and for one with 100 Data objects more (longer than
# the 2048-byte long buffer): its length, blocks, time of the first block
# (which measures the whole list) and of the next ones, heap per request.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE + "/../firmware")

from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.dlms import cosem as C  # noqa: E402
import dlmskit as K  # noqa: E402
from test_dlms_objlist import extra_objects  # noqa: E402

GET_LIST = b"\xc0\x01\xc1\x00\x0f\x00\x00\x28\x00\x00\xff\x02\x00"
ROUNDS = 5


def timed(m, req):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    t0 = ticks_us()
    n = m.server.handle(req, len(req), m.resp)
    dt = ticks_diff(ticks_us(), t0)
    alloc = gc.mem_alloc() - a0
    gc.enable()
    return n, dt, alloc


def read(name, pdu):
    m = K.Meter()
    m.ask(K.aarq(ui=K.initiate(max_pdu=pdu)))
    firsts, nexts, heap = [], [], []
    size = blocks = 0
    for _ in range(ROUNDS):
        n, dt, alloc = timed(m, bytearray(GET_LIST))
        firsts.append(dt)
        heap.append(alloc)
        size = blocks = 0
        while True:
            ans = m.resp
            blocks += 1
            size += n
            if ans[1] == 1 or ans[3]:  # whole, or the last block
                break
            req = bytearray(b"\xc0\x02\xc1" + bytes(ans[4:8]))
            n, dt, alloc = timed(m, req)
            nexts.append(dt)
            heap.append(alloc)
    firsts.sort()
    nexts.sort()
    heap.sort()
    print("%-36s PDU %4d: %d objects, %5d B of answers in %2d blocks; first block median %6d us, "
          "next median %6d us p95 %6d us; heap/request median %d B, max %d B"
          % (name, pdu, len(C.OBJECTS), size, blocks, firsts[len(firsts) // 2], nexts[len(nexts) // 2],
             nexts[len(nexts) * 95 // 100], heap[len(heap) // 2], heap[-1]))


def main():
    for pdu in (1024, 256):
        read("object list", pdu)
    saved = C.OBJECTS
    C.OBJECTS = C.OBJECTS + extra_objects(100)
    try:
        for pdu in (1024, 256):
            read("object list, 100 objects more", pdu)
    finally:
        C.OBJECTS = saved


main()
