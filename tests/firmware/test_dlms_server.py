# The xDLMS server (meter/dlms/): A-XDR, the association (Green Book ACSE and
# HLS-GMAC vectors), GET/SET/ACTION with their refusals, suite 0 ciphering,
# invocation counters across power cuts, and garbage that never stops it.
from meter.dlms import axdr as X
from meter.dlms import cosem as C
from meter.errors import DecodeError
from meter.model import registers as R
from fwtest import Rng, raises, unhex
from dlmskit import (AK, CLIENT_TITLE, F_CTOS, LLS, REPLY_TO_HLS, T0, Meter, aarq, glo, hls_aarq, initiate,
                     manager, seal, unglo)

GET_CLOCK = unhex("C0 01 C1 0008 0000010000FF 02 00")
# The Green Book's accepted AARE with this meter's conformance (block transfer
# with GET, multiple references, GET, SET, ACTION of what the AARQ proposed)
# and max PDU size 1024.
AARE_OK = unhex("6129 A109060760857405080101 A203020100 A305A103020100 BE10 040E 0800065F1F0400001E1904000007")


def test_axdr_lengths_and_data():
    assert X.get_len(unhex("7F"), 0, 1) == (127, 1)
    assert X.get_len(unhex("8180"), 0, 2) == (128, 2)
    assert X.get_len(unhex("820400"), 0, 3) == (1024, 3)
    for bad in ("80", "83000000", "82 04"):
        with raises(DecodeError):
            X.get_len(unhex(bad), 0, len(unhex(bad)))
    data = unhex("0203 1200 0A 0904 01020304 0F FF")  # structure {long-unsigned 10, octets, integer -1}
    assert X.skip(data, 0, len(data)) == len(data)
    with raises(DecodeError):
        X.skip(data, 0, len(data) - 1)
    assert X.read_int(data, 2, len(data)) == (10, 5)
    assert X.read_int(data, 11, len(data)) == (-1, 13)
    deep = b"\x01\x01" * 9 + b"\x00"
    with raises(DecodeError):
        X.skip(deep, 0, len(deep))
    w = X.Writer(bytearray(3))
    w.value(X.U16, 0x1234)
    assert bytes(w.buf) == unhex("12 1234")
    with raises(DecodeError):
        w.byte(0)


def test_green_book_aarq_gets_the_accepted_aare():
    m = Meter()
    assert m.ask(unhex("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0")) == AARE_OK


def test_dlms_version_too_low_gets_the_green_book_reject():
    m = Meter()
    assert m.ask(aarq(ui=initiate(version=5))) == unhex("611FA109060760857405080101A203020101A305A103020101"
                                                        "BE0604040E010601")


def test_association_refusals():
    m = Meter()
    def refused(apdu):
        aare = m.ask(apdu)
        assert aare[0] == 0x61 and aare[17] == 1, aare.hex()  # rejected-permanent
        return aare[24], aare  # acse-service-user diagnostic

    assert refused(aarq(ctx=2))[0] == 2  # application context not supported
    assert refused(aarq(mech=2, auth=b"12345678"))[0] == 11  # HLS mechanism 2: not recognised
    assert refused(aarq(mech=5, auth=b"K56iVagY"))[0] == 2  # HLS-GMAC without ciphering: refused
    assert refused(aarq(mech=1, auth=b"wrong!!!"))[0] == 13  # LLS, wrong secret
    diag, aare = refused(aarq(ui=initiate(max_pdu=12)))
    assert diag == 1 and aare.endswith(unhex("0E010603"))  # initiate error: PDU size too short
    assert m.server.stats["rejected"] == 5 and m.server.stats["associations"] == 0
    assert m.ask(GET_CLOCK) == unhex("D8 01 01")  # nothing without an association


