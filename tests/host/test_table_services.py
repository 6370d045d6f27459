"""Table services end to end through the concentrator: a simulated week on
in-process meters (virtual time, one meter behind a repeater), then emulated
boards running the firmware on MicroPython with injected dips and outages."""

import json
import struct

import pytest

from meter.model import events as E
from meter.model import profiles as P
from meter.model import registers as R
from meter.app import tables as TB
from meterkit import DAY, K1, K2, Sim, local_utc
from smitp import topology
from smitp.cli import main
from smitp.concentrator import Concentrator, Nack, parse_aca
from smitp.emulated_board import EmulatedBoard
from smitp.medium import Medium
from smitp.network import Network, VirtualClock
from smitp.provision import provision_image
from smitp.secure import KeyRing
from smitp.values import decode_record, show_record

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


def ring():
    return KeyRing.from_dict({a.hex(): {"k1": K1.hex(), "k2": K2.hex()} for a in (M1, M2, M3)})


@pytest.fixture
def week():
    """Three meters after a simulated week, on the demo feeder (M3 behind M2)."""
    topo = topology.load(topology.demo_feeder())
    net = Network(Medium(topology=topo), VirtualClock())
    sims, port = {}, None
    t0 = local_utc(2026, 2, 27)
    for node in topo["nodes"]:
        if node["role"] == "concentrator":
            port = net.add_concentrator(node["name"])
            continue
        aca = bytes.fromhex(node["aca"])
        sim = Sim(t0, keys=True, watts=400 * len(sims) + 400, aca=aca)
        sims[aca] = sim
        net.add_meter(node["name"], sim.node)
    for sim in sims.values():
        sim.run(3 * DAY + 600)
        sim.voltage(0, 0), sim.voltage(1, 0), sim.voltage(2, 0)  # a 10 minute outage
        sim.run(600)
        sim.load(400 * (list(sims).index(sim.aca) + 1))
        sim.run_until(t0 + 7 * DAY)
    return t0, sims, Concentrator(port, keyring=ring())


def test_week_read_back_through_the_concentrator(week):
    t0, sims, conc = week
    lp = conc.read_table(M3, R.LOAD_PROFILE, route=(M2,), auth=True)
    assert len(lp) == 7 * 96 - 1 and [n for n, _ in lp] == list(range(len(lp)))  # one capture fell in the outage
    first = decode_record(R.LOAD_PROFILE, lp[0][1])
    assert first["time"] == t0 + 900 and first["import"] == 3 * 1200 * 900 // 3600
    # a time window, and a selective read of one field
    day2 = conc.read_table(M3, R.LOAD_PROFILE, t0 + DAY, t0 + 2 * DAY, route=(M2,), auth=True)
    assert len(day2) == 96
    imports = conc.read_records(M1, R.LOAD_PROFILE, 10, 100, mask=0b100, auth=True)
    assert len(imports) == 100 and {struct.unpack(">H", raw)[0] for _, raw in imports} == {300}
    events = [decode_record(R.EVENT_LOG, raw) for _, raw in conc.read_table(M1, R.EVENT_LOG)]  # plain suffices
    ups = [e for e in events if e["event"] == E.EV_POWER_UP]
    assert ups[-1]["data"] == 600 and ups[-1]["event name"] == "power up"
    bills = conc.read_table(M2, R.BILLING_DATA, auth=True)
    assert decode_record(R.BILLING_DATA, bills[0][1])["time"] == local_utc(2026, 3, 1)
    assert "maximum demand 2400 W" in show_record(R.BILLING_DATA, bills[0][1])
    with pytest.raises(Nack) as e:
        conc.read_table(M1, R.LOAD_PROFILE)  # the load profile needs a key
    assert e.value.code == 2


