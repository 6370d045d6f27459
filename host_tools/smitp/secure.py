"""The concentrator side of the application-layer security: per-meter keys, the CMON, and the
rules every authenticated exchange follows (docs/security.md, section 7).

A MeterSecurity follows one meter's LMON as the concentrator knows it. A protected request
goes out with CMON = LMON + 1; the answer is verified with that same MON, and only a verified
answer moves LMON to CMON. A meter that disagrees answers NACK-10 with its own LMON, or tells
it in a CHL.RESP; either is verified before it is adopted.

Never two different requests under one MON (an attacker holding both could pick which one
runs, and CTR would reuse its keystream), hence the rules:
- a sealed request stays pending until it is settled: by a verified answer, or by a verified
  LMON that tells what became of it. Until then every retry, and the next request, first sends
  its very bytes again (the meter answers a byte-identical repeat of its last accepted request
  from its cache);
- verified LMON >= its MON: the meter used that MON. A request without effect
  (client.RERUNNABLE) is sealed again under the new LMON; one with effect is sent once more
  for the cached answer, else reported as OutcomeUnknown, never sealed again;
- verified LMON = its MON - 1: the meter never took it; the same bytes go again;
- nothing is ever sealed under a MON at or below the highest one sealed so far (LmonBehind).
`exchange`, `sync` and `change_keys` apply them over a link (smitp.transport.Link): the
concentrator's PLC port and the hand-held unit's optical port share this one implementation.

The codecs are the firmware's own (meter.app.security) and smitp.client's requests: one definition
of the layout on both sides. Key bytes never appear in a repr or an error message.
"""

import hashlib
import json
import os
import time
from collections import deque

from meter import attrs as A
from meter.app import keychange as KC
from meter.app import security as sec
from meter.app.auth import nack_etm
from meter.app.security import Keys

from meter.errors import DecodeError, SmitpError
from smitp import client
from smitp.aca import aca_text, parse_aca
from smitp.errors import Nack, PeerError, UsageError

_LMON_MAX = (1 << 64) - 1
ATTEMPTS = 3  # verified NACK-10s one request may meet before the exchange gives up
CHALLENGE_TRIES = 3
BACKOFF_S = 2.5  # a meter answers about one CHL.RESP or NACK-10 per 2 s once its burst is spent
# Earlier sendings (sealed requests, challenges) whose late answers are told from answers that do
# not verify: a loaded meter's answers to the last few exchanges may still be on their way.
EARLIER = 4


class SecureError(UsageError):
    """Bad keys, a bad key file, or a session used against its rules."""


class ExchangeError(PeerError):
    """What an exchange with a meter ended in (as opposed to bad keys or a bad key file)."""


class LmonMismatch(PeerError):
    """A verified NACK-10; its LMON is ours now. If `pending` is still set, send it again as it
    is; else protect the request again."""

    def __init__(self, aca, lmon):
        super().__init__("meter %s rejected the MON; resynchronised to its LMON %d" % (aca_text(aca), lmon))
        self.lmon = lmon


class OutcomeUnknown(ExchangeError):
    """A request with effect whose MON the meter used, and whose answer never came: it may have
    run. Never sealed again: the user checks the meter."""


class LmonBehind(ExchangeError):
    """The meter's LMON is below a MON already sealed: sealing under LMON + 1 would reuse it."""

    def __init__(self, aca, lmon, sealed):
        super().__init__("meter %s: its LMON %d is behind MON %d, which this concentrator already sealed; "
                         "refusing to seal under a used MON" % (aca_text(aca), lmon, sealed))


class Refused(ExchangeError):
    """A plain NACK to an authenticated request. Anybody may send one: nothing is settled."""

    def __init__(self, aca, code):
        why = {A.NACK_AUTH: "no keys provisioned, or refused",
               A.NACK_LMON_EXHAUSTED: "its LMON is used up: plain requests only"}.get(code)
        super().__init__("meter %s refused authentication: plain NACK %d (%s)"
                         % (aca_text(aca), code, why or A.NACK_NAMES.get(code, "?")))
        self.code = code


