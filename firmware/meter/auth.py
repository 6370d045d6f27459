# The meter's receive rules for authenticated messages, around the plain
# application layer (security is a wrapper, not woven into the services).
#
# Reject ladder for an authenticated request R carrying MON c:
#   1. keys provisioned?            no  -> plain NACK A-Node, code 10
#   2. R == last accepted request?  yes -> the cached answer, nothing else
#   3. decrypt, verify with c = LMON + 1
#                                   no  -> NACK A-Node AUTH (245) PAR1 10 with
#                                          the current LMON (ECB, read key)
#   4. commit c (the flash ceiling first; refused -> drop, counted)
#   5. serve with the rights of the key: K2 reads, K1 reads and (encrypted) writes
#   6. seal the answer with MON = c and the request's ECC, cache it, send it
# CHL.REQ (112) is answered with CHL.RESP (113): the current LMON, ECB/K2.
# Order and reasons for 4-6: see meter/lmon.py (ResponseCache).
from meter import attrs as A
from meter import registers as R
from meter import security as S
from meter.errors import DecodeError
from meter.mac import MAX_LLC_DATA


class SecureLayer:
    def __init__(self, aca, app, lmon, keystore, cache, clock):
        self.aca = bytes(aca)  # natural order: the AL form of the address
        self.app = app
        self.lmon = lmon
        self.keystore = keystore
        self.cache = cache
        self._clock = clock
        self.work = bytearray(MAX_LLC_DATA + S.AUTH_OVERHEAD)
        self.resp = bytearray(MAX_LLC_DATA)
        self.stats = {"accepted": 0, "auth_failures": 0, "repeats": 0, "challenges": 0, "refused": 0}

    def handles(self, attr):
        return attr == A.CHL_REQ or S.is_authenticated(attr)

    def _answer(self, lsdu):
        n = len(lsdu)
        self.resp[0:n] = lsdu
        return n

    def _nack_plain(self, code):
        r = self.resp
        r[0] = A.NACK_A
        r[1] = code
        r[2] = 0
        r[3] = 0
        return 4

    def handle(self, buf, off, n, ecc, max_resp):
        """Serve the LSDU buf[off:off+n]; return (answer length in self.resp, its ECC).
        Length 0: no answer."""
        st = self.stats
        keys = self.keystore.keys()
        if keys is None:
            st["refused"] += 1
            return self._nack_plain(A.NACK_AUTH), 0
        req = memoryview(buf)[off:off + n]
        if buf[off] == A.CHL_REQ:
            try:
                challenge = S.challenge_of(req[1:])
            except DecodeError:
                return self._nack_plain(A.NACK_BAD_LENGTH), 0
            st["challenges"] += 1
            return self._answer(S.seal_challenge_resp(keys, self.aca, self.lmon.value, challenge)), S.ECC_CHALLENGE
        cached = self.cache.lookup(req, ecc)
        if cached is not None:
            st["repeats"] += 1
            return self._answer(cached), ecc
        work = self.work
        work[0:n] = req
        try:
            end, _when = S.open_into(keys, self.aca, work, n, self.lmon.candidate(), ecc)
        except DecodeError:  # AuthError and malformed alike: the sender must resynchronise
            st["auth_failures"] += 1
            etm = S.etm(req) if n >= 1 + S.AUTH_OVERHEAD else bytes(S.ETM_LEN)
            return self._answer(S.seal_auth_nack(keys, self.aca, self.lmon.value, etm)), S.ECC_CHALLENGE
        if not self.lmon.commit():
            st["refused"] += 1
            return 0, 0
        st["accepted"] += 1
        mon = self.lmon.value
        work[0] = S.plain_attr(work[0])
        # K1 grants writes only to encrypted requests: a MAC-only payload can be
        # replaced by anyone who intercepts it (docs/security.md, W1).
        write_ok = S.ecc_key(ecc) == S.KEY_WRITE and S.ecc_mode(ecc) != S.MODE_NONE
        grant = R.ACC_WRITE_KEY if write_ok else R.ACC_READ_KEY
        size = self.app.handle(work, 0, end, min(max_resp, MAX_LLC_DATA) - S.AUTH_OVERHEAD, grant)
        ans = self.app.resp
        if ans[0] == A.NACK_A:
            # An authenticated NACK has the shape of NACK-10: PAR1 only, ECB/K2, MON = LMON.
            lsdu = S.seal_auth_nack(keys, self.aca, mon, S.etm(req), ans[1])
            answer_ecc = S.ECC_CHALLENGE
            size = self._answer(lsdu)
        else:
            r = self.resp
            r[0:size] = memoryview(ans)[0:size]
            r[0] = S.auth_attr(r[0])
            size = S.seal_into(keys, self.aca, r, size, mon, ecc, self._clock())
            answer_ecc = ecc
        # Only a request that changed something must find its answer after a reboot
        # (a WRITE, a table write, a command: the application says so).
        changed = getattr(self.app, "changed", None)
        if changed is None:  # an application that does not say: everything but a READ
            changed = req[0] != S.auth_attr(A.READ_REQ)
        self.cache.put(req, memoryview(self.resp)[0:size], ecc, persist=changed)
        return size, answer_ecc


def security_factory(aca, store, model, clock):
    """The meter's security state from its store, and a factory that puts a
    SecureLayer over the node's application layer (MeterNode(security=...)).
    Also exposes LMON and the counters through their registers."""
    from meter.lmon import KeyStore, LmonCounter, ResponseCache

    lmon = LmonCounter(store)
    keystore = KeyStore(store)
    cache = ResponseCache(store)
    layers = []

    def make(app):
        layer = SecureLayer(aca, app, lmon, keystore, cache, clock)
        layers.append(layer)
        return layer

    def counters():
        st = layers[0].stats
        return ((st["accepted"] & 0xFFFFFFFF) << 32) | (st["auth_failures"] & 0xFFFFFFFF)

    model.keystore = keystore  # key registers (0x0300, 0x0301) change the keys through it
    model.provide(R.LMON, lambda: lmon.value)
    model.provide(R.SECURITY_COUNTERS, counters)
    return make
