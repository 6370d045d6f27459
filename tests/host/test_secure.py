# The concentrator side of the security (smitp.secure) against the worked
# vectors of the protocol reference (8.2 set 1, 8.3 set 2). Those vectors come
# from one vendor's reading of the protocol, not from the standard; see
# tests/firmware/test_security.py. The meter in the session tests is built from
# the firmware's own pieces (meter.app.lmon, meter.app.security).
import json

import pytest

from meter import attrs as A
from meter.app import keychange as KC
from meter.app import security as sec
from meter.app.lmon import KeyStore, LmonCounter, ResponseCache
from meter.storage import Store
from smitp import client, secure
from smitp.secure import (ExchangeError, KeyRing, LmonBehind, LmonMismatch, MeterSecurity, OutcomeUnknown,
                          SecureError)
from smitp.errors import NoAnswer
from smitp.transport import Link

K1 = bytes(range(16))
K2 = bytes.fromhex("AA55" * 8)
ACA = bytes.fromhex("A8040A1E8984")
N = bytes(range(16))
DT = 0x66FB3B80
READ = 2  # READ.REQ, plain ATTR
A_AIR = bytes.fromhex("66B570DB693E80A0AAA4BAA2272F6EC4672EA3")
B_AIR = bytes.fromhex("67B54F5B52C5E6A0AAA4BA4107C6B52AD4E0ED6956C2068568")
C_AIR = bytes.fromhex("F50A63F20AD7CF5924A5B34CCCCE6788E5B4")
D_AIR = bytes.fromhex("710000B6F18D047B78B54409DD6957B14D0230")
V1_AIR = bytes.fromhex("667fd351742c7a4f2827dcf3f6a47559d82ed8")
V2_AIR = bytes.fromhex("677fecd14fd71c4f2827dcd011e5215afb2f0934b631de899e")


def session(lmon=5, k2=K2):
    return MeterSecurity(ACA, K1, k2, lmon)


# ---- vectors -------------------------------------------------------------------------------


def test_vector_set_1_request_and_answer():
    s = session(5)
    assert s.cmon == 6
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == A_AIR
    assert s.pending == A_AIR and s.lmon == 5  # nothing adopted before the answer
    assert s.unprotect(B_AIR) == (3, bytes(8))
    assert s.lmon == 6 and s.cmon == 7 and s.pending is None


def test_vector_set_2_from_lmon_0():
    s = MeterSecurity("a8040a1e8984", K1.hex(), K2.hex().upper())  # text forms too
    assert s.protect(READ, bytes.fromhex("003f"), sec.ECC_CTR_READ, DT) == V1_AIR
    assert s.unprotect(V2_AIR) == (3, bytes(8))
    assert s.lmon == 1


def test_resync_from_nack_10_vector():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    assert s.resync_from(C_AIR) == 5  # C covers the Etm* of A
    assert s.lmon == 5 and s.pending == A_AIR  # LMON = MON - 1: never taken, A goes again as it is


def test_resync_over_the_last_8_bytes_of_a_short_request():
    # The meter's NACK-10 to a request too short for DATE-TIME and TMAC covers its last 8 bytes
    # (the public rule, meter.app.auth.nack_etm); the concentrator checks the same bytes.
    short = A_AIR[:12]
    pending = {"lsdu": short.hex(), "mon": 6, "ecc": sec.ECC_CTR_READ, "request": "-", "answer": 128}
    s = MeterSecurity(ACA, K1, K2, 5, pending=pending)
    assert s.answers(bytes.fromhex("f50a4e4880b53a04691112b3815ef42a2a0a"), sec.ECC_CHALLENGE)
    assert s.resync_from(bytes.fromhex("f50a4e4880b53a04691112b3815ef42a2a0a")) == 5
    s = MeterSecurity(ACA, K1, K2, 5, pending=pending)
    with pytest.raises(sec.AuthError):  # over 8 zero bytes, as the firmware once sent it
        s.resync_from(bytes.fromhex("f50a5027cafd21bbf054f435b4baa389fa58"))


def test_unprotect_turns_nack_10_into_lmon_mismatch():
    s = session(2)  # the concentrator is behind: the meter is at 5
    sent = s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    nack = sec.seal_auth_nack(sec.Keys(K1, K2), ACA, 5, sec.etm(sent))
    with pytest.raises(LmonMismatch) as e:
        s.unprotect(nack)
    assert e.value.lmon == 5 and s.lmon == 5
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == A_AIR
    assert s.unprotect(B_AIR) == (3, bytes(8))


