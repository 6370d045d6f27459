import pytest

from smitp import topology
from smitp.medium import PHY_OVERHEAD_BITS, Medium, MediumError


def demo(**kw):
    return Medium(topology=topology.demo_feeder(), **kw)


def drain(m):
    """Run the virtual clock until the medium is quiet; return every event."""
    out = []
    while m.next_time() is not None:
        out += m.poll(m.next_time())
    return out


def rx_of(events):
    return sorted((e[1], e[2], e[3]) for e in events if e[0] == "rx")


# --- airtime -----------------------------------------------------------------


def test_overhead_constant():
    assert PHY_OVERHEAD_BITS == 56  # 32 preamble + 16 unique word + 8 length


@pytest.mark.parametrize("n, seconds", [
    (0, 56 / 4800),  # 0.011666... s: overhead only
    (10, 136 / 4800),  # 56 + 80 bits
    (16, 184 / 4800),  # smallest MAC frame: 56 + 128 bits = 38.33 ms
    (128, 1080 / 4800),  # 56 + 1024 bits = 0.225 s
    (191, 1584 / 4800),  # largest MAC frame: 56 + 1528 bits = 0.33 s
])
def test_airtime_at_4800(n, seconds):
    assert Medium().airtime_s(n) == pytest.approx(seconds, abs=1e-12)


def test_airtime_other_rate_and_overhead():
    assert Medium(bitrate=1000, overhead_bits=0).airtime_s(1) == pytest.approx(0.008)
    assert Medium(bitrate=2400, overhead_bits=24).airtime_s(3) == pytest.approx(48 / 2400)


def test_transmit_returns_end_time():
    m = demo()
    assert m.transmit("dcu", b"\x00" * 10, 2.0) == pytest.approx(2.0 + 136 / 4800)


# --- delivery ----------------------------------------------------------------


def test_delivery_only_over_links():
    m = demo()
    end = m.transmit("m3", b"hi", 0.0)
    assert m.poll(end) == [
        ("rx", "m2", "m3", b"hi", {"snr_db": 16.0, "signal_dbuv": 76.0, "impedance_ohm": 5.0}),
        ("tx_done", "m3"),
    ]
    m.transmit("dcu", b"x", 1.0)
    assert rx_of(drain(m)) == [("m1", "dcu", b"x"), ("m2", "dcu", b"x")]
    m.transmit("m2", b"y", 2.0)
    assert rx_of(drain(m)) == [("dcu", "m2", b"y"), ("m1", "m2", b"y"), ("m3", "m2", b"y")]


def test_quality_comes_from_the_link():
    m = demo()
    m.transmit("dcu", b"q", 0.0)
    q = {e[1]: e[4] for e in drain(m) if e[0] == "rx"}
    # dcu-m1: 40 dB attenuation -> 120 - 40 = 80 dBuV, SNR 80 - 60 = 20 dB
    assert q["m1"] == {"snr_db": 20.0, "signal_dbuv": 80.0, "impedance_ohm": 5.0}
    assert q["m2"] == {"snr_db": 14.0, "signal_dbuv": 74.0, "impedance_ohm": 5.0}


def test_directed_link():
    m = Medium()
    for n in ("a", "b"):
        m.add_node(n)
    m.add_link("a", "b", snr_db=10, directed=True)
    assert m.hears("b", "a") and not m.hears("a", "b")
    m.transmit("b", b"1", 0.0)
    assert rx_of(drain(m)) == []
    m.transmit("a", b"2", 1.0)
    assert rx_of(drain(m)) == [("b", "a", b"2")]


def test_unknown_node():
    m = demo()
    with pytest.raises(MediumError, match="unknown node 'm9'"):
        m.transmit("m9", b"", 0.0)


def test_noise_is_seeded():
    def qualities(seed):
        m = demo(noise_db=2.0, seed=seed)
        for i in range(5):
            m.transmit("dcu", b"n", float(i))
        return [e[4] for e in drain(m) if e[0] == "rx"]

    a, b = qualities(7), qualities(7)
    assert a == b
    assert a != qualities(8)
    assert any(q["snr_db"] != 20.0 for q in a)


def test_link_loss():
    m = Medium(seed=3)
    for n in ("a", "b", "c"):
        m.add_node(n)
    m.add_link("a", "b", loss=1.0)
    m.add_link("a", "c", loss=0.0)
    for i in range(10):
        m.transmit("a", b"z", float(i))
    assert {e[1] for e in drain(m) if e[0] == "rx"} == {"c"}
    assert m.stats["lost"]["link"] == 10
    assert m.stats["deliveries"] == 10


# --- half duplex ---------------------------------------------------------------


