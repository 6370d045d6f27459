# Civil dates, local time and DST rules (meter/clock.py).
from meter.model import registers as R
from meter.clock import LocalTime, civil_from_days, days_from_civil, weekday
from fwtest import raises


def test_civil_dates_round_trip_and_weekdays():
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11017
    assert civil_from_days(days_from_civil(2024, 2, 29)) == (2024, 2, 29)
    for z in range(-800, 80000, 37):
        y, m, d = civil_from_days(z)
        assert days_from_civil(y, m, d) == z
    assert weekday(0) == 4  # 1970-01-01: a Thursday
    assert weekday(days_from_civil(2026, 3, 29)) == 7  # a Sunday


def eu():
    lt = LocalTime()
    lt.configure(R.DEFAULTS[R.DST_RULES])
    return lt


def test_eu_rules_2026():
    lt = eu()
    start, end = 1774746000, 1792890000  # 2026-03-29 01:00 UTC, 2026-10-25 01:00 UTC
    assert not lt.dst(start - 1) and lt.dst(start) and lt.dst(end - 1) and not lt.dst(end)
    assert lt.next_change(start - 100) == start and lt.next_change(start) == end
    assert lt.local(start - 1)[3:6] == (1, 59, 59)  # 01:59:59 CET
    assert lt.local(start)[3:6] == (3, 0, 0)  # then 03:00 CEST
    assert lt.local(end - 1)[3:8] == (2, 59, 59, 7, 1)  # 02:59:59 CEST, Sunday
    assert lt.local(end)[3:8] == (2, 0, 0, 7, 0)  # 02:00 CET again


def test_midnight_and_local_to_utc():
    lt = eu()
    t = 1767222000  # 2026-01-01 00:00 CET
    assert lt.local(t)[0:4] == (2026, 1, 1, 0)
    assert lt.next_midnight(t) == t + 86400
    assert lt.utc(2026, 7, 1, 0) == 1782856800  # 2026-06-30 22:00 UTC
    assert lt.utc(2026, 2, 1, 0) == 1769900400


def test_southern_rules_and_disabled_dst():
    lt = LocalTime()
    # UTC+10, DST +60 from the first Sunday of October to the first Sunday of April, 16:00 UTC
    lt.configure(bytes((0x02, 0x58, 60, 10, 1, 7, 16, 4, 1, 7, 16)))
    jan = days_from_civil(2026, 1, 15) * 86400
    jul = days_from_civil(2026, 7, 15) * 86400
    assert lt.dst(jan) and not lt.dst(jul)
    assert lt.offset(jan) == 11 * 3600
    lt.configure(R.DEFAULTS[R.DST_RULES], enabled=False)
    assert not lt.dst(jul) and lt.next_change(jul) is None


def test_bad_rules_refused():
    lt = LocalTime()
    with raises(ValueError):
        lt.configure(bytes((0, 60, 60, 13, 5, 7, 1, 10, 5, 7, 1)))
    with raises(ValueError):
        lt.configure(bytes((0, 60, 60, 3, 5, 8, 1, 10, 5, 7, 1)))


def test_civil_dates_of_day_numbers():
    assert civil_from_days(0) == (1970, 1, 1)
    assert civil_from_days(11016) == (2000, 2, 29)
    assert civil_from_days(20639) == (2026, 7, 5)
