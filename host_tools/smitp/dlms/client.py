"""The concentrator's xDLMS client: association (no security, LLS, HLS-GMAC with suite 0), GET
(normal and with blocks), release; the APDUs go through a convergence layer client
(smitp.dlms.cl). Suite 0 here is `cryptography`'s AES-GCM, not the firmware's: the two sides
check each other. A-XDR values come back as Python values (decode_data).
"""

import datetime
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smitp.errors import PeerError

TAG_LEN = 12
SC = 0x30  # suite 0, authenticated and encrypted
CONFORMANCE = 0x401019  # general-protection, block-transfer-with-get, get, set, action
DAR = {1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied", 4: "object-undefined",
       9: "object-class-inconsistent", 11: "object-unavailable", 12: "type-unmatched",
       13: "scope-of-access-violated", 14: "data-block-unavailable", 15: "long-get-aborted",
       16: "no-long-get-in-progress", 250: "other-reason"}
DIAG = {1: "no reason given", 2: "application context not supported", 11: "authentication mechanism not recognised",
        12: "authentication mechanism required", 13: "authentication failure", 14: "authentication required"}
EXCEPTION = {1: "operation not possible", 2: "service not supported", 3: "other reason", 4: "PDU too long",
             5: "deciphering error", 6: "invocation counter error"}


class DlmsError(PeerError):
    """The meter refused (AARE reject, exception-response, data-access-result) or answered nonsense."""


def _length(n):
    if n < 0x80:
        return bytes((n,))
    return b"\x81" + bytes((n,)) if n < 0x100 else b"\x82" + n.to_bytes(2, "big")


def _get_len(b, at):
    n = b[at]
    if n < 0x80:
        return n, at + 1
    k = n & 0x7F
    if k not in (1, 2) or at + 1 + k > len(b):
        raise DlmsError("bad A-XDR length in the answer")
    return int.from_bytes(b[at + 1:at + 1 + k], "big"), at + 1 + k


def gcm_seal(key, iv, aad, plain):
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad)
    ct = enc.update(plain) + enc.finalize()
    return ct + enc.tag[:TAG_LEN]


def gcm_open(key, iv, aad, data):
    from cryptography.exceptions import InvalidTag

    if len(data) < TAG_LEN:
        raise DlmsError("ciphered answer too short")
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, data[-TAG_LEN:], min_tag_length=TAG_LEN)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(data[:-TAG_LEN]) + dec.finalize()
    except InvalidTag:
        raise DlmsError("the meter's answer does not authenticate (wrong keys?)") from None


def decode_data(b, at=0, depth=0):
    """One A-XDR Data at b[at:]: (Python value, offset after it)."""
    if at >= len(b) or depth > 8:
        raise DlmsError("truncated Data in the answer")
    tag = b[at]
    at += 1
    fixed = {3: 1, 5: 4, 6: 4, 15: 1, 16: 2, 17: 1, 18: 2, 20: 8, 21: 8, 22: 1}
    if tag == 0:
        return None, at
    if tag in (1, 2):
        count, at = _get_len(b, at)
        out = []
        for _ in range(count):
            v, at = decode_data(b, at, depth + 1)
            out.append(v)
        return out, at
    if tag in fixed:
        n = fixed[tag]
        raw = b[at:at + n]
        if len(raw) != n:
            raise DlmsError("truncated Data in the answer")
        v = int.from_bytes(raw, "big", signed=tag in (5, 15, 16, 20))
        return (bool(v) if tag == 3 else v), at + n
    if tag in (9, 10, 12, 4):
        n, at = _get_len(b, at)
        if tag == 4:
            n = (n + 7) // 8
        raw = bytes(b[at:at + n])
        if len(raw) != n:
            raise DlmsError("truncated Data in the answer")
        if tag == 10 or tag == 12:
            return raw.decode("utf-8", "replace"), at + n
        return raw, at + n
    raise DlmsError("Data type %d in the answer is not known" % tag)


