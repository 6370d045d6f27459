# The meter's engines behind the register table, sans-io: the caller gives
# the time and the metrology sample, these objects do the rest.
#
#   energies per tariff band (import, export, reactive), measurands
#   maximum demand, billing periods (programmed, on command, at a contract
#   switch), daily energies, load profile and measurand profile
#   voltage interruptions and variations, power down / power up
#   the cut-off device with load modulation, clock and DST, events
#
# advance(now_ms, sample): the sample (a Sample) holds over the interval since
# the previous call; the interval is cut at every boundary (tariff switch,
# capture, demand period end, midnight, billing closure, contract switch,
# load-modulation deadline), so a step of a second (the firmware) and a step
# of an hour (a simulated year) give the same registers.
#
# Persistence (docs/data-model.md "Persistence"): energies every
# ENERGY_PERSIST_S and at a measured power failure; profiles and logs at each
# record; settings, counters and states when they change.
import struct

from meter import events as E
from meter import registers as R
from meter import tariff as TF
from meter.clock import LocalTime, month_days
from meter.compat import const, ticks_diff
from meter.ring import Array, Ring
from meter.timers import ENERGY_PERSIST_S

_WMS_PER_WH = const(3600000)
_NEVER = 1 << 40

# energy counters: totals, then import T1..T4, then export T1..T4
I_IMP = const(0)
I_EXP = const(1)
I_RIMP = const(2)
I_REXP = const(3)
I_T1 = const(4)
X_T1 = const(8)
_N_ENERGY = const(12)
_EN_FMT = ">II" + "I" * 24  # saved at, operating time, (Wh, Wms rest) x 12

# boundaries
_D_DEMAND = const(0)
_D_PROFILE = const(1)
_D_MPROFILE = const(2)
_D_DAY = const(3)
_D_BILLING = const(4)
_D_CONTRACT = const(5)
_D_TARIFF = const(6)
_D_LM = const(7)

# load profile status bits
PS_POWER = const(0x01)  # a power failure (or a start-up) in the interval
PS_CLOCK = const(0x02)  # the clock was set (beyond the synchronisation tolerance)
PS_DST = const(0x04)  # daylight saving time at the end of the interval
PS_CUTOFF = const(0x08)  # the cut-off device was open in the interval
PS_VOLTAGE = const(0x10)  # a phase voltage was out of limits or missing
PS_SHORT = const(0x20)  # the interval did not start at a capture boundary

# cut-off device: state and reasons
CUT_CLOSED = const(0)
CUT_OPEN = const(1)
WHY_COMMAND = const(1)
WHY_LOAD = const(2)
WHY_AUTO = const(3)
# billing closure reasons
BILL_PROGRAMMED = const(1)
BILL_COMMAND = const(2)
BILL_CONTRACT = const(3)
# clock change kinds (last clock change register)
CLOCK_SET = const(1)
CLOCK_SYNC = const(2)
# voltage states of a phase
_V_OK = const(0)
_V_MISSING = const(1)
_V_UNDER = const(2)
_V_OVER = const(3)

_PERIODS = (60, 300, 600, 900, 1800, 3600)


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