class KeyChangeError(ExchangeError):
    pass


def _aca(aca):
    return parse_aca(aca) if isinstance(aca, str) else bytes(aca)


def _key(value, name):
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    except ValueError:
        raise SecureError("%s is not hexadecimal" % name) from None
    if len(key) != 16:
        raise SecureError("%s must be 16 bytes (32 hex digits)" % name)
    return key


def _lmon(value, name="LMON"):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _LMON_MAX:
        raise SecureError("%s must be an integer in 0 .. 2**64 - 1" % name)
    return value


def _name(attr):
    return A.NAMES.get(attr, "ATTR %d" % attr)


def _digest(attr, apdu, ecc):
    # Identifies a request's content (not its MON or DATE-TIME) across runs.
    return hashlib.sha256(bytes((attr, ecc)) + bytes(apdu)).hexdigest()[:32]


class _Sent:
    """A sealed request until it is settled. keys: the pair that sealed it; new_keys: that pair
    is a key change's (its activate), then keys is None when restored from a file, until the key
    change names its pair again."""

    def __init__(self, lsdu, mon, ecc, digest, answer_len, keys, new_keys=False, accepted=False):
        self.lsdu, self.mon, self.ecc, self.digest = lsdu, mon, ecc, digest
        self.attr = sec.plain_attr(lsdu[0])
        self.answer_len, self.keys, self.new_keys, self.accepted = answer_len, keys, new_keys, accepted

    @property
    def effect(self):
        return self.attr not in client.RERUNNABLE


