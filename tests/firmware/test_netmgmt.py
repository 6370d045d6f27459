# Network management of the meter (DSAP 2): byte-exact messages both ways,
# the answer rules (phase, TCT threshold, address filter, poll flag, RC slots),
# discovery through a relay, registration, status, ping, and bad input.
# Full-frame vectors had their CRC-32 checked with zlib when they were made.
from meter.link import mac
from meter import attrs as A
from meter.link import netmgmt as NM
from meter import timers as T
from meter.compat import ticks_add
from meter.app.node import MeterNode
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex, Rng

M1 = unhex("A8040A1E8901")
M2 = unhex("A8040A1E8902")
M3 = unhex("A8040A1E8903")
Q = (70.4, 25.6, 5.0, None)  # signal dBuV, SNR dB, impedance ohm, in phase
QB = "461a32"  # the same as SIG | SNR | TX bytes
SCA = unhex("010000 02 07 03")  # section 1, sub-section 2, node 7
RC4 = 0xF  # 64 slots
RC1 = 0xC  # 8 slots
RA1 = 0x2
S = 0x0

# (name, frame hex, what it is)
ADDRESS_REQ_FRAME = "0fffffffffff03f10000205a025500008bd98d8f"  # broadcast, RC4, APDU 5A 02 55 00 00
ADDRESS_RESP_FRAME = "1701891e0a04a8018100205ba8040a1e8901461a32ffffffc132b4fd"  # M1, uplink, class S
TCT_SET_POLL_FRAME = "0c01891e0a04a8210001205c01e2c58873"  # to M1, RA1, poll flag, TCT 1
NACK_RESP_FRAME = "0f01891e0a04a801810020f700461a32dcdeb021"  # M1: code 0, quality


def make(aca, store=None, seed=0):
    model = DataModel("SN", aca, "smitp-meter test", store or Store(), lambda: 1700000000)
    return MeterNode(aca, model, store=store, seed=seed)


def request(dst, data, route=(), disc=RA1, poll=False, dsap=2):
    out = bytearray(mac.MAX_FRAME)
    rp = b"".join(mac.aca_to_air(r) for r in route)
    addr = mac.BROADCAST if dst is None else mac.aca_to_air(dst)
    n = mac.encode(out, addr, rp, disc, False, 0, poll, dsap, 0, data)
    return bytes(out[:n])


def decoded(b):
    f = mac.Frame()
    mac.decode(f, b, len(b))
    return f, bytes(b[f.data:f.data + f.data_len])


def sent(node, n):
    assert n > 0
    return bytes(node.out[:n])


def answer_now(node, req, now=0, quality=Q):
    """The immediate answer to req, as (frame, LLC data)."""
    b = sent(node, node.on_phy(req, len(req), now, quality))
    f, data = decoded(b)
    assert f.uplink and f.dsap == 2
    return b, data


def answer_slotted(node, req, now=1000, quality=Q):
    """Feed req; return (slot delay ms, frame, LLC data) of the RC answer."""
    assert node.on_phy(req, len(req), now, quality) == 0
    wait = node.next_timeout(now)
    assert wait >= 0
    if wait:
        assert node.poll(now + wait - 1) == 0
    b = sent(node, node.poll(now + wait))
    assert node.poll(now + wait) == 0 and node.next_timeout(now + wait) == -1
    f, data = decoded(b)
    return wait, b, data


# ---- ADDRESS.REQ / ADDRESS.RESP

def test_address_req_demo_apdu_both_ways():
    req = request(None, unhex("5a 02 55 00 00"), disc=RC4)
    assert req == unhex(ADDRESS_REQ_FRAME)
    f, data = decoded(req)
    assert f.dsap == 2 and f.discipline == RC4 and data == unhex("5a02550000")
    assert mac.DISCIPLINES[f.discipline][2] == 64


def test_address_resp_in_an_rc_slot_byte_exact():
    node = make(M1)
    req = unhex(ADDRESS_REQ_FRAME)
    wait, b, data = answer_slotted(node, req)
    assert (wait - T.ELABORATION_MS) % T.NM_SLOT_MS == 0
    assert data == unhex("5b a8040a1e8901" + QB + "ffffff")
    assert len(data) == 1 + 12
    f, _ = decoded(b)
    assert f.discipline == S and f.repeaters == 0 and f.position == 1
    # the whole frame, for the slot the seed picked
    assert b == unhex(ADDRESS_RESP_FRAME)