def test_challenge_vector(monkeypatch):
    monkeypatch.setattr(secure.os, "urandom", lambda n: N[:n])
    s = session(77)
    data = s.challenge()
    assert data == b"\x00\x00" + N and len(data) == sec.CHL_REQ_LEN
    assert sec.challenge_of(data) == N
    assert s.accept_challenge(D_AIR) == 5
    assert s.lmon == 5 and s.cmon == 6


def test_challenge_is_fresh_and_answers_once():
    s = session(77)
    a, b = s.challenge(), s.challenge()
    assert a[2:] != b[2:] and len(a) == 18
    with pytest.raises(sec.AuthError):
        s.accept_challenge(D_AIR)  # answers N = 00..0F, not our N
    assert s.lmon == 77
    keys = sec.Keys(K1, K2)
    resp = sec.seal_challenge_resp(keys, ACA, 9, sec.challenge_of(b))
    assert s.accept_challenge(resp) == 9
    with pytest.raises(SecureError):
        s.accept_challenge(resp)  # replayed: no challenge outstanding
    s.challenge()
    with pytest.raises(sec.AuthError):
        s.accept_challenge(resp)  # replayed against a new N
    assert s.lmon == 9


def test_authenticated_nack_other_than_10_is_an_answer():
    s = session(5)
    sent = s.protect(4, bytes.fromhex("00200000"), sec.ECC_ECB_WRITE, DT)
    nack = sec.seal_auth_nack(sec.Keys(K1, K2), ACA, 6, sec.etm(sent), 2)  # the NACK-10 shape, MON = 6
    assert s.unprotect(nack) == (255, b"\x02")
    assert s.lmon == 6 and s.pending is None


# ---- rejections ----------------------------------------------------------------------------


def test_wrong_key_rejected_and_nothing_adopted():
    s = session(5, k2=bytes(16))  # the concentrator holds a wrong read key
    sent = s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    assert sent != A_AIR
    right = sec.Keys(K1, K2)
    answer = sec.seal(right, ACA, 103, bytes(8), 6, sec.ECC_CTR_READ, 0)
    with pytest.raises(sec.AuthError):
        s.unprotect(answer)
    nack = sec.seal_auth_nack(right, ACA, 9, sec.etm(sent))
    with pytest.raises(sec.AuthError):
        s.unprotect(nack)
    with pytest.raises(sec.AuthError):
        s.resync_from(nack)
    s.challenge()
    with pytest.raises(sec.AuthError):
        s.accept_challenge(D_AIR)
    assert s.lmon == 5 and s.pending == sent and s.stats["rejected"] == 4


def test_replayed_answer_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    s.unprotect(B_AIR)
    with pytest.raises(SecureError):
        s.unprotect(B_AIR)  # nothing outstanding
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    with pytest.raises(sec.AuthError):
        s.unprotect(B_AIR)  # MON 6 answer against CMON 7
    assert s.lmon == 6


def test_stale_nack_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("0020"), sec.ECC_CTR_READ, DT)  # not request A
    with pytest.raises(sec.AuthError):
        s.resync_from(C_AIR)  # covers A's Etm*, not ours
    with pytest.raises(sec.AuthError):
        s.unprotect(C_AIR)
    assert s.lmon == 5


def test_tampered_answers_rejected():
    s = session(5)
    s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT)
    for i in range(len(B_AIR)):
        bad = bytearray(B_AIR)
        bad[i] ^= 0x40
        with pytest.raises((sec.AuthError, SecureError)):
            s.unprotect(bytes(bad))
    for bad in (b"", b"\x03" + bytes(8), D_AIR, B_AIR[:10]):
        with pytest.raises((sec.AuthError, SecureError)):
            s.unprotect(bad)
    assert s.lmon == 5 and s.pending is not None
    assert s.unprotect(B_AIR) == (3, bytes(8))


def test_bad_construction():
    for args in ((ACA[:5], K1, K2), (ACA, K1[:15], K2), (ACA, K1, "zz" * 16), (ACA, K1, K2, -1), (ACA, K1, K2, 1 << 64)):
        with pytest.raises(SecureError):
            MeterSecurity(*args)
    with pytest.raises(SecureError):
        session().unprotect(B_AIR)
    with pytest.raises(SecureError):
        session().resync_from(C_AIR)
    with pytest.raises(SecureError):
        session().accept_challenge(D_AIR)