class MeterSecurity:
    """Keys and LMON of one meter, the request sealed for it and not settled yet, and the highest
    MON ever sealed for it.

    lmon: the meter's LMON as last known; sealed: the highest MON sealed so far (default: lmon);
    pending: a pending request as state() gave it. All three are kept between runs (state()).
    """

    def __init__(self, aca, k1, k2, lmon=0, sealed=None, pending=None):
        self.aca = _aca(aca)
        if len(self.aca) != 6:
            raise SecureError("ACA must be 6 bytes")
        self._keys = Keys(_key(k1, "k1"), _key(k2, "k2"))
        self._next = None  # the pair of a key change, until the meter uses it
        self.lmon = _lmon(lmon)
        self.sealed = self.lmon if sealed is None else _lmon(sealed, "sealed")
        self.synced = False  # the LMON was verified since this object exists
        self._sent = None if pending is None else self._restore(pending)
        self._earlier: deque[_Sent] = deque(maxlen=EARLIER + 1)  # the last sealed requests, the pending one too
        self._nonces: deque[bytes] = deque(maxlen=EARLIER + 1)  # the last challenges' N, the awaited one too
        if self._sent is not None:
            self.sealed = max(self.sealed, self._sent.mon)
            self._earlier.append(self._sent)
        self._nonce = None  # N of the challenge awaiting its CHL.RESP
        # answers() turned down since the caller last reset them: answers that verify as late
        # answers to an earlier sending (the keys are right), and answers that do not verify
        self.late = self.unverified = 0
        self.stats = {"protected": 0, "accepted": 0, "rejected": 0, "resyncs": 0, "challenges": 0, "key_changes": 0,
                      "late": 0}

    def __repr__(self):
        return "MeterSecurity(%s, lmon=%d)" % (aca_text(self.aca), self.lmon)

    def write_key(self):
        """K1: the software download seals an image's header with it (smitp/download.py)."""
        return self._keys.write

    @property
    def cmon(self):
        """The MON of the next protected request."""
        return self.lmon + 1

    @property
    def pending(self):
        """The sealed request not settled yet (send these same bytes again), or None."""
        return None if self._sent is None else self._sent.lsdu

    @property
    def changing(self):
        """A key change waits for the meter to use its pair."""
        return self._next is not None

    def matches(self, attr_plain, apdu, ecc):
        """Is the pending request this one (same service, APDU and ECC)?"""
        return self._sent is not None and self._sent.digest == _digest(attr_plain, apdu, ecc)

    def protect(self, attr_plain, apdu, ecc, datetime, answer_len=sec.LSDU_MAX, keys=None):
        """LSDU on air for the authenticated variant of attr_plain with APDU, MON = CMON, ECB DATA
        padded; it stays `pending` until settled. answer_len: the longest answer on air (kept to
        send it again); keys: the pair of a key change (its activate), else the current one.

        Refuses while another request is pending (send that one first), and under a MON at or
        below `sealed` (LmonBehind).
        """
        if self._sent is not None:
            raise SecureError("meter %s: the request sealed under MON %d is not settled; send it first"
                              % (aca_text(self.aca), self._sent.mon))
        if self.lmon >= _LMON_MAX:
            raise SecureError("the meter's LMON is exhausted")
        if self.cmon <= self.sealed:
            raise LmonBehind(self.aca, self.lmon, self.sealed)
        n = 1 + len(apdu)
        if client.sealed_len(n, ecc) > sec.LSDU_MAX:
            raise SecureError("a request of %d bytes does not fit an authenticated LSDU with ECC %d" % (n, ecc))
        keys = keys or self._keys
        mon = self.cmon
        lsdu = sec.seal_msg(keys, self.aca, sec.auth_attr(attr_plain), apdu, mon, ecc, datetime)
        self.sealed = mon
        self._sent = _Sent(lsdu, mon, ecc, _digest(attr_plain, apdu, ecc), answer_len, keys, keys is not self._keys)
        self._earlier.append(self._sent)
        self.stats["protected"] += 1
        return lsdu

    def unprotect(self, lsdu, ecc=None):
        """(plain ATTR, DATA) of the meter's answer to the pending request, verified with its MON.

        On success LMON := CMON and the request is settled. ecc: the answer's ECC (default: the
        request's, which the meter mirrors); an authenticated NACK is always opened as the layout
        has it, ECB under the read key, whatever ECC came with it (a repeat from the cache of
        earlier firmware came with the request's). A NACK-10 is
        verified, its LMON adopted by the rules (which may raise OutcomeUnknown or LmonBehind),
        then LmonMismatch raised. Other failures raise AuthError / SecureError, change nothing.
        """
        p = self._need_sent()
        lsdu = bytes(lsdu)
        attr = lsdu[0] if lsdu else 0
        if not sec.is_authenticated(attr) or attr == sec.ATTR_CHL_RESP:
            raise SecureError("answer ATTR %d is not an authenticated answer" % attr)
        if client.is_nack10(lsdu):
            raise LmonMismatch(self.aca, self.resync_from(lsdu))
        if attr in client.AUTH_NACKS:  # a service refusal: PAR1 under the meter's read key, no padding
            data, keys = self._open(lsdu, p.mon, sec.ECC_CHALLENGE, nack_etm(p.lsdu))
        else:
            ecc = p.ecc if ecc is None else ecc
            data, keys = self._open(lsdu, p.mon, ecc, None, (p.keys,))
        if keys is self._next:
            self._switch()
        self._sent = None
        self.lmon = p.mon
        self.synced = True
        self.stats["accepted"] += 1
        return sec.plain_attr(attr), data

    def resync_from(self, lsdu):
        """Adopt the LMON of an authenticated NACK-10 (245 / 239) after verifying its TMAC, and
        settle the pending request by it (the rules). Returns the LMON.

        The TMAC is checked with the LMON the NACK carries (ECB, a read key) and covers the Etm*
        of our pending request (the meter's rule, meter.app.auth.nack_etm), so an old NACK does
        not verify.
        """
        p = self._need_sent()
        lsdu = bytes(lsdu)
        if not client.is_nack10(lsdu):
            raise SecureError("not an authenticated NACK with PAR1 10")
        lmon, keys = self._open(lsdu, None, sec.ECC_CHALLENGE, nack_etm(p.lsdu))
        self.stats["resyncs"] += 1
        self._learn(lmon, keys)
        return lmon

    def challenge(self, t=b"\x00\x00"):
        """DATA of a CHL.REQ (ATTR 112): the 2-byte T field, then a fresh 16-byte N."""
        if len(t) != sec.CHL_T_LEN:
            raise SecureError("T must be 2 bytes")
        self._nonce = os.urandom(sec.CHL_N_LEN)
        self._nonces.append(self._nonce)
        return bytes(t) + self._nonce

    def accept_challenge(self, lsdu):
        """Verify a CHL.RESP (113) against our last challenge, adopt its LMON and settle the
        pending request by it; returns the LMON. During a key change a CHL.RESP under the new
        read key shows the meter uses the new pair: so does the session from then on.

        Each N answers once: a CHL.RESP replayed later no longer verifies.
        """
        if self._nonce is None:
            raise SecureError("no challenge is awaiting an answer")
        lsdu = bytes(lsdu)
        if not lsdu or lsdu[0] != sec.ATTR_CHL_RESP:
            raise SecureError("not a CHL.RESP")
        lmon, keys = self._open(lsdu, None, sec.ECC_CHALLENGE, self._nonce)
        self._nonce = None
        self.stats["challenges"] += 1
        self._learn(lmon, keys)
        return lmon

    def expect_keys(self, k1, k2):
        """Get ready for a key change to (k1, k2), both new; returns them as bytes."""
        k1, k2 = _key(k1, "new k1"), _key(k2, "new k2")
        if KC.kcv(k1) == KC.kcv(self._keys.write) or KC.kcv(k2) == KC.kcv(self._keys.read):
            raise KeyChangeError("a key change replaces both keys: the new pair repeats a current key")
        if self._next is not None and _kcvs(self._next) == (KC.kcv(k1), KC.kcv(k2)):
            return k1, k2  # this change again: its pending activate keeps its pair
        if self._next is not None and self._sent is not None and self._sent.keys is self._next:
            raise KeyChangeError("meter %s: the activate of another key change is unsettled" % aca_text(self.aca))
        self._next = Keys(k1, k2)
        if self._sent is not None and self._sent.keys is None:
            self._sent.keys = self._next  # the activate of an interrupted change, this very pair
        return k1, k2

    def answers(self, lsdu, ecc):
        """Does lsdu (with its ECC) verify as the answer to what we wait for: the pending request
        (its answer, NACK-10 or service NACK) or the challenge (its CHL.RESP)? Adopts nothing: a
        late answer to an earlier sending fails and is not taken for this one; it counts in
        `late` when it verifies as the answer to one of the last EARLIER sendings, else in
        `unverified`. A plain NACK cannot be checked: it passes (and settles nothing). Other
        plain answers answer plain requests (late) and tell nothing of the keys: not counted."""
        lsdu, p = bytes(lsdu), self._sent
        if not lsdu or lsdu[0] == A.NACK_A:
            return bool(lsdu)
        if not sec.is_authenticated(lsdu[0]):
            return False
        if self._verifies(lsdu, ecc, p, self._nonce):
            return True
        if (any(self._verifies(lsdu, ecc, q, None) for q in self._earlier if q is not p)
                or any(self._verifies(lsdu, ecc, None, n) for n in self._nonces if n is not self._nonce)):
            self.late += 1
            self.stats["late"] += 1
        else:
            self.unverified += 1
        return False

    def _verifies(self, lsdu, ecc, sent, nonce):
        # Is lsdu the answer to `sent` (a _Sent) or the CHL.RESP to `nonce`? Counts nothing.
        try:
            if lsdu[0] == sec.ATTR_CHL_RESP:
                if nonce is None:
                    return False
                self._open(lsdu, None, sec.ECC_CHALLENGE, nonce, count=False)
            elif sent is None:
                return False
            elif lsdu[0] in client.AUTH_NACKS:
                mon = None if len(lsdu) > 1 and lsdu[1] == sec.NACK_AUTH else sent.mon
                self._open(lsdu, mon, sec.ECC_CHALLENGE, nack_etm(sent.lsdu), count=False)
            elif sent.keys is None:  # a key change's activate whose pair is not named yet
                return False
            else:
                self._open(lsdu, sent.mon, sent.ecc if ecc is None else ecc, None, (sent.keys,), count=False)
        except (sec.AuthError, DecodeError, ValueError):
            return False
        return True

    def state(self):
        """What to keep between runs, no key in it: lmon, sealed and the pending request."""
        st = {"lmon": self.lmon, "sealed": self.sealed}
        p = self._sent
        if p is not None:
            st["pending"] = {"lsdu": p.lsdu.hex(), "mon": p.mon, "ecc": p.ecc, "request": p.digest,
                             "answer": p.answer_len, "accepted": p.accepted, "new_keys": p.new_keys}
        return st

    # ---- inside
    def _need_sent(self):
        if self._sent is None:
            raise SecureError("no protected request is awaiting an answer")
        return self._sent

    def _open(self, lsdu, mon, ecc, covered, keysets=None, count=True):
        # (DATA or carried LMON, the pair that verified it); covered None: an ordinary message,
        # its ECB padding taken off. NACK-10 and CHL.RESP come under the meter's read key, which
        # a key change may have replaced: every pair we know is tried.
        if keysets is None:
            keysets = [k for k in (self._keys, self._next) if k is not None]
        err = None
        for keys in keysets:
            try:
                if covered is None:
                    data, trailer = sec.open_msg(keys, self.aca, lsdu, mon, ecc)
                else:
                    data, trailer = sec.open_(keys, self.aca, lsdu, mon, ecc, covered)
            except sec.AuthError as e:
                err = e
                continue
            return (trailer if mon is None else data), keys
        self.stats["rejected"] += count
        if err is None:
            raise SecureError("no key pair to open the answer with")
        raise err

    def _learn(self, lmon, keys):
        """Adopt a verified LMON (verified under `keys`) and settle the pending request by it."""
        if keys is self._next:
            self._switch()
        self.lmon = lmon
        self.synced = True
        p = self._sent
        if p is None:
            return
        if lmon >= p.mon:  # the meter used that MON
            if not p.effect:
                self._sent = None  # run it again under a new MON
            elif p.accepted:
                self._sent = None
                raise OutcomeUnknown(_lost(self.aca, p, lmon))
            else:
                p.accepted = True  # one more time: its cached answer may come
        elif lmon + 1 < p.mon:
            raise LmonBehind(self.aca, lmon, self.sealed)

    def _switch(self):
        # The meter uses the key change's pair. Its activate, if pending, is what it took.
        if self._sent is not None and self._sent.new_keys:
            self._sent = None
        new = self._next
        assert new is not None  # called when an answer verified under it
        self._keys, self._next = new, None
        self.stats["key_changes"] += 1

    def _restore(self, st):
        try:
            lsdu = bytes.fromhex(st["lsdu"])
            new_keys = bool(st.get("new_keys"))
            sent = _Sent(lsdu, _lmon(st["mon"]), int(st["ecc"]), str(st["request"]), int(st["answer"]),
                         None if new_keys else self._keys, new_keys, bool(st.get("accepted")))
        except (KeyError, TypeError, ValueError, IndexError):
            raise SecureError("pending: not a request as saved") from None
        if not sec.is_authenticated(lsdu[0]):
            raise SecureError("pending: not a request as saved")
        return sent


