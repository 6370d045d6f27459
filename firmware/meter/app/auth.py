# The meter's receive rules for authenticated messages, around the plain
# application layer (security is a wrapper, not woven into the services).
#
# Reject ladder for an authenticated request R carrying MON c:
#   1. keys provisioned?            no  -> plain NACK A-Node, code 10
#   2. a request ATTR we serve?     no  -> plain NACK A-Node, code 6
#   3. LMON used up?                yes -> plain NACK A-Node, code 11
#   4. R == last accepted request?  yes -> the cached answer, nothing else
#   5. decrypt, verify with c = LMON + 1 (a key-change activate: with the
#      staged keys)                 no  -> NACK A-Node AUTH (245) PAR1 10 with
#                                          the current LMON (ECB, read key),
#                                          TMAC over nack_etm(R), rate-limited:
#                                          beyond it, silence
#   6. commit c (the flash ceiling first; refused -> drop, counted)
#   7. serve with the rights of the key and mode: K1 in ECB writes; K1 in CTR
#      or MAC-only, and K2, only read (docs/security.md, W1)
#   8. seal the answer with MON = c and the request's ECC, cache it, send it
# CHL.REQ (112) is answered with CHL.RESP (113): the current LMON, ECB/K2,
# rate-limited with NACK-10; N is taken as on air, whatever the ECC (not
# decrypted, as the public concentrator keeps it). Order and reasons for 6-8:
# meter/app/lmon.py (ResponseCache). In ECB, DATA is padded both ways
# (meter/app/security.py).
from meter import attrs as A
from meter.app import keychange as KC
from meter.model import registers as R
from meter.app import security as S
from meter import timers as T
from meter.app.services import write_nack
from meter.budget import TokenBucket
from meter.compat import ticks_ms
from meter.model.engine import Engine
from meter.errors import DecodeError
from meter.link.mac import MAX_LLC_DATA

_KEY_CHANGE_AUTH = KC.KEY_CHANGE + 100
# Etm* of a request shorter than 8 bytes (project choice, docs/protocol.md):
# the public code keeps the Etm* of an earlier request then, zeros after a reset.
_ETM_SHORT = bytes(S.ETM_LEN)


def grant_for(ecc):
    """The rights an authenticated request under `ecc` proved. Only ECB leaves
    an intercepted request no bits to steer (W1): K1 in CTR or MAC-only
    reads, as K2 does."""
    ecb = S.ecc_mode(ecc) == S.MODE_ECB
    return R.ACC_WRITE_KEY if ecb and S.ecc_key(ecc) == S.KEY_WRITE else R.ACC_READ_KEY


def nack_etm(lsdu):
    """Etm* that the NACK refusing `lsdu` covers: its last 8 bytes as on air
    whenever it has 8 or more (the public rule, so also for requests too short
    for DATE-TIME and TMAC), else _ETM_SHORT. The concentrator verifies a
    NACK over the same bytes of its own request."""
    n = len(lsdu)
    return bytes(lsdu[n - S.ETM_LEN:n]) if n >= S.ETM_LEN else _ETM_SHORT


def _answer_ecc(attr, ecc):
    """The ECC an answer with ATTR goes with, first or repeated from the cache: an
    authenticated NACK is ECB under the read key, anything else mirrors the request."""
    return S.ECC_CHALLENGE if attr == A.NACK_A_AUTH or attr == A.NACK_B_AUTH else ecc


