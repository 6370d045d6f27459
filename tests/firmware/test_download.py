# Software download: the image header codec, the slots on a Store, the boot
# choice and rollback, the REPROG services (meter/fwimage.py, meter/slots.py,
# meter/app/download.py).
import hashlib
import struct

from fwtest import Rng, raises, unhex
from meter import attrs as A
from meter import fwimage as F
from meter import slots as S
from meter.app.download import Download, ST_IDLE, ST_READY, ST_RECEIVING, ST_RESTART, ST_TRIAL
from meter.app.services import Application
from meter.errors import DecodeError
from meter.model import registers as R
from meter.model.datamodel import DataModel
from meter.storage import Store

K1 = bytes(range(16))
DIGEST = bytes(range(32))
# header of block 64, version 1.2.3, 1000 bytes, digest 00..1f, seal 16 x 0xAA
VECTOR = unhex("534d4657 01 00 0040 00010203 000003e8" "000102030405060708090a0b0c0d0e0f"
               "101112131415161718191a1b1c1d1e1f" + "aa" * 16)


def test_header_vector_both_ways():
    h = F.Header(64, 0x010203, 1000, DIGEST, b"\xaa" * 16)
    assert h.pack() == VECTOR
    back = F.unpack_header(VECTOR)
    assert (back.block, back.version, back.size, back.digest, back.seal) == (64, 0x010203, 1000, DIGEST, b"\xaa" * 16)
    assert back.blocks == 16 and back.image_id == DIGEST[0:4]


def test_header_refuses_what_it_cannot_be():
    for bad, field in ((VECTOR[:63], "image header"), (b"XMFW" + VECTOR[4:], "image magic"),
                       (VECTOR[:4] + b"\x02" + VECTOR[5:], "image format"),
                       (VECTOR[:6] + b"\x00\x08" + VECTOR[8:], "image block size"),
                       (VECTOR[:6] + b"\x00\x79" + VECTOR[8:], "image block size"),
                       (VECTOR[:12] + b"\xff\xff\xff\xff" + VECTOR[16:], "image size")):
        with raises(DecodeError) as e:
            F.unpack_header(bad)
        assert e.value.field == field, (field, e.value)


def test_seal_vector_and_check():
    h = F.unpack_header(VECTOR)
    # the oracle (cryptography's CMAC) checks this value: tests/host/test_download_campaign.py
    assert F.make_seal(K1, h) == unhex("77703d9064b372ed314ee174fa011b7d")
    h.seal = F.make_seal(K1, h)
    assert F.seal_ok(K1, h)
    assert not F.seal_ok(bytes(16), h)
    h.version += 1  # any change of the sealed part
    assert not F.seal_ok(K1, h)


def test_versions():
    assert F.version_number("1.2.3") == 0x010203 and F.version_text(0x0A0B0C) == "10.11.12"
    for bad in ("1.2", "1.2.3.4", "a.b.c", "256.0.0", "-1.0.0"):
        with raises(DecodeError):
            F.version_number(bad)


