# The firmware image: asyncio tasks that own the board's ports and glue the
# sans-io layers together. One task per port (the PLC modem), one for metering
# and time, one for the display. Hardware is reached only through the board object.
import asyncio
import gc

from meter import firmware_id
from meter.phy import contract as phy
from meter.model import registers as R
from meter.phy import st7580
from meter import timers as T
from meter.compat import const, ticks_diff, ticks_ms, ticks_us
from meter.streams import read_within
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.display.manager import Display
from meter.model.metering import BoardFeed, Metering
from meter.app.node import MeterNode
from meter.link.bnodelink import ANodeLink
from meter.storage import Store

# The Board and PHY-driver contracts, typed for the type checker (meter/contracts.pyi).
TYPE_CHECKING = const(False)
if TYPE_CHECKING:
    from meter.contracts import Board, PhyDriver


def log(*parts):
    print("meter:", *parts)


class Heartbeats:
    """Each supervised loop beats once per turn, or says it waits for its
    port with no timer running; the watchdog is fed only while every loop
    has beaten recently or waits (a loop stuck in a busy loop, or in a wait
    that should have ended, stops the feeding, and the board resets)."""

    def __init__(self, names):
        now = ticks_ms()
        self.last = {name: now for name in names}
        self.waiting = {name: False for name in names}
        self.sick = False  # a new firmware failed its self-test: let the watchdog reset

    def beat(self, name):
        self.last[name] = ticks_ms()
        self.waiting[name] = False

    def wait(self, name):
        """The loop now waits for bytes only: idle, not stuck."""
        self.waiting[name] = True

    def all_recent(self, within_ms):
        if self.sick:
            return False
        now = ticks_ms()
        for name, t in self.last.items():
            if not self.waiting[name] and ticks_diff(now, t) > within_ms:
                return False
        return True


