# Load profile and measurand profile: a record at each multiple of their
# periods (UTC). The load profile holds the interval energies and a status
# (PS_* below) that the other engines mark during the interval; the
# measurand profile the average voltage per phase, the lowest and highest
# phase voltage and the highest current of the interval. A capture that falls
# while the meter is off is not made.
import struct

from meter.model import registers as R
from meter.compat import const
from meter.model.engine import NEVER, Part, next_multiple, ring

# load profile status bits
PS_POWER = const(0x01)  # a power failure (or a start-up) in the interval
PS_CLOCK = const(0x02)  # the clock was set (beyond the synchronisation tolerance)
PS_DST = const(0x04)  # daylight saving time at the end of the interval
PS_CUTOFF = const(0x08)  # the cut-off device was open in the interval
PS_VOLTAGE = const(0x10)  # a phase voltage was out of limits or missing
PS_SHORT = const(0x20)  # the interval did not start at a capture boundary

# profile and demand periods a concentrator may set (s)
PERIODS = (60, 300, 600, 900, 1800, 3600)


def valid_period(raw):
    return int.from_bytes(raw, "big") in PERIODS


class Profiles(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        store = meter.store
        self.lp = ring(store, R.LOAD_PROFILE, "lp")
        self.mp = ring(store, R.MEASURAND_PROFILE, "mp")
        self.tables = {R.LOAD_PROFILE: self.lp, R.MEASURAND_PROFILE: self.mp}
        self._rec = bytearray(16)  # a load profile or measurand profile record
        self.due = NEVER  # the next load profile capture
        self.m_due = NEVER  # the next measurand profile capture
        self._ref = [0, 0, 0, 0]  # energies at the start of the interval
        self._status = PS_POWER | PS_SHORT
        self._m_start = 0  # ms
        self._vsum = [0, 0, 0]  # 0.1 V x ms
        self._vmin = self._vmax = self._imax = 0
        meter.model.register("profiles", self)

    def reg_get(self, reg):
        if reg == R.PROFILE_ENTRIES:
            return len(self.lp)
        if reg == R.PROFILE_LAST:
            lp = self.lp
            if not len(lp):
                return 0
            lp.read_into(lp.end - 1, self._rec, 0)
            return struct.unpack_from(">I", self._rec, 0)[0]
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg not in (R.PROFILE_PERIOD, R.MEASURAND_PERIOD) or valid_period(raw)

    def written(self, reg):
        if reg == R.PROFILE_PERIOD:
            self._status |= PS_SHORT
        self.meter.changed(reg)

    def mark(self, bits):
        """Flag the load profile interval in progress (PS_*)."""
        self._status |= bits

    def plan(self, t):
        m = self.model
        self.due = next_multiple(t, m.get(R.PROFILE_PERIOD)) if self.flag(R.CF_PROFILE) else NEVER
        self.m_due = next_multiple(t, m.get(R.MEASURAND_PERIOD)) if self.flag(R.CF_MEASURAND_PROFILE) else NEVER

    def start(self, e, now_ms):
        """The first intervals start now, from the energies e."""
        self._ref[:] = e[0:4]
        self._m_start = now_ms

    def restart(self, t):
        """The supply came back at t: the intervals in progress are incomplete."""
        self._status |= PS_POWER | PS_SHORT
        self._m_start = t * 1000
        for k in range(3):
            self._vsum[k] = 0

    def accumulate(self, s, dt):
        """The voltages of sample s held for dt ms."""
        v = s.v
        for k in range(3):
            self._vsum[k] += v[k] * dt

    def extremes(self, s):
        for k in range(s.phases):
            v = s.v[k]
            if self._vmin == 0 or v < self._vmin:
                self._vmin = v
            if v > self._vmax:
                self._vmax = v
            if s.i[k] > self._imax:
                self._imax = s.i[k]

    def capture(self, t):
        meter = self.meter
        e, ref = meter.energy.e, self._ref
        st = self._status | (PS_DST if meter.clock.dst else 0) | (PS_CUTOFF if meter.cutoff.state else 0)
        struct.pack_into(">IBHHHH", self._rec, 0, t, st, min(e[0] - ref[0], 0xFFFF), min(e[1] - ref[1], 0xFFFF),
                         min(e[2] - ref[2], 0xFFFF), min(e[3] - ref[3], 0xFFFF))
        self.lp.append(memoryview(self._rec)[0:13])
        ref[:] = e[0:4]
        self._status = PS_VOLTAGE if meter.quality.out() else 0
        self.due = next_multiple(t, self.model.get(R.PROFILE_PERIOD))

    def mcapture(self, t):
        dur = t * 1000 - self._m_start
        if dur > 0:
            a = [self._vsum[k] // dur for k in range(3)]
            struct.pack_into(">IHHHHHH", self._rec, 0, t, a[0], a[1], a[2], self._vmin, self._vmax, self._imax)
            self.mp.append(self._rec)
        self._m_start = t * 1000
        for k in range(3):
            self._vsum[k] = 0
        self._vmin = self._vmax = self._imax = 0
        self.m_due = next_multiple(t, self.model.get(R.MEASURAND_PERIOD))