def _kcvs(keys):
    return KC.kcv(keys.write), KC.kcv(keys.read)


def _lost(aca, p, lmon):
    return ("meter %s: outcome unknown: the meter used MON %d (its LMON is %d), the %s sealed under it may "
            "have been executed and its answer was lost; check the meter before repeating it"
            % (aca_text(aca), p.mon, lmon, _name(p.attr)))


# ---- the rules over a link (smitp.transport.Link) ------------------------------------------
def counted(stats, meter, run, *args):
    """run(meter, *args), adding the NACK-10 resynchronisations it met to stats["resyncs"]."""
    before = meter.stats["resyncs"]
    try:
        return run(meter, *args)
    finally:
        stats["resyncs"] = stats.get("resyncs", 0) + meter.stats["resyncs"] - before


def _unverified(meter):
    # Silence, but answers came that did not verify: more likely our keys than the line, unless
    # late answers to earlier sendings verified meanwhile (our keys open the meter's answers).
    if meter.unverified:
        meter.stats["rejected"] += meter.unverified
        if not meter.late:
            raise sec.AuthError("tmac", "%d answer(s) from meter %s did not verify: wrong keys, or late answers"
                                % (meter.unverified, aca_text(meter.aca)))


def _silence(meter, e):
    # What a NoAnswer says, with the late answers that came meanwhile (the meter is slow, not gone).
    if not meter.late:
        return str(e)
    other = "; %d other answer(s) did not verify" % meter.unverified if meter.unverified else ""
    return "%s (%d late answer(s) to earlier requests came meanwhile%s)" % (e, meter.late, other)


