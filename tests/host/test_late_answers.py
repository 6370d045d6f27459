# Late answers on a loaded line: a meter with the right keys whose answers come after the
# concentrator's answer window. The concentrator (smitp.concentrator, smitp.secure) talks to the
# firmware's meter node in process, on a virtual clock; a wrapper holds the node's answers back
# by a script, so that every run interleaves them the same way.
import hashlib
import itertools

import pytest

from meter import attrs as A
from meter import fwimage as F
from meter.app import security as sec
from meter.app.auth import nack_etm
from meter.link import mac
from meter.model import registers as R
from smitp.concentrator import Concentrator
from smitp.errors import NoAnswer
from smitp.medium import Medium
from smitp.network import Network, VirtualClock, in_process_meter
from smitp import secure
from smitp.secure import KeyRing, LmonMismatch, MeterSecurity

ACA = bytes.fromhex("A8040A1E8901")
K1, K2 = bytes([1]) * 16, bytes([9]) * 16


class Loaded:
    """A meter node whose answers a script holds back: entry i says after how many of the meter's
    later answers its i-th answer goes on the air (0: on time, as the node gives it; None: never).
    Answers past the script go on time. `log`: what happened to each answer."""

    def __init__(self, node, script=()):
        self.node, self.script = node, list(script)
        self.out = bytearray(len(node.out))
        self._held = []  # [answers still to come before this one goes, its bytes]
        self._due = []  # released, waiting for poll()
        self.log = []

    def on_phy(self, buf, n, now_ms=0, quality=None):
        k = self.node.on_phy(buf, n, now_ms, quality)
        if not k:
            return 0
        answer = bytes(self.node.out[:k])
        for h in self._held:
            h[0] -= 1
        self._due += [h[1] for h in self._held if h[0] <= 0]  # before this answer, on the air first
        self._held = [h for h in self._held if h[0] > 0]
        later = self.script.pop(0) if self.script else 0
        self.log.append(later)
        if later is None:
            return 0
        if later:
            self._held.append([later, answer])
            return 0
        if self._due:  # this one after the released ones
            self._due.append(answer)
            return 0
        self.out[:k] = answer
        return k

    def poll(self, now_ms):
        if self._due:
            frame = self._due.pop(0)
            self.out[:len(frame)] = frame
            return len(frame)
        n = self.node.poll(now_ms)
        self.out[:n] = self.node.out[:n]
        return n

    def next_timeout(self, now_ms):
        return 0 if self._due else self.node.next_timeout(now_ms)


def line(script=(), keys=(K1, K2)):
    """A concentrator holding `keys` for one meter (provisioned with K1, K2) whose answers
    `script` holds back."""
    medium = Medium()
    for name in ("dcu", "m"):
        medium.add_node(name)
    medium.add_link("dcu", "m")
    net = Network(medium, VirtualClock())
    port = net.add_concentrator("dcu")
    meter = Loaded(in_process_meter(ACA, "SN1", net.clock, (K1, K2)), script)
    net.add_meter("m", meter)
    ring = KeyRing.from_dict({ACA.hex(): {"k1": keys[0].hex(), "k2": keys[1].hex()}})
    return Concentrator(port, keyring=ring), meter


def read(conc, reg=R.SERIAL):
    return conc.read(ACA, [reg], auth=True)[reg].rstrip(b"\0")


def test_a_stale_answer_then_silence_is_silence_not_a_failed_verification():
    # 1st read: its answer comes in the second window (once the retry reached the meter), the
    # meter's cached answer to that retry one answer later: in the next exchange's window.
    # 2nd read: the loaded meter answers none of its three sendings in time.
    conc, meter = line([1, 1, 3, 3, 3])
    assert read(conc) == b"SN1"
    s = conc.keyring[ACA]
    with pytest.raises(NoAnswer) as e:
        read(conc, R.FIRMWARE_ID)
    assert "1 late answer" in str(e.value), str(e.value)
    assert s.pending is not None and s.stats["rejected"] == 0 and s.stats["late"] == 1
    # asked again, as it went: its answers come now, the first one verifies
    assert read(conc, R.FIRMWARE_ID).startswith(b"smitp-meter")
    assert s.pending is None and meter.log == [1, 1, 3, 3, 3, 0]


def test_a_nack_10_to_a_retry_comes_after_the_read_was_sealed_again():
    # A run whose key file missed the meter's LMON: the read's first sending gets a NACK-10 in the
    # second window, and the read is sealed again under the meter's LMON + 1; the NACK-10 to the
    # retry of the first sealing comes in that window, and the loaded meter answers nothing else
    # in time.
    conc, meter = line([0, 0, 0, 1, 1, 3, 3, 3])
    for _ in range(3):
        read(conc)
    conc.keyring = KeyRing.from_dict({ACA.hex(): {"k1": K1.hex(), "k2": K2.hex()}})  # LMON 0
    s = conc.keyring[ACA]
    with pytest.raises(NoAnswer) as e:
        read(conc)
    assert "1 late answer" in str(e.value) and s.stats["resyncs"] == 1 and s.lmon == 3, str(e.value)
    assert read(conc) == b"SN1" and s.lmon == 4 and s.stats["rejected"] == 0