def date_time(raw):
    """A COSEM date-time (12 bytes) as an aware datetime, None if it is not one."""
    if not isinstance(raw, bytes) or len(raw) != 12:
        return None
    y = int.from_bytes(raw[0:2], "big")
    dev = int.from_bytes(raw[9:11], "big", signed=True)
    try:
        t = datetime.datetime(y, raw[2], raw[3], raw[5], raw[6], raw[7], tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    if dev != -0x8000:
        t += datetime.timedelta(minutes=dev)  # UTC = local + deviation
    return t


class Session:
    """One association with a meter over `exchange(apdu) -> apdu` (a ClClient's).

    auth: "none", "lls" (secret) or "hls" (ek, ak, title, ic: the client's system title and its
    next invocation counter, which goes up with every ciphered APDU)."""

    def __init__(self, exchange, auth="none", secret=b"", ek=b"", ak=b"", title=b"SMITPDCU", ic=0,
                 max_pdu=1024, random=os.urandom):
        self.exchange = exchange
        self.auth = auth
        self.secret = secret
        self.ek, self.ak = ek, ak
        self.title = title
        self.ic = ic
        self.max_pdu = max_pdu
        self.random = random
        self.meter_title = b""
        self.stoc = self.ctos = b""
        self.meter_ic = -1
        self.ciphered = auth == "hls"

    def _seal(self, plain, sc=SC):
        ic = self.ic
        self.ic += 1
        body = gcm_seal(self.ek, self.title + ic.to_bytes(4, "big"), bytes((sc,)) + self.ak, plain)
        return bytes((sc,)) + ic.to_bytes(4, "big") + body

    def _open(self, body):
        if len(body) < 5 + TAG_LEN or body[0] != SC:
            raise DlmsError("ciphered answer with security control 0x%02x" % (body[0] if body else 0))
        ic = int.from_bytes(body[1:5], "big")
        if ic <= self.meter_ic:
            raise DlmsError("the meter's invocation counter went back (%d after %d)" % (ic, self.meter_ic))
        plain = gcm_open(self.ek, self.meter_title + body[1:5], bytes((SC,)) + self.ak, body[5:])
        self.meter_ic = ic
        return plain

    def request(self, plain):
        """One xDLMS APDU out, its answer back (ciphered both ways in an HLS association)."""
        if not self.ciphered:
            return self._check(self.exchange(plain))
        body = self._seal(plain)
        ans = self._check(self.exchange(b"\xdb\x08" + self.title + _length(len(body)) + body))
        if ans[0] != 0xDB or len(ans) < 11 or ans[1] != 8 or ans[2:10] != self.meter_title:
            raise DlmsError("answer not general-glo-ciphered by the meter")
        n, at = _get_len(ans, 10)
        return self._check(self._open(ans[at:at + n]))

    @staticmethod
    def _check(ans):
        if not ans:
            raise DlmsError("empty answer")
        if ans[0] == 0xD8 and len(ans) >= 3:
            raise DlmsError("exception-response: %s" % EXCEPTION.get(ans[2], "service error %d" % ans[2]))
        return ans

    # ---- association
    def associate(self):
        initiate = (b"\x01\x00\x00\x00\x06\x5f\x1f\x04\x00" + CONFORMANCE.to_bytes(3, "big")
                    + self.max_pdu.to_bytes(2, "big"))
        body = b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01" + (b"\x03" if self.ciphered else b"\x01")
        if self.auth == "none":
            ui = initiate
        elif self.auth == "lls":
            body += b"\x8a\x02\x07\x80\x8b\x07\x60\x85\x74\x05\x08\x02\x01"
            body += b"\xac" + _length(len(self.secret) + 2) + b"\x80" + _length(len(self.secret)) + self.secret
            ui = initiate
        else:
            self.ctos = self.random(16)
            body += b"\xa6\x0a\x04\x08" + self.title
            body += b"\x8a\x02\x07\x80\x8b\x07\x60\x85\x74\x05\x08\x02\x05"
            body += b"\xac\x12\x80\x10" + self.ctos
            glo = self._seal(initiate)
            ui = b"\x21" + _length(len(glo)) + glo
        body += b"\xbe" + _length(len(ui) + 2) + b"\x04" + _length(len(ui)) + ui
        self._aare(self._check(self.exchange(b"\x60" + _length(len(body)) + body)))
        if self.ciphered:
            self._reply_to_hls()

    def _aare(self, ans):
        if ans[0] != 0x61:
            raise DlmsError("no AARE to the AARQ (tag 0x%02x)" % ans[0])
        fields = {}
        n, at = _get_len(ans, 1)
        end = at + n
        while at < end:
            tag = ans[at]
            n, v = _get_len(ans, at + 1)
            fields[tag] = bytes(ans[v:v + n])
            at = v + n
        result = fields.get(0xA2, b"\x00\x00\x01")[-1]
        diag = fields.get(0xA3, b"\x00" * 5)[-1]
        if result != 0:
            raise DlmsError("association refused: %s" % DIAG.get(diag, "diagnostic %d" % diag))
        if not self.ciphered:
            return
        if diag != 14 or 0xA4 not in fields or 0xAA not in fields or 0xBE not in fields:
            raise DlmsError("AARE without the HLS challenge")
        self.meter_title = fields[0xA4][2:10]
        self.stoc = fields[0xAA][2:]
        ui = fields[0xBE]
        if ui[2] != 0x28:
            raise DlmsError("AARE without a glo-initiateResponse")
        n, at = _get_len(ui, 3)
        if self._open(ui[at:at + n])[0] != 0x08:
            raise DlmsError("AARE without an InitiateResponse")

    def _reply_to_hls(self):
        ic = self.ic  # f(StoC) takes a counter of its own, the carrying APDU the next one
        self.ic += 1
        tag = gcm_seal(self.ek, self.title + ic.to_bytes(4, "big"), b"\x10" + self.ak + self.stoc, b"")
        f = b"\x10" + ic.to_bytes(4, "big") + tag
        ans = self.request(b"\xc3\x01\xc1\x00\x0f\x00\x00\x28\x00\x00\xff\x01\x01\x09\x11" + f)
        if ans[:4] != b"\xc7\x01\xc1\x00" or ans[4:8] != b"\x01\x00\x09\x11":
            raise DlmsError("HLS refused by the meter (wrong keys?)")
        reply = ans[8:25]
        expect = gcm_seal(self.ek, self.meter_title + reply[1:5], b"\x10" + self.ak + self.ctos, b"")
        if reply[0] != 0x10 or reply[5:] != expect:
            raise DlmsError("the meter's HLS answer f(CtoS) is wrong: not the meter we hold keys for")

    def release(self):
        try:
            self.exchange(b"\x62\x03\x80\x01\x00")
        except PeerError:
            pass  # the association ends with the meter's timeout anyway

    # ---- services
    def get(self, cls, obis, attr):
        """The raw A-XDR Data of attribute `attr` of object (cls, obis)."""
        req = b"\xc0\x01\xc1" + cls.to_bytes(2, "big") + bytes(obis) + bytes((attr, 0))
        ans = self.request(req)
        if ans[:3] == b"\xc4\x01\xc1" and len(ans) >= 5:
            if ans[3] == 0:
                return ans[4:]
            raise DlmsError("GET refused: %s" % DAR.get(ans[4], "data-access-result %d" % ans[4]))
        data = bytearray()
        number = 1
        while ans[:3] == b"\xc4\x02\xc1" and len(ans) >= 9:
            if int.from_bytes(ans[4:8], "big") != number:
                raise DlmsError("block %d where %d was due" % (int.from_bytes(ans[4:8], "big"), number))
            if ans[8] != 0:
                raise DlmsError("GET refused: %s" % DAR.get(ans[9], "data-access-result %d" % ans[9]))
            n, at = _get_len(ans, 9)
            data += ans[at:at + n]
            if ans[3]:
                return bytes(data)
            ans = self.request(b"\xc0\x02\xc1" + number.to_bytes(4, "big"))
            number += 1
        raise DlmsError("not a GET answer: %s" % bytes(ans[:8]).hex())

    def set(self, cls, obis, attr, data):
        """SET attribute `attr` of (cls, obis) to the A-XDR Data `data`."""
        ans = self.request(b"\xc1\x01\xc1" + cls.to_bytes(2, "big") + bytes(obis) + bytes((attr, 0)) + bytes(data))
        if ans[:3] != b"\xc5\x01\xc1" or len(ans) < 4:
            raise DlmsError("not a SET answer: %s" % bytes(ans[:8]).hex())
        if ans[3]:
            raise DlmsError("SET refused: %s" % DAR.get(ans[3], "data-access-result %d" % ans[3]))

    def action(self, cls, obis, method, data=None):
        """Invoke `method` of (cls, obis) with the A-XDR Data `data` (None: no parameters);
        returns the return Data, or None."""
        params = b"\x00" if data is None else b"\x01" + bytes(data)
        ans = self.request(b"\xc3\x01\xc1" + cls.to_bytes(2, "big") + bytes(obis) + bytes((method,)) + params)
        if ans[:3] != b"\xc7\x01\xc1" or len(ans) < 5:
            raise DlmsError("not an ACTION answer: %s" % bytes(ans[:8]).hex())
        if ans[3]:
            raise DlmsError("ACTION refused: %s" % DAR.get(ans[3], "action-result %d" % ans[3]))
        return ans[6:] if ans[4] == 1 and len(ans) > 6 and ans[5] == 0 else None


def date_time_data(t):
    """A COSEM date-time Data (octet-string of 12) of UTC seconds t, deviation 0."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return (b"\x09\x0c" + d.year.to_bytes(2, "big")
            + bytes((d.month, d.day, d.isoweekday(), d.hour, d.minute, d.second, 0, 0, 0, 0)))
