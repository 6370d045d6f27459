# Edges of the meter's request handling, through the whole node where the
# framing matters: a flash that refuses writes, all-or-none multi-register
# WRITEs, answers at the discipline limit, impossible repetition states, and
# the response cache across a reboot.
import struct

from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.app import security as S
from meter.app import tables as TB
from meter.errors import DecodeError
from meter.storage import Store
from meterkit import ACA, K1, K2, Sim, reboot

KEYS = S.Keys(K1, K2)


def text16(text):
    return text + bytes(16 - len(text))


LABEL = text16(b"BEFORE")


class RefusingStore(Store):
    """RAM Store whose flash refuses the records named in `refused` ("*": every one)."""

    def __init__(self):
        Store.__init__(self)
        self.refused = ()

    def _refuses(self, name):
        if "*" in self.refused or name in self.refused:
            self.writes += 1
            self.faults += 1
            return True
        return False

    def put(self, name, data):
        return False if self._refuses(name) else Store.put(self, name, data)

    def append(self, name, data):
        return False if self._refuses(name) else Store.append(self, name, data)


def record_of(reg_id):
    return "r%04x" % reg_id


def item(reg_id, raw):
    return struct.pack(">H", reg_id) + raw


def frame(lsdu, ecc=0, disc=mac.DISC_RA7, route=b"", position=0, uplink=False, to=ACA):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(to), route, disc, uplink, position, False, 0, ecc, lsdu)
    return bytes(out[:n])


def send(sim, f):
    """The LSDU of the node's answer to frame f and its ECC; (None, 0) when it stays silent."""
    n = sim.node.on_phy(f, len(f))
    if not n:
        return None, 0
    fr = mac.Frame()
    out = bytes(sim.node.out[:n])
    mac.decode(fr, out, n)
    return out[fr.data:fr.data + fr.data_len], fr.ecc


def sealed(attr, apdu, mon, ecc, now):
    return S.seal_msg(KEYS, ACA, S.auth_attr(attr), apdu, mon, ecc, now)


def refused(ans):
    """No answer, or one that refuses (plain or authenticated NACK)."""
    return ans is None or ans[0] in (A.NACK_A, S.ATTR_NACK_A_AUTH)


def keyed_sim():
    sim = Sim(keys=True, store=RefusingStore())
    sim.ok(A.WRITE_REQ, item(R.POINT_LABEL, LABEL))
    return sim


# ---- a flash that refuses writes: no effect without the LMON commit
def _refused_flash_stops(make_request, unchanged):
    sim = keyed_sim()
    store = sim.store
    before = dict(store._ram)
    lmon = sim.node.secure.lmon.value
    req = make_request(lmon + 1, sim.now())
    store.refused = ("*",)
    ans, _ecc = send(sim, frame(req, S.ECC_ECB_WRITE))
    assert refused(ans), "answered %s with the flash refusing" % ans.hex()
    assert unchanged(sim), "the request took effect without its LMON commit"
    assert sim.node.secure.lmon.value == lmon
    assert store._ram == before  # nothing on flash changed, LMON records included
    store.refused = ()
    ans, ecc = send(sim, frame(req, S.ECC_ECB_WRITE))  # the flash is back: the same request goes through
    assert ans[0] == A.ACK_A_AUTH and ecc == S.ECC_ECB_WRITE
    assert not unchanged(sim) and sim.node.secure.lmon.value == lmon + 1


def test_flash_refusing_writes_stops_an_authenticated_write():
    new = text16(b"AFTER")
    _refused_flash_stops(lambda mon, now: sealed(A.WRITE_REQ, item(R.POINT_LABEL, new), mon, S.ECC_ECB_WRITE, now),
                         lambda sim: sim.reg(R.POINT_LABEL) == LABEL)


def test_flash_refusing_writes_stops_an_authenticated_command():
    def closed(sim):
        return sim.relay_moves == [] and not sim.reg(R.STATUS_WORD) & (1 << R.SW_CUTOFF_OPEN)

    _refused_flash_stops(
        lambda mon, now: sealed(A.COMMAND, bytes((TB.CMD_OPEN_CUTOFF,)), mon, S.ECC_ECB_WRITE, now), closed)


# ---- multi-register WRITE: all or none
def _none_applied(second, code, second_id):
    sim = keyed_sim()
    stored = sim.store.get(record_of(R.POINT_LABEL))
    ans = sim.write(R.POINT_LABEL, text16(b"NEW") + second)
    assert ans[0] == A.NACK_A and ans[1] == code, ans.hex()
    assert struct.unpack_from(">H", ans, 2)[0] == second_id, ans.hex()
    assert sim.reg(R.POINT_LABEL) == LABEL, "the first item was applied"
    assert sim.store.get(record_of(R.POINT_LABEL)) == stored, "the first item reached the flash"


def test_write_with_an_unknown_second_register_applies_nothing():
    assert 0x7FFF not in R.BY_ID
    _none_applied(item(0x7FFF, b"\x00\x01"), A.NACK_UNKNOWN_REGISTER, 0x7FFF)


def test_write_with_a_bad_second_value_applies_nothing():
    _none_applied(item(R.PROFILE_PERIOD, struct.pack(">H", 700)), A.NACK_BAD_VALUE, R.PROFILE_PERIOD)


def test_write_with_a_short_second_value_applies_nothing():
    _none_applied(item(R.PROFILE_PERIOD, b"\x03"), A.NACK_BAD_LENGTH, R.PROFILE_PERIOD)


def test_write_with_a_second_register_denied_applies_nothing():
    assert R.BY_ID[R.METER_MODEL][R.R_WRITE] == R.ACC_NONE
    _none_applied(item(R.METER_MODEL, bytes(16)), A.NACK_ACCESS_DENIED, R.METER_MODEL)