def test_public_get_clock_and_refusals():
    m = Meter(t=1764676800)  # 2025-12-02 12:00:00 UTC, a Tuesday
    m.ask(aarq())
    m.model.status &= ~1  # the clock counts as set
    assert m.ask(GET_CLOCK) == unhex("C4 01 C1 00 09 0C 07E9 0C 02 02 0C 00 00 00 0000 00")
    assert m.ask(unhex("C0 01 C1 0003 0100010800FF 02 00")) == unhex("C4 01 C1 01 03")  # energy: readers only
    assert m.ask(unhex("C0 01 C1 0003 0100630800FF 02 00")) == unhex("C4 01 C1 01 04")  # no such object
    assert m.ask(unhex("C0 01 C1 0001 0000010000FF 02 00")) == unhex("C4 01 C1 01 09")  # clock is class 8
    assert m.ask(unhex("C0 01 C1 0008 0000010000FF 0A 00")) == unhex("C4 01 C1 01 04")  # no attribute 10
    assert m.ask(unhex("C0 01 C1 0008 0000010000FF 02 01 01 0000")) == unhex("C4 01 C1 01 FA")  # selective
    set_clock = unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00")
    assert m.ask(set_clock) == unhex("C5 01 C1 03") and m.t == 1764676800
    assert m.ask(unhex("C3 01 C1 0046 00006003 0AFF 01 01 0F00")) == unhex("C7 01 C1 03 00")
    assert m.ask(unhex("C0 01 C1 0001 0000600100FF 02 00")) == unhex("C4 01 C1 00 0A 09") + b"SN-DLMS-1"
    assert m.ask(unhex("C5 01")) == unhex("D8 02 03")  # too short to be anything
    assert m.ask(unhex("C2 01 C1 00")) == unhex("D8 02 02")  # an unknown service
    assert m.ask(unhex("62 03 80 01 00")) == unhex("63 03 80 01 00")
    assert m.ask(GET_CLOCK) == unhex("D8 01 01")  # released


def test_lls_reader_reads_the_energy_register_of_the_data_model():
    m = Meter()
    assert m.ask(aarq(mech=1, auth=LLS))[:25] == AARE_OK[:25]
    m.model.set(R.ENERGY_IMPORT, 123456, False)
    assert m.ask(unhex("C0 01 C1 0003 0100010800FF 02 00")) == unhex("C4 01 C1 00 06 0001E240")
    assert m.ask(unhex("C0 01 C1 0003 0100010800FF 03 00")) == unhex("C4 01 C1 00 0202 0F00 161E")  # Wh
    set_clock = unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00")
    assert m.ask(set_clock) == unhex("C5 01 C1 03")  # readers do not write


def test_hls_gmac_green_book_vectors_then_ciphered_get_set_action():
    m = Meter()
    plain, ic = manager(m)
    # ActionResponse: success, return data octet-string f(CtoS) of the Green Book
    assert plain == unhex("C7 01 C1 00 01 00 09 11") + F_CTOS and ic == 0x01234568
    assert m.server.level == C.MANAGER
    plain, ic2 = unglo(m.ask(glo(GET_CLOCK, 2)))
    assert plain[:6] == unhex("C4 01 C1 00 09 0C") and ic2 == ic + 1
    set_clock = unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00")
    assert unglo(m.ask(glo(set_clock, 3)))[0] == unhex("C5 01 C1 00")
    assert m.t == 1767268800  # 2026-01-01 12:00:00 UTC
    assert m.model.get(R.CLOCK) == 1767268800  # the register the Original-SMITP READ reads
    # deviation 0x8000 (unspecified) is UTC; -60 (UTC = local - 60 min)
    set2 = unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C000000 FFC4 00")
    assert unglo(m.ask(glo(set2, 4)))[0] == unhex("C5 01 C1 00") and m.t == 1767268800 - 3600
    bad = unhex("C1 01 C1 0008 0000010000FF 02 00 090C FFFF0101040C0000000000 00 00")
    assert unglo(m.ask(glo(bad, 5)))[0] == unhex("C5 01 C1 0C")  # year not specified: type-unmatched


def test_ciphered_refusals_keep_the_meter_serving():
    m = Meter()
    manager(m)
    ok = glo(GET_CLOCK, 5)
    assert unglo(m.ask(ok))[0][:4] == unhex("C4 01 C1 00")
    assert m.ask(ok) == unhex("D8 01 06 00000006")  # replayed: IC error, the next one expected
    assert m.ask(glo(GET_CLOCK, 4)) == unhex("D8 01 06 00000006")
    tampered = bytearray(glo(GET_CLOCK, 6))
    tampered[-1] ^= 1
    assert m.ask(bytes(tampered)) == unhex("D8 01 05")
    assert m.ask(glo(GET_CLOCK, 6, ak=bytes(16))) == unhex("D8 01 05")  # wrong key
    assert m.ask(glo(GET_CLOCK, 6, sc=0x10)) == unhex("D8 01 05")  # not authenticated and encrypted
    assert m.ask(glo(GET_CLOCK, 6, title=b"\x4d" * 8)) == unhex("D8 01 05")  # another client
    assert m.ask(GET_CLOCK) == unhex("D8 01 01")  # in clear inside a ciphered association
    assert m.server.stats["replays"] == 2 and m.server.cic == 5  # refusals commit nothing
    assert unglo(m.ask(glo(GET_CLOCK, 6)))[0][:4] == unhex("C4 01 C1 00")


