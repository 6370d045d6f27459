"""Discovery, registration and routing by the concentrator, against in-process
meters (the firmware under CPython) on the simulated medium, virtual clock."""

import math

import pytest

from meter import attrs as A
from meter.link import netmgmt as NM
from smitp import topology
from smitp.concentrator import Concentrator, NoAnswer, parse_aca
from smitp.discovery import (GUARD_S, MAX_LEVEL, Discovery, answering, journey_s, rc_for, sca_for,
                             timetable)
from smitp.network import neighbourhood
from smitp.sim import build_section, read_every

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


def aca(i):
    return "A8040A1E89%02X" % i


def chain(n):
    """dcu - m1 - m2 - ... - mn."""
    nodes = [{"name": "dcu", "role": "concentrator"}]
    nodes += [{"name": "m%d" % i, "aca": aca(i)} for i in range(1, n + 1)]
    names = ["dcu"] + ["m%d" % i for i in range(1, n + 1)]
    links = [{"a": a, "b": b, "attenuation_db": 40} for a, b in zip(names, names[1:])]
    return topology.load({"nodes": nodes, "links": links})


def setup(topo):
    net, port = neighbourhood(topo, boards=False)
    return net, Discovery(port), Concentrator(port)


def routes_text(d):
    return {a.hex().upper(): [r.hex().upper() for r in route] for a, route in d.routes.items()}


def test_demo_feeder_levels_routes_and_registration():
    net, d, conc = setup(topology.demo_feeder())
    assert d.discover() == 3
    assert routes_text(d) == {"A8040A1E8901": [], "A8040A1E8902": [], "A8040A1E8903": ["A8040A1E8902"]}
    assert {m.aca: m.level for m in d.meters.values()} == {M1: 1, M2: 1, M3: 2}
    assert all(m.silenced for m in d.meters.values())
    assert d.register_all() == 3
    # the SCA is held by the meter itself, in its store, and reported by Status
    node = net.meters["m3"]
    assert node.nm.sca == sca_for(1, d.meters[M3].order)
    assert node.nm.store.get("sca") == node.nm.sca
    st = d.status(M3, d.meters[M3].route)
    assert st["flags"] & NM.ST_REGISTERED and st["flags"] & NM.ST_SILENCED and st["tct"] == 1
    assert st["sca"] == node.nm.sca and st["quality"][1] != 0xFF
    assert all(read_every(d, conc).values())


def test_silenced_meters_stay_quiet_until_unsilenced():
    net, d, conc = setup(topology.demo_feeder())
    d.discover()
    assert d.address_round() == []  # everyone found is silenced (TCT 1 < TCR 0x55)
    assert {a for a, _q in d.address_round(tcr=1)} == {M1, M2}  # a lower threshold reaches them
    d.unsilence()
    assert {a for a, _q in d.address_round()} == {M1, M2}


def test_chain_of_five_needs_four_repeaters():
    net, d, conc = setup(chain(5))
    assert d.discover() == 5
    routes = routes_text(d)
    assert routes[aca(5)] == [aca(1), aca(2), aca(3), aca(4)]
    assert max(m.level for m in d.meters.values()) == 5
    assert d.register_all() == 5
    assert sum(read_every(d, conc).values()) == 5


def test_depth_stops_at_the_mac_limit():
    net, d, _conc = setup(chain(MAX_LEVEL + 1))
    assert d.discover() == MAX_LEVEL  # the tenth meter would need 9 repeaters
    assert parse_aca(aca(MAX_LEVEL + 1)) not in d.meters


def test_many_direct_meters_all_found_despite_collisions():
    nodes = [{"name": "dcu", "role": "concentrator"}] + [{"name": "m%d" % i, "aca": aca(i)} for i in range(1, 61)]
    links = [{"a": "dcu", "b": "m%d" % i, "attenuation_db": 40} for i in range(1, 61)]
    net, d, _conc = setup(topology.load({"nodes": nodes, "links": links}))
    d.unsilence()
    assert len(d.discover_direct()) == 60
    assert net.medium.stats["collisions"] > 0
    assert d.stats["rounds"] > 2  # crowded: the address filter split the group


def test_a_crowd_beyond_one_round_is_found_by_address_groups():
    # 150 direct meters: more than the 64 slots of RC4 hold; the first round to
    # a quarter tells how many to expect, the groups get the disciplines that suit them
    nodes = [{"name": "dcu", "role": "concentrator"}] + [{"name": "m%d" % i, "aca": "A8040A1E%04X" % i}
                                                        for i in range(1, 151)]
    links = [{"a": "dcu", "b": "m%d" % i, "attenuation_db": 40} for i in range(1, 151)]
    net, d, _conc = setup(topology.load({"nodes": nodes, "links": links}))
    d.unsilence()
    t0 = net.clock.now()
    assert len(d.discover_direct()) == 150
    # Random slots let at best one answer in e come through alone: 150 x e slots
    # of 250 ms (102 s), then the silencing. Within twice that (RC4 rounds
    # only, splitting crowded groups, took 274 s).
    assert net.clock.now() - t0 < 2 * 150 * math.e * 0.25


def test_relays_of_a_level_listen_at_once():
    # six direct meters that do not hear each other, three meters behind each
    nodes = [{"name": "dcu", "role": "concentrator"}]
    links = []
    for i in range(1, 7):
        nodes.append({"name": "m%d" % i, "aca": aca(i)})
        links.append({"a": "dcu", "b": "m%d" % i})
        for j in range(3):
            k = 16 * i + j
            nodes.append({"name": "m%d" % k, "aca": aca(k)})
            links.append({"a": "m%d" % i, "b": "m%d" % k})
    net, d, conc = setup(topology.load({"nodes": nodes, "links": links}))
    assert d.discover() == 24
    assert all(d.meters[parse_aca(aca(16 * i + j))].route == (parse_aca(aca(i)),) for i in range(1, 7) for j in range(3))
    # 24 relays asked at least once: 24 windows of 16 s one after the other;
    # overlapping, the two levels take a few
    window = NM.RELAY_WINDOW_MS / 1000.0
    assert d.stats["reqaddr"] >= 24 and d.phase_s["relays"] < 6 * window
    assert d.register_all() == 24 and all(read_every(d, conc).values())


