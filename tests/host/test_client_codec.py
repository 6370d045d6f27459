"""smitp.client, the application-layer codec: each request's bytes exactly, each answer's reading,
and both checked against the firmware's own server side, an in-process meter (meterkit.Sim)
that gets the encoded request as the PLC delivers it, plain or sealed by smitp.secure's session."""

import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.app import security as sec
from meter.app import tables as TB
from meter.errors import DecodeError
from meterkit import ACA, K1, K2, Sim
from smitp import client, secure
from smitp.errors import BadAnswer, Nack, NoAnswer, PeerError, UsageError
from smitp.secure import LmonMismatch, MeterSecurity
from smitp.transport import Link

DT = 1727740800  # DATE-TIME of the sealed vectors
N1, N2 = bytes([7]) * 16, bytes([8]) * 16


class Served(Link):
    """The firmware's server side behind a link: each LSDU goes to the in-process meter with the
    answer room of the discipline the PLC would pick for it; every sending is kept."""

    def __init__(self, sim):
        super().__init__({"retries": 0})
        self.sim, self.sent = sim, []

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        self.sent.append((bytes(lsdu), ecc))
        room = mac.DISCIPLINES[mac.discipline_for(answer_len)][1]
        n, ans_ecc, out = self.sim.node.serve_lsdu(bytearray(lsdu), 0, len(lsdu), ecc, room, self.sim.t_ms)
        answer = bytes(out[:n])
        if not n or (accept is not None and not accept(answer, ans_ecc)):
            raise NoAnswer("silent")
        return ans_ecc, answer


class Canned(Link):
    """A link answering what it is given, whatever was asked."""

    def __init__(self, *answers):
        super().__init__({"retries": 0})
        self.answers = list(answers)

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        return 0, self.answers.pop(0)


@pytest.fixture
def meter():
    sim = Sim(keys=True)
    return sim, Served(sim), MeterSecurity(ACA, K1, K2)


@pytest.fixture
def fixed_time(monkeypatch):
    monkeypatch.setattr(secure.time, "time", lambda: float(DT))


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


# ---- READ, WRITE, ACK, NACK ---------------------------------------------------------------------

def test_read(meter):
    sim, link, _s = meter
    req = client.read([R.STATUS_WORD, R.ACA])
    assert req.lsdu == h("02 003F 0011") and req.answer_max(False) == req.answer_max(True) == 1 + 8 + 6
    assert not req.effect and req.ecc() == sec.ECC_CTR_READ
    assert req.parse(h("03 0000000000000101 A8040A1E8901")) == {R.STATUS_WORD: h("0000000000000101"), R.ACA: ACA}
    with pytest.raises(DecodeError):
        req.parse(h("03 0000000000000101 A8040A1E89"))  # one byte short
    assert link.call(req) == {R.STATUS_WORD: sim.read(R.STATUS_WORD), R.ACA: ACA}
    assert client.read([0x0002], sizes=[1]).parse(h("03 05")) == {2: b"\x05"}  # an item of DSAP 0x03
    with pytest.raises(UsageError):
        client.read([0x7777])


def test_write_ack_and_nack(meter):
    sim, link, _s = meter
    label = b"CODEC".ljust(16, b"\0")
    req = client.write({R.POINT_LABEL: label})
    assert req.lsdu == h("04 0013") + label and req.answer_max(False) == 4
    assert req.effect and req.ecc() == sec.ECC_ECB_WRITE
    assert link.call(req) is None and sim.reg(R.POINT_LABEL) == label
    with pytest.raises(Nack) as e:  # plain: the clock needs the write key
        link.call(client.write({R.CLOCK: bytes(4)}))
    assert (e.value.code, e.value.item, e.value.reg_id) == (A.NACK_ACCESS_DENIED, R.CLOCK, R.CLOCK)
    assert str(e.value) == "NACK 2 (access denied) for 0x0020"
    assert client.write({2: b"\x03"}, sized=False).lsdu == h("04 0002 03")  # items taken as given
    with pytest.raises(UsageError):
        client.write({R.CLOCK: bytes(3)})


