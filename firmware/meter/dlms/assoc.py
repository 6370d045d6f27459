# The application association of the xDLMS server (EN 62056-5-3 9.4, CLC/TS
# 50568-8 4.6): one association at a time, LN referencing; authentication
# none (public), LLS (reader) and HLS-GMAC (manager, suite 0: every xDLMS APDU
# general-glo-ciphered, authenticated and encrypted). The services of an
# association are meter/dlms/server.py's.
#
# Keys and counters on flash (meter/storage.py records, project choices):
#   dlms_keys  EK (16) | AK (16) | CRC-32 (4): suite 0 global keys
#   dlms_lls   the LLS secret (1..16 bytes)
#   dlms_ic    the meter's invocation counter reserved so far (4): counters are
#              taken from blocks of IC_BLOCK written ahead, so one is never
#              used twice whatever the power cuts
#   dlms_cic   the client's last accepted invocation counter (4), written
#              before any request with an effect (SET, ACTION, association)
# Receive path as a reject ladder: system title, security control, GCM tag,
# and only then the invocation counter, committed once the APDU authenticated.
from meter.compat import const
from meter.crypto import crc32
from meter.errors import DecodeError
from meter.dlms import acse as A
from meter.dlms import axdr as X
from meter.dlms import cosem as C
from meter.dlms.cl import MTU
from meter.dlms.gcm import TAG_LEN, Gcm
from meter.dlms.objlist import ObjectList

# exception-response: state-error, service-error
SERVICE_NOT_ALLOWED = const(1)
SERVICE_UNKNOWN = const(2)
OPERATION_NOT_POSSIBLE = const(1)
SERVICE_NOT_SUPPORTED = const(2)
OTHER_REASON = const(3)
PDU_TOO_LONG = const(4)
DECIPHERING_ERROR = const(5)
INVOCATION_COUNTER_ERROR = const(6)

GENERAL_GLO_CIPHERING = const(0xDB)
GLO_GET = const(0xC8)  # service-specific glo requests; their responses are tag + 4
GLO_SET = const(0xC9)
GLO_ACTION = const(0xCB)
_GET_REQUEST = const(0xC0)
SC_SUITE0 = const(0x30)  # security control: authenticated and encrypted, suite 0
SC_AUTH = const(0x10)  # authenticated only: HLS-GMAC
# conformance offered: general-protection, block-transfer-with-get, -with-set,
# -with-action, multiple-references, get, set, action
CONF_GET = const(0x000010)
CONF_SET = const(0x000008)
CONF_ACTION = const(0x000001)
CONF_BLOCK_GET = const(0x001000)
CONF_BLOCK_SET = const(0x000800)
CONF_BLOCK_ACTION = const(0x000400)
CONF_LIST = const(0x000200)  # multiple-references: GET with list
CONFORMANCE = const(0x400000 | CONF_BLOCK_GET | CONF_BLOCK_SET | CONF_BLOCK_ACTION | CONF_LIST | CONF_GET | CONF_SET
                    | CONF_ACTION)
MIN_PDU = const(64)  # the smallest client-max-receive-pdu-size accepted
IC_BLOCK = const(64)  # meter invocation counters reserved on flash at a time
IC_MAX = const(0xFFFFFFFF)
LONG_MAX = const(2048)  # the largest value gathered or listed in RAM (the object list and profiles stream)
CIPHER_OVERHEAD = const(30)  # DB, title, length, SC, IC and tag around a ciphered APDU

IDLE = const(0)
PENDING = const(1)  # HLS: waiting for f(StoC)
ASSOCIATED = const(2)


class Reject(Exception):
    """A request refused with an exception-response."""

    def __init__(self, state, service, ic=-1):
        super().__init__(state, service)
        self.state = state
        self.service = service
        self.ic = ic


def random_bytes(n):
    from os import urandom

    return urandom(n)


