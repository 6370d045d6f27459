# Test helpers for the xDLMS server (meter/dlms/): a meter's data model with
# a settable clock, a server on it, and the client side of suite 0 built on
# the firmware's own GCM (checked against the Green Book in test_dlms_gcm.py).

from meter.dlms.gcm import Gcm
from meter.dlms.server import XdlmsServer, provision
from meter.model.datamodel import DataModel
from meter.storage import Store
from fwtest import unhex

EK = unhex("000102030405060708090A0B0C0D0E0F")
AK = unhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CLIENT_TITLE = unhex("4D4D4D0000000001")
METER_TITLE = unhex("4D4D4D0000BC614E")
CTOS = b"K56iVagY"
STOC = b"P6wRJ21F"
LLS = b"12345678"
T0 = 1764676800  # 2025-12-02 12:00:00 UTC


class Meter:
    """An xDLMS server on a data model whose clock the server may set."""

    def __init__(self, store=None, keys=True, t=T0, title=METER_TITLE, stoc=STOC):
        self.t = t
        self.store = store if store is not None else Store()
        if keys and store is None:
            provision(self.store, EK, AK, LLS)
        self.model = DataModel("SN-DLMS-1", unhex("A8040A1E8901"), "smitp-meter test", self.store,
                               self.now, self.set_now)
        self.server = XdlmsServer(self.model, self.store, title, lambda n: stoc)
        self.resp = bytearray(1024)

    def now(self):
        return self.t

    def set_now(self, t):
        self.t = t

    def ask(self, apdu):
        n = self.server.handle(bytearray(apdu), len(apdu), self.resp)  # as the CL gives it: its buffer
        return bytes(self.resp[:n])


def length(n):
    return bytes((n,)) if n < 0x80 else (b"\x81" + bytes((n,)) if n < 0x100 else b"\x82" + n.to_bytes(2, "big"))


def seal(plain, ic, title=CLIENT_TITLE, sc=0x30, ek=EK, ak=AK):
    """SC | IC | ciphertext | tag of plain under suite 0."""
    buf = bytearray(plain)
    tag = bytearray(12)
    Gcm(ek).seal(title + ic.to_bytes(4, "big"), (bytes((sc,)), ak), buf, 0, len(buf), tag)
    return bytes((sc,)) + ic.to_bytes(4, "big") + bytes(buf) + bytes(tag)


def glo(plain, ic, **kw):
    """general-glo-ciphering of a client APDU."""
    body = seal(plain, ic, **kw)
    return b"\xdb\x08" + kw.get("title", CLIENT_TITLE) + length(len(body)) + body


def unglo(apdu, title=METER_TITLE):
    """The plaintext of the meter's general-glo-ciphering APDU, and its IC."""
    assert apdu[0] == 0xDB and apdu[1] == 8 and apdu[2:10] == title, apdu.hex()
    at = 10
    n = apdu[at]
    at += 1
    if n == 0x81:
        n = apdu[at]
        at += 1
    elif n == 0x82:
        n = int.from_bytes(apdu[at:at + 2], "big")
        at += 2
    body = apdu[at:at + n]
    assert len(body) == n and body[0] == 0x30
    ic = int.from_bytes(body[1:5], "big")
    buf = bytearray(body[5:-12])
    assert Gcm(EK).open(title + body[1:5], (b"\x30", AK), buf, 0, len(buf), body[-12:])
    return bytes(buf), ic


INITIATE = unhex("01 00 00 00 06 5F1F 04 00 00 7E 1F 04 B0")  # the Green Book's, max PDU 1200


def initiate(conformance=0x7E1F | 0x400000 | 0x001000, max_pdu=1200, version=6):
    return (b"\x01\x00\x00\x00" + bytes((version,)) + b"\x5f\x1f\x04\x00" + conformance.to_bytes(3, "big")
            + max_pdu.to_bytes(2, "big"))


def aarq(ctx=1, mech=None, auth=None, title=None, ui=INITIATE):
    body = b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01" + bytes((ctx,))
    if title is not None:
        body += b"\xa6\x0a\x04\x08" + title
    if mech is not None:
        body += b"\x8a\x02\x07\x80\x8b\x07\x60\x85\x74\x05\x08\x02" + bytes((mech,))
    if auth is not None:
        body += b"\xac" + length(len(auth) + 2) + b"\x80" + length(len(auth)) + auth
    body += b"\xbe" + length(len(ui) + 2) + b"\x04" + length(len(ui)) + ui
    return b"\x60" + length(len(body)) + body


def hls_aarq(ic=0, ctos=CTOS, title=CLIENT_TITLE, **kw):
    body = seal(initiate(**kw), ic, title=title)
    return aarq(3, 5, ctos, title, b"\x21" + length(len(body)) + body)


def f_stoc(ic, title=CLIENT_TITLE, stoc=STOC):
    """The client's f(StoC): SC | IC | GMAC(SC | AK | StoC)."""
    tag = bytearray(12)
    Gcm(EK).seal(title + ic.to_bytes(4, "big"), (b"\x10", AK, stoc), b"", 0, 0, tag)
    return b"\x10" + ic.to_bytes(4, "big") + bytes(tag)


F_STOC = unhex("10 00000001 1A52FE7DD3E72748973C1E28")  # Green Book, client IC 1
F_CTOS = unhex("10 01234567 FE1466AFB3DBCD4F9389E2B7")  # Green Book, meter IC 01234567
REPLY_TO_HLS = b"\xc3\x01\xc1\x00\x0f\x00\x00\x28\x00\x00\xff\x01\x01\x09\x11" + F_STOC


def manager(meter):
    """Associate as the manager with the Green Book's HLS vectors: the AARQ
    with IC 0, f(StoC) with IC 1; the meter's counter set so that f(CtoS) gets
    01234567. Returns the meter's answer to the reply, deciphered."""
    meter.server.ic = meter.server.ic_end = 0x01234565
    aare = meter.ask(hls_aarq())
    assert aare[0] == 0x61, aare.hex()
    plain, ic = unglo(meter.ask(glo(REPLY_TO_HLS, 1)))
    return plain, ic


