# The firmware's modem task (meter.runtime.firmware.ModemPort) on a stand-in board:
# a UART that keeps what is written, pins that keep their level, and the
# ST7580's side of the exchanges as bytes. Shared by test_no_alloc.py and
# tests/bench/bench_auth.py (the Pin by tests/host/hi_harness.py too); runs on
# CPython and MicroPython.
from meter.runtime import firmware
from meter.link import mac
from meter.phy import st7580 as S
from meter.model.datamodel import DataModel
from meter.app.node import MeterNode
from meter.storage import Store
from fwtest import unhex

ACA = unhex("A8040A1E8901")
OTHER = unhex("A8040A1E8907")  # a meter behind this one
CLOCK = 1700000000
T0 = 5000
ACK = b"\x06"
STATUS_FREE = b"\x3f\x00"


class Pin:
    def __init__(self):
        self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        return None


class Uart:
    """Keeps what the firmware writes, without allocating."""

    def __init__(self, size=1024):
        self.got = bytearray(size)
        self.n = 0

    def write(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        for i in range(n):
            self.got[self.n + i] = buf[i]
        self.n += n
        return n

    def take(self):
        out = bytes(self.got[0:self.n])
        self.n = 0
        return out


class Board:
    def __init__(self):
        self.uart = Uart()
        self.treq = Pin()
        self.resetn = Pin()

    def modem_uart(self):
        return self.uart


def local(cmd, data=b""):
    return S.encode_frame(cmd, data)


def indication(frame, snr=20):
    """A PHY_Data.indication of frame, as the ST7580 sends it."""
    return local(S.CMD_PHY_DATA_IND, bytes((S.MOD_BPSK_CODED, snr, 0, 0)) + frame)


def phy_request(frame):
    """The PHY_Data.request of frame, as the meter must write it."""
    return local(S.CMD_PHY_DATA_REQ, bytes((S.PHY_OPTIONS,)) + frame)


def request(dst, lsdu, route=(), ecc=0):
    """A MAC frame from the concentrator: lsdu to dst through route, RA2."""
    out = bytearray(mac.MAX_FRAME)
    rp = b"".join(mac.aca_to_air(r) for r in route)
    n = mac.encode(out, mac.aca_to_air(dst), rp, 3, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


def plain_node(aca=ACA):
    model = DataModel("SN-1", aca, "smitp-meter test", Store(), lambda: CLOCK)
    return MeterNode(aca, model)


def feed(port, data, now):
    """One turn of the modem task with `data` read from the UART (b"": a timer)."""
    n = len(data)
    port.buf[0:n] = data
    port.step(n, now)


_CONFIRM = local(S.CMD_PHY_DATA_CNF, b"\x54\x54\x00\x00\x00")
_MIB_CONFIRM = local(S.CMD_MIB_WRITE_CNF)


def exchange(port, ind, now):
    """Indication in (ACK out); T_REQ low; status in (the answer's frame
    out); ACK in; confirm in (ACK out). Returns a time after it."""
    feed(port, ind, now)
    feed(port, b"", now + 1)
    feed(port, STATUS_FREE, now + 2)
    feed(port, ACK, now + 3)
    feed(port, _CONFIRM, now + 4)
    return now + 20


def _quiet(*parts):
    pass


def ready_port(node):
    """A ModemPort for node on a stand-in board, through the modem's reset
    indication and the configuration: ready to serve. Returns (port, time)."""
    log = firmware.log
    firmware.log = _quiet
    try:
        port = firmware.ModemPort(Board(), node, node.app.model)
        now = T0
        feed(port, local(S.CMD_RESET_IND, b"\x3c"), now)
        for _ in range(2):
            now += 20
            feed(port, b"", now)
            feed(port, STATUS_FREE, now + 1)
            feed(port, ACK, now + 2)
            feed(port, _MIB_CONFIRM, now + 3)
    finally:
        firmware.log = log
    assert port.ready and port.drv.idle
    port.board.uart.take()
    return port, now + 20
