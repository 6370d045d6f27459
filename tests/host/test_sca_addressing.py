"""Logical (SCA) addressing from the concentrator: after registration a meter
behind repeaters is read by SCA with 2-byte repeater entries (the saving
measured on the medium), a direct meter keeps its ACA, and an SCA two meters
claim is addressed by neither."""

import pytest

from meter.link import mac
from meter.model import registers as R
from smitp import topology
from smitp.concentrator import Concentrator
from smitp.discovery import Discovery
from smitp.errors import PeerError
from smitp.network import neighbourhood
from smitp.scabook import ScaBook, ScaCollision, read_cost

M1, M2 = bytes.fromhex("A8040A1E8901"), bytes.fromhex("A8040A1E8902")
SCA_A = bytes.fromhex("010000010203")
SCA_B = bytes.fromhex("010000010303")


def test_read_by_sca_through_an_sca_route_saves_four_bytes_per_repeater_per_hop():
    for reps in (1, 2):
        c = read_cost(reps, [R.STATUS_WORD])
        hops = reps + 1
        assert c["route"] == reps and c["aca"]["frames"] == c["sca"]["frames"] == 2 * hops
        assert c["aca"]["bytes"] - c["sca"]["bytes"] == 2 * hops * 4 * reps
        assert c["sca"]["airtime_s"] < c["aca"]["airtime_s"]
    direct = read_cost(0, [R.STATUS_WORD])
    assert direct["aca"] == direct["sca"]


def test_frames_on_the_line_are_sca_addressed_after_registration():
    topo = {"nodes": [{"name": "dcu", "role": "concentrator"}] +
            [{"name": "m%d" % i, "aca": "A8040A1E89%02X" % i} for i in (1, 2, 3)],
            "links": [{"a": "dcu", "b": "m1", "attenuation_db": 40}, {"a": "m1", "b": "m2", "attenuation_db": 40},
                      {"a": "m2", "b": "m3", "attenuation_db": 40}]}
    net, port = neighbourhood(topology.load(topo), boards=False)
    try:
        d = Discovery(port)
        assert d.discover() == 3 and d.register_all() == 3
        far = max(d.meters.values(), key=lambda m: m.level)
        sent = []
        send = port.send
        port.send = lambda payload: (sent.append(bytes(payload)), send(payload))[1]
        conc = Concentrator(port, book=d.book)
        got = conc.read(far.aca, [R.STATUS_WORD], far.route)
        assert len(got[R.STATUS_WORD]) == 8
        f = mac.decode(mac.Frame(), sent[0], len(sent[0]))
        assert bytes(sent[0][1:7]) == far.sca and f.rp_size == 2 and f.repeaters == 2
        assert bytes(sent[0][f.rp:f.rp + 4]) == b"".join(d.meters[r].sca[3:5] for r in far.route)
        near = min(d.meters.values(), key=lambda m: m.level)
        conc.read(near.aca, [R.STATUS_WORD], near.route)
        assert bytes(sent[-1][1:7]) == mac.aca_to_air(near.aca)  # direct: the ACA, nothing to save
        # a meter that lost its SCA (a power cut after a Deregister) is not found by it:
        # forgetting it in the book brings the ACA back
        net.meters["m3"].nm.sca = None
        with pytest.raises(PeerError):
            Concentrator(port, book=d.book, retries=0).read(far.aca, [R.STATUS_WORD], far.route)
        d.book.forget(far.aca)
        conc.read(far.aca, [R.STATUS_WORD], far.route)
        assert bytes(sent[-1][1:7]) == mac.aca_to_air(far.aca)
    finally:
        net.close()


def test_sca_collision_and_bad_sca():
    book = ScaBook()
    book.learn(M1, SCA_A)
    with pytest.raises(ScaCollision):
        book.learn(M2, SCA_A)
    # neither is addressed by the SCA any more, even with a route
    assert book.addresses(M1, (M2,))[0] == mac.aca_to_air(M1)
    book.learn(M2, SCA_B)
    assert book.addresses(M2, (M1,)) == (mac.aca_to_air(M2), mac.aca_to_air(M1))  # M1's SCA is in doubt
    book.learn(M1, bytes.fromhex("010000010403"))
    assert book.addresses(M2, (M1,)) == (SCA_B, b"\x01\x04")
    for bad in (b"\xff" * 5 + b"\x03", bytes.fromhex("010000010204"), b"\x01\x02"):
        with pytest.raises(PeerError):
            book.learn(M1, bad)
    # a repeater of another section: by ACA
    book.learn(M1, bytes.fromhex("020000010403"))
    assert book.addresses(M2, (M1,))[0] == mac.aca_to_air(M2)


def test_emulated_boards_read_by_sca_through_an_sca_repeater(tmp_path):
    # the real MicroPython firmware: registered over the line, then read by SCA via m2's 2-byte entry
    from smitp import demo
    from smitp.discovery import sca_for

    net, port = neighbourhood(topology.demo_feeder(), str(tmp_path), boards=True)
    try:
        demo.wait_until_ready(net)
        d = Discovery(port)
        m2, m3 = bytes.fromhex("A8040A1E8902"), bytes.fromhex("A8040A1E8903")
        for i, (aca, route) in enumerate(((m2, ()), (m3, (m2,)))):
            assert d.register(aca, sca_for(1, i), route)
            d.book.learn(aca, sca_for(1, i))
        sent = []
        send = port.send
        port.send = lambda payload: (sent.append(bytes(payload)), send(payload))[1]
        got = Concentrator(port, book=d.book).read(m3, [R.STATUS_WORD], (m2,))
        assert len(got[R.STATUS_WORD]) == 8
        f = mac.decode(mac.Frame(), sent[-1], len(sent[-1]))
        assert bytes(sent[-1][1:7]) == sca_for(1, 1) and f.rp_size == 2
        assert bytes(sent[-1][f.rp:f.rp + 2]) == sca_for(1, 0)[3:5]
    finally:
        net.close()


def test_smitp_sim_reads_by_sca(capsys):
    import json

    from smitp.cli import main

    assert main(["sim", "--meters", "40", "--seed", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    # every meter behind a repeater (all registered, one section) is read by SCA; direct ones by ACA
    assert rep["read_ok"] == rep["registered"] == rep["reachable"] and rep["max_hops"] > 1
    assert 0 < rep["read_by_sca"] < rep["read_ok"]


def test_decode_shows_sca_addresses_and_entries(capsys):
    from smitp.cli import main

    assert main(["decode", "11010000010303320102010400000002003f04dd224a"]) == 0
    out = capsys.readouterr().out
    assert "ADDRESS SCA 1/1/3" in out and "RP: SCA 1/2, SCA 1/4" in out and "READ.REQ" in out
