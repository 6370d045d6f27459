# Time of use: which tariff band (T1..T4) applies at a local time, and when it
# changes next. Tables of the active contract (contract 1; contract 2 is the
# next one, copied over contract 1 at its activation time):
#   seasons        start month, start day, week program    (month 0 = unused)
#   week programs  day profile index for Monday .. Sunday
#   day profiles   8 switch points: minute of the day | band << 12 (FFFF unused),
#                  the first at 00:00, in increasing order
#   holidays       year (0 = every year), month, day: the day uses the
#                  contract's holiday day profile
# Layouts: registers.LAYOUTS; rules and defaults: docs/data-model.md.
# Tariffs is the engine that owns the contracts, their tables and the band.
import struct

from meter.model import billing as BL
from meter.model import events as E
from meter.model import registers as R
from meter.compat import const
from meter.model.engine import NEVER, Part, array

_UNUSED = const(0xFFFF)
DAY_PROFILES = const(8)
WEEK_PROGRAMS = const(4)


def check_day_profile(buf, off):
    """A day profile record is valid: first point 00:00, increasing, bands 1-4."""
    last = -1
    for i in range(8):
        p = (buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]
        if p == _UNUSED:
            continue
        minute, band = p & 0xFFF, p >> 12
        if minute >= 1440 or not 1 <= band <= 4 or minute <= last or (last < 0 and minute != 0):
            return False
        last = minute
    return True


def check_week_program(buf, off):
    for i in range(7):
        if buf[off + i] >= DAY_PROFILES:
            return False
    return True


def check_season(buf, off):
    m, d, w = buf[off], buf[off + 1], buf[off + 2]
    return m == 0 or (1 <= m <= 12 and 1 <= d <= 31 and w < WEEK_PROGRAMS)


def check_holiday(buf, off):
    m, d = buf[off + 2], buf[off + 3]
    return m == 0 or (1 <= m <= 12 and 1 <= d <= 31)


def check_contract(buf, off):
    return buf[off + 10] < DAY_PROFILES


class Tariff:
    """Band lookup over the active contract's tables (ring.Array objects)."""

    def __init__(self, model, days, weeks, seasons, holidays):
        self.model = model
        self.days = days
        self.weeks = weeks
        self.seasons = seasons
        self.holidays = holidays
        self.season = 0

    def _day_profile(self, y, m, d, wd):
        h = self.holidays.data
        for i in range(0, len(h), 4):
            if h[i + 2] == m and h[i + 3] == d and ((h[i] << 8) | h[i + 1]) in (0, y):
                return self.model.get(R.CONTRACT_1)[10] % DAY_PROFILES
        s = self.seasons.data
        best = -1
        last = -1  # the season that started latest in the year: it runs over New Year
        today = m * 32 + d
        for i in range(0, len(s), 3):
            if s[i] == 0:
                continue
            start = s[i] * 32 + s[i + 1]
            if start <= today and (best < 0 or start > s[best] * 32 + s[best + 1]):
                best = i
            if last < 0 or start > s[last] * 32 + s[last + 1]:
                last = i
        if best < 0:
            best = last
        if best < 0:
            self.season = 0
            week = 0
        else:
            self.season = best // 3
            week = s[best + 2] % WEEK_PROGRAMS
        return self.weeks.data[week * 7 + wd - 1] % DAY_PROFILES

    def band(self, lt):
        """(band, minutes until the next switch point today, or -1) at local
        time lt (clock.LocalTime.local tuple)."""
        dp = self._day_profile(lt[0], lt[1], lt[2], lt[6])
        data = self.days.data
        minute = lt[3] * 60 + lt[4]
        band = 1
        nxt = -1
        for i in range(8):
            p = (data[dp * 16 + 2 * i] << 8) | data[dp * 16 + 2 * i + 1]
            if p == _UNUSED:
                continue
            pm = p & 0xFFF
            if pm <= minute:
                band = p >> 12
            elif nxt < 0:
                nxt = pm
        return band, (nxt - minute if nxt >= 0 else -1)


def contract_fields(raw):
    """(contract id, power limit W, tariff program, holiday day profile, activation)."""
    return struct.unpack(">IIHBI", raw)


_NEXT = ((R.DAY_PROFILES_2, R.DAY_PROFILES_1), (R.WEEK_PROGRAMS_2, R.WEEK_PROGRAMS_1), (R.SEASONS_2, R.SEASONS_1))


class Tariffs(Part):
    """Contracts 1 and 2, their tables, the band and season in force."""

    def __init__(self, meter):
        Part.__init__(self, meter)
        tb = self.tables = {}
        for reg in (R.DAY_PROFILES_1, R.WEEK_PROGRAMS_1, R.SEASONS_1, R.DAY_PROFILES_2, R.WEEK_PROGRAMS_2,
                    R.SEASONS_2, R.HOLIDAYS):
            tb[reg] = array(meter.store, reg)
        self.lookup = Tariff(meter.model, tb[R.DAY_PROFILES_1], tb[R.WEEK_PROGRAMS_1], tb[R.SEASONS_1],
                             tb[R.HOLIDAYS])
        self.band = 1
        self.due = NEVER  # the next band change: switch point, local midnight or DST change
        self.contract_due = NEVER  # the activation of contract 2
        meter.model.register("tariffs", self)

    def reg_get(self, reg):
        if reg == R.CURRENT_BAND:
            return self.band
        if reg == R.CURRENT_SEASON:
            return self.lookup.season
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg not in (R.CONTRACT_1, R.CONTRACT_2) or check_contract(raw, 0)

    def status(self):
        return 1 << R.SW_CONTRACT_PENDING if self.pending() else 0

    def pending(self):
        """The activation time of contract 2 (0: none scheduled)."""
        return contract_fields(self.model.get(R.CONTRACT_2))[4]

    def plan(self, t):
        act = self.pending()
        self.contract_due = max(act, t) if act else NEVER
        self.update(t)

    def update(self, t):
        """The band in force at t, and when it may change next."""
        lt = self.meter.clock.lt
        local = lt.local(t)
        self.band, mins = self.lookup.band(local)
        nxt = lt.next_midnight(t)
        if mins >= 0:
            nxt = min(nxt, t - local[5] + 60 * mins)
        dc = lt.next_change(t)
        if dc is not None and dc < nxt:
            nxt = dc
        self.due = nxt
        self.meter.refresh()

    def switch(self, t):
        """Contract 2 replaces contract 1 (at its activation time t)."""
        m = self.model
        c2 = bytearray(m.get(R.CONTRACT_2))
        self.contract_due = NEVER
        if not struct.unpack_from(">I", c2, 11)[0]:
            return
        struct.pack_into(">I", c2, 11, t)
        tb = self.tables
        for src, dst in _NEXT:
            tb[dst].load(bytes(tb[src].data))
            tb[src].reset()
        m.set(R.CONTRACT_1, bytes(c2))
        m.set(R.CONTRACT_2, bytes(15))
        self.log(t, E.EV_CONTRACT, struct.unpack_from(">I", c2, 0)[0])
        self.alarm(R.XS_CONTRACT_SWITCHED)
        self.meter.billing.close(BL.BILL_CONTRACT, t)
        self.update(t)

    def activate(self):
        """COMMAND 7: switch to contract 2 now; False if none is programmed."""
        if not self.pending():
            return False
        self.switch(self.meter.now())
        self.meter.refresh()
        return True
