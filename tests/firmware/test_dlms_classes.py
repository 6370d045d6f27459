# The COSEM objects over the demand, load limitation, time and tariff
# registers (meter/dlms/demand.py, calendar.py): their encodings byte for
# byte (written out here, not by the firmware's encoder), their SETs and
# methods through the registers' owners, the access rights, and garbage that
# never stops the meter.
import struct

from meter.dlms import cosem as C
from meter.model import registers as R
from meter.model.metering import Metering
from fwtest import Rng, unhex
from dlmskit import LLS, T0, Meter, aarq, glo, manager, unglo


class Manager:
    """A meter with its metering engines, and a manager association on it."""

    def __init__(self):
        self.m = Meter()
        self.meter = Metering(self.m.model, self.m.store)
        self.model = self.m.model
        manager(self.m)
        self.ic = 2

    def ask(self, plain):
        self.ic += 1
        return unglo(self.m.ask(glo(plain, self.ic)))[0]

    def get(self, cls, obis, attr):
        ans = self.ask(unhex("C0 01 C1") + cls.to_bytes(2, "big") + obis + bytes((attr, 0)))
        assert ans[:3] == unhex("C4 01 C1"), ans.hex()
        return ans[3:]

    def set(self, cls, obis, attr, data):
        ans = self.ask(unhex("C1 01 C1") + cls.to_bytes(2, "big") + obis + bytes((attr, 0)) + data)
        assert ans[:3] == unhex("C5 01 C1"), ans.hex()
        return ans[3]

    def act(self, cls, obis, method, data=None):
        req = unhex("C3 01 C1") + cls.to_bytes(2, "big") + obis + bytes((method,))
        req += b"\x00" if data is None else b"\x01" + data
        ans = self.ask(req)
        assert ans[:3] == unhex("C7 01 C1"), ans.hex()
        return ans[3]


def dt(t):
    # a COSEM date-time of UTC seconds t, deviation 0, status 0
    import time as _t

    y, mo, d, h, mi, s, wd = _t.gmtime(t)[:7]
    return unhex("090C") + y.to_bytes(2, "big") + bytes((mo, d, wd + 1, h, mi, s, 0, 0, 0, 0))


MAX_T2 = unhex("0100010602FF")
DEMAND = unhex("0100010400FF")
LIMITER = unhex("0000110000FF")
CLOCK = unhex("0000010000FF")
BILLING_SCRIPTS = unhex("00000A0001FF")
TARIFF_SCRIPTS = unhex("00000A0064FF")
DISCONNECTOR = unhex("00000A006AFF")
SPECIAL_DAYS = unhex("00000B0000FF")
CALENDAR = unhex("00000D0000FF")
SCHEDULE = unhex("00000F0000FF")
NONE = unhex("090C FFFF FF FF FF FF FF 00 00 8000 FF")  # a date-time with nothing specified


def test_extended_register_over_a_maximum_demand_and_its_reset():
    a = Manager()
    a.model.set(R.MAX_DEMAND_T1 + 1, struct.pack(">II", 4321, T0 - 900))
    assert a.get(4, MAX_T2, 2) == unhex("00 06 000010E1")
    assert a.get(4, MAX_T2, 3) == unhex("00 0202 0F00 161B")  # 10^0 W
    assert a.get(4, MAX_T2, 4) == unhex("00 11 00")
    assert a.get(4, MAX_T2, 5) == b"\x00" + dt(T0 - 900)
    assert a.get(4, unhex("0100010601FF"), 5) == b"\x00" + NONE  # no demand yet
    assert a.act(4, MAX_T2, 1, unhex("0F00")) == 0
    assert a.model.get(R.MAX_DEMAND_T1 + 1) == bytes(8)  # as a billing closure leaves it
    assert a.model.get(R.EXT_STATUS) >> R.XS_SETTINGS_CHANGED & 1  # logged as a settings change


