# Virtual-time scenarios: a simulated week and a simulated year of one meter,
# read back through the table services (BUFF_SELECT + READTAB block reads,
# READ, COMMAND) exactly as the concentrator sends them.
import struct

from meter.model import billing as BL
from meter.model import events as E
from meter.model import profiles as P
from meter.model import registers as R
from meter.app import tables as TB
from meterkit import DAY, HOUR, Sim, local_utc, reboot


def test_simulated_week():
    t0 = local_utc(2026, 2, 27)  # Friday 00:00 CET
    sim = Sim(t0, watts=1000)  # 3 kW on three phases
    # Friday 10:02-10:07: the supply fails for 5 minutes (measured: a clean power-down)
    sim.run_until(local_utc(2026, 2, 27, 10, 2))
    sim.voltage(0, 0), sim.voltage(1, 0), sim.voltage(2, 0)
    sim.run(300)
    sim.load(1000)
    # Saturday 14:00: a 20 s dip to 190 V on L2
    sim.run_until(local_utc(2026, 2, 28, 14))
    sim.voltage(1, 1900)
    sim.run(20, step=20)
    sim.voltage(1, 2300)
    # Sunday 00:00: the programmed billing closure (day 1 of the month)
    closure = local_utc(2026, 3, 1)
    sim.run_until(closure)
    at_closure = sim.reg(R.ENERGY_IMPORT)
    # Monday 19:30: 7.5 kW against a 6 kW contract (+10 %) for half an hour
    sim.run_until(local_utc(2026, 3, 2, 19, 30))
    sim.load(2500)
    sim.run(30 * 60)
    locked = 1 << R.SW_LM_LOCKED | 1 << R.SW_CUTOFF_OPEN
    assert sim.reg(R.STATUS_WORD) & locked == locked  # three automatic reconnections used up
    sim.load(1000)
    sim.run(30 * 60)
    assert sim.command(TB.CMD_CLOSE_CUTOFF)[0] == 253
    # Tuesday 12:00:30: synchronised +10 s; 12:31: set +300 s (beyond the tolerance)
    sim.run_until(local_utc(2026, 3, 3, 12) + 30)
    assert sim.command(TB.CMD_SYNC_CLOCK, struct.pack(">I", sim.now() + 10))[0] == 253
    sim.run_until(local_utc(2026, 3, 3, 12, 31))
    assert sim.command(TB.CMD_SYNC_CLOCK, struct.pack(">I", sim.now() + 300))[0] == 253
    # Wednesday 09:07:30: a power cut without warning, 10 minutes
    sim.run_until(local_utc(2026, 3, 4, 9, 7) + 30)
    before = sim.reg(R.ENERGY_IMPORT)
    sim = reboot(sim, 600)
    lost = before - sim.reg(R.ENERGY_IMPORT)
    assert 0 <= lost <= 3000 * 300 // 3600 + 1  # at most one persistence interval
    sim.run_until(t0 + 7 * DAY)

    # ---- read back with the table services
    profile = [sim.unpack(R.LOAD_PROFILE, r) for r in sim.records(R.LOAD_PROFILE)]
    assert len(profile) == 7 * 96 - 1  # the 09:15 capture fell in the outage
    times = [p[0] for p in profile]
    assert times == sorted(times) and times[0] == t0 + 900 and times[-1] == t0 + 7 * DAY
    by_time = {p[0]: p for p in profile}
    assert by_time[local_utc(2026, 2, 27, 10, 15)][1] & P.PS_POWER
    assert by_time[local_utc(2026, 2, 27, 10, 15)][2] == 3000 * 600 // 3600  # 10 of the 15 minutes
    assert by_time[local_utc(2026, 2, 28, 14, 15)][1] & P.PS_VOLTAGE
    assert by_time[local_utc(2026, 3, 2, 19, 45)][1] & P.PS_CUTOFF
    assert by_time[local_utc(2026, 3, 3, 12, 45)][1] & P.PS_CLOCK
    assert not by_time[local_utc(2026, 3, 3, 12, 15)][1] & P.PS_CLOCK  # a synchronisation only
    assert by_time[local_utc(2026, 3, 4, 9, 30)][1] & (P.PS_POWER | P.PS_SHORT) == P.PS_POWER | P.PS_SHORT
    assert by_time[local_utc(2026, 2, 28, 12)][2] == 750  # 3 kW for 15 minutes

    evs = sim.events()
    codes = [e[1] for e in evs]
    downs = sim.events(E.EV_POWER_DOWN)
    ups = sim.events(E.EV_POWER_UP)
    assert [d[2] for d in downs] == [1, 0]  # measured, then a cut without warning
    assert ups[1][2] == 300  # the measured outage: 5 minutes exactly
    assert ups[2][2] & (1 << 31) and 600 <= ups[2][2] & 0xFFFFFF <= 900  # estimated from the last save
    assert codes.count(E.EV_OVER_LIMIT) == 4 and codes.count(E.EV_CUTOFF_OPEN) == 4
    assert [e[2] for e in sim.events(E.EV_CUTOFF_CLOSE)] == [3, 3, 3, 1]  # 3 automatic, then the command
    opens = [e[0] for e in sim.events(E.EV_CUTOFF_OPEN)]
    t_lm = local_utc(2026, 3, 2, 19, 30)
    assert opens == [t_lm + 120, t_lm + 300, t_lm + 480, t_lm + 660]
    assert [e[2] for e in sim.events(E.EV_CLOCK_SYNC)] == [10]
    assert len(sim.events(E.EV_CLOCK_SET)) == 1
    assert sim.events(E.EV_BILLING)[0][0:3] == (closure, E.EV_BILLING, BL.BILL_PROGRAMMED)
    assert sim.reg(R.LM_TRIPS) == 4 and sim.reg(R.CUTOFF_OPERATIONS) == 8

    (bill,) = [sim.unpack(R.BILLING_DATA, r) for r in sim.records(R.BILLING_DATA)]
    assert bill[0:3] == (closure, BL.BILL_PROGRAMMED, at_closure)
    assert bill[2] == sum(bill[3:7])  # the bands add up to the total
    assert bill[10] == 3000 and bill[11] % 900 == 0  # the maximum demand of the period, at a period end

    (outage, cut) = [sim.unpack(R.INTERRUPTION_LOG, r) for r in sim.records(R.INTERRUPTION_LOG, grant=R.ACC_PLAIN)]
    assert outage == (local_utc(2026, 2, 27, 10, 2), 300, 0x07)
    assert cut[2] == 0x87 and sim.reg(R.LONG_INTERRUPTIONS) == 2 and sim.reg(R.SHORT_INTERRUPTIONS) == 0
    (dip,) = [sim.unpack(R.VARIATION_LOG, r) for r in sim.records(R.VARIATION_LOG, grant=R.ACC_PLAIN)]
    assert dip == (local_utc(2026, 2, 28, 14), 20, 2, 1, 1900)
    days = [sim.unpack(R.DAILY_ENERGIES, r) for r in sim.records(R.DAILY_ENERGIES)]
    assert [d[0] for d in days] == [t0 + k * DAY for k in range(1, 8)]


