"""The concentrator side of the application-layer security: per-meter keys and the CMON.

A MeterSecurity follows one meter's LMON as the concentrator knows it. A protected request
goes out with CMON = LMON + 1; the answer is verified with that same MON, and only a verified
answer moves LMON to CMON. A meter that disagrees answers NACK-10 with its own LMON, or tells
it in a CHL.RESP; either is verified before it is adopted.

The codec is the firmware's own (meter.security): one definition of the layout on both sides.
Key bytes never appear in a repr or an error message.
"""

import json
import os

from meter import security as sec
from meter.security import Keys

from meter.errors import SmitpError
from smitp.aca import aca_text, parse_aca

_LMON_MAX = (1 << 64) - 1


class SecureError(SmitpError):
    pass


class LmonMismatch(SecureError):
    """The meter answered NACK-10; its LMON (verified) is now ours: protect the request again."""

    def __init__(self, aca, lmon):
        super().__init__("meter %s rejected the MON; resynchronised to its LMON %d" % (aca_text(aca), lmon))
        self.lmon = lmon


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


def _lmon(value):
    if not isinstance(value, int) or not 0 <= value <= _LMON_MAX:
        raise SecureError("LMON must be an integer in 0 .. 2**64 - 1")
    return value


class MeterSecurity:
    """Keys and LMON of one meter, and the one exchange in progress with it.

    lmon: the meter's LMON as last known (the MON of its last accepted request).
    """

    def __init__(self, aca, k1, k2, lmon=0):
        self.aca = _aca(aca)
        if len(self.aca) != 6:
            raise SecureError("ACA must be 6 bytes")
        self._keys = Keys(_key(k1, "k1"), _key(k2, "k2"))
        self.lmon = _lmon(lmon)
        self._sent = None  # (LSDU on air, MON, ECC) of the request awaiting its answer
        self._nonce = None  # N of the challenge awaiting its CHL.RESP
        self.stats = {"protected": 0, "accepted": 0, "rejected": 0, "resyncs": 0}

    def __repr__(self):
        return "MeterSecurity(%s, lmon=%d)" % (aca_text(self.aca), self.lmon)

    @property
    def cmon(self):
        """The MON of the next protected request."""
        return self.lmon + 1

    @property
    def pending(self):
        """The protected request awaiting its answer (resend these same bytes on retry), or None."""
        return None if self._sent is None else self._sent[0]

    def protect(self, attr_plain, apdu, ecc, datetime):
        """LSDU on air for the authenticated variant of attr_plain with APDU, MON = CMON.

        Sealing a different request under a CMON already used reuses its CTR keystream:
        to retry, resend `pending` rather than protecting anew.
        """
        if self.lmon >= _LMON_MAX:
            raise SecureError("the meter's LMON is exhausted")
        mon = self.cmon
        lsdu = sec.seal(self._keys, self.aca, sec.auth_attr(attr_plain), bytes(apdu), mon, ecc, datetime)
        self._sent = (lsdu, mon, ecc)
        self.stats["protected"] += 1
        return lsdu

    def unprotect(self, lsdu, ecc=None):
        """(plain ATTR, DATA) of the meter's answer to the pending request, verified with its MON.

        On success LMON := CMON and the exchange is over. ecc: the answer's ECC (default: the
        request's, which the meter mirrors). An answer NACK-10 is verified, its LMON adopted,
        and LmonMismatch raised. Other failures raise AuthError / SecureError and change nothing.
        """
        if self._sent is None:
            raise SecureError("no protected request is awaiting an answer")
        lsdu = bytes(lsdu)
        attr = lsdu[0] if lsdu else 0
        if not sec.is_authenticated(attr) or attr == sec.ATTR_CHL_RESP:
            raise SecureError("answer ATTR %d is not an authenticated answer" % attr)
        nack = attr in (sec.ATTR_NACK_A_AUTH, sec.ATTR_NACK_B_AUTH)
        if nack and len(lsdu) > 1 and lsdu[1] == sec.NACK_AUTH:
            raise LmonMismatch(self.aca, self.resync_from(lsdu))
        sent, mon, sent_ecc = self._sent
        covered = sec.etm(sent) if nack else None
        try:
            data, _trailer = sec.open_(self._keys, self.aca, lsdu, mon, sent_ecc if ecc is None else ecc, covered)
        except sec.AuthError:
            self.stats["rejected"] += 1
            raise
        self.lmon = mon
        self._sent = None
        self.stats["accepted"] += 1
        return sec.plain_attr(attr), data

    def resync_from(self, lsdu):
        """Adopt the LMON of an authenticated NACK-10 (245 / 239) after verifying its TMAC.

        The TMAC is checked with the LMON the NACK carries (ECB, read key) and covers the Etm*
        of our pending request, so an old NACK does not verify. Returns the adopted LMON.
        """
        if self._sent is None:
            raise SecureError("no protected request is awaiting an answer")
        lsdu = bytes(lsdu)
        if len(lsdu) < 2 or lsdu[0] not in (sec.ATTR_NACK_A_AUTH, sec.ATTR_NACK_B_AUTH) or lsdu[1] != sec.NACK_AUTH:
            raise SecureError("not an authenticated NACK with PAR1 10")
        try:
            _par1, lmon = sec.open_(self._keys, self.aca, lsdu, None, sec.ECC_CHALLENGE, sec.etm(self._sent[0]))
        except sec.AuthError:
            self.stats["rejected"] += 1
            raise
        self.lmon = lmon
        self._sent = None
        self.stats["resyncs"] += 1
        return lmon

    def challenge(self, t=b"\x00\x00"):
        """DATA of a CHL.REQ (ATTR 112): the 2-byte T field, then a fresh 16-byte N."""
        if len(t) != sec.CHL_T_LEN:
            raise SecureError("T must be 2 bytes")
        self._nonce = os.urandom(sec.CHL_N_LEN)
        return bytes(t) + self._nonce

    def accept_challenge(self, lsdu):
        """Verify a CHL.RESP (113) against our last challenge and adopt its LMON; returns it.

        Each N answers once: a CHL.RESP replayed later no longer verifies.
        """
        if self._nonce is None:
            raise SecureError("no challenge is awaiting an answer")
        lsdu = bytes(lsdu)
        if not lsdu or lsdu[0] != sec.ATTR_CHL_RESP:
            raise SecureError("not a CHL.RESP")
        try:
            _t, lmon = sec.open_(self._keys, self.aca, lsdu, None, sec.ECC_CHALLENGE, self._nonce)
        except sec.AuthError:
            self.stats["rejected"] += 1
            raise
        self._nonce = None
        self._sent = None
        self.lmon = lmon
        self.stats["resyncs"] += 1
        return lmon


class KeyRing:
    """MeterSecurity objects by ACA, loaded from a JSON file.

    {"A8040A1E8901": {"k1": "<32 hex digits>", "k2": "<32 hex digits>", "lmon": 0}, ...}
    ("lmon" optional). Keep the file readable by the concentrator's user only.
    """

    def __init__(self):
        self._meters = {}

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError:
            raise SecureError("key file %s is not valid JSON" % path) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise SecureError("key file: expected an object of ACA -> keys")
        ring = cls()
        for text, entry in data.items():
            if not isinstance(entry, dict) or "k1" not in entry or "k2" not in entry:
                raise SecureError("key file, meter %s: needs k1 and k2" % text)
            try:
                ring.add(text, entry["k1"], entry["k2"], entry.get("lmon", 0))
            except SmitpError as e:  # names the field, never its value
                raise SecureError("key file, meter %s: %s" % (text, e)) from None
        return ring

    def add(self, aca, k1, k2, lmon=0):
        meter = MeterSecurity(aca, k1, k2, lmon)
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

    def __repr__(self):
        return "KeyRing(%d meters)" % len(self._meters)