def test_nack_fields_and_ack():
    assert client.nack_fields(h("FF 02 003F")) == (2, 0x3F)
    assert client.nack_fields(h("FF 02")) == (2, None)  # an authenticated NACK, opened
    with pytest.raises(DecodeError):
        client.nack_fields(h("FF"))
    with pytest.raises(Nack) as e:
        client.ack(h("FF 05 0000"))
    assert e.value.code == A.NACK_BAD_VALUE and str(e.value) == "NACK 5 (bad value)"
    assert client.ack(h("FD")) is None
    for bad in (b"", h("FD 00"), h("03")):
        with pytest.raises(DecodeError):
            client.ack(bad)


def test_any_service_answer_as_it_came(meter):
    _sim, link, _s = meter
    assert link.call(client.service(A.COMMAND, bytes((TB.CMD_FREEZE,)))) == h("FD")
    with pytest.raises(Nack):
        link.call(client.service(A.COMMAND, b""))  # no code: bad length


# ---- table services ----------------------------------------------------------------------------

def test_buff_select_and_readtab_blocks(meter):
    sim, link, _s = meter
    req = client.select(R.DAY_PROFILES_1)
    assert req.lsdu == h("16 0510 00000000 00000000")
    assert req.answer_max(False) == mac.MAX_LLC_DATA and req.answer_max(True) == mac.MAX_LLC_DATA - 16
    assert req.parse(h("17 0510 00000000 0008 06")) == (0, 8, 6)
    with pytest.raises(DecodeError):
        req.parse(h("17 0200 00000000 0008 06"))  # another table
    block = client.read_block(R.DAY_PROFILES_1, 1)
    assert block.lsdu == h("08 0510 0001")
    records, more = block.parse(h("09 0510 0001 02") + bytes(32))
    assert records == [bytes(16)] * 2 and not more
    with pytest.raises(DecodeError):
        block.parse(h("09 0510 0001 02") + bytes(31))
    assert link.call(req) == (0, 8, 6)
    got = link.call(client.read_table(R.DAY_PROFILES_1))
    assert got == list(enumerate(sim.records(R.DAY_PROFILES_1)))
    assert [lsdu for lsdu, _ecc in link.sent[-3:]] == [h("16 0510 00000000 00000000"), h("08 0510 0000"),
                                                       h("08 0510 0001")]


def test_readtab_selective(meter):
    sim, link, _s = meter
    req = client.read_selected(R.DAY_PROFILES_1, 6, 5, 0b101)  # fields 0 and 2: 4 bytes a record
    assert req.lsdu == h("06 0510 00000006 05 05")
    assert req.parse(h("07 0510 00000006 02 FFFFFFFF FFFFFFFF")) == (6, [h("FFFFFFFF")] * 2)
    with pytest.raises(DecodeError):
        req.parse(h("07 0510 00000006 02 FFFFFFFF FFFF"))
    records = sim.records(R.DAY_PROFILES_1)
    got = link.call(client.read_records(R.DAY_PROFILES_1, 2, 100, 0b101))
    assert got == [(i, records[i][0:2] + records[i][4:6]) for i in range(2, 8)]
    with pytest.raises(UsageError):
        client.read_selected(R.DAY_PROFILES_1, 0, 1, 1 << 8)  # 8 fields
    with pytest.raises(UsageError):
        client.read_selected(R.STATUS_WORD, 0, 1)


def test_custom_tables_settab_gettab(meter, fixed_time):
    sim, link, s = meter
    regs = [R.ENERGY_IMPORT, R.FIRMWARE_ID, R.FIRMWARE_ID, R.CLOCK, R.MAX_DEMAND]
    req = client.set_custom(1, regs)
    assert req.lsdu == h("0E 01 0030 0012 0012 0020 0430") and req.ecc() == sec.ECC_ECB_WRITE
    assert link.call(req, s) is None
    part = client.custom_part(1, 2, regs)
    assert part.lsdu == h("1E 01 02")
    assert part.parse(h("1F 01 02 82") + bytes(48 + 4)) == ([(R.FIRMWARE_ID, bytes(48)), (R.CLOCK, bytes(4))], True)
    with pytest.raises(DecodeError):
        part.parse(h("1F 01 02 80"))  # more announced, none sent
    values = link.call(client.get_custom(1))
    assert [r for r, _ in values] == regs
    assert values[0][1] == sim.read(R.ENERGY_IMPORT) and values[1][1] == sim.read(R.FIRMWARE_ID)
    assert [lsdu for lsdu, _ecc in link.sent[-2:]] == [h("02 0811"), h("1E 01 00")]
    assert link.call(client.get_custom(1), s) == values  # 4 + 48 + 48 + 4 + 8 bytes: two answers sealed
    assert [lsdu[0] for lsdu, _ecc in link.sent[-3:]] == [A.READ_REQ + 100] + [A.GETTAB_REQ + 100] * 2
    with pytest.raises(UsageError):
        client.get_custom(5).send(None)


