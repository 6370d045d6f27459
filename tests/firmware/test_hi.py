# M&M Host Interface driver: checksum and frame vectors (meter/phy/hi_codec.py),
# the link machine, boot and configuration, the data path and the health
# checks (meter/phy/hi.py), under both checksum rules. Runs under CPython
# (pytest) and the MicroPython unix port (run_mp.py).
from meter.phy import contract as phy
from meter.errors import DecodeError
from meter.phy import hi_codec as H
from meter.phy import hi
from fwtest import raises, unhex, Rng

T0 = 1000
ACA = unhex("A8040A1E8984")
SERIAL = "SN1E8984"


def cs_of(kind, body):
    """Checksum written independently of the module: the byte sum, or the
    Microchip CRC-16 bit by bit (each byte shifted into the register)."""
    if kind == H.CS_SUM:
        return sum(body) & 0xFFFF
    crc = 0
    for b in body:
        for k in range(7, -1, -1):
            top = crc & 0x8000
            crc = ((crc << 1) | ((b >> k) & 1)) & 0xFFFF
            if top:
                crc ^= 0x1021
    return crc


def fr(cmd, payload, kind=H.CS_CRC, fs=0x02):
    body = bytes([len(payload) - 1, cmd]) + bytes(payload)
    c = cs_of(kind, body)
    return bytes([fs]) + body + bytes([c & 0xFF, c >> 8])


# ---- vectors: modem-uart.md 4.11 and mm-hi-ip-mib.md 1.8 (both rules)
VECTORS = (
    # cmd, payload, byte-sum frame, CRC-16 frame
    (0x2C, "55", "02 00 2C 55 81 00", "02 00 2C 55 55 2C"),
    (0x0C, "03", "02 00 0C 03 0F 00", "02 00 0C 03 03 0C"),
    (0x3C, "00", "02 00 3C 00 3C 00", "02 00 3C 00 00 3C"),
    (0x08, "03 01 01", "02 02 08 03 01 01 0F 00", "02 02 08 03 01 01 AB D6"),
    (0x3E, "83", "02 00 3E 83 C1 00", "02 00 3E 83 83 3E"),
    (0x26, "00 01 02 00 3F", "02 04 26 00 01 02 00 3F 6C 00", "02 04 26 00 01 02 00 3F 9D 8A"),
    (0x24, "00 01 03 00 00 00 00 00 00 00 00", "02 0A 24 00 01 03 00 00 00 00 00 00 00 00 32 00",
     "02 0A 24 00 01 03 00 00 00 00 00 00 00 00 54 09"),
    (0x25, "00", "02 00 25 00 25 00", "02 00 25 00 00 25"),
    (0x27, "03", "02 00 27 03 2A 00", "02 00 27 03 03 27"),
    (0x0A, "0C 14 00 E8 03 00 00 FA 00 01", "02 09 0A 0C 14 00 E8 03 00 00 FA 00 01 19 02",
     "02 09 0A 0C 14 00 E8 03 00 00 FA 00 01 35 C1"),
    (0x08, "07 01 00 00 01 05 03", "02 06 08 07 01 00 00 01 05 03 1F 00", "02 06 08 07 01 00 00 01 05 03 25 A8"),
)


def test_crc16_check_value():
    assert H.crc16(b"123456789") == 0xBEEF
    assert H.crc16(unhex("00 2C AA")) == 0x2CAA
    assert cs_of(H.CS_CRC, b"123456789") == 0xBEEF  # the test's own oracle agrees


def test_frame_vectors_both_checksums():
    for cmd, payload, by_sum, by_crc in VECTORS:
        p = unhex(payload)
        assert H.encode_frame(cmd, p, H.CS_SUM) == unhex(by_sum), (cmd, payload)
        assert H.encode_frame(cmd, p, H.CS_CRC) == unhex(by_crc), (cmd, payload)
        assert fr(cmd, p, H.CS_SUM) == unhex(by_sum)
        assert fr(cmd, p, H.CS_CRC) == unhex(by_crc)
        assert H.decode_frame(unhex(by_sum), H.CS_SUM) == (2, cmd, p)
        assert H.decode_frame(unhex(by_crc), H.CS_CRC) == (2, cmd, p)


