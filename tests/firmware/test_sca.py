# Logical (SCA) addressing end to end in process: a meter answers frames
# addressed to the SCA it was given (kept over a power cut), repeats along
# 2-byte SCA repeater entries and 6-byte whole-SCA entries, answers from its
# SCA so the route stays readable, and ignores SCAs that are not its own.
from meter.link import mac
from meter import attrs as A
from meter.app.node import MeterNode
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex

M1 = unhex("A8040A1E8901")
M2 = unhex("A8040A1E8902")
M3 = unhex("A8040A1E8903")
SCA1 = unhex("010000 01 02 03")  # section 1, sub-section 1, node 2 (on air)
SCA2 = unhex("010000 01 04 03")
SCA3 = unhex("010000 01 03 03")
OTHER_SECTION = unhex("020000 01 03 03")
RA2 = 0x3
STATUS_WORD = b"\x02\x00\x3f"


def make(aca, store=None):
    model = DataModel("SN", aca, "smitp-meter test", store or Store(), lambda: 1700000000)
    return MeterNode(aca, model, store=store)


def frame(addr, data, rp=b"", dsap=0, disc=RA2):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, addr, rp, disc, False, 0, False, dsap, 0, data)
    return bytes(out[:n])


def step(node, b):
    n = node.on_phy(b, len(b), 0, None)
    return bytes(node.out[:n]) if n else None


def registered(aca, sca, store=None):
    node = make(aca, store)
    ans = step(node, frame(mac.aca_to_air(aca), bytes((A.REGISTER_REQ,)) + sca, dsap=2))
    f = mac.decode(mac.Frame(), ans, len(ans))
    assert ans[f.data:f.data + 2] == b"\x51\x00"
    return node


def decoded(b):
    f = mac.Frame()
    mac.decode(f, b, len(b))
    return f, bytes(b[f.data:f.data + f.data_len])


def test_read_by_sca_direct_answers_from_the_sca():
    node = registered(M3, SCA3)
    f, data = decoded(step(node, frame(SCA3, STATUS_WORD)))
    assert data[0] == A.READ_RESP and len(data) == 9
    assert f.uplink and bytes(f.buf[f.addr:f.addr + 6]) == SCA3
    # still reachable by its ACA, answering from the ACA
    f, data = decoded(step(node, frame(mac.aca_to_air(M3), STATUS_WORD)))
    assert data[0] == A.READ_RESP and bytes(f.buf[f.addr:f.addr + 6]) == mac.aca_to_air(M3)


def test_read_by_sca_through_an_sca_repeater_list():
    r1, r2, m = registered(M1, SCA1), registered(M2, SCA2), registered(M3, SCA3)
    req = frame(SCA3, STATUS_WORD, rp=SCA1[3:5] + SCA2[3:5])
    assert len(req) == len(frame(mac.aca_to_air(M3), STATUS_WORD, rp=mac.aca_to_air(M1) + mac.aca_to_air(M2))) - 8
    assert step(m, req) is None and step(r2, req) is None  # not their turn yet
    hop1 = step(r1, req)
    assert step(r1, hop1) is None  # its own copy is not repeated again
    hop2 = step(r2, hop1)
    ans = step(m, hop2)
    f, data = decoded(ans)
    assert f.uplink and f.rp_size == 2 and f.position == 3 and data[0] == A.READ_RESP
    up2 = step(r2, ans)
    up1 = step(r1, up2)
    f, data = decoded(up1)
    assert f.position == 1 and bytes(f.buf[f.addr:f.addr + 6]) == SCA3 and data[0] == A.READ_RESP
    assert r1.stats["repeated"] == 2 and r2.stats["repeated"] == 2 and m.stats["served"] == 2  # REGISTER, READ


