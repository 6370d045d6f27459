# The metering: engines that own their registers (meter/model/engine.py; what each
# owns: docs/data-model.md "Owners") on one time base, sans-io: the caller
# gives the time and the metrology sample, Metering coordinates the rest.
#
# advance(now_ms, sample): the sample (a Sample) holds over the interval since
# the previous call; the interval is cut at every boundary an engine plans
# (demand period end, capture, midnight, billing closure, contract switch,
# DST change, tariff switch, load-modulation deadline), so a step of a second
# (the firmware) and a step of an hour (a simulated year) give the same
# registers. Power-up and power-down are Metering's, and so are the
# meter-wide settings (control flags, reading mode, custom tables, download
# settings) and the power-up count.
#
# Persistence (docs/data-model.md "Persistence"): energies every
# ENERGY_PERSIST_S and at a measured power failure; profiles and logs at each
# record; settings, counters and states when they change.
import struct

from meter.model import billing as BL
from meter.model import events as E
from meter.model import registers as R
from meter.model import timekeeping as TK
from meter.model.alarms import Alarms
from meter.model.billing import Billing
from meter.compat import ticks_diff
from meter.model.cutoff import CUT_CLOSED, Cutoff
from meter.model.energy import Energy
from meter.model.engine import Engine, Part
from meter.model.measurands import Measurands, Sample
from meter.model.profiles import Profiles
from meter.model.quality import Quality
from meter.model.tariff import Tariffs
from meter.timers import ENERGY_PERSIST_S