def test_demand_register_over_the_billing_engine():
    a = Manager()
    b = a.meter.billing
    b.accumulate(450, 900 * 1000)  # 450 W for the whole period so far
    a.model.set(R.DEMAND_LAST, 1200, persist=False)
    assert a.get(5, DEMAND, 2) == unhex("00 06 000001C2")
    assert a.get(5, DEMAND, 3) == unhex("00 06 000004B0")
    assert a.get(5, DEMAND, 6) == b"\x00" + NONE  # the metering has not started: no period yet
    assert a.get(5, DEMAND, 8) == unhex("00 06 00000384")
    assert a.get(5, DEMAND, 9) == unhex("00 12 0001")
    assert a.act(5, DEMAND, 2, unhex("0F00")) == 0  # next_period: the average closes the period
    assert a.model.get(R.DEMAND_LAST) == 450 and struct.unpack(">I", a.model.get(R.MAX_DEMAND)[:4])[0] == 450
    assert a.get(5, DEMAND, 2) == unhex("00 06 00000000")
    b.accumulate(100, 900 * 1000)
    assert a.act(5, DEMAND, 1, unhex("0F00")) == 0  # reset
    assert a.model.get(R.DEMAND_LAST) == 0 and b.running_demand() == 0
    assert a.set(5, DEMAND, 8, unhex("06 00000708")) == 0 and a.model.get(R.DEMAND_PERIOD) == 1800
    assert a.set(5, DEMAND, 8, unhex("06 00000007")) == 0xFA  # the owner's check: not a period
    assert a.set(5, DEMAND, 8, unhex("12 0708")) == 0x0C and a.model.get(R.DEMAND_PERIOD) == 1800
    assert a.set(5, DEMAND, 3, unhex("06 00000001")) == 3  # not writable


def test_limiter_over_the_contract_limit_and_load_modulation():
    a = Manager()
    assert a.get(71, LIMITER, 2) == unhex("00 0203 1200 03 0906 0100010700FF 0F 02")
    assert a.get(71, LIMITER, 3) == unhex("00 05 000019C8")  # 6000 W + 10 %
    assert a.get(71, LIMITER, 4) == unhex("00 05 00001770")
    assert a.get(71, LIMITER, 6) == unhex("00 06 00000078")
    assert a.get(71, LIMITER, 7) == unhex("00 06 0000003C")
    assert a.get(71, LIMITER, 11) == unhex("00 0202 0202 0906 00000A006AFF 12 0001 0202 0906 00000A006AFF 12 0002")
    assert a.set(71, LIMITER, 4, unhex("05 00000FA0")) == 0
    assert struct.unpack(">IIHBI", a.model.get(R.CONTRACT_1))[1] == 4000 and a.model.get(R.POWER_LIMIT) == 4400
    assert a.set(71, LIMITER, 4, unhex("05 FFFFFFFF")) == 0xFA  # negative
    assert a.set(71, LIMITER, 4, unhex("06 00000FA0")) == 0x0C  # not the monitored value's type
    assert a.set(71, LIMITER, 6, unhex("06 0000003C")) == 0 and a.model.get(R.LOAD_MODULATION)[1:3] == b"\x00\x3c"
    assert a.set(71, LIMITER, 7, unhex("06 00010000")) == 0xFA
    assert a.set(71, LIMITER, 3, unhex("05 00000001")) == 3  # threshold_active follows the contract
    a.ic += 1
    assert a.m.ask(glo(unhex("C1 01 C1 0047 0000110000FF 04 00 05 0000"), a.ic))[0] == 0xD8  # truncated
    assert a.get(71, LIMITER, 4) == unhex("00 05 00000FA0")