def test_unknown_quality_is_ff():
    node = make(M1)
    _w, _b, data = answer_slotted(node, unhex(ADDRESS_REQ_FRAME), quality=None)
    assert data[7:] == unhex("ffffff ffffff")
    node = make(M1)
    _w, _b, data = answer_slotted(node, unhex(ADDRESS_REQ_FRAME), quality=(None, -3, 999, None))
    assert data[7:10] == unhex("ff 00 fe")  # negative SNR clips to 0, impedance to 254


def test_slot_choice_stays_inside_the_slot_range():
    for disc, slots in ((RC1, 8), (RC4, 64)):
        seen = {}
        for seed in range(60):
            node = make(M1, seed=seed)
            req = request(None, unhex("5a 02 55 00 00"), disc=disc)
            assert node.on_phy(req, len(req), 500, Q) == 0
            wait = node.next_timeout(500) - T.ELABORATION_MS
            assert wait % T.NM_SLOT_MS == 0
            slot = wait // T.NM_SLOT_MS
            assert 0 <= slot < slots, (disc, slot)
            seen[slot] = True
        assert len(seen) >= min(slots, 8) // 2, seen  # spread, not stuck on one slot


def test_unicast_ra_address_req_is_answered_at_once_class_s_never():
    node = make(M1)
    _b, data = answer_now(node, request(M1, unhex("5a 02 55 00 00"), disc=RA1))
    assert data[0] == A.ADDRESS_RESP
    req = request(M1, unhex("5a 02 55 00 00"), disc=S)
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.next_timeout(0) == -1
    req = request(None, unhex("5a 02 55 00 00"), disc=RA1)  # broadcast outside RC
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.next_timeout(0) == -1


def test_phase_rule():
    cases = (  # (phase byte, in phase, answered)
        (1, False, False), (1, True, True), (1, None, True), (2, False, True), (0, False, True),
    )
    for phase, same, answered in cases:
        node = make(M1)
        req = request(M1, bytes((A.ADDRESS_REQ, phase, 0x55, 0, 0)))
        n = node.on_phy(req, len(req), 0, (60, 20, 5, same))
        assert (n > 0) == answered, (phase, same)


def test_tct_threshold():
    node = make(M1)
    assert node.nm.tct == 0xFF
    node.nm.tct = 1
    for tcr, answered in ((0x55, False), (2, False), (1, True), (0, True)):
        req = request(M1, bytes((A.ADDRESS_REQ, 2, tcr, 0, 0)))
        assert (node.on_phy(req, len(req), 0, Q) > 0) == answered, tcr
    assert node.nm.stats["filtered"] == 2


def test_address_filter():
    f = NM.address_filter
    assert f(0x01, 0, 0) and f(0x00, 0, 8) and f(0x01, 0xFF, 8)
    assert not f(0x01, 0, 1) and f(0x01, 1, 1) and f(0x02, 0, 1)
    assert f(0x05, 3, 3) and not f(0x05, 2, 3)
    assert not f(0x01, 0, 200)  # wide masks leave only a zero sum
    # M1's least significant ACA byte is 01
    for add, shift, answered in ((0xFF, 8, True), (0, 1, False), (1, 1, True), (0, 0, True)):
        node = make(M1)
        req = request(M1, bytes((A.ADDRESS_REQ, 2, 0x55, add, shift)))
        assert (node.on_phy(req, len(req), 0, Q) > 0) == answered, (add, shift)


# ---- TCT_SET.REQ / NACK.RESP

def test_tct_set_with_poll_flag_byte_exact():
    node = make(M1)
    req = request(M1, unhex("5c 01"), disc=RA1, poll=True)
    assert req == unhex(TCT_SET_POLL_FRAME)
    f, _ = decoded(req)
    assert f.poll
    b, data = answer_now(node, req)
    assert b == unhex(NACK_RESP_FRAME)
    assert data == unhex("f7 00" + QB)
    assert node.nm.tct == 1


def test_tct_set_without_poll_flag_is_silent():
    node = make(M1)
    req = request(M1, unhex("5c 20"), disc=RA1, poll=False)
    assert node.on_phy(req, len(req), 0, Q) == 0
    assert node.nm.tct == 0x20
    # broadcast un-silencing, class S
    req = request(None, unhex("5c ff"), disc=S)
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.nm.tct == 0xFF


def test_tct_set_refuses_zero_and_bad_length():
    node = make(M1)
    for data in ("5c 00", "5c", "5c 01 02"):
        _b, ans = answer_now(node, request(M1, unhex(data), poll=True))
        assert ans == unhex("f7 01" + QB), data
    assert node.nm.tct == 0xFF


# ---- REQADDR: discovery through a relay

