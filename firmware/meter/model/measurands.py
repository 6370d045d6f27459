# Measurands: the last metrology sample as the meter sees it (no current
# through an open cut-off device), the net powers split into import and
# export, and the synchronized measurands (COMMAND 6).
import struct

from meter.model import registers as R
from meter.model.engine import Part


class Sample:
    """One metrology reading: per phase voltage (0.1 V), current (0.01 A),
    active power (W, import > 0) and reactive power (var, inductive > 0);
    frequency (0.01 Hz); `phases` in use (1 or 3)."""

    def __init__(self, phases=3):
        self.phases = phases
        self.v = [2300, 2300, 2300]
        self.i = [0, 0, 0]
        self.p = [0, 0, 0]
        self.q = [0, 0, 0]
        self.f = 5000

    def set(self, k, volts_d, amps_c, watts, vars_=0):
        self.v[k] = volts_d
        self.i[k] = amps_c
        self.p[k] = watts
        self.q[k] = vars_

    def from_power(self, import_w, export_w, volts_d=2300):
        """A single-phase reading from the old board contract power_w()."""
        self.phases = 1
        w = import_w - export_w
        self.set(0, volts_d, abs(w) * 1000 // volts_d, w)
        return self


class Measurands(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        self.s = Sample()
        self.pw = self.pe = self.qi = self.qe = 0  # active import, export; reactive import, export
        meter.model.register("measurands", self)

    def reg_get(self, reg):
        s = self.s
        if R.VOLTAGE_L1 <= reg <= R.VOLTAGE_L1 + 2:
            return s.v[reg - R.VOLTAGE_L1]
        if R.CURRENT_L1 <= reg <= R.CURRENT_L1 + 2:
            return s.i[reg - R.CURRENT_L1]
        if reg == R.ACTIVE_POWER:
            return self.pw - self.pe
        if reg == R.REACTIVE_POWER:
            return self.qi - self.qe
        if reg == R.POWER_FACTOR:
            p, q = self.pw - self.pe, self.qi - self.qe
            if p == 0 and q == 0:
                return 1000
            return int(1000 * p / (p * p + q * q) ** 0.5)
        if reg == R.FREQUENCY:
            return s.f
        return self.model.stored(reg)

    def take(self, s, closed):
        """Copy the sample; with the cut-off device open (not closed) nothing flows."""
        me = self.s
        n = s.phases
        me.phases = n
        me.f = s.f
        p = q = 0
        for k in range(3):
            me.v[k] = s.v[k] if k < n else 0
            me.i[k] = s.i[k] if k < n and closed else 0
            if k < n and closed:
                p += s.p[k]
                q += s.q[k]
        self.set_power(p, q)
        if p < 0:
            self.alarm(R.XS_EXPORT)

    def set_power(self, p, q):
        self.pw = p if p > 0 else 0
        self.pe = -p if p < 0 else 0
        self.qi = q if q > 0 else 0
        self.qe = -q if q < 0 else 0

    def freeze(self):
        """COMMAND 6: copy the measurands of this instant."""
        s = self.s
        self.model.set(R.SYNC_MEASURANDS, struct.pack(
            ">IHHHHHHii", self.meter.now(), s.v[0], s.v[1], s.v[2], s.i[0], s.i[1], s.i[2],
            self.pw - self.pe, self.qi - self.qe), persist=False)