class Association:
    """The association's state, keys and counters, the AARQ and HLS, suite 0
    ciphering, and the attributes of the association and security setup objects.
    The xDLMS services are its subclass's (meter/dlms/server.py)."""

    def __init__(self, model, store, title, random=random_bytes):
        """title: the meter's 8-byte system title; random(n): n random bytes (challenges)."""
        self.model = model
        self.store = store
        self.title = bytes(title)
        self.random = random
        self.objects = C.Objects(model, self)
        self.objlist = ObjectList()
        self.aarq = A.Aarq()
        self.work = bytearray(MTU)  # the plaintext response of a ciphered request
        self.long = bytearray(LONG_MAX)  # an attribute value sent in blocks
        self.scratch = bytearray(64)  # the InitiateResponse
        self.iv = bytearray(12)  # system title | invocation counter
        self.ivm = memoryview(self.iv)
        self.w_resp = X.Writer(self.work)  # Writers made once, reset per frame
        self.w_work = X.Writer(self.work)
        self.w_long = X.Writer(self.long)
        self.w_iv = X.Writer(self.iv)
        self.stats = {"associations": 0, "rejected": 0, "exceptions": 0, "deciphering": 0, "replays": 0}
        self.load_keys()
        raw = store.get("dlms_ic")
        self.ic = self.ic_end = int.from_bytes(raw, "big") if raw else 0
        raw = store.get("dlms_cic")
        # the client's floor: -1 when none is stored, so that its first counter may be 0
        self.cic = self.cic_saved = int.from_bytes(raw, "big") if raw else -1
        self._release()

    def load_keys(self):
        """Take the keys and the LLS secret from the store (at boot, after provisioning)."""
        store = self.store
        self.gcm = None
        self.ak = b""
        keys = store.get("dlms_keys")
        if keys is not None and len(keys) == 36 and crc32(keys[:32]) == int.from_bytes(keys[32:], "big"):
            self.gcm = Gcm(keys[:16])
            self.ak = bytes(keys[16:32])
        self.aad = (b"\x30", self.ak)  # the AAD of an authenticated and encrypted APDU: SC | AK
        self.lls = store.get("dlms_lls") or b""

    def _release(self):
        self.state = IDLE
        self.level = C.PUBLIC
        self.ciphered = False
        self.client_title = b""
        self.conformance = 0
        self.max_pdu = MIN_PDU
        self.stoc = b""
        self.ctos = b""
        self.aarq_ic = 0
        self._long_len = 0  # a GET with blocks in progress: length, next block, its invoke-id
        self._block = 0
        self._block_size = 0
        self._invoke = 0
        self._in = 0  # a SET or ACTION arriving in blocks: its request tag (0: none)

    # ---- counters
    def next_ic(self):
        """The meter's next invocation counter, reserved on flash first."""
        if self.ic >= IC_MAX:
            raise Reject(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE)
        if self.ic >= self.ic_end:
            end = min(IC_MAX, self.ic + IC_BLOCK)
            if not self.store.put("dlms_ic", end.to_bytes(4, "big")):
                raise Reject(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE)
            self.ic_end = end
        self.ic += 1
        return self.ic

    def _commit_cic(self, ic, persist):
        # the client's counter, accepted only now that its APDU authenticated
        self.cic = ic
        if persist and ic > self.cic_saved:
            if not self.store.put("dlms_cic", ic.to_bytes(4, "big")):
                raise Reject(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE)
            self.cic_saved = ic

    # ---- suite 0 ciphering
    def _gcm(self):
        gcm = self.gcm
        if gcm is None:  # no keys provisioned: nothing ciphered is served
            raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
        return gcm

    def _open(self, buf, at, end, title):
        """Check and decrypt SC | IC | ciphertext | tag at buf[at:end] from the
        client `title`; return (plaintext start, end, IC). Rejects in the
        ladder's order; the counter is not committed here."""
        gcm = self._gcm()
        if end - at < 5 + TAG_LEN:
            raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
        if buf[at] != SC_SUITE0:
            self.stats["deciphering"] += 1
            raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
        ic = X.uint(buf, at + 1, 4)
        iv = self.iv
        for k in range(8):
            iv[k] = title[k]
        for k in range(4):
            iv[8 + k] = buf[at + 1 + k]
        if not gcm.open(self.ivm, self.aad, buf, at + 5, end - TAG_LEN, buf, end - TAG_LEN):
            self.stats["deciphering"] += 1
            raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
        if ic <= self.cic:
            self.stats["replays"] += 1
            raise Reject(SERVICE_NOT_ALLOWED, INVOCATION_COUNTER_ERROR, self.cic + 1)
        return at + 5, end - TAG_LEN, ic

    def _decipher(self, req, n):
        """The plaintext span of a ciphered request: general-glo-ciphering
        (DB | title | ciphered content) or a service-specific glo APDU (C8
        get, C9 set, CB action: tag | ciphered content, the service inside
        the one its tag names)."""
        tag = req[0]
        if tag == GENERAL_GLO_CIPHERING:
            title = self.client_title
            if n < 10 or req[1] != 8:
                raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
            for k in range(8):
                if req[2 + k] != title[k]:
                    raise Reject(SERVICE_NOT_ALLOWED, DECIPHERING_ERROR)
            at = 10
        elif tag == GLO_GET or tag == GLO_SET or tag == GLO_ACTION:
            at = 1
        else:
            raise Reject(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE)
        size, at = X.get_len(req, at, n)
        if at + size != n:
            raise DecodeError("ciphered APDU", "length")
        start, end, ic = self._open(req, at, n, self.client_title)
        if tag != GENERAL_GLO_CIPHERING and req[start] != tag - 8:
            raise Reject(SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        self._commit_cic(ic, req[start] != _GET_REQUEST)
        return start, end

    def _seal(self, buf, at, n, w, iv_title):
        # SC | IC | ciphertext | tag of buf[at:at + n] (already in w's buffer at w.n)
        ic = self.next_ic()
        iv = self.iv
        for k in range(8):
            iv[k] = iv_title[k]
        self.w_iv.put32(8, ic)
        w.byte(SC_SUITE0)
        w.uint(ic, 4)
        start = w.n
        w.raw(buf, at, at + n)
        w._room(TAG_LEN)
        self._gcm().seal(self.ivm, self.aad, w.buf, start, start + n, w.buf, w.n)
        w.n += TAG_LEN

    def _encipher(self, plain, n, w, tag=GENERAL_GLO_CIPHERING):
        """The response plain[0:n] ciphered as the request was: general-glo
        with the meter's title, or the glo response of a glo request (tag + 4)."""
        if tag == GENERAL_GLO_CIPHERING:
            w.byte(GENERAL_GLO_CIPHERING)
            w.byte(len(self.title))
            w.raw(self.title)
        else:
            w.byte(tag + 4)
        w.length(5 + n + TAG_LEN)
        self._seal(plain, 0, n, w, self.title)
        return w.n

    # ---- association
    def _reject(self, w, ctx, diag, ui=None, ui_len=0):
        self.stats["rejected"] += 1
        self._release()
        A.aare(w, ctx if ctx > 0 else A.CTX_LN, A.REJECTED_PERMANENT, diag, ui=ui, ui_len=ui_len)
        return w.n

    def _associate(self, req, n, w):
        self._release()  # a new AARQ ends any association (one at a time)
        q = self.aarq.parse(req, 0, n)
        ctx, mech = q.context, q.mech
        if ctx != A.CTX_LN and ctx != A.CTX_LN_CIPHERED:
            return self._reject(w, ctx, A.DIAG_CONTEXT)
        if mech not in (A.MECH_NONE, A.MECH_LLS, A.MECH_HLS_GMAC):
            return self._reject(w, ctx, A.DIAG_MECH_UNKNOWN)
        # HLS-GMAC only with ciphering, ciphering only with HLS-GMAC: no weak mode
        if (ctx == A.CTX_LN_CIPHERED) != (mech == A.MECH_HLS_GMAC):
            return self._reject(w, ctx, A.DIAG_CONTEXT)
        if q.ui_len == 0:
            return self._reject(w, ctx, A.DIAG_NO_REASON)
        ui, ui_end = q.ui, q.ui + q.ui_len
        if ctx == A.CTX_LN_CIPHERED:
            if self.gcm is None or q.title_len != 8 or q.auth_len < 8 or q.auth_len > 64:
                return self._reject(w, ctx, A.DIAG_AUTH_FAILURE)
            if req[ui] != A.GLO_INITIATE_REQUEST:
                return self._reject(w, ctx, A.DIAG_NO_REASON)
            size, at = X.get_len(req, ui + 1, ui_end)
            title = bytes(req[q.title:q.title + 8])
            try:
                ui, ui_end, ic = self._open(req, at, at + size, title)
            except Reject:
                return self._reject(w, ctx, A.DIAG_AUTH_FAILURE)
            self._commit_cic(ic, True)
            self.client_title = title
            self.aarq_ic = ic
            self.ctos = bytes(req[q.auth:q.auth + q.auth_len])
        elif mech == A.MECH_LLS:
            if not self._lls_ok(req, q.auth, q.auth_len):
                return self._reject(w, ctx, A.DIAG_AUTH_FAILURE)
        version, proposed, client_pdu = A.initiate_request(req, ui, ui_end)
        iw = X.Writer(self.scratch)
        code = -1
        if version < A.DLMS_VERSION:
            code = A.INIT_VERSION_TOO_LOW
        elif client_pdu < MIN_PDU and client_pdu != 0:
            code = A.INIT_PDU_TOO_SHORT
        elif proposed & CONFORMANCE == 0:
            code = A.INIT_CONFORMANCE
        if code >= 0:
            A.initiate_error(iw, code)
            return self._reject(w, ctx, A.DIAG_NO_REASON, self.scratch, iw.n)
        self.conformance = proposed & CONFORMANCE
        self.max_pdu = MTU if client_pdu == 0 or client_pdu > MTU else client_pdu
        A.initiate_response(iw, self.conformance, MTU)
        self.stats["associations"] += 1
        if mech != A.MECH_HLS_GMAC:
            self.state = ASSOCIATED
            self.level = C.READER if mech == A.MECH_LLS else C.PUBLIC
            A.aare(w, ctx, A.ACCEPTED, A.DIAG_NULL, ui=self.scratch, ui_len=iw.n)
            return w.n
        self.state = PENDING
        self.ciphered = True
        self.stoc = self.random(16)
        # glo-initiateResponse: 28 | length | SC | IC | ciphered InitiateResponse | tag
        plain_len = iw.n
        uw = X.Writer(self.work)
        uw.byte(A.GLO_INITIATE_RESPONSE)
        uw.length(5 + plain_len + TAG_LEN)
        self._seal(self.scratch, 0, plain_len, uw, self.title)
        A.aare(w, ctx, A.ACCEPTED, A.DIAG_AUTH_REQUIRED, self.title, A.MECH_HLS_GMAC, self.stoc, self.work, uw.n)
        return w.n

    def _lls_ok(self, buf, at, n):
        secret = self.lls
        if not secret or n != len(secret):
            return False
        diff = 0
        for k in range(n):
            diff |= buf[at + k] ^ secret[k]
        return diff == 0

    def _hls_reply(self, req, off, end, w):
        """Association LN method 1 with f(StoC): SC | IC | GMAC(SC | AK | StoC)."""
        start, n, _ = X.read_octets(req, off, end)
        if n != 5 + TAG_LEN or req[start] != SC_AUTH:
            return False
        ic = X.uint(req, start + 1, 4)
        if ic <= self.aarq_ic or ic > self.cic:  # after the AARQ's, not after the carrying APDU's
            return False
        iv = self.iv
        for k in range(8):
            iv[k] = self.client_title[k]
        for k in range(4):
            iv[8 + k] = req[start + 1 + k]
        gcm = self._gcm()
        if not gcm.open(self.ivm, (b"\x10", self.ak, self.stoc), b"", 0, 0, req, start + 5):
            return False
        # f(CtoS) with the meter's own counter, the answer's data
        ic = self.next_ic()
        f = bytearray(5 + TAG_LEN)
        f[0] = SC_AUTH
        X.Writer(f).put32(1, ic)
        for k in range(8):
            iv[k] = self.title[k]
        for k in range(4):
            iv[8 + k] = f[1 + k]
        gcm.seal(self.ivm, (b"\x10", self.ak, self.ctos), b"", 0, 0, f, 5)
        w.octets(f)
        return True

    # ---- attributes of the association and security setup objects
    def association_attr(self, attr, w):
        if attr == 2:  # whole when it fits w (a GET with list); a GET of it alone goes in blocks
            n = self.objlist.select(self.level)
            if w.n + n > len(w.buf):
                return C.OTHER
            self.objlist.emit(w, 0, n)
            return C.OK
        if attr == 5:  # xDLMS context info
            w.group(X.STRUCT, 6)
            w.byte(X.BITS)
            w.byte(24)
            w.uint(self.conformance, 3)
            w.value(X.U16, MTU)
            w.value(X.U16, self.max_pdu)
            w.value(X.U8, A.DLMS_VERSION)
            w.value(X.S8, 0)
            w.octets(b"")
            return C.OK
        if attr == 8:
            w.value(X.ENUM, 2 if self.state == ASSOCIATED else (1 if self.state == PENDING else 0))
            return C.OK
        if attr == 9:
            w.octets(C.SECURITY_OBIS)
            return C.OK
        return C.UNAVAILABLE

    def security_attr(self, attr, w):
        if attr == 2:
            w.value(X.ENUM, 3 if self.ciphered else 0)  # v0 policy: authenticated and encrypted
        elif attr == 3:
            w.value(X.ENUM, 0)  # suite 0: AES-GCM-128
        elif attr == 4:
            w.octets(self.client_title)
        elif attr == 5:
            w.octets(self.title)
        return C.OK


def system_title(aca):
    """The meter's system title: "SM" and its ACA (project choice)."""
    return b"SM" + bytes(aca)


def provision(store, ek, ak, lls=None):
    """Write the suite 0 keys (and the LLS secret) into the meter's store;
    False if the store refused a record."""
    keys = bytes(ek) + bytes(ak)
    if len(keys) != 32:
        raise ValueError("EK and AK are 16 bytes each")
    ok = store.put("dlms_keys", keys + crc32(keys).to_bytes(4, "big"))
    if lls is not None:
        if not 1 <= len(lls) <= 16:
            raise ValueError("the LLS secret is 1 to 16 bytes")
        ok = store.put("dlms_lls", bytes(lls)) and ok
    return ok
