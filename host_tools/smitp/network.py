"""A simulated LV network: nodes on one PLC medium, pumped by one loop.

Nodes are
- emulated boards (real MicroPython processes) behind their ST7580 emulators,
- in-process meters (the firmware's MeterNode under CPython),
- concentrator ports (the host's master side).
With emulated boards in it the loop runs on the wall clock (the boards do);
without them it may run on a virtual clock that jumps to the next event.
"""

import heapq
import os
import select
import time
from collections import deque

from meter.timers import ELABORATION_MS
from smitp.medium import Medium

# Time an in-process meter takes to answer or repeat (TEL, meter/timers.py).
ELABORATION_S = ELABORATION_MS / 1000.0


class RealClock:
    def __init__(self):
        self._t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self._t0

    def wait(self, fds, timeout):
        """Sleep until an fd is readable or timeout seconds passed."""
        if fds:
            r, _, _ = select.select(fds, [], [], max(0.0, timeout))
            return r
        time.sleep(max(0.0, timeout))
        return []


class VirtualClock:
    """Jumps straight to the next event: no real waiting (no boards allowed)."""

    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def wait(self, fds, timeout):
        if fds:
            raise RuntimeError("a virtual clock cannot wait for emulated boards")
        self.t += max(0.0, timeout)
        return []


class _BoardSlot:
    def __init__(self, name, board, emulator):
        self.name = name
        self.board = board
        self.emu = emulator
        self.out = b""  # bytes for the board's UART not yet accepted by the pty


class ConcentratorPort:
    """The concentrator's attachment to the medium: send a PHY payload, receive the ones it hears."""

    def __init__(self, network, name):
        self.network = network
        self.name = name
        self.inbox = deque()

    def now(self):
        return self.network.clock.now()

    def slack_s(self):
        """What answers from the boards on this line may come late (the most of their answer_slack_s)."""
        return max((slot.board.answer_slack_s for slot in self.network.boards.values()), default=0.0)

    def send(self, payload):
        """Transmit, after the port's previous frame has left (a modem is half duplex)."""
        net = self.network
        while net.medium.is_transmitting(self.name, net.clock.now()):
            net.step(0.01)
        net.medium.transmit(self.name, bytes(payload), net.clock.now())

    def recv(self, timeout_s):
        """The next frame heard, or None after timeout_s of network time."""
        net = self.network
        end = net.clock.now() + timeout_s
        while not self.inbox:
            left = end - net.clock.now()
            if left <= 0:
                return None
            net.step(left)
        return self.inbox.popleft()