# ---- a whole session against a meter built from the firmware pieces -------------------------


class Meter:
    """The meter's receive order for authenticated requests (meter.app.lmon), in miniature, with the
    policy of docs/security.md: ECB DATA padded both ways, writes only under ECB with K1, and
    the key change (meter.app.keychange)."""

    def __init__(self, store, reserve=4):
        self.store, self.reserve = store, reserve
        self.boot()
        self.executed = 0
        self.runs = {}  # plain ATTR -> times served

    def boot(self):
        self.keystore = KeyStore(self.store)
        self.keys = self.keystore.keys()
        self.lmon = LmonCounter(self.store, self.reserve)
        self.cache = ResponseCache(self.store)

    def receive(self, lsdu, ecc):
        if lsdu[0] == A.CHL_REQ:
            return sec.seal_challenge_resp(self.keys, ACA, self.lmon.value, sec.challenge_of(lsdu[1:]))
        cached = self.cache.lookup(lsdu, ecc)
        if cached is not None:
            return bytes(cached)
        mon = self.lmon.candidate()
        staged = self.keystore.pending()
        for keys in ([staged[2]] if staged and lsdu[0] == sec.auth_attr(A.KEY_CHANGE) else []) + [self.keys]:
            try:
                data, _dt = sec.open_(keys, ACA, lsdu, mon, ecc)
                break
            except sec.AuthError:
                continue
        else:
            return sec.seal_auth_nack(self.keys, ACA, self.lmon.value, sec.etm(lsdu))
        assert self.lmon.commit()
        ecb = sec.ecc_mode(ecc) == sec.MODE_ECB
        if ecb:
            data = data[:sec.ecb_unpad(bytearray(b"x" + data), 1 + len(data)) - 1]
        attr = sec.plain_attr(lsdu[0])
        self.executed += 1
        self.runs[attr] = self.runs.get(attr, 0) + 1
        if attr == READ:
            plain = bytes((A.READ_RESP,)) + data + bytes(6)
        elif ecc != sec.ECC_ECB_WRITE:
            answer = sec.seal_auth_nack(self.keys, ACA, self.lmon.value, sec.etm(lsdu), A.NACK_ACCESS_DENIED)
            self.cache.put(lsdu, answer, ecc)
            return answer
        else:
            plain = bytes((A.ACK_A,))
        answer_keys = self.keys
        if attr == A.KEY_CHANGE and data[0] == KC.STAGE:
            self.keystore.stage(*KC.open_stage(self.keys.write, data, 0, len(data)))
        elif attr == A.KEY_CHANGE and staged and keys is staged[2]:
            self.keystore.activate()
            self.keys = answer_keys = self.keystore.keys()
        buf = bytearray(sec.LSDU_MAX)
        buf[0] = sec.auth_attr(plain[0])
        buf[1:len(plain)] = plain[1:]
        n = sec.ecb_pad(buf, len(plain)) if ecb else len(plain)
        answer = bytes(buf[:sec.seal_into(answer_keys, ACA, buf, n, self.lmon.value, ecc, 0)])
        self.cache.put(lsdu, answer, ecc)
        return answer


def exchange(s, meter, apdu, tries=3):
    for _ in range(tries):
        lsdu = s.protect(READ, apdu, sec.ECC_CTR_READ, DT)
        try:
            return s.unprotect(meter.receive(lsdu, sec.ECC_CTR_READ))
        except LmonMismatch:
            continue
    raise AssertionError("no exchange")


def test_session_survives_meter_reboots():
    store = Store()
    KeyStore(store).provision(K1, K2)
    meter = Meter(store, reserve=4)
    s = session(0)
    for i in range(10):
        assert exchange(s, meter, bytes((0, i))) == (3, bytes((0, i)) + bytes(6))
    assert s.lmon == meter.lmon.value == 10
    meter.boot()  # power cut: the meter skips to its ceiling
    assert meter.lmon.value == 12
    assert exchange(s, meter, b"\x00\x3f")[0] == 3  # one NACK-10, then served
    assert s.lmon == 13 and s.stats["resyncs"] == 1
    assert meter.executed == 11


