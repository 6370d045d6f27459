# What every COSEM object module shares (meter/dlms/cosem.py and the class
# modules beside it): the association levels, the data-access-results and
# action-results, and the COSEM date-time, date and time codecs.
import struct

from meter.compat import const
from meter.clock import civil_from_days, days_from_civil, weekday
from meter.errors import DecodeError
from meter.model import registers as R
from meter.dlms import axdr as X

PUBLIC = const(0)
READER = const(1)
MANAGER = const(2)
NOBODY = const(3)

# data-access-result / action-result
OK = const(0)
HARDWARE_FAULT = const(1)
TEMPORARY_FAILURE = const(2)
DENIED = const(3)  # read-write-denied
UNDEFINED = const(4)  # object-undefined
CLASS_INCONSISTENT = const(9)
UNAVAILABLE = const(11)  # object-unavailable
TYPE_UNMATCHED = const(12)
OTHER = const(250)

NOT_SPECIFIED = const(0x8000)  # a date-time's deviation, unknown


def date_time(w, t, status):
    """COSEM date-time of UTC seconds t: deviation 0 (UTC), clock status."""
    days = t // 86400
    s = t - days * 86400
    y, m, d = civil_from_days(days)
    w.byte(X.OCTETS)
    w.byte(12)
    w.uint(y, 2)
    w.byte(m)
    w.byte(d)
    w.byte(weekday(days))
    w.byte(s // 3600)
    w.byte(s // 60 % 60)
    w.byte(s % 60)
    w.byte(0)  # hundredths
    w.uint(0, 2)  # deviation: UTC
    w.byte(status)


def pattern(w, year, month, day, wday, hour, minute, deviation):
    """A date-time that names a recurring moment: 0xFFFF / 0xFF fields are
    "not specified" (Blue Book wildcards); seconds and hundredths 0; clock
    status not specified."""
    w.byte(X.OCTETS)
    w.byte(12)
    w.uint(year, 2)
    w.byte(month)
    w.byte(day)
    w.byte(wday)
    w.byte(hour)
    w.byte(minute)
    w.byte(0)
    w.byte(0)
    w.uint(deviation, 2)
    w.byte(0xFF)


def parse_date_time(buf, off, end):
    """UTC seconds of the date-time Data at buf[off]; DecodeError if it is not
    one or leaves a field unspecified. UTC = local + deviation (minutes from
    local time to UTC, Blue Book); deviation 0x8000 (unspecified): UTC."""
    start, n, _ = X.read_octets(buf, off, end)
    if n != 12:
        raise DecodeError("date-time", "%d bytes" % n)
    b = buf
    y = X.uint(b, start, 2)
    mo, d, h, mi, s = b[start + 2], b[start + 3], b[start + 5], b[start + 6], b[start + 7]
    if not (2000 <= y <= 2099 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        raise DecodeError("date-time", "a field out of range or not specified")
    dev = X.uint(b, start + 9, 2)
    if dev == NOT_SPECIFIED:
        dev = 0
    elif dev >= 0x8000:
        dev -= 0x10000
    if not -720 <= dev <= 720:
        raise DecodeError("date-time", "deviation %d" % dev)
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + dev * 60


def write(model, reg, raw):
    """Write a register as the Original-SMITP WRITE does: its owner's check,
    then its owner's put (logged, planned again); the data-access-result."""
    row = R.BY_ID[reg]
    if not model.check(row, raw, 0):
        return OTHER
    return OK if model.write_from(row, raw, 0) == 0 else TEMPORARY_FAILURE


def field(model, reg, fmt, k):
    """Field k of the struct register reg (struct format fmt, registers.LAYOUTS)."""
    return struct.unpack(fmt, model.get(reg))[k]


def with_field(model, reg, fmt, k, v):
    """The value of reg with field k replaced by v (a write to make)."""
    f = list(struct.unpack(fmt, model.get(reg)))
    f[k] = v
    return struct.pack(fmt, *f)