def test_commands_custom_tables_writetab_and_dataspont_through_a_repeater(week):
    _t0, sims, conc = week
    sim3 = sims[M3]
    conc.command(M3, TB.CMD_SYNC_CLOCK, struct.pack(">I", sim3.now() + 7), route=(M2,), auth=True)
    assert sim3.events(E.EV_CLOCK_SYNC)[-1][2] == 7
    conc.command(M3, TB.CMD_OPEN_CUTOFF, route=(M2,), auth=True)
    assert sim3.relay_moves == [True]
    with pytest.raises(Nack):
        conc.command(M3, TB.CMD_CLOSE_CUTOFF, route=(M2,))  # plain: refused
    conc.command(M3, TB.CMD_CLOSE_CUTOFF, route=(M2,), auth=True)
    conc.set_custom(M1, 1, [R.ENERGY_IMPORT, R.FIRMWARE_ID, R.FIRMWARE_ID, R.CLOCK, R.MAX_DEMAND], auth=True)
    values = conc.get_custom(M1, 1, auth=True)  # 4 + 48 + 48 + 4 + 8 bytes: two answers
    assert [r for r, _ in values] == [R.ENERGY_IMPORT, R.FIRMWARE_ID, R.FIRMWARE_ID, R.CLOCK, R.MAX_DEMAND]
    assert int.from_bytes(values[0][1], "big") == sims[M1].reg(R.ENERGY_IMPORT)
    # 96 bytes: two messages when authenticated
    holidays = b"".join(struct.pack(">HBB", 2026, 4, d) for d in range(1, 25))
    conc.write_table(M1, R.HOLIDAYS, 0, holidays, auth=True)
    assert bytes(sims[M1].meter.tables[R.HOLIDAYS].data) == holidays
    assert [raw for _, raw in conc.read_table(M1, R.HOLIDAYS)] == [holidays[i:i + 4] for i in range(0, 96, 4)]
    conc.reset_tables(M1, [R.HOLIDAYS], auth=True)
    assert bytes(sims[M1].meter.tables[R.HOLIDAYS].data) == R.DEFAULTS[R.HOLIDAYS]
    spont, ack = conc.spontaneous(M3, 0, route=(M2,), auth=True)
    codes = [decode_record(R.EVENT_LOG, raw)["event"] for _, raw in spont]
    assert codes.count(E.EV_CUTOFF_OPEN) == 1 and E.EV_POWER_DOWN in codes
    assert sims[M3].reg(R.SPONT_ACK) == ack and not sims[M3].reg(R.STATUS_WORD) & (1 << R.SW_SPONT_PENDING)


