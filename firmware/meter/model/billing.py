# Maximum demand and billing periods. Demand: the average import power over
# each demand period (aligned on multiples of it), the highest of the billing
# period with the time of its period end, overall and per band. Billing: the
# period closes at the programmed local day and hour, on COMMAND 1, or at a
# contract switch: a billing data record, and the maximum demands start again.
import struct

from meter.model import events as E
from meter.model import registers as R
from meter.clock import month_days
from meter.compat import const
from meter.model.engine import NEVER, Part, next_multiple, ring
from meter.model.profiles import valid_period

# billing closure reasons
BILL_PROGRAMMED = const(1)
BILL_COMMAND = const(2)
BILL_CONTRACT = const(3)

_MAX_DEMANDS = (R.MAX_DEMAND, R.MAX_DEMAND_T1, R.MAX_DEMAND_T1 + 1, R.MAX_DEMAND_T1 + 2, R.MAX_DEMAND_T1 + 3)


def _billing_ok(raw):
    return 1 <= raw[0] <= 31 and raw[1] <= 23


class Billing(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        self.data = ring(meter.store, R.BILLING_DATA, "bd")
        self.tables = {R.BILLING_DATA: self.data}
        self._rec = bytearray(45)  # a billing data record
        self._dem = 0  # import Wms in the running demand period
        self.demand_due = NEVER  # the end of the demand period
        self.due = NEVER  # the programmed closure
        meter.model.register("billing", self)

    def reg_get(self, reg):
        if reg == R.VIRTUAL_BILLING:
            return bytes(self.record(self.meter.now(), 0))
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        if reg == R.DEMAND_PERIOD:
            return valid_period(raw)
        if reg == R.BILLING_SETTINGS:
            return _billing_ok(raw)
        return True

    def written(self, reg):
        if reg == R.DEMAND_PERIOD:
            self._dem = 0
        self.meter.changed(reg)

    def plan(self, t):
        self.demand_due = next_multiple(t, self.model.get(R.DEMAND_PERIOD))
        self.due = self.next_closure(t) if self.flag(R.CF_BILLING) else NEVER

    def accumulate(self, w, dt):
        """Import power w held for dt ms."""
        self._dem += w * dt

    def running_demand(self):
        """The running demand period's import so far over the whole period (W)."""
        return self._dem // (self.model.get(R.DEMAND_PERIOD) * 1000)

    def restart(self):
        """The supply came back: the demand period in progress starts again."""
        self._dem = 0

    def demand_end(self, t, band):
        m = self.model
        period = m.get(R.DEMAND_PERIOD)
        avg = self._dem // (period * 1000)
        self._dem = 0
        m.set(R.DEMAND_LAST, avg, persist=False)
        for reg in (R.MAX_DEMAND, R.MAX_DEMAND_T1 + band - 1):
            if avg > struct.unpack_from(">I", m.get(reg), 0)[0]:
                m.set(reg, struct.pack(">II", avg, t))
        self.demand_due = next_multiple(t, period)

    def next_closure(self, t):
        """The first programmed closure after t."""
        day, hour = self.model.get(R.BILLING_SETTINGS)
        lt = self.meter.clock.lt
        local = lt.local(t)
        y, m = local[0], local[1]
        for _ in range(3):
            tb = lt.utc(y, m, min(day, month_days(y, m)), hour)
            if tb > t:
                return tb
            m += 1
            if m > 12:
                y, m = y + 1, 1
        return NEVER

    def record(self, t, reason):
        """The billing data record of a closure at t."""
        e = self.meter.energy.e
        md = self.model.get(R.MAX_DEMAND)
        struct.pack_into(">IBIIIIIIIIII", self._rec, 0, t, reason, e[0], e[4], e[5], e[6], e[7], e[1], e[2], e[3],
                         struct.unpack_from(">I", md, 0)[0], struct.unpack_from(">I", md, 4)[0])
        return self._rec

    def close(self, reason, t=None):
        """Close the billing period: snapshot into billing data, reset the maximum demands."""
        meter = self.meter
        if t is None:
            t = meter.now()
        m = self.model
        self.data.append(self.record(t, reason))
        m.set(R.BILLING_COUNTER, (m.get(R.BILLING_COUNTER) + 1) & 0xFFFF)
        m.set(R.BILLING_LAST, t)
        for reg in _MAX_DEMANDS:
            m.set(reg, bytes(8))
        self.log(t, E.EV_BILLING, reason)
        if reason == BILL_COMMAND:
            self.alarm(R.XS_BILLING_COMMAND)
        if meter.t_ms is not None:
            self.due = self.next_closure(t) if self.flag(R.CF_BILLING) else NEVER
            meter.refresh()