def test_receiver_reads_vectors_and_a_repeat_is_dropped():
    for kind, col in ((H.CS_SUM, 2), (H.CS_CRC, 3)):
        rx = H.receiver(kind)
        for v in VECTORS:
            f = unhex(v[col])
            assert rx.feed(f, 0, T0) == len(f) and rx.kind == 1, v  # MSG_FRAME
            assert rx.payload() == unhex(v[1])
            rep = b"\x03" + f[1:]
            rx.feed(rep, 0, T0)
            assert rx.kind == 2  # MSG_DUP: the 0x03 copy of the last frame
        bad = bytearray(unhex(VECTORS[0][col]))
        bad[-1] ^= 0x40
        rx.feed(bad, 0, T0)
        assert rx.kind == 3  # MSG_BAD: NAK


def test_decode_errors_name_the_field():
    good = unhex(VECTORS[0][3])
    for frame, field in ((good[:5], "frame"), (b"\x05" + good[1:], "FS"), (good + b"\x00", "LEN"),
                         (good[:-1] + b"\x00", "CS")):
        with raises(DecodeError) as e:
            H.decode_frame(frame, H.CS_CRC)
        assert e.value.field == field
    with raises(DecodeError):
        H.decode_frame(good, H.CS_SUM)  # a CRC frame is not a byte-sum frame
    with raises(ValueError):
        H.encode_frame(0x24, b"")
    with raises(ValueError):
        H.encode_frame(0x24, bytes(257))


def test_status_message_has_status_and_mask():
    rx = H.receiver(H.CS_CRC)
    rx.accept_status = True
    rx.feed(b"\x3f\x03", 0, T0)
    assert rx.kind == 0 and rx.in_status()
    rx.feed(b"\xd8\x10", 0, T0)
    assert rx.kind == 7 and rx.status == 0x03 and rx.status_mask == 0x10D8  # MSG_STATUS


# ---- the link machine against a scripted modem
def step(drv, now, data=None):
    if data is not None:
        drv.receive(data, now)
    drv.poll(now)
    return drv.data_to_send() or b"", drv.treq


def kinds(drv):
    out = []
    k = drv.next_kind()
    while k:
        out.append((k, drv.ev_cmd, drv.ev_code, bytes(drv.rx[0:drv.rx_len]) if drv.rx is not None else b""))
        k = drv.next_kind()
    return out


def send_one(drv, now, kind, status=b"\x3f\x03\xd8\x10"):
    """T_REQ handshake of the request due: the frame the driver writes."""
    out, treq = step(drv, now)
    assert out == b"" and treq == 0 and drv.state == "STATUS", (out, treq, drv.state)
    out, treq = step(drv, now, status)
    assert treq == 1
    return out


def confirm(drv, now, kind, cmd, payload):
    out, _ = step(drv, now, b"\x06")
    assert out == b"" and drv.state == "REPLY"
    out, _ = step(drv, now, fr(cmd, payload, kind))
    assert out == b"\x06"


def booted(kind, **kw):
    """A managed driver after the modem's BIO_Reset.indication and its configuration."""
    drv = hi.driver(hi.MICROCHIP if kind == H.CS_CRC else hi.ST75MM, aca=ACA, serial=SERIAL, **kw)
    now = T0
    step(drv, now)
    out, _ = step(drv, now, fr(0x3E, b"\x80", kind))
    assert out == b"\x06"
    for index, value in hi.setup(drv.profile, ACA, SERIAL):
        now += 20
        w = send_one(drv, now, kind)
        assert w == fr(0x08, bytes([index]) + value, kind), w
        confirm(drv, now, kind, 0x09, bytes([index]))
    assert drv.ready
    got = kinds(drv)
    assert [g[0] for g in got] == [phy.RESET, phy.READY], got
    return drv, now + 20