def test_lost_answer_is_repeated_from_the_cache_across_a_reboot():
    store = Store()
    KeyStore(store).provision(K1, K2)
    meter = Meter(store)
    s = session(0)
    lsdu = s.protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)
    meter.receive(lsdu, sec.ECC_CTR_READ)  # the answer is lost on the line
    meter.boot()
    assert s.unprotect(meter.receive(s.pending, sec.ECC_CTR_READ))[0] == 3
    assert meter.executed == 1 and s.lmon == 1


# ---- key ring ------------------------------------------------------------------------------


def test_keyring_loads_and_hides_keys(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({
        "A8040A1E8984": {"k1": K1.hex(), "k2": K2.hex()},
        "a8040a1e8901": {"k1": K2.hex(), "k2": K1.hex(), "lmon": 41},
    }))
    ring = KeyRing.load(path)
    assert len(ring) == 2 and sorted(ring) == ["A8040A1E8901", "A8040A1E8984"]
    s = ring.get(ACA)
    assert ring["a8040a1e8984"] is s and ACA in ring and "A8040A1E8985" not in ring
    assert s.protect(READ, bytes.fromhex("003F"), sec.ECC_CTR_READ, DT) == V1_AIR
    assert ring.lmons() == {"A8040A1E8984": 0, "A8040A1E8901": 41}
    text = repr(ring) + repr(s) + str(ring.lmons())
    for key in (K1, K2):
        assert key.hex() not in text.lower()
    with pytest.raises(SecureError):
        ring.get("A8040A1E8985")


@pytest.mark.parametrize("content", [
    "not json",
    "[]",
    '{"A8040A1E8984": {"k1": "00"}}',
    '{"A8040A1E8984": {"k1": "%s", "k2": "%s"}}' % ("ab" * 15, "cd" * 16),
    '{"A8040A1E8984": {"k1": "%s", "k2": "%sx"}}' % ("ab" * 16, "cd" * 15 + "c"),
    '{"A8040A1E89": {"k1": "%s", "k2": "%s"}}' % ("ab" * 16, "cd" * 16),
])
def test_keyring_errors_never_show_keys(tmp_path, content):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(SecureError) as e:
        KeyRing.load(path)
    assert "abab" not in str(e.value) and "cdcd" not in str(e.value)


# ---- the documented weakness W1 (docs/security.md), reproduced ------------------------------