def test_a_late_challenge_response_in_the_window_of_the_write_it_preceded():
    # A write is preceded by a challenge: the CHL.RESP to its first sending comes once the
    # second went (the same N), the one to the second in the write's window; the write's answers
    # come too late, then it goes again as it went and takes its cached answer.
    conc, meter = line([1, 1, 3, 3, 3])
    label = b"FEEDER-7".ljust(16, b"\0")
    with pytest.raises(NoAnswer) as e:
        conc.write(ACA, {R.POINT_LABEL: label}, auth=True)
    s = conc.keyring[ACA]
    assert "1 late answer" in str(e.value) and "stays pending" in str(e.value), str(e.value)
    assert s.stats["challenges"] == 1 and s.stats["rejected"] == 0
    conc.write(ACA, {R.POINT_LABEL: label}, auth=True)
    assert s.pending is None and conc.read(ACA, [R.POINT_LABEL])[R.POINT_LABEL] == label
    assert meter.node.secure.stats["accepted"] == 1 and meter.node.secure.stats["repeats"] == 3


def test_a_late_plain_answer_in_an_authenticated_exchange_tells_nothing_of_the_keys():
    # The state read of a campaign is plain: its answer to the retry comes in the window of the
    # authenticated request that follows, which the loaded meter answers too late.
    conc, meter = line([1, 1, 3, 3, 3])
    assert conc.read(ACA, [R.SERIAL])[R.SERIAL].rstrip(b"\0") == b"SN1"
    s = conc.keyring[ACA]
    with pytest.raises(NoAnswer):
        read(conc)
    assert s.stats["rejected"] == 0 and s.stats["late"] == 0 and conc.stats["late_answers"] == 1
    assert read(conc) == b"SN1" and s.pending is None


def test_wrong_keys_are_still_reported_as_such_after_three_sendings():
    conc, _meter = line(keys=(K1, bytes(16)))
    with pytest.raises(sec.AuthError) as e:
        read(conc)
    assert "\n" not in str(e.value) and "answer(s) from meter A8040A1E8901 did not verify" in str(e.value)
    assert conc.stats["requests"] == 1 and conc.stats["retries"] == 2  # three sendings, then done
    assert conc.keyring[ACA].stats["late"] == 0


# ---- the session's rules, against answers sealed by the firmware's codec -------------------
def answer(lsdu, mon, ecc=sec.ECC_CTR_READ, keys=(K1, K2), data=b"\x00\x10SN1"):
    """The meter's answer (READ.RESP) to a request sealed under `mon`."""
    return sec.seal_msg(sec.Keys(*keys), ACA, sec.auth_attr(A.READ_RESP), data, mon, ecc, 0)


def nack10(lsdu, lmon, keys=(K1, K2)):
    return sec.seal_auth_nack(sec.Keys(*keys), ACA, lmon, nack_etm(lsdu))


def test_answers_to_earlier_sendings_are_late_never_taken():
    s = MeterSecurity(ACA, K1, K2, 10)
    first = s.protect(A.READ_REQ, b"\x00\x10", sec.ECC_CTR_READ, 0)
    s.unprotect(answer(first, 11))
    second = s.protect(A.READ_REQ, b"\x00\x11", sec.ECC_CTR_READ, 0)
    old = answer(first, 11)  # the cached answer to a retry of the first: byte for byte the first answer
    assert not s.answers(old, sec.ECC_CTR_READ) and (s.late, s.unverified) == (1, 0)
    assert not s.answers(nack10(first, 11), sec.ECC_CHALLENGE) and s.late == 2  # a NACK-10 to the first
    with pytest.raises(sec.AuthError):
        s.unprotect(old)  # late is not taken: the pending request stays
    assert s.pending == second and s.lmon == 11
    forged = answer(first, 11, keys=(K1, bytes(16)))
    assert not s.answers(forged, sec.ECC_CTR_READ) and (s.late, s.unverified) == (2, 1)
    assert s.answers(answer(second, 12), sec.ECC_CTR_READ) and s.unprotect(answer(second, 12))[0] == A.READ_RESP


def test_a_late_answer_to_a_request_sealed_again_after_a_nack_10():
    # A read whose MON the meter used (its LMON says so) is sealed again under the next MON; the
    # answer to the first sealing, late, verifies under the old MON only.
    s = MeterSecurity(ACA, K1, K2, 10)
    first = s.protect(A.READ_REQ, b"\x00\x10", sec.ECC_CTR_READ, 0)
    with pytest.raises(LmonMismatch):
        s.unprotect(nack10(first, 11))
    again = s.protect(A.READ_REQ, b"\x00\x10", sec.ECC_CTR_READ, 0)
    assert again != first
    assert not s.answers(answer(first, 11), sec.ECC_CTR_READ) and (s.late, s.unverified) == (1, 0)
    assert not s.answers(nack10(first, 11), sec.ECC_CHALLENGE) and s.late == 2  # the retry's NACK-10
    assert s.answers(answer(again, 12), sec.ECC_CTR_READ)