class SecureLayer:
    def __init__(self, aca, app, lmon, keystore, cache, clock, on_keys_changed=None):
        self.aca = bytes(aca)  # natural order: the AL form of the address
        self.app = app
        self.lmon = lmon
        self.keystore = keystore
        self.cache = cache
        self._clock = clock
        self.on_keys_changed = on_keys_changed
        self._limit = TokenBucket(T.AUTH_NACK_BURST, T.AUTH_NACK_REFILL_MS)
        self.work = bytearray(MAX_LLC_DATA + S.AUTH_OVERHEAD)
        self.resp = bytearray(MAX_LLC_DATA)
        self._held = None  # (request, ECC, ECB?, MON) of a deferred answer
        self.stats = {"accepted": 0, "auth_failures": 0, "repeats": 0, "challenges": 0, "refused": 0,
                      "silenced": 0}

    def handles(self, attr):
        return attr == A.CHL_REQ or S.is_authenticated(attr)

    def _served(self, attr):
        """Is attr the authenticated variant of a request this meter serves?"""
        if attr < 102 or attr > A.REPROG_BROADCAST + 100:  # up to REPROG_BROADCAST's authenticated variant
            return False
        return attr == _KEY_CHANGE_AUTH or self.app.serves(attr - 100)

    def _answer(self, lsdu):
        n = len(lsdu)
        self.resp[0:n] = lsdu
        return n

    def _nack_plain(self, code):
        self.stats["refused"] += 1
        return write_nack(self.resp, code)

    def _may_answer(self, now_ms):
        # NACK-10 and CHL.RESP cost a CMAC each and airtime: rate-limited.
        if self._limit.take(ticks_ms() if now_ms is None else now_ms):
            return True
        self.stats["silenced"] += 1
        return False

    def handle(self, buf, off, n, ecc, max_resp, now_ms=None):
        """Serve the LSDU buf[off:off+n]; return (answer length in self.resp, its ECC).
        Length 0: no answer. now_ms: ticks of the frame (the rate limit's clock)."""
        st = self.stats
        keys = self.keystore.keys()
        if keys is None:
            return self._nack_plain(A.NACK_AUTH), 0
        req = memoryview(buf)[off:off + n]
        attr = buf[off]
        if attr == A.CHL_REQ:
            try:
                challenge = S.challenge_of(req[1:])
            except DecodeError:
                return self._nack_plain(A.NACK_BAD_LENGTH), 0
            if not self._may_answer(now_ms):
                return 0, 0
            st["challenges"] += 1
            return self._answer(S.seal_challenge_resp(keys, self.aca, self.lmon.value, challenge)), S.ECC_CHALLENGE
        if not self._served(attr):  # answers and unknown ATTRs are not requests: nothing to verify
            return self._nack_plain(A.NACK_UNSUPPORTED), 0
        if self.lmon.exhausted:
            return self._nack_plain(A.NACK_LMON_EXHAUSTED), 0
        cached = self.cache.lookup(req, ecc)
        if cached is not None:
            st["repeats"] += 1
            return self._answer(cached), _answer_ecc(cached[0], ecc)
        work = self.work
        work[0:n] = req
        activating = False
        try:
            end, _when = S.open_into(keys, self.aca, work, n, self.lmon.candidate(), ecc)
        except DecodeError:  # AuthError and malformed alike: the sender must resynchronise
            end = self._open_with_staged(work, n, ecc)
            if end < 0:
                st["auth_failures"] += 1
                if not self._may_answer(now_ms):
                    return 0, 0
                nack = S.seal_auth_nack(keys, self.aca, self.lmon.value, nack_etm(req))
                return self._answer(nack), S.ECC_CHALLENGE
            activating = True
        if not self.lmon.commit():
            st["refused"] += 1
            return 0, 0
        st["accepted"] += 1
        ecb = S.ecc_mode(ecc) == S.MODE_ECB
        grant = grant_for(ecc)
        room = min(max_resp, MAX_LLC_DATA) - S.AUTH_OVERHEAD
        if ecb:
            room = (room - 1) // 16 * 16  # the answer, padded, still fits
            try:
                end = S.ecb_unpad(work, end)
            except DecodeError:
                end = -1
        work[0] = attr - 100
        if end < 0:
            size = self.app.refuse(A.NACK_BAD_LENGTH)
        elif activating:
            size = self._activate()
            keys = self.keystore.keys()  # the answer goes under the new keys
        elif work[0] == KC.KEY_CHANGE:
            size = self._stage(keys, work, end, grant)
        else:
            size = self.app.handle(work, 0, end, room, grant)
        if self.app.deferred:  # a B-Node exchange: sealed by finish() when it ends
            self._held = (bytes(req), ecc, ecb, self.lmon.value)
            return 0, ecc
        return self._seal(keys, req, size, ecc, ecb, self.lmon.value)

    def finish(self, size):
        """Seal the deferred answer now in app.resp[0:size] (meter/app/bnode.py)
        as the request held by handle() asked; returns (length in self.resp, ECC)."""
        held = self._held
        if held is None:
            return 0, 0
        req, ecc, ecb, mon = held
        self._held = None
        keys = self.keystore.keys()
        if keys is None:  # keys gone meanwhile: nothing to seal with
            return 0, 0
        return self._seal(keys, req, size, ecc, ecb, mon)

    def _seal(self, keys, req, size, ecc, ecb, mon):
        ans = self.app.resp
        if ans[0] == A.NACK_A or ans[0] == A.NACK_B:
            # An authenticated NACK has the shape of NACK-10: PAR1 only, ECB/K2, MON = LMON.
            attr = A.NACK_A_AUTH if ans[0] == A.NACK_A else A.NACK_B_AUTH
            lsdu = S.seal_auth_nack(keys, self.aca, mon, nack_etm(req), ans[1], attr)
            answer_ecc = _answer_ecc(attr, ecc)
            size = self._answer(lsdu)
        else:
            r = self.resp
            r[0:size] = memoryview(ans)[0:size]
            r[0] = S.auth_attr(r[0])
            if ecb:
                size = S.ecb_pad(r, size)
            size = S.seal_into(keys, self.aca, r, size, mon, ecc, self._clock())
            answer_ecc = ecc
        # Only a request that changed something must find its answer after a reboot
        # (a WRITE, a table write, a command, a key change: the application says so).
        self.cache.put(req, memoryview(self.resp)[0:size], ecc, persist=self.app.changed)
        return size, answer_ecc

    # ---- key change (meter/app/keychange.py)
    def _open_with_staged(self, work, n, ecc):
        """End of DATA of a key-change activate that opens with the staged
        keys (the sender proves it holds them), else -1."""
        staged = self.keystore.pending()
        if staged is None or work[0] != _KEY_CHANGE_AUTH or ecc != S.ECC_ECB_WRITE:
            return -1
        try:
            end, _when = S.open_into(staged[2], self.aca, work, n, self.lmon.candidate(), ecc)
            dend = S.ecb_unpad(work, end)
        except DecodeError:
            return -1
        if not KC.is_activate(work, 1, dend - 1, staged[0], staged[1]):
            return -1
        return end

    def _stage(self, keys, work, end, grant):
        app = self.app
        if grant != R.ACC_WRITE_KEY:
            return app.refuse(A.NACK_ACCESS_DENIED)
        try:
            k1, k2 = KC.open_stage(keys.write, work, 1, end - 1)
        except DecodeError:
            return app.refuse(A.NACK_BAD_VALUE)
        if not self.keystore.stage(k1, k2):
            return app.refuse(A.NACK_NOT_STORED)
        return app.ack(changed=True)

    def _activate(self):
        app = self.app
        if not self.keystore.activate():
            return app.refuse(A.NACK_NOT_STORED)
        if self.on_keys_changed is not None:
            self.on_keys_changed()
        return app.ack(changed=True)


