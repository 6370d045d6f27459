# DLMS inputs for the fuzzer (entry `dlms`): sessions of xDLMS APDUs
# (associations public, LLS and HLS-GMAC, GET normal, next, with list and
# selective access, SET and ACTION normal and in blocks, releases, garbage),
# plain or ciphered with the test keys (general-glo or service-specific glo,
# now and then with a wrong key, an old counter or a flipped tag), and
# broadcasts under the broadcast key; cut into CLPDUs of the convergence
# layer (meter/dlms/cl.py), which are mutated too. The meter's challenge is
# fixed in the target (dlmskit.STOC) so that f(StoC) can be right.
from meter.dlms import cl as CL
from dlmskit import LLS, f_stoc, glo, hls_aarq, aarq, initiate, length, seal
import lsdu as L

BK = b"\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"  # the fuzz meter's broadcast key
HEAD_END = b"MMM\x00\x00\x00\x00\x02"
IC_BASE = 1000  # the client's counters start here in every input (the target's floor: below)
_OBJECTS = (
    (8, b"\x00\x00\x01\x00\x00\xff"), (15, b"\x00\x00\x28\x00\x00\xff"), (64, b"\x00\x00\x2b\x00\x00\xff"),
    (1, b"\x00\x00\x2a\x00\x00\xff"), (3, b"\x01\x00\x01\x08\x00\xff"), (70, b"\x00\x00\x60\x03\x0a\xff"),
    (7, b"\x01\x00\x63\x01\x00\xff"), (7, b"\x00\x00\x63\x62\x00\xff"),
)
_DATE = b"\x09\x0c\x07\xea\x01\x01\x04\x0c\x00\x00\x00\x00\x00\x00"


def _descriptor(rng):
    if rng.chance(90):
        cls, obis = rng.pick(_OBJECTS)
    else:
        cls, obis = rng.below(80), rng.bytes(6)
    if rng.chance(10):
        cls = rng.pick((0, 2, 7, 8, 0xFFFF))
    attr = rng.pick((1, 2, 2, 2, 3, 4, 5, 7, 8, 9, rng.below(256)))
    return cls.to_bytes(2, "big") + obis + bytes((attr,))


def _data(rng, depth=0):
    k = rng.below(10)
    if k == 0:
        return b"\x00"
    if k == 1:
        return bytes((rng.pick((3, 15, 17, 22)), rng.below(256)))
    if k == 2:
        return b"\x10" + rng.bytes(2)
    if k == 3:
        return _DATE if rng.chance(70) else b"\x09\x0c" + rng.bytes(12)
    if k == 4:
        n = rng.pick((0, 1, 16, 17, 127, 128, rng.below(300)))
        return b"\x09" + length(n) + rng.bytes(n)
    if k == 5 and depth < 3:
        n = rng.pick((0, 1, 2, 4, rng.below(10)))
        body = b"".join(_data(rng, depth + 1) for _ in range(n))
        return bytes((rng.pick((1, 2)),)) + length(n) + body
    if k == 6:  # a range or entry selection of a profile's buffer
        clock = b"\x02\x04\x12\x00\x08\x09\x06\x00\x00\x01\x00\x00\xff\x0f\x02\x12\x00\x00"
        return b"\x02\x04" + clock + _DATE + _DATE + b"\x01\x00"
    if k == 7:
        return b"\x02\x04\x06" + rng.bytes(4) + b"\x06" + rng.bytes(4) + b"\x12" + rng.bytes(2) + b"\x12" + rng.bytes(2)
    return rng.bytes(rng.below(20))


def _block(rng, last, number, raw):
    return bytes((last,)) + number.to_bytes(4, "big") + length(len(raw)) + raw


def service(rng):
    """One xDLMS request APDU, plain."""
    inv = rng.pick((0xC1, 0xC1, 0x81, 0x41, 0x01, rng.below(256)))
    k = rng.below(12)
    if k < 3:
        sel = b"\x00" if rng.chance(70) else bytes((1, rng.pick((1, 2, 3, 0)))) + _data(rng)
        return bytes((0xC0, 1, inv)) + _descriptor(rng) + sel
    if k == 3:
        return bytes((0xC0, 2, inv)) + rng.pick((1, 2, 3, rng.below(40), 0xFFFFFFFF)).to_bytes(4, "big")
    if k == 4:
        n = rng.pick((0, 1, 2, 16, 17))
        return bytes((0xC0, 3, inv, n)) + b"".join(_descriptor(rng) + b"\x00" for _ in range(min(n, 17)))
    if k == 5:
        return bytes((0xC1, 1, inv)) + _descriptor(rng) + b"\x00" + _data(rng)
    if k == 6:
        value = _data(rng)
        cut = rng.below(len(value) + 1)
        block = _block(rng, rng.chance(30), rng.pick((1, 1, 2)), value[:cut])
        return bytes((0xC1, 2, inv)) + _descriptor(rng) + b"\x00" + block
    if k == 7:
        return bytes((0xC1, 3, inv)) + _block(rng, rng.chance(50), rng.pick((2, 2, 3, 1, 0)), _data(rng))
    if k == 8:
        params = b"\x00" if rng.chance(30) else b"\x01" + _data(rng)
        return bytes((0xC3, 1, inv)) + _descriptor(rng) + params
    if k == 9:
        kind = rng.pick((2, 4, 6, 3, 5))
        if kind == 2:
            return bytes((0xC3, 2, inv)) + rng.bytes(4)
        head = _descriptor(rng) if kind == 4 else b""
        return bytes((0xC3, kind, inv)) + head + _block(rng, rng.chance(50), rng.pick((1, 2, 3)), _data(rng))
    if k == 10:
        return rng.pick((b"\x62\x03\x80\x01\x00", b"\x62\x00", b"\x62"))
    return bytes((rng.pick((0xC0, 0xC1, 0xC3, 0xC8, 0xDB, 0x60, 0x62, rng.below(256))),)) + rng.bytes(rng.below(40))


