# Voltage quality: interruptions and variations per phase. A phase below the
# interruption threshold is out; its end logs an interruption. All phases out
# is a supply failure: the coordinator powers down, and at the return logs
# one interruption of all phases, counted short or long. A phase outside the
# variation limits for at least the minimum duration logs a variation with
# its extreme voltage.
import struct

from meter.model import events as E
from meter.model import profiles as P
from meter.model import registers as R
from meter.compat import const
from meter.model.engine import Part, ring

# voltage states of a phase
_OK = const(0)
_MISSING = const(1)
_UNDER = const(2)
_OVER = const(3)


def _interruption_ok(raw):
    return 1 <= raw[0] < 100


def _variation_ok(raw):
    return raw[0] < 100 < raw[1]


class Quality(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        store = meter.store
        self.interruptions = ring(store, R.INTERRUPTION_LOG, "il")
        self.variations = ring(store, R.VARIATION_LOG, "vl")
        self.tables = {R.INTERRUPTION_LOG: self.interruptions, R.VARIATION_LOG: self.variations}
        self._rec = bytearray(12)  # an interruption or variation record
        self._state = [_OK, _OK, _OK]
        self._start = [0, 0, 0]  # when each phase entered its state
        self._ext = [0, 0, 0]  # the extreme voltage of each phase's variation
        meter.model.register("quality", self)

    def reg_check(self, reg, raw):
        if reg == R.INTERRUPTION_SETTINGS:
            return _interruption_ok(raw)
        if reg == R.VARIATION_SETTINGS:
            return _variation_ok(raw)
        return True

    def status(self):
        b = 0
        for st in self._state:
            if st == _MISSING:
                b |= 1 << R.SW_PHASE_MISSING
            elif st != _OK:
                b |= 1 << R.SW_VOLTAGE_OUT
        return b

    def out(self):
        """Is a phase out of limits or missing now?"""
        for st in self._state:
            if st != _OK:
                return True
        return False

    def voltages(self, s, t):
        """Watch the voltages of sample s at t."""
        meter = self.meter
        m = self.model
        nom = m.get(R.NOMINAL_VOLTAGE)
        thr = nom * m.get(R.INTERRUPTION_SETTINGS)[0] // 100
        vs = m.get(R.VARIATION_SETTINGS)
        lo, hi = nom * vs[0] // 100, nom * vs[1] // 100
        n = s.phases
        missing = 0
        for k in range(n):
            if s.v[k] < thr:
                missing += 1
        if missing == n:
            if meter.down < 0 and meter.started:
                # the supply is gone: end what each phase had, then one outage of all
                for k in range(n):
                    if self._state[k] != _OK:
                        self._end(k, self._state[k], t)
                        self._state[k] = _OK
                meter.power_down(t)
            return
        if meter.down >= 0:
            meter.power_up(t, meter.down, False)
        for k in range(n):
            v = s.v[k]
            st = _MISSING if v < thr else _UNDER if v < lo else _OVER if v > hi else _OK
            old = self._state[k]
            if st != old:
                if old != _OK:
                    self._end(k, old, t)
                self._state[k] = st
                self._start[k] = t
                self._ext[k] = v
            elif st == _UNDER and v < self._ext[k] or st == _OVER and v > self._ext[k]:
                self._ext[k] = v
            if st != _OK:
                meter.profiles.mark(P.PS_VOLTAGE)

    def _end(self, k, st, t):
        dur = t - self._start[k]
        if st == _MISSING:
            self.interruption(self._start[k], dur, 1 << k)
            self.alarm(R.XS_PHASE_INTERRUPTED)
            self.log(t, E.EV_PHASE_INTERRUPTION, ((1 << k) << 24) | min(dur, 0xFFFFFF))
            return
        m = self.model
        if dur < struct.unpack_from(">H", m.get(R.VARIATION_SETTINGS), 2)[0]:
            return
        under = st == _UNDER
        reg = R.UNDERVOLTAGES if under else R.OVERVOLTAGES
        m.set(reg, (m.get(reg) + 1) & 0xFFFF)
        self.alarm(R.XS_UNDERVOLTAGE if under else R.XS_OVERVOLTAGE)
        struct.pack_into(">IIBBH", self._rec, 0, self._start[k], dur, k + 1, 1 if under else 2, self._ext[k])
        self.variations.append(self._rec)
        self.log(t, E.EV_UNDERVOLTAGE if under else E.EV_OVERVOLTAGE, ((k + 1) << 24) | min(dur, 0xFFFFFF))

    def interruption(self, start, dur, phases):
        """Count and log an interruption of `phases` (a mask) from start, dur s."""
        m = self.model
        long_s = struct.unpack_from(">H", m.get(R.INTERRUPTION_SETTINGS), 1)[0]
        if dur >= long_s:
            m.set(R.LONG_INTERRUPTIONS, (m.get(R.LONG_INTERRUPTIONS) + 1) & 0xFFFF)
            m.set(R.LONG_INTERRUPTION_TIME, (m.get(R.LONG_INTERRUPTION_TIME) + dur) & 0xFFFFFFFF)
        else:
            m.set(R.SHORT_INTERRUPTIONS, (m.get(R.SHORT_INTERRUPTIONS) + 1) & 0xFFFF)
        struct.pack_into(">IIB", self._rec, 0, start, dur, phases)
        self.interruptions.append(memoryview(self._rec)[0:9])