def test_green_book_glo_get_request_is_served_with_a_glo_get_response():
    # The Green Book's glo-get-request of the clock, byte for byte, from a client whose system
    # title is 4D4D4D0000BC614E; the answer is a glo-get-response (CC) under the meter's title.
    from dlmskit import METER_TITLE, f_stoc

    m = Meter(title=unhex("534DA8040A1E8901"))
    gb = METER_TITLE  # the title the Green Book example ciphers under
    assert m.ask(hls_aarq(ic=0x01234560, title=gb))[0] == 0x61
    reply = REPLY_TO_HLS[:-17] + f_stoc(0x01234561, gb)
    plain, _ = unglo(m.ask(glo(reply, 0x01234562, title=gb)), unhex("534DA8040A1E8901"))
    assert plain[3] == 0 and m.server.level == C.MANAGER
    ans = m.ask(unhex("C8 1E 30 01234567 411312FF935A47566827C467BC 7D825C3BE4A77C3FCC056B6B"))
    assert ans[0] == 0xCC and ans[2] == 0x30
    body = bytearray(ans[7:-12])
    from meter.dlms.gcm import Gcm
    from dlmskit import EK

    assert Gcm(EK).open(unhex("534DA8040A1E8901") + ans[3:7], (b"\x30", AK), body, 0, len(body), ans[-12:])
    assert bytes(body[:6]) == unhex("C4 01 00 00 09 0C")  # invoke-id 0, as asked
    # a glo-get-request must hold a get-request
    wrong = seal(unhex("C1 01 C1 0008 0000010000FF 02 00 0F 00"), 0x01234568, title=gb)
    assert m.ask(b"\xc8" + bytes((len(wrong),)) + wrong) == unhex("D8 02 02")


def test_hls_wrong_reply_ends_the_association():
    m = Meter()
    m.server.ic = m.server.ic_end = 10
    m.ask(hls_aarq())
    assert unglo(m.ask(glo(GET_CLOCK, 1)))[0] == unhex("C4 01 C1 01 03")  # not before the reply
    wrong = bytearray(REPLY_TO_HLS)
    wrong[-1] ^= 1
    assert unglo(m.ask(glo(bytes(wrong), 2)))[0] == unhex("C7 01 C1 FA 00")
    assert m.ask(glo(GET_CLOCK, 3)) == unhex("D8 01 01")


def test_hls_with_a_wrong_key_is_refused():
    m = Meter()
    body = seal(initiate(), 0, ak=bytes(16))
    assert m.ask(aarq(3, 5, b"K56iVagY", CLIENT_TITLE, b"\x21" + bytes((len(body),)) + body))[24] == 13
    m = Meter(keys=False)
    assert m.ask(hls_aarq())[-1] == 13  # no keys provisioned: no HLS


def test_disconnect_control_action_needs_the_manager():
    m = Meter()
    manager(m)
    # no cut-off engine behind the register in this bare data model
    assert unglo(m.ask(glo(unhex("C3 01 C1 0046 00006003 0AFF 01 01 0F00"), 2)))[0] == unhex("C7 01 C1 0B 00")
    assert unglo(m.ask(glo(unhex("C3 01 C1 0046 00006003 0AFF 03 00"), 3)))[0] == unhex("C7 01 C1 03 00")


def test_get_with_list():
    m = Meter()
    m.ask(aarq(mech=1, auth=LLS))
    m.model.set(R.ENERGY_IMPORT, 7, False)
    req = unhex("C0 03 C1 03  0008 0000010000FF 02 00  0003 0100010800FF 02 00  0003 0100630800FF 02 00")
    ans = m.ask(req)
    assert ans[:5] == unhex("C4 03 C1 03 00") and ans[5:7] == unhex("090C")
    assert ans[19:] == unhex("00 06 00000007  01 04")  # energy, then object-undefined
    assert m.ask(unhex("C0 03 C1 00")) == unhex("D8 02 03")  # an empty list
    assert m.ask(req + b"\x00") == unhex("D8 02 03")  # trailing bytes
    # with a selective access asked: refused for that attribute only
    sel = unhex("C0 03 C1 02  0008 0000010000FF 02 01 01 0203 1200 08 0600000000 0F02  0003 0100010800FF 02 00")
    assert m.ask(sel)[3:] == unhex("02 01 FA 00 06 00000007")


