# ST7580 local-port driver: codec vectors, receiver (meter/phy/st7580_codec.py),
# link state machine, the meter.phy.contract driver contract (meter/phy/st7580.py).
# Runs under CPython (pytest) and the MicroPython unix port (run_mp.py).
from meter.phy import contract as phy
from meter.compat import ticks_add
from meter.errors import DecodeError
from meter.phy.st7580_codec import (
    FrameReceiver, checksum, encode_frame, decode_frame,
    MSG_FRAME, MSG_DUP, MSG_BAD, MSG_DROP, MSG_ACK, MSG_NAK, MSG_STATUS, MSG_JUNK, MSG_NONE,
)
from meter.phy.st7580 import (
    ST7580, driver, EV_RESET, EV_PHY_DATA, EV_CONFIRM, EV_ERROR, EV_TIMEOUT, EV_READY,
    CMD_PHY_DATA_REQ, CMD_MIB_WRITE_REQ, CMD_PING_REQ, ERR_BUSY, ERR_SYNTAX, ERR_GENERAL,
    PHY_CONFIG, PHY_MAX_PAYLOAD, MOD_BPSK_CODED,
)
from fwtest import raises, unhex, Rng

T0 = 1000


def fr(cmd, data=b"", stx=0x02):
    """Local frame built by hand (independent of the module's encoder)."""
    body = bytes([len(data), cmd]) + bytes(data)
    s = sum(body)
    return bytes([stx]) + body + bytes([s & 0xFF, (s >> 8) & 0xFF])


def events(drv):
    out = []
    while True:
        ev = drv.next_event()
        if ev is None:
            return out
        out.append(ev)


def step(drv, now, data=None):
    """What a modem task does: feed bytes, run timers, collect output and the T_REQ level."""
    if data is not None:
        drv.receive(data, now)
    drv.poll(now)
    return drv.data_to_send() or b"", drv.treq


def handshake(drv, now, status=0x00):
    """Start the queued request; returns the frame the driver writes after the status."""
    out, treq = step(drv, now)
    assert out == b"" and treq == 0 and drv.state == "STATUS"
    out, treq = step(drv, now, bytes([0x3F, status]))
    assert treq == 1
    return out


def exchange(drv, now, reply):
    """Full request: handshake, ACK, reply frame. Returns (frame written, events)."""
    frame = handshake(drv, now)
    step(drv, now + 1, b"\x06")
    out, _ = step(drv, now + 2, reply)
    assert out == b"\x06"
    return frame, events(drv)


def messages(rx, data, now):
    """Every message a FrameReceiver reports for data, as comparable tuples."""
    out = []
    pos = 0
    while pos < len(data):
        pos = rx.feed(data, pos, now)
        k = rx.kind
        if k == MSG_FRAME:
            out.append((k, bytes(rx.frame[: rx.total])))
        elif k == MSG_STATUS:
            out.append((k, rx.status))
        elif k != MSG_NONE:
            out.append((k,))
    return out


# ---- codec vectors: modem-uart.md section 3.7 (captured, then computed)
VECTORS = (
    (0x50, "04 AB", "02 02 50 04 AB 01 01"),  # DL_DataRequest (captured)
    (0x51, "54 54 00 F2 9E", "02 05 51 54 54 00 F2 9E 8E 02"),  # DL_DataConfirm (captured)
    (0x52, "18 19 0D 5C AB", "02 05 52 18 19 0D 5C AB 9C 01"),  # DL_DataIndication (captured)
    (0x3C, "", "02 00 3C 3C 00"),  # BIO_ResetRequest
    (0x08, "00 11", "02 02 08 00 11 1B 00"),  # MIB_WriteRequest 00h = 11h
    (0x0C, "0A", "02 01 0C 0A 17 00"),  # MIB_ReadRequest 0Ah
    (0x2C, "01 02", "02 02 2C 01 02 31 00"),  # PingRequest
    (0x08, "01 01 C9 08 01 8E 70 0E 15 00 00 02 35 9B 58",
     "02 0F 08 01 01 C9 08 01 8E 70 0E 15 00 00 02 35 9B 58 36 03"),  # MIB_WriteRequest 01h
)


def test_checksum_vectors():
    for cmd, data, wire in VECTORS:
        f = unhex(wire)
        assert checksum(f, 1, len(f) - 2) == f[-2] | (f[-1] << 8)
        assert checksum(bytes([len(f) - 5, cmd]) + unhex(data)) == f[-2] | (f[-1] << 8)
    assert checksum(b"") == 0
    assert checksum(b"\xff" * 300) == (255 * 300) & 0xFFFF  # keeps 16 bits