def test_clock_time_zone_and_daylight_savings_over_the_dst_rules():
    a = Manager()
    assert a.get(8, CLOCK, 3) == unhex("00 10 FFC4")  # CET: UTC = local - 60 min
    assert a.get(8, CLOCK, 5) == unhex("00 090C FFFF 03 FE 07 01 00 00 00 0000 FF")  # last Sunday of March 01 UTC
    assert a.get(8, CLOCK, 6) == unhex("00 090C FFFF 0A FE 07 01 00 00 00 0000 FF")
    assert a.get(8, CLOCK, 7) == unhex("00 0F 3C")
    assert a.get(8, CLOCK, 8) == unhex("00 03 01")
    assert a.set(8, CLOCK, 3, unhex("10 FF88")) == 0  # UTC+2
    assert struct.unpack(">h", a.model.get(R.DST_RULES)[:2])[0] == 120
    assert a.set(8, CLOCK, 3, unhex("10 8000")) == 0x0C  # not specified
    assert a.set(8, CLOCK, 3, unhex("10 F060")) == 0xFA  # +66 h: the owner refuses it
    assert a.set(8, CLOCK, 5, unhex("090C FFFF 04 08 07 02 00 00 00 0000 FF")) == 0  # 2nd Sunday of April
    assert a.model.get(R.DST_RULES)[3:7] == unhex("04 02 07 02")
    assert a.get(8, CLOCK, 5) == unhex("00 090C FFFF 04 08 07 02 00 00 00 0000 FF")
    assert a.set(8, CLOCK, 6, unhex("090C FFFF 0A 09 07 01 00 00 00 0000 FF")) == 0xFA  # day 9: no week
    assert a.set(8, CLOCK, 6, unhex("090C 07EA 0A FE 07 01 00 00 00 0000 FF")) == 0xFA  # one year only
    assert a.set(8, CLOCK, 7, unhex("0F 1E")) == 0 and a.model.get(R.DST_RULES)[2] == 30
    assert a.set(8, CLOCK, 8, unhex("03 00")) == 0
    assert not a.model.get(R.CONTROL_FLAGS) & 1 and not a.meter.clock.lt.enabled  # the DST rules are off
    assert a.set(8, CLOCK, 4, unhex("11 00")) == 3


SCRIPT_DISCONNECT = unhex("01 02  0202 1200 01 0101 0205 16 02 1200 46 0906 00006003 0AFF 0F 01 0F 00"
                          "       0202 1200 02 0101 0205 16 02 1200 46 0906 00006003 0AFF 0F 02 0F 00")


def test_script_tables_describe_and_run_the_disconnector_and_billing_closure():
    a = Manager()
    assert a.get(9, DISCONNECTOR, 2) == b"\x00" + SCRIPT_DISCONNECT
    assert a.get(9, TARIFF_SCRIPTS, 2).startswith(unhex("00 0104 0202 1200 01 0101 0205 16 01 1200 01 0906 0000600E00FF 0F 02 "
                                                               "11 01"))
    assert a.act(9, DISCONNECTOR, 1, unhex("12 0001")) == 0 and a.model.get(R.CUTOFF_STATE)[0] == 1
    assert a.act(9, DISCONNECTOR, 1, unhex("12 0002")) == 0 and a.model.get(R.CUTOFF_STATE)[0] == 0
    assert a.act(9, DISCONNECTOR, 1, unhex("12 0003")) == 0xFA  # no such script
    assert a.act(9, DISCONNECTOR, 1) == 0x0C  # which script?
    n = a.model.get(R.BILLING_COUNTER)
    assert a.act(9, BILLING_SCRIPTS, 1, unhex("12 0001")) == 0 and a.model.get(R.BILLING_COUNTER) == n + 1
    assert a.act(9, TARIFF_SCRIPTS, 1, unhex("12 0001")) == 3  # the calendar drives the tariff


def test_special_days_table_over_the_public_holidays():
    a = Manager()
    got = a.get(11, SPECIAL_DAYS, 2)
    assert got.startswith(unhex("00 010A 0203 1200 00 0905 FFFF 01 01 FF 11 02  0203 1200 01"))  # 1 Jan, every year
    assert a.act(11, SPECIAL_DAYS, 1, unhex("0203 1200 0A 0905 07EA 03 13 FF 11 02")) == 0  # 2026-03-19
    assert a.model.tables[R.HOLIDAYS].data[40:44] == unhex("07EA 03 13")
    assert a.act(11, SPECIAL_DAYS, 1, unhex("0203 1200 0B 0905 FFFF 03 13 FF 11 01")) == 0xFA  # another day profile
    assert a.act(11, SPECIAL_DAYS, 1, unhex("0203 1200 18 0905 FFFF 03 13 FF 11 02")) == 0xFA  # index 24: no room
    assert a.act(11, SPECIAL_DAYS, 1, unhex("0203 1200 0B 0905 FFFF 0D 13 FF 11 02")) == 0xFA  # month 13
    assert a.act(11, SPECIAL_DAYS, 1, unhex("0202 1200 0B 11 02")) == 0x0C
    assert a.act(11, SPECIAL_DAYS, 2, unhex("12 0000")) == 0  # delete 1 January
    assert a.model.tables[R.HOLIDAYS].data[:4] == bytes(4)
    assert a.get(11, SPECIAL_DAYS, 2)[:4] == unhex("00 010A 02")  # still ten: one in, one out