def read_all(m, req, pdu):
    """A GET's Data, following GET-next while the meter answers in blocks of at most `pdu` bytes;
    returns (Data, number of blocks)."""
    ans = m.ask(req)
    if ans[:2] == b"\xc4\x01":
        assert ans[3] == 0, ans.hex()  # Data, not a data-access-result
        return ans[4:], 0
    data = bytearray()
    number = 1
    while True:
        assert len(ans) <= pdu and ans[:3] == unhex("C4 02") + req[2:3], ans.hex()
        assert int.from_bytes(ans[4:8], "big") == number and ans[8] == 0, ans.hex()
        size, at = X.get_len(ans, 9, len(ans))
        data += ans[at:at + size]
        assert at + size == len(ans)
        if ans[3]:
            return bytes(data), number
        ans = m.ask(unhex("C0 02") + req[2:3] + number.to_bytes(4, "big"))
        number += 1


def test_get_with_block_transfer_gives_the_whole_object_list():
    m = Meter()
    get_list = unhex("C0 01 C1 000F 0000280000FF 02 00")
    m.ask(aarq(ui=initiate(max_pdu=1024)))
    whole, _ = read_all(m, get_list, 1024)
    assert whole[0] == X.ARRAY and whole[1] == len(C.OBJECTS) and X.skip(whole, 0, len(whole)) == len(whole)
    m.ask(aarq(ui=initiate(max_pdu=64)))
    data, blocks = read_all(m, get_list, 64)
    assert data == whole and blocks > 10
    assert m.ask(unhex("C0 02 C1 00000001")) == unhex("C4 02 C1 01 00000001 01 10")  # none in progress