def test_encode_vectors():
    for cmd, data, wire in VECTORS:
        assert encode_frame(cmd, unhex(data)) == unhex(wire)
    assert encode_frame(0x26, b"\x01", stx=0x03) == unhex("03 01 26 01 28 00")


def test_decode_vectors():
    for cmd, data, wire in VECTORS:
        assert decode_frame(unhex(wire)) == (0x02, cmd, unhex(data))
    assert decode_frame(memoryview(unhex("03 00 3C 3C 00"))) == (0x03, 0x3C, b"")


def test_receiver_reads_vectors():
    for cmd, data, wire in VECTORS:
        rx = FrameReceiver()
        assert messages(rx, unhex(wire), 0) == [(MSG_FRAME, unhex(wire))]
        assert rx.frame[2] == cmd and rx.payload() == unhex(data)


def test_decode_errors_name_the_field():
    cases = (
        ("02 00 3C 3C", "frame"),
        ("04 00 3C 3C 00", "STX"),
        ("02 01 3C 3C 00", "LEN"),
        ("02 00 3C 3C 00 00", "LEN"),
        ("02 00 3C 3D 00", "CS"),
        ("02 00 3C 3C 01", "CS"),
    )
    for wire, field in cases:
        with raises(DecodeError) as r:
            decode_frame(unhex(wire))
        assert r.value.field == field


def test_encode_rejects_bad_arguments():
    with raises(ValueError):
        encode_frame(0x24, bytes(256))
    with raises(ValueError):
        encode_frame(0x100)
    with raises(ValueError):
        encode_frame(0x24, b"", stx=0x04)
    assert len(encode_frame(0x24, bytes(255))) == 260


# ---- FrameReceiver
def test_receiver_whole_and_byte_by_byte():
    data = fr(0x26, b"\x1c\x14\x00\x00hello") + b"\x06" + bytes([0x15]) + fr(0x09)
    expect = [(MSG_FRAME, fr(0x26, b"\x1c\x14\x00\x00hello")), (MSG_ACK,), (MSG_NAK,), (MSG_FRAME, fr(0x09))]
    assert messages(FrameReceiver(), data, 0) == expect
    rx = FrameReceiver()
    got = []
    for i in range(len(data)):
        got += messages(rx, data[i : i + 1], 0)
    assert got == expect
    rx = FrameReceiver()
    got = []
    for i in range(0, len(data), 3):
        got += messages(rx, memoryview(data)[i : i + 3], 0)
    assert got == expect


def test_receiver_garbage_before_frame():
    f = fr(0x2D, b"\x01\x02")
    got = messages(FrameReceiver(), b"\x00\x99\x3f" + f, 0)
    assert got == [(MSG_JUNK,), (MSG_JUNK,), (MSG_JUNK,), (MSG_FRAME, f)]


def test_receiver_status_only_when_accepted():
    rx = FrameReceiver()
    rx.accept_status = True
    assert messages(rx, b"\x3f\x06", 0) == [(MSG_STATUS, 0x06)]  # status byte 06 is not an ACK
    rx.accept_status = False
    assert messages(rx, b"\x3f", 0) == [(MSG_JUNK,)]


def test_receiver_truncated_frame_dropped_after_tic():
    f = fr(0x26, b"\x1c\x14\x00\x00abc")
    rx = FrameReceiver(tic_ms=10)
    assert messages(rx, f[:-3], 0) == []
    assert rx.busy()
    assert messages(rx, f, 11) == [(MSG_DROP,), (MSG_FRAME, f)]
    # a gap of exactly TIC is allowed
    assert messages(rx, f[:4], 20) == []
    assert messages(rx, f[4:], 30) == [(MSG_FRAME, f)]
    # expire() drops without new bytes
    messages(rx, f[:4], 40)
    assert not rx.expire(50) and rx.expire(51) and not rx.busy()


def test_receiver_oversized_frame_skipped_and_nakable():
    rx = FrameReceiver(max_data=8)
    big = fr(0x26, bytes(range(9)))
    ok = fr(0x26, bytes(range(8)))
    # the announced bytes are swallowed (not scanned for STX), then MSG_BAD
    assert messages(rx, big + ok, 0) == [(MSG_BAD,), (MSG_FRAME, ok)]
    with raises(ValueError):
        FrameReceiver(max_data=256)


def test_receiver_bad_checksum():
    f = bytearray(fr(0x26, b"\x1c\x14\x00\x00abc"))
    f[-2] ^= 1
    assert messages(FrameReceiver(), bytes(f) + b"\x06", 0) == [(MSG_BAD,), (MSG_ACK,)]