def _plain_nack(meter, ans):
    if ans[:1] == bytes((A.NACK_A,)):
        raise Refused(meter.aca, ans[1] if len(ans) > 1 else 0)


def exchange(meter, link, attr, apdu, ecc, answer_max, keys=None):
    """One authenticated request under the rules: the verified (plain ATTR, DATA) of its answer.
    answer_max: the longest plain answer (ATTR | DATA); keys: as MeterSecurity.protect."""
    apdu = bytes(apdu)
    if meter.matches(attr, apdu, ecc):  # a retry of the pending request: its answer is this one's
        return _settle(meter, link, apdu)
    if meter.pending is not None:
        _settle(meter, link, None)  # the earlier request first, as it went
    if attr not in client.RERUNNABLE and not meter.synced:
        sync(meter, link)  # else a stale LMON would pass for an answer lost
    answer_len = min(sec.LSDU_MAX, client.sealed_len(answer_max, ecc))
    meter.protect(attr, apdu, ecc, int(time.time()), answer_len, keys)
    return _settle(meter, link, apdu)


def _settle(meter, link, apdu):
    """Send the pending request as it is until it is settled: its verified answer, or None for an
    earlier request that a NACK-10 settled. apdu: its content, sealed again under the new LMON
    when it has no effect and the meter used its MON (None: an earlier request, dropped then)."""
    for _ in range(ATTEMPTS):
        p = meter._sent
        if p.keys is None:
            raise KeyChangeError("meter %s: a key change is unsettled; run it again with the same key files"
                                 % aca_text(meter.aca))
        meter.late = meter.unverified = 0
        try:
            ecc, ans = link.exchange(p.lsdu, p.ecc, p.answer_len, accept=meter.answers)
        except link.NoAnswer as e:
            if p.accepted:
                meter._sent = None
                raise OutcomeUnknown(_lost(meter.aca, p, meter.lmon)) from None
            _unverified(meter)
            if p.effect:
                raise link.NoAnswer("%s; the %s may have run: it stays pending and goes again, as it is, before "
                                    "the next authenticated request" % (_silence(meter, e), _name(p.attr))) from None
            if meter.late:
                raise link.NoAnswer(_silence(meter, e)) from None
            raise
        _plain_nack(meter, ans)
        try:
            return meter.unprotect(ans, ecc)
        except LmonMismatch:
            if meter.pending is None:
                if apdu is None:
                    return None
                meter.protect(p.attr, apdu, p.ecc, int(time.time()), p.answer_len)
    raise ExchangeError("meter %s keeps refusing authentication (MON %d stays pending)"
                      % (aca_text(meter.aca), meter._sent.mon))