def test_invocation_counters_survive_power_cuts():
    m = Meter()
    manager(m)
    set_clock = glo(unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00"), 2)
    assert unglo(m.ask(set_clock))[0] == unhex("C5 01 C1 00")
    used = [unglo(m.ask(glo(GET_CLOCK, 3 + k)))[1] for k in range(70)]
    writes = m.store.writes
    assert writes < 12  # meter counters are reserved in blocks, not written per APDU
    after = Meter(store=m.store)  # a power cut: a new server on the same flash
    assert after.ask(hls_aarq(ic=0))[24] == 13 and after.server.stats["replays"] == 1  # an old AARQ
    after.server.stats["replays"] = 0
    assert after.ask(hls_aarq(ic=80))[:1] == b"\x61"
    assert after.server.ic > max(used)  # the meter never reuses a counter
    plain, _ = unglo(after.ask(glo(REPLY_TO_HLS[:-17] + seal_f_stoc(after, 81), 81)))
    assert plain[3] == 0 and after.server.level == C.MANAGER
    assert after.ask(set_clock) == unhex("D8 01 06 00000052")  # the SET replayed after the cut
    assert after.server.stats["replays"] == 1


def seal_f_stoc(meter, ic):
    # f(StoC) for the challenge the meter gave (the Green Book's StoC): SC | IC | GMAC
    from meter.dlms.gcm import Gcm
    from dlmskit import EK, STOC

    tag = bytearray(12)
    Gcm(EK).seal(CLIENT_TITLE + ic.to_bytes(4, "big"), (b"\x10", AK, STOC), b"", 0, 0, tag)
    return b"\x10" + ic.to_bytes(4, "big") + bytes(tag)


def test_garbage_never_raises_and_the_meter_keeps_serving():
    rng = Rng(5)
    m = Meter()
    for k in range(300):
        apdu = bytes((rng.next() & 0xFF,)) + rng.bytes(rng.below(40))
        if k % 3 == 0:
            apdu = bytes((0x60, len(apdu))) + apdu
        m.ask(apdu)
    m.ask(aarq())
    assert m.ask(GET_CLOCK)[:4] == unhex("C4 01 C1 00")



def test_mutated_apdus_never_raise_and_the_meter_keeps_serving():
    # Valid APDUs of every kind with bytes flipped, cut or added: handle() answers or stays
    # silent, never raises; a good association and GET work after each batch.
    rng = Rng(13)
    m = Meter()
    seeds = [aarq(), aarq(mech=1, auth=LLS), hls_aarq(ic=1), GET_CLOCK, glo(GET_CLOCK, 3), REPLY_TO_HLS,
             unhex("C0 02 C1 00000001"), unhex("C1 01 C1 0008 0000010000FF 02 00 090C 07EA0101040C0000000000 00 00"),
             unhex("C3 01 C1 0046 0000600 30AFF 01 01 0F00".replace(" ", "")), unhex("62 03 80 01 00")]
    for k in range(600):
        apdu = bytearray(seeds[rng.below(len(seeds))])
        for _ in range(1 + rng.below(3)):
            what = rng.below(3)
            if what == 0 and apdu:
                apdu[rng.below(len(apdu))] ^= 1 << rng.below(8)
            elif what == 1 and len(apdu) > 1:
                apdu = apdu[:rng.below(len(apdu))]
            else:
                apdu += rng.bytes(1 + rng.below(4))
        if k % 4 == 0:  # now and then inside an association
            m.ask(aarq())
        m.ask(bytes(apdu))
    m.ask(aarq())
    assert m.ask(GET_CLOCK)[:4] == unhex("C4 01 C1 00")


def _profile_meter(records=10):
    import struct

    from meter.model.metering import Metering

    m = Meter()
    Metering(m.model, m.store)
    tb = m.model.tables[R.LOAD_PROFILE]
    for k in range(records):
        assert tb.append(struct.pack(">IBHHHH", T0 + 900 * k, k & 1, 100 + k, 200 + k, 300 + k, 400 + k))
    m.ask(aarq(mech=1, auth=LLS))
    return m


def _entry(k):
    # an entry of the load profile, encoded here independently of meter/dlms/profile.py
    import time as _t

    t = T0 + 900 * k
    y, mo, d, h, mi, s, wd = _t.gmtime(t)[:7]
    dt = bytes((0x09, 12)) + y.to_bytes(2, "big") + bytes((mo, d, wd + 1 if wd < 7 else 1, h, mi, s, 0, 0, 0, 0))
    return (bytes((0x02, 6)) + dt + bytes((0x11, k & 1)) + b"".join(b"\x12" + (v + k).to_bytes(2, "big")
                                                                   for v in (100, 200, 300, 400)))


PROFILE = unhex("0007 0100630100FF 02")


def test_load_profile_whole_by_range_and_by_entry():
    m = _profile_meter()
    whole, _ = read_all(m, unhex("C0 01 C1") + PROFILE + b"\x00", 1024)
    assert whole == b"\x01\x82\x00\x0a" + b"".join(_entry(k) for k in range(10))
    dt = lambda t: b"\x09\x0c" + bytes(C_dt(t))  # noqa: E731
    rng = (b"\x01\x01\x02\x04" + unhex("0204 1200 08 0906 0000010000FF 0F02 120000") + dt(T0 + 1800)
           + dt(T0 + 4500) + b"\x01\x00")
    data, _ = read_all(m, unhex("C0 01 C1") + PROFILE + rng, 1024)
    assert data == b"\x01\x82\x00\x04" + b"".join(_entry(k) for k in range(2, 6))  # 2..5, both ends in
    entry = b"\x01\x02\x02\x04" + unhex("06 00000003 06 00000005 12 0001 12 0000")
    data, _ = read_all(m, unhex("C0 01 C1") + PROFILE + entry, 1024)
    assert data == b"\x01\x82\x00\x03" + b"".join(_entry(k) for k in range(2, 5))
    m.ask(aarq(mech=1, auth=LLS, ui=initiate(max_pdu=64)))
    data, blocks = read_all(m, unhex("C0 01 C1") + PROFILE + b"\x00", 64)
    assert data == whole and blocks > 5  # the buffer made block by block


def C_dt(t):
    w = X.Writer(bytearray(14))
    C.date_time(w, t, 0)
    return w.buf[2:]


def test_load_profile_attributes_and_refusals():
    m = _profile_meter(3)
    get = lambda a: m.ask(unhex("C0 01 C1 0007 0100630100FF") + bytes((a, 0)))  # noqa: E731
    assert get(7) == unhex("C4 01 C1 00 06 00000003")  # entries in use
    assert get(4) == unhex("C4 01 C1 00 06 00000384")  # capture period 900 s
    assert get(3)[4:8] == unhex("01 06 0204")  # six capture objects
    assert get(9) == unhex("C4 01 C1 01 04")
    bad = b"\x01\x03\x02\x04" + unhex("0600000001 0600000002 120001 120000")  # selector 3
    assert m.ask(unhex("C0 01 C1") + PROFILE + bad) == unhex("C4 01 C1 01 FA")
    m.ask(aarq())  # the public client
    assert get(2) == unhex("C4 01 C1 01 03")
