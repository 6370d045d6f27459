# The table services at the application layer and, authenticated, through
# the whole node (frame in, frame out).
import struct

from meter import attrs as A
from meter.model import billing as BL
from meter.model import events as E
from meter.app import keychange as KC
from meter.link import mac
from meter.model import registers as R
from meter.app import security as S
from meter.app import tables as TB
from meter.model import timekeeping as TK
from meterkit import ACA, DAY, HOUR, K1, K2, Sim, local_utc

WK, RK, PL = R.ACC_WRITE_KEY, R.ACC_READ_KEY, R.ACC_PLAIN


def nack(ans, code, reg=None):
    assert ans[0] == A.NACK_A and ans[1] == code, ans
    if reg is not None:
        assert (ans[2] << 8 | ans[3]) == reg, ans


def day_profile(*points):
    out = bytearray(b"\xff" * 16)
    for i, (h, m, band) in enumerate(points):
        struct.pack_into(">H", out, 2 * i, (h * 60 + m) | band << 12)
    return bytes(out)


def test_block_read_fits_both_variants_and_says_more():
    sim = Sim(watts=500)
    sim.run(DAY)
    ans = sim.request(A.BUFF_SELECT_REQ, struct.pack(">HII", R.LOAD_PROFILE, 0, 0), RK)
    table, first, count, per = struct.unpack_from(">HIHB", ans, 1)
    assert (table, first, count, per) == (R.LOAD_PROFILE, 0, 96, 8)
    for room in (128, 112):  # plain and authenticated answer room
        ans = sim.request(A.READTAB_REQ, struct.pack(">HH", R.LOAD_PROFILE, 11), RK, room)
        assert len(ans) == 6 + 8 * 13 <= room and ans[5] == 8  # the last block: no "more"
    ans = sim.request(A.READTAB_REQ, struct.pack(">HH", R.LOAD_PROFILE, 3), RK)
    assert ans[5] == 0x80 | 8
    assert ans[6:6 + 13] == sim.records(R.LOAD_PROFILE)[24]  # block 3 starts with record 24
    nack(sim.request(A.READTAB_REQ, struct.pack(">HH", R.LOAD_PROFILE, 0), RK, 60), A.NACK_TOO_LONG)


