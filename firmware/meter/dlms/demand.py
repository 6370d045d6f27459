# COSEM objects over the demand and the load limitation of the data model:
# Extended register (4) over the maximum demand registers, Demand register (5)
# over the billing engine's running demand period, Limiter (71) over contract
# 1's power limit and the load modulation settings of the cut-off engine
# (meter/model/billing.py, cutoff.py). No state of their own: every value is
# read from, and every write goes through, the register's owner.
import struct

from meter.compat import const
from meter.model import registers as R
from meter.model.engine import NEVER
from meter.dlms import axdr as X
from meter.dlms import base as B

EXTENDED_REGISTER = const(4)
DEMAND_REGISTER = const(5)
LIMITER = const(71)

_W = const(27)  # unit W (Blue Book table of units)
_CONTRACT = ">IIHBI"  # registers.LAYOUTS[CONTRACT_1]
_LM = ">BHBHB"  # registers.LAYOUTS[LOAD_MODULATION]
_POWER = b"\x01\x00\x01\x07\x00\xff"  # the monitored value: active power, 1.0.1.7.0.255
DISCONNECTOR_SCRIPTS = b"\x00\x00\x0a\x00\x6a\xff"  # 0.0.10.0.106.255 (meter/dlms/calendar.py)


def source(cls, attr, reg):
    """(register, struct field or -1) behind attribute attr of an object of
    class cls over register reg; None: no register (docs/cosem.md, tests)."""
    if cls == EXTENDED_REGISTER:
        return (reg, 0) if attr == 2 else ((reg, 1) if attr == 5 else None)
    if cls == DEMAND_REGISTER:
        return (R.DEMAND_LAST, -1) if attr == 3 else ((R.DEMAND_PERIOD, -1) if attr == 8 else None)
    if cls == LIMITER:
        return {3: (R.POWER_LIMIT, -1), 4: (R.CONTRACT_1, 1), 5: (R.CONTRACT_1, 1), 6: (R.LOAD_MODULATION, 1),
                7: (R.LOAD_MODULATION, 3)}.get(attr)
    return None


def _scaler_unit(w):
    w.group(X.STRUCT, 2)
    w.value(X.S8, 0)
    w.value(X.ENUM, _W)


class Demand:
    """Classes 4, 5 and 71 on one data model."""

    def __init__(self, model):
        self.model = model

    def _billing(self):
        return self.model.owner(R.DEMAND_LAST)  # the metering's billing engine, or None

    def get(self, cls, reg, attr, w):
        m = self.model
        if cls == EXTENDED_REGISTER:  # value, scaler_unit, status, capture_time
            v, t = struct.unpack(">II", m.get(reg))
            if attr == 2:
                w.value(X.U32, v)
            elif attr == 3:
                _scaler_unit(w)
            elif attr == 4:
                w.value(X.U8, 0)  # no status of its own
            elif t:
                B.date_time(w, t, 0)
            else:
                B.pattern(w, 0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, B.NOT_SPECIFIED)  # no demand yet
            return B.OK
        if cls == DEMAND_REGISTER:
            return self._demand(attr, w)
        return self._limiter(attr, w)

    def _demand(self, attr, w):
        b = self._billing()
        m = self.model
        if b is None:
            return B.UNAVAILABLE
        period = m.get(R.DEMAND_PERIOD)
        if attr == 2:  # the running period's energy so far over the whole period
            w.value(X.U32, b.running_demand())
        elif attr == 3:
            w.value(X.U32, m.get(R.DEMAND_LAST))
        elif attr == 4:
            _scaler_unit(w)
        elif attr == 5:
            w.value(X.U8, 0)
        elif attr == 6 or attr == 7:  # capture_time, start_time_current: the running period's start
            if b.demand_due < NEVER:
                B.date_time(w, b.demand_due - period, 0)
            else:  # the metering has not started
                B.pattern(w, 0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, B.NOT_SPECIFIED)
        elif attr == 8:
            w.value(X.U32, period)
        else:
            w.value(X.U16, 1)  # number_of_periods
        return B.OK

    def _limiter(self, attr, w):
        m = self.model
        if attr == 2:  # monitored value: attribute 2 of the active power register
            w.group(X.STRUCT, 3)
            w.value(X.U16, 3)
            w.octets(_POWER)
            w.value(X.S8, 2)
        elif attr == 3:
            w.value(X.S32, m.get(R.POWER_LIMIT))
        elif attr == 4 or attr == 5:  # no emergency threshold: the normal one
            w.value(X.S32, B.field(m, R.CONTRACT_1, _CONTRACT, 1))
        elif attr == 6 or attr == 7:
            w.value(X.U32, B.field(m, R.LOAD_MODULATION, _LM, 1 if attr == 6 else 3))
        elif attr == 8:  # emergency profile: none
            w.group(X.STRUCT, 3)
            w.value(X.U16, 0)
            B.pattern(w, 0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, B.NOT_SPECIFIED)
            w.value(X.U32, 0)
        elif attr == 9:
            w.group(X.ARRAY, 0)
        elif attr == 10:
            w.value(X.BOOL, 0)
        else:  # actions: open the cut-off device over the threshold, close it under
            w.group(X.STRUCT, 2)
            for sel in (1, 2):
                w.group(X.STRUCT, 2)
                w.octets(DISCONNECTOR_SCRIPTS)
                w.value(X.U16, sel)
        return B.OK

    def set(self, cls, attr, buf, off, end):
        """SET of a writable attribute (Demand register period, Limiter
        threshold_normal and durations): through the register's owner."""
        m = self.model
        v, at = X.read_int(buf, off, end)
        if cls == DEMAND_REGISTER and attr == 8 and buf[off] == X.U32:
            if v > 0xFFFF:
                return B.OTHER
            return B.write(m, R.DEMAND_PERIOD, v.to_bytes(2, "big"))
        if cls == LIMITER and attr == 4 and buf[off] == X.S32:
            if v < 0:
                return B.OTHER
            return B.write(m, R.CONTRACT_1, B.with_field(m, R.CONTRACT_1, _CONTRACT, 1, v))
        if cls == LIMITER and (attr == 6 or attr == 7) and buf[off] == X.U32:
            if v > 0xFFFF:
                return B.OTHER
            return B.write(m, R.LOAD_MODULATION, B.with_field(m, R.LOAD_MODULATION, _LM, 1 if attr == 6 else 3, v))
        return B.TYPE_UNMATCHED

    def action(self, cls, reg, method, now):
        """Extended register reset (the maximum demand starts again, as at a
        billing closure); Demand register reset and next_period. Each is
        logged as a settings change."""
        b = self._billing()
        if b is None:
            return B.UNAVAILABLE
        m = self.model
        if cls == EXTENDED_REGISTER:
            m.set(reg, bytes(8))
        elif method == 1:
            b.restart()
            m.set(R.DEMAND_LAST, 0, persist=False)
            reg = R.DEMAND_LAST
        else:
            b.demand_end(now, b.meter.tariffs.band)
            b.meter.refresh()
            reg = R.DEMAND_LAST
        b.meter.changed(reg)
        return B.OK
