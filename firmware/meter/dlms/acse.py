# ACSE for the xDLMS server (EN 62056-5-3 9.4.6): the AARQ read in place (BER
# tags into offsets), the xDLMS InitiateRequest inside it, and the AARE, RLRE
# and InitiateResponse written with an A-XDR Writer (BER lengths below 64 KiB
# have the A-XDR form).
from meter.compat import const
from meter.errors import DecodeError
from meter.dlms import axdr as X

AARQ = const(0x60)
AARE = const(0x61)
RLRQ = const(0x62)
RLRE = const(0x63)
INITIATE_REQUEST = const(0x01)
INITIATE_RESPONSE = const(0x08)
CONFIRMED_SERVICE_ERROR = const(0x0E)
GLO_INITIATE_REQUEST = const(0x21)
GLO_INITIATE_RESPONSE = const(0x28)

# application context (last arc of 2.16.756.5.8.1.x) and mechanism (2.16.756.5.8.2.x)
CTX_LN = const(1)
CTX_LN_CIPHERED = const(3)
MECH_NONE = const(0)
MECH_LLS = const(1)
MECH_HLS_GMAC = const(5)
_OID_CTX = b"\x60\x85\x74\x05\x08\x01"
_OID_MECH = b"\x60\x85\x74\x05\x08\x02"

# AARE result and acse-service-user diagnostics
ACCEPTED = const(0)
REJECTED_PERMANENT = const(1)
DIAG_NULL = const(0)
DIAG_NO_REASON = const(1)
DIAG_CONTEXT = const(2)  # application-context-name-not-supported
DIAG_MECH_UNKNOWN = const(11)  # authentication-mechanism-name-not-recognised
DIAG_MECH_REQUIRED = const(12)
DIAG_AUTH_FAILURE = const(13)
DIAG_AUTH_REQUIRED = const(14)

# initiate errors (ConfirmedServiceError initiate [6])
INIT_OTHER = const(0)
INIT_VERSION_TOO_LOW = const(1)
INIT_CONFORMANCE = const(2)
INIT_PDU_TOO_SHORT = const(3)
DLMS_VERSION = const(6)


def ber(buf, off, end):
    """One BER tag at buf[off]: (tag, value offset, value length)."""
    if off + 2 > end:
        raise DecodeError("BER", "truncated at %d" % off)
    n, v = X.get_len(buf, off + 1, end)
    if v + n > end:
        raise DecodeError("BER", "tag 0x%02x runs past the end" % buf[off])
    return buf[off], v, n


def _oid_arc(buf, v, n, prefix):
    # the last arc of an OID whose other arcs are `prefix`, -1 if another OID
    if n != len(prefix) + 1:
        return -1
    for i in range(len(prefix)):
        if buf[v + i] != prefix[i]:
            return -1
    return buf[v + n - 1]


class Aarq:
    """The fields of an AARQ the server uses, as offsets into its buffer."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.context = -1
        self.mech = MECH_NONE
        self.title = self.title_len = 0  # calling-AP-title (the client's system title)
        self.auth = self.auth_len = 0  # calling-authentication-value
        self.ui = self.ui_len = 0  # user-information: the (glo-)InitiateRequest

    def parse(self, buf, off, end):
        self.reset()
        tag, v, n = ber(buf, off, end)
        if tag != AARQ:
            raise DecodeError("AARQ", "tag 0x%02x" % tag)
        end = v + n
        at = v
        while at < end:
            tag, v, n = ber(buf, at, end)
            at = v + n
            if tag == 0xA1:  # application-context-name
                t, ov, on = ber(buf, v, at)
                self.context = _oid_arc(buf, ov, on, _OID_CTX) if t == 0x06 else -1
            elif tag == 0xA6:  # calling-AP-title
                t, self.title, self.title_len = ber(buf, v, at)
            elif tag == 0x8B:  # mechanism-name
                self.mech = _oid_arc(buf, v, n, _OID_MECH)
            elif tag == 0xAC:  # calling-authentication-value, [0] charstring
                t, self.auth, self.auth_len = ber(buf, v, at)
            elif tag == 0xBE:  # user-information: an OCTET STRING
                t, self.ui, self.ui_len = ber(buf, v, at)
                if t != 0x04:
                    raise DecodeError("AARQ", "user-information is not an octet string")
        return self


def initiate_request(buf, off, end):
    """The InitiateRequest at buf[off:end]: (version, conformance, client max PDU size)."""
    if off >= end or buf[off] != INITIATE_REQUEST:
        raise DecodeError("InitiateRequest", "tag")
    at = off + 1
    if at < end and buf[at]:  # dedicated-key present: skipped (not used)
        n, at = X.get_len(buf, at + 1, end)
        at += n
    else:
        at += 1
    for _ in range(2):  # response-allowed, proposed-quality-of-service
        if at < end and buf[at]:
            at += 1
        at += 1
    if at + 10 > end or buf[at + 1] != 0x5F or buf[at + 2] != 0x1F or buf[at + 3] != 0x04:
        raise DecodeError("InitiateRequest", "version or conformance")
    return buf[at], X.uint(buf, at + 5, 3), X.uint(buf, at + 8, 2)


def initiate_response(w, conformance, max_pdu):
    w.byte(INITIATE_RESPONSE)
    w.byte(0)  # negotiated-quality-of-service absent
    w.byte(DLMS_VERSION)
    w.raw(b"\x5F\x1F\x04\x00")
    w.uint(conformance, 3)
    w.uint(max_pdu, 2)
    w.raw(b"\x00\x07")  # vaa-name of LN referencing


def initiate_error(w, code):
    w.raw(b"\x0E\x01\x06")  # ConfirmedServiceError: initiateError, initiate
    w.byte(code)


def _lensize(k):
    return 1 if k < 0x80 else (2 if k < 0x100 else 3)


def aare(w, ctx, result, diag, title=None, mech=-1, stoc=None, ui=None, ui_len=0):
    """The AARE into w; ui[0:ui_len]: the user-information (an InitiateResponse,
    ciphered or not, or a ConfirmedServiceError)."""
    size = 11 + 5 + 7
    if title is not None:
        size += 4 + len(title)
    if mech >= 0:
        size += 4 + 9
    if stoc is not None:
        size += 4 + len(stoc)
    if ui is not None:
        inner = 1 + _lensize(ui_len) + ui_len
        size += 1 + _lensize(inner) + inner
    w.byte(AARE)
    w.length(size)
    w.raw(b"\xA1\x09\x06\x07")
    w.raw(_OID_CTX)
    w.byte(ctx)
    w.raw(b"\xA2\x03\x02\x01")
    w.byte(result)
    w.raw(b"\xA3\x05\xA1\x03\x02\x01")
    w.byte(diag)
    if title is not None:
        w.raw(b"\xA4")
        w.byte(2 + len(title))
        w.byte(0x04)
        w.byte(len(title))
        w.raw(title)
    if mech >= 0:
        w.raw(b"\x88\x02\x07\x80\x89\x07")
        w.raw(_OID_MECH)
        w.byte(mech)
    if stoc is not None:
        w.byte(0xAA)
        w.byte(2 + len(stoc))
        w.byte(0x80)
        w.byte(len(stoc))
        w.raw(stoc)
    if ui is not None:
        w.byte(0xBE)
        w.length(1 + _lensize(ui_len) + ui_len)
        w.byte(0x04)
        w.length(ui_len)
        w.raw(ui, 0, ui_len)


def rlre(w):
    w.raw(b"\x63\x03\x80\x01\x00")  # reason: normal
