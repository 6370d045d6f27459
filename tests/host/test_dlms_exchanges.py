"""The DLMS convergence layer end to end: the concentrator's client (smitp.dlms.cl) against the
meter's server (meter.dlms.cl), directly, over a lossy link, and on the simulated medium through
a repeater."""

import random

import pytest

from meter.dlms import cl as C
from meter.dlms.cl import ClServer
from smitp import topology
from smitp.concentrator import Concentrator, parse_aca
from smitp.dlms.cl import ClClient, ClError, plc_link
from smitp.errors import NoAnswer
from smitp.network import neighbourhood

ROOMS = (20, 30, 40, 50, 60, 80, 90, 100, 120, 140)  # the answer sizes of the MAC disciplines


class Mirror:
    """The application: the response APDU is the request APDU; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, req, n, resp):
        self.calls += 1
        resp[:n] = req[:n]
        return n


def direct(server, now=lambda: 0):
    def link(lsdu, max_response, accept):
        n = server.serve(lsdu, 0, len(lsdu), max_response, now())
        ans = bytes(server.ans[:n])
        if not accept(ans):
            raise NoAnswer("answer not taken")
        return ans

    return link


def lossy(server, rng, loss, tries=3):
    """Each try: the request, then the answer, lost with probability `loss`; NoAnswer after `tries`."""

    def link(lsdu, max_response, accept):
        for _ in range(tries):
            if rng.random() < loss:
                continue
            n = server.serve(lsdu, 0, len(lsdu), max_response, 0)
            ans = bytes(server.ans[:n])
            if rng.random() < loss or not accept(ans):
                continue
            return ans
        raise NoAnswer("silent after %d tries" % tries)

    return link


def test_any_apdu_up_to_the_mtu_survives_segmentation_and_reassembly():
    rng = random.Random(13)
    app = Mirror()
    server = ClServer(app)
    sizes = [1, 2, C.SEG_MAX - 1, C.SEG_MAX, C.SEG_MAX + 1, 2 * C.SEG_MAX, C.MTU - 1, C.MTU]
    sizes += [rng.randint(1, C.MTU) for _ in range(150)]
    for i, size in enumerate(sizes):
        room = ROOMS[i % len(ROOMS)]
        client = ClClient(direct(server), max_response=room, xid=rng.randrange(256))
        apdu = rng.randbytes(size)
        assert client.exchange(apdu) == apdu, (size, room)
        # frames: request segments, then one per further response segment
        seg = C.segment_size(room)
        assert client.stats["frames"] == -(-size // C.SEG_MAX) + -(-size // seg) - 1
    assert app.calls == len(sizes)


def test_apdu_longer_than_the_mtu_is_refused_by_the_client():
    client = ClClient(direct(ClServer(Mirror())))
    with pytest.raises(ClError, match="out of 1..1024"):
        client.exchange(bytes(C.MTU + 1))


def test_with_random_loss_an_exchange_completes_or_fails_with_a_stated_error():
    rng = random.Random(7)
    app = Mirror()
    server = ClServer(app)
    outcomes = {"done": 0, "timeout": 0}
    for i in range(300):
        loss = (0.05, 0.2, 0.4)[i % 3]
        client = ClClient(lossy(server, rng, loss), max_response=ROOMS[i % len(ROOMS)], xid=i)
        apdu = rng.randbytes(rng.randint(1, C.MTU))
        calls = app.calls
        try:
            assert client.exchange(apdu) == apdu
            outcomes["done"] += 1
        except ClError as e:
            assert e.reason.startswith("timeout: silent after 3 tries"), e.reason
            outcomes["timeout"] += 1
        assert app.calls - calls <= 1  # a request is served once, whatever was repeated
        # and the meter keeps serving: a loss-free exchange right after works
        assert ClClient(direct(server), xid=i + 128).exchange(b"\xc0\x01") == b"\xc0\x01"
    assert outcomes["done"] > 100 and outcomes["timeout"] > 20, outcomes


def test_meter_error_reaches_the_client_as_its_reason():
    server = ClServer(lambda req, n, resp: 0)
    with pytest.raises(ClError, match="no response") as e:
        ClClient(direct(server)).exchange(b"\xc0")
    assert e.value.code == C.E_NO_RESPONSE


def test_exchange_through_a_repeater_on_the_simulated_medium():
    net, port = neighbourhood(topology.demo_feeder(), boards=False)
    app = Mirror()
    net.meters["m3"].dlms = ClServer(app)
    conc = Concentrator(port)
    m2, m3 = parse_aca("A8040A1E8902"), parse_aca("A8040A1E8903")
    client = ClClient(plc_link(conc, m3, (m2,)), max_response=60)
    apdu = bytes(range(256)) * 2
    assert client.exchange(apdu) == apdu
    assert client.stats["frames"] == 5 + 9 - 1 and app.calls == 1
    with pytest.raises(ClError, match="timeout"):  # m3 is out of reach without its repeater
        ClClient(plc_link(conc, m3), max_response=60).exchange(b"\xc0\x01")
