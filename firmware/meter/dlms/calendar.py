# COSEM objects over time and the tariff calendar of the data model: the
# Clock's time zone and daylight-savings attributes (the DST rules register
# and control flag bit 0), Script table (9), Special days table (11) over the
# public holidays, Activity calendar (20) over contract 1 (active) and
# contract 2 (passive) and their tables, Single action schedule (22) over the
# billing settings (meter/model/timekeeping.py, tariff.py, billing.py). No
# state of their own: values are read from the registers and tables, and
# writes and methods go through their owners, as the Original-SMITP WRITE,
# WRITETAB and COMMAND do.
#
# Project choices (docs/protocol.md): a DST begin or end is a date-time with
# year not specified, day of month 0xFE ("last") or 1 + 7 (n - 1) for the
# n-th week, the weekday, the hour UTC and deviation 0; time_zone is minus the
# standard offset (Blue Book sign: UTC = local + deviation); the Activity
# calendar's names are ASCII digits: the contract id, the season and week
# program numbers from 1; a day_id is the day profile's index (0-7); a switch
# point calls script `band` of the tariffication script table.
import struct

from meter.compat import const
from meter.model import billing as BL
from meter.model import registers as R
from meter.model import tariff as TF
from meter.dlms import axdr as X
from meter.dlms import base as B

CLOCK = const(8)
SCRIPT_TABLE = const(9)
SPECIAL_DAYS = const(11)
ACTIVITY_CALENDAR = const(20)
SINGLE_ACTION = const(22)

BILLING_SCRIPTS = b"\x00\x00\x0a\x00\x01\xff"  # 0.0.10.0.1.255: end of billing period
TARIFF_SCRIPTS = b"\x00\x00\x0a\x00\x64\xff"  # 0.0.10.0.100.255: tariffication
DISCONNECTOR_SCRIPTS = b"\x00\x00\x0a\x00\x6a\xff"  # 0.0.10.0.106.255: disconnector
CURRENT_TARIFF = b"\x00\x00\x60\x0e\x00\xff"  # 0.0.96.14.0.255: currently active tariff
DISCONNECT_CONTROL = b"\x00\x00\x60\x03\x0a\xff"  # 0.0.96.3.10.255

_DST = ">hBBBBBBBBB"  # registers.LAYOUTS[DST_RULES]
_CONTRACT = ">IIHBI"
_TABLES = ((R.CONTRACT_1, R.SEASONS_1, R.WEEK_PROGRAMS_1, R.DAY_PROFILES_1),
           (R.CONTRACT_2, R.SEASONS_2, R.WEEK_PROGRAMS_2, R.DAY_PROFILES_2))


def source(cls, attr, reg):
    """(register, struct field or -1) behind attribute attr of an object of
    class cls over register reg; None: no register (docs/cosem.md, tests)."""
    if cls == CLOCK:
        return {2: (R.CLOCK, -1), 3: (R.DST_RULES, 0), 5: (R.DST_RULES, -1), 6: (R.DST_RULES, -1),
                7: (R.DST_RULES, 1), 8: (R.CONTROL_FLAGS, -1)}.get(attr)
    if cls == SPECIAL_DAYS and attr == 2:
        return (R.HOLIDAYS, -1)
    if cls == ACTIVITY_CALENDAR and attr >= 2:
        t = _TABLES[0 if attr < 6 else 1]
        return (t[0], 4) if attr == 10 else ((t[0], 0) if attr in (2, 6) else (t[(attr - 2) % 4], -1))
    if cls == SINGLE_ACTION and attr == 4:
        return (R.BILLING_SETTINGS, -1)
    return None


def _used(data, size, k):
    # records of `size` bytes in data whose byte k (a month) is not 0
    n = 0
    for i in range(k, len(data), size):
        n += 1 if data[i] else 0
    return n


def _digits(w, n):
    w.octets(str(n).encode())


def _script(w, cls, ln, index, param):
    # an action of a script: execute method `index` (or write attribute) of the object
    w.group(X.STRUCT, 5)
    w.value(X.ENUM, 2 if cls == 70 else 1)  # execute / write
    w.value(X.U16, cls)
    w.octets(ln)
    w.value(X.S8, index)
    if cls == 70:
        w.value(X.S8, 0)
    else:
        w.value(X.U8, param)


