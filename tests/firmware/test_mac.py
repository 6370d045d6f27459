# MAC/LLC frame codec: byte-exact vectors (CRC-32 computed independently with
# zlib when the vectors were made, and re-checked by tests/host), both
# directions, and bad input.
from meter.link import mac
from meter.errors import DecodeError
from fwtest import raises, unhex, Rng

M2 = unhex("A8040A1E8902")
M3 = unhex("A8040A1E8903")

# (name, hex, addr natural, route natural list, discipline, uplink, position, data hex)
VECTORS = (
    ("read direct", "0d01891e0a04a83100000002003fec00a932", "A8040A1E8901", (), 3, False, 0, "02003F"),
    ("read via m2", "1303891e0a04a83002891e0a04a800000002003fc01b3bee", "A8040A1E8903", ("A8040A1E8902",), 3, False, 0, "02003F"),
    ("read repeated by m2", "1303891e0a04a83002891e0a04a801000002003f65c86725", "A8040A1E8903", ("A8040A1E8902",), 3, False, 1, "02003F"),
    ("answer from m3", "1903891e0a04a80002891e0a04a8820000030000000000000000c4804583", "A8040A1E8903", ("A8040A1E8902",), 0, True, 2, "03" + "00" * 8),
    ("answer repeated by m2", "1903891e0a04a80002891e0a04a88100000300000000000000003452dbf4", "A8040A1E8903", ("A8040A1E8902",), 0, True, 1, "03" + "00" * 8),
)


def _route(route):
    return b"".join(mac.aca_to_air(unhex(r)) for r in route)


def test_encode_vectors():
    out = bytearray(mac.MAX_FRAME)
    for name, hx, addr, route, disc, up, pos, data in VECTORS:
        n = mac.encode(out, mac.aca_to_air(unhex(addr)), _route(route), disc, up, pos, False, 0, 0, unhex(data))
        assert bytes(out[:n]) == unhex(hx), name


def test_decode_vectors():
    f = mac.Frame()
    for name, hx, addr, route, disc, up, pos, data in VECTORS:
        b = unhex(hx)
        mac.decode(f, b, len(b))
        assert f.repeaters == len(route), name
        assert f.discipline == disc and f.uplink == up and f.position == pos, name
        assert bytes(b[f.data:f.data + f.data_len]) == unhex(data), name
        assert bytes(b[f.addr:f.addr + 6]) == mac.aca_to_air(unhex(addr)), name


def test_relay_moves_position_both_ways():
    f = mac.Frame()
    out = bytearray(mac.MAX_FRAME)
    b = unhex(VECTORS[1][1])
    mac.decode(f, b, len(b))
    n = mac.relay(f, out)
    assert bytes(out[:n]) == unhex(VECTORS[2][1])
    b = unhex(VECTORS[3][1])
    mac.decode(f, b, len(b))
    n = mac.relay(f, out)
    assert bytes(out[:n]) == unhex(VECTORS[4][1])


def test_llc_fields_roundtrip():
    out = bytearray(mac.MAX_FRAME)
    f = mac.Frame()
    n = mac.encode(out, mac.BROADCAST, b"", 0xC, False, 0, True, 2, 5, b"\x5a\x02\x55\x00\x00")
    mac.decode(f, out, n)
    assert f.poll and f.dsap == 2 and f.ecc == 5 and f.discipline == 0xC


def test_max_route_and_data():
    out = bytearray(mac.MAX_FRAME)
    route = mac.aca_to_air(M2) * 8
    n = mac.encode(out, mac.aca_to_air(M3), route, 8, False, 0, False, 0, 0, bytes(128))
    assert n == mac.MAX_FRAME
    f = mac.Frame()
    mac.decode(f, out, n)
    assert f.repeaters == 8 and f.data_len == 128
    with raises(DecodeError):
        mac.encode(out, mac.aca_to_air(M3), route + M2, 8, False, 0, False, 0, 0, b"\x02")
    with raises(DecodeError):
        mac.encode(bytearray(300), mac.aca_to_air(M3), b"", 8, False, 0, False, 0, 0, bytes(129))


def test_discipline_for():
    assert mac.discipline_for(9) == 2
    assert mac.discipline_for(21) == 3
    assert mac.discipline_for(140) == 8
    with raises(DecodeError):
        mac.discipline_for(141)


