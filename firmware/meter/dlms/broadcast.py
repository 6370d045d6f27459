# Broadcast in the DLMS/COSEM profile (CLC/TS 50568-8 4.6.7): an unconfirmed
# SET or ACTION addressed to all meters over the convergence layer's
# broadcast (meter/dlms/cl.py), never answered. Accepted only when
#   - general-glo-ciphered (it names its sender's system title, which the IV
#     needs: there is no association to take it from),
#   - authenticated and encrypted with the broadcast key: security control
#     SC_BROADCAST (key set 1, suite 0), AAD = SC | AK,
#   - its invocation counter is above the last one accepted (kept on flash,
#     written before the request takes effect: a replay, even across a power
#     cut, is refused),
#   - the service is Set- or Action-Request-Normal of the unconfirmed class,
#   - its target is one of ALLOWED (clock synchronisation).
# A meter without a broadcast key takes no broadcast at all: never plain.
# The choices are in docs/protocol.md ("DLMS broadcast").
#
# Flash records (meter/storage.py):
#   dlms_bkey  the broadcast key (16) | CRC-32 (4)
#   dlms_bic   the last broadcast invocation counter accepted (4)
from meter.compat import const
from meter.crypto import crc32
from meter.clock import valid_time
from meter.errors import DecodeError
from meter.model import registers as R
from meter.dlms import axdr as X
from meter.dlms import base as B
from meter.dlms import cosem as C
from meter.dlms.gcm import TAG_LEN, Gcm

SC_BROADCAST = const(0x70)  # security control: broadcast key set, authenticated and encrypted, suite 0
_GENERAL_GLO = const(0xDB)
SET_REQUEST = const(0xC1)
ACTION_REQUEST = const(0xC3)
_CONFIRMED = const(0x40)  # invoke-id-and-priority: service-class bit
SHIFT_MAX = const(900)  # Clock shift_time: -900..900 s (Blue Book class 8 method 6)
# what a broadcast may do: (request tag, class, OBIS, attribute or method)
ALLOWED = (
    (SET_REQUEST, C.CLOCK, b"\x00\x00\x01\x00\x00\xff", 2),  # the time
    (ACTION_REQUEST, C.CLOCK, b"\x00\x00\x01\x00\x00\xff", 6),  # shift_time
)


def provision(store, bk):
    """Write the broadcast key into the meter's store; False if the store refused it."""
    bk = bytes(bk)
    if len(bk) != 16:
        raise ValueError("the broadcast key is 16 bytes")
    return store.put("dlms_bkey", bk + crc32(bk).to_bytes(4, "big"))


class Broadcast:
    """The broadcast side of the xDLMS server `server` (meter/dlms/server.py):
    its objects, store and AK."""

    def __init__(self, server):
        self.server = server
        self.iv = bytearray(12)
        self.ivm = memoryview(self.iv)
        self.stats = server.stats
        self.stats["broadcasts"] = 0
        self.stats["broadcasts_refused"] = 0
        raw = server.store.get("dlms_bic")
        self.bic = int.from_bytes(raw, "big") if raw else -1
        self.load_key()

    def load_key(self):
        """Take the broadcast key from the store (at boot, after provisioning)."""
        raw = self.server.store.get("dlms_bkey")
        self.gcm = None
        if raw is not None and len(raw) == 20 and crc32(raw[:16]) == int.from_bytes(raw[16:], "big"):
            self.gcm = Gcm(raw[:16])
        self.aad = (b"\x70", self.server.ak)

    def serve(self, buf, off, n):
        """Apply the broadcast APDU buf[off:off + n] (deciphered in place) or
        refuse it; True if applied. Nothing is ever answered."""
        try:
            ok = self._serve(buf, off, off + n)
        except DecodeError:
            ok = False
        self.stats["broadcasts" if ok else "broadcasts_refused"] += 1
        return ok

    def _serve(self, buf, off, end):
        gcm = self.gcm
        if gcm is None or end - off < 11 or buf[off] != _GENERAL_GLO or buf[off + 1] != 8:
            return False
        size, at = X.get_len(buf, off + 10, end)
        if at + size != end or size < 5 + TAG_LEN + 3 or buf[at] != SC_BROADCAST:
            return False
        iv = self.iv
        for k in range(8):
            iv[k] = buf[off + 2 + k]  # the sender's system title
        for k in range(4):
            iv[8 + k] = buf[at + 1 + k]
        if not gcm.open(self.ivm, self.aad, buf, at + 5, end - TAG_LEN, buf, end - TAG_LEN):
            return False
        ic = X.uint(buf, at + 1, 4)
        if ic <= self.bic:
            self.stats["replays"] += 1
            return False
        if not self.server.store.put("dlms_bic", ic.to_bytes(4, "big")):
            return False  # the counter not kept: nothing done
        self.bic = ic
        return self._apply(buf, at + 5, end - TAG_LEN)

    def _apply(self, buf, p, end):
        # Set-Request-Normal: C1 01 invoke | class OBIS attr | selection 0 | Data
        # Action-Request-Normal: C3 01 invoke | class OBIS method | 1 | Data
        if end - p < 14 or buf[p + 1] != 1 or buf[p + 2] & _CONFIRMED:
            return False
        tag = buf[p]
        i = C.find(X.uint(buf, p + 3, 2), buf, p + 5)
        sel = buf[p + 11]
        if i < 0 or not self._allowed(tag, i, sel) or buf[p + 12] != (1 if tag == ACTION_REQUEST else 0):
            return False
        data = p + 13
        if X.skip(buf, data, end) != end:
            return False
        if tag == SET_REQUEST:
            return self.server.objects.set(i, sel, buf, data, end) == C.OK
        shift, _ = X.read_int(buf, data, end)  # shift_time
        if buf[data] != X.S16 or not -SHIFT_MAX <= shift <= SHIFT_MAX:
            return False
        t = self.server.model.get(R.CLOCK) + shift
        return valid_time(t) and B.write(self.server.model, R.CLOCK, t.to_bytes(4, "big")) == B.OK

    def _allowed(self, tag, i, sel):
        obj = C.OBJECTS[i]
        for a in ALLOWED:
            if a[0] == tag and a[1] == obj[C.O_CLASS] and a[2] == obj[C.O_OBIS] and a[3] == sel:
                return True
        return False
