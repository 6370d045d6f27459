# Energy registers: import and export, active and reactive, in total and per
# tariff band, integrated in watt-milliseconds so that no fraction of a Wh is
# lost; the operating time; the daily energies at each local midnight and
# today's energies. The counters, their Wms rests and the operating time are
# one record on flash ("en"), written when the coordinator saves
# (docs/data-model.md "Persistence").
import struct

from meter.model import registers as R
from meter.compat import const
from meter.model.engine import NEVER, Part, ring
from meter.timers import ENERGY_PERSIST_S

_WMS_PER_WH = const(3600000)

# counters: totals, then import T1..T4, then export T1..T4
I_IMP = const(0)
I_EXP = const(1)
I_RIMP = const(2)
I_REXP = const(3)
I_T1 = const(4)
X_T1 = const(8)
_N = const(12)
_FMT = ">II" + "I" * 24  # saved at, operating time, (Wh, Wms rest) x 12


class Energy(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        model = meter.model
        self.days = ring(meter.store, R.DAILY_ENERGIES, "de")
        self.tables = {R.DAILY_ENERGIES: self.days}
        self._rec = bytearray(28)  # a daily energies record
        self.e = [0] * _N
        self.rest = [0] * _N  # Wms not yet a whole Wh
        self.saved_at = 0  # time of the last save (0: never saved)
        self.optime = 0
        self._opt_ms = 0
        self._day = [0, 0]  # import and export at the start of today
        self.due = NEVER  # the next local midnight
        raw = meter.store.get("en")
        if raw is not None and len(raw) == struct.calcsize(_FMT):
            f = struct.unpack(_FMT, raw)
            self.saved_at, self.optime = f[0], f[1]
            for k in range(_N):
                self.e[k] = f[2 + 2 * k]
                self.rest[k] = f[3 + 2 * k]
        else:  # the energy registers of earlier firmware
            self.e[I_IMP] = model.stored(R.ENERGY_IMPORT)
            self.e[I_EXP] = model.stored(R.ENERGY_EXPORT)
        model.register("energy", self)

    def reg_get(self, reg):
        e = self.e
        if reg == R.ENERGY_IMPORT:
            return e[I_IMP]
        if reg == R.ENERGY_EXPORT:
            return e[I_EXP]
        if R.ENERGY_IMPORT_T1 <= reg <= R.ENERGY_IMPORT_T1 + 7:
            return e[I_T1 + reg - R.ENERGY_IMPORT_T1]
        if reg == R.REACTIVE_IMPORT:
            return e[I_RIMP]
        if reg == R.REACTIVE_EXPORT:
            return e[I_REXP]
        if reg == R.ENERGY_TODAY_IMPORT:
            return e[I_IMP] - self._day[0]
        if reg == R.ENERGY_TODAY_EXPORT:
            return e[I_EXP] - self._day[1]
        if reg == R.OPERATING_TIME:
            return self.optime
        if reg == R.PERSIST_INTERVAL:
            return ENERGY_PERSIST_S
        return self.model.stored(reg)

    def integrate(self, dt, m, band):
        """dt ms of the powers of m (the measurands) in tariff band `band`."""
        self._add(I_IMP, m.pw, dt)
        self._add(I_EXP, m.pe, dt)
        self._add(I_RIMP, m.qi, dt)
        self._add(I_REXP, m.qe, dt)
        self._add(I_T1 + band - 1, m.pw, dt)
        self._add(X_T1 + band - 1, m.pe, dt)
        ms = self._opt_ms + dt
        self.optime += ms // 1000
        self._opt_ms = ms % 1000

    def _add(self, k, w, dt):
        if w:
            r = self.rest[k] + w * dt
            if r >= _WMS_PER_WH:
                wh = r // _WMS_PER_WH
                self.e[k] += wh
                r -= wh * _WMS_PER_WH
            self.rest[k] = r

    def start(self, t):
        """Power-up at t: today started at the last midnight record, if it is today's."""
        dl = self.days
        self._day[0], self._day[1] = self.e[I_IMP], self.e[I_EXP]
        if len(dl):
            dl.read_into(dl.end - 1, self._rec, 0)
            last = struct.unpack_from(">III", self._rec, 0)
            if last[0] > t - 86400 and last[0] <= t:
                self._day[0], self._day[1] = last[1], last[2]

    def plan(self, t):
        self.due = self.meter.clock.lt.next_midnight(t)

    def midnight(self, t):
        """A daily energies record: the readings at local midnight t."""
        e = self.e
        struct.pack_into(">IIIIIII", self._rec, 0, t, e[0], e[1], e[4], e[5], e[6], e[7])
        self.days.append(self._rec)
        self._day[0], self._day[1] = e[0], e[1]
        self.due = self.meter.clock.lt.next_midnight(t)

    def save(self, t):
        """Write the energy record (counters, Wms rests, operating time)."""
        vals = [t, self.optime]
        for k in range(_N):
            vals.append(self.e[k] & 0xFFFFFFFF)
            vals.append(self.rest[k])
        self.saved_at = t
        self.meter.store.put("en", struct.pack(_FMT, *vals))
