# The frame path allocates nothing: a plain READ and a frame to repeat, from
# the ST7580's bytes on the UART to the PHY_Data.request written back
# (T_REQ handshake, ACK, confirm included), through the firmware's modem task
# (ModemPort.step), the driver and the node. On MicroPython the exchanges run
# under micropython.heap_lock(), where any allocation raises MemoryError; on
# CPython they just run. The answer must be the one the copying path gives.
from meter.link import mac
from meter.app import security as SEC
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.storage import Store
from modemkit import (ACA, ACK, CLOCK, OTHER, exchange, feed, indication, phy_request, plain_node, ready_port,
                      request)
import meterkit

try:
    from micropython import heap_lock, heap_unlock
except ImportError:  # CPython: nothing to lock

    def heap_lock():
        pass

    def heap_unlock():
        pass


SCA = b"\x01\x00\x00\x01\x03\x03"  # section 1, sub-section 1, node 3 (on air)


def node_with(sca):
    node = plain_node()
    node.nm.sca = sca
    return node


def sca_request(lsdu, rp=b""):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, SCA, rp, 3, False, 0, False, 0, 0, lsdu)
    return bytes(out[:n])


def reference(frame, sca=None):
    """The node's answer to frame by the copying path (on_phy into node.out)."""
    node = node_with(sca)
    n = node.on_phy(frame, len(frame))
    assert n
    return bytes(node.out[0:n])


def expect(port, frame):
    """What the modem task wrote in one exchange: ACK of the indication, the
    PHY_Data.request of frame, ACK of the confirm."""
    got = port.board.uart.take()
    want = ACK + phy_request(frame) + ACK
    assert got == want, (got, want)
    assert port.drv.idle and port.board.treq.level == 1


def locked(port, ind, now, times):
    """`times` exchanges of ind under a locked heap; the time after them."""
    heap_lock()
    try:
        for _ in range(times):
            now = exchange(port, ind, now)
    finally:
        heap_unlock()
    return now


def _round_trips(frame, counter, sca=None):
    port, now = ready_port(node_with(sca))
    ind = indication(frame)
    want = reference(frame, sca)
    now = exchange(port, ind, now)  # warm-up: first calls may allocate
    expect(port, want)
    now = locked(port, ind, now, 1)
    expect(port, want)
    locked(port, ind, now, 3)
    port.board.uart.take()
    st = port.node.stats
    assert st[counter] == 5 and st["faults"] == 0 and port.drv.stats["overflow"] == 0


def test_plain_read_allocates_nothing():
    _round_trips(request(ACA, b"\x02\x00\x3f"), "served")


def test_frame_to_repeat_allocates_nothing():
    _round_trips(request(OTHER, b"\x02\x00\x3f", route=(ACA,)), "repeated")


def test_sca_read_allocates_nothing():
    _round_trips(sca_request(b"\x02\x00\x3f"), "served", SCA)


def test_frame_to_repeat_by_sca_allocates_nothing():
    # this meter is node 4 of sub-section 1 and repeats for node 3 (SCA)
    _round_trips(sca_request(b"\x02\x00\x3f", rp=b"\x01\x04"), "repeated", b"\x01\x00\x00\x01\x04\x03")


def test_answer_is_written_in_the_transmit_slot():
    # The frame goes to the UART from the very memory the node wrote it in.
    port, now = ready_port(plain_node())
    frame = request(ACA, b"\x02\x00\x3f")
    drv = port.drv
    space = drv.tx_space()
    feed(port, indication(frame), now)
    feed(port, b"", now + 1)
    port.board.uart.take()
    drv.receive(b"\x3f\x00", now + 2)
    n = drv.to_send()
    want = phy_request(reference(frame))
    assert n == len(want) and bytes(drv.out[0:n]) == want
    space[0] ^= 0xFF  # the lent region is the frame's payload, not a copy of it
    assert drv.out[4] == space[0]


def test_authenticated_read_through_the_modem_task():
    # The secure path still works on the receive buffer's memoryview.
    store = Store()
    KeyStore(store).provision(meterkit.K1, meterkit.K2)
    model = DataModel("SN-1", ACA, "smitp-meter test", store, lambda: CLOCK)
    node = MeterNode(ACA, model, security_factory(ACA, store, model, lambda: CLOCK))
    port, now = ready_port(node)
    keys = SEC.Keys(meterkit.K1, meterkit.K2)
    for mon in (1, 2):
        lsdu = SEC.seal(keys, ACA, 102, b"\x00\x3f", mon, SEC.ECC_CTR_READ, CLOCK)
        now = exchange(port, indication(request(ACA, lsdu, ecc=SEC.ECC_CTR_READ)), now)
        got = port.board.uart.take()
        frame = got[1 + 4:len(got) - 1 - 2]  # ACK, STX LEN CMD options, ..., CS CS, ACK
        f = mac.Frame()
        mac.decode(f, frame, len(frame))
        assert f.uplink and f.ecc == SEC.ECC_CTR_READ and frame[f.data] == 103
    assert node.stats["served"] == 2 and node.secure.lmon.value == 2