async def watchdog_task(wdt, beats):
    while True:
        if beats.all_recent(T.WATCHDOG_MS // 2):
            wdt.feed()
        await asyncio.sleep_ms(T.WATCHDOG_MS // 4)


async def supervised(name, diag, make):
    """Run the coroutine make() returns; when it dies of an exception, count
    it, log it and start it again (SystemExit, a deliberate end, goes through)."""
    while True:
        try:
            return await make()
        except Exception as e:  # noqa: BLE001 - the supervisor: no exception ends a task
            diag.restarted(name, e)
            await asyncio.sleep_ms(T.TASK_RESTART_MS)


class ModemPort:
    """Owns the modem UART and pins: feeds the board's modem driver (the
    contract of meter/phy/contract.py), serves the node. An answer is written once,
    by the node, into the driver's transmit slot, and goes to the UART from
    there: a plain request or a frame to repeat allocates nothing."""

    def __init__(self, board: "Board", node, model, beats=None):
        self.board = board
        self.beats = beats
        self.node = node
        self.model = model
        self.uart = board.modem_uart()
        self.reader = None  # the stream run() waits on
        make = getattr(board, "modem_driver", None)
        self.drv = make() if make is not None else st7580.driver()  # type: PhyDriver
        self.buf = bytearray(300)
        self.mv = memoryview(self.buf)
        self.ready = False
        self._reset_at = 0
        self.bnode_uart = None  # the B-Node's local UART, when the board has one (bnode_task)

    def _write(self, buf, n):
        self.uart.write(buf, n)  # buf[0:n] without a slice (Board contract: MicroPython streams)

    def _flush(self):
        drv = self.drv
        n = drv.to_send()
        while n:
            self._write(drv.out, n)
            n = drv.to_send()
        self.board.treq.value(drv.treq)

    async def _pulse_reset(self):
        self.board.resetn.value(0)
        await asyncio.sleep_ms(T.MODEM_RESET_PULSE_MS)
        self.board.resetn.value(1)
        self._reset_at = ticks_ms()

    def _events(self, now):
        drv = self.drv
        kind = drv.next_kind()
        while kind:
            if kind == phy.DATA:
                n = self.node.on_phy(drv.rx, drv.rx_len, now, drv.quality, self._space())
                if n and self.ready:
                    drv.send(n)  # False when the queue is full: the driver counts it
            elif kind == phy.LSDU:  # a modem that runs the data link (meter/phy/hi.py)
                n = self.node.on_lsdu(drv.rx, drv.rx_len, drv.ev_code, drv.ev_cmd, now, self._space())
                if n and self.ready:
                    drv.answer(n, self.node.ans_ecc)
            elif kind == phy.RESET:
                if self.ready:
                    self.model.status |= 1 << R.SW_MODEM_RESET
                    log("modem reset, cause", drv.ev_code)
                self.ready = False
            elif kind == phy.READY:
                self.ready = True
                log("modem configured")
            elif kind == phy.FAILED:
                code = drv.ev_code
                log("modem request 0x%02x failed:" % drv.ev_cmd, "no answer" if code == phy.NO_ANSWER else code)
            kind = drv.next_kind()

    def _space(self):
        # Where the node writes a frame: in the driver's transmit slot when it can go.
        return self.drv.tx_space() if self.ready else None

    def step(self, n, now):
        """One turn after a wait: n bytes read into buf (0: none) at now."""
        drv = self.drv
        if n > 0:
            drv.receive(self.buf, now, n)
        drv.poll(now)
        self._events(now)
        self._poll_node(now)
        self._flush()
        if self.bnode_uart is not None:  # a frame for the B-Node (meter/app/bnode.py)
            link = self.node.bnode.link
            k = link.to_send()
            if k:
                self.bnode_uart.write(link.tx, k)

    async def run(self):
        if self.reader is None:
            self.reader = asyncio.StreamReader(self.uart)
        await self._pulse_reset()
        while True:
            now = ticks_ms()
            if not self.ready and ticks_diff(now, self._reset_at) > T.MODEM_BOOT_WAIT_MS:
                log("no answer from the modem, resetting it")
                await self._pulse_reset()
            timeout = self.drv.next_timeout(now)
            due = self.node.next_timeout(now)  # an RC slot answer or a REQADDR
            if due >= 0 and (timeout < 0 or due < timeout):
                timeout = due
            if not self.ready:  # look again for the modem's boot
                timeout = 100 if timeout < 0 else min(timeout, 100)
            elif timeout < 0 and self.beats is not None:
                self.beats.wait("modem")  # bytes only: no wake-up needed to stay fed
            n = await read_within(self.reader, self.mv, timeout)
            if not n:
                raise SystemExit("modem UART closed")
            if self.beats is not None:
                self.beats.beat("modem")
            self.step(n, ticks_ms())

    def _poll_node(self, now):
        # Frames the node sends later: RC slot answers, REQADDR results.
        n = self.node.poll(now, self._space())
        while n:
            if self.ready:
                self.drv.send(n)
            n = self.node.poll(now, self._space())


async def bnode_task(uart, node, port):
    """The B-Node's local UART: its answers go to the node's link, and the
    modem port takes a turn at once (the answer to the concentrator waits)."""
    reader = asyncio.StreamReader(uart)
    buf = bytearray(32)
    mv = memoryview(buf)
    link = node.bnode.link
    while True:
        n = await read_within(reader, mv, -1)
        if not n:
            log("B-Node link closed")
            return
        link.receive(buf, n)
        port.step(0, ticks_ms())


async def health_task(board: "Board", download, port, beats):
    """The self-test of a firmware on trial (meter/slots.py): healthy once
    the modem is configured and the metering loop ran, within the download
    settings' health window; else the watchdog is left unfed and the board
    restarts into the previous slot. After an activation: the restart."""
    from meter.slots import TRIAL_BOOTED

    start = ticks_ms()
    checking = True  # every start: a confirmed slot's healthy start ends its count (meter/slots.py)
    while checking:
        trial = download.boot.trial == TRIAL_BOOTED
        if port.ready and ticks_diff(beats.last["metering"], start) > 0:
            download.confirm()
            checking = False
            if trial:
                log("new firmware healthy: slot", download.boot.active, "confirmed")
        elif ticks_diff(ticks_ms(), start) > download.health_window_s() * 1000:
            if trial:
                log("new firmware not healthy in time: back to the previous slot")
                beats.sick = True
                return
            checking = False  # a confirmed slot: its count stays, the next reset adds to it
        else:
            await asyncio.sleep_ms(T.METERING_PERIOD_MS)
    while True:
        download.tick(board.unix_time())
        if download.restart_due:
            log("download activated: restarting into slot", download.boot.active)
            await asyncio.sleep_ms(T.RESTART_AFTER_ACTIVATION_MS)  # the ACK goes out first
            reset = getattr(board, "reset", None)
            if reset is not None:
                reset()
            raise SystemExit("restart into the new firmware")
        await asyncio.sleep_ms(T.METERING_PERIOD_MS)


async def metering_task(board: "Board", model, feed, beats):
    since_gc = 0
    while True:
        await asyncio.sleep_ms(T.METERING_PERIOD_MS)
        beats.beat("metering")
        dt = feed.tick(ticks_ms())  # sample the board, advance the engines (meter/model/metering.py)
        since_gc += dt
        if since_gc >= T.GC_PERIOD_MS:
            since_gc = 0
            gc.collect()


async def display_task(board: "Board", disp, wake):
    """Keeps the board's display showing what the display manager decides;
    the panel is updated part by part so that the modem task runs in between.
    wake: set when a display register was written or the button moved."""
    make = getattr(board, "display", None)  # optional members: meter/contracts.pyi
    drv = make() if make is not None else None
    disp.notify = wake.set
    while True:
        if disp.poll(ticks_ms()) and drv is not None:
            drv.show(disp.screen)
            for part in range(drv.parts):
                drv.flush(part)
                await asyncio.sleep_ms(0)
        wait = disp.next_timeout(ticks_ms())
        if wait:
            try:
                await asyncio.wait_for_ms(wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
        wake.clear()


async def button_task(button, disp, wake):
    while True:
        pressed = await button.wait()  # debounced by the board
        if pressed is None:
            return
        disp.button(pressed, ticks_ms())
        wake.set()


def dlms_profile(board, model, store, aca):
    """The DLMS/COSEM profile, unless the board leaves it out (optional member
    serves_dlms(): its modules and buffers cost RAM a small MCU may not have)."""
    serves = getattr(board, "serves_dlms", None)
    if serves is not None and not serves():
        return None
    from meter.dlms.server import profile

    return profile(model, store, aca)


def download_engine(board, node, model, store):
    """The software-download engine (REPROG services, download area), unless
    the board leaves it out (optional member serves_download(): a board that
    cannot boot a downloaded slot spares the RAM of its modules)."""
    serves = getattr(board, "serves_download", None)
    if serves is not None and not serves():
        return None
    from meter.app.download import attach

    return attach(node, model, store)


def build(board: "Board"):
    """Create the data model, the meter node, the metering and the download engine for this board."""
    aca, serial = board.identity()
    store = Store(board.storage_dir)
    model = DataModel(serial, aca, firmware_id(board.name), store, board.unix_time, board.set_unix_time)
    meter = Metering(model, store, getattr(board, "set_relay", None))  # the engines behind the registers
    bnode_uart = getattr(board, "bnode_uart", None)  # optional member: the B-Node's local link
    link = ANodeLink(T.BNODE_TIMEOUT_MS) if bnode_uart is not None and bnode_uart() is not None else None
    node = MeterNode(aca, model, security_factory(aca, store, model, board.unix_time), store=store, seed=ticks_us(),
                     bnode=link, dlms=dlms_profile(board, model, store, aca))
    download = download_engine(board, node, model, store)  # meter/app/download.py, or None
    return model, node, meter, download


async def main(board: "Board"):
    model, node, meter, download = build(board)
    diag = node.diag
    log(firmware_id(board.name), "ACA", "".join("%02X" % b for b in node.aca))
    reset_cause = getattr(board, "reset_cause", None)
    if reset_cause is not None and reset_cause() == "watchdog":
        diag.watchdog_reset()
        log("started after a watchdog reset")
    beats = Heartbeats(("modem", "metering"))
    watchdog = getattr(board, "watchdog", None)
    if watchdog is not None:
        wdt = watchdog(T.WATCHDOG_MS)
        asyncio.create_task(watchdog_task(wdt, beats))
        if download is not None:  # an install holds the loop for seconds, progressing
            download.keepalive = wdt.feed
    port = ModemPort(board, node, model, beats)
    use_keeper = getattr(port.drv, "use_keeper", None)  # a modem that may run the security (meter/phy/hi.py)
    if use_keeper is not None and node.secure is not None:
        from meter.app.modemkeys import ModemSecrets

        use_keeper(ModemSecrets(node.secure.keystore, node.secure.lmon))
    feed = BoardFeed(board, meter)
    disp = Display(model)
    wake = asyncio.Event()
    asyncio.create_task(supervised("metering", diag, lambda: metering_task(board, model, feed, beats)))
    asyncio.create_task(supervised("display", diag, lambda: display_task(board, disp, wake)))
    if download is not None:
        asyncio.create_task(supervised("health", diag, lambda: health_task(board, download, port, beats)))
    make = getattr(board, "button", None)
    button = make() if make is not None else None
    if button is not None:
        asyncio.create_task(supervised("button", diag, lambda: button_task(button, disp, wake)))
    optical_uart = getattr(board, "optical_uart", None)
    if optical_uart is not None and optical_uart() is not None:
        from meter.optical import port as optical

        # the optical port (meter/optical/port.py)
        asyncio.create_task(supervised("optical", diag, lambda: optical.run(board, node, model)))
    make_bnode = getattr(board, "bnode_uart", None)
    if node.bnode.link is not None and make_bnode is not None:
        port.bnode_uart = make_bnode()
        asyncio.create_task(supervised("bnode", diag, lambda: bnode_task(port.bnode_uart, node, port)))
    await supervised("modem", diag, port.run)


def run(board: "Board"):
    asyncio.run(main(board))