def test_w1_ctr_bitflip_keeps_the_tmac_without_the_key():
    # Turn request A (READ 00 3F) into READ 00 40 on the ciphertext alone: CRC-32 is affine, so
    # 32 flipped DATE-TIME bits cancel the change in the CRC and the TMAC stays valid.
    import zlib

    n = 16  # CRC input: ACA (6) | DATA (2) | DATE-TIME (8)
    zero = zlib.crc32(bytes(n))

    def lin(offset, mask):
        d = bytearray(n)
        d[offset] = mask
        return zlib.crc32(bytes(d)) ^ zero

    target = lin(7, 0x3F ^ 0x40)
    rows = []  # GF(2) basis over single bits of DATE-TIME bytes 0..3: (vector, bits used)
    for i in range(32):
        v, used = lin(8 + i // 8, 1 << (i % 8)), 1 << i
        for rv, ru in rows:
            if v ^ rv < v:
                v, used = v ^ rv, used ^ ru
        if v:
            rows.append((v, used))
            rows.sort(reverse=True)
    t, used = target, 0
    for rv, ru in rows:
        if t ^ rv < t:
            t, used = t ^ rv, used ^ ru
    assert t == 0
    forged = bytearray(A_AIR)
    forged[2] ^= 0x3F ^ 0x40  # LSDU index = CRC offset - 5
    for i in range(32):
        if used >> i & 1:
            forged[3 + i // 8] ^= 1 << (i % 8)
    data, dt = sec.open_(sec.Keys(K1, K2), ACA, bytes(forged), 6, sec.ECC_CTR_READ)
    assert data == b"\x00\x40" and dt != DT


# ---- the rules over a link (smitp.secure.exchange, sync, change_keys) ------------------------

WRITE = A.WRITE_REQ
CLOSE = bytes((1,))  # any COMMAND APDU: the miniature meter only counts it


class Silent(NoAnswer):
    pass


class Line(Link):
    """A link to the miniature meter with a script, one step per sending: "ok", "drop" (the
    answer is jammed), "tamper" (an attacker alters the request, keeping its last 8 bytes, so
    that the meter's NACK-10 still verifies), "lost" (the request never arrives)."""

    NoAnswer = Silent

    def __init__(self, meter, script=()):
        self.meter, self.script, self.sent, self.paused = meter, list(script), [], 0.0

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        for _ in range(tries or 2):
            self.sent.append((lsdu, ecc))
            step = self.script.pop(0) if self.script else "ok"
            if step == "lost":
                continue
            got = lsdu
            if step == "tamper":
                got = bytearray(lsdu)
                got[1] ^= 0x01
                got = bytes(got)
            ans = self.meter.receive(got, ecc)
            ans_ecc = sec.ECC_CHALLENGE if ans[0] in (sec.ATTR_NACK_A_AUTH, sec.ATTR_CHL_RESP) else ecc
            if step != "drop" and (accept is None or accept(ans, ans_ecc)):
                return ans_ecc, ans
        raise Silent("silent")

    def pause(self, seconds):
        self.paused += seconds


def fresh_meter(lmon=0):
    store = Store()
    KeyStore(store).provision(K1, K2)
    if lmon:
        LmonCounter(store).set(lmon)
    return Meter(store)


def mon_of(lsdu, ecc, keysets=((K1, K2),), top=100):
    """The MON a captured request was sealed under: the one its TMAC verifies with (checked
    with the codec alone, not with the session that sealed it)."""
    for keys in keysets:
        for mon in range(top):
            try:
                sec.open_(sec.Keys(*keys), ACA, lsdu, mon, ecc)
                return mon
            except sec.AuthError:
                continue
    raise AssertionError("no MON verifies")


def assert_one_request_per_mon(sent, keysets=((K1, K2),)):
    by_mon = {}
    for lsdu, ecc in sent:
        if lsdu[0] != A.CHL_REQ:
            by_mon.setdefault(mon_of(lsdu, ecc, keysets), set()).add(lsdu)
    assert all(len(v) == 1 for v in by_mon.values()), by_mon
    return by_mon


def test_ecb_requests_and_answers_are_padded():
    meter, s = fresh_meter(), session(0)
    line = Line(meter)
    assert secure.exchange(s, line, WRITE, b"\x00\x20" + bytes(16), sec.ECC_ECB_WRITE, 1) == (A.ACK_A, b"")
    lsdu, ecc = line.sent[-1]
    assert ecc == 6 and len(lsdu) == 1 + 32 + 16  # 18 bytes of DATA padded to 32
    assert secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_ECB_READ, 9)[1] == b"\x00\x3f" + bytes(6)
    assert client.sealed_len(1, 6) == 33 and client.max_data(6) == 95 and client.max_data(5) == 111
    with pytest.raises(SecureError):
        s.protect(WRITE, bytes(96), sec.ECC_ECB_WRITE, DT)  # 96 bytes need 112 padded: too long
    assert s.pending is None


def test_a_first_write_learns_the_lmon_by_challenge():
    meter, s = fresh_meter(lmon=40), session(0)  # the file's LMON is stale
    line = Line(meter)
    secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1)
    assert line.sent[0][0][0] == A.CHL_REQ and s.lmon == 41 and meter.runs[A.COMMAND] == 1
    assert s.stats["challenges"] == 1 and s.stats["resyncs"] == 0


def test_a_request_without_answer_goes_first_next_time():
    meter, s = fresh_meter(), session(0)
    s.synced = True
    line = Line(meter, ["drop", "drop"])
    with pytest.raises(Silent) as e:
        secure.exchange(s, line, WRITE, b"\x00\x20" + bytes(16), sec.ECC_ECB_WRITE, 1)
    assert "stays pending" in str(e.value)
    write = s.pending
    assert meter.runs == {WRITE: 1} and line.sent == [(write, 6), (write, 6)]  # the retry: the same bytes
    with pytest.raises(SecureError):
        s.protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)  # nothing new while it is pending
    assert secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)[0] == A.READ_RESP
    assert line.sent[2] == (write, 6)  # first the write, as it went: its cached answer came back
    assert meter.runs == {WRITE: 1, READ: 1} and s.lmon == 2 and s.pending is None
    assert_one_request_per_mon(line.sent)


def test_a_retry_of_the_pending_request_takes_its_answer():
    meter, s = fresh_meter(), session(0)
    s.synced = True
    line = Line(meter, ["drop", "drop"])
    with pytest.raises(Silent):
        secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1)
    assert secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1) == (A.ACK_A, b"")
    assert meter.runs == {A.COMMAND: 1} and len({lsdu for lsdu, _ in line.sent}) == 1