class Client:
    """The client's side of one input: its association and counters."""

    def __init__(self, rng):
        self.rng = rng
        self.ic = IC_BASE
        self.ciphered = False

    def _next_ic(self):
        rng = self.rng
        if rng.chance(5):
            return rng.pick((0, IC_BASE - 1, self.ic - 1, 0xFFFFFFFF))  # a replay, or the last one
        self.ic += 1
        return self.ic

    def associate(self):
        rng = self.rng
        k = rng.below(4)
        self.ciphered = k == 3
        if k == 0:
            return aarq(ui=initiate(conformance=rng.pick((0x7E1F, 0x401E1D, 0x00101D, rng.number(3))),
                                    max_pdu=rng.pick((64, 1024, 0, 63, 200, 0xFFFF))))
        if k == 1:
            return aarq(mech=1, auth=LLS if rng.chance(80) else rng.bytes(8))
        if k == 2:
            return L.mutate(rng, aarq(), 2) if rng.chance(50) else aarq(ctx=rng.pick((2, 3)), mech=rng.pick((5, 2)))
        return hls_aarq(self._next_ic(), max_pdu=rng.pick((1024, 64, 128)))

    def reply_to_hls(self):
        ic = self.ic + (0 if self.rng.chance(50) else 1)
        head = b"\xc3\x01\xc1\x00\x0f\x00\x00\x28\x00\x00\xff\x01\x01\x09\x11"
        return head + f_stoc(ic if self.rng.chance(90) else 7)

    def wrap(self, plain):
        """plain as the association sends it: ciphered once HLS is on."""
        rng = self.rng
        if not self.ciphered and rng.chance(95):
            return plain
        ic = self._next_ic()
        kw = {}
        if rng.chance(5):
            kw["ek"] = BK  # the wrong key
        if rng.chance(80) or plain[0] not in (0xC0, 0xC1, 0xC3):
            out = glo(plain, ic, **kw)
        else:
            body = seal(plain, ic, **kw)
            out = bytes((plain[0] + 8,)) + length(len(body)) + body  # service-specific glo
        if rng.chance(5):
            out = out[:-1] + bytes((out[-1] ^ 1,))
        return out


def broadcast(rng, client):
    """A broadcast APDU: mostly right, ciphered with the broadcast key."""
    plain = rng.pick((b"\xc1\x01\x81\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00" + _DATE,
                      b"\xc3\x01\x81\x00\x08\x00\x00\x01\x00\x00\xff\x06\x01\x10" + rng.bytes(2),
                      service(rng)))
    ic = client._next_ic()
    sc = 0x70 if rng.chance(90) else rng.pick((0x30, 0x10, 0x60))
    return glo(plain, ic, title=HEAD_END, sc=sc, ek=BK if rng.chance(90) else rng.bytes(16))


def session(rng):
    """The APDUs of one input, in order, and whether each goes out as a broadcast."""
    c = Client(rng)
    out = []
    if rng.chance(85):
        out.append((c.associate(), False))
        if c.ciphered and rng.chance(85):
            out.append((c.wrap(c.reply_to_hls()), False))
    for _ in range(rng.span(1, 4)):
        if rng.chance(10):
            out.append((broadcast(rng, c), True))
            continue
        apdu = c.wrap(service(rng))
        if rng.chance(10):
            apdu = L.mutate(rng, apdu)
        out.append((apdu, False))
    return out


def clpdus(rng, apdu, xid):
    """The CLPDUs of one exchange: the request's segments, then NEXTs for the answer's; now
    and then one changed (kind, XID, number, cut, repeated)."""
    size = CL.SEG_MAX if rng.chance(80) else rng.span(1, CL.SEG_MAX)
    count = max(1, (len(apdu) + size - 1) // size)
    out = []
    for seg in range(count):
        kind = CL.DATA_LAST if seg == count - 1 else CL.DATA_MORE
        out.append(bytes((kind, xid, seg & 0xFF)) + apdu[seg * size:(seg + 1) * size])
    for seg in range(rng.below(4)):
        out.append(bytes((CL.NEXT, xid, seg)))
    if rng.chance(15):
        i = rng.below(len(out))
        out[i] = L.mutate(rng, out[i])
    if rng.chance(5):
        out.insert(rng.below(len(out) + 1), rng.pick(out))
    return out