def image(version=0x000200, size=900, block=64, key=K1, seed=1):
    """(header, body) of an image of two made-up files."""
    rng = Rng(seed)
    body = F.pack_body([("meter/a.mpy", rng.bytes(size // 2)), ("meter/sub/b.mpy", rng.bytes(size - size // 2))])
    h = F.Header(block, version, len(body), hashlib.sha256(body).digest(), bytes(16))
    h.seal = F.make_seal(key, h)
    return h, body


def blocks(h, body):
    return [body[i * h.block:(i + 1) * h.block] for i in range(h.blocks)]


def test_body_table_walks_and_refuses_escapes():
    h, body = image()
    files = list(F.walk_body(lambda p, n: body[p:p + n], len(body)))
    assert [f[0] for f in files] == ["meter/a.mpy", "meter/sub/b.mpy"]
    bad = F.pack_body([("../x.mpy", b"1")])
    with raises(DecodeError):
        list(F.walk_body(lambda p, n: bad[p:p + n], len(bad)))
    with raises(DecodeError):  # a table that does not fill the body
        list(F.walk_body(lambda p, n: body[p:p + n], len(body) + 3))


def test_download_install_activate_confirm():
    store = Store()
    h, body = image()
    s, boot = S.Session(store), S.Boot(store)
    assert s.open(h, boot) and s.slot == S.SLOT_A
    parts = blocks(h, body)
    order = list(range(len(parts)))
    order.reverse()
    for i in order[:5]:
        assert s.put_block(i, parts[i])
    assert not s.put_block(order[0], b"x" * len(parts[order[0]]))  # the first copy stays
    again = S.Session(store)  # after a power cut: the bitmap on flash
    assert again.received == 5 and again.has(order[0]) and not again.has(0)
    for i in order[5:]:
        assert again.put_block(i, parts[i])
    assert again.complete and again.install(K1) == S.FAIL_NONE
    assert store.get("s1/meter/sub/b.mpy") == body[-len(store.get("s1/meter/sub/b.mpy")):]
    assert store.get("dl.log") is None  # the staging copy is gone once installed
    assert again.activate(boot)
    assert S.choose(store) == (S.SLOT_A, True)
    assert S.confirm(store)
    assert S.choose(store) == (S.SLOT_A, False)
    b = S.Boot(store)
    assert (b.active, b.previous, b.failure) == (S.SLOT_A, S.BUILTIN, S.FAIL_NONE)


def test_trial_that_restarts_unconfirmed_rolls_back():
    store = Store()
    for version, slot in ((0x000200, S.SLOT_A), (0x000300, S.SLOT_B)):
        h, body = image(version, seed=version)
        s, boot = S.Session(store), S.Boot(store)
        assert s.open(h, boot) and s.slot == slot
        for i, part in enumerate(blocks(h, body)):
            s.put_block(i, part)
        assert s.install(K1) == S.FAIL_NONE and s.activate(boot)
        assert S.choose(store) == (slot, True)
        if version == 0x000200:
            S.confirm(store)
    # version 3 in slot B booted once and never confirmed: the next boot is A's
    assert S.choose(store) == (S.SLOT_A, False)
    b = S.Boot(store)
    assert b.failure == S.FAIL_NO_BOOT and S.version_of(b, S.SLOT_A, 1) == 0x000200


def test_tampered_block_and_wrong_seal_never_install():
    store = Store()
    h, body = image()
    s, boot = S.Session(store), S.Boot(store)
    s.open(h, boot)
    for i, part in enumerate(blocks(h, body)):
        s.put_block(i, part if i != 3 else bytes(len(part)))
    assert s.install(K1) == S.FAIL_HASH and s.header is None
    assert not s.activate(boot) and store.get("s1.ok") is None
    s.open(h, boot)
    for i, part in enumerate(blocks(h, body)):
        s.put_block(i, part)
    assert s.install(bytes(16)) == S.FAIL_SEAL and S.choose(store) == (S.BUILTIN, False)


def test_damaged_slot_is_never_booted():
    store = Store()
    store.put("boot", bytes((S.SLOT_B, S.BUILTIN, S.CONFIRMED, 0)))  # no s2.ok: half installed
    assert S.choose(store) == (S.BUILTIN, False) and S.Boot(store).failure == S.FAIL_SLOT


def service():
    store = Store()
    model = DataModel("SN1", bytes(6), "fw", store, lambda: 1000)
    app = Application(model)
    dl = Download(model, store, app, 0x000100)
    app.services[A.REPROG_LOCAL] = dl.local
    app.services[A.REPROG_BROADCAST] = dl.broadcast
    dl._k1 = lambda: K1  # the security state is not built here
    return app, dl, model


def call(app, attr, data, grant=R.ACC_WRITE_KEY):
    req = bytes((attr,)) + data
    n = app.handle(req, 0, len(req), 128, grant)
    return bytes(app.resp[0:n])


def test_services_need_the_write_key_and_bind_blocks_to_the_image():
    app, dl, model = service()
    h, body = image()
    assert call(app, A.REPROG_LOCAL, b"\x01" + h.pack(), R.ACC_PLAIN)[0:2] == bytes((A.NACK_A, A.NACK_ACCESS_DENIED))
    assert call(app, A.REPROG_LOCAL, b"\x01" + h.pack(), R.ACC_READ_KEY)[0:2] == bytes((A.NACK_A, A.NACK_ACCESS_DENIED))
    forged = F.Header(h.block, h.version, h.size, h.digest, bytes(16))
    assert call(app, A.REPROG_LOCAL, b"\x01" + forged.pack())[0:2] == bytes((A.NACK_A, A.NACK_BAD_VALUE))
    assert call(app, A.REPROG_LOCAL, b"\x01" + h.pack()) == bytes((A.ACK_A,))
    assert dl.state() == ST_RECEIVING
    other, other_body = image(seed=9)
    parts, wrong = blocks(h, body), blocks(other, other_body)
    # a block of another image (its ID) is dropped, never kept
    assert call(app, A.REPROG_BROADCAST, other.image_id + b"\x00\x00" + wrong[0], R.ACC_PLAIN) == b""
    assert dl.session.received == 0 and dl.stats["dropped"] == 1
    for i, part in enumerate(parts):
        if i != 2:
            call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    ans = call(app, A.REPROG_LOCAL, b"\x03" + h.image_id + b"\x00\x00")
    assert ans[0:6] == bytes((A.REPROG_LOCAL, F.OP_MISSING_RESP)) + h.image_id
    assert struct.unpack(">HH", ans[6:10]) == (0, len(parts) - 1) and ans[10] == 0xFB
    assert call(app, A.REPROG_LOCAL, b"\x02" + h.image_id + b"\x00\x02" + parts[2]) == bytes((A.ACK_A,))
    assert dl.state() == ST_READY
    state = struct.unpack(">BBHHBI", model.get(R.DOWNLOAD_STATE))
    assert state[0:5] == (ST_READY, S.SLOT_A, len(parts), len(parts), S.FAIL_SEAL)  # the forged header, kept
    assert call(app, A.REPROG_LOCAL, b"\x04" + h.image_id + struct.pack(">I", 5000)) == bytes((A.ACK_A,))
    dl.tick(4999)
    assert not dl.restart_due
    dl.tick(5000)
    assert dl.restart_due and dl.state() == ST_RESTART
    assert struct.unpack(">BBIII", model.get(R.DOWNLOAD_VERSIONS)) == (S.SLOT_A, S.BUILTIN, 0x100, 0x200, 0)  # B: empty


def test_missing_answers_from_the_first_byte_that_lacks_a_block():
    app, dl, model = service()
    h, body = image(size=2040, block=64)  # 32 blocks and a part: a bitmap of 5 bytes, the last of 1 bit
    parts = blocks(h, body)
    assert len(parts) == 33
    call(app, A.REPROG_LOCAL, b"\x01" + h.pack())

    def missing(start):
        ans = call(app, A.REPROG_LOCAL, b"\x03" + h.image_id + struct.pack(">H", start))
        assert ans[0:6] == bytes((A.REPROG_LOCAL, F.OP_MISSING_RESP)) + h.image_id
        return struct.unpack(">HH", ans[6:10]) + (ans[10:],)

    for i, part in enumerate(parts):
        if i not in (17, 32):
            call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert missing(0) == (16, 31, bytes((0xFD, 0xFF, 0x00)))  # blocks 0-15 kept; 17 and the last (32) lack
    assert missing(19) == missing(16)  # from the byte of the index asked
    assert missing(24) == (32, 31, bytes((0x00,)))  # blocks 24-31 kept
    call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", 17) + parts[17], R.ACC_PLAIN)
    assert missing(0) == (32, 32, bytes((0x00,)))
    call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", 32) + parts[32], R.ACC_PLAIN)
    assert missing(0) == (40, 33, b"")  # nothing lacks: the bitmap's end, no bitmap


def test_an_install_cut_short_starts_again_on_the_next_missing_or_activate():
    for op in ("missing", "activate"):
        app, dl, model = service()
        h, body = image()
        call(app, A.REPROG_LOCAL, b"\x01" + h.pack())
        for i, part in enumerate(blocks(h, body)):  # every block kept, the install never ran (a cut)
            dl.session.put_block(i, part)
        dl = Download(model, dl.store, app, 0x000100)  # the meter starts again
        app.services[A.REPROG_LOCAL] = dl.local
        dl._k1 = lambda: K1
        assert dl.state() == ST_RECEIVING and dl.session.complete
        if op == "missing":
            ans = call(app, A.REPROG_LOCAL, b"\x03" + h.image_id + b"\x00\x00")
            assert struct.unpack(">HH", ans[6:10]) == (8 * ((h.blocks + 7) // 8), h.blocks) and len(ans) == 10
            assert dl.state() == ST_READY
        else:
            assert call(app, A.REPROG_LOCAL, b"\x04" + h.image_id + bytes(4)) == bytes((A.ACK_A,))
            assert dl.restart_due


def test_an_install_keeps_the_watchdog_fed_while_it_progresses():
    app, dl, model = service()
    h, body = image(size=9000)
    fed = []
    dl.keepalive = lambda: fed.append(1)
    call(app, A.REPROG_LOCAL, b"\x01" + h.pack())
    for i, part in enumerate(blocks(h, body)):
        call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert dl.state() == ST_READY
    assert len(fed) == h.size // 4096 + 2  # every 4 KB hashed, and before each of the 2 files


def test_restart_runs_the_trial_and_confirm_ends_it():
    app, dl, model = service()
    h, body = image()
    call(app, A.REPROG_LOCAL, b"\x01" + h.pack())
    for i, part in enumerate(blocks(h, body)):
        call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert call(app, A.REPROG_LOCAL, b"\x04" + h.image_id + bytes(4)) == bytes((A.ACK_A,)) and dl.restart_due
    assert S.choose(dl.store) == (S.SLOT_A, True)
    dl2 = Download(model, dl.store, app, 0x100)
    assert dl2.state() == ST_TRIAL and dl2.confirm() and dl2.state() == ST_IDLE


def test_bad_requests_are_nacks():
    app, dl, model = service()
    h, _ = image()
    for data in (b"", b"\x01" + h.pack()[:-1], b"\x09", b"\x03" + bytes(6), b"\x04" + bytes(8), b"\x05\x00"):
        ans = call(app, A.REPROG_LOCAL, data)
        assert ans[0] == A.NACK_A, (data, ans)
    for data in (b"", bytes(6), bytes(7)):
        assert call(app, A.REPROG_BROADCAST, data, R.ACC_PLAIN) == b""


def installed(store, version, seed):
    """An image of `version` installed and activated through a Session; the slot it went to."""
    h, body = image(version, seed=seed)
    s, boot = S.Session(store), S.Boot(store)
    assert s.open(h, boot)
    for i, part in enumerate(blocks(h, body)):
        s.put_block(i, part)
    slot = s.slot
    assert s.install(K1) == S.FAIL_NONE and s.activate(boot)
    return slot


def open_image(app, version, seed):
    h, body = image(version, seed=seed)
    ans = call(app, A.REPROG_LOCAL, b"\x01" + h.pack())
    return h, body, ans


def test_version_floor_rises_with_a_healthy_image_and_refuses_older_ones():
    app, dl, model = service()
    store = dl.store
    assert model.get(R.DOWNLOAD_FLOOR) == bytes(4)
    h, body, ans = open_image(app, 0x000300, 3)
    assert ans == bytes((A.ACK_A,))
    for i, part in enumerate(blocks(h, body)):
        call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert call(app, A.REPROG_LOCAL, b"\x04" + h.image_id + bytes(4)) == bytes((A.ACK_A,))
    assert S.floor(store) == 0  # activated is not healthy yet
    S.choose(store, "soft")
    dl = Download(model, store, app, 0x100)
    app.services[A.REPROG_LOCAL] = dl.local
    app.services[A.REPROG_BROADCAST] = dl.broadcast
    dl._k1 = lambda: K1
    assert dl.confirm() and model.get(R.DOWNLOAD_FLOOR) == struct.pack(">I", 0x000300)
    # an older image, sealed with the right key: refused at OPEN, and said why
    _h, _b, ans = open_image(app, 0x000200, 4)
    assert ans[0:2] == bytes((A.NACK_A, A.NACK_BAD_VALUE)) and dl.session.header is None
    assert struct.unpack(">BBHHBI", model.get(R.DOWNLOAD_STATE))[4] == S.FAIL_OLD
    assert not S.raise_floor(store, 0x000100) or S.floor(store) == 0x000300  # never lowered
    # the same version is not below the floor; a floor risen meanwhile stops its activation
    h, body, ans = open_image(app, 0x000300, 5)
    assert ans == bytes((A.ACK_A,))
    for i, part in enumerate(blocks(h, body)):
        call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert dl.state() == ST_READY
    assert S.raise_floor(store, 0x000400) and S.floor(store) == 0x000400
    ans = call(app, A.REPROG_LOCAL, b"\x04" + h.image_id + bytes(4))
    assert ans[0] == A.NACK_A and not dl.restart_due and dl.session.header is None
    assert S.Boot(store).failure == S.FAIL_OLD and S.Boot(store).trial == S.CONFIRMED


def test_confirmed_slot_that_keeps_failing_falls_back_then_stops_at_the_builtin():
    store = Store()
    for version in (0x000200, 0x000300):  # A then B, each confirmed healthy
        slot = installed(store, version, version)
        assert S.choose(store, "soft") == (slot, True) and S.confirm(store)
    assert (S.Boot(store).active, S.Boot(store).previous) == (S.SLOT_B, S.SLOT_A)
    for n in range(1, S.MAX_STARTS + 1):  # B hangs at each start: the watchdog resets it
        assert S.choose(store, "watchdog") == (S.SLOT_B, False) and S.starts(store, S.SLOT_B) == n
        assert S.choose(store, "power") == (S.SLOT_B, False) and S.starts(store, S.SLOT_B) == n  # not counted
    assert S.choose(store, "other") == (S.SLOT_A, False)  # A holds a verified image
    b = S.Boot(store)
    assert (b.active, b.previous, b.failure) == (S.SLOT_A, S.BUILTIN, S.FAIL_REPEATED)
    assert S.starts(store, S.SLOT_A) == 1  # the start it fell back with counts
    assert S.choose(store, "watchdog") == (S.SLOT_A, False)
    assert not S.healthy(store) and S.starts(store, S.SLOT_A) == 0  # a healthy start ends the count
    for _ in range(S.MAX_STARTS):
        assert S.choose(store, "watchdog") == (S.SLOT_A, False)
    for _ in range(3):  # A fails too: the built-in firmware, and there the retries stop
        assert S.choose(store, "watchdog") == (S.BUILTIN, False)
    assert S.Boot(store).failure == S.FAIL_REPEATED and S.floor(store) == 0x000300


def test_no_reset_sequence_loops_a_failing_confirmed_slot():
    # the power-cut campaign's spirit: any mix of resets never runs a slot more than
    # MAX_STARTS counted starts unhealthy; a cut between the fallback and the count of the
    # slot fallen back to costs that slot one start more, never a loop
    rng = Rng(11)
    for trial in range(40):
        store = Store()
        for version in (0x000200, 0x000300):
            slot = installed(store, version, version)
            S.choose(store, "soft")
            S.confirm(store)
        unhealthy = {S.SLOT_A: 0, S.SLOT_B: 0}
        allowed = {S.SLOT_A: S.MAX_STARTS, S.SLOT_B: S.MAX_STARTS}
        for _ in range(30):
            cause = ("power", "watchdog", "other", "soft")[rng.next() % 4]
            before = S.Boot(store).active
            slot, on_trial = S.choose(store, cause)
            assert not on_trial
            if slot != before:
                assert unhealthy[before] == allowed[before] and S.Boot(store).failure == S.FAIL_REPEATED
                if slot != S.BUILTIN and rng.next() % 2:  # a cut before the new slot's start was counted
                    store.put("starts", bytes((before, S.MAX_STARTS)))
                    allowed[slot] += 1
            if slot != S.BUILTIN and cause != "power":
                unhealthy[slot] += 1
            assert slot == S.BUILTIN or unhealthy[slot] <= allowed[slot], (trial, slot, unhealthy)
        assert S.Boot(store).active == S.BUILTIN  # never healthy: the retries ended at the built-in


def test_a_meter_without_the_download_engine_answers_reprog_nack_6():
    # a board with no room for slots leaves the engine out (meter/runtime/firmware.py download_engine)
    store = Store()
    app = Application(DataModel("SN1", bytes(6), "fw", store, lambda: 1000))
    h, body = image()
    for attr, data in ((A.REPROG_LOCAL, b"\x01" + h.pack()), (A.REPROG_LOCAL, b"\x05"),
                       (A.REPROG_BROADCAST, h.image_id + b"\x00\x00" + body[0:h.block])):
        assert call(app, attr, data)[0:2] == bytes((A.NACK_A, A.NACK_UNSUPPORTED)), attr
    assert store.get("dl.hdr") is None and store.get("dl.log") is None


def test_open_can_program_the_activation_and_a_plain_open_clears_it():
    app, dl, model = service()
    h, body = image()
    assert call(app, A.REPROG_LOCAL, b"\x01" + h.pack() + struct.pack(">I", 5000)) == bytes((A.ACK_A,))
    assert dl.activation_time() == 5000
    for i, part in enumerate(blocks(h, body)):
        call(app, A.REPROG_BROADCAST, h.image_id + struct.pack(">H", i) + part, R.ACC_PLAIN)
    assert dl.state() == 3  # programmed: no ACTIVATE needed
    dl.tick(4999)
    assert not dl.restart_due
    dl.tick(5000)
    assert dl.restart_due and dl.activation_time() == 0
    app, dl, model = service()
    other, _ = image(seed=7)
    call(app, A.REPROG_LOCAL, b"\x01" + h.pack() + struct.pack(">I", 5000))
    assert call(app, A.REPROG_LOCAL, b"\x01" + other.pack()) == bytes((A.ACK_A,))
    assert dl.activation_time() == 0  # an earlier image's time does not carry over
    assert call(app, A.REPROG_LOCAL, b"\x01" + h.pack() + b"\x00\x00")[0] == A.NACK_A  # 2 bytes: no time
