# The optical port's task: owns the board's optical UART and runs the sans-io
# port (meter/optical/iec62056.py) with its mode C readout (meter/optical/readout.py) and mode
# F sessions (meter/optical/modef.py). The board contract: optical_uart() gives a
# pollable UART stream (None: no optical port), set_optical_line(baud,
# seven_e1) sets its rate and framing (7E1 or 8N1).
import asyncio

from meter.optical import iec62056 as I
from meter.compat import ticks_ms
from meter.streams import read_within
from meter.optical.modef import ModeFSession, Services
from meter.optical.readout import readout_lines
from meter.storage import Store


def log(*parts):
    print("meter: optical", *parts)


def build(node, model, store=None, clock=None):
    """The optical port of a meter node (sans-io; in-process meters use it directly)."""
    settings = I.Settings(store)
    services = Services(node, settings, clock)

    def mode_f(lockout):
        return ModeFSession(services, lockout)

    return I.OpticalPort(lambda: readout_lines(model), mode_f, settings)


class OpticalTask:
    def __init__(self, board, port):
        self.board = board
        self.port = port
        self.uart = board.optical_uart()
        self.reader = asyncio.StreamReader(self.uart)
        self.buf = bytearray(64)
        self.mv = memoryview(self.buf)
        self._line = None

    def _apply_line(self):
        # Output queued after a switch must leave at the new settings, so the
        # line is set before writing; the port switches only when its own
        # output has left.
        line = (self.port.baud, self.port.seven_e1)
        if line != self._line:
            self.board.set_optical_line(line[0], line[1])
            self._line = line

    def _events(self):
        ev = self.port.next_event()
        while ev is not None:
            if ev[0] == I.EV_SESSION:
                log("mode", ev[1], "at", ev[2], "Bd")
            elif ev[0] == I.EV_END:
                log("session ended:", ev[1])
            elif ev[0] == I.EV_LOCKED:
                log("locked for", ev[1], "ms after failed authentications")
            ev = self.port.next_event()

    async def _step(self):
        port = self.port
        timeout = port.next_timeout(ticks_ms())
        n = await read_within(self.reader, self.mv, timeout)
        now = ticks_ms()
        if n is not None and n > 0:
            port.receive(self.mv[0:n], now)
        elif not n:
            await asyncio.sleep_ms(100)  # end of file: nobody on the other side; look again later
        port.poll(now)
        self._apply_line()
        out = port.data_to_send()
        if out:
            self.uart.write(out)
        self._events()

    async def run(self):
        self._apply_line()
        log("ready at 300 Bd 7E1")
        while True:
            try:
                await self._step()
            except Exception as e:  # the optical port must never stop the meter
                log("error:", repr(e))
                await asyncio.sleep_ms(100)


async def run(board, node, model):
    port = build(node, model, Store(board.storage_dir), board.unix_time)
    await OpticalTask(board, port).run()