def test_a_forged_nack_after_a_jammed_answer_never_runs_a_command_twice():
    meter, s = fresh_meter(), session(0)
    s.synced = True
    # ran, answer jammed; the retry altered on the way (a verified NACK-10, LMON = its MON); the
    # request once more for the cached answer, jammed again
    line = Line(meter, ["drop", "tamper", "drop", "drop"])
    with pytest.raises(OutcomeUnknown) as e:
        secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1)
    assert "outcome unknown" in str(e.value) and "COMMAND" in str(e.value) and "\n" not in str(e.value)
    assert meter.runs == {A.COMMAND: 1} and s.pending is None and s.lmon == 1
    assert len({lsdu for lsdu, _ in line.sent}) == 1  # never sealed again
    secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)  # the session goes on
    assert meter.runs == {A.COMMAND: 1, READ: 1}
    assert_one_request_per_mon(line.sent)


def test_a_forged_nack_is_settled_by_the_cached_answer():
    meter, s = fresh_meter(), session(0)
    s.synced = True
    line = Line(meter, ["drop", "tamper", "ok"])
    assert secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1) == (A.ACK_A, b"")
    assert meter.runs == {A.COMMAND: 1} and len({lsdu for lsdu, _ in line.sent}) == 1


def test_a_request_the_meter_never_took_goes_again_as_it_is():
    meter, s = fresh_meter(), session(0)
    s.synced = True
    line = Line(meter, ["tamper"])  # NACK-10 with LMON = its MON - 1
    assert secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1) == (A.ACK_A, b"")
    assert len({lsdu for lsdu, _ in line.sent}) == 1 and meter.runs == {A.COMMAND: 1}
    line.script = ["tamper"] * 6
    with pytest.raises(ExchangeError) as e:
        secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1)
    assert "keeps refusing" in str(e.value) and s.pending is not None


def test_a_read_whose_mon_the_meter_used_is_sealed_again():
    meter, s = fresh_meter(), session(0)
    line = Line(meter, ["drop", "tamper"])  # read ran, answer jammed; NACK-10 with LMON = its MON
    assert secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)[0] == A.READ_RESP
    assert meter.runs == {READ: 2} and s.lmon == 2
    assert_one_request_per_mon(line.sent)


def test_a_meter_behind_the_session_is_refused():
    meter, s = fresh_meter(), session(50)  # the concentrator is ahead: MONs up to 50 may be sealed
    line = Line(meter)
    with pytest.raises(LmonBehind) as e:
        secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)
    assert "behind" in str(e.value) and s.lmon == 0 and meter.executed == 0
    with pytest.raises(LmonBehind):  # MON 51 stays pending: it goes first, as it is, and fails alike
        secure.exchange(s, line, READ, b"\x00\x20", sec.ECC_CTR_READ, 9)
    assert len({lsdu for lsdu, _ in line.sent}) == 1 and meter.executed == 0


def test_plain_nacks_settle_nothing():
    s = session(0)
    sent = s.protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)

    class Exhausted(Line):
        def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
            return 0, bytes((A.NACK_A, A.NACK_LMON_EXHAUSTED, 0, 0))

    with pytest.raises(secure.Refused) as e:
        secure.exchange(s, Exhausted(None), READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)
    assert e.value.code == 11 and "LMON" in str(e.value) and s.pending == sent


def test_challenge_backs_off_when_the_meter_is_silent():
    meter, s = fresh_meter(lmon=7), session(0)
    line = Line(meter, ["lost", "lost"])
    assert secure.sync(s, line) == 7
    assert line.paused == 2 * secure.BACKOFF_S and len({lsdu for lsdu, _ in line.sent}) == 1  # same N
    line.script = ["lost"] * 3
    with pytest.raises(Silent):
        secure.sync(s, line)


