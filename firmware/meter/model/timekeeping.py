# The meter clock and local time: the clock register, setting and
# synchronising it (COMMAND 5), local time under the DST rules and the DST
# flag, with an event at each change. The date arithmetic is meter/clock.py.
import struct

from meter.model import events as E
from meter.model import profiles as P
from meter.model import registers as R
from meter.clock import LocalTime, valid_time
from meter.compat import const
from meter.model.engine import NEVER, Engine, Part

# clock change kinds (last clock change register)
CLOCK_SET = const(1)
CLOCK_SYNC = const(2)


class WallClock(Engine):
    """The clock register over the board's clock (read: callable() -> s;
    write: callable(s), or None when it cannot be set). The data model's own
    owner of the clock until the metering's Clock takes over, which sets the
    board's clock through this one."""

    def __init__(self, model, read, write):
        Engine.__init__(self, model)
        self.read = read
        self.write = write
        model.register("clock", self)

    def reg_get(self, reg):
        if reg == R.CLOCK:
            return self.read()
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg != R.CLOCK or valid_time(int.from_bytes(raw, "big"))

    def reg_put(self, reg, raw):
        if reg == R.CLOCK:
            self.set(int.from_bytes(raw, "big"))
            return 0
        return Engine.reg_put(self, reg, raw)

    def set(self, t):
        """Set the board's clock to t (s); the clock counts as set."""
        if self.write:
            self.write(t)
        self.model.status &= ~(1 << R.SW_CLOCK_UNSET)


def _dst_ok(raw):
    try:
        LocalTime().configure(raw)
        return True
    except ValueError:
        return False


class Clock(Part):
    """The meter clock on the coordinator's time base."""

    def __init__(self, meter):
        Part.__init__(self, meter)
        self.wall = meter.model.wall
        self.lt = LocalTime()
        self.dst = 0  # daylight saving time in effect
        self.due = NEVER  # the next DST change
        self.configure()
        meter.model.register("clock", self)

    def configure(self):
        """Apply the DST rules and the control flag that enables them."""
        m = self.model
        try:
            self.lt.configure(m.get(R.DST_RULES), self.flag(R.CF_DST))
        except ValueError:
            self.lt.configure(R.DEFAULTS[R.DST_RULES])

    def reg_get(self, reg):
        if reg == R.CLOCK:
            return self.meter.now()
        if reg == R.LOCAL_TIME:
            lt = self.lt.local(self.meter.now())
            return struct.pack(">HBBBBBBB", lt[0], lt[1], lt[2], lt[3], lt[4], lt[5], lt[6], lt[7])
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        if reg == R.DST_RULES:
            return _dst_ok(raw)
        return self.wall.reg_check(reg, raw)

    def reg_put(self, reg, raw):
        if reg == R.CLOCK:
            self.set_clock(int.from_bytes(raw, "big"), CLOCK_SET)
            return 0
        return Part.reg_put(self, reg, raw)

    def written(self, reg):
        if reg == R.DST_RULES:
            self.configure()
        self.meter.changed(reg)

    def status(self):
        return 1 << R.SW_DST if self.dst else 0

    def plan(self, t):
        self.follow(t)

    def follow(self, t):
        """The DST flag at t (an event when it changed); the next change."""
        d = 1 if self.lt.dst(t) else 0
        if self.dst != d:
            if self.meter.started:
                self.log(t, E.EV_DST, self.lt.offset(t) // 60)
            self.dst = d
        nxt = self.lt.next_change(t)
        self.due = NEVER if nxt is None else nxt

    def set_clock(self, t, kind):
        """Set the meter clock to t (s): CLOCK_SET, or CLOCK_SYNC for a
        synchronisation (a correction within the tolerance stays a
        synchronisation; beyond it, it counts as setting the clock)."""
        meter = self.meter
        m = self.model
        before = meter.now()
        delta = t - before
        if kind == CLOCK_SYNC and abs(delta) > m.get(R.SYNC_TOLERANCE):
            kind = CLOCK_SET
        self.wall.set(t)
        m.set(R.LAST_CLOCK_CHANGE, struct.pack(">IIB", before, t, kind))
        if not meter.retime(t):
            return
        if kind == CLOCK_SET:
            meter.profiles.mark(P.PS_CLOCK)
            self.alarm(R.XS_CLOCK_CHANGED)
            self.log(t, E.EV_CLOCK_SET, before)
        else:
            self.log(t, E.EV_CLOCK_SYNC, delta)
        meter.plan(t)
        meter.save(t)
