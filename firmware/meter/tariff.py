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
import struct

from meter import registers as R
from meter.compat import const

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