def test_time_selection_and_selective_read_with_field_mask():
    sim = Sim(watts=1000)
    t0 = sim.now()
    sim.run(DAY)
    recs = sim.records(R.LOAD_PROFILE, t0 + 6 * HOUR, t0 + 8 * HOUR)
    assert [struct.unpack_from(">I", r, 0)[0] for r in recs] == [t0 + 6 * HOUR + 900 * k for k in range(8)]
    # import energy only (field 2), from record 10 on, as many as fit
    ans = sim.request(A.READTAB_SEL_REQ, struct.pack(">HIBB", R.LOAD_PROFILE, 10, 200, 0b100), RK)
    table, first, k = struct.unpack_from(">HIB", ans, 1)
    assert (table, first, k) == (R.LOAD_PROFILE, 10, (128 - 8) // 2) and len(ans) == 8 + 2 * k
    assert struct.unpack_from(">H", ans, 8)[0] == 750
    # past the end: none; before the oldest: from the oldest
    ans = sim.request(A.READTAB_SEL_REQ, struct.pack(">HIBB", R.LOAD_PROFILE, 500, 5, 0), RK)
    assert ans[7] == 0 and len(ans) == 8
    nack(sim.request(A.READTAB_SEL_REQ, struct.pack(">HIBB", R.LOAD_PROFILE, 0, 5, 0x80), RK), A.NACK_BAD_VALUE)


def test_access_rules():
    sim = Sim()
    sim.run(HOUR)
    nack(sim.request(A.READTAB_REQ, struct.pack(">HH", R.LOAD_PROFILE, 0), PL), A.NACK_ACCESS_DENIED, R.LOAD_PROFILE)
    assert sim.request(A.READTAB_REQ, struct.pack(">HH", R.EVENT_LOG, 0), PL)[0] == A.READTAB_RESP
    nack(sim.request(A.READTAB_REQ, struct.pack(">HH", R.ENERGY_IMPORT, 0), RK), A.NACK_UNKNOWN_REGISTER)
    nack(sim.command(TB.CMD_CLOSE_BILLING, grant=RK), A.NACK_ACCESS_DENIED)
    nack(sim.command(TB.CMD_OPEN_CUTOFF, grant=PL), A.NACK_ACCESS_DENIED)
    assert sim.command(TB.CMD_FREEZE, grant=PL)[0] == A.ACK_A  # harmless: plain (and broadcast) allowed
    nack(sim.request(A.WRITETAB_REQ, struct.pack(">HH", R.HOLIDAYS, 0) + b"\x00\x00\x05\x01", RK),
         A.NACK_ACCESS_DENIED)
    nack(sim.request(A.RESETTAB_REQ, struct.pack(">H", R.EVENT_LOG), RK), A.NACK_ACCESS_DENIED)
    nack(sim.command(99), A.NACK_UNSUPPORTED)
    nack(sim.command(TB.CMD_SYNC_CLOCK, b"\x00"), A.NACK_BAD_LENGTH)
    nack(sim.request(A.READTAB_REQ, b"\x02"), A.NACK_BAD_LENGTH)
    nack(sim.write(0x0300, bytes(16), grant=WK), A.NACK_UNKNOWN_REGISTER)  # no register holds a key
    nack(sim.request(A.READ_REQ, struct.pack(">H", 0x0301), WK), A.NACK_UNKNOWN_REGISTER)


def test_custom_table_set_and_get_split():
    sim = Sim(watts=800)
    sim.run(HOUR)
    ids = (R.ENERGY_IMPORT, R.CLOCK, R.STATUS_WORD, R.FIRMWARE_ID, R.SERIAL, R.FIRMWARE_ID, R.METER_MODEL,
           R.ENERGY_EXPORT)
    sim.ok(A.SETTAB_REQ, b"\x02" + b"".join(struct.pack(">H", i) for i in ids))
    ans = sim.request(A.GETTAB_REQ, b"\x02\x00", RK)
    assert ans[0] == A.GETTAB_RESP and ans[1:3] == b"\x02\x00"
    k = ans[3] & 0x7F
    assert ans[3] & 0x80 and k == 5 and struct.unpack_from(">I", ans, 4)[0] == 2400
    rest = sim.request(A.GETTAB_REQ, bytes((2, k)), RK)
    assert rest[3] == 3 and rest[4:52].rstrip(b"\0") == b"smitp-meter test"
    nack(sim.request(A.SETTAB_REQ, b"\x01\x12\x34"), A.NACK_UNKNOWN_REGISTER, 0x1234)
    nack(sim.request(A.SETTAB_REQ, b"\x01" + struct.pack(">H", R.ENERGY_IMPORT), RK), A.NACK_ACCESS_DENIED)
    sim.ok(A.SETTAB_REQ, b"\x03" + struct.pack(">H", R.LMON))
    nack(sim.request(A.GETTAB_REQ, b"\x03\x00", PL), A.NACK_ACCESS_DENIED, R.LMON)
    sim.ok(A.SETTAB_REQ, b"\x02")  # an empty list clears it
    assert sim.request(A.GETTAB_REQ, b"\x02\x00", RK)[3] == 0


def test_writetab_tariff_takes_effect_and_resettab_restores():
    sim = Sim(local_utc(2026, 1, 5), watts=1000)  # a Monday
    assert sim.reg(R.CURRENT_BAND) == 3
    flat = day_profile((0, 0, 4))
    nack(sim.request(A.WRITETAB_REQ, struct.pack(">HH", R.DAY_PROFILES_1, 0) + day_profile((1, 0, 4))),
         A.NACK_BAD_VALUE, R.DAY_PROFILES_1)  # must start at 00:00
    nack(sim.request(A.WRITETAB_REQ, struct.pack(">HH", R.DAY_PROFILES_1, 0) + flat[:15]), A.NACK_BAD_LENGTH)
    nack(sim.request(A.WRITETAB_REQ, struct.pack(">HH", R.DAY_PROFILES_1, 8) + flat), A.NACK_BAD_VALUE)
    sim.ok(A.WRITETAB_REQ, struct.pack(">HH", R.DAY_PROFILES_1, 0) + flat)
    assert sim.reg(R.CURRENT_BAND) == 4
    sim.run(HOUR)
    assert sim.reg(R.ENERGY_IMPORT_T1 + 3) == 3000
    assert sim.events(E.EV_SETTINGS)[-1][2] == R.DAY_PROFILES_1
    sim.ok(A.RESETTAB_REQ, struct.pack(">HH", R.DAY_PROFILES_1, R.PROFILE_PERIOD))
    assert sim.reg(R.CURRENT_BAND) == 3
    nack(sim.request(A.RESETTAB_REQ, struct.pack(">H", R.ENERGY_IMPORT)), A.NACK_BAD_VALUE, R.ENERGY_IMPORT)


def test_contract_switch_at_its_date():
    sim = Sim(local_utc(2026, 1, 5), watts=1000)
    when = local_utc(2026, 1, 10, 12)
    sim.ok(A.WRITETAB_REQ, struct.pack(">HH", R.DAY_PROFILES_2, 0) + day_profile((0, 0, 4)))
    sim.ok(A.WRITETAB_REQ, struct.pack(">HH", R.WEEK_PROGRAMS_2, 0) + bytes(7))
    sim.ok(A.WRITETAB_REQ, struct.pack(">HH", R.SEASONS_2, 0) + b"\x01\x01\x00")
    assert sim.write(R.CONTRACT_2, struct.pack(">IIHBI", 77, 9000, 2, 0, when))[0] == A.ACK_A
    assert sim.reg(R.STATUS_WORD) & (1 << R.SW_CONTRACT_PENDING)
    sim.run_until(when - 60)
    assert sim.reg(R.CURRENT_BAND) == 2 and sim.reg(R.POWER_LIMIT) == 6600  # Saturday: T2
    sim.run(60)
    assert sim.reg(R.CURRENT_BAND) == 4 and sim.reg(R.POWER_LIMIT) == 9900
    assert struct.unpack(">IIHBI", sim.reg(R.CONTRACT_1)) == (77, 9000, 2, 0, when)
    assert sim.reg(R.CONTRACT_2) == bytes(15)
    (bill,) = sim.records(R.BILLING_DATA)
    assert struct.unpack_from(">IB", bill, 0) == (when, BL.BILL_CONTRACT)
    assert sim.events(E.EV_CONTRACT)[0][0:3] == (when, E.EV_CONTRACT, 77)


def test_commands_billing_cutoff_alarms_clock():
    sim = Sim(watts=1000)
    sim.run(HOUR)
    assert sim.command(TB.CMD_CLOSE_BILLING)[0] == A.ACK_A
    assert sim.reg(R.BILLING_COUNTER) == 1 and sim.reg(R.EXT_STATUS) & (1 << R.XS_BILLING_COMMAND)
    assert sim.command(TB.CMD_OPEN_CUTOFF)[0] == A.ACK_A
    assert sim.relay_moves == [True] and sim.reg(R.CUTOFF_STATE)[0:2] == b"\x01\x01"
    e = sim.reg(R.ENERGY_IMPORT)
    sim.run(HOUR)
    assert sim.reg(R.ENERGY_IMPORT) == e and sim.reg(R.CURRENT_L1) == 0  # nothing flows
    assert sim.command(TB.CMD_CLOSE_CUTOFF)[0] == A.ACK_A and sim.relay_moves == [True, False]
    assert sim.reg(R.EXT_STATUS) and sim.reg(R.STATUS_WORD) & (1 << R.SW_ALARM)
    assert sim.command(TB.CMD_RESET_ALARMS)[0] == A.ACK_A
    assert sim.reg(R.EXT_STATUS) == 0 and not sim.reg(R.STATUS_WORD) & (1 << R.SW_ALARM)
    t = sim.now()
    assert sim.command(TB.CMD_SYNC_CLOCK, struct.pack(">I", t - 5))[0] == A.ACK_A
    assert sim.now() == t - 5 and sim.reg(R.CLOCK) == t - 5
    assert struct.unpack(">IIB", sim.reg(R.LAST_CLOCK_CHANGE)) == (t, t - 5, TK.CLOCK_SYNC)
    assert not sim.reg(R.STATUS_WORD) & (1 << R.SW_CLOCK_UNSET)
    nack(sim.command(TB.CMD_ACTIVATE_CONTRACT), A.NACK_BAD_VALUE)  # no contract 2
    sim.run(60)
    assert sim.command(TB.CMD_FREEZE)[0] == A.ACK_A
    frozen = struct.unpack(R.LAYOUTS[R.SYNC_MEASURANDS][0], sim.reg(R.SYNC_MEASURANDS))
    assert frozen[0] == t + 55 and frozen[1:4] == (2300, 2300, 2300) and frozen[7] == 3000


def test_dataspont_queue_and_acknowledgement():
    sim = Sim(watts=1000)
    sim.run(HOUR)
    for _ in range(6):
        sim.command(TB.CMD_OPEN_CUTOFF)
        sim.command(TB.CMD_CLOSE_CUTOFF)
    assert sim.reg(R.STATUS_WORD) & (1 << R.SW_SPONT_PENDING)
    ans = sim.request(A.DATASPONT, struct.pack(">I", 0), RK, 112)
    k = ans[1] & 0x7F
    assert ans[0] == A.DATASPONT and ans[1] & 0x80 and k == (112 - 2) // 13
    items = [struct.unpack_from(">IIBI", ans, 2 + 13 * i) for i in range(k)]
    assert items[0][2] == E.EV_POWER_UP and items[1][2] == E.EV_CUTOFF_OPEN
    ans = sim.request(A.DATASPONT, struct.pack(">I", items[-1][0] + 1), RK, 112)
    assert ans[1] == 13 - k  # the rest, no more
    last = struct.unpack_from(">I", ans, 2 + 13 * (ans[1] - 1))[0]
    sim.request(A.DATASPONT, struct.pack(">I", last + 1), RK)
    assert not sim.reg(R.STATUS_WORD) & (1 << R.SW_SPONT_PENDING)
    assert sim.reg(R.SPONT_ACK) == last + 1


def test_reading_mode_authenticated_only():
    sim = Sim()
    assert sim.write(R.READING_MODE, b"\x01")[0] == A.ACK_A
    nack(sim.request(A.READ_REQ, struct.pack(">H", R.ENERGY_IMPORT), PL), A.NACK_ACCESS_DENIED)
    assert sim.request(A.READ_REQ, struct.pack(">H", R.STATUS_WORD), PL)[0] == A.READ_RESP
    assert sim.request(A.READ_REQ, struct.pack(">H", R.ENERGY_IMPORT), RK)[0] == A.READ_RESP
    nack(sim.write(R.READING_MODE, b"\x02"), A.NACK_BAD_VALUE, R.READING_MODE)


def test_settings_checked_and_applied():
    sim = Sim()
    nack(sim.write(R.PROFILE_PERIOD, struct.pack(">H", 700)), A.NACK_BAD_VALUE, R.PROFILE_PERIOD)
    assert sim.write(R.PROFILE_PERIOD, struct.pack(">H", 300))[0] == A.ACK_A
    sim.run(HOUR)
    assert sim.reg(R.PROFILE_ENTRIES) == 12
    nack(sim.write(R.DST_RULES, bytes(11)), A.NACK_BAD_VALUE)
    assert sim.events(E.EV_SETTINGS)[-1][2] == R.PROFILE_PERIOD


def test_write_budget_answers_busy_then_refills():
    sim = Sim()
    label = struct.pack(">H", R.POINT_LABEL) + b"X" * 16
    answers = [sim.request(A.WRITE_REQ, label)[0] for _ in range(70)]
    assert answers.count(A.ACK_A) == 60 and answers[-1] == A.NACK_A
    nack(sim.request(A.WRITE_REQ, label), A.NACK_BUSY)
    sim.run(120)
    assert sim.request(A.WRITE_REQ, label)[0] == A.ACK_A


def test_key_change_counted_and_logged():
    sim = Sim(keys=True)
    new_k1, new_k2 = bytes(range(100, 116)), bytes(range(116, 132))
    peer = Peer(sim)
    assert peer.exchange(A.KEY_CHANGE, KC.stage_data(K1, new_k1, new_k2), S.ECC_ECB_WRITE)[0] == A.ACK_A
    assert sim.reg(R.KEY_CHANGES) == 0
    peer.keys = S.Keys(new_k1, new_k2)
    assert peer.exchange(A.KEY_CHANGE, KC.activate_data(new_k1, new_k2), S.ECC_ECB_WRITE)[0] == A.ACK_A
    assert sim.store.get("keys")[0:32] == new_k1 + new_k2 and sim.reg(R.KEY_CHANGES) == 1
    assert sim.events(E.EV_KEYS)[0][2] == 3


# ---- authenticated variants through the node
def frame(lsdu, ecc, disc=8):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.aca_to_air(ACA), b"", disc, False, 0, False, 0, ecc, lsdu)
    return bytes(out[:n])