def test_receiver_repeat_handling():
    a = fr(0x26, b"\x1c\x14\x00\x00A")
    b = fr(0x26, b"\x1c\x14\x00\x00B")
    rep_a = fr(0x26, b"\x1c\x14\x00\x00A", stx=0x03)
    rx = FrameReceiver()
    assert messages(rx, a + rep_a, 0) == [(MSG_FRAME, a), (MSG_DUP,)]
    assert rx.payload(4) == b"A"  # the original is still the current frame
    # a 0x03 frame that differs from the previous one is new
    assert messages(rx, fr(0x26, b"\x1c\x14\x00\x00B", stx=0x03), 0)[0][0] == MSG_FRAME
    # after a bad frame the repeat is that frame's: delivered even if equal to an older one
    rx = FrameReceiver()
    bad = bytearray(a)
    bad[-1] ^= 0x40
    assert messages(rx, a + bytes(bad) + rep_a, 0) == [(MSG_FRAME, a), (MSG_BAD,), (MSG_FRAME, rep_a)]
    # two equal frames both sent with 0x02 are both delivered
    assert messages(FrameReceiver(), b + b, 0) == [(MSG_FRAME, b), (MSG_FRAME, b)]


def test_receiver_random_bytes_never_raise():
    rng = Rng(7)
    rx = FrameReceiver(max_data=40)
    now = 0
    for _ in range(300):
        chunk = rng.bytes(rng.below(30))
        now += rng.below(15)
        messages(rx, chunk, now)
    now += 100
    f = fr(0x2D, b"ok")
    assert messages(rx, f, now)[-1] == (MSG_FRAME, f)


def test_decode_random_bytes_only_decode_error():
    rng = Rng(11)
    for _ in range(300):
        data = rng.bytes(rng.below(12))
        if rng.below(2) and len(data) > 1:
            data = b"\x02" + bytes([len(data) - 4 if len(data) > 4 else 0]) + data[2:]
        try:
            decode_frame(data)
        except DecodeError:
            pass


# ---- ST7580 driver: receiving
def test_reset_indication_at_boot():
    d = ST7580()
    assert d.treq == 1 and d.idle and d.next_timeout(T0) == -1
    out, treq = step(d, T0, fr(0x3E, b"\x3c"))
    assert out == b"\x06" and treq == 1
    assert events(d) == [(EV_RESET, 0x3C)]
    assert d.stats["rx_frames"] == 1


def test_ack_and_nak_sent_at_once():
    d = ST7580()
    good = fr(0x26, b"\x1c\x14\x00\x00hi")
    bad = bytearray(good)
    bad[3] ^= 0xFF
    d.receive(good + bytes(bad), T0)
    assert d.data_to_send() == b"\x06\x15"
    assert d.stats["rx_bad"] == 1 and d.stats["rx_frames"] == 1
    assert events(d) == [(EV_PHY_DATA, b"hi", 20, 4)]


def test_phy_data_indication_fields():
    d = ST7580()
    d.receive(fr(0x26, unhex("18 19 0D 5C AB")), T0)
    d.receive(fr(0x26, unhex("1C F6 00 00 01 02 03")), T0)
    d.receive(fr(0x26, unhex("1C F6 00")), T0)  # shorter than the 4-byte header
    assert events(d) == [(EV_PHY_DATA, b"\xab", 25, 0), (EV_PHY_DATA, b"\x01\x02\x03", -10, 4)]
    assert d.data_to_send() == b"\x06\x06\x06"
    assert d.stats["rx_bad"] == 1


def test_repeat_dropped_but_acked():
    d = ST7580()
    ind = b"\x1c\x14\x00\x00data"
    d.receive(fr(0x26, ind), T0)
    d.receive(fr(0x26, ind, stx=0x03), T0 + 45)
    assert d.data_to_send() == b"\x06\x06"
    assert len(events(d)) == 1 and d.stats["rx_dup"] == 1


def test_tic_gap_drops_partial_frame():
    d = ST7580(tic_ms=10)
    f = fr(0x26, b"\x1c\x14\x00\x00abcdef")
    d.receive(f[:5], T0)
    d.receive(f[5:], T0 + 11)  # the tail alone is no frame
    assert events(d) == [] and d.stats["rx_bad"] == 1
    assert d.data_to_send() is None  # nothing to answer for a dropped frame
    d.receive(f[:5], T0 + 100)
    d.receive(f[5:], T0 + 110)
    assert len(events(d)) == 1 and d.data_to_send() == b"\x06"