def _neighbours(relay_frame, nodes, now):
    """Deliver the relay's broadcast to `nodes`; return their answers in time order."""
    due = []
    for node in nodes:
        assert node.on_phy(relay_frame, len(relay_frame), now, Q) == 0
        due.append((now + node.next_timeout(now), node))
    due.sort(key=lambda x: x[0])
    return [(t, sent(node, node.poll(t))) for t, node in due]


def test_reqaddr_relay_collects_four_and_answers():
    relay = make(M2)
    req = request(M2, unhex("5e 02 55 00 00"), disc=0x4)
    n = relay.on_phy(req, len(req), 0, Q)
    own = sent(relay, n)
    assert own == unhex(ADDRESS_REQ_FRAME)  # its own broadcast ADDRESS.REQ, RC4
    assert relay.next_timeout(0) == T.ELABORATION_MS + 65 * T.NM_SLOT_MS
    acas = [unhex("A8040A1E89%02X" % i) for i in range(0x10, 0x16)]
    others = [make(a, seed=i) for i, a in enumerate(acas)]
    answers = _neighbours(own, others, 60)
    assert len(answers) == 6
    for t, b in answers:
        assert relay.on_phy(b, len(b), t, Q) == 0
    relay.on_phy(answers[0][1], len(answers[0][1]), answers[-1][0], Q)  # a duplicate
    assert relay.nm.stats["collected"] == 4 and relay.nm.stats["overflow"] == 2
    end = relay.next_timeout(0)
    assert relay.poll(end - 1) == 0
    b = sent(relay, relay.poll(end))
    f, data = decoded(b)
    assert f.uplink and f.position == 1 and bytes(b[f.addr:f.addr + 6]) == mac.aca_to_air(M2)
    first = [decoded(ans)[1][1:] for _t, ans in answers[:4]]
    assert data == bytes((A.REQADDR_RESP, 4)) + b"".join(first)
    assert len(data) == 2 + 4 * 12
    assert relay.next_timeout(end) == -1


def test_reqaddr_resp_with_none_and_one_record_byte_exact():
    relay = make(M2)
    req = request(M2, unhex("5e 02 55 00 00"))
    relay.on_phy(req, len(req), 0, Q)
    end = relay.next_timeout(0)
    _f, data = decoded(sent(relay, relay.poll(end)))
    assert data == unhex("5f 00")
    relay.on_phy(req, len(req), end, Q)
    rec = unhex(ADDRESS_RESP_FRAME)  # M1 answering
    assert relay.on_phy(rec, len(rec), end + 300, Q) == 0
    _f, data = decoded(sent(relay, relay.poll(end + relay.next_timeout(end))))
    assert data == unhex("5f 01 a8040a1e8901" + QB + "ffffff")


def test_reqaddr_through_a_repeater_answers_along_the_route():
    m2, m3 = make(M2), make(M3)
    req = request(M3, unhex("5e 02 55 00 00"), route=(M2,))
    hop = sent(m2, m2.on_phy(req, len(req), 0, Q))
    own = sent(m3, m3.on_phy(hop, len(hop), 100, Q))
    f, _ = decoded(own)
    assert f.repeaters == 0 and bytes(own[f.addr:f.addr + 6]) == mac.BROADCAST
    end = 100 + m3.next_timeout(100)
    b = sent(m3, m3.poll(end))
    f, data = decoded(b)
    assert f.uplink and f.repeaters == 1 and f.position == 2 and data == unhex("5f 00")
    back = sent(m2, m2.on_phy(b, len(b), end + 100, Q))
    assert decoded(back)[0].position == 1


def test_reqaddr_busy_relay_and_stray_answers():
    relay = make(M2)
    req = request(M2, unhex("5e 02 55 00 00"))
    assert relay.on_phy(req, len(req), 0, Q) > 0
    assert relay.on_phy(req, len(req), 10, Q) == 0 and relay.nm.stats["busy"] == 1
    idle = make(M3)
    rec = unhex(ADDRESS_RESP_FRAME)
    assert idle.on_phy(rec, len(rec), 0, Q) == 0 and idle.nm.stats["collected"] == 0
    for bad in ("5e 02 55 00", "5e"):
        r = request(M3, unhex(bad))
        assert idle.on_phy(r, len(r), 0, Q) == 0
    r = request(None, unhex("5e 02 55 00 00"), disc=RC4)  # broadcast REQADDR: refused
    assert idle.on_phy(r, len(r), 0, Q) == 0 and idle.next_timeout(0) == -1


# ---- Register / Deregister / Status / Ping (project encodings)