class Calendar:
    """The Clock's time-zone attributes and classes 9, 11, 20 and 22 on one
    data model; `objects` (meter.dlms.cosem.Objects) runs a script's actions."""

    def __init__(self, model, objects):
        self.model = model
        self.objects = objects
        self.rec = bytearray(4)  # a holiday record to write

    # ---- GET
    def get(self, cls, obis, attr, w):
        m = self.model
        if cls == CLOCK:
            return self._clock(attr, w)
        if cls == SCRIPT_TABLE:
            self._scripts(obis, w)
        elif cls == SPECIAL_DAYS:
            tb = m.tables.get(R.HOLIDAYS)
            if tb is None:
                return B.UNAVAILABLE
            h = tb.data
            day_id = m.get(R.CONTRACT_1)[10]
            w.group(X.ARRAY, _used(h, 4, 2))
            for i in range(len(tb)):
                if h[4 * i + 2]:  # month 0: a free slot
                    y = (h[4 * i] << 8) | h[4 * i + 1]
                    w.group(X.STRUCT, 3)
                    w.value(X.U16, i)
                    w.byte(X.OCTETS)
                    w.byte(5)
                    w.uint(y if y else 0xFFFF, 2)  # year 0: every year
                    w.byte(h[4 * i + 2])
                    w.byte(h[4 * i + 3])
                    w.byte(0xFF)
                    w.value(X.U8, day_id)
        elif cls == ACTIVITY_CALENDAR:
            return self._calendar(attr, w)
        elif attr == 2:  # single action schedule: runs the billing closure script
            w.group(X.STRUCT, 2)
            w.octets(BILLING_SCRIPTS)
            w.value(X.U16, 1)
        elif attr == 3:
            w.value(X.ENUM, 1)  # one execution time, wildcards in the date
        else:  # on the billing day of every month, at the billing hour, local time
            on = (m.get(R.CONTROL_FLAGS) >> R.CF_BILLING) & 1
            day, hour = m.get(R.BILLING_SETTINGS)
            w.group(X.ARRAY, on)
            if on:
                w.group(X.STRUCT, 2)
                w.octets(bytes((hour, 0, 0, 0)))
                w.octets(bytes((0xFF, 0xFF, 0xFF, day, 0xFF)))
        return B.OK

    def _clock(self, attr, w):
        m = self.model
        f = struct.unpack(_DST, m.get(R.DST_RULES))
        if attr == 3:
            w.value(X.S16, -f[0] & 0xFFFF)
        elif attr == 5 or attr == 6:
            k = 2 if attr == 5 else 6
            week = f[k + 1]
            B.pattern(w, 0xFFFF, f[k], 0xFE if week >= 5 else 1 + 7 * (week - 1), f[k + 2], f[k + 3], 0, 0)
        elif attr == 7:
            w.value(X.S8, f[1])
        elif attr == 8:
            w.value(X.BOOL, (m.get(R.CONTROL_FLAGS) >> R.CF_DST) & 1)
        else:
            return B.UNAVAILABLE
        return B.OK

    def _scripts(self, obis, w):
        if obis == TARIFF_SCRIPTS:  # script n: the active tariff becomes n
            w.group(X.ARRAY, 4)
            for n in range(1, 5):
                w.group(X.STRUCT, 2)
                w.value(X.U16, n)
                w.group(X.ARRAY, 1)
                _script(w, 1, CURRENT_TARIFF, 2, n)
        elif obis == DISCONNECTOR_SCRIPTS:  # 1: remote disconnect, 2: remote reconnect
            w.group(X.ARRAY, 2)
            for n in (1, 2):
                w.group(X.STRUCT, 2)
                w.value(X.U16, n)
                w.group(X.ARRAY, 1)
                _script(w, 70, DISCONNECT_CONTROL, n, 0)
        else:  # script 1: the billing closure, the meter's own procedure (no COSEM actions)
            w.group(X.ARRAY, 1)
            w.group(X.STRUCT, 2)
            w.value(X.U16, 1)
            w.group(X.ARRAY, 0)

    def _calendar(self, attr, w):
        m = self.model
        contract, seasons, weeks, days = _TABLES[0 if attr < 6 else 1]
        if attr == 10:
            t = struct.unpack(_CONTRACT, m.get(R.CONTRACT_2))[4]
            if t:
                B.date_time(w, t, 0)
            else:
                B.pattern(w, 0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, B.NOT_SPECIFIED)
            return B.OK
        k = (attr - 2) % 4
        if k == 0:
            _digits(w, struct.unpack(_CONTRACT, m.get(contract))[0])
            return B.OK
        tb = m.tables.get((seasons, weeks, days)[k - 1])
        if tb is None:
            return B.UNAVAILABLE
        d = tb.data
        if k == 1:  # seasons: name, start (month and day, every year), week program
            w.group(X.ARRAY, _used(d, 3, 0))
            for i in range(len(tb)):
                if not d[3 * i]:
                    continue  # month 0: unused
                w.group(X.STRUCT, 3)
                _digits(w, i + 1)
                B.pattern(w, 0xFFFF, d[3 * i], d[3 * i + 1], 0xFF, 0, 0, B.NOT_SPECIFIED)
                _digits(w, d[3 * i + 2] % TF.WEEK_PROGRAMS + 1)
        elif k == 2:  # week programs: name, the day profile of Monday .. Sunday
            w.group(X.ARRAY, len(tb))
            for i in range(len(tb)):
                w.group(X.STRUCT, 8)
                _digits(w, i + 1)
                for j in range(7):
                    w.value(X.U8, d[7 * i + j] % TF.DAY_PROFILES)
        else:  # day profiles: day_id, switch points (start time, tariff script, band)
            w.group(X.ARRAY, len(tb))
            for i in range(len(tb)):
                at = 16 * i
                n = 0
                for j in range(8):
                    n += 0 if d[at + 2 * j] == 0xFF and d[at + 2 * j + 1] == 0xFF else 1
                w.group(X.STRUCT, 2)
                w.value(X.U8, i)
                w.group(X.ARRAY, n)
                for j in range(8):
                    p = (d[at + 2 * j] << 8) | d[at + 2 * j + 1]
                    if p == 0xFFFF:
                        continue  # unused
                    w.group(X.STRUCT, 3)
                    w.byte(X.OCTETS)
                    w.byte(4)
                    w.byte((p & 0xFFF) // 60)
                    w.byte((p & 0xFFF) % 60)
                    w.uint(0, 2)
                    w.octets(TARIFF_SCRIPTS)
                    w.value(X.U16, p >> 12)
        return B.OK

    # ---- SET
    def set(self, cls, attr, buf, off, end):
        """SET of a writable attribute, through the register's owner."""
        m = self.model
        if cls == CLOCK:
            return self._set_clock(attr, buf, off, end)
        if cls == ACTIVITY_CALENDAR:  # passive calendar activation time: contract 2's
            t = B.parse_date_time(buf, off, end)
            if not B.field(m, R.CONTRACT_2, _CONTRACT, 0):
                return B.OTHER  # no passive calendar: an empty contract would replace contract 1
            return B.write(m, R.CONTRACT_2, B.with_field(m, R.CONTRACT_2, _CONTRACT, 4, t))
        # single action schedule: one execution time, every month
        if buf[off] != X.ARRAY or buf[off + 1] != 1 or buf[off + 2] != X.STRUCT or buf[off + 3] != 2:
            return B.TYPE_UNMATCHED
        ts, tn, at = X.read_octets(buf, off + 4, end)
        ds, dn, at = X.read_octets(buf, at, end)
        if tn != 4 or dn != 5:
            return B.TYPE_UNMATCHED
        if buf[ts + 1] or buf[ts + 2] not in (0, 0xFF) or X.uint(buf, ds, 3) != 0xFFFFFF:
            return B.OTHER  # on the hour, every month of every year
        return B.write(m, R.BILLING_SETTINGS, bytes((buf[ds + 3], buf[ts])))

    def _set_clock(self, attr, buf, off, end):
        m = self.model
        if attr == 8:
            if buf[off] != X.BOOL:
                return B.TYPE_UNMATCHED
            flags = m.get(R.CONTROL_FLAGS) & ~(1 << R.CF_DST) | (1 if buf[off + 1] else 0) << R.CF_DST
            return B.write(m, R.CONTROL_FLAGS, flags.to_bytes(2, "big"))
        f = list(struct.unpack(_DST, m.get(R.DST_RULES)))
        if attr == 3 or attr == 7:
            v, _ = X.read_int(buf, off, end)
            if buf[off] != (X.S16 if attr == 3 else X.S8) or v == -0x8000:
                return B.TYPE_UNMATCHED
            if attr == 3:
                f[0] = -v
            else:
                f[1] = v
        else:  # a DST begin or end
            s, n, _ = X.read_octets(buf, off, end)
            k = 2 if attr == 5 else 6
            day, dev = buf[s + 3], X.uint(buf, s + 9, 2)
            if n != 12 or X.uint(buf, s, 2) != 0xFFFF or buf[s + 6] or buf[s + 7] or dev not in (0, B.NOT_SPECIFIED):
                return B.OTHER  # every year, on the hour, UTC
            if day == 0xFE:
                week = 5
            elif day <= 22 and day % 7 == 1:
                week = day // 7 + 1
            else:
                return B.OTHER
            f[k], f[k + 1], f[k + 2], f[k + 3] = buf[s + 2], week, buf[s + 4], buf[s + 5]
        try:
            raw = struct.pack(_DST, *f)
        except (OverflowError, struct.error):
            return B.OTHER
        return B.write(m, R.DST_RULES, raw)

    # ---- ACTION
    def action(self, cls, obis, method, buf, off, end):
        """Script table execute, Special days insert and delete, Activity
        calendar activate_passive_calendar."""
        m = self.model
        if cls == SCRIPT_TABLE:
            n, _ = X.read_int(buf, off, end)
            if obis == DISCONNECTOR_SCRIPTS and (n == 1 or n == 2):
                i = self.objects.index(70, DISCONNECT_CONTROL)
                return self.objects.action(i, n, buf, end, end)
            billing = m.owner(R.BILLING_COUNTER)
            if obis == BILLING_SCRIPTS and n == 1 and billing is not None:
                billing.close(BL.BILL_COMMAND)  # as COMMAND 1
                return B.OK
            return B.OTHER  # no such script
        if cls == ACTIVITY_CALENDAR:
            tariffs = m.owner(R.CURRENT_BAND)
            if tariffs is None:
                return B.UNAVAILABLE
            return B.OK if tariffs.activate() else B.OTHER  # no passive calendar programmed
        tb = m.tables.get(R.HOLIDAYS)
        if tb is None:
            return B.UNAVAILABLE
        rec = self.rec
        if method == 1:  # insert {index, date, day_id}
            if buf[off] != X.STRUCT or buf[off + 1] != 3:
                return B.TYPE_UNMATCHED
            i, at = X.read_int(buf, off + 2, end)
            s, n, at = X.read_octets(buf, at, end)
            day_id, at = X.read_int(buf, at, end)
            y = X.uint(buf, s, 2)
            if n != 5 or day_id != m.get(R.CONTRACT_1)[10]:
                return B.OTHER  # every special day is the contract's holiday day profile
            struct.pack_into(">HBB", rec, 0, 0 if y == 0xFFFF else y, buf[s + 2], buf[s + 3])
            if not buf[s + 2] or not TF.check_holiday(rec, 0):
                return B.OTHER
        else:  # delete index
            i, at = X.read_int(buf, off, end)
            struct.pack_into(">I", rec, 0, 0)
        if not 0 <= i < len(tb):
            return B.OTHER
        if not tb.write(i, rec, 0, 1):
            return B.TEMPORARY_FAILURE
        m.owner(R.HOLIDAYS).written(R.HOLIDAYS)
        return B.OK