def test_cannot_transmit_while_transmitting():
    m = demo()
    end = m.transmit("m1", b"\x00" * 10, 0.0)
    with pytest.raises(MediumError, match="'m1' is already transmitting"):
        m.transmit("m1", b"again", end / 2)
    # At the end of the airtime the node is free again.
    m.transmit("m1", b"next", end)


def test_transmitter_hears_nothing():
    m = demo(collisions=False)
    m.transmit("m1", b"\x00" * 20, 0.0)  # 216 bits: 0 .. 45 ms
    m.transmit("m2", b"B", 0.01)  # 64 bits: 10 .. 23.3 ms, while m1 sends
    ev = drain(m)
    assert rx_of(ev) == [("dcu", "m1", b"\x00" * 20), ("dcu", "m2", b"B"), ("m3", "m2", b"B")]
    assert m.stats["lost"]["half_duplex"] == 2  # m1 missed m2's frame, m2 missed m1's


def test_starting_to_send_drops_the_frame_being_received():
    m = demo(collisions=False)
    m.transmit("dcu", b"\x00" * 20, 0.0)  # until 45 ms
    m.transmit("m3", b"C", 0.02)  # m3 cannot hear dcu; m2 hears m3
    m.transmit("m1", b"A", 0.03)  # m1 was receiving dcu's frame
    ev = drain(m)
    got = rx_of(ev)
    assert ("m1", "dcu", b"\x00" * 20) not in got  # m1 started sending mid-frame
    assert ("m2", "dcu", b"\x00" * 20) in got
    assert ("m2", "m3", b"C") in got and ("m2", "m1", b"A") in got


# --- collisions ----------------------------------------------------------------


def test_overlapping_frames_collide_at_a_common_receiver():
    m = demo()
    m.transmit("m1", b"\x00" * 10, 0.0)  # 0 .. 28.3 ms
    m.transmit("m2", b"\x01" * 10, 0.02)  # 20 .. 48.3 ms
    ev = drain(m)
    # dcu hears both: neither arrives. m3 cannot hear m1, so m2's frame reaches
    # it intact. m1 and m2 were both transmitting during the other's frame.
    assert rx_of(ev) == [("m3", "m2", b"\x01" * 10)]
    s = m.stats
    assert s["collisions"] == 2
    assert s["nodes"]["dcu"]["collisions"] == 2
    assert s["nodes"]["m3"]["collisions"] == 0
    assert s["deliveries"] == 1
    assert [e for e in ev if e[0] == "tx_done"] == [("tx_done", "m1"), ("tx_done", "m2")]


def test_frame_from_an_unheard_node_does_not_collide():
    m = demo()
    m.transmit("dcu", b"\x00" * 10, 0.0)  # m3 cannot hear dcu
    m.transmit("m3", b"\x03" * 10, 0.001)  # m2 hears both: collision there only
    ev = drain(m)
    assert rx_of(ev) == [("m1", "dcu", b"\x00" * 10)]
    assert m.stats["nodes"]["m2"]["collisions"] == 2
    assert m.stats["collisions"] == 2


def test_back_to_back_frames_do_not_collide():
    m = demo()
    end = m.transmit("m1", b"\x00" * 10, 0.0)
    m.transmit("m2", b"\x01" * 10, end)  # starts exactly when m1's frame ends
    ev = drain(m)
    assert ("dcu", "m1", b"\x00" * 10) in rx_of(ev)
    assert ("dcu", "m2", b"\x01" * 10) in rx_of(ev)
    assert m.stats["collisions"] == 0


def test_chain_of_overlaps_counts_each_frame_once():
    m = Medium()
    for n in ("r", "a", "b", "c"):
        m.add_node(n)
    for n in ("a", "b", "c"):
        m.add_link(n, "r")
    air = m.airtime_s(10)
    m.transmit("a", bytes(10), 0.0)
    m.transmit("b", bytes(10), air * 0.9)  # overlaps a
    m.transmit("c", bytes(10), air * 1.8)  # overlaps b only
    assert rx_of(drain(m)) == []
    assert m.stats["collisions"] == 3


def test_collisions_off_delivers_overlapping_frames():
    m = demo(collisions=False)
    m.transmit("dcu", b"\x00" * 10, 0.0)
    m.transmit("m3", b"\x03" * 10, 0.001)
    assert rx_of(drain(m)) == [("m1", "dcu", b"\x00" * 10), ("m2", "dcu", b"\x00" * 10),
                               ("m2", "m3", b"\x03" * 10)]
    assert m.stats["collisions"] == 0


def test_carrier_sense():
    m = demo()
    end = m.transmit("m2", bytes(10), 1.0)
    assert m.carrier_sense("m3", 1.01)
    assert not m.carrier_sense("m3", end)
    assert not m.carrier_sense("dcu", 0.5)
    assert m.is_transmitting("m2", 1.01) and not m.is_transmitting("m2", end)


# --- power -------------------------------------------------------------------