class Network:
    def __init__(self, medium=None, clock=None):
        self.medium = medium or Medium()
        self.clock = clock or RealClock()
        self.boards = {}
        self.meters = {}
        self.ports = {}
        self._pending = []  # heap of (time, seq, name, payload): in-process transmissions
        self._timers = []  # heap of (time, seq, name): when an in-process meter wants poll()
        self._armed = {}  # name -> time of its live entry in _timers
        self._tx_end = {}  # name -> end of its latest in-process transmission
        self._seq = 0
        self.phases = {}  # name -> mains phase (topology metadata), for the in-phase flag

    # ---- building
    def add_board(self, name, board):
        """Start an EmulatedBoard and attach it through a new emulator of its
        modem: the ST7580's, or a Meters and More modem's (smitp.hi_emu)."""
        slot = _BoardSlot(name, board, modem_emulator(getattr(board, "modem", "st7580")))
        board.start()
        slot.emu.power_on(self._ms())
        self.boards[name] = slot
        return slot

    def add_meter(self, name, node):
        self.meters[name] = node

    def add_concentrator(self, name):
        port = ConcentratorPort(self, name)
        self.ports[name] = port
        return port

    def close(self):
        for slot in self.boards.values():
            slot.board.stop()

    # ---- running
    def _ms(self):
        return self.clock.now() * 1000.0

    def _next_deadline(self, now):
        times = [now + 3600.0]
        t = self.medium.next_time()
        if t is not None:
            times.append(t)
        if self._pending:
            times.append(self._pending[0][0])
        if self._timers:
            times.append(self._timers[0][0])
        for slot in self.boards.values():
            ms = slot.emu.next_timeout(now * 1000.0)
            if ms is not None:
                times.append(now + ms / 1000.0)
            if slot.out:
                times.append(now + 0.001)
        return min(times)

    def step(self, max_wait_s):
        """Wait for the next thing to happen (at most max_wait_s) and handle it."""
        now = self.clock.now()
        wait = min(max_wait_s, self._next_deadline(now) - now)
        fds = []
        for slot in self.boards.values():
            if slot.board.uart_fd is not None:
                fds += [slot.board.uart_fd, slot.board.pins_fd]
        ready = self.clock.wait(fds, wait)
        now = self.clock.now()
        ms = now * 1000.0
        for slot in self.boards.values():
            self._service_board(slot, ready, ms, now)
        self._fire_timers(now)
        self._send_pending(now)
        for ev in self.medium.poll(now):
            self._deliver(ev, now)

    def run_for(self, seconds):
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.step(end - self.clock.now())

    def run_until(self, predicate, timeout_s):
        end = self.clock.now() + timeout_s
        while not predicate():
            left = end - self.clock.now()
            if left <= 0:
                return False
            self.step(min(left, 0.05))
        return True

    def _service_board(self, slot, ready, ms, now):
        b, emu = slot.board, slot.emu
        if b.uart_fd is None:
            return
        if b.pins_fd in ready:
            for code in _read_all(b.pins_fd):
                level = 1 if code in b"TR" else 0
                if code in b"Tt":
                    emu.set_treq(level, ms)
                elif code in b"Rr":
                    emu.set_resetn(level, ms)
        if b.uart_fd in ready:
            data = _read_all(b.uart_fd)
            if data:
                emu.from_host(data, ms)
        emu.poll(ms)
        slot.out += emu.to_host()
        if slot.out:
            try:
                n = os.write(b.uart_fd, slot.out)
                slot.out = slot.out[n:]
            except BlockingIOError:
                pass
        payload = emu.next_transmission()
        if payload is not None:
            self.medium.transmit(slot.name, payload, now)

    def _queue(self, t, name, payload):
        self._seq += 1
        heapq.heappush(self._pending, (t, self._seq, name, payload))

    def _send_pending(self, now):
        # A node still sending its previous frame sends the next one right after;
        # a node switched off meanwhile sends nothing.
        pending = self._pending
        while pending and pending[0][0] <= now:
            _t, _seq, name, payload = heapq.heappop(pending)
            if not self.medium.powered(name):
                continue
            end = self._tx_end.get(name, 0.0)
            if end > now:
                self._queue(end, name, payload)
                continue
            self._tx_end[name] = self.medium.transmit(name, payload, now)

    def _arm(self, name, node, now):
        """Keep one timer entry per in-process meter, at its next_timeout()."""
        wait = node.next_timeout(_ms(now))
        t = None if wait < 0 else now + wait / 1000.0
        if self._armed.get(name) != t:
            self._armed[name] = t
            if t is not None:
                self._seq += 1
                heapq.heappush(self._timers, (t, self._seq, name))

    def _fire_timers(self, now):
        timers = self._timers
        while timers and timers[0][0] <= now:
            t, _seq, name = heapq.heappop(timers)
            if self._armed.get(name) != t:
                continue  # superseded
            self._armed[name] = None
            node = self.meters[name]
            n = node.poll(_ms(now))
            while n:
                self._queue(now, name, bytes(node.out[:n]))
                n = node.poll(_ms(now))
            self._arm(name, node, now)

    def _quality(self, dst, src, q):
        """The medium's link figures as the node's quality argument (meter.link.netmgmt Q_*)."""
        a, b = self.phases.get(dst), self.phases.get(src)
        return (q["signal_dbuv"], q["snr_db"], q["impedance_ohm"], None if a is None or b is None else a == b)

    def _deliver(self, ev, now):
        if ev[0] == "tx_done":
            slot = self.boards.get(ev[1])
            if slot is not None:
                slot.emu.transmit_done(now * 1000.0)
            return
        _kind, dst, _src, payload, quality = ev
        if dst in self.boards:
            self.boards[dst].emu.deliver(payload, snr=int(quality.get("snr_db", 20)), now=now * 1000.0)
        elif dst in self.meters:
            node = self.meters[dst]
            n = node.on_phy(payload, len(payload), _ms(now), self._quality(dst, _src, quality))
            if n:
                self._queue(now + ELABORATION_S, dst, bytes(node.out[:n]))
            self._arm(dst, node, now)
        elif dst in self.ports:
            self.ports[dst].inbox.append(payload)