def test_state_survives_in_the_key_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"a8040a1e8984": {"k1": K1.hex(), "k2": K2.hex(), "note": "kept"}}))
    ring = KeyRing.load(path)
    s = ring[ACA]
    meter = fresh_meter()
    line = Line(meter, ["ok", "drop", "drop"])  # the challenge, then the command twice
    with pytest.raises(Silent):
        secure.exchange(s, line, A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1)
    ring.save(path)
    saved = json.loads(path.read_text())
    assert list(saved) == ["a8040a1e8984"] and saved["a8040a1e8984"]["note"] == "kept"
    assert saved["a8040a1e8984"]["sealed"] == 1 and saved["a8040a1e8984"]["pending"]["mon"] == 1
    assert (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text().lower()
    assert text.count(K1.hex()) == 1 and text.count(K2.hex()) == 1  # the keys, once each
    ring = KeyRing.load(path)  # the next run: the same command goes out as it went
    again = ring[ACA]
    assert again.pending == s.pending and again.sealed == 1
    assert secure.exchange(again, Line(meter), A.COMMAND, CLOSE, sec.ECC_ECB_WRITE, 1) == (A.ACK_A, b"")
    assert meter.runs == {A.COMMAND: 1}
    ring.save(path)
    last = KeyRing.load(path)[ACA]
    assert last.pending is None and last.sealed == 1 and last.lmon == 1
    with pytest.raises(LmonBehind):  # a file whose LMON went back never reuses a MON
        MeterSecurity(ACA, K1, K2, 0, 1).protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)


def test_key_change_stage_then_activate():
    meter, s = fresh_meter(), session(0)
    n1, n2 = bytes([7]) * 16, bytes([8]) * 16
    line = Line(meter)
    assert secure.change_keys(s, line, n1, n2) == "activated"
    assert meter.keystore.keys() is meter.keys and s.stats["key_changes"] == 1
    assert secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)[0] == A.READ_RESP
    old = session(s.lmon)
    with pytest.raises(sec.AuthError):  # the old pair no longer opens anything
        secure.exchange(old, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)
    assert_one_request_per_mon(line.sent, ((K1, K2), (n1, n2)))
    with pytest.raises(secure.KeyChangeError):
        secure.change_keys(session(0, k2=n2), line, bytes([9]) * 16, n2)  # both keys must change


def test_key_change_with_a_lost_activate_answer_is_settled_by_challenge():
    meter, s = fresh_meter(), session(0)
    n1, n2 = bytes([7]) * 16, bytes([8]) * 16
    line = Line(meter, ["ok", "ok", "drop", "drop"])  # challenge, stage, activate (jammed twice)
    assert secure.change_keys(s, line, n1, n2) == "activated, answer lost"
    assert not s.changing and secure.exchange(s, line, READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)[0] == A.READ_RESP
    meter2, s2 = fresh_meter(), session(0)
    line2 = Line(meter2, ["ok", "ok", "lost", "lost", "ok"])  # the activate never arrives
    assert secure.change_keys(s2, line2, n1, n2) == "activated"  # resent as it was, after the challenge
    meter3, s3 = fresh_meter(), session(0)
    line3 = Line(meter3, ["ok", "ok", "lost", "lost"] + ["lost"] * 3)  # nothing answers any more
    with pytest.raises(OutcomeUnknown):
        secure.change_keys(s3, line3, n1, n2)
    assert s3.changing and s3.state()["pending"]["new_keys"]
    assert secure.change_keys(s3, Line(meter3), n1, n2) == "activated"  # run again: the same activate
    assert meter3.keys is meter3.keystore.keys() and s3.stats["key_changes"] == 1


def test_key_change_already_done_is_recognised():
    meter, s = fresh_meter(), session(0)
    n1, n2 = bytes([7]) * 16, bytes([8]) * 16
    secure.change_keys(s, Line(meter), n1, n2)
    stale = session(0)  # a run that never learnt the outcome
    assert secure.change_keys(stale, Line(meter), n1, n2) == "already in force"
    assert stale.lmon == s.lmon


def test_answers_that_do_not_verify_are_not_taken():
    meter, s = fresh_meter(), session(0)
    s.protect(READ, b"\x00\x3f", sec.ECC_CTR_READ, DT)
    stale = sec.seal(sec.Keys(K1, K2), ACA, 103, bytes(10), 0, sec.ECC_CTR_READ, 0)  # an answer under MON 0
    assert not s.answers(stale, sec.ECC_CTR_READ) and s.lmon == 0 and s.pending is not None
    assert s.answers(meter.receive(s.pending, sec.ECC_CTR_READ), sec.ECC_CTR_READ)
    wrong = session(0, k2=bytes(16))  # answers come, none verifies: the keys, not the line
    with pytest.raises(sec.AuthError) as e:
        secure.exchange(wrong, Line(fresh_meter()), READ, b"\x00\x3f", sec.ECC_CTR_READ, 9)
    assert "did not verify" in str(e.value) and wrong.pending is not None