def test_activity_calendar_over_the_contracts_and_their_tables():
    a = Manager()
    assert a.get(20, CALENDAR, 2) == unhex("00 0901 31")  # contract 1
    assert a.get(20, CALENDAR, 3) == unhex("00 0101 0203 0901 31 090C FFFF 01 01 FF 00 00 00 00 8000 FF 0901 31")
    assert a.get(20, CALENDAR, 4).startswith(unhex("00 0104 0208 0901 31 1100 1100 1100 1100 1100 1101 1102"))
    day0 = b"".join(unhex("0203 0904") + bytes((h, 0, 0, 0)) + unhex("0906 00000A0064FF 12 00") + bytes((band,))
                    for h, band in ((0, 3), (7, 2), (8, 1), (19, 2), (23, 3)))
    assert a.get(20, CALENDAR, 5).startswith(unhex("00 0108 0202 1100 0105") + day0)
    assert a.get(20, CALENDAR, 10) == b"\x00" + NONE
    assert a.act(20, CALENDAR, 1, unhex("0F00")) == 0xFA  # no passive calendar programmed
    assert a.set(20, CALENDAR, 10, dt(T0 + 86400)) == 0xFA  # nor may an empty one be scheduled
    assert a.model.get(R.CONTRACT_2) == bytes(15)
    c2 = struct.pack(">IIHBI", 7, 5000, 1, 2, 0)
    assert C.write(a.model, R.CONTRACT_2, c2) == 0  # as the Original-SMITP WRITE would
    assert a.get(20, CALENDAR, 6) == unhex("00 0901 37")
    assert a.set(20, CALENDAR, 10, dt(T0 + 86400)) == 0
    assert struct.unpack(">IIHBI", a.model.get(R.CONTRACT_2))[4] == T0 + 86400
    assert a.get(20, CALENDAR, 10) == b"\x00" + dt(T0 + 86400)
    assert a.act(20, CALENDAR, 1, unhex("0F00")) == 0  # now
    assert struct.unpack(">IIHBI", a.model.get(R.CONTRACT_1))[:2] == (7, 5000)
    assert a.get(20, CALENDAR, 2) == unhex("00 0901 37")
    assert a.set(20, CALENDAR, 5, unhex("0100")) == 3


def test_single_action_schedule_over_the_billing_settings():
    a = Manager()
    assert a.get(22, SCHEDULE, 2) == unhex("00 0202 0906 00000A0001FF 12 0001")
    assert a.get(22, SCHEDULE, 3) == unhex("00 16 01")
    assert a.get(22, SCHEDULE, 4) == unhex("00 0101 0202 0904 00000000 0905 FFFFFF 01 FF")
    assert a.set(22, SCHEDULE, 4, unhex("0101 0202 0904 06000000 0905 FFFFFF 0F FF")) == 0
    assert a.model.get(R.BILLING_SETTINGS) == b"\x0f\x06"
    assert a.set(22, SCHEDULE, 4, unhex("0101 0202 0904 061E0000 0905 FFFFFF 0F FF")) == 0xFA  # 06:30
    assert a.set(22, SCHEDULE, 4, unhex("0101 0202 0904 06000000 0905 FFFFFF 20 FF")) == 0xFA  # day 32
    assert a.set(22, SCHEDULE, 4, unhex("0101 0202 0903 060000 0905 FFFFFF 0F FF")) == 0x0C
    assert a.set(22, SCHEDULE, 4, unhex("0100")) == 0x0C
    assert a.model.get(R.BILLING_SETTINGS) == b"\x0f\x06"