def test_write_whose_second_record_the_flash_refuses_applies_nothing():
    # The first item is applied (and stored) before the second one's record
    # is refused: the first must be put back, on flash too, and the WRITE refused.
    sim = keyed_sim()
    stored = sim.store.get(record_of(R.POINT_LABEL))
    period = sim.reg(R.PROFILE_PERIOD)
    sim.store.refused = (record_of(R.PROFILE_PERIOD),)
    ans = sim.write(R.POINT_LABEL, text16(b"NEW") + item(R.PROFILE_PERIOD, struct.pack(">H", 300)))
    assert ans[0] == A.NACK_A, "a WRITE whose record the flash refused was acknowledged: %s" % ans.hex()
    assert sim.reg(R.POINT_LABEL) == LABEL, "the first item stayed applied"
    assert sim.store.get(record_of(R.POINT_LABEL)) == stored, "the first item stayed on flash"
    assert sim.reg(R.PROFILE_PERIOD) == period


# ---- answers at the discipline limit
_FILL = (R.POINT_LABEL, R.NOMINAL_VOLTAGE, R.PHASES)  # plain-readable, 16, 2 and 1 bytes


def read_apdu(size):
    """Register ids whose values take exactly `size` bytes."""
    ids = []
    for reg in _FILL:
        n = R.BY_ID[reg][R.R_SIZE]
        while size >= n:
            ids.append(reg)
            size -= n
    return b"".join(struct.pack(">H", i) for i in ids)


def limits():
    """(discipline, longest answer) of every discipline that asks for an answer."""
    out = []
    for d in range(len(mac.DISCIPLINES)):
        cls, max_resp, _slots = mac.DISCIPLINES[d]
        if cls != mac.CLASS_S:
            out.append((d, min(max_resp, mac.MAX_LLC_DATA)))
    return out


def test_read_answer_exactly_at_the_discipline_limit_then_one_byte_over():
    sim = Sim()
    for disc, limit in limits():
        ans, _ = send(sim, frame(bytes((A.READ_REQ,)) + read_apdu(limit - 1), disc=disc))
        assert ans[0] == A.READ_RESP and len(ans) == limit, (disc, ans.hex())
        ans, _ = send(sim, frame(bytes((A.READ_REQ,)) + read_apdu(limit), disc=disc))
        assert ans[0] == A.NACK_A and ans[1] == A.NACK_TOO_LONG, (disc, ans.hex())


def test_authenticated_read_exactly_at_the_discipline_limit_then_one_byte_over():
    sim = Sim(keys=True)
    disc, limit = mac.DISC_RA7, mac.MAX_LLC_DATA
    plain = limit - S.AUTH_OVERHEAD  # CTR adds the trailer and TMAC only
    for mon, size in ((1, plain - 1), (2, plain)):
        req = sealed(A.READ_REQ, read_apdu(size), mon, S.ECC_CTR_READ, sim.now())
        ans, ecc = send(sim, frame(req, S.ECC_CTR_READ, disc))
        if size < plain:
            assert ans[0] == S.auth_attr(A.READ_RESP) and len(ans) == limit, ans.hex()
        else:
            assert ans[0] == S.ATTR_NACK_A_AUTH and ans[1] == A.NACK_TOO_LONG, ans.hex()


# ---- a repetition state beyond the repeater list
def test_hop_position_beyond_the_repeater_list_is_dropped():
    sim = Sim()
    other = mac.aca_to_air(b"\xa8\x04\x0a\x1e\x89\x77")
    me = mac.aca_to_air(ACA)
    read = bytes((A.READ_REQ,)) + struct.pack(">H", R.STATUS_WORD)
    for route in (b"", me, other + me, me + other):
        reps = len(route) // mac.ADDR_LEN
        for position in range(reps + 2, 16):
            for uplink in (False, True):
                f = frame(read, route=route, position=position, uplink=uplink)
                st = sim.node.stats
                before = (st["bad"], st["repeated"], st["served"], st.get("faults", 0))
                assert sim.node.on_phy(f, len(f)) == 0, (route, position, uplink)
                after = (st["bad"], st["repeated"], st["served"], st.get("faults", 0))
                assert after == (before[0] + 1,) + before[1:], (route, position, uplink, before, after)
                fr = mac.Frame()
                try:
                    mac.decode(fr, f, len(f))
                except DecodeError as e:
                    assert e.field == "HOP"
                else:
                    raise AssertionError("decoded HOP position %d of %d repeaters" % (position, reps))


# ---- the response cache across a reboot
def test_a_read_after_a_write_leaves_no_older_answer_across_a_reboot():
    # The write's answer is on flash; the read's, which has no effect, only in
    # RAM. After a reboot neither may be answered again: the write is no
    # longer the last accepted request.
    sim = keyed_sim()
    t = sim.now()
    write = sealed(A.WRITE_REQ, item(R.POINT_LABEL, text16(b"W1")), 1, S.ECC_ECB_WRITE, t)
    read = sealed(A.READ_REQ, struct.pack(">H", R.LMON), 2, S.ECC_CTR_READ, t)
    assert send(sim, frame(write, S.ECC_ECB_WRITE))[0][0] == A.ACK_A_AUTH
    assert send(sim, frame(read, S.ECC_CTR_READ))[0][0] == S.auth_attr(A.READ_RESP)
    sim = reboot(sim, 10)
    for req, ecc in ((write, S.ECC_ECB_WRITE), (read, S.ECC_CTR_READ)):
        ans, _ = send(sim, frame(req, ecc))
        assert ans is None or ans[:2] == bytes((S.ATTR_NACK_A_AUTH, A.NACK_AUTH)), \
            "an earlier request answered again after a reboot: %s" % ans.hex()