def sync(meter, link):
    """CHL.REQ until a CHL.RESP verifies; returns the meter's LMON, adopted by the rules. Silence
    may be the meter's rate limit: back off before trying again (the same N, so that a late
    CHL.RESP still verifies)."""
    req = client.challenge(meter)
    meter.late = meter.unverified = 0
    for i in range(CHALLENGE_TRIES):
        if i:
            link.pause(BACKOFF_S)
        try:
            _ecc, ans = link.exchange(req.lsdu, 0, req.answer_max(False), tries=1, accept=meter.answers)
        except link.NoAnswer:
            continue
        _plain_nack(meter, ans)
        return req.parse(ans)
    _unverified(meter)
    raise link.NoAnswer(_silence(meter, "meter %s: no CHL.RESP to %d challenges" % (aca_text(meter.aca),
                                                                                   CHALLENGE_TRIES)))


def change_keys(meter, link, k1, k2):
    """KEY_CHANGE (meter/app/keychange.py): stage the pair under the current write key, then activate
    it, sealed with the new write key under the next MON. The session uses the new pair once the
    meter does. Returns how it went: "activated", "activated, answer lost" (a challenge under
    the new read key settled it) or "already in force"; raises KeyChangeError when the meter
    keeps the old pair, OutcomeUnknown when nothing tells which pair it uses."""
    k1, k2 = meter.expect_keys(k1, k2)
    if meter.pending is not None:
        _settle(meter, link, None)  # the earlier request first, an interrupted activate too
        if not meter.changing:
            return "activated"
    sync(meter, link)  # which pair the meter uses, and a fresh LMON for the stage
    if not meter.changing:
        return "already in force"
    _key_change(meter, link, client.key_change_stage(meter._keys.write, k1, k2), "stage")
    try:
        _key_change(meter, link, client.key_change_activate(k1, k2), "activate", meter._next)
        return "activated"
    except (link.NoAnswer, OutcomeUnknown):
        return _settle_activate(meter, link)


