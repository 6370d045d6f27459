"""B-Nodes on the host: the device behind a meter (an in-home display), in process or beside an
emulated board, and `smitp bnode`, which makes a meter of the demo feeder update its B-Node.

The B-Node's side of the local link is the firmware's own (meter.link.bnodelink.BNodeDevice):
it keeps what it received and answers ACK (messages received, the last KIND) or NACK.
- In process, the meter node's link hands each frame to the device at once (InProcessLink).
- Beside an emulated board, a thread sits on the harness side of the board's B-Node pty
  (EmulatedBoard(bnode=True)) and answers there (BNodeBeside).
"""

import contextlib
import os
import select
import tempfile
import threading
import time

from meter import attrs as A
from meter.link import bnodelink as L
from meter import timers as T
from meter.model import registers as R

HELP = ("make a meter of the demo feeder pass data to its B-Node (SETIC, or WRITETABIC with --table) "
        "and show what the B-Node received")
BEHAVIOURS = ("answer", "silent", "refuse")
REFUSE_CODE = 9  # the demo B-Node's code when it refuses


class DemoBNode(L.BNodeDevice):
    """The B-Node device of the demo: answers, stays silent, or refuses everything."""

    def __init__(self, behaviour="answer"):
        super().__init__(refuse=REFUSE_CODE if behaviour == "refuse" else 0)
        self.silent = behaviour == "silent"
        self.frames_in = 0

    def feed(self, data):
        answer = super().feed(data)
        if answer:
            self.frames_in += 1
        return b"" if self.silent else answer

    def report(self):
        """What it received, JSON-friendly."""
        return [{"kind": "table" if kind & 0x3F == L.KIND_TABLE else "set",
                 "authenticated": bool(kind & L.KIND_AUTH), "data": data.hex().upper()}
                for kind, data in self.received]


class InProcessLink(L.ANodeLink):
    """An in-process meter's local link: each frame reaches the device at once, its answer
    comes straight back."""

    def __init__(self, device, timeout_ms=T.BNODE_TIMEOUT_MS):
        super().__init__(timeout_ms)
        self.device = device

    def send(self, kind, data, off, n, now):
        super().send(kind, data, off, n, now)
        k = self.to_send()
        back = self.device.feed(bytes(self.tx[:k]))
        self.receive(back, len(back))


class BNodeBeside(threading.Thread):
    """The device on the harness side of an emulated board's B-Node pty; follows the board
    across resets and power cuts (the pty changes when it starts again)."""

    def __init__(self, board, device):
        super().__init__(name="%s B-Node" % board.name, daemon=True)
        self.board, self.device = board, device
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            fd = self.board.bnode_fd
            if fd is None:
                time.sleep(0.05)
                continue
            try:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    answer = self.device.feed(os.read(fd, 256))
                    if answer:
                        os.write(fd, answer)
            except OSError:  # the board went away with its pty: wait for the next one
                time.sleep(0.05)

    def stop(self):
        self._halt.set()
        self.join(1.0)


def attach(net, behaviour="answer"):
    """A B-Node behind every meter of `net` (in-process meters and emulated boards started
    with bnode=True): {meter name: device}."""
    devices = {}
    for name, node in net.meters.items():
        devices[name] = DemoBNode(behaviour)
        node.bnode.link = InProcessLink(devices[name])
    for name, slot in net.boards.items():
        devices[name] = DemoBNode(behaviour)
        beside = BNodeBeside(slot.board, devices[name])
        beside.start()
        net.__dict__.setdefault("bnode_threads", []).append(beside)
    return devices


def detach(net):
    for t in net.__dict__.pop("bnode_threads", []):
        t.stop()


@contextlib.contextmanager
def demo_feeder(emulated, keys=None, behaviour="answer"):
    """(network, concentrator port, {meter name: B-Node}) of the demo feeder: in-process
    meters on a virtual clock, or emulated boards (real time)."""
    from smitp import demo, topology
    from smitp.network import neighbourhood

    with tempfile.TemporaryDirectory(prefix="smitp-") as workdir:
        options = {"bnode": True} if emulated else {}
        net, port = neighbourhood(topology.demo_feeder(), workdir, boards=emulated, keys=keys, **options)
        try:
            if emulated:
                demo.wait_until_ready(net)
            devices = attach(net, behaviour)
            yield net, port, devices
        finally:
            detach(net)
            net.close()


