# Temporal information: civil dates, local time and the DST rules, in integer
# arithmetic only (no `time` module: ports count from different epochs).
# Times are seconds since 1970-01-01 UTC.
#
# DST rules register (0x0022, project layout, docs/data-model.md):
#   standard offset (int16, minutes east of UTC), DST shift (minutes), then
#   start and end as month, week (1-4, 5 = last), weekday (1 Monday .. 7
#   Sunday), hour UTC. EU rules: last Sunday of March and of October, 01:00 UTC.
import struct

from meter.compat import const

DAY = const(86400)
# Times a concentrator may set (project choice): 2000-01-01 .. 2099-12-31, so
# that a 4-byte time plus any period the meter adds never wraps.
TIME_MIN = const(946684800)
TIME_END = 4102444800  # 2100-01-01; not const(): above a small int on 32-bit ports


def valid_time(t):
    """May the meter clock be set to t (seconds since 1970)?"""
    return TIME_MIN <= t < TIME_END


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day number since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (yoe + era * 400 + (1 if m <= 2 else 0), m, d)


def weekday(days):
    """1 = Monday .. 7 = Sunday (1970-01-01 was a Thursday)."""
    return (days + 3) % 7 + 1


def month_days(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _rule_time(y, month, week, wday, hour):
    # the week-th (5: last) weekday `wday` of the month, at `hour` UTC
    if week >= 5:
        day = month_days(y, month)
        d = days_from_civil(y, month, day)
        d -= (weekday(d) - wday) % 7
    else:
        d = days_from_civil(y, month, 1)
        d += (wday - weekday(d)) % 7 + 7 * (week - 1)
    return d * DAY + hour * 3600


def _bounds(r, y):
    # DST start and end in year y under rules r (LocalTime.rules)
    return _rule_time(y, r[0], r[1], r[2], r[3]), _rule_time(y, r[4], r[5], r[6], r[7])


class LocalTime:
    """UTC -> local civil time under the DST rules register."""

    def __init__(self):
        self.std = 0  # seconds east of UTC
        self.shift = 0  # seconds added in summer
        self.rules = None  # (start month, week, weekday, hour, end month, week, weekday, hour)
        self.enabled = True

    def configure(self, raw, enabled=True):
        """Apply a DST rules register value; ValueError if it is not a valid one."""
        f = struct.unpack(">hBBBBBBBBB", raw)
        if not -720 <= f[0] <= 840 or f[1] > 120:
            raise ValueError("offset")
        for i in (2, 6):
            if not (1 <= f[i] <= 12 and 1 <= f[i + 1] <= 5 and 1 <= f[i + 2] <= 7 and f[i + 3] <= 23):
                raise ValueError("rule")
        self.std = f[0] * 60
        self.shift = f[1] * 60
        self.rules = f[2:]
        self.enabled = enabled

    def dst(self, t):
        """Is daylight saving time in effect at t?"""
        r = self.rules
        if not self.enabled or not self.shift or r is None:
            return False
        y = civil_from_days(t // DAY)[0]
        start, end = _bounds(r, y)
        if start < end:
            return start <= t < end
        return t >= start or t < end  # southern hemisphere

    def offset(self, t):
        return self.std + (self.shift if self.dst(t) else 0)

    def next_change(self, t):
        """The next DST start or end after t (None without DST)."""
        r = self.rules
        if not self.enabled or not self.shift or r is None:
            return None
        y = civil_from_days(t // DAY)[0]
        best = None
        for yy in (y, y + 1):
            for b in _bounds(r, yy):
                if b > t and (best is None or b < best):
                    best = b
        return best

    def local(self, t):
        """(year, month, day, hour, minute, second, weekday 1-7, dst, seconds of local day)."""
        dst = self.dst(t)
        lt = t + self.std + (self.shift if dst else 0)
        days = lt // DAY
        sod = lt - days * DAY
        y, m, d = civil_from_days(days)
        return (y, m, d, sod // 3600, sod // 60 % 60, sod % 60, weekday(days), 1 if dst else 0, sod)

    def next_midnight(self, t):
        """UTC time of the next local midnight after t (DST changes in between
        are boundaries of their own: callers take the earlier one)."""
        lt = t + self.offset(t)
        return (lt // DAY + 1) * DAY - self.offset(t)

    def utc(self, y, m, d, hour):
        """UTC time of a local date and hour (the offset in effect then)."""
        lt = days_from_civil(y, m, d) * DAY + hour * 3600
        t = lt - self.std
        if self.dst(t - self.shift):
            t -= self.shift
        return t