def modem_emulator(modem):
    """A new emulator of the modem named as EmulatedBoard's `modem`."""
    if modem == "st7580":
        from smitp.st7580_emu import ST7580Emulator

        return ST7580Emulator()
    from smitp.hi_emu import CS_CRC, CS_SUM, HIEmulator

    return HIEmulator(CS_SUM if modem == "hi-sum" else CS_CRC, security="modem" if modem == "hi-sec" else "link")


def _ms(now):
    """Network seconds -> the integer milliseconds a node's timers count in."""
    return int(round(now * 1000.0))


def _read_all(fd):
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)



def in_process_meter(aca, serial, clock, keys=None, seed=0):
    """The firmware's meter node under CPython, on the simulation's clock;
    keys: (K1, K2) to provision, or None; seed: its RC slot choice."""
    from meter.model.datamodel import DataModel
    from meter import firmware_id
    from meter.app.auth import security_factory
    from meter.model.metering import Metering
    from meter.app.node import MeterNode
    from meter.storage import Store

    store = Store()
    if keys:
        from smitp.provision import provision_store

        provision_store(store, *keys)
    now = lambda: int(clock.now())  # noqa: E731
    model = DataModel(serial, aca, firmware_id("in-process"), store, now)
    Metering(model, store)  # the engines behind the registers and tables, registered on the model
    from meter.app.download import attach
    from meter.dlms.server import profile

    node = MeterNode(aca, model, security_factory(aca, store, model, now), store=store, seed=seed,
                     dlms=profile(model, store, aca))
    attach(node, model, store)  # REPROG services and the download area (model.owner(DOWNLOAD_STATE))
    return node


def serial_for(aca_hex):
    return "SN" + aca_hex[-6:]


def neighbourhood(topology, workdir=None, boards=True, keys=None, mcu=(), mcu_options=None, modems=None,
                 **board_options):
    """Network for a topology: meters as emulated boards (workdir for their
    flash images and logs; board_options go to EmulatedBoard) or in-process
    meters on a virtual clock. keys: {ACA hex: (K1, K2)} provisioned into the
    meters before they start. mcu: names of the meters that run on the
    emulated MCU instead (smitp.mcu_board, with mcu_options). modems: {node
    name: its board's modem} where it is not board_options' (EmulatedBoard `modem`).
    Returns (network, concentrator port)."""
    from smitp import provision
    from smitp import topology as topo_mod
    from smitp.emulated_board import EmulatedBoard

    topo = topo_mod.load(topology)
    net = Network(Medium(topology=topo), RealClock() if boards else VirtualClock())
    port = None
    for node in topo["nodes"]:
        name = node["name"]
        if node["role"] == "concentrator":
            port = net.add_concentrator(name)
        elif boards:
            if name in mcu:
                from smitp.mcu_board import McuBoard

                board = McuBoard(name, node["aca"], serial_for(node["aca"]), workdir, **(mcu_options or {}))
            else:
                opts = dict(board_options, **({"modem": modems[name]} if modems and name in modems else {}))
                board = EmulatedBoard(name, node["aca"], serial_for(node["aca"]), workdir, **opts)
            if keys and node["aca"] in keys:
                provision.provision_image(board.flash, *keys[node["aca"]])
            net.add_board(name, board)
        else:
            meter = in_process_meter(bytes.fromhex(node["aca"]), serial_for(node["aca"]), net.clock,
                                     keys.get(node["aca"]) if keys else None)
            net.add_meter(name, meter)
    if port is None:
        raise ValueError("the topology has no concentrator")
    return net, port