def test_boot_configuration_both_profiles():
    for kind in (H.CS_CRC, H.CS_SUM):
        drv, _ = booted(kind)
        assert drv.stats["rx_bad"] == 0
    mnf = hi.setup(hi.MICROCHIP, ACA, SERIAL)[0][1]
    assert mnf == b"SN1E8984" + bytes(8) + unhex("84 89 1E 0A 04 A8")  # ACA little-endian


def test_bio_reset_when_the_modem_does_not_announce_itself():
    drv = hi.driver(aca=ACA, serial=SERIAL, boot_ms=1500)
    assert drv.next_timeout(T0) == 0
    step(drv, T0)
    assert drv.next_timeout(T0) == 1500 and drv.idle
    w = send_one(drv, T0 + 1500, H.CS_CRC)
    assert w == unhex("02 00 3C 00 00 3C")
    confirm(drv, T0 + 1500, H.CS_CRC, 0x3D, b"\x00")
    out, _ = step(drv, T0 + 1520, fr(0x3E, b"\x83"))
    assert out == b"\x06" and kinds(drv)[0][:3] == (phy.RESET, 0x83, 0)
    assert drv.state == "STATUS" and drv.treq == 0  # the configuration's first write is under way


def test_slave_data_path_same_reqid_and_protocol():
    for kind in (H.CS_CRC, H.CS_SUM):
        drv, now = booted(kind)
        out, _ = step(drv, now, fr(0x26, unhex("20 07 02 00 3F"), kind))  # protocol 0 with ECC 2, ReqID 7
        assert out == b"\x06"
        got = kinds(drv)
        assert got == [(phy.LSDU, hi.MAX_LSDU, 2, unhex("02 00 3F"))], got
        space = drv.tx_space()
        space[0:3] = b"\x03\x12\x34"
        assert drv.answer(3, 5)
        assert not drv.answer(3, 5)  # one answer per indication
        w = send_one(drv, now, kind)
        assert w == fr(0x24, unhex("50 07 03 12 34"), kind), w
        confirm(drv, now, kind, 0x25, b"\x00")
        assert drv.stats["answers"] == 1 and drv.idle and kinds(drv) == []


def test_negative_confirm_and_indications_not_served():
    drv, now = booted(H.CS_CRC)
    step(drv, now, fr(0x26, unhex("00 09 02 00 3F")))
    kinds(drv)
    drv.tx_space()[0] = 0x03
    drv.answer(1)
    send_one(drv, now, H.CS_CRC)
    confirm(drv, now, H.CS_CRC, 0x27, b"\x03")
    assert drv.stats["answer_refused"] == 1
    assert kinds(drv) == [(phy.FAILED, 0x24, 3, b"")]
    for payload in ("02 05 02 00 3F", "00 00 02 00 3F", "00 05"):  # protocol 2, ReqID 0, no ATTR
        out, _ = step(drv, now, fr(0x26, unhex(payload)))
        assert out == b"\x06"
    assert kinds(drv) == [] and drv.stats["rx_ignored"] == 3


def test_nak_repeats_once_with_0x03_then_fails():
    drv, now = booted(H.CS_CRC)
    drv.mib_read(4)
    w = send_one(drv, now, H.CS_CRC)
    assert w == unhex("02 00 0C 04 04 0C")
    out, treq = step(drv, now, b"\x15")
    assert drv.state == "PAUSE" and treq == 1
    w = send_one(drv, now + 10, H.CS_CRC)
    assert w == unhex("03 00 0C 04 04 0C")  # the same frame, repetition start byte
    step(drv, now + 10, b"\x15")
    assert drv.idle and drv.stats["retries"] == 1
    assert kinds(drv) == [(phy.FAILED, 0x0C, phy.NO_ANSWER, b"")]