def test_powered_off_node_neither_sends_nor_hears():
    m = demo()
    m.set_power("m2", False)
    assert not m.powered("m2")
    with pytest.raises(MediumError, match="'m2' is powered off"):
        m.transmit("m2", b"x", 0.0)
    m.transmit("dcu", b"d", 0.0)
    assert rx_of(drain(m)) == [("m1", "dcu", b"d")]
    m.set_power("m2", True)
    m.transmit("dcu", b"e", 1.0)
    assert rx_of(drain(m)) == [("m1", "dcu", b"e"), ("m2", "dcu", b"e")]


def test_frame_in_flight_is_lost_when_receiver_goes_off():
    m = demo()
    end = m.transmit("dcu", bytes(10), 0.0)
    m.set_power("m2", False, now=end / 2)
    m.set_power("m2", True, now=end * 0.75)  # back before the end: still lost
    assert rx_of(drain(m)) == [("m1", "dcu", bytes(10))]
    assert m.stats["lost"]["power"] == 1


def test_sender_going_off_aborts_its_frame():
    m = demo()
    end = m.transmit("m1", bytes(10), 0.0)
    m.set_power("m1", False, now=end / 2)
    assert m.stats["lost"]["power"] == 2  # dcu and m2
    # The aborted frame no longer occupies the line: no collision with it.
    m.set_power("m1", True, now=end * 0.6)
    m.transmit("m2", b"ok", end * 0.7)
    ev = drain(m)
    # No rx of m1's frame anywhere, and no tx_done for it.
    assert rx_of(ev) == [("dcu", "m2", b"ok"), ("m1", "m2", b"ok"), ("m3", "m2", b"ok")]
    assert [e for e in ev if e[0] == "tx_done"] == [("tx_done", "m2")]
    assert m.stats["collisions"] == 0


# --- clock and ordering ----------------------------------------------------------


def test_events_in_time_order_and_next_time():
    m = demo(collisions=False)
    assert m.next_time() is None
    long_end = m.transmit("dcu", bytes(40), 0.0)  # 376 bits: 78.3 ms
    short_end = m.transmit("m3", bytes(1), 0.01)  # 64 bits: 10 .. 23.3 ms
    assert short_end < long_end
    assert m.next_time() == short_end
    assert m.poll(short_end - 1e-6) == []
    first = m.poll(short_end)
    assert [e[0] for e in first] == ["rx", "tx_done"]
    assert first[-1] == ("tx_done", "m3")
    assert m.next_time() == long_end
    second = m.poll(10.0)
    assert [(e[0], e[1]) for e in second] == [("rx", "m1"), ("rx", "m2"), ("tx_done", "dcu")]
    assert m.next_time() is None
    assert m.poll(20.0) == []


def test_one_poll_returns_several_frames_in_order():
    m = Medium(collisions=False)
    for n in ("a", "b", "c"):
        m.add_node(n)
    m.add_link("a", "c")
    m.add_link("b", "c")
    m.transmit("a", bytes(30), 0.0)
    m.transmit("b", bytes(1), 0.001)  # ends first
    ev = m.poll(1.0)
    assert [(e[0], e[1]) for e in ev] == [("rx", "c"), ("tx_done", "b"), ("rx", "c"), ("tx_done", "a")]
    assert ev[0][2] == "b"


def test_time_cannot_go_backwards():
    m = demo()
    m.poll(5.0)
    with pytest.raises(MediumError, match="time went backwards"):
        m.transmit("dcu", b"", 4.0)


# --- statistics ----------------------------------------------------------------


def test_stats():
    m = demo()
    m.transmit("dcu", bytes(10), 0.0)
    m.transmit("m3", bytes(20), 1.0)
    drain(m)
    s = m.stats
    assert s["frames"] == 2
    assert s["bytes"] == 30
    assert s["airtime_s"] == pytest.approx((136 + 216) / 4800)
    assert s["deliveries"] == 3
    assert s["collisions"] == 0
    assert s["nodes"]["dcu"] == {"sent": 1, "bytes_sent": 10, "airtime_s": pytest.approx(136 / 4800),
                                 "received": 0, "collisions": 0, "lost": 0}
    assert s["nodes"]["m2"]["received"] == 2
    assert s["nodes"]["m3"]["sent"] == 1
    m.reset_stats()
    assert m.stats["frames"] == 0 and m.stats["nodes"]["m2"]["received"] == 0


def test_large_neighbourhood_runs():
    topo = topology.lv_feeder(300, seed=1)
    m = Medium(topology=topo)
    t = 0.0
    for name in m.nodes:
        t = m.transmit(name, bytes(30), t)
    ev = drain(m)
    assert sum(1 for e in ev if e[0] == "tx_done") == 301
    assert m.stats["deliveries"] == 2 * len(topo["links"])
    assert m.stats["collisions"] == 0
