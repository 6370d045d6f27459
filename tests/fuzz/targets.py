# The entry points under test, each a meter (or a port of one) on a virtual
# clock that takes script operations (script.py). A target says how many
# faults its node's guard counted, reports a broken per-input invariant in
# `problem`, and lists the shared buffers whose size must never change.
import meterkit
from meter.optical import iec62056 as I
from meter.link import mac
from meter.optical import modef as F
from meter.optical import port as optical
from meter.phy import st7580 as ST
from meter.compat import ticks_add
from meter.storage import Store
from meter.link.bnodelink import ANodeLink, BNodeDevice
from meter import timers as T
import frames
import script as SC

T0_MS = (1 << 30) - 60000  # ticks a minute before they wrap
# a PLC frame the host side sends: a plain READ of the status word, to a neighbour
_PLC_READ = frames.plc(mac.aca_to_air(meterkit.ACA[0:5] + b"\x02"), b"", mac.DISC_RA7, False, 0, False, 0,
                       b"\x02\x00\x3f")
_PROFILE_DAYS = 2  # of load before the campaign: tables hold records to read
_templates = {}


def _template(keys):
    # One meter run for two days, kept: every fresh target starts from a copy
    # of its store (a reboot of it), which is cheaper than running it again.
    t = _templates.get(keys)
    if t is None:
        sim = meterkit.Sim(keys=keys)
        sim.run(_PROFILE_DAYS * meterkit.DAY, 900)
        t = _templates[keys] = (dict(sim.store._ram), sim.now(), sim.sample)
    return t


def _quiet(*parts):
    pass


def _ram_store(records):
    s = Store()
    s._ram = dict(records)
    return s


def copy_store(store):
    return _ram_store(store._ram)