def test_stray_bytes_counted():
    d = ST7580()
    d.receive(b"\x06\x15\x3f\x00\x99", T0)
    assert d.stats["rx_junk"] == 5 and d.data_to_send() is None
    d.receive(fr(0x09), T0)  # a confirm with nothing in flight
    assert d.stats["rx_unexpected"] == 1 and events(d) == []


def test_random_bytes_driver_keeps_working():
    rng = Rng(3)
    d = ST7580()
    now = T0
    for _ in range(400):
        now += rng.below(20)
        d.receive(rng.bytes(rng.below(40)), now)
        d.poll(now)
        d.data_to_send()
        events(d)
    now += 5000
    d.poll(now)
    d.data_to_send()
    events(d)
    d.poll(now + 50)
    assert d.idle and d.treq == 1
    d.request(CMD_PING_REQ, b"\x01\x02")
    frame, evs = exchange(d, now + 100, fr(0x2D, b"\x01\x02"))
    assert frame == unhex("02 02 2C 01 02 31 00")
    assert evs == [(EV_CONFIRM, CMD_PING_REQ, b"\x01\x02")]


# ---- ST7580 driver: requests
def test_treq_handshake_sequence():
    d = ST7580()
    assert d.mib_write(0x00, b"\x11")
    assert not d.idle and d.next_timeout(T0) == 0
    out, treq = step(d, T0)
    assert (out, treq, d.state) == (b"", 0, "STATUS")
    assert d.next_timeout(T0) == 200
    out, treq = step(d, T0 + 1, b"\x3f\x00")
    assert out == unhex("02 02 08 00 11 1B 00") and treq == 1 and d.state == "ACK"
    assert d.status == 0
    out, treq = step(d, T0 + 2, b"\x06")
    assert (out, treq, d.state) == (b"", 1, "REPLY")
    assert d.next_timeout(T0 + 2) == 4000
    out, treq = step(d, T0 + 3, fr(0x09))
    assert out == b"\x06" and treq == 1
    assert events(d) == [(EV_CONFIRM, CMD_MIB_WRITE_REQ, b"")]
    assert d.idle and d.stats["tx_frames"] == 1


def test_treq_stays_high_between_requests():
    d = ST7580(tic_ms=10)
    d.request(CMD_PING_REQ, b"\x01")
    d.request(CMD_PING_REQ, b"\x02")
    exchange(d, T0, fr(0x2D, b"\x01"))
    # T_REQ rose with the first frame at T0: the next handshake waits tic_ms
    assert d.next_timeout(T0 + 2) == 8
    assert step(d, T0 + 9) == (b"", 1)
    assert step(d, T0 + 10) == (b"", 0)


def test_modem_frame_while_waiting_for_status():
    d = ST7580()
    d.request(CMD_PING_REQ, b"\x05")
    step(d, T0)
    out, treq = step(d, T0 + 5, fr(0x26, b"\x1c\x14\x00\x00x"))
    assert out == b"\x06" and treq == 0  # ACKed, still asking
    assert events(d) == [(EV_PHY_DATA, b"x", 20, 4)]
    out, treq = step(d, T0 + 6, b"\x3f\x00")
    assert out == fr(0x2C, b"\x05") and treq == 1


def test_status_timeout_retry_then_timeout():
    d = ST7580(tsr_ms=200, tic_ms=10)
    d.request(CMD_PING_REQ, b"")
    assert step(d, T0) == (b"", 0)
    assert step(d, T0 + 199) == (b"", 0)
    assert step(d, T0 + 200) == (b"", 1)  # T_REQ released between attempts
    assert d.stats["retries"] == 1
    assert step(d, T0 + 209) == (b"", 1)
    assert step(d, T0 + 210) == (b"", 0)  # second attempt
    assert step(d, T0 + 410) == (b"", 1)
    assert events(d) == [(EV_TIMEOUT, CMD_PING_REQ)]
    assert d.idle and d.stats["timeouts"] == 1


def test_nak_retries_whole_sequence_once():
    d = ST7580()
    d.request(CMD_PING_REQ, b"\x07")
    f = handshake(d, T0)
    out, treq = step(d, T0 + 1, b"\x15")
    assert out == b"" and treq == 1 and d.state == "PAUSE"
    assert d.stats["naks"] == 1 and d.stats["retries"] == 1
    assert handshake(d, T0 + 11) == f  # same frame, STX 0x02, after a new T_REQ edge
    step(d, T0 + 12, b"\x06")
    step(d, T0 + 13, fr(0x2D, b"\x07"))
    assert events(d) == [(EV_CONFIRM, CMD_PING_REQ, b"\x07")]