def _key_change(meter, link, req, step, keys=None):
    # A step of the key change, ACKed; keys: the new pair for the activate.
    answer = exchange(meter, link, req.attr, req.data, sec.ECC_ECB_WRITE, req.answer_max(True), keys)
    assert answer is not None  # None only for a request sent again without its content
    attr, data = answer
    try:
        req.parse(bytes((attr,)) + data)
    except (Nack, DecodeError) as e:
        why = str(e) if isinstance(e, Nack) else "answer %s" % _name(attr)
        raise KeyChangeError("meter %s refused the key change's %s: %s" % (aca_text(meter.aca), step, why)) from None


def _settle_activate(meter, link):
    # The activate's answer was lost: a CHL.RESP verifies under the new read key or the old one.
    try:
        sync(meter, link)
        if not meter.changing:
            return "activated, answer lost"
        p = meter._sent
        if p is not None and not p.accepted:  # it never arrived: again, as it is
            _settle(meter, link, None)
    except link.NoAnswer:
        raise OutcomeUnknown("meter %s: key change outcome unknown: no answer to the activate nor to a "
                             "challenge; run it again with the same key files" % aca_text(meter.aca)) from None
    if not meter.changing:
        return "activated"
    if meter.pending is not None and meter._sent.new_keys and meter._sent.accepted:
        meter._sent = None  # the meter used its MON and kept the old pair: this activate is dead
    raise KeyChangeError("meter %s: the activate did not take effect; the meter still uses the current keys"
                         % aca_text(meter.aca))