class Peer:
    def __init__(self, sim):
        self.sim = sim
        self.keys = S.Keys(K1, K2)
        self.mon = 0

    def exchange(self, attr, data, ecc):
        self.mon += 1
        req = S.seal_msg(self.keys, ACA, S.auth_attr(attr), data, self.mon, ecc, self.sim.now())
        f = frame(req, ecc)
        n = self.sim.node.on_phy(f, len(f))
        fr = mac.Frame()
        out = bytes(self.sim.node.out[:n])
        mac.decode(fr, out, n)
        ans = out[fr.data:fr.data + fr.data_len]
        if ans[0] == S.ATTR_NACK_A_AUTH:
            return bytes((A.NACK_A, ans[1]))
        plain, _when = S.open_msg(self.keys, ACA, ans, self.mon, fr.ecc)
        return bytes((S.plain_attr(ans[0]),)) + plain


def test_authenticated_table_services():
    sim = Sim(keys=True, watts=1000)
    sim.run(DAY)
    peer = Peer(sim)
    ans = peer.exchange(A.READTAB_REQ, struct.pack(">HH", R.LOAD_PROFILE, 0), S.ECC_CTR_READ)
    assert ans[0] == A.READTAB_RESP and ans[5] == 0x80 | 8 and len(ans) == 6 + 8 * 13
    ans = peer.exchange(A.BUFF_SELECT_REQ, struct.pack(">HII", R.DAILY_ENERGIES, 0, 0), S.ECC_CTR_READ)
    assert ans[0] == A.BUFF_SELECT_RESP
    ans = peer.exchange(A.DATASPONT, struct.pack(">I", 0), S.ECC_CTR_READ)
    assert ans[0] == A.DATASPONT and len(ans) <= 112
    # commands and table writes need the write key with encryption
    assert peer.exchange(A.COMMAND, bytes((TB.CMD_CLOSE_BILLING,)), S.ECC_CTR_READ)[1] == A.NACK_ACCESS_DENIED
    ecc_mac_only = S.make_ecc(S.MODE_NONE, S.KEY_WRITE)
    assert peer.exchange(A.COMMAND, bytes((TB.CMD_CLOSE_BILLING,)), ecc_mac_only)[1] == A.NACK_ACCESS_DENIED
    # CTR leaves the ciphertext steerable (docs/security.md W1): read rights only
    assert peer.exchange(A.COMMAND, bytes((TB.CMD_CLOSE_BILLING,)), S.ECC_CTR_WRITE)[1] == A.NACK_ACCESS_DENIED
    assert peer.exchange(A.COMMAND, bytes((TB.CMD_CLOSE_BILLING,)), S.ECC_ECB_WRITE)[0] == A.ACK_A
    assert sim.reg(R.BILLING_COUNTER) == 1
    assert peer.exchange(A.WRITETAB_REQ, struct.pack(">HH", R.HOLIDAYS, 23) + b"\x07\xeb\x03\x0f",
                         S.ECC_ECB_WRITE)[0] == A.ACK_A
    assert sim.meter.tables[R.HOLIDAYS].data[92:96] == b"\x07\xeb\x03\x0f"
    assert sim.store.get("resp") is not None  # a command's answer is kept across a reboot


def test_broadcast_freeze_captures_without_answering():
    sim = Sim(watts=700)
    sim.run(90)
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.BROADCAST, b"", 3, False, 0, False, 0, 0, bytes((A.COMMAND, TB.CMD_FREEZE)))
    assert sim.node.on_phy(out, n) == 0
    frozen = struct.unpack(R.LAYOUTS[R.SYNC_MEASURANDS][0], sim.reg(R.SYNC_MEASURANDS))
    assert frozen[0] == sim.now() and frozen[7] == 2100