def test_whole_sca_entries_in_an_aca_addressed_frame():
    # a 6-byte entry holding a whole SCA names that repeater (project choice: mixed lists)
    r1, m = registered(M1, SCA1), make(M3)
    req = frame(mac.aca_to_air(M3), STATUS_WORD, rp=SCA1)
    hop = step(r1, req)
    ans = step(m, hop)
    f, data = decoded(ans)
    assert data[0] == A.READ_RESP and bytes(f.buf[f.rp:f.rp + 6]) == SCA1
    f, data = decoded(step(r1, ans))
    assert f.position == 1 and data[0] == A.READ_RESP


def test_sca_survives_a_power_cut():
    store = Store()
    registered(M3, SCA3, store)
    again = make(M3, store)  # power cut: a new node over the same flash
    f, data = decoded(step(again, frame(SCA3, STATUS_WORD)))
    assert data[0] == A.READ_RESP and bytes(f.buf[f.addr:f.addr + 6]) == SCA3
    step(again, frame(SCA3, b"\x52", dsap=2))  # Deregister by SCA: answered, then forgotten
    assert make(M3, store).nm.sca is None
    assert step(make(M3, store), frame(SCA3, STATUS_WORD)) is None


def test_unknown_sca_other_section_and_unregistered_meters_ignore():
    m = registered(M3, SCA3)
    for addr in (SCA2, OTHER_SECTION, unhex("010000 01 03 04")):
        ignored = m.stats["ignored"] + m.stats["bad"]
        assert step(m, frame(addr, STATUS_WORD)) is None
        assert m.stats["ignored"] + m.stats["bad"] == ignored + 1 and m.stats["faults"] == 0
    # a 2-byte entry equal to its sub-section | node, in another section: not its turn
    r = registered(M1, SCA1)
    assert step(r, frame(OTHER_SECTION, STATUS_WORD, rp=SCA1[3:5])) is None
    # a meter without an SCA is never a 2-byte repeater, and never answers an SCA
    plain = make(M2)
    assert step(plain, frame(SCA2, STATUS_WORD)) is None
    assert step(plain, frame(SCA3, STATUS_WORD, rp=SCA2[3:5])) is None
    assert plain.stats["repeated"] == 0 and plain.stats["faults"] == 0


def test_sca_collision_costs_no_more_than_the_frame():
    # Two meters given the same SCA (a faulty or hostile REGISTER): each
    # answers from the SCA (the concentrator's rule keeps SCAs unique, and
    # falls back to ACAs: host tests); a route naming the shared node twice
    # is walked by positions only, so no copy loops.
    a, b = registered(M1, SCA1), registered(M2, SCA1)
    req = frame(SCA1, STATUS_WORD)
    assert step(a, req) is not None and step(b, req) is not None
    loop = frame(SCA3, STATUS_WORD, rp=SCA1[3:5] + SCA1[3:5])
    hop1 = step(a, loop)
    f, _ = decoded(hop1)
    assert f.position == 1
    assert step(b, hop1) is None  # position 1 names it again: only position 2 goes on
    assert a.stats["faults"] == 0 and b.stats["faults"] == 0


def test_network_management_by_sca():
    m = registered(M3, SCA3)
    f, data = decoded(step(m, frame(SCA3, bytes((A.PING_REQ, 1, 2)), dsap=2)))
    assert data == bytes((A.PING_RESP, 255, 255, 255, 1, 2)) and bytes(f.buf[f.addr:f.addr + 6]) == SCA3
    # REQADDR through a 2-byte route: the REQADDR.RESP goes back from the SCA, same route
    r1 = registered(M1, SCA1)
    req = frame(SCA3, b"\x5e\x02\x55\x00\x00", rp=SCA1[3:5], dsap=2)
    hop = step(r1, req)
    assert step(m, hop) is not None  # its ADDRESS.REQ broadcast
    t = m.next_timeout(0)
    n = m.poll(t)
    f, data = decoded(bytes(m.out[:n]))
    assert data == b"\x5f\x00" and f.rp_size == 2 and bytes(f.buf[f.addr:f.addr + 6]) == SCA3