def test_nak_twice_gives_timeout():
    d = ST7580()
    d.request(CMD_PING_REQ, b"\x07")
    handshake(d, T0)
    step(d, T0 + 1, b"\x15")
    handshake(d, T0 + 11)
    out, treq = step(d, T0 + 12, b"\x15")
    assert treq == 1 and d.idle
    assert events(d) == [(EV_TIMEOUT, CMD_PING_REQ)]
    assert d.stats["naks"] == 2 and d.stats["tx_frames"] == 2


def test_no_ack_retry_then_timeout():
    d = ST7580(tack_ms=40)
    d.request(CMD_PING_REQ, b"\x01")
    f = handshake(d, T0)  # 6 bytes: 2 ms on the wire at 57600 Bd
    assert d.next_timeout(T0) == 42
    assert step(d, T0 + 41) == (b"", 1) and d.state == "ACK"
    step(d, T0 + 42)
    assert d.state == "PAUSE"
    assert handshake(d, T0 + 52) == f
    step(d, T0 + 94)
    assert events(d) == [(EV_TIMEOUT, CMD_PING_REQ)]


def test_busy_status_backs_off_then_sends():
    d = ST7580(backoff_ms=50)
    d.request(CMD_PING_REQ, b"\x01")
    step(d, T0)
    out, treq = step(d, T0 + 1, b"\x3f\x02")  # transmitting on the line
    assert (out, treq, d.state) == (b"", 1, "PAUSE")
    assert d.stats["busy"] == 1
    assert step(d, T0 + 50) == (b"", 1)
    assert step(d, T0 + 51) == (b"", 0)  # back-off over: T_REQ low again
    out, treq = step(d, T0 + 51, b"\x3f\x04")  # receiving: busy again
    assert treq == 1 and d.stats["busy"] == 2
    assert handshake(d, T0 + 101, status=0x01) == fr(0x2C, b"\x01")  # bit 0 does not gate
    assert d.stats["retries"] == 0


def test_busy_is_bounded():
    d = ST7580(backoff_ms=50, busy_max=2)
    d.request(CMD_PING_REQ, b"\x01")
    now = T0
    for _ in range(3):
        step(d, now)
        step(d, now, b"\x3f\x06")
        now += 50
    assert d.idle and d.treq == 1
    assert events(d) == [(EV_ERROR, CMD_PING_REQ, ERR_BUSY)]


def busy_statuses(d, count, now, backoff_ms):
    """`count` busy statuses in a row, each T_REQ handshake after the back-off; the time after them."""
    for _ in range(count):
        assert step(d, now) == (b"", 0) and d.state == "STATUS"
        assert step(d, now, b"\x3f\x06") == (b"", 1)  # busy: nothing written, T_REQ released
        now += backoff_ms
    return now


def test_busy_max_busy_statuses_then_the_request_is_delivered():
    for busy_max in (0, 1, 3):
        d = ST7580(backoff_ms=50, busy_max=busy_max)
        assert d.phy_data(b"\xab")
        now = busy_statuses(d, busy_max, T0, 50)
        assert events(d) == [] and d.stats["busy"] == busy_max
        f, evs = exchange(d, now, fr(0x25, unhex("54 54 00 F2 9E")))
        assert f == fr(0x24, b"\x44\xab"), busy_max
        assert evs == [(EV_CONFIRM, CMD_PHY_DATA_REQ, unhex("54 54 00 F2 9E"))] and d.idle, busy_max


def test_one_busy_status_over_busy_max_fails_the_request():
    for busy_max in (0, 1, 3):
        d = ST7580(backoff_ms=50, busy_max=busy_max)
        assert d.phy_data(b"\xab")
        now = busy_statuses(d, busy_max + 1, T0, 50)
        assert events(d) == [(EV_ERROR, CMD_PHY_DATA_REQ, ERR_BUSY)], busy_max
        assert d.idle and d.treq == 1 and d.stats["busy"] == busy_max + 1
        assert step(d, now + 1000) == (b"", 1) and d.stats["tx_frames"] == 0  # no further attempt


def test_confirm_timeout():
    d = ST7580(confirm_ms=4000)
    d.phy_data(b"\x01")
    handshake(d, T0)
    step(d, T0 + 1, b"\x06")
    assert step(d, T0 + 4000) == (b"", 1) and not d.idle
    step(d, T0 + 4001)
    assert events(d) == [(EV_TIMEOUT, CMD_PHY_DATA_REQ)] and d.idle