def test_no_ack_within_tack_repeats_then_confirm_ends_it():
    drv, now = booted(H.CS_CRC, tack_ms=40)
    drv.mib_read(4)
    send_one(drv, now, H.CS_CRC)
    wire = (6 * 10000 + 57599) // 57600
    step(drv, now + 40 + wire - 1)
    assert drv.state == "ACK"
    step(drv, now + 40 + wire)
    assert drv.state == "PAUSE"
    w = send_one(drv, now + 60 + wire, H.CS_CRC)
    assert w[0] == 0x03
    confirm(drv, now + 60 + wire, H.CS_CRC, 0x0D, unhex("AA A5 00 00 00 00 01 00"))
    assert drv.idle and kinds(drv) == []  # managed: the confirm stays inside


def test_treq_rises_as_the_status_message_starts_and_busy_backs_off():
    drv, now = booted(H.CS_CRC, backoff_ms=50, busy_max=2)
    drv.mib_read(4)
    out, treq = step(drv, now)
    assert treq == 0
    out, treq = step(drv, now, b"\x3f")
    assert treq == 1 and out == b"" and drv.state == "STATUS"  # raised at the first byte of the status
    out, treq = step(drv, now, b"\x0b\xd8\x10")  # PLC busy
    assert out == b"" and drv.state == "PAUSE" and drv.stats["busy"] == 1
    assert drv.next_timeout(now) == 50
    step(drv, now + 50)
    out, treq = step(drv, now + 50, b"\x3f\x0b\xd8\x10")
    step(drv, now + 100)
    out, treq = step(drv, now + 100, b"\x3f\x0b\xd8\x10")
    assert drv.idle and kinds(drv) == [(phy.FAILED, 0x0C, H.ERR_BUSY, b"")]


def test_hi_error_fails_the_request():
    drv, now = booted(H.CS_CRC)
    drv.request(0x48, b"\x00")
    send_one(drv, now, H.CS_CRC)
    out, _ = step(drv, now, fr(0x36, b"\x48"))  # no ACK for an unknown code: HI_Error instead
    assert out == b"\x06" and drv.idle and drv.stats["hi_errors"] == 1
    assert kinds(drv) == [(phy.FAILED, 0x48, H.ERR_UNKNOWN_CMD, b"")]


class Keeper:
    def __init__(self):
        self.lmons = []

    def modem_secrets(self):
        return b"\x11" * 16, b"\x22" * 16, 0x01, unhex("00 00 00 00 00 00 00 2A")

    def lmon_reported(self, value):
        self.lmons.append(value)


def test_modem_security_keys_flags_lmon_and_lmon_persisted():
    keeper = Keeper()
    drv = hi.driver(aca=ACA, serial=SERIAL, keeper=keeper)
    now = T0
    step(drv, now, fr(0x3E, b"\x80"))
    writes = []
    while not drv.ready:
        now += 20
        w = send_one(drv, now, H.CS_CRC)
        writes.append(w[3])
        confirm(drv, now, H.CS_CRC, 0x09, w[3:4])
    assert writes == [6, 8, 9, 10], writes
    lmon = unhex("00 00 00 00 00 00 00 2B")
    step(drv, now, fr(0x0A, b"\x0a" + lmon))
    assert keeper.lmons == [lmon]
    assert kinds(drv)[-1] == (hi.EV_MIB_IND, 10, 0, lmon)
    # a request the modem opened under ECC 1: OPENED; a plain one: ECC 0
    step(drv, now, fr(0x26, unhex("00 02 02 00 3F")))
    assert kinds(drv)[0][2] == 0
    step(drv, now, fr(0x26, unhex("10 03 02 00 3F")))
    assert kinds(drv)[0][2] == 1 | phy.OPENED
    drv.tx_space()[0] = 3
    drv.answer(1, 7)
    assert send_one(drv, now + 20, H.CS_CRC)[3:5] == b"\x00\x03"


def test_tct_reported_by_the_modem_is_written_again_after_a_reset():
    drv, now = booted(H.CS_CRC)
    timing = unhex("14 00 E8 03 00 00 FA 00 01")
    step(drv, now, fr(0x0A, b"\x0c" + timing))
    step(drv, now, fr(0x3E, b"\x81"))
    w1 = send_one(drv, now, H.CS_CRC)
    confirm(drv, now, H.CS_CRC, 0x09, b"\x06")
    w2 = send_one(drv, now + 20, H.CS_CRC)
    assert w1[3] == 6 and w2 == fr(0x08, b"\x0c" + timing)