def test_writetab_in_chunks_and_resettab(meter, fixed_time):
    sim, link, s = meter
    holidays = b"".join(struct.pack(">HBB", 2026, 4, d) for d in range(1, 25))
    assert client.write_records(R.HOLIDAYS, 3, holidays[:8]).lsdu == h("0A 0530 0003 07EA0401 07EA0402")
    assert link.call(client.write_table(R.HOLIDAYS, 0, holidays, auth=True), s) is None
    chunks = [sec.open_msg(sec.Keys(K1, K2), ACA, lsdu, mon, ecc)[0] for mon, (lsdu, ecc) in
              enumerate([x for x in link.sent if x[0][0] == A.WRITETAB_REQ + 100], s.lmon - 1)]
    assert chunks == [h("0530 0000") + holidays[:88], h("0530 0016") + holidays[88:]]  # ECB: 95 bytes of DATA
    assert bytes(sim.meter.tables[R.HOLIDAYS].data) == holidays
    plain = list(client.write_table(R.HOLIDAYS, 0, holidays))
    assert [len(r.data) for r in plain] == [4 + 96]  # plain: 127 bytes of DATA
    req = client.reset_tables([R.HOLIDAYS])
    assert req.lsdu == h("10 0530") and link.call(req, s) is None
    assert bytes(sim.meter.tables[R.HOLIDAYS].data) == R.DEFAULTS[R.HOLIDAYS]
    with pytest.raises(UsageError):
        list(client.write_table(R.HOLIDAYS, 0, holidays[:5]))


def test_command_and_dataspont(meter, fixed_time):
    sim, link, s = meter
    assert client.command(TB.CMD_FREEZE).lsdu == h("12 06")
    assert client.command(TB.CMD_SYNC_CLOCK, h("6955AAF0")).lsdu == h("12 05 6955AAF0")
    link.call(client.command(TB.CMD_OPEN_CUTOFF), s)
    assert sim.relay_moves == [True]
    req = client.dataspont(0)
    assert req.lsdu == h("14 00000000")
    event = h("6955AAF0 02 00000000")
    assert req.parse(h("14 01 00000000") + event) == ([(0, event)], False)
    with pytest.raises(DecodeError):
        req.parse(h("14 80"))  # more announced, none sent
    items, ack = link.call(client.spontaneous(0))
    assert [struct.unpack(">IBI", raw)[1] for _n, raw in items][-1] == sim.events()[-1][1]
    assert sim.reg(R.SPONT_ACK) == ack == items[-1][0] + 1
    assert link.sent[-1][0] == h("14") + struct.pack(">I", ack)  # the last one acknowledges


# ---- authenticated: sealed by the session, as the firmware seals -------------------------------

def test_sealed_requests_are_the_firmware_seal_msg(meter, fixed_time):
    sim, link, s = meter
    keys = sec.Keys(K1, K2)
    got = link.call(client.read([R.LMON]), s)
    assert got == {R.LMON: (1).to_bytes(8, "big")}
    label = b"SEALED".ljust(16, b"\0")
    link.call(client.write({R.POINT_LABEL: label}), s)
    read, write = [lsdu for lsdu, _ecc in link.sent if sec.is_authenticated(lsdu[0])]
    assert read == sec.seal_msg(keys, ACA, 102, h("0015"), 1, sec.ECC_CTR_READ, DT)
    assert write == sec.seal_msg(keys, ACA, 104, h("0013") + label, 2, sec.ECC_ECB_WRITE, DT)
    assert len(write) == 1 + 32 + 16  # 18 bytes of DATA padded to 32
    assert sim.reg(R.POINT_LABEL) == label and s.lmon == 2