def test_error_frames():
    d = ST7580()
    d.mib_write(0x03, b"\x00")
    f, evs = exchange(d, T0, fr(0x0B, b"\x03"))
    assert evs == [(EV_ERROR, CMD_MIB_WRITE_REQ, 0x03)]
    d.request(0x77, b"")
    f, evs = exchange(d, T0 + 100, fr(0x36, b"\x77"))
    assert f == fr(0x77) and evs == [(EV_ERROR, 0x77, ERR_SYNTAX)]
    d.phy_data(b"x")
    f, evs = exchange(d, T0 + 200, fr(0x27, b"\x0b"))
    assert evs == [(EV_ERROR, CMD_PHY_DATA_REQ, 0x0B)]


def test_syntax_error_for_another_code_is_not_ours():
    d = ST7580()
    d.request(CMD_PING_REQ, b"")
    handshake(d, T0)
    step(d, T0 + 1, b"\x06")
    step(d, T0 + 2, fr(0x36, b"\x55"))
    assert events(d) == [] and d.stats["rx_unexpected"] == 1


def test_confirm_before_ack_ends_request():
    d = ST7580()
    d.request(CMD_PING_REQ, b"\x09")
    handshake(d, T0)
    out, treq = step(d, T0 + 3, fr(0x2D, b"\x09"))  # the ACK was lost on the wire
    assert out == b"\x06" and d.idle
    assert events(d) == [(EV_CONFIRM, CMD_PING_REQ, b"\x09")]


def test_reset_indication_aborts_request_in_flight():
    d = ST7580()
    d.phy_data(b"\x01")
    d.request(CMD_PING_REQ, b"")
    handshake(d, T0)
    step(d, T0 + 1, b"\x06")
    d.receive(fr(0x3E, b"\x25"), T0 + 50)
    assert d.data_to_send() == b"\x06" and d.treq == 1
    assert events(d) == [(EV_ERROR, CMD_PHY_DATA_REQ, ERR_GENERAL), (EV_RESET, 0x25)]
    assert not d.idle  # the ping is still queued
    assert handshake(d, T0 + 60) == fr(0x2C)


def test_mib_writes_of_configure():
    d = ST7580()
    assert d.configure()
    f1, evs = exchange(d, T0, fr(0x09))
    assert f1 == unhex("02 02 08 00 00 0A 00")
    f2, evs2 = exchange(d, T0 + 100, fr(0x09))
    assert f2 == fr(0x08, b"\x01" + PHY_CONFIG)
    assert f2 == unhex("02 0F 08 01 01 4F F0 01 19 40 0E 15 00 00 02 35 9B 58 FF 02")
    assert evs + evs2 == [(EV_CONFIRM, CMD_MIB_WRITE_REQ, b"")] * 2
    assert d.idle


def test_phy_data_request_confirm():
    d = ST7580()
    assert d.phy_data(b"\xab")
    f, evs = exchange(d, T0, fr(0x25, unhex("54 54 00 F2 9E")))
    assert f == fr(0x24, b"\x44\xab")
    assert evs == [(EV_CONFIRM, CMD_PHY_DATA_REQ, unhex("54 54 00 F2 9E"))]
    d.phy_data(bytes(PHY_MAX_PAYLOAD))
    f = handshake(d, T0 + 100)
    assert len(f) == PHY_MAX_PAYLOAD + 6
    # 256 bytes on the wire: 45 ms, then TACK
    assert d.next_timeout(T0 + 100) == 40 + 45
    with raises(ValueError):
        d.phy_data(bytes(PHY_MAX_PAYLOAD + 1))


def test_request_queue_is_bounded():
    d = ST7580(queue=2)
    assert d.request(CMD_PING_REQ, b"")
    assert d.request(CMD_PING_REQ, b"")
    assert not d.request(CMD_PING_REQ, b"")
    assert not d.configure()
    assert d.stats["overflow"] == 2
    with raises(ValueError):
        d.request(CMD_PING_REQ, bytes(256))


def test_request_copies_a_mutable_buffer():
    d = ST7580()
    buf = bytearray(b"\x01\x02")
    d.request(CMD_PING_REQ, buf)
    buf[0] = 0x09  # the caller reuses its buffer before the frame goes out
    assert handshake(d, T0) == fr(0x2C, b"\x01\x02")


def test_event_queue_is_bounded():
    d = ST7580(events=2)
    for i in range(3):
        d.receive(fr(0x26, bytes([0x1C, 0x14, 0, 0, i])), T0)
    assert [e[1] for e in events(d)] == [b"\x00", b"\x01"]
    assert d.stats["lost"] == 1


