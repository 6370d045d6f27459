"""A meter on a Meters and More modem, in process: the firmware's modem task
(meter.runtime.firmware.ModemPort) with the HI driver on a stand-in board,
its UART and T_REQ joined to the HI emulator (smitp.hi_emu), on a virtual
clock. What the modem puts on air is kept in `on_air`."""

from linkclock import ClockedLink
from meter.phy import hi
from meter.runtime import firmware
from modemkit import Pin
from smitp.hi_emu import CS_CRC, HIEmulator
from smitp.network import VirtualClock, in_process_meter


class Uart:
    def __init__(self):
        self.written = bytearray()

    def write(self, buf, n=-1):
        self.written += bytes(buf[0:n] if n >= 0 else buf)
        return n


class Board:
    def __init__(self, aca, serial, profile, checksum, **driver_settings):
        self.uart = Uart()
        self.treq = Pin()
        self.resetn = Pin()
        self._drv = lambda: hi.driver(profile, checksum, aca=aca, serial=serial, **driver_settings)

    def modem_uart(self):
        return self.uart

    def modem_driver(self):
        return self._drv()


class HiMeter(ClockedLink):
    """Firmware and emulated modem back to back; time in ms (float for the
    emulator, whole ms for the firmware)."""

    def __init__(self, aca, keys=None, kind=CS_CRC, emu=None, **driver_settings):
        self.t = 0.0
        self.clock = VirtualClock()
        self.node = in_process_meter(aca, "SN" + aca.hex()[-6:].upper(), self.clock, keys)
        profile = hi.MICROCHIP if kind == CS_CRC else hi.ST75MM
        self.board = Board(aca, "SN" + aca.hex()[-6:].upper(), profile, kind, **driver_settings)
        firmware.log = lambda *a: None  # the task's console lines
        self.port = firmware.ModemPort(self.board, self.node, self.node.app.model)
        self.emu = emu or HIEmulator(kind)
        self.treq = 1
        self.on_air = []
        self.emu.power_on(self.t)

    @property
    def drv(self):
        return self.port.drv

    def _step(self, data=b""):
        port = self.port
        n = len(data)
        port.buf[0:n] = data
        port.step(n, int(self.t))

    def settle(self):
        for _ in range(2000):
            moved = False
            self._step()
            out = bytes(self.board.uart.written)
            self.board.uart.written.clear()
            if out:
                moved = True
                self.emu.from_host(out, self.t)
            if self.board.treq.level != self.treq:
                self.treq = self.board.treq.level
                self.emu.set_treq(self.treq, self.t)
                moved = True
            self.emu.poll(self.t)
            back = self.emu.to_host()
            if back:
                self._step(back)
                moved = True
            p = self.emu.next_transmission()
            if p is not None:
                self.on_air.append(p)
                self.emu.transmit_done(self.t)  # airtime is the medium's business, not tested here
                moved = True
            if not moved:
                return
        raise AssertionError("the link does not settle")

    def _at(self, t):
        self.t = t
        self.clock.t = t / 1000.0

    def request(self, frame, ms=3000):
        """A MAC frame heard by the modem; what it put on air meanwhile."""
        self.on_air = []
        self.emu.deliver(frame, 20, self.t)
        self.run(ms)
        return self.on_air