def test_access_rights_of_the_new_objects():
    m = Meter()
    Metering(m.model, m.store)
    m.ask(aarq())  # public
    assert m.ask(unhex("C0 01 C1 0047 0000110000FF 01 00")) == unhex("C4 01 C1 00 0906 0000110000FF")
    assert m.ask(unhex("C0 01 C1 0047 0000110000FF 04 00")) == unhex("C4 01 C1 01 03")
    m.ask(aarq(mech=1, auth=LLS))  # reader: reads, never writes nor invokes
    assert m.ask(unhex("C0 01 C1 0047 0000110000FF 04 00")) == unhex("C4 01 C1 00 05 00001770")
    assert m.ask(unhex("C1 01 C1 0047 0000110000FF 04 00 05 00000001")) == unhex("C5 01 C1 03")
    assert m.ask(unhex("C3 01 C1 0009 00000A006AFF 01 01 12 0001")) == unhex("C7 01 C1 03 00")
    assert m.model.get(R.CUTOFF_STATE)[0] == 0
    assert m.ask(unhex("C0 01 C1 0047 0000110000FF 0C 00")) == unhex("C4 01 C1 01 04")  # no attribute 12
    from test_dlms_server import read_all

    objects, _ = read_all(m, unhex("C0 01 C1 000F 0000280000FF 02 00"), 1200)
    buffer = unhex("0203 0F02 1601 0102 0F01 0F02")  # the profile buffer: by range, by entry
    assert objects.count(buffer) == 2 and objects.count(unhex("0203 0F04 1601 00")) >= 5  # others: none
    assert unhex("0203 0F04 1601 00") in objects[objects.index(unhex("0906 0000110000FF")):]  # limiter: read
    limiter = [o for o in C.OBJECTS if o[C.O_CLASS] == 71][0]
    assert [C.may_write(limiter, k, C.MANAGER) for k in range(1, 12)] == [
        0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0]


def test_garbage_to_the_new_objects_never_raises():
    a = Manager()
    rng = Rng(13)
    for obj in C.OBJECTS:
        if obj[C.O_CLASS] not in (4, 5, 8, 9, 11, 20, 22, 71):
            continue
        head = obj[C.O_CLASS].to_bytes(2, "big") + obj[C.O_OBIS]
        for k in range(6):
            data = bytes((rng.below(30),)) + rng.bytes(rng.below(12))
            for req in (unhex("C1 01 C1") + head + bytes((1 + rng.below(11), 0)) + data,
                        unhex("C3 01 C1") + head + bytes((1 + rng.below(3), 1)) + data):
                a.ic += 1
                a.m.ask(glo(req, a.ic))  # an answer, ciphered, or an exception-response
    assert a.get(8, CLOCK, 2)[:3] == unhex("00 090C")  # still serving


def test_association_partners_context_and_mechanism_names():
    get = lambda m, a: m.ask(unhex("C0 01 C1 000F 0000280000FF") + bytes((a, 0)))  # noqa: E731
    m = Meter()
    m.ask(aarq())
    assert get(m, 3) == unhex("C4 01 C1 00 0202 0F10 120001")  # the public client, 16
    assert get(m, 4) == unhex("C4 01 C1 00 0207 1102 1110 1202F4 1105 1108 1101 1101")  # 2.16.756.5.8.1.1
    assert get(m, 6) == unhex("C4 01 C1 00 0207 1102 1110 1202F4 1105 1108 1102 1100")  # mechanism 0: none
    m.ask(aarq(mech=1, auth=LLS))
    assert get(m, 3) == unhex("C4 01 C1 00 0202 0F01 120001")
    assert get(m, 6)[-2:] == unhex("1101")  # LLS
    a = Manager()
    assert a.get(15, unhex("0000280000FF"), 4)[-2:] == unhex("1103")  # the ciphered context
    assert a.get(15, unhex("0000280000FF"), 6)[-2:] == unhex("1105")  # HLS-GMAC
    assert a.get(15, unhex("0000280000FF"), 7) == unhex("01 03")  # the secret: never
