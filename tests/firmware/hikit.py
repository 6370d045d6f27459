# The firmware's modem task (meter.runtime.firmware.ModemPort) with the M&M
# Host Interface driver (meter/phy/hi.py) on a stand-in board, and the modem's
# side of the exchanges as bytes (Microchip profile, CRC-16). Shared by
# test_hi_no_alloc.py and tests/bench/bench_hi.py; runs on CPython and MicroPython.
from meter.runtime import firmware
from meter.phy import hi
from meter.phy import hi_codec as H
import modemkit
from modemkit import ACA, T0, Uart, Pin  # noqa: F401 - the stand-in board's parts

ACK = b"\x06"
STATUS_FREE = b"\x3f\x03\xd8\x10"
SERIAL = "SN-1"
CONFIRM = H.encode_frame(H.CMD_SLAVE_CNF, b"\x00")


class Board(modemkit.Board):
    modem_security = False  # True: the modem runs the security (requests come opened)

    def modem_driver(self):
        return hi.driver(hi.MICROCHIP, aca=ACA, serial=SERIAL, modem_security=self.modem_security)


def indication(lsdu, req_id=1, ecc=0):
    """The Slave_Data.indication of an application request, as the modem sends it."""
    return H.encode_frame(H.CMD_SLAVE_IND, bytes((ecc << 4, req_id)) + lsdu)


def answer(lsdu, req_id=1, ecc=0):
    """The Slave_Data.request the meter must write for an answer."""
    return H.encode_frame(H.CMD_SLAVE_REQ, bytes((ecc << 4, req_id)) + lsdu)


feed = modemkit.feed


def exchange(port, ind, now):
    """Indication in (ACK out, the answer queued); T_REQ low; status in (the
    Slave_Data.request out); ACK in; confirm in (ACK out). Returns a time after it."""
    feed(port, ind, now)
    feed(port, b"", now + 11)  # T_REQ high at least TIC between two handshakes
    feed(port, STATUS_FREE, now + 12)
    feed(port, ACK, now + 13)
    feed(port, CONFIRM, now + 14)
    return now + 30


def ready_port(node, board=None):
    """A ModemPort on the HI driver for node, through the modem's reset
    indication and the configuration (MIB 6): ready to serve. (port, time)."""
    log = firmware.log
    firmware.log = modemkit._quiet
    try:
        port = firmware.ModemPort(board or Board(), node, node.app.model)
        now = T0
        feed(port, H.encode_frame(H.CMD_RESET_IND, b"\x80"), now)
        feed(port, STATUS_FREE, now + 1)
        feed(port, ACK, now + 2)
        feed(port, H.encode_frame(H.CMD_MIB_WRITE_CNF, bytes((H.MIB_MANUFACTURER,))), now + 3)
    finally:
        firmware.log = log
    assert port.ready and port.drv.idle, port.drv.stats
    port.board.uart.take()
    return port, now + 20