def allow_plain(conc, aca, route):
    """Set control flag CF_BNODE_PLAIN with the write key: plain B-Node messages served."""
    flags = int.from_bytes(conc.read(aca, [R.CONTROL_FLAGS], route)[R.CONTROL_FLAGS], "big")
    value = (flags | 1 << R.CF_BNODE_PLAIN).to_bytes(2, "big")
    conc.write(aca, {R.CONTROL_FLAGS: value}, route, auth=True)


def cmd_bnode(args):
    """`smitp bnode`: the body of the command (options: add_options)."""
    from smitp import cli
    from smitp.aca import aca_text, parse_aca
    from smitp.concentrator import Concentrator

    aca = parse_aca(args.meter)
    data = bytes.fromhex(args.data)
    raw_keys, ring = cli._load_keys(args.keys)
    if args.auth or args.allow_plain:
        cli._check_entry(raw_keys, args.meter)
    cli._check_on_feeder(args)
    if args.port:
        raise ValueError("--port: smitp bnode runs on the demo feeder, whose B-Nodes it can show")
    route = cli._route(args)
    with demo_feeder(args.emulated, raw_keys, args.bnode) as (net, port, devices):
        conc = Concentrator(port, keyring=ring)
        if args.allow_plain:
            allow_plain(conc, aca, route)
        name = next(n for n, node in topology_names(net).items() if node == aca)
        t0 = net.clock.now()
        reply = conc.bnode_update(aca, data, args.table, args.entry, route, auth=args.auth,
                                  ecc=cli._ecc(args, write=True))
        took = net.clock.now() - t0
        device = devices[name]
    report = {"aca": aca_text(aca), "service": "WRITETABIC" if args.table is not None else "SETIC",
              "authenticated": bool(args.auth), "result": A.NAMES[A.ACK_B], "reply": reply.hex().upper(),
              "round_trip_s": round(took, 3), "emulated": bool(args.emulated), "bnode_received": device.report()}

    def text(rep):
        print("meter %s: %s, B-Node reply %s, %.3f s%s" % (rep["aca"], rep["result"], rep["reply"] or "-",
                                                          rep["round_trip_s"], "" if args.emulated else " simulated"))
        for i, item in enumerate(rep["bnode_received"]):
            print("B-Node received %d: %s %s%s" % (i + 1, item["kind"], item["data"],
                                                   "" if item["authenticated"] else " (plain: unverified)"))

    cli._emit(args, report, text)
    return 0


def topology_names(net):
    """{meter name: ACA (natural order)} of a network's meters and boards."""
    out = {name: node.aca for name, node in net.meters.items()}
    out.update({name: bytes.fromhex(slot.board.aca) for name, slot in net.boards.items()})
    return out


def add_options(sp, number, arg):
    """The options of `smitp bnode` beyond a meter service's (cli.add_meter_service, whose
    --emulated here means the demo feeder's meters as emulated boards, real MicroPython in real
    time, instead of in-process meters on a virtual clock); number and arg: the CLI's range
    option and argparse type makers."""
    sp.add_argument("--data", required=True, type=arg(_data_hex), help="the data for the B-Node, hex (1..%d bytes)"
                    % L.MAX_DATA)
    number(sp, "--table", 0, 255, "WRITETABIC: the B-Node table (0..255); default: SETIC")
    number(sp, "--entry", 0, 65535, "WRITETABIC: its first entry", default=0)
    sp.add_argument("--allow-plain", action="store_true",
                    help="first let the meter serve plain B-Node messages (control flag 15, written with the "
                         "write key: needs --keys); plain ones are refused otherwise (docs/security.md)")
    sp.add_argument("--bnode", choices=BEHAVIOURS, default="answer",
                    help="how the demo B-Nodes behave: answer (default), stay silent, or refuse (code %d)"
                         % REFUSE_CODE)


def _data_hex(text):
    s = text.replace(" ", "")
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        raise ValueError("not hex: %r" % text[:40]) from None
    if not 1 <= len(raw) <= L.MAX_DATA:
        raise ValueError("%d bytes, 1..%d" % (len(raw), L.MAX_DATA))
    return raw.hex()