class KeyRing:
    """MeterSecurity objects by ACA, loaded from a JSON file.

    {"A8040A1E8901": {"k1": "<32 hex digits>", "k2": "<32 hex digits>", "lmon": 0}, ...}
    ("lmon" optional; save() adds "sealed" and "pending", MeterSecurity.state()). Keep the file
    readable by the concentrator's user only.
    """

    def __init__(self):
        self._meters = {}

    MAX_FILE_BYTES = 16 << 20  # a large fleet's keys, not an endless stream

    @classmethod
    def load(cls, path):
        """The ring of a key file. SecureError says what is wrong: the file, the
        meter, the field; never a key's value."""
        data = cls._read_json(path)
        if not isinstance(data, dict) or not data:
            raise SecureError('key file %s: expected {"<ACA>": {"k1": "<32 hex>", "k2": "<32 hex>", "lmon": n}, ...}'
                              % path)
        for text, entry in data.items():
            cls._check_entry(text, entry)
        ring = cls.from_dict(data)  # the values: ACA, key lengths, LMON range
        if len(ring) != len(data):
            raise SecureError("key file %s: a meter appears twice" % path)
        return ring

    @classmethod
    def _read_json(cls, path):
        if os.path.isdir(path):
            raise SecureError("key file %s is a directory" % path)
        if os.path.exists(path) and not os.path.isfile(path):
            raise SecureError("key file %s is not a regular file" % path)  # a device or a pipe would never end
        try:
            with open(path, "rb") as f:
                raw = f.read(cls.MAX_FILE_BYTES + 1)
        except OSError as e:
            raise SecureError("key file %s: %s" % (path, e.strerror or e)) from None
        if len(raw) > cls.MAX_FILE_BYTES:
            raise SecureError("key file %s is larger than %d MiB" % (path, cls.MAX_FILE_BYTES >> 20))
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:  # its message would quote the file's bytes
            raise SecureError("key file %s is not UTF-8 text" % path) from None
        except json.JSONDecodeError as e:
            raise SecureError("key file %s is not valid JSON (%s, line %d column %d)"
                              % (path, e.msg, e.lineno, e.colno)) from None
        except (ValueError, RecursionError):
            raise SecureError("key file %s is not valid JSON (a number too long or nesting too deep)" % path) from None

    @staticmethod
    def _check_entry(text, entry):
        """The types of one entry, which from_dict takes for granted."""
        try:
            where = "key file, meter %s" % aca_text(parse_aca(text))
        except SmitpError as e:
            raise SecureError("key file: %s" % e) from None
        if not isinstance(entry, dict):
            raise SecureError('%s: expected {"k1": "<32 hex>", "k2": "<32 hex>", "lmon": n}' % where)
        for name in ("k1", "k2"):
            if not isinstance(entry.get(name), str):
                raise SecureError("%s: %s must be a string of 32 hex digits" % (where, name))

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise SecureError("key file: expected an object of ACA -> keys")
        ring = cls()
        for text, entry in data.items():
            if not isinstance(entry, dict) or "k1" not in entry or "k2" not in entry:
                raise SecureError("key file, meter %s: needs k1 and k2" % text)
            try:
                ring.add(text, entry["k1"], entry["k2"], entry.get("lmon", 0), entry.get("sealed"),
                         entry.get("pending"))
            except SmitpError as e:  # names the field, never its value
                raise SecureError("key file, meter %s: %s" % (text, e)) from None
        return ring

    def add(self, aca, k1, k2, lmon=0, sealed=None, pending=None):
        meter = MeterSecurity(aca, k1, k2, lmon, sealed, pending)
        self._meters[aca_text(meter.aca)] = meter
        return meter

    def get(self, aca):
        key = aca_text(_aca(aca))
        try:
            return self._meters[key]
        except KeyError:
            raise SecureError("no keys for meter %s" % key) from None

    __getitem__ = get

    def __contains__(self, aca):
        return aca_text(_aca(aca)) in self._meters

    def __len__(self):
        return len(self._meters)

    def __iter__(self):
        return iter(self._meters)

    def lmons(self):
        """{ACA hex: LMON} to save between runs (no keys in it)."""
        return {k: m.lmon for k, m in self._meters.items()}

    def save(self, path, keys=None, counters=True):
        """Write into the key file at `path` each meter's state() (with `counters`) and the new
        pairs `keys` {ACA: (k1, k2)}; other entries and fields stay. The file is replaced at once
        (a temporary file renamed over it) and readable by its owner only."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        names = {aca_text(_aca(text)): text for text in data}

        def entry(aca):
            text = aca_text(_aca(aca))
            return data.setdefault(names.get(text, text), {})

        for aca, (k1, k2) in (keys or {}).items():
            entry(aca).update(k1=_key(k1, "k1").hex(), k2=_key(k2, "k2").hex())
        if counters:
            for text, meter in self._meters.items():
                e = entry(text)
                e.pop("pending", None)
                e.update(meter.state())
        tmp = "%s.%d.new" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def __repr__(self):
        return "KeyRing(%d meters)" % len(self._meters)


def generate_key_file(path, aca):
    """A new key file at `path` (never over an existing one) with a fresh random pair for `aca`."""
    text = aca_text(_aca(aca))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({text: {"k1": os.urandom(16).hex(), "k2": os.urandom(16).hex()}}, f, indent=1)