# SCA-addressed frames: 2-byte repeater entries (sub-section | node), as the
# public parser reads them when ADDRESS byte 5 is 03. CRC-32 by zlib when made.
SCA3 = unhex("010000 01 03 03")  # section 1, sub-section 1, node 3 (on air)
SCA_VECTORS = (
    ("sca direct", "0d0100000103033100000002003fb4d7e158", "", 3, False, 0, "02003F"),
    ("sca via 2", "11010000010303320102010400000002003f04dd224a", "01020104", 3, False, 0, "02003F"),
    ("sca repeated", "11010000010303320102010401000002003fa10e7e81", "01020104", 3, False, 1, "02003F"),
    ("sca answer", "170100000103030201020104830000030000000000000000c1b2c6fb", "01020104", 0, True, 3,
     "03" + "00" * 8),
)


def test_sca_vectors_both_ways():
    out = bytearray(mac.MAX_FRAME)
    f = mac.Frame()
    for name, hx, rp, disc, up, pos, data in SCA_VECTORS:
        n = mac.encode(out, SCA3, unhex(rp), disc, up, pos, False, 0, 0, unhex(data))
        assert bytes(out[:n]) == unhex(hx), name
        b = unhex(hx)
        mac.decode(f, b, len(b))
        assert f.rp_size == 2 and f.repeaters == len(rp) // 4, name
        assert bytes(b[f.rp_addr(1):f.rp_addr(1) + 2]) == unhex(rp)[2:4] if rp else True, name
        assert f.discipline == disc and f.uplink == up and f.position == pos, name
        assert bytes(b[f.data:f.data + f.data_len]) == unhex(data), name


def test_sca_route_must_be_whole_entries():
    out = bytearray(mac.MAX_FRAME)
    with raises(DecodeError) as r:
        mac.encode(out, SCA3, unhex("010203"), 3, False, 0, False, 0, 0, b"\x02")
    assert r.value.field == "RP"
    n = mac.encode(out, SCA3, unhex("0102" * 8), 3, False, 0, False, 0, 0, b"\x02\x00\x3f")
    f = mac.decode(mac.Frame(), out, n)
    assert f.repeaters == 8 and f.data == 8 + 16 + 3
    with raises(DecodeError) as r:  # an answer's address must keep the route's form
        mac.answer(out, f, mac.aca_to_air(M3), 0, b"\x03", 1)
    assert r.value.field == "ADDRESS"


def test_bad_frames_name_the_field():
    f = mac.Frame()
    good = unhex(VECTORS[1][1])
    cases = (
        (good[:10], "LT"),
        (good + b"\x00", "LT"),
        (bytes(200), "LT"),
        (good[:-1] + bytes([good[-1] ^ 1]), "CRC"),
    )
    for b, field in cases:
        with raises(DecodeError) as r:
            mac.decode(f, b, len(b))
        assert r.value.field == field, (field, r.value.field)


def test_truncated_prefixes_and_random_input():
    f = mac.Frame()
    good = unhex(VECTORS[3][1])
    for i in range(len(good)):
        with raises(DecodeError):
            mac.decode(f, good, i)
    rng = Rng(7)
    for _ in range(300):
        b = rng.bytes(rng.below(200))
        try:
            mac.decode(f, b, len(b))
        except DecodeError:
            pass


def test_crc_into_is_zlib_crc32():
    from meter.crypto import crc32_table

    rng = Rng(5)
    out = bytearray(6)
    for n in (0, 1, 15, 16, 187, 191):
        data = b"\xaa" + rng.bytes(n)
        mac.crc_into(data, 1, n + 1, out, 1)
        c = crc32_table(data[1:])
        assert bytes(out[1:5]) == bytes([c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, c >> 24]), n


def test_answer_goes_back_along_the_route():
    f = mac.Frame()
    b = unhex(VECTORS[2][1])  # the read as m3 hears it from m2
    mac.decode(f, b, len(b))
    out = bytearray(200)
    view = memoryview(out)[5:]  # a modem driver's transmit slot: the frame at an offset
    data = b"\x03" + bytes(8) + b"not sent"
    n = mac.answer(view, f, mac.aca_to_air(M3), 0, data, 9)
    assert bytes(out[5:5 + n]) == unhex(VECTORS[3][1])  # "answer from m3"
    with raises(DecodeError):
        mac.answer(view, f, mac.aca_to_air(M3), 0, data, 0)


def test_encode_takes_part_of_a_buffer():
    out = bytearray(mac.MAX_FRAME)
    name, hx, addr, route, disc, up, pos, data = VECTORS[0]
    n = mac.encode(out, mac.aca_to_air(unhex(addr)), b"", disc, up, pos, False, 0, 0, unhex(data) + b"xx", 3)
    assert bytes(out[:n]) == unhex(hx)


def test_crc_tables_hold_the_zlib_polynomial():
    # the written-out table (frozen into flash on a board) against its definition
    t = mac._CRC_T
    assert len(t) == 1024
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        assert t[i] | t[i + 256] << 8 | t[i + 512] << 16 | t[i + 768] << 24 == c, i
