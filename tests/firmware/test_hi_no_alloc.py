# The HI data path allocates nothing: a Slave_Data.indication in, the
# application's answer out as the Slave_Data.request of the same ReqID (T_REQ
# handshake, ACK, confirm included), through the firmware's modem task, the
# HI driver and the node. On MicroPython under micropython.heap_lock() (any
# allocation raises MemoryError); on CPython the exchanges just run.
from meter.app import security as SEC
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.app.node import MeterNode
from meter.storage import Store
from hikit import ACA, ACK, answer, exchange, indication, ready_port
from modemkit import CLOCK, plain_node
import meterkit

try:
    from micropython import heap_lock, heap_unlock
except ImportError:

    def heap_lock():
        pass

    def heap_unlock():
        pass

READ_STATUS = b"\x02\x00\x3f"


def reference(lsdu):
    node = plain_node()
    n, _ecc, buf = node.serve_lsdu(lsdu, 0, len(lsdu), 0, 127)
    return bytes(buf[0:n])


def test_plain_read_over_hi_allocates_nothing():
    port, now = ready_port(plain_node())
    ind = indication(READ_STATUS, req_id=7)
    want = ACK + answer(reference(READ_STATUS), req_id=7) + ACK
    now = exchange(port, ind, now)  # warm-up
    assert port.board.uart.take() == want
    heap_lock()
    try:
        for _ in range(3):
            now = exchange(port, ind, now)
    finally:
        heap_unlock()
    got = port.board.uart.take()
    assert got == want * 3, got
    drv = port.drv
    assert drv.stats["answers"] == 4 and drv.stats["overflow"] == 0 and port.node.stats["faults"] == 0
    assert drv.idle and port.board.treq.level == 1


def test_authenticated_read_over_hi_the_firmware_security_in_the_path():
    store = Store()
    KeyStore(store).provision(meterkit.K1, meterkit.K2)
    model = DataModel("SN-1", ACA, "smitp-meter test", store, lambda: CLOCK)
    node = MeterNode(ACA, model, security_factory(ACA, store, model, lambda: CLOCK))
    port, now = ready_port(node)
    keys = SEC.Keys(meterkit.K1, meterkit.K2)
    for mon in (1, 2):
        lsdu = SEC.seal(keys, ACA, 102, b"\x00\x3f", mon, SEC.ECC_CTR_READ, CLOCK)
        now = exchange(port, indication(lsdu, req_id=mon, ecc=SEC.ECC_CTR_READ), now)
        got = port.board.uart.take()
        req = got[1:len(got) - 1]  # ACK, the Slave_Data.request, ACK
        assert req[2] == 0x24 and req[3] == SEC.ECC_CTR_READ << 4 and req[4] == mon, got
        assert req[5] == 103  # the authenticated READ.RESP, sealed by the firmware
    assert node.secure.lmon.value == 2


def test_request_the_modem_opened_is_served_with_its_keys_rights_without_allocating():
    from hikit import Board

    board = Board()
    board.modem_security = True  # no keeper given: MIB 6 only, as ready_port expects
    node = plain_node()
    port, now = ready_port(node, board)
    ecc_k1_ecb = SEC.ECC_ECB_WRITE
    ind = indication(READ_STATUS, req_id=3, ecc=ecc_k1_ecb)  # opened by the modem under K1, ECB
    want = ACK + answer(reference(READ_STATUS), req_id=3) + ACK  # answered in clear: the modem seals it
    now = exchange(port, ind, now)
    assert port.board.uart.take() == want
    heap_lock()
    try:
        now = exchange(port, ind, now)
    finally:
        heap_unlock()
    assert port.board.uart.take() == want
    # the clock register is written only with the write key's rights: refused in plain, granted here
    write = b"\x04\x00\x20" + (1700000000).to_bytes(4, "big")  # WRITE.REQ of the clock (0x0020)
    exchange(port, indication(write, req_id=4), now)
    refused = port.board.uart.take()
    exchange(port, indication(write, req_id=5, ecc=ecc_k1_ecb), now + 40)
    granted = port.board.uart.take()
    assert refused[1 + 5] == 255 and granted[1 + 5] != 255, (refused, granted)  # NACK A-Node, then not