def test_timers_across_ticks_wrap():
    t = ticks_add(0, -3)  # three ms before the ticks counter wraps
    d = ST7580()
    d.request(CMD_PING_REQ, b"")
    step(d, t)
    assert d.next_timeout(ticks_add(t, 5)) == 195
    assert step(d, ticks_add(t, 199)) == (b"", 0)
    assert step(d, ticks_add(t, 200)) == (b"", 1)
    assert d.stats["retries"] == 1


def test_receive_path_does_not_allocate():
    try:
        import micropython
    except ImportError:  # CPython: nothing to prove
        return
    if not hasattr(micropython, "heap_lock"):
        return
    d = ST7580()
    ind = fr(0x26, b"\x1c\x14\x00\x00" + bytes(200))
    rep = fr(0x26, b"\x1c\x14\x00\x00" + bytes(200), stx=0x03)
    d.receive(ind, 0)
    d.data_to_send()
    events(d)
    rx = FrameReceiver()
    other = fr(0x09)
    d.receive(rep, 1)  # warm-up of every branch used below
    d.data_to_send()
    rx.feed(ind, 0, 0)
    rx.feed(other, 0, 0)
    micropython.heap_lock()
    try:
        d.receive(rep, 2)  # duplicate: parsed, compared, ACKed
        d.receive(b"\x06\x15", 3)  # stray ACK/NAK
        d.poll(4)
        pos = rx.feed(ind, 0, 5)  # a whole good frame
        pos2 = rx.feed(other, 0, 5)
    finally:
        micropython.heap_unlock()
    assert pos == len(ind) and pos2 == len(other) and rx.kind == MSG_FRAME
    assert d.data_to_send() == b"\x06" and d.stats["rx_dup"] == 2


# ---- the meter.phy.contract contract: next_kind, to_send, tx_space/send, driver()
def test_event_kinds_are_the_contract_kinds():
    assert (EV_PHY_DATA, EV_READY, EV_RESET, EV_ERROR) == (phy.DATA, phy.READY, phy.RESET, phy.FAILED)
    assert EV_CONFIRM >= phy.DRIVER and EV_TIMEOUT >= phy.DRIVER


def test_next_kind_fields():
    d = ST7580(tsr_ms=200)
    d.receive(fr(0x26, unhex("1C F6 00 00 01 02 03")) + fr(0x3E, b"\x25"), T0)
    assert d.data_to_send() == b"\x06\x06"
    assert d.next_kind() == phy.DATA
    assert bytes(d.rx[0:d.rx_len]) == b"\x01\x02\x03" and d.quality[phy.Q_SNR] == -10
    assert d.ev_mod == MOD_BPSK_CODED and d.quality[phy.Q_SIGNAL] is None
    assert d.next_kind() == phy.RESET and d.ev_code == 0x25
    assert d.next_kind() == phy.NONE
    d.mib_read(0x0A)
    frame, evs = exchange(d, T0 + 10, fr(0x0D, b"\x00\x42"))
    assert evs == [(EV_CONFIRM, 0x0C, b"\x00\x42")]
    d.mib_read(0x0A)
    handshake(d, T0 + 100)
    step(d, T0 + 101, b"\x06")
    step(d, T0 + 102, fr(0x0D, b"\x01\x43"))
    assert d.next_kind() == EV_CONFIRM and d.ev_cmd == 0x0C and bytes(d.rx[0:d.rx_len]) == b"\x01\x43"
    d.request(CMD_PING_REQ)
    step(d, T0 + 200)
    step(d, T0 + 400)
    step(d, T0 + 410)
    step(d, T0 + 610)
    assert d.next_kind() == phy.FAILED and (d.ev_cmd, d.ev_code) == (CMD_PING_REQ, phy.NO_ANSWER)


def test_host_forms_match_the_contract_form():
    a, b = ST7580(), ST7580()
    data = fr(0x26, unhex("1C 14 00 00 AB")) + bytes([0x15]) + fr(0x26, b"\x1c")
    a.receive(data, T0)
    b.receive(data, T0)
    assert a.data_to_send() == b"\x06\x06"
    n = b.to_send()
    assert bytes(b.out[0:n]) == b"\x06\x06" and b.to_send() == 0
    assert events(a) == [(EV_PHY_DATA, b"\xab", 20, 4)]
    assert b.next_kind() == phy.DATA and bytes(b.rx[0:b.rx_len]) == b"\xab" and b.next_kind() == phy.NONE