class SecurityState(Engine):
    """Owner of the security registers: LMON, the counters of the first
    layer made, whether keys are provisioned, the key changes."""

    def __init__(self, model, lmon, keystore, layers):
        Engine.__init__(self, model)
        self.lmon = lmon
        self.keystore = keystore
        self.layers = layers
        model.register("security", self)

    def reg_get(self, reg):
        if reg == R.LMON:
            return self.lmon.value
        if reg == R.SECURITY_COUNTERS:
            st = self.layers[0].stats
            return ((st["accepted"] & 0xFFFFFFFF) << 32) | (st["auth_failures"] & 0xFFFFFFFF)
        if reg == R.SECURITY_STATE:
            return (1 if self.keystore.provisioned else 0) | (4 if self.model.get(R.READING_MODE) else 0)
        return self.model.stored(reg)

    def keys_changed(self):
        m = self.model
        m.set(R.KEY_CHANGES, (m.get(R.KEY_CHANGES) + 1) & 0xFFFF)
        alarms = m.owner(R.EXT_STATUS)
        if alarms is not None:  # the metering's alarms: the alarm bit and the event log
            alarms.keys_changed()


def security_factory(aca, store, model, clock):
    """The meter's security state from its store, and a factory that puts a
    SecureLayer over the node's application layer (MeterNode(security=...)).
    The security registers answer from that state (SecurityState)."""
    from meter.app.lmon import KeyStore, LmonCounter, ResponseCache

    lmon = LmonCounter(store)
    keystore = KeyStore(store)
    cache = ResponseCache(store)
    layers = []
    state = SecurityState(model, lmon, keystore, layers)

    def make(app):
        layer = SecureLayer(aca, app, lmon, keystore, cache, clock, state.keys_changed)
        layers.append(layer)
        return layer

    return make