def test_simulated_year_across_dst_and_a_holiday():
    t0 = local_utc(2026, 1, 1)
    sim = Sim(t0, watts=1000)
    # the last Friday of March before DST: T1 from 08:00 CET = 07:00 UTC
    sim.run_until(local_utc(2026, 3, 27, 7, 59), step=HOUR)
    assert sim.reg(R.CURRENT_BAND) == 2
    sim.run(60)
    assert sim.reg(R.CURRENT_BAND) == 1 and sim.now() == 1774594800  # 07:00 UTC
    # the Monday after: 08:00 CEST = 06:00 UTC
    sim.run_until(local_utc(2026, 3, 30, 7, 59), step=HOUR)
    assert sim.reg(R.CURRENT_BAND) == 2
    sim.run(60)
    assert sim.reg(R.CURRENT_BAND) == 1 and sim.now() == 1774850400  # 06:00 UTC
    assert sim.reg(R.STATUS_WORD) & (1 << R.SW_DST)
    sim.run_until(local_utc(2027, 1, 1), step=HOUR)

    dst = sim.events(E.EV_DST)
    assert [(e[0], e[2]) for e in dst] == [(1774746000, 120), (1792890000, 60)]
    days = {}
    for r in sim.records(R.DAILY_ENERGIES):
        d = sim.unpack(R.DAILY_ENERGIES, r)
        days[d[0]] = d
    def t1_of(y, m, d):  # T1 energy of a day: the difference of two midnight readings
        return days[local_utc(y, m, d + 1)][3] - days[local_utc(y, m, d)][3]
    assert t1_of(2026, 12, 7) == 33000  # Monday: 08:00-19:00 at 3 kW
    assert t1_of(2026, 12, 8) == 0  # Tuesday 8 December: a public holiday, all T3
    assert t1_of(2026, 12, 9) == 33000
    assert 60 <= len(days) <= 64  # the ring keeps the last 60 to 64 days
    bills = [sim.unpack(R.BILLING_DATA, r) for r in sim.records(R.BILLING_DATA)]
    assert [b[0] for b in bills] == [local_utc(2026 + m // 12, m % 12 + 1, 1) for m in range(1, 13)]
    for b in bills:
        assert b[1] == BL.BILL_PROGRAMMED and b[2] == 3000 * (b[0] - t0) // 3600
        assert b[2] == sum(b[3:7])
    lp = sim.meter.tables[R.LOAD_PROFILE]
    assert lp.end == 365 * 96 and 2754 <= len(lp) <= 3060
    newest = sim.unpack(R.LOAD_PROFILE, sim.read(R.LOAD_PROFILE))
    assert newest[0] == local_utc(2027, 1, 1) and newest[2] == 750
    assert sim.reg(R.ENERGY_IMPORT) == 3000 * 8760