def test_to_send_gives_the_acks_then_the_frame():
    d = ST7580()
    d.request(CMD_PING_REQ, b"\x05")
    step(d, T0)
    d.receive(fr(0x26, b"\x1c\x14\x00\x00x") + b"\x3f\x00", T0 + 1)
    n = d.to_send()
    assert bytes(d.out[0:n]) == b"\x06"
    n = d.to_send()
    assert bytes(d.out[0:n]) == fr(0x2C, b"\x05") and d.treq == 1
    assert d.to_send() == 0


def test_receive_takes_part_of_a_buffer():
    d = ST7580()
    buf = bytearray(64)
    f = fr(0x26, b"\x1c\x14\x00\x00ok")
    buf[0:len(f)] = f
    buf[len(f)] = 0x15  # beyond n: not read
    d.receive(buf, T0, len(f))
    assert d.data_to_send() == b"\x06" and d.stats["rx_junk"] == 0
    assert events(d) == [(EV_PHY_DATA, b"ok", 20, 4)]


def test_frame_built_in_the_transmit_slot():
    d = ST7580(queue=2)
    space = d.tx_space()
    assert len(space) == PHY_MAX_PAYLOAD
    space[0:3] = b"abc"
    assert d.send(3)
    assert d.phy_data(b"de")  # the copying form takes the next slot
    assert d.tx_space() is None and not d.send(1) and d.stats["overflow"] == 1
    assert handshake(d, T0) == fr(0x24, b"\x44abc")
    assert d.tx_space() is not None  # the request in flight keeps its slot, one waits
    space = d.tx_space()
    space[0] = 0x77
    assert d.send(1) and d.tx_space() is None
    step(d, T0 + 1, b"\x06")
    step(d, T0 + 2, fr(0x25, bytes(5)))
    assert handshake(d, T0 + 20) == fr(0x24, b"\x44de")
    with raises(ValueError):
        d.send(PHY_MAX_PAYLOAD + 1)


def test_event_lost_when_its_buffer_is_reused():
    # Three receive buffers: a fourth frame in the same chunk overwrites the first.
    d = ST7580()
    frames = b"".join(fr(0x26, bytes([0x1C, 0x14, 0, 0, i])) for i in range(4))
    d.receive(frames, T0)
    assert [e[1] for e in events(d)] == [b"\x01", b"\x02", b"\x03"]
    assert d.stats["lost"] == 1 and d.data_to_send() == b"\x06" * 4


def configure_exchanges(d, now, answers):
    """Serve the queued requests with the given answer frames; the events."""
    evs = []
    for a in answers:
        frame, got = exchange(d, now, a)
        assert frame[2] == CMD_MIB_WRITE_REQ
        evs += got
        now += 20
    return evs


def test_driver_configures_after_reset_then_ready():
    d = driver()
    assert d.managed and not d.ready
    step(d, T0, fr(0x3E, b"\x3c"))
    assert events(d) == [(EV_RESET, 0x3C)] and not d.ready
    assert configure_exchanges(d, T0 + 10, [fr(0x09), fr(0x09)]) == [(EV_READY,)]
    assert d.ready and d.idle
    assert d.phy_data(b"\x01")
    frame, evs = exchange(d, T0 + 100, fr(0x25, bytes(5)))
    assert frame == fr(0x24, b"\x44\x01") and evs == []  # confirms stay inside
    step(d, T0 + 200, fr(0x3E, b"\x00"))
    assert events(d) == [(EV_RESET, 0)] and not d.ready and not d.idle


def test_driver_configures_again_after_a_failure():
    d = driver()
    step(d, T0, fr(0x3E, b"\x3c"))
    events(d)
    evs = configure_exchanges(d, T0 + 10, [fr(0x0B, b"\x03"), fr(0x09)])
    assert evs == [(EV_ERROR, CMD_MIB_WRITE_REQ, 0x03)] and not d.ready
    assert configure_exchanges(d, T0 + 100, [fr(0x09), fr(0x09)]) == [(EV_READY,)] and d.ready


def test_driver_reset_during_configuration_starts_over():
    d = driver()
    step(d, T0, fr(0x3E, b"\x3c"))
    events(d)
    handshake(d, T0 + 10)
    step(d, T0 + 11, b"\x06")
    step(d, T0 + 12, fr(0x3E, b"\x3c"))  # the modem resets before confirming
    assert events(d) == [(EV_ERROR, CMD_MIB_WRITE_REQ, ERR_GENERAL), (EV_RESET, 0x3C)]
    # the old round's second write still goes out, but only the new round makes it ready
    evs = configure_exchanges(d, T0 + 30, [fr(0x09), fr(0x09)])
    assert evs == [] and not d.ready
    assert configure_exchanges(d, T0 + 100, [fr(0x09)]) == [(EV_READY,)] and d.ready and d.idle