class Metering(Part):
    """The engines of one meter over its DataModel and Store. set_relay:
    callable(open) driving the cut-off device, or None."""

    def __init__(self, model, store, set_relay=None):
        Engine.__init__(self, model)
        self.meter = self  # the coordinator is the owner of the meter-wide settings too
        self.store = store
        self.t_ms = None  # the meter's time; None until the first advance()
        self.started = False
        self.down = -1  # time of a measured supply failure still going on
        self._next_ms = 0  # the earliest boundary an engine planned
        self._faults = store.faults
        pd = store.get("pd")
        self._pd = struct.unpack(">I", pd)[0] if pd and len(pd) == 4 else 0  # the last measured power down
        self.events = E.EventLog(self)
        self.alarms = Alarms(self)
        self.clock = TK.Clock(self)
        self.measurands = Measurands(self)
        self.energy = Energy(self)
        self.tariffs = Tariffs(self)
        self.billing = Billing(self)
        self.profiles = Profiles(self)
        self.quality = Quality(self)
        self.cutoff = Cutoff(self, set_relay)
        self.engines = (self, self.events, self.alarms, self.clock, self.measurands, self.energy, self.tariffs,
                        self.billing, self.profiles, self.quality, self.cutoff)
        model.register("meter", self)
        self.tables = model.tables  # every engine's tables, from here on

    # ---- its registers
    def reg_get(self, reg):
        if reg == R.FLASH_WRITES:
            return self.store.writes
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg != R.READING_MODE or raw[0] <= 1

    def written(self, reg):
        if reg == R.CONTROL_FLAGS:
            self.clock.configure()  # bit 0 enables the DST rules
        self.changed(reg)

    def status(self):
        return 1 << R.SW_AUTH_READING if self.model.get(R.READING_MODE) else 0

    def changed(self, reg):
        """A setting or a tariff table changed: log it and plan again."""
        t = self.now()
        self.log(t, E.EV_SETTINGS, reg)
        self.alarm(R.XS_SETTINGS_CHANGED)
        if self.t_ms is not None:
            self.plan(t)

    def table_reset(self, reg):
        """An engine's table was reset (RESETTAB): log it and plan again."""
        self.log(self.now(), E.EV_TABLE_RESET, reg)
        self.replan()

    # ---- time
    def now(self):
        if self.t_ms is None:
            return self.model.clock()
        return self.t_ms // 1000

    def retime(self, t):
        """The clock was set to t: the time base follows (False before the first advance())."""
        if self.t_ms is None:
            return False
        self.t_ms = t * 1000 + self.t_ms % 1000
        return True

    def plan(self, t):
        """Every engine plans its boundaries after t."""
        self.billing.plan(t)
        self.profiles.plan(t)
        self.energy.plan(t)
        self.clock.plan(t)
        self.tariffs.plan(t)
        self.cutoff.plan()
        self.refresh()

    def replan(self):
        if self.t_ms is not None:
            self.plan(self.now())

    def refresh(self):
        """An engine moved a boundary: find the earliest again."""
        b, p, tf = self.billing, self.profiles, self.tariffs
        self._next_ms = 1000 * min(b.demand_due, p.due, p.m_due, self.energy.due, b.due, tf.contract_due,
                                   self.clock.due, tf.due, self.cutoff.due)

    def boundary(self, t):
        """Everything due at t, in this order: a demand period and the energies
        end before a closure takes them, the band changes last."""
        b, p, tf, c = self.billing, self.profiles, self.tariffs, self.cutoff
        if b.demand_due <= t:
            b.demand_end(t, tf.band)
        if p.due <= t:
            p.capture(t)
        if p.m_due <= t:
            p.mcapture(t)
        if self.energy.due <= t:
            self._midnight(t)
        if b.due <= t:
            b.close(BL.BILL_PROGRAMMED, t)
        if tf.contract_due <= t:
            tf.switch(t)
        if self.clock.due <= t:
            self.clock.follow(t)
        if tf.due <= t:
            tf.update(t)
        if c.due <= t:
            c.deadline(t)
            if c.due <= t:
                c.due = t + 1
        self.refresh()

    def _midnight(self, t):
        self.energy.midnight(t)
        self.cutoff.new_day()

    # ---- the main entry
    def advance(self, now_ms, s):
        """Take the sample `s` as valid since the previous call, up to now_ms
        (the meter's wall-clock time, ms since 1970)."""
        if self.t_ms is None:
            self._start(now_ms, s)
            return
        if now_ms < self.t_ms:  # the time base went back: take it as a clock change
            self.clock.set_clock(now_ms // 1000, TK.CLOCK_SET)
            return
        t0 = self.t_ms // 1000
        self._take(s, t0)
        if self.down >= 0:
            self.t_ms = now_ms
            return
        m = self.measurands
        self.cutoff.check_limit(t0, m.pw)
        while True:
            end = now_ms if now_ms < self._next_ms else self._next_ms
            if end < self.t_ms:  # a boundary planned in the past (an activation date, say)
                end = self.t_ms
            dt = end - self.t_ms
            if dt > 0:
                self.energy.integrate(dt, m, self.tariffs.band)
                self.billing.accumulate(m.pw, dt)
                self.profiles.accumulate(m.s, dt)
            self.t_ms = end
            if end < self._next_ms:
                break
            self.boundary(end // 1000)
        if now_ms - self.energy.saved_at * 1000 >= 1000 * ENERGY_PERSIST_S:
            self.save()
        if self.store.faults != self._faults:
            self._faults = self.store.faults
            self.model.status |= 1 << R.SW_STORAGE_FAULT
            self.alarm(R.XS_STORAGE_FAULT)
            self.log(self.now(), E.EV_STORAGE_FAULT, self._faults)
        if self.events.ring.wrapped:
            self.events.ring.wrapped = False
            self.alarm(R.XS_LOG_WRAPPED)

    def _take(self, s, t):
        """Copy the sample, watch the voltages (at t)."""
        m = self.measurands
        m.take(s, self.cutoff.state == CUT_CLOSED)
        self.profiles.extremes(m.s)
        self.quality.voltages(m.s, t)

    # ---- power up / down
    def _start(self, now_ms, s):
        t = now_ms // 1000
        self.t_ms = now_ms
        self._take(s, t)
        self.plan(t)
        self.started = True
        m = self.model
        m.set(R.POWER_UPS, (m.get(R.POWER_UPS) + 1) & 0xFFFF)
        en = self.energy
        en.start(t)
        if en.saved_at:  # not the first start: there was an outage
            start = self._pd if self._pd >= en.saved_at else en.saved_at
            estimated = self._pd < en.saved_at
            if estimated:
                self.log(start, E.EV_POWER_DOWN, 0)
            self.power_up(t, start, estimated)
        else:
            self.log(t, E.EV_POWER_UP, 0)
            self.save()
        self.profiles.start(en.e, now_ms)

    def power_down(self, t):
        """The supply failed at t (measured): save everything now."""
        self.down = t
        self.save(t)
        self._pd = t
        self.store.put("pd", struct.pack(">I", t))
        self.log(t, E.EV_POWER_DOWN, 1)
        self.alarm(R.XS_POWER_FAIL)
        self.measurands.set_power(0, 0)

    def power_up(self, t, start, estimated):
        """The supply is back at t after an outage from start."""
        dur = t - start if t > start else 0
        self.alarm(R.XS_POWER_FAIL)
        self.log(t, E.EV_POWER_UP, dur | (1 << 31 if estimated else 0))
        self.quality.interruption(start, dur, 0x07 | (0x80 if estimated else 0))
        # what fell due while the meter was off, at the time it was due
        if self.flag(R.CF_BILLING):
            tb = self.billing.next_closure(start)
            if tb <= t:
                self.billing.close(BL.BILL_PROGRAMMED, tb)
        lt = self.clock.lt
        mid = lt.next_midnight(start)
        if mid <= t:
            while lt.next_midnight(mid) <= t:
                mid = lt.next_midnight(mid)
            self._midnight(mid)
        self.profiles.restart(t)
        self.billing.restart()
        self.down = -1
        if self._pd:
            self._pd = 0
            self.store.put("pd", b"")
        self.plan(t)
        self.save(t)

    def power_fail(self, now_ms):
        """The supply is failing (power-fail detection): save now."""
        if self.t_ms is not None and self.down < 0:
            self.power_down(now_ms // 1000)

    def save(self, t=None):
        """Write the energy record (counters, Wms rests, operating time)."""
        self.energy.save(self.now() if t is None else t)


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
                m.clock.set_clock(rtc, TK.CLOCK_SET)
                return dt
        m.advance(wall, self.sample)
        return dt