def test_register_assigns_and_persists_the_sca():
    store = Store()
    node = make(M1, store)
    _b, data = answer_now(node, request(M1, bytes((A.REGISTER_REQ,)) + SCA))
    assert data == unhex("51 00 010000020703")
    again = make(M1, store)  # reboot over the same store
    assert again.nm.sca == SCA
    _b, data = answer_now(again, request(M1, unhex("54")))
    assert data == unhex("55 01 ff 010000020703" + QB + "0001 0000")
    _b, data = answer_now(again, request(M1, unhex("52")))
    assert data == unhex("51 00 000000000000")
    assert make(M1, store).nm.sca is None


def test_register_refuses_bad_sca_and_broadcast():
    node = make(M1)
    for sca in ("010000020704", "ffffffffff03", "0100000207"):
        _b, data = answer_now(node, request(M1, unhex("50" + sca)))
        assert data == unhex("51 01 000000000000"), sca
    req = request(None, bytes((A.REGISTER_REQ,)) + SCA, disc=RC4)
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.next_timeout(0) == -1
    assert node.nm.sca is None


def test_register_reports_a_storage_fault():
    class Full(Store):
        def put(self, name, data):
            self.faults += 1
            return False

    node = make(M1, Full())
    _b, data = answer_now(node, request(M1, bytes((A.REGISTER_REQ,)) + SCA))
    assert data == unhex("51 02 010000020703")  # held, not saved


def test_broadcast_deregister_clears_silently():
    node = make(M1)
    node.nm.sca = SCA
    req = request(None, unhex("52"), disc=S)
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.nm.sca is None


def test_status_byte_exact():
    node = make(M1)
    node.nm.tct = 1
    node.nm.sca = SCA
    _b, data = answer_now(node, request(M1, unhex("54")))
    # flags registered + silenced, TCT, SCA, quality, rx 1, bad 0
    assert data == unhex("55 03 01 010000020703" + QB + "0001 0000")
    rx = node.stats["rx"]
    node.on_phy(b"\x00" * 20, 20, 0, Q)
    _b, data = answer_now(node, request(M1, unhex("54")), quality=None)
    assert data == unhex("55 03 01 010000020703 ffffff") + bytes(((rx + 2) >> 8, (rx + 2) & 0xFF, 0, 1))


def test_ping_echoes_and_reports_quality():
    node = make(M1)
    _b, data = answer_now(node, request(M1, unhex("56 de ad")))
    assert data == unhex("57" + QB + "dead")
    _b, data = answer_now(node, request(M1, unhex("56")))
    assert data == unhex("57" + QB)
    req = request(M1, bytes((A.PING_REQ,)) + bytes(17))
    assert node.on_phy(req, len(req), 0, Q) == 0 and node.nm.stats["bad"] == 1


def test_rc_unicast_status_goes_in_a_slot():
    node = make(M1)
    _w, _b, data = answer_slotted(node, request(M1, unhex("54"), disc=RC1))
    assert data[0] == A.STATUS_RESP and data[1] & NM.ST_ANSWER_PENDING == 0


# ---- timers and bad input

def test_timers_survive_the_ticks_wrap():
    period = ticks_add(0, -1) + 1  # 2**30 on CPython and boards, wider on 64-bit unix
    now = period - 10
    req = request(M2, unhex("5e 02 55 00 00"))
    node = make(M2)
    node.on_phy(req, len(req), now, Q)
    wait = node.next_timeout(now)
    assert wait == T.ELABORATION_MS + 65 * T.NM_SLOT_MS
    later = ticks_add(now, wait)
    assert later < now  # wrapped
    assert node.poll(ticks_add(later, -1)) == 0 and node.poll(later) > 0


def test_unknown_and_truncated_nm_requests_are_counted_not_fatal():
    node = make(M1)
    for data in ("5a 02 55", "5a 02 55 00 00 00", "5d", "60 01", "5f 00"):
        req = request(M1, unhex(data))
        assert node.on_phy(req, len(req), 0, Q) == 0, data
    assert node.nm.stats["bad"] == 5


def test_garbage_nm_frames_never_raise():
    node = make(M1)
    rng = Rng(7)
    attrs = (90, 91, 92, 94, 95, 80, 81, 82, 84, 86, 247, 0)
    for i in range(300):
        data = bytes((attrs[rng.below(len(attrs))],)) + rng.bytes(rng.below(20))
        disc = rng.below(16)
        dst = None if rng.below(3) == 0 else M1
        req = bytearray(request(dst, data, disc=disc, poll=bool(rng.below(2))))
        if i % 4 == 0:
            req[rng.below(len(req))] ^= 1 << rng.below(8)
        node.on_phy(req, len(req), i * 10, Q)
        while node.poll(i * 10 + 20000):
            pass
    _b, data = answer_now(node, request(M1, unhex("56 01")))
    assert data == unhex("57" + QB + "01")