class FuzzLink(ANodeLink):
    """The meter's B-Node link with a B-Node behind it that answers at once, every
    third answer with a flipped byte (a bad CRC the link must drop)."""

    def __init__(self):
        ANodeLink.__init__(self, T.BNODE_TIMEOUT_MS)
        self.device = BNodeDevice()
        self.count = 0

    def send(self, kind, data, off, n, now):
        ANodeLink.send(self, kind, data, off, n, now)
        k = self.to_send()
        back = bytearray(self.device.feed(bytes(self.tx[:k])))
        self.count += 1
        if back and self.count % 3 == 0:
            back[len(back) // 2] ^= 0x40
        self.receive(back, len(back))


class Node:
    """A meter node (MeterNode, its data model and engines) fed whole PHY
    payloads; keys: provisioned with the test keys or not."""


    def __init__(self, keys=True, store=None, t0=None):
        ram, now, sample = _template(keys)
        if store is None:
            store = _ram_store(ram)
        self.sim = meterkit.Sim(now if t0 is None else t0, store=store, sample=sample)
        self.node = self.sim.node
        # a B-Node that answers (and corrupts now and then): SETIC / WRITETABIC go the whole way
        self.node.bnode.link = FuzzLink()
        self.secure = self.node.secure
        self.fault = None  # the exception behind the last fault the guard counted
        d = getattr(self.node, "diag", None)
        if d is not None:
            d._log = _quiet  # the campaign reports faults itself
            counted = d.fault

            def fault(where, exc):
                self.fault = exc
                counted(where, exc)

            d.fault = fault
        self.keyed = keys
        self.keys = self.secure.keystore.keys() if self.secure else None
        self.now = T0_MS
        self.quality = None
        self.problem = None
        self.base = self.sizes()

    # ---- what the campaign asks of every target
    def faults(self):
        return self.node.stats.get("faults", 0)

    def last_fault(self):
        return self.fault

    def sizes(self):
        n = self.node
        nm = n.nm
        out = [len(n.out), len(n.app.resp), len(nm._apdu), len(nm._later), len(nm._recs), len(n.app.tables._scratch)]
        if self.secure is not None:
            out += [len(self.secure.resp), len(self.secure.work)]
        return out

    def apply(self, blob):
        for op, arg in SC.ops(blob):
            if op == SC.OP_DATA:
                self.data(arg)
            elif op == SC.OP_WAIT:
                self.wait(arg)
            elif op == SC.OP_LMON:
                self.ensure(arg)
            elif op == SC.OP_QUALITY:
                self.quality = arg
            elif op == SC.OP_REQUEST:
                self.request(arg)

    # ---- operations
    def ensure(self, mon):
        """The test keys in force and LMON = mon (the test's privilege, as
        provisioning would): inputs do not depend on the ones before."""
        s = self.secure
        if s is None:
            return
        ks = s.keystore
        staged = getattr(ks, "pending", None)
        if self.keyed and (ks.keys() is not self.keys or staged is not None and staged() is not None):
            ks.provision(meterkit.K1, meterkit.K2)  # also drops a staged pair
            self.keys = ks.keys()
        if s.lmon.value != mon or s.lmon.fault:
            s.lmon.set(mon)

    def data(self, b):
        self.sent(self.node.on_phy(b, len(b), self.now, self.quality))

    def wait(self, ms):
        self.now = ticks_add(self.now, ms)
        sim = self.sim  # the meter's own clock moves on too (its engines run once)
        sim.t_ms += ms
        sim.meter.advance(sim.t_ms, sim.sample)
        for _ in range(4):
            n = self.node.poll(self.now)
            if not n:
                break
            self.sent(n)

    def request(self, kind):
        pass

    def sent(self, n):
        """Every frame the node sends must decode."""
        if not n:
            return
        if n > mac.MAX_FRAME:
            self.problem = "sent a %d-byte frame" % n
            return
        try:
            mac.decode(mac.Frame(), bytes(self.node.out[0:n]), n)
        except Exception as e:
            self.problem = "sent a frame that does not decode (%s)" % e


class _Wire:
    """The modem's UART and pins, going nowhere; what is written is checked."""

    def __init__(self, target):
        self.target = target

    def value(self, level=None):
        return 1

    def write(self, buf, n=None):
        self.target.written(buf, len(buf) if n is None else n)
        return n


class _Board:
    def __init__(self, wire):
        self.treq = self.resetn = self.wire = wire

    def modem_uart(self):
        return self.wire


class Modem:
    """The meter's ST7580 driver fed the modem's byte stream by the
    firmware's own modem task (ModemPort.step: receive, poll, events, the
    node, the UART), with a meter node behind it."""

    def __init__(self):
        from meter.runtime import firmware as FW

        FW.log = _quiet  # the modem task logs resets and failures; the campaign needs none of it
        self.meter = Node(True)
        self.port = FW.ModemPort(_Board(_Wire(self)), self.meter.node, self.meter.sim.model)
        self.drv = self.port.drv
        self.now = T0_MS
        self.problem = None
        self.wrote = bytearray()  # the first bytes written since the last clear()
        self.base = self.sizes()

    def faults(self):
        return self.meter.faults()

    def last_fault(self):
        return self.meter.fault

    def sizes(self):
        d = self.drv
        return [len(self.port.buf), len(d._out)] + [len(b) for b in d._tx] + self.meter.sizes()

    def apply(self, blob):
        port = self.port
        room = len(port.buf)
        for op, arg in SC.ops(blob):
            if op == SC.OP_DATA:
                for p in range(0, len(arg), room):
                    k = min(room, len(arg) - p)
                    port.buf[0:k] = arg[p:p + k]
                    port.step(k, self.now)
                continue
            if op == SC.OP_WAIT:
                self.now = ticks_add(self.now, arg)
            elif op == SC.OP_REQUEST:
                self.request(arg)
            port.step(0, self.now)

    def request(self, kind):
        """The host side asks something of the modem."""
        d = self.drv
        k = kind & 3
        if k == 0:
            space = d.tx_space()
            if space is not None:
                space[0:len(_PLC_READ)] = _PLC_READ
                d.send(len(_PLC_READ))
        elif k == 1:
            d.configure()
        elif k == 2:
            d.mib_read(kind >> 2)
        else:
            d.request(kind, bytes(kind >> 4))

    def written(self, buf, n):
        """Every local frame written to the modem must be well-formed, and a
        PHY_Data.request must carry a PLC frame that decodes."""
        if len(self.wrote) < 64:
            self.wrote.extend(bytes(buf[0:n]))
        if not n or buf[0] != ST.STX:
            return  # ACK or NAK
        try:
            _stx, cmd, data = ST.decode_frame(bytes(buf[0:n]))
            if cmd == ST.CMD_PHY_DATA_REQ:
                mac.decode(mac.Frame(), data[1:], len(data) - 1)
        except Exception as e:
            self.problem = "wrote a bad frame to the modem (%s): %s" % (e, bytes(buf[0:n]).hex())


class _Port:
    # shared by the optical entries: a meter node behind the port
    def faults(self):
        return self.meter.faults()

    def last_fault(self):
        return self.meter.fault

    def sent_frames(self, out):
        """Every mode F frame the meter sends must carry a good CRC."""
        p = 0
        while out is not None and p < len(out):
            if out[p] != F.SOF:
                return  # the identification or a readout: not a mode F frame
            total = 2 + out[p + 1] + F.CRC_LEN if p + 1 < len(out) else 0
            good = total and p + total <= len(out) and out[p + 2] & F.CTL_METER
            if not good or not F.frame_ok(out[p:p + total], total):
                self.problem = "sent a bad mode F frame %s" % bytes(out[p:p + total]).hex()
                return
            p += total


class ModeF(_Port):
    """A mode F session (after the sign-on) over a meter node; a new one
    starts when a session ends (break, idle, lockout)."""


    def __init__(self):
        self.meter = Node(True)
        sim = self.meter.sim
        self.settings = I.Settings(sim.store)
        self.services = F.Services(self.meter.node, self.settings, sim.now)
        self.lockout = I.Lockout()
        self.now = T0_MS
        self.problem = None
        self.session = None
        self._start()
        self.base = self.sizes()

    def _start(self):
        self.session = F.ModeFSession(self.services, self.lockout)
        self.session.start(self.now)

    def sizes(self):
        s = self.session
        return [len(s._frame), len(self.services._nack), len(self.services.config.resp),
                len(self.services.local.resp), len(self.services.local.work)] + self.meter.sizes()

    def apply(self, blob):
        for op, arg in SC.ops(blob):
            if op == SC.OP_LMON:
                self.meter.ensure(arg)
                continue
            if self.session.done is not None:
                self._start()
            if op == SC.OP_DATA:
                self.session.receive(arg, self.now)
            elif op == SC.OP_WAIT:
                self.now = ticks_add(self.now, arg)
                self.session.poll(self.now)
            self.sent_frames(self.session.data_to_send())
        self.problem = self.problem or self.meter.problem


class Optical(_Port):
    """The optical port (IEC 62056-21 sign-on, mode C readout, mode F) of a
    meter node, bytes in at the current line settings."""


    def __init__(self):
        self.meter = Node(True)
        sim = self.meter.sim
        self.port = optical.build(self.meter.node, sim.model, sim.store, sim.now)
        self.now = T0_MS
        self.problem = None
        self.base = self.sizes()

    def sizes(self):
        return [len(self.port._rx)] + self.meter.sizes()

    def apply(self, blob):
        port = self.port
        for op, arg in SC.ops(blob):
            if op == SC.OP_LMON:
                self.meter.ensure(arg)
                continue
            if op == SC.OP_DATA:
                port.receive(arg, self.now)
            elif op == SC.OP_WAIT:
                self.now = ticks_add(self.now, arg)
                port.poll(self.now)
            self.sent_frames(port.data_to_send())
            while port.next_event() is not None:
                pass
        self.problem = self.problem or self.meter.problem


TARGETS = {
    "mac": lambda: Node(True),
    "sec_keys": lambda: Node(True),
    "sec_nokeys": lambda: Node(False),
    "app": lambda: Node(True),
    "nm": lambda: Node(True),
    "st7580": Modem,
    "optical": Optical,
    "modef": ModeF,
}


class Dlms(Node):
    """A meter node with the DLMS profile (meter/dlms): suite 0 keys, the LLS secret and
    a broadcast key provisioned, its HLS challenge fixed so that inputs can answer it.
    The script's L operation puts the floors of the client's and the broadcast's
    invocation counters back below apdus.IC_BASE (the test's privilege, as a fresh
    provisioning would): inputs do not depend on the ones before."""

    def __init__(self, store=None, t0=None):
        Node.__init__(self, True, store, t0)
        import dlmskit
        import apdus
        from meter.dlms import broadcast as B
        from meter.dlms.cl import ClServer
        from meter.dlms.server import XdlmsServer, provision, system_title

        st = self.sim.store
        provision(st, dlmskit.EK, dlmskit.AK, dlmskit.LLS)
        B.provision(st, apdus.BK)
        srv = XdlmsServer(self.sim.model, st, system_title(meterkit.ACA), lambda n: dlmskit.STOC)
        self.server = srv
        self.cl = self.node.dlms = ClServer(srv.handle, server=srv, on_broadcast=srv.broadcast.serve)
        self.floor = apdus.IC_BASE - 1
        self.base = self.sizes()

    def sizes(self):
        if getattr(self, "cl", None) is None:  # Node.__init__, before the profile is there
            return Node.sizes(self)
        cl, s = self.cl, self.server
        return Node.sizes(self) + [len(cl.req), len(cl.resp), len(cl.ans), len(cl.bcast), len(s.work), len(s.long),
                                   len(s.scratch), len(s.iv)]

    def ensure(self, mon):
        s = self.server
        s.cic = s.cic_saved = self.floor
        s.broadcast.bic = self.floor


TARGETS["dlms"] = Dlms