def test_a_late_challenge_response_and_the_memory_it_is_told_by():
    s = MeterSecurity(ACA, K1, K2, 10)
    old = s.challenge()[sec.CHL_T_LEN:]
    s.challenge()
    resp = sec.seal_challenge_resp(sec.Keys(K1, K2), ACA, 10, old)
    assert not s.answers(resp, sec.ECC_CHALLENGE) and (s.late, s.unverified) == (1, 0)
    with pytest.raises(sec.AuthError):
        s.accept_challenge(resp)
    sent = []
    for i in range(secure.EARLIER + 1):
        sent.append(s.protect(A.READ_REQ, bytes((0, i)), sec.ECC_CTR_READ, 0))
        s.unprotect(answer(sent[-1], s.cmon))
    s.protect(A.READ_REQ, b"\x00\x3f", sec.ECC_CTR_READ, 0)
    assert not s.answers(answer(sent[1], 12), sec.ECC_CTR_READ) and s.late == 2  # EARLIER sendings back
    assert not s.answers(answer(sent[0], 11), sec.ECC_CTR_READ) and s.unverified == 1  # older: not told


def uplink(lsdu, ecc=sec.ECC_CTR_READ):
    """The PHY payload of an answer from the meter, as a stranger may send it."""
    out = bytearray(mac.MAX_FRAME)
    return bytes(out[:mac.encode(out, mac.aca_to_air(ACA), b"", mac.DISC_S, True, 1, False, 0, ecc, lsdu)])


def test_a_stranger_flooding_answers_gets_an_authentication_failure_in_bounded_time():
    conc, meter = line([None] * 3)  # the meter's own answers never come
    forged = (answer(b"", mon, keys=(K1, bytes(16))) for mon in itertools.count())
    port, heard = conc.port, []
    recv = port.recv

    def noisy(timeout_s):  # a forged answer every 50 ms
        got = recv(min(timeout_s, 0.05))
        if got is None and timeout_s > 0.05:
            heard.append(next(forged))
            return uplink(heard[-1])
        return got

    port.recv = noisy
    with pytest.raises(sec.AuthError) as e:
        read(conc)
    assert "did not verify" in str(e.value) and len(heard) > 20
    assert conc.stats["requests"] == 1 and conc.stats["retries"] == 2  # three windows, then done
    assert meter.log == [None] * 3


# ---- the download campaign (smitp.download) ---------------------------------------------------
def small_image():
    """An image of made-up modules, sealed under K1: the campaign is about the exchanges."""
    rnd = hashlib.sha256(b"late answers").digest() * 40
    body = F.pack_body([("meter/__init__.mpy", rnd[:300]), ("meter/app/node.mpy", rnd[300:1000])])
    h = F.Header(64, F.version_number("0.2.0"), len(body), hashlib.sha256(body).digest(), bytes(16))
    h.seal = F.make_seal(K1, h)
    return h.pack() + body


def test_a_missing_query_lost_in_late_answers_gets_another_pass():
    # The meter's answers: the CHL.RESP, the OPEN's in the second window, the cached copy of it
    # in the first MISSING query's window; then a meter too loaded to answer any sending of that
    # query in time (four tries of three sendings). Silence: the campaign comes back to the meter.
    from smitp.download import Campaign
    from smitp.fleet_download import engine_of

    conc, meter = line([0, 1, 1] + [None] * 12)
    c = Campaign(conc, small_image(), [(ACA, ())])
    c.open_all()
    c.broadcast()
    c.fill_gaps()
    r = c.result[ACA.hex().upper()]
    assert r["outcome"] == "refused" and "no answer" in r["reason"] and ACA.hex().upper() in c.transient, r
    assert "did not verify" not in r["reason"] and meter.log == [0, 1, 1] + [None] * 12
    c.verify_and_activate()
    c.retry_silent()  # the query pending goes first, as it went, then the second pass
    assert c.result[ACA.hex().upper()] == {"aca": ACA.hex().upper(), "passes": 2}
    assert engine_of(meter.node).restart_due
    assert conc.keyring[ACA].stats["rejected"] == 0 and conc.keyring[ACA].stats["late"] >= 1


def test_an_authenticated_nack_opens_whatever_ecc_came_with_it():
    # A retry of a refused request, answered from the cache of firmware that sent the repeat with
    # the request's ECC: the NACK is what the layout says (ECB, read key), and verifies as such.
    s = MeterSecurity(ACA, K1, K2, 10)
    sent = s.protect(A.WRITE_REQ, b"\x00\x3f" + bytes(4), sec.ECC_CTR_WRITE, 0)
    nack = sec.seal_auth_nack(sec.Keys(K1, K2), ACA, 11, nack_etm(sent), A.NACK_ACCESS_DENIED)
    assert s.answers(nack, sec.ECC_CTR_WRITE)
    assert s.unprotect(nack, sec.ECC_CTR_WRITE) == (A.NACK_A, bytes((A.NACK_ACCESS_DENIED,)))
    assert s.lmon == 11 and s.pending is None
