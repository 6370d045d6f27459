# Helpers for data-model tests, on both runtimes: a meter with its engines on
# a virtual clock, a load generator, and table-service requests at the
# application layer (the same bytes the concentrator sends).
import struct

from meter import attrs as A
from meter.model import registers as R
from meter.app.auth import security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import KeyStore
from meter.model.metering import Metering, Sample
from meter.app.node import MeterNode
from meter.app.download import attach as attach_download
from meter.storage import Store

ACA = b"\xa8\x04\x0a\x1e\x89\x01"
K1 = bytes(range(16))
K2 = bytes(range(16, 32))
# 2026-01-01 00:00 CET (a Thursday, a public holiday)
NEW_YEAR_2026 = 1767222000
HOUR = 3600
DAY = 86400


class Sim:
    """One meter on a virtual clock. now: seconds; load: W per phase."""

    def __init__(self, t0=NEW_YEAR_2026, store=None, keys=False, watts=1000, relay=None, sample=None, aca=ACA):
        self.store = store if store is not None else Store()
        if keys:
            KeyStore(self.store).provision(K1, K2)
        self.t_ms = t0 * 1000
        self.relay_moves = []
        self.aca = aca
        self.model = DataModel("SN-SIM", aca, "smitp-meter test", self.store, self.now, self._set_clock)
        self.meter = Metering(self.model, self.store, self.relay_moves.append if relay is None else relay)
        self.node = MeterNode(aca, self.model, security_factory(aca, self.store, self.model, self.now))
        self.app = self.node.app
        self.download = attach_download(self.node, self.model, self.store)
        if sample is None:
            self.sample = Sample()
            self.load(watts)
        else:
            self.sample = sample
        _bound_boundaries(self.meter)
        self.meter.advance(self.t_ms, self.sample)  # power-up

    def now(self):
        return self.t_ms // 1000

    def _set_clock(self, t):
        self.t_ms = t * 1000 + self.t_ms % 1000

    def load(self, watts, volts=2300, vars_=0, phases=(0, 1, 2)):
        s = self.sample
        for k in range(3):
            w = watts if k in phases else 0
            s.set(k, volts, abs(w) * 1000 // volts, w, vars_ if k in phases else 0)
        return self

    def voltage(self, k, volts):
        self.sample.v[k] = volts

    def run(self, seconds, step=60):
        """Advance `seconds` in steps of `step` (the engines cut at boundaries)."""
        end = self.t_ms + seconds * 1000
        # A counted loop: the engines may move this clock (a clock set), which
        # must not keep the run going for ever.
        for _ in range((seconds + step - 1) // step):
            self.t_ms = min(end, self.t_ms + step * 1000)
            self.meter.advance(self.t_ms, self.sample)
        if seconds > 0 and self.t_ms != end:
            raise AssertionError("the meter moved the clock during run(): at %d, not %d" % (self.t_ms, end))

    def run_until(self, t, step=60):
        self.run(t - self.now(), step)

    def reg(self, reg_id):
        return self.model.get(reg_id)

    # ---- application-layer requests
    def request(self, attr, data, grant=R.ACC_WRITE_KEY, room=128):
        req = bytes((attr,)) + data
        n = self.app.handle(req, 0, len(req), room, grant)
        return bytes(self.app.resp[0:n])

    def ok(self, attr, data, grant=R.ACC_WRITE_KEY):
        ans = self.request(attr, data, grant)
        if ans[0] != A.ACK_A:
            raise AssertionError("expected ACK, got %s" % ans.hex())
        return ans

    def command(self, code, params=b"", grant=R.ACC_WRITE_KEY):
        return self.request(A.COMMAND, bytes((code,)) + params, grant)

    def read(self, reg_id, grant=R.ACC_READ_KEY):
        ans = self.request(A.READ_REQ, struct.pack(">H", reg_id), grant)
        if ans[0] != A.READ_RESP:
            raise AssertionError("READ refused: %s" % ans.hex())
        return ans[1:]

    def write(self, reg_id, raw, grant=R.ACC_WRITE_KEY):
        return self.request(A.WRITE_REQ, struct.pack(">H", reg_id) + raw, grant)

    def records(self, table, t0=0, t1=0, grant=R.ACC_READ_KEY, room=112):
        """Every record of a table (or of [t0, t1)) by BUFF_SELECT and READTAB block reads."""
        ans = self.request(A.BUFF_SELECT_REQ, struct.pack(">HII", table, t0, t1), grant)
        if ans[0] != A.BUFF_SELECT_RESP:
            raise AssertionError("BUFF_SELECT refused: %s" % ans.hex())
        _t, _first, count, per = struct.unpack_from(">HIHB", ans, 1)
        size = R.BY_ID[table][R.R_SIZE]
        out = []
        for block in range(count + 1):  # each block but the last holds a record at least
            ans = self.request(A.READTAB_REQ, struct.pack(">HH", table, block), grant, room)
            if ans[0] != A.READTAB_RESP:
                raise AssertionError("READTAB refused: %s" % ans.hex())
            k = ans[5] & 0x7F
            for i in range(k):
                out.append(ans[6 + i * size:6 + (i + 1) * size])
            if not ans[5] & 0x80:
                break
        else:
            raise AssertionError("READTAB still says more after %d blocks of %d records" % (count + 1, count))
        if len(out) != count:
            raise AssertionError("selected %d records, read %d" % (count, len(out)))
        return out

    def unpack(self, table, rec):
        return struct.unpack(R.LAYOUTS[table][0], rec)

    def events(self, code=None):
        evs = [self.unpack(R.EVENT_LOG, r) for r in self.records(R.EVENT_LOG)]
        return [e for e in evs if code is None or e[1] == code]


def _bound_boundaries(meter):
    """Make a boundary loop fail instead of hang. Every boundary is planned
    after the second it fell due, so one advance() crosses at most one a
    second of the time it spans (+ 2: its first second, and one planned in
    the past). A tariff switch or billing date planned at the time it is
    handled would make advance() loop for ever."""
    advance, boundary = meter.advance, meter.boundary
    left = [0]

    def bounded_advance(now_ms, s):
        t_ms = meter.t_ms if meter.t_ms is not None else now_ms
        left[0] = max(0, now_ms - t_ms) // 1000 + 2
        advance(now_ms, s)

    def bounded_boundary(t):
        left[0] -= 1
        if left[0] < 0:
            raise AssertionError("boundary at %d handled again and again: one is planned at or before its time" % t)
        boundary(t)

    meter.advance = bounded_advance
    meter.boundary = bounded_boundary


def reboot(sim, off_s):
    """A power cut without warning: the objects are dropped (RAM is lost), the
    store stays; the meter starts again off_s later, with the same load."""
    return Sim(sim.t_ms // 1000 + off_s, store=sim.store, sample=sim.sample, aca=sim.aca)


def local_utc(y, m, d, hour=0, minute=0):
    from meter.clock import LocalTime

    lt = LocalTime()
    lt.configure(R.DEFAULTS[R.DST_RULES])
    return lt.utc(y, m, d, hour) + 60 * minute