def test_authenticated_nack_opens_to_a_nack(meter, fixed_time):
    _sim, link, s = meter
    with pytest.raises(Nack) as e:  # the read key never writes: NACK 245, PAR1 2
        link.call(client.write({R.CLOCK: bytes(4)}), s, sec.ECC_CTR_READ)
    assert e.value.code == A.NACK_ACCESS_DENIED and e.value.item == 0
    assert s.pending is None and s.lmon == 1  # answered, verified: settled


def test_nack10_resynchronises_and_chl_resp_gives_the_lmon(meter, fixed_time, monkeypatch):
    sim, link, s = meter
    for _ in range(3):
        link.call(client.read([R.STATUS_WORD]), s)
    late = MeterSecurity(ACA, K1, K2)  # LMON 0, the meter's is 3
    lsdu = late.protect(A.READ_REQ, h("003F"), sec.ECC_CTR_READ, DT)
    n, ecc, out = sim.node.serve_lsdu(bytearray(lsdu), 0, len(lsdu), sec.ECC_CTR_READ, 140, sim.t_ms)
    nack = bytes(out[:n])
    assert client.is_nack10(nack) and ecc == sec.ECC_CHALLENGE and len(nack) == 2 + 16
    with pytest.raises(LmonMismatch) as e:
        late.unprotect(nack, ecc)
    assert e.value.lmon == 3 and late.pending is None  # the meter is past its MON: a read is sealed anew
    assert link.call(client.read([R.LMON]), late) == {R.LMON: (4).to_bytes(8, "big")}
    monkeypatch.setattr(secure.os, "urandom", lambda n: bytes(range(n)))
    req = client.challenge(late)
    assert req.lsdu == h("70 0000") + bytes(range(16)) and req.answer_max(False) == client.CHL_RESP_LEN == 19
    n, ecc, out = sim.node.serve_lsdu(bytearray(req.lsdu), 0, len(req.lsdu), 0, 20, sim.t_ms)
    assert out[0] == A.CHL_RESP and req.parse(bytes(out[:n])) == 4


def _aes_ecb(key, data):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def test_key_change_stage_and_activate(meter, fixed_time):
    sim, link, s = meter
    stage = client.key_change_stage(K1, N1, N2)
    kcv1, kcv2 = _aes_ecb(N1, bytes(16))[:3], _aes_ecb(N2, bytes(16))[:3]  # an independent AES
    assert stage.lsdu == h("18 01") + _aes_ecb(K1, N1 + N2) + kcv1 + kcv2
    assert client.key_change_activate(N1, N2).lsdu == h("18 02") + kcv1 + kcv2
    assert stage.effect and stage.ecc() == sec.ECC_ECB_WRITE
    assert link.secured(s, secure.change_keys, N1, N2) == "activated"
    assert int.from_bytes(sim.read(R.KEY_CHANGES), "big") == 1
    assert link.call(client.read([R.LMON]), s)  # the session uses the new pair


# ---- run(), lengths, ECCs ----------------------------------------------------------------------

def test_an_answer_to_something_else_is_a_bad_answer():
    with pytest.raises(BadAnswer) as e:
        Canned(h("FD")).call(client.read([R.STATUS_WORD]))
    assert isinstance(e.value, PeerError) and "fd" in str(e.value) and "READ.REQ" in str(e.value)
    with pytest.raises(BadAnswer):  # the second answer of a procedure
        Canned(h("17 0510 00000000 0008 06"), h("03")).call(client.read_table(R.DAY_PROFILES_1))
    assert not issubclass(UsageError, PeerError) and not issubclass(NoAnswer, UsageError)


def test_lengths_and_eccs():
    assert client.sealed_len(1, 6) == 33 and client.max_data(6) == 95 and client.max_data(5) == 111
    assert client.ecc_for("auto", True) == sec.ECC_ECB_WRITE and client.ecc_for("auto", False) == sec.ECC_CTR_READ
    assert client.ecc_for("ctr", True) == sec.ECC_CTR_WRITE and client.ecc_for("none", False) == sec.ECC_NONE
    assert client.ecc_for("ecb", False) == sec.ECC_ECB_READ
    assert client.command(1).ecc(sec.ECC_CTR_WRITE) == sec.ECC_CTR_WRITE  # as given
    assert client.read_ids(h("003F 0011")) == [R.STATUS_WORD, R.ACA]
    with pytest.raises(DecodeError):
        client.read_ids(h("003F 00"))