def _next_mult(t, p):
    return (t // p + 1) * p


def _be(v, n):
    return v.to_bytes(n, "big")


class Metering:
    """The engines of one meter over its DataModel and Store. set_relay:
    callable(open) driving the cut-off device, or None."""

    def __init__(self, model, store, set_relay=None):
        self.model = model
        self.store = store
        self.set_relay = set_relay
        model.meter = self
        rings = {}
        for reg, name in ((R.LOAD_PROFILE, "lp"), (R.MEASURAND_PROFILE, "mp"), (R.EVENT_LOG, "ev"),
                          (R.BILLING_DATA, "bd"), (R.DAILY_ENERGIES, "de"), (R.INTERRUPTION_LOG, "il"),
                          (R.VARIATION_LOG, "vl")):
            pages, per, batch = R.RINGS[reg]
            rings[reg] = Ring(store, name, R.BY_ID[reg][R.R_SIZE], pages, per, batch)
        for reg in (R.DAY_PROFILES_1, R.WEEK_PROGRAMS_1, R.SEASONS_1, R.DAY_PROFILES_2, R.WEEK_PROGRAMS_2,
                    R.SEASONS_2, R.HOLIDAYS):
            rings[reg] = Array(store, "t%04x" % reg, R.BY_ID[reg][R.R_SIZE], R.CAPACITY[reg], R.DEFAULTS[reg])
        model.tables = rings
        self.tables = rings
        self.events = E.EventLog(model, rings[R.EVENT_LOG])
        self.tariff = TF.Tariff(model, rings[R.DAY_PROFILES_1], rings[R.WEEK_PROGRAMS_1], rings[R.SEASONS_1],
                                rings[R.HOLIDAYS])
        self.lt = LocalTime()
        self._configure_dst()
        self._rec = bytearray(64)  # scratch for records (largest: billing data, 45 bytes)
        # energies
        self.e = [0] * _N_ENERGY
        self._rest = [0] * _N_ENERGY
        self.saved_at = 0
        self.optime = 0
        self._opt_ms = 0
        raw = store.get("en")
        if raw is not None and len(raw) == struct.calcsize(_EN_FMT):
            f = struct.unpack(_EN_FMT, raw)
            self.saved_at, self.optime = f[0], f[1]
            for k in range(_N_ENERGY):
                self.e[k] = f[2 + 2 * k]
                self._rest[k] = f[3 + 2 * k]
        else:  # the energy registers of earlier firmware
            self.e[I_IMP] = model.get(R.ENERGY_IMPORT)
            self.e[I_EXP] = model.get(R.ENERGY_EXPORT)
        pd = store.get("pd")
        self._pd = struct.unpack(">I", pd)[0] if pd and len(pd) == 4 else 0
        # time
        self.t_ms = None  # the meter's time; None until the first advance()
        self._due = [_NEVER] * 8
        self._next_ms = 0
        self.band = 1
        self.dst = 0
        # demand
        self._dem = 0  # import Wms in the running demand period
        # profiles
        self._p_ref = [0, 0, 0, 0]
        self._p_status = PS_POWER | PS_SHORT
        self._m_start = 0
        self._vsum = [0, 0, 0]
        self._vmin = self._vmax = self._imax = 0
        # today
        self._day = [0, 0]
        # cut-off device
        cs = model.get(R.CUTOFF_STATE)
        self.cut_state, self.cut_reason = cs[0], cs[1]
        self._cut_since = struct.unpack_from(">I", cs, 2)[0]
        self._auto = 0  # automatic reconnections since the last command or midnight
        self._over_since = -1
        self._over_logged = False
        # voltage quality
        self._vstate = [_V_OK, _V_OK, _V_OK]
        self._vstart = [0, 0, 0]
        self._vext = [0, 0, 0]
        self.down = -1  # time of a measured supply failure still going on
        # last sample
        self.s = Sample()
        self._pw = self._pe = self._qi = self._qe = 0
        self.xs = model.get(R.EXT_STATUS)
        self._faults = store.faults
        model.attach(self, _OWNED)
        for reg in _SETTINGS:
            model.on_write(reg, self._written)
        for reg, fn in _CHECKS:
            model.checks[reg] = fn
        if self.cut_state == CUT_OPEN and set_relay:
            set_relay(True)

    # ---- registers
    def reg_get(self, r):
        e = self.e
        if r == R.ENERGY_IMPORT:
            return e[I_IMP]
        if r == R.ENERGY_EXPORT:
            return e[I_EXP]
        if R.ENERGY_IMPORT_T1 <= r <= R.ENERGY_IMPORT_T1 + 7:
            return e[I_T1 + r - R.ENERGY_IMPORT_T1]
        if r == R.REACTIVE_IMPORT:
            return e[I_RIMP]
        if r == R.REACTIVE_EXPORT:
            return e[I_REXP]
        if r == R.CLOCK:
            return self.now()
        if r == R.STATUS_WORD:
            return self.model.status | self._live_status()
        if r == R.EXT_STATUS:
            return self.xs
        s = self.s
        if R.VOLTAGE_L1 <= r <= R.VOLTAGE_L1 + 2:
            return s.v[r - R.VOLTAGE_L1]
        if R.CURRENT_L1 <= r <= R.CURRENT_L1 + 2:
            return s.i[r - R.CURRENT_L1]
        if r == R.ACTIVE_POWER:
            return self._pw - self._pe
        if r == R.REACTIVE_POWER:
            return self._qi - self._qe
        if r == R.POWER_FACTOR:
            p, q = self._pw - self._pe, self._qi - self._qe
            if p == 0 and q == 0:
                return 1000
            return int(1000 * p / (p * p + q * q) ** 0.5)
        if r == R.FREQUENCY:
            return s.f
        if r == R.LOCAL_TIME:
            lt = self.lt.local(self.now())
            return struct.pack(">HBBBBBBB", lt[0], lt[1], lt[2], lt[3], lt[4], lt[5], lt[6], lt[7])
        if r == R.ENERGY_TODAY_IMPORT:
            return e[I_IMP] - self._day[0]
        if r == R.ENERGY_TODAY_EXPORT:
            return e[I_EXP] - self._day[1]
        if r == R.PROFILE_ENTRIES:
            return len(self.tables[R.LOAD_PROFILE])
        if r == R.PROFILE_LAST:
            lp = self.tables[R.LOAD_PROFILE]
            if not len(lp):
                return 0
            lp.read_into(lp.end - 1, self._rec, 0)
            return struct.unpack_from(">I", self._rec, 0)[0]
        if r == R.VIRTUAL_BILLING:
            return bytes(self._billing_record(self.now(), 0))
        if r == R.CURRENT_BAND:
            return self.band
        if r == R.CURRENT_SEASON:
            return self.tariff.season
        if r == R.POWER_LIMIT:
            return self._limit()
        if r == R.OVER_LIMIT_TIME:
            return 0 if self._over_since < 0 else min(0xFFFF, self.now() - self._over_since)
        if r == R.EVENT_COUNT:
            return self.events.ring.end
        if r == R.OPERATING_TIME:
            return self.optime
        if r == R.FLASH_WRITES:
            return self.store.writes
        if r == R.PERSIST_INTERVAL:
            return ENERGY_PERSIST_S
        if r == R.SECURITY_STATE:
            ks = self.model.keystore
            return (1 if ks is not None and ks.provisioned else 0) | (4 if self.model.get(R.READING_MODE) else 0)
        return 0

    def reg_put(self, r, raw):
        """A concentrator write of an owned register; returns a NACK code or 0."""
        if r == R.CLOCK:
            self.set_clock(int.from_bytes(raw, "big"), CLOCK_SET)
            return 0
        return 0

    def _live_status(self):
        b = 0
        if self.cut_state == CUT_OPEN:
            b |= 1 << R.SW_CUTOFF_OPEN
            if self.cut_reason == WHY_LOAD and not self._auto_allowed():
                b |= 1 << R.SW_LM_LOCKED
        if self._over_since >= 0:
            b |= 1 << R.SW_OVER_LIMIT
        for st in self._vstate:
            if st == _V_MISSING:
                b |= 1 << R.SW_PHASE_MISSING
            elif st != _V_OK:
                b |= 1 << R.SW_VOLTAGE_OUT
        if self.dst:
            b |= 1 << R.SW_DST
        if self.events.pending:
            b |= 1 << R.SW_SPONT_PENDING
        if self.xs:
            b |= 1 << R.SW_ALARM
        if self._contract2()[4]:
            b |= 1 << R.SW_CONTRACT_PENDING
        if self.model.get(R.READING_MODE):
            b |= 1 << R.SW_AUTH_READING
        return b

    def _written(self, reg):
        # a settings register was written by the concentrator
        if reg == R.DST_RULES or reg == R.CONTROL_FLAGS:
            self._configure_dst()
        if reg == R.PROFILE_PERIOD:
            self._p_status |= PS_SHORT
        if reg == R.DEMAND_PERIOD:
            self._dem = 0
        if reg == R.EVENT_MASK or reg == R.SPONT_MASK:
            self.events._check_pending()
        self.changed(reg)

    def changed(self, reg):
        """A setting or a tariff table changed: log it and plan again."""
        t = self.now()
        self.events.log(t, E.EV_SETTINGS, reg)
        self.alarm(R.XS_SETTINGS_CHANGED)
        if self.t_ms is not None:
            self._plan(t)

    def _configure_dst(self):
        try:
            self.lt.configure(self.model.get(R.DST_RULES), (self.model.get(R.CONTROL_FLAGS) >> R.CF_DST) & 1)
        except ValueError:
            self.lt.configure(R.DEFAULTS[R.DST_RULES])

    # ---- time
    def now(self):
        if self.t_ms is None:
            return self.model.clock()
        return self.t_ms // 1000

    def alarm(self, bit):
        if not (self.xs >> bit) & 1:
            self.xs |= 1 << bit
            self.model.set(R.EXT_STATUS, self.xs)

    def _flag(self, flags):
        f = self.model.get(R.CONTROL_FLAGS)
        return (f >> flags) & 1

    def _plan(self, t):
        """Compute every boundary after t."""
        m = self.model
        due = self._due
        due[_D_DEMAND] = _next_mult(t, m.get(R.DEMAND_PERIOD))
        due[_D_PROFILE] = _next_mult(t, m.get(R.PROFILE_PERIOD)) if self._flag(R.CF_PROFILE) else _NEVER
        due[_D_MPROFILE] = _next_mult(t, m.get(R.MEASURAND_PERIOD)) if self._flag(R.CF_MEASURAND_PROFILE) else _NEVER
        due[_D_DAY] = self.lt.next_midnight(t)
        due[_D_BILLING] = self._next_billing(t) if self._flag(R.CF_BILLING) else _NEVER
        act = self._contract2()[4]
        due[_D_CONTRACT] = max(act, t) if act else _NEVER
        self._update_band(t)
        self._plan_lm()

    def _refresh(self):
        self._next_ms = min(self._due) * 1000

    def _update_band(self, t):
        lt = self.lt.local(t)
        band, mins = self.tariff.band(lt)
        self.band = band
        if self.dst != lt[7]:
            if self.t_ms is not None and self._started:
                self.events.log(t, E.EV_DST, self.lt.offset(t) // 60)
            self.dst = lt[7]
        nxt = self.lt.next_midnight(t)
        if mins >= 0:
            nxt = min(nxt, t - lt[5] + 60 * mins)
        dc = self.lt.next_change(t)
        if dc is not None and dc < nxt:
            nxt = dc
        self._due[_D_TARIFF] = nxt
        self._refresh()

    def _next_billing(self, t):
        day, hour = self.model.get(R.BILLING_SETTINGS)
        lt = self.lt.local(t)
        y, m = lt[0], lt[1]
        for _ in range(3):
            tb = self.lt.utc(y, m, min(day, month_days(y, m)), hour)
            if tb > t:
                return tb
            m += 1
            if m > 12:
                y, m = y + 1, 1
        return _NEVER

    def _contract2(self):
        return TF.contract_fields(self.model.get(R.CONTRACT_2))

    # ---- the main entry
    _started = False

    def advance(self, now_ms, s):
        """Take the sample `s` as valid since the previous call, up to now_ms
        (the meter's wall-clock time, ms since 1970)."""
        if self.t_ms is None:
            self._start(now_ms, s)
            return
        if now_ms < self.t_ms:  # the time base went back: take it as a clock change
            self.set_clock(now_ms // 1000, CLOCK_SET)
            return
        t0 = self.t_ms // 1000
        self._take(s, t0)
        if self.down >= 0:
            self.t_ms = now_ms
            return
        self._check_limit(t0)
        while True:
            end = now_ms if now_ms < self._next_ms else self._next_ms
            if end < self.t_ms:  # a boundary planned in the past (an activation date, say)
                end = self.t_ms
            dt = end - self.t_ms
            if dt > 0:
                self._integrate(dt)
            self.t_ms = end
            if end < self._next_ms:
                break
            self._boundary(end // 1000)
        if now_ms - self.saved_at * 1000 >= 1000 * ENERGY_PERSIST_S:
            self.save()
        if self.store.faults != self._faults:
            self._faults = self.store.faults
            self.model.status |= 1 << R.SW_STORAGE_FAULT
            self.alarm(R.XS_STORAGE_FAULT)
            self.events.log(self.now(), E.EV_STORAGE_FAULT, self._faults)
        if self.events.ring.wrapped:
            self.events.ring.wrapped = False
            self.alarm(R.XS_LOG_WRAPPED)

    def _take(self, s, t):
        """Copy the sample, split the power, watch the voltages (at t)."""
        me = self.s
        n = s.phases
        me.phases = n
        me.f = s.f
        p = q = 0
        closed = self.cut_state == CUT_CLOSED
        for k in range(3):
            me.v[k] = s.v[k] if k < n else 0
            me.i[k] = s.i[k] if k < n and closed else 0
            if k < n and closed:
                p += s.p[k]
                q += s.q[k]
        self._set_power(p, q)
        if p < 0:
            self.alarm(R.XS_EXPORT)
        self._extremes()
        self._voltages(t)

    def _set_power(self, p, q):
        self._pw = p if p > 0 else 0
        self._pe = -p if p < 0 else 0
        self._qi = q if q > 0 else 0
        self._qe = -q if q < 0 else 0

    def _integrate(self, dt):
        self._add(I_IMP, self._pw, dt)
        self._add(I_EXP, self._pe, dt)
        self._add(I_RIMP, self._qi, dt)
        self._add(I_REXP, self._qe, dt)
        self._add(I_T1 + self.band - 1, self._pw, dt)
        self._add(X_T1 + self.band - 1, self._pe, dt)
        self._dem += self._pw * dt
        ms = self._opt_ms + dt
        self.optime += ms // 1000
        self._opt_ms = ms % 1000
        v = self.s.v
        for k in range(3):
            self._vsum[k] += v[k] * dt

    def _add(self, k, w, dt):
        if w:
            r = self._rest[k] + w * dt
            if r >= _WMS_PER_WH:
                wh = r // _WMS_PER_WH
                self.e[k] += wh
                r -= wh * _WMS_PER_WH
            self._rest[k] = r

    def _boundary(self, t):
        due = self._due
        if due[_D_DEMAND] <= t:
            self._demand_end(t)
        if due[_D_PROFILE] <= t:
            self._capture(t)
        if due[_D_MPROFILE] <= t:
            self._mcapture(t)
        if due[_D_DAY] <= t:
            self._midnight(t)
        if due[_D_BILLING] <= t:
            self.close_billing(BILL_PROGRAMMED, t)
        if due[_D_CONTRACT] <= t:
            self._switch_contract(t)
        if due[_D_TARIFF] <= t:
            self._update_band(t)
        if due[_D_LM] <= t:
            self._lm_deadline(t)
            if due[_D_LM] <= t:
                due[_D_LM] = t + 1
        self._refresh()

    # ---- power up / down
    def _start(self, now_ms, s):
        t = now_ms // 1000
        self.t_ms = now_ms
        self._take(s, t)
        self._plan(t)
        self._started = True
        m = self.model
        m.set(R.POWER_UPS, (m.get(R.POWER_UPS) + 1) & 0xFFFF)
        dl = self.tables[R.DAILY_ENERGIES]
        self._day[0], self._day[1] = self.e[I_IMP], self.e[I_EXP]
        if len(dl):
            dl.read_into(dl.end - 1, self._rec, 0)
            last = struct.unpack_from(">III", self._rec, 0)
            if last[0] > t - 86400 and last[0] <= t:
                self._day[0], self._day[1] = last[1], last[2]
        if self.saved_at:  # not the first start: there was an outage
            start = self._pd if self._pd >= self.saved_at else self.saved_at
            estimated = self._pd < self.saved_at
            if estimated:
                self.events.log(start, E.EV_POWER_DOWN, 0)
            self._power_up(t, start, estimated)
        else:
            self.events.log(t, E.EV_POWER_UP, 0)
            self.save()
        self._p_ref[:] = self.e[0:4]
        self._m_start = now_ms

    def _power_down(self, t):
        self.down = t
        self.save(t)
        self._pd = t
        self.store.put("pd", struct.pack(">I", t))
        self.events.log(t, E.EV_POWER_DOWN, 1)
        self.alarm(R.XS_POWER_FAIL)
        self._set_power(0, 0)

    def _power_up(self, t, start, estimated):
        dur = t - start if t > start else 0
        self.alarm(R.XS_POWER_FAIL)
        self.events.log(t, E.EV_POWER_UP, dur | (1 << 31 if estimated else 0))
        self._interruption(start, dur, 0x07 | (0x80 if estimated else 0))
        # what fell due while the meter was off, at the time it was due
        if self._flag(R.CF_BILLING):
            tb = self._next_billing(start)
            if tb <= t:
                self.close_billing(BILL_PROGRAMMED, tb)
        mid = self.lt.next_midnight(start)
        if mid <= t:
            while self.lt.next_midnight(mid) <= t:
                mid = self.lt.next_midnight(mid)
            self._midnight(mid)
        self._p_status |= PS_POWER | PS_SHORT
        self._dem = 0
        self._m_start = t * 1000
        for k in range(3):
            self._vsum[k] = 0
        self.down = -1
        if self._pd:
            self._pd = 0
            self.store.put("pd", b"")
        self._plan(t)
        self.save(t)

    def power_fail(self, now_ms):
        """The supply is failing (power-fail detection): save now."""
        if self.t_ms is not None and self.down < 0:
            self._power_down(now_ms // 1000)

    def save(self, t=None):
        """Write the energy record (counters, Wms rests, operating time)."""
        if t is None:
            t = self.now()
        vals = [t, self.optime]
        for k in range(_N_ENERGY):
            vals.append(self.e[k] & 0xFFFFFFFF)
            vals.append(self._rest[k])
        self.saved_at = t
        self.store.put("en", struct.pack(_EN_FMT, *vals))

    # ---- voltage quality
    def _voltages(self, t):
        m = self.model
        nom = m.get(R.NOMINAL_VOLTAGE)
        thr = nom * m.get(R.INTERRUPTION_SETTINGS)[0] // 100
        vs = m.get(R.VARIATION_SETTINGS)
        lo, hi = nom * vs[0] // 100, nom * vs[1] // 100
        s = self.s
        n = s.phases
        missing = 0
        for k in range(n):
            if s.v[k] < thr:
                missing += 1
        if missing == n:
            if self.down < 0 and self._started:
                # the supply is gone: end what each phase had, then one outage of all
                for k in range(n):
                    if self._vstate[k] != _V_OK:
                        self._voltage_end(k, self._vstate[k], t)
                        self._vstate[k] = _V_OK
                self._power_down(t)
            return
        if self.down >= 0:
            self._power_up(t, self.down, False)
        for k in range(n):
            v = s.v[k]
            st = _V_MISSING if v < thr else _V_UNDER if v < lo else _V_OVER if v > hi else _V_OK
            old = self._vstate[k]
            if st != old:
                if old != _V_OK:
                    self._voltage_end(k, old, t)
                self._vstate[k] = st
                self._vstart[k] = t
                self._vext[k] = v
            elif st == _V_UNDER and v < self._vext[k] or st == _V_OVER and v > self._vext[k]:
                self._vext[k] = v
            if st != _V_OK:
                self._p_status |= PS_VOLTAGE

    def _voltage_end(self, k, st, t):
        dur = t - self._vstart[k]
        if st == _V_MISSING:
            self._interruption(self._vstart[k], dur, 1 << k)
            self.alarm(R.XS_PHASE_INTERRUPTED)
            self.events.log(t, E.EV_PHASE_INTERRUPTION, ((1 << k) << 24) | min(dur, 0xFFFFFF))
            return
        m = self.model
        if dur < struct.unpack_from(">H", m.get(R.VARIATION_SETTINGS), 2)[0]:
            return
        under = st == _V_UNDER
        reg = R.UNDERVOLTAGES if under else R.OVERVOLTAGES
        m.set(reg, (m.get(reg) + 1) & 0xFFFF)
        self.alarm(R.XS_UNDERVOLTAGE if under else R.XS_OVERVOLTAGE)
        struct.pack_into(">IIBBH", self._rec, 0, self._vstart[k], dur, k + 1, 1 if under else 2, self._vext[k])
        self.tables[R.VARIATION_LOG].append(memoryview(self._rec)[0:12])
        self.events.log(t, E.EV_UNDERVOLTAGE if under else E.EV_OVERVOLTAGE, ((k + 1) << 24) | min(dur, 0xFFFFFF))

    def _interruption(self, start, dur, phases):
        m = self.model
        long_s = struct.unpack_from(">H", m.get(R.INTERRUPTION_SETTINGS), 1)[0]
        if dur >= long_s:
            m.set(R.LONG_INTERRUPTIONS, (m.get(R.LONG_INTERRUPTIONS) + 1) & 0xFFFF)
            m.set(R.LONG_INTERRUPTION_TIME, (m.get(R.LONG_INTERRUPTION_TIME) + dur) & 0xFFFFFFFF)
        else:
            m.set(R.SHORT_INTERRUPTIONS, (m.get(R.SHORT_INTERRUPTIONS) + 1) & 0xFFFF)
        struct.pack_into(">IIB", self._rec, 0, start, dur, phases)
        self.tables[R.INTERRUPTION_LOG].append(memoryview(self._rec)[0:9])

    # ---- demand, profiles, days, billing
    def _demand_end(self, t):
        m = self.model
        period = m.get(R.DEMAND_PERIOD)
        avg = self._dem // (period * 1000)
        self._dem = 0
        m.set(R.DEMAND_LAST, avg, persist=False)
        for reg in (R.MAX_DEMAND, R.MAX_DEMAND_T1 + self.band - 1):
            if avg > struct.unpack_from(">I", m.get(reg), 0)[0]:
                m.set(reg, struct.pack(">II", avg, t))
        self._due[_D_DEMAND] = _next_mult(t, period)

    def _capture(self, t):
        e, ref = self.e, self._p_ref
        st = self._p_status | (PS_DST if self.dst else 0) | (PS_CUTOFF if self.cut_state else 0)
        struct.pack_into(">IBHHHH", self._rec, 0, t, st, min(e[0] - ref[0], 0xFFFF), min(e[1] - ref[1], 0xFFFF),
                         min(e[2] - ref[2], 0xFFFF), min(e[3] - ref[3], 0xFFFF))
        self.tables[R.LOAD_PROFILE].append(memoryview(self._rec)[0:13])
        ref[:] = e[0:4]
        self._p_status = 0
        for v in self._vstate:
            if v != _V_OK:
                self._p_status |= PS_VOLTAGE
        self._due[_D_PROFILE] = _next_mult(t, self.model.get(R.PROFILE_PERIOD))

    def _mcapture(self, t):
        dur = t * 1000 - self._m_start
        if dur > 0:
            a = [self._vsum[k] // dur for k in range(3)]
            struct.pack_into(">IHHHHHH", self._rec, 0, t, a[0], a[1], a[2], self._vmin, self._vmax, self._imax)
            self.tables[R.MEASURAND_PROFILE].append(memoryview(self._rec)[0:16])
        self._m_start = t * 1000
        for k in range(3):
            self._vsum[k] = 0
        self._vmin = self._vmax = self._imax = 0
        self._due[_D_MPROFILE] = _next_mult(t, self.model.get(R.MEASURAND_PERIOD))

    def _extremes(self):
        s = self.s
        for k in range(s.phases):
            v = s.v[k]
            if self._vmin == 0 or v < self._vmin:
                self._vmin = v
            if v > self._vmax:
                self._vmax = v
            if s.i[k] > self._imax:
                self._imax = s.i[k]

    def _midnight(self, t):
        e = self.e
        struct.pack_into(">IIIIIII", self._rec, 0, t, e[0], e[1], e[4], e[5], e[6], e[7])
        self.tables[R.DAILY_ENERGIES].append(memoryview(self._rec)[0:28])
        self._day[0], self._day[1] = e[0], e[1]
        self._auto = 0
        self._due[_D_DAY] = self.lt.next_midnight(t)

    def _billing_record(self, t, reason):
        e = self.e
        md = self.model.get(R.MAX_DEMAND)
        struct.pack_into(">IBIIIIIIIIII", self._rec, 0, t, reason, e[0], e[4], e[5], e[6], e[7], e[1], e[2], e[3],
                         struct.unpack_from(">I", md, 0)[0], struct.unpack_from(">I", md, 4)[0])
        return memoryview(self._rec)[0:45]

    def close_billing(self, reason, t=None):
        """Close the billing period: snapshot into billing data, reset the maximum demands."""
        if t is None:
            t = self.now()
        m = self.model
        self.tables[R.BILLING_DATA].append(self._billing_record(t, reason))
        m.set(R.BILLING_COUNTER, (m.get(R.BILLING_COUNTER) + 1) & 0xFFFF)
        m.set(R.BILLING_LAST, t)
        for reg in (R.MAX_DEMAND, R.MAX_DEMAND_T1, R.MAX_DEMAND_T1 + 1, R.MAX_DEMAND_T1 + 2, R.MAX_DEMAND_T1 + 3):
            m.set(reg, bytes(8))
        self.events.log(t, E.EV_BILLING, reason)
        if reason == BILL_COMMAND:
            self.alarm(R.XS_BILLING_COMMAND)
        if self.t_ms is not None:
            self._due[_D_BILLING] = self._next_billing(t) if self._flag(R.CF_BILLING) else _NEVER
            self._refresh()

    def _switch_contract(self, t):
        m = self.model
        c2 = bytearray(m.get(R.CONTRACT_2))
        if not struct.unpack_from(">I", c2, 11)[0]:
            self._due[_D_CONTRACT] = _NEVER
            return
        struct.pack_into(">I", c2, 11, t)
        tb = self.tables
        for src, dst in ((R.DAY_PROFILES_2, R.DAY_PROFILES_1), (R.WEEK_PROGRAMS_2, R.WEEK_PROGRAMS_1),
                         (R.SEASONS_2, R.SEASONS_1)):
            tb[dst].load(bytes(tb[src].data))
            tb[src].reset()
        m.set(R.CONTRACT_1, bytes(c2))
        m.set(R.CONTRACT_2, bytes(15))
        self.events.log(t, E.EV_CONTRACT, struct.unpack_from(">I", c2, 0)[0])
        self.alarm(R.XS_CONTRACT_SWITCHED)
        self.close_billing(BILL_CONTRACT, t)
        self._due[_D_CONTRACT] = _NEVER
        self._update_band(t)

    def activate_contract(self):
        """Switch to contract 2 now (COMMAND); False if none is programmed."""
        if not self._contract2()[4]:
            return False
        self._switch_contract(self.now())
        self._refresh()
        return True

    def freeze(self):
        """Synchronized measurands: copy the measurands of this instant."""
        s = self.s
        self.model.set(R.SYNC_MEASURANDS, struct.pack(
            ">IHHHHHHii", self.now(), s.v[0], s.v[1], s.v[2], s.i[0], s.i[1], s.i[2],
            self._pw - self._pe, self._qi - self._qe), persist=False)

    # ---- cut-off device, load modulation
    def _limit(self):
        c = TF.contract_fields(self.model.get(R.CONTRACT_1))
        return c[1] * (100 + self.model.get(R.LOAD_MODULATION)[0]) // 100

    def _lm(self):
        return struct.unpack(">BHBHB", self.model.get(R.LOAD_MODULATION))

    def _auto_allowed(self):
        lm = self._lm()
        return lm[2] == 1 and self._auto < lm[4]

    def _check_limit(self, t):
        limit = self._limit()
        over = self._flag(R.CF_LOAD_MODULATION) and limit > 0 and self._pw > limit
        if over and self._over_since < 0:
            self._over_since = t
            self.alarm(R.XS_OVER_LIMIT)
            self.events.log(t, E.EV_OVER_LIMIT, self._pw)
            self._plan_lm()
        elif not over and self._over_since >= 0:
            self._over_since = -1
            self._plan_lm()

    def _plan_lm(self):
        due = _NEVER
        lm = self._lm()
        if self._over_since >= 0 and self.cut_state == CUT_CLOSED:
            due = self._over_since + lm[1]
        elif self.cut_state == CUT_OPEN and self.cut_reason == WHY_LOAD and self._auto_allowed():
            due = self._cut_since + lm[3]
        self._due[_D_LM] = due
        self._refresh()

    def _lm_deadline(self, t):
        if self._over_since >= 0 and self.cut_state == CUT_CLOSED:
            self._over_since = -1
            m = self.model
            m.set(R.LM_TRIPS, (m.get(R.LM_TRIPS) + 1) & 0xFFFF)
            self.cutoff(True, WHY_LOAD, t)
        elif self.cut_state == CUT_OPEN and self.cut_reason == WHY_LOAD and self._auto_allowed():
            self._auto += 1
            self.cutoff(False, WHY_AUTO, t)
        self._plan_lm()

    def cutoff(self, open_, reason, t=None):
        """Open or close the cut-off device; the state is on flash before the relay moves."""
        if t is None:
            t = self.now()
        state = CUT_OPEN if open_ else CUT_CLOSED
        if state == self.cut_state:
            return
        m = self.model
        self.cut_state, self.cut_reason, self._cut_since = state, reason, t
        m.set(R.CUTOFF_STATE, struct.pack(">BBI", state, reason, t))
        m.set(R.CUTOFF_OPERATIONS, (m.get(R.CUTOFF_OPERATIONS) + 1) & 0xFFFF)
        if self.set_relay is not None:
            self.set_relay(open_)
        if open_:
            self._set_power(0, 0)
            self._p_status |= PS_CUTOFF
            self.alarm(R.XS_LM_OPENED if reason == WHY_LOAD else R.XS_CMD_OPENED)
            self.events.log(t, E.EV_CUTOFF_OPEN, reason)
        else:
            self.events.log(t, E.EV_CUTOFF_CLOSE, reason)
            if reason == WHY_COMMAND:
                self._auto = 0
        self._plan_lm()

    # ---- commands and clock
    def reset_alarms(self):
        old = self.xs
        self.xs = 0
        self.model.set(R.EXT_STATUS, 0)
        self.model.status &= ~((1 << R.SW_STORAGE_FAULT) | (1 << R.SW_MODEM_RESET))
        self.events.log(self.now(), E.EV_ALARMS_RESET, old)

    def set_clock(self, t, kind):
        """Set the meter clock to t (s): CLOCK_SET, or CLOCK_SYNC for a
        synchronisation (a correction within the tolerance stays a
        synchronisation; beyond it, it counts as setting the clock)."""
        m = self.model
        before = self.now()
        delta = t - before
        if kind == CLOCK_SYNC and abs(delta) > m.get(R.SYNC_TOLERANCE):
            kind = CLOCK_SET
        if m._set_clock:
            m._set_clock(t)
        m.status &= ~(1 << R.SW_CLOCK_UNSET)
        m.set(R.LAST_CLOCK_CHANGE, struct.pack(">IIB", before, t, kind))
        if self.t_ms is None:
            return
        self.t_ms = t * 1000 + self.t_ms % 1000
        if kind == CLOCK_SET:
            self._p_status |= PS_CLOCK
            self.alarm(R.XS_CLOCK_CHANGED)
            self.events.log(t, E.EV_CLOCK_SET, before)
        else:
            self.events.log(t, E.EV_CLOCK_SYNC, delta)
        self._plan(t)
        self.save(t)

    def keys_changed(self):
        """The key-change procedure put new keys in force (meter/auth.py)."""
        self.alarm(R.XS_KEYS_CHANGED)
        self.events.log(self.now(), E.EV_KEYS, 3)

    def reset_table(self, reg):
        """RESETTAB of a table: clear a log, or a tariff table back to its default."""
        tb = self.tables[reg]
        tb.reset()
        if reg == R.EVENT_LOG:
            self.events.log(self.now(), E.EV_LOG_RESET, 0)
            self.events._check_pending()
        else:
            self.events.log(self.now(), E.EV_TABLE_RESET, reg)
        if self.t_ms is not None:
            self._plan(self.now())


def _period_ok(raw):
    v = int.from_bytes(raw, "big")
    return v in _PERIODS


def _dst_ok(raw):
    try:
        LocalTime().configure(raw)
        return True
    except ValueError:
        return False


def _billing_ok(raw):
    return 1 <= raw[0] <= 31 and raw[1] <= 23


def _contract_ok(raw):
    return TF.check_contract(raw, 0)


def _lm_ok(raw):
    return raw[0] <= 100 and raw[3] <= 1


def _interruption_ok(raw):
    return 1 <= raw[0] < 100


def _variation_ok(raw):
    return raw[0] < 100 < raw[1]


def _mode_ok(raw):
    return raw[0] <= 1


# registers the engines answer for
_OWNED = (R.ENERGY_IMPORT, R.ENERGY_EXPORT, R.ENERGY_IMPORT_T1, R.ENERGY_IMPORT_T1 + 1, R.ENERGY_IMPORT_T1 + 2,
          R.ENERGY_IMPORT_T1 + 3, R.ENERGY_EXPORT_T1, R.ENERGY_EXPORT_T1 + 1, R.ENERGY_EXPORT_T1 + 2,
          R.ENERGY_EXPORT_T1 + 3, R.REACTIVE_IMPORT, R.REACTIVE_EXPORT, R.CLOCK, R.STATUS_WORD, R.EXT_STATUS,
          R.VOLTAGE_L1, R.VOLTAGE_L1 + 1, R.VOLTAGE_L1 + 2, R.CURRENT_L1, R.CURRENT_L1 + 1, R.CURRENT_L1 + 2,
          R.ACTIVE_POWER, R.REACTIVE_POWER, R.POWER_FACTOR, R.FREQUENCY, R.LOCAL_TIME, R.ENERGY_TODAY_IMPORT,
          R.ENERGY_TODAY_EXPORT, R.PROFILE_ENTRIES, R.PROFILE_LAST, R.VIRTUAL_BILLING, R.CURRENT_BAND,
          R.CURRENT_SEASON, R.POWER_LIMIT, R.OVER_LIMIT_TIME, R.EVENT_COUNT, R.OPERATING_TIME, R.FLASH_WRITES,
          R.PERSIST_INTERVAL, R.SECURITY_STATE)
# settings the engines follow when the concentrator writes them
_SETTINGS = (R.DST_RULES, R.SYNC_TOLERANCE, R.PROFILE_PERIOD, R.BILLING_SETTINGS, R.DEMAND_PERIOD, R.CONTRACT_1,
             R.CONTRACT_2, R.LOAD_MODULATION, R.INTERRUPTION_SETTINGS, R.VARIATION_SETTINGS, R.CONTROL_FLAGS,
             R.READING_MODE, R.MEASURAND_PERIOD, R.EVENT_MASK, R.SPONT_MASK, R.DOWNLOAD_SETTINGS,
             R.CUSTOM_TABLE_1, R.CUSTOM_TABLE_1 + 1, R.CUSTOM_TABLE_1 + 2, R.CUSTOM_TABLE_1 + 3)
# value checks before a concentrator write is applied
_CHECKS = ((R.PROFILE_PERIOD, _period_ok), (R.DEMAND_PERIOD, _period_ok), (R.MEASURAND_PERIOD, _period_ok),
           (R.DST_RULES, _dst_ok), (R.BILLING_SETTINGS, _billing_ok), (R.CONTRACT_1, _contract_ok),
           (R.CONTRACT_2, _contract_ok), (R.LOAD_MODULATION, _lm_ok), (R.INTERRUPTION_SETTINGS, _interruption_ok),
           (R.VARIATION_SETTINGS, _variation_ok), (R.READING_MODE, _mode_ok))


class BoardFeed:
    """Feeds the engines from a board once per metering period: its
    measure(sample) (else power_w(), single phase), its clock (now_ms() when
    it has one, else the RTC kept in step with ticks)."""

    def __init__(self, board, meter):
        self.board = board
        self.meter = meter
        self.sample = Sample()
        self._last = None
        self._measure = getattr(board, "measure", None)
        self._now_ms = getattr(board, "now_ms", None)

    def tick(self, ticks):
        """Sample and advance; return the ms since the previous tick."""
        b, m = self.board, self.meter
        dt = 0 if self._last is None else ticks_diff(ticks, self._last)
        self._last = ticks
        if self._measure is not None:
            self._measure(self.sample)
        else:
            imp, exp = b.power_w()
            self.sample.from_power(imp, exp)
        if self._now_ms is not None:
            wall = self._now_ms()
        elif m.t_ms is None:
            wall = b.unix_time() * 1000
        else:
            wall = m.t_ms + dt
            rtc = b.unix_time()
            if abs(rtc - wall // 1000) > 2:  # the RTC moved behind our back: a clock change, no energy
                m.set_clock(rtc, CLOCK_SET)
                return dt
        m.advance(wall, self.sample)
        return dt