def test_year_read_back_through_the_concentrator():
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": M1.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(topology=topo), VirtualClock())
    port = net.add_concentrator("dcu")
    t0 = local_utc(2026, 1, 1)
    sim = Sim(t0, keys=True, watts=1000, aca=M1)
    net.add_meter("m1", sim.node)
    sim.run_until(local_utc(2027, 1, 1), step=3600)
    conc = Concentrator(port, keyring=ring())
    bills = [decode_record(R.BILLING_DATA, raw) for _, raw in conc.read_table(M1, R.BILLING_DATA, auth=True)]
    assert [b["time"] for b in bills] == [local_utc(2026 + m // 12, m % 12 + 1, 1) for m in range(1, 13)]
    assert all(b["import"] == 3000 * (b["time"] - t0) // 3600 for b in bills)
    dst = [decode_record(R.EVENT_LOG, raw) for _, raw in conc.read_table(M1, R.EVENT_LOG)]
    assert [(e["time"], e["data"]) for e in dst if e["event"] == E.EV_DST] == [(1774746000, 120), (1792890000, 60)]
    days = {decode_record(R.DAILY_ENERGIES, raw)["time"]: decode_record(R.DAILY_ENERGIES, raw)
            for _, raw in conc.read_table(M1, R.DAILY_ENERGIES, local_utc(2026, 12, 7), local_utc(2026, 12, 11),
                                          auth=True)}
    t1 = [days[local_utc(2026, 12, d + 1)]["import T1"] - days[local_utc(2026, 12, d)]["import T1"] for d in (7, 8, 9)]
    assert t1 == [33000, 0, 33000]  # 8 December, a Tuesday, is a public holiday
    newest = decode_record(R.LOAD_PROFILE, conc.read(M1, [R.LOAD_PROFILE], auth=True)[R.LOAD_PROFILE])
    assert newest["time"] == local_utc(2027, 1, 1) and newest["import"] == 750


def _board_net(tmp_path, time_scale, **kw):
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": M1.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=48000, topology=topo))
    board = EmulatedBoard("m1", M1.hex(), "SNTAB", tmp_path, time_scale=time_scale, **kw)
    provision_image(board.flash, K1, K2)
    slot = net.add_board("m1", board)
    port = net.add_concentrator("dcu")
    assert net.run_until(lambda: "modem configured" in board.log_text(), 20), board.log_text()
    return net, slot, Concentrator(port, keyring=ring())


def test_emulated_board_dips_outage_cutoff_and_profile(tmp_path):
    net, slot, conc = _board_net(tmp_path, 60, load="1000,1000,1000")  # a minute every second
    board = slot.board
    try:
        conc.write(M1, {R.PROFILE_PERIOD: struct.pack(">H", 300)}, auth=True)
        net.run_for(2)
        board.set_mains(volts=(230, 180, 230))  # a dip on L2 (about two minutes of meter time)
        net.run_for(2.2)
        board.set_mains(volts=(0, 0, 0))  # the supply fails
        net.run_for(3.2)
        board.set_mains(volts=(230, 230, 230))
        net.run_for(1.5)
        conc.command(M1, TB.CMD_OPEN_CUTOFF, auth=True)
        net.run_for(1.5)
        assert "cut-off device open" in board.log_text()
        p = int.from_bytes(conc.read(M1, [R.ACTIVE_POWER])[R.ACTIVE_POWER], "big", signed=True)
        assert p == 0  # no current through an open cut-off device
        conc.command(M1, TB.CMD_CLOSE_CUTOFF, auth=True)
        net.run_for(7)
        var = [decode_record(R.VARIATION_LOG, raw) for _, raw in conc.read_table(M1, R.VARIATION_LOG)]
        assert var and var[0]["phase"] == 2 and var[0]["kind"] == 1 and var[0]["extreme voltage"] == 180.0
        assert 60 <= var[0]["duration"] <= 240
        (outage,) = [decode_record(R.INTERRUPTION_LOG, raw) for _, raw in conc.read_table(M1, R.INTERRUPTION_LOG)]
        assert outage["phases"] == "7" and 120 <= outage["duration"] <= 300
        lp = [decode_record(R.LOAD_PROFILE, raw) for _, raw in conc.read_table(M1, R.LOAD_PROFILE, auth=True)]
        # every 5 minutes of meter time; the outage may have taken one capture
        assert len(lp) >= 2 and all(b["time"] - a["time"] in (300, 600) for a, b in zip(lp, lp[1:]))
        assert any(int(r["status"], 16) & P.PS_CUTOFF for r in lp)
        assert any(int(r["status"], 16) & P.PS_POWER for r in lp)
        evs = [decode_record(R.EVENT_LOG, raw)["event"] for _, raw in conc.read_table(M1, R.EVENT_LOG)]
        for code in (E.EV_UNDERVOLTAGE, E.EV_POWER_DOWN, E.EV_POWER_UP, E.EV_CUTOFF_OPEN, E.EV_CUTOFF_CLOSE):
            assert code in evs, (code, evs)
    finally:
        net.close()


def test_cli_read_readtab_and_command(capsys):
    assert main(["readtab", "--emulated", "--meter", "A8040A1E8901", "--table", "contract 1 day profiles", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["table"]["id"] == "0x0510" and len(rep["records"]) == 8
    assert rep["records"][0]["values"]["switch point 3"] == "08:00 T1"
    assert main(["read", "--emulated", "--meter", "A8040A1E8901", "--register", "DST rules", "--register", "voltage L1"]) == 0
    out = capsys.readouterr().out
    assert "end month 10" in out and "230.0 V" in out
    assert main(["command", "--emulated", "--meter", "A8040A1E8901", "freeze", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == "ACK"
    assert main(["command", "--emulated", "--meter", "A8040A1E8901", "close-billing"]) == 1  # refused by the meter: needs the write key
    assert "access denied" in capsys.readouterr().err
