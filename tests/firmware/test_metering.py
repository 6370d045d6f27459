# The engines' smaller rules, and the board feed of the firmware.
import struct

from meter.model import cutoff as CO
from meter.model import events as E
from meter.model import registers as R
from meter.model.metering import BoardFeed, Sample
from meterkit import DAY, HOUR, Sim, local_utc


class FakeBoard:
    def __init__(self, t):
        self.t = t
        self.power = (1200, 0)

    def unix_time(self):
        return self.t

    def set_unix_time(self, t):
        self.t = t

    def power_w(self):
        return self.power


def test_board_feed_without_metrology_or_ms_clock():
    sim = Sim(watts=0)
    board = FakeBoard(sim.now())
    feed = BoardFeed(board, sim.meter)
    ticks = 0
    feed.tick(ticks)  # the first tick only takes a sample
    for _ in range(3600):
        ticks += 1000
        board.t += 1
        feed.tick(ticks)
    assert sim.reg(R.ENERGY_IMPORT) == 1200 and sim.reg(R.VOLTAGE_L1) == 2300
    board.t += 86400  # the RTC jumped: a clock change, not a day of energy
    feed.tick(ticks + 1000)
    assert sim.reg(R.ENERGY_IMPORT) == 1200 and sim.events(E.EV_CLOCK_SET)


def test_export_reactive_and_power_factor():
    sim = Sim()
    sim.load(-500, vars_=200)
    sim.run(HOUR)
    assert sim.reg(R.ENERGY_EXPORT) == 1500 and sim.reg(R.ENERGY_IMPORT) == 0
    assert sim.reg(R.REACTIVE_IMPORT) == 600 and sim.reg(R.ACTIVE_POWER) == -1500
    assert sim.reg(R.POWER_FACTOR) == -928  # -1500 / sqrt(1500^2 + 600^2)
    assert sim.reg(R.EXT_STATUS) & (1 << R.XS_EXPORT)


def test_maximum_demand_per_band_and_reset_at_closure():
    sim = Sim(local_utc(2026, 1, 5), watts=1000)  # Monday 00:00, T3
    sim.run(8 * HOUR)
    sim.load(2000)  # 6 kW from 08:00 (T1) for 20 minutes
    sim.run(20 * 60)
    sim.load(1000)
    sim.run(HOUR)
    md = struct.unpack(">II", sim.reg(R.MAX_DEMAND))
    assert md == (6000, local_utc(2026, 1, 5, 8, 15))
    assert struct.unpack(">II", sim.reg(R.MAX_DEMAND_T1))[0] == 6000
    assert struct.unpack(">II", sim.reg(R.MAX_DEMAND_T1 + 2))[0] == 3000
    vb = struct.unpack(R.LAYOUTS[R.VIRTUAL_BILLING][0], sim.reg(R.VIRTUAL_BILLING))
    assert vb[10] == 6000 and vb[2] == sim.reg(R.ENERGY_IMPORT)
    sim.command(1)
    assert sim.reg(R.MAX_DEMAND) == bytes(8)


def test_energy_survives_a_restart_with_its_rests():
    sim = Sim(watts=1)  # 3 W: a Wh every 20 minutes
    sim.run(300)
    sim.meter.save()
    rests = list(sim.meter.energy.rest)
    from meterkit import reboot

    again = reboot(sim, 0)
    assert again.meter.energy.rest == rests and again.reg(R.ENERGY_IMPORT) == sim.reg(R.ENERGY_IMPORT)
    assert again.reg(R.POWER_UPS) == 2


def test_cutoff_state_kept_across_a_restart_and_the_relay_follows():
    from meterkit import reboot

    sim = Sim()
    sim.command(2)
    again = reboot(sim, 60)
    assert again.reg(R.STATUS_WORD) & (1 << R.SW_CUTOFF_OPEN)
    moves = []
    from meter.model.datamodel import DataModel
    from meter.model.metering import Metering

    Metering(DataModel("SN", sim.aca, "fw", sim.store, sim.now), sim.store, moves.append)
    assert moves == [True]  # the relay takes the saved state at power-up


def test_manual_reconnection_mode():
    sim = Sim(watts=1000)
    sim.write(R.LOAD_MODULATION, struct.pack(">BHBHB", 0, 60, 0, 30, 3))  # no tolerance, 60 s, manual
    sim.load(2100)  # 6.3 kW > 6 kW
    sim.run(10 * 60)
    opens = sim.events(E.EV_CUTOFF_OPEN)
    assert len(opens) == 1 and opens[0][2] == CO.WHY_LOAD and not sim.events(E.EV_CUTOFF_CLOSE)
    assert sim.reg(R.LM_TRIPS) == 1


def test_profile_period_change_and_measurand_profile():
    sim = Sim(watts=1000)
    sim.voltage(2, 2400)
    sim.run(DAY)
    mp = [struct.unpack(R.LAYOUTS[R.MEASURAND_PROFILE][0], r) for r in sim.records(R.MEASURAND_PROFILE)]
    assert len(mp) == 96 and mp[5][1:7] == (2300, 2300, 2400, 2300, 2400, 434)
    assert sim.reg(R.ENERGY_TODAY_IMPORT) == 0  # midnight just passed
    sim.run(HOUR)
    assert sim.reg(R.ENERGY_TODAY_IMPORT) == 3000


def test_local_time_register_and_season():
    sim = Sim(local_utc(2026, 7, 14, 12, 30))
    lt = struct.unpack(R.LAYOUTS[R.LOCAL_TIME][0], sim.reg(R.LOCAL_TIME))
    assert lt == (2026, 7, 14, 12, 30, 0, 2, 1)
    assert sim.reg(R.CURRENT_SEASON) == 0


def test_every_register_answered_by_the_owner_its_row_names():
    from meter.display.manager import Display

    sim = Sim(keys=True)
    Display(sim.model)
    engines = {}
    for row in R.TABLE:
        name, reg = row[R.R_OWNER], row[R.R_ID]
        owner = sim.model.owner(reg)
        if name in ("model", "node"):  # kept by the data model; given by the node through provide()
            assert owner is None, hex(reg)
        else:
            assert owner is not None and engines.setdefault(name, owner) is owner, hex(reg)
    assert len(set(id(e) for e in engines.values())) == len(engines)  # one engine per owner name
    assert sim.model.owner(R.CLOCK) is sim.meter.clock and sim.model.owner(R.POWER_UPS) is sim.meter