def test_timetable_keeps_requests_relay_broadcasts_and_answers_apart():
    window = NM.RELAY_WINDOW_MS / 1000.0
    broadcast = 0.02 + journey_s(0, 5)
    for reps in (0, 3, 7):
        times = timetable([reps] * 500)
        there, back = journey_s(reps, 5), journey_s(reps, 2 + 4 * 12)
        assert 1 < len(times) < 500 and times[0] == 0.0
        reach = [t + there for t in times]
        for a, b in zip(reach, reach[1:]):
            assert b - there >= a + broadcast + GUARD_S - 1e-9  # after the relay's ADDRESS.REQ
            assert b >= a + back + GUARD_S - 1e-9  # the previous answer is home
        assert reach[-1] + broadcast <= reach[0] + window  # all out before the first answer


def test_answers_expected_and_the_discipline_for_them():
    assert answering(0, 8) == 0 and answering(8, 8) == 8
    # 40 answers in 64 slots leave about 21.6 alone: 22 heard means about 40 answered
    assert 36 <= answering(22, 64) <= 44
    assert [rc_for(n) for n in (1, 6, 12, 24, 60)] == [0xC, 0xC, 0xD, 0xE, 0xF]


def test_route_failure_is_repaired_through_another_repeater():
    # dcu - m1 - m3 - m4 and dcu - m2 - m3: m3 is found through m1 or m2
    topo = topology.load({
        "nodes": [{"name": "dcu", "role": "concentrator"}] + [{"name": "m%d" % i, "aca": aca(i)} for i in (1, 2, 3, 4)],
        "links": [{"a": "dcu", "b": "m1"}, {"a": "dcu", "b": "m2"}, {"a": "m1", "b": "m3"},
                  {"a": "m2", "b": "m3"}, {"a": "m3", "b": "m4"}],
    })
    net, d, conc = setup(topo)
    d.discover()
    d.register_all()
    m1, m2, m3, m4 = (parse_aca(aca(i)) for i in (1, 2, 3, 4))
    (via,) = d.meters[m3].route
    other = m2 if via == m1 else m1
    assert via in (m1, m2) and d.meters[m4].route == (via, m3)
    assert all(read_every(d, conc).values())
    net.medium.set_power("m%d" % via[5], False)
    with pytest.raises(NoAnswer):
        conc.read(m4, [0x003F], d.meters[m4].route)
    reads = read_every(d, conc)
    assert reads[other] and reads[m3] and reads[m4] and not reads[via]
    assert via in d.dead
    assert d.meters[m3].route == (other,) and d.meters[m4].route == (other, m3)
    assert d.stats["rerouted"] >= 1


def test_repair_finds_a_hidden_alternative_with_a_filtered_reqaddr():
    # m4 was only ever reported by m3; when m3 dies, m5 (which also hears m4)
    # is not a known neighbour of m4, so the search asks candidates for m4 alone.
    topo = topology.load({
        "nodes": [{"name": "dcu", "role": "concentrator"}] + [{"name": "m%d" % i, "aca": aca(i)} for i in (3, 4, 5)],
        "links": [{"a": "dcu", "b": "m3"}, {"a": "dcu", "b": "m5"}, {"a": "m3", "b": "m4"}, {"a": "m5", "b": "m4"}],
    })
    net, d, conc = setup(topo)
    d.discover()
    m3, m4, m5 = (parse_aca(aca(i)) for i in (3, 4, 5))
    via = d.meters[m4].route[0]
    net.medium.set_power("m%d" % via[5], False)
    other = m5 if via == m3 else m3
    assert d.repair(d.meters[m4])
    assert d.meters[m4].route == (other,)


def test_unreachable_meter_is_reported_not_fatal():
    topo = topology.load({
        "nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": aca(1)}, {"name": "m9", "aca": aca(9)}],
        "links": [{"a": "dcu", "b": "m1"}],
    })
    net, d, conc = setup(topo)
    assert d.discover() == 1
    d.register_all()
    net.medium.set_power("m1", False)
    m = d.meters[parse_aca(aca(1))]
    assert not d.repair(m)
    assert read_every(d, conc) == {m.aca: False}


def test_deregister_ping_and_link_quality():
    net, d, _conc = setup(topology.demo_feeder())
    d.discover()
    d.register_all()
    route = d.meters[M3].route
    assert d.ping(M3, route) and not d.ping(M3, ())
    assert d.deregister(M3, route)
    assert net.meters["m3"].nm.sca is None
    ans = d.exchange(M3, bytes((A.PING_REQ, 1, 2, 3)), route)
    # m3 heard m2's copy over a 44 dB link: 76 dBuV, 16 dB SNR, 5 ohm
    assert ans == bytes((A.PING_RESP, 76, 16, 50, 1, 2, 3))


def test_meters_in_different_phases_skip_phase_one_requests():
    net, port = build_section(topology.demo_feeder())
    net.phases.update({"dcu": 1, "m1": 1, "m2": 2, "m3": 2})
    d = Discovery(port)
    assert {a for a, _q in d.address_round(tcr=0)} == {M1, M2}
    assert [a for a, _q in d.address_round(tcr=0, phase=1)] == [M1]