def test_ping_health_check_resets_a_silent_modem():
    drv, now = booted(H.CS_CRC, ping_ms=1000, tack_ms=40, sm_ms=100)
    assert drv.next_timeout(now) <= 1000
    t = now + 1000
    w = send_one(drv, t, H.CS_CRC)
    assert w == fr(0x2C, b"HI\x01")
    confirm(drv, t, H.CS_CRC, 0x2D, b"HI\x01")
    assert drv.stats["pings"] == 1 and drv.stats["ping_failures"] == 0
    for _ in range(2):  # two pings unanswered
        t += 1000
        for _ in range(10):
            step(drv, t)
            t += 100
    assert drv.stats["ping_failures"] == 2 and not drv.ready
    # the modem was reset: a BIO_Reset.request went (unanswered here, so it failed too)
    assert [k[:3] for k in kinds(drv)] == [(phy.FAILED, 0x2C, phy.NO_ANSWER)] * 2 + [(phy.FAILED, 0x3C, phy.NO_ANSWER)]
    out, treq = step(drv, t + 1000)  # and again while the modem stays silent
    assert treq == 0 and drv.state == "STATUS"
    w = step(drv, t + 1000, b"\x3f\x03\xd8\x10")[0]
    assert w == unhex("02 00 3C 00 00 3C")


def test_random_bytes_never_break_the_driver():
    rng = Rng(17)
    for kind in (H.CS_CRC, H.CS_SUM):
        drv, now = booted(kind)
        for i in range(300):
            drv.receive(rng.bytes(1 + rng.below(40)), now + i)
            drv.poll(now + i)
            drv.data_to_send()
            kinds(drv)
        drv.receive(b"", now + 400)
        step(drv, now + 1000)
        step(drv, now + 1000, fr(0x3E, b"\x80", kind))  # and it still boots again
        assert not drv.ready


def test_send_of_a_mac_frame_is_refused():
    drv, _ = booted(H.CS_CRC)
    assert not drv.send(10)
    assert not drv.answer(3)  # nothing to answer


def test_modem_keeper_from_the_firmware_store():
    from meter.app.lmon import KeyStore, LmonCounter
    from meter.app.modemkeys import ModemSecrets
    from meter.storage import Store

    store = Store()
    ks = KeyStore(store)
    lmon = LmonCounter(store)
    keeper = ModemSecrets(ks, lmon, random_bytes=lambda n: b"\x5a" * n)
    k1, k2, flags, mon = keeper.modem_secrets()
    assert (k1, k2) == (b"\x5a" * 16, b"\x5a" * 16)  # unprovisioned: a pair nobody knows
    assert ks.provision(b"\x11" * 16, b"\x22" * 16) and lmon.set(41)
    drv = hi.driver(aca=ACA, serial=SERIAL, keeper=keeper)
    now = T0
    step(drv, now, fr(0x3E, b"\x80"))
    writes = {}
    while not drv.ready:
        now += 20
        w = send_one(drv, now, H.CS_CRC)
        writes[w[3]] = w[4:-2]
        confirm(drv, now, H.CS_CRC, 0x09, w[3:4])
    assert writes[8] == b"\x11" * 16 + b"\x22" * 16 and writes[10] == unhex("29 00 00 00 00 00 00 00")
    step(drv, now, fr(0x0A, unhex("0A 2A 00 00 00 00 00 00 00")))  # the modem accepted a request: LMON 42
    assert lmon.value == 42 and LmonCounter(store).value == 42  # persisted
    step(drv, now, fr(0x0A, unhex("0A 05 00 00 00 00 00 00 00")))  # never lowered
    assert lmon.value == 42 and keeper.refused == 1 and keeper.reported == 2
