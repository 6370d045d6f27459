# Network management of the meter (DSAP 2), sans-io: discovery, silencing,
# discovery through this meter acting as relay, registration, status, ping.
#
# Public messages (smitp-protocol reference, section 9), DATA after the ATTR:
#   ADDRESS.REQ  (90)  phase | TCR | AddToAddress | RightShiftAdd
#   ADDRESS.RESP (91)  ACA (6, natural order) | SIG | SNR | TX | FF FF FF
#   TCT_SET.REQ  (92)  TCT (1..255)
#   NACK.RESP   (247)  code (0 OK, 1 refused) | SIG | SNR | TX
#   REQADDR.REQ  (94)  as ADDRESS.REQ: this meter broadcasts it (RC, 64 slots)
#   REQADDR.RESP (95)  N (0..4) | N x the 12-byte ADDRESS.RESP DATA
# Project encodings of the DLMS profile's other services (docs/protocol.md):
#   REGISTER.REQ   (80) SCA (6, on-air order)        -> REGISTER.RESP
#   REGISTER.RESP  (81) code | SCA (6, zeros if none)   code 0 OK, 1 refused,
#                                                        2 not saved
#   DEREGISTER.REQ (82) -                             -> REGISTER.RESP
#   STATUS.REQ     (84) -                             -> STATUS.RESP
#   STATUS.RESP    (85) flags | TCT | SCA (6) | SIG | SNR | TX | rx (2) | bad (2)
#                       (frame counters of the node, big-endian, mod 65536)
#   PING.REQ       (86) echo (0..16)                  -> PING.RESP
#   PING.RESP      (87) SIG | SNR | TX | echo
# Answers: class S, back along the request's repeaters, ECC 0. A request in an RC
# discipline is answered in a random slot of that discipline; any other
# broadcast gets no answer. TCT_SET is answered only when the poll flag is
# set, every other request only when its class is not S.
from meter.compat import const, ticks_add, ticks_diff
from meter import attrs as A
from meter.link import mac
from meter import timers as T
from meter.phy.contract import Q_SIGNAL, Q_SNR, Q_IMPEDANCE, Q_IN_PHASE  # noqa: F401 - the quality list's indices
from meter.link.llc import DSAP_NM
from meter.storage import Store

RELAY_SLOTS = const(64)  # REQADDR: the relay's own ADDRESS.REQ uses 64 slots (public)
RELAY_RECORDS = const(4)  # REQADDR.RESP carries at most 4 answers (public)
RECORD_LEN = const(12)  # DATA of one ADDRESS.RESP
DEFAULT_TCT = const(0xFF)  # public default: not silenced
PING_MAX_ECHO = const(16)  # project choice: PING.RESP fits RA1 (20 bytes)
UNKNOWN = const(0xFF)  # a link-quality value the modem did not give
# NM frames go with ECC 0 (public). A request with another ECC is dropped, not
# decrypted (docs/protocol.md, "Plain ATTRs with ECC other than 0"); so every
# answer, REQADDR.RESP included (as in the public code), carries ECC 0.
NM_ECC = const(0)
# ADDRESS.REQ filter byte: index into the natural-order ACA. 5 = the least
# significant byte (first on air), as the public text names it; 0 = the most
# significant, which one vendor's code reads (docs/protocol.md, "Address filter
# byte"). Not a const(): a test switches it.
FILTER_ACA_BYTE = 5

# STATUS.RESP flags
ST_REGISTERED = const(0x01)
ST_SILENCED = const(0x02)  # TCT below the default
ST_RELAY_BUSY = const(0x04)  # collecting answers for a REQADDR.REQ
ST_ANSWER_PENDING = const(0x08)  # an RC answer waits for its slot

SCA_NONE = b"\x00\x00\x00\x00\x00\x00"
_SCA_RECORD = "sca"  # Store record name

_CODE_OK = const(0)
_CODE_REFUSED = const(1)
_CODE_NOT_SAVED = const(2)
_PHASE_SAME = const(1)
_DISC_RC_RELAY = const(0xF)  # RC4: 64 slots
RELAY_WINDOW_MS = T.ELABORATION_MS + (RELAY_SLOTS + 1) * T.NM_SLOT_MS  # REQADDR listening, one spare slot


def quality_bytes(quality, out, off):
    """Write SIG | SNR | TX for a received frame's quality at out[off:off+3].

    Units (project choice): SIG dBuV, SNR dB, TX impedance in 0.1 ohm; each
    rounded and clipped to 0..254; 0xFF where the modem gave nothing.
    """
    if quality is None:
        out[off] = out[off + 1] = out[off + 2] = UNKNOWN
        return
    out[off] = _q(quality[Q_SIGNAL], 1)
    out[off + 1] = _q(quality[Q_SNR], 1)
    out[off + 2] = _q(quality[Q_IMPEDANCE], 10)


def _q(v, scale):
    if v is None:
        return UNKNOWN
    v = int(v * scale + 0.5) if v > 0 else 0
    return 254 if v > 254 else v


def address_filter(aca_byte, add, shift):
    """ADDRESS.REQ filter: answer if (ACA byte + AddToAddress) mod 2^RightShiftAdd == 0
    (the byte: FILTER_ACA_BYTE)."""
    if shift > 16:  # a wider mask only leaves the sum 0; no big integers needed
        shift = 16
    return ((aca_byte + add) & ((1 << shift) - 1)) == 0


def valid_sca(buf, off):
    """An SCA a meter may hold: logical form (byte 5 = 03), not the broadcast."""
    if buf[off + 5] != 0x03:
        return False
    for i in range(5):
        if buf[off + i] != 0xFF:
            return True
    return False


class NetMgmt:
    def __init__(self, aca, air, store=None, seed=0, counters=None):
        """aca: natural order; air: on-air order; store: keeps the SCA; seed:
        mixed into the slot choice; counters: the node's stats ("rx", "bad")."""
        self.aca = aca
        self.counters = counters
        self.air = air
        self.store = store if store is not None else Store()
        self.tct = DEFAULT_TCT
        self.sca = None
        saved = self.store.get(_SCA_RECORD)
        if saved is not None and len(saved) == 6 and valid_sca(saved, 0):
            self.sca = bytes(saved)
        # Slot generator seed: every ACA byte mixed in by a multiply and a
        # shift, so that meters with consecutive ACAs (a maker's batch) do not
        # draw related slots; a linear mix left them colliding round after round.
        r = seed & 0xFFFF
        for b in aca:
            r = ((r ^ b) * 0x2F4B + 0x3C6D) & 0xFFFF  # product < 2**30: a small int on 32-bit ports
            r ^= r >> 7
        self._rnd = r or 0xACE1
        self._apdu = bytearray(mac.MAX_LLC_DATA)
        # one answer waiting for its RC slot
        self._later = bytearray(mac.MAX_FRAME)
        self._later_n = 0
        self._later_at = 0
        # REQADDR: the request's route back, its parameters and what was heard
        self._relay_busy = False
        self._relay_end = 0
        self._relay_route = bytearray(mac.MAX_REPEATERS * mac.ADDR_LEN)
        self._relay_reps = 0
        self._relay_from = air  # the address REQADDR.RESP goes from (the request's form)
        self._recs = bytearray(1 + RELAY_RECORDS * RECORD_LEN)
        self.stats = {"requests": 0, "answered": 0, "slotted": 0, "bad": 0, "filtered": 0,
                      "busy": 0, "collected": 0, "overflow": 0, "relayed": 0}

    # ---- random slot (xorshift16: no big integers on 32-bit ports)
    def random_slot(self, slots):
        x = self._rnd
        x ^= (x << 7) & 0xFFFF
        x ^= x >> 9
        x ^= (x << 8) & 0xFFFF
        self._rnd = x
        return x % slots

    # ---- requests addressed to this meter (or broadcast), DSAP 2
    def serve(self, f, broadcast, now, quality, out):
        """Handle a NM request; return the length of a frame to send now in `out` (0: none)."""
        st = self.stats
        st["requests"] += 1
        buf = f.buf
        attr = buf[f.data]
        n = f.data_len - 1  # DATA bytes after the ATTR
        d = f.data + 1
        r = self._apdu
        wanted = mac.DISCIPLINES[f.discipline][0] != mac.CLASS_S
        if f.ecc != NM_ECC:
            return self._bad()
        if attr == A.ADDRESS_REQ:
            if n != 4:
                return self._bad()
            if buf[d] == _PHASE_SAME and quality is not None and quality[Q_IN_PHASE] is False:
                return self._filtered()
            if self.tct < buf[d + 1] or not address_filter(self.aca[FILTER_ACA_BYTE], buf[d + 2], buf[d + 3]):
                return self._filtered()
            size = self._address_resp(quality)
        elif attr == A.TCT_SET_REQ:
            ok = n == 1 and buf[d] != 0
            if ok:
                self.tct = buf[d]
            r[0] = A.NACK_RESP
            r[1] = _CODE_OK if ok else _CODE_REFUSED
            quality_bytes(quality, r, 2)
            size = 5
            wanted = f.poll
        elif attr == A.REQADDR_REQ:
            if n != 4 or broadcast:
                return self._bad()
            return self._start_relay(f, now, out)
        elif attr == A.REGISTER_REQ:
            if broadcast:
                return self._bad()
            if n == 6 and valid_sca(buf, d):
                code = self._set_sca(memoryview(buf)[d:d + 6])
            else:
                code = _CODE_REFUSED
            size = self._register_resp(code)
        elif attr == A.DEREGISTER_REQ:
            code = self._set_sca(None)
            size = self._register_resp(code)
        elif attr == A.STATUS_REQ:
            size = self._status_resp(quality)
        elif attr == A.PING_REQ:
            if n > PING_MAX_ECHO:
                return self._bad()
            r[0] = A.PING_RESP
            quality_bytes(quality, r, 1)
            r[4:4 + n] = memoryview(buf)[d:d + n]
            size = 4 + n
        else:
            return self._bad()
        if not wanted:
            return 0
        return self._answer(f, broadcast, now, out, size)

    def _bad(self):
        self.stats["bad"] += 1
        return 0

    def _filtered(self):
        self.stats["filtered"] += 1
        return 0

    def _answer(self, f, broadcast, now, out, size):
        """Send self._apdu[0:size] back along f's route: now, in an RC slot, or not at all."""
        cls, _max, slots = mac.DISCIPLINES[f.discipline]
        if cls == mac.CLASS_RC:
            slot = self.random_slot(slots)
            self._later_n = self._encode_answer(f, self._later, size)
            self._later_at = ticks_add(now, T.ELABORATION_MS + slot * T.NM_SLOT_MS)
            self.stats["slotted"] += 1
            return 0
        if broadcast:
            return 0
        self.stats["answered"] += 1
        return self._encode_answer(f, out, size)

    def _encode_answer(self, f, out, size):
        addr = self._from(f)
        if addr is None:
            return 0
        return mac.answer(out, f, addr, NM_ECC, self._apdu, size)

    def _from(self, f):
        """The address an answer to f goes from: the SCA when f was addressed
        to it or came through 2-byte (SCA) repeater entries, else the ACA;
        None when f needs an SCA this meter does not hold."""
        buf = f.buf
        sca = self.sca
        if sca is not None and mac.same_addr(buf, f.addr, sca):
            return sca
        if f.rp_size == mac.ADDR_LEN or not f.repeaters:
            return self.air
        return sca

    def _address_resp(self, quality):
        r = self._apdu
        r[0] = A.ADDRESS_RESP
        r[1:7] = self.aca
        quality_bytes(quality, r, 7)
        r[10] = r[11] = r[12] = 0xFF
        return 1 + RECORD_LEN

    def _register_resp(self, code):
        r = self._apdu
        r[0] = A.REGISTER_RESP
        r[1] = code
        r[2:8] = self.sca if self.sca is not None else SCA_NONE
        return 8

    def _status_resp(self, quality):
        r = self._apdu
        flags = 0
        if self.sca is not None:
            flags |= ST_REGISTERED
        if self.tct < DEFAULT_TCT:
            flags |= ST_SILENCED
        if self._relay_busy:
            flags |= ST_RELAY_BUSY
        if self._later_n:
            flags |= ST_ANSWER_PENDING
        r[0] = A.STATUS_RESP
        r[1] = flags
        r[2] = self.tct
        r[3:9] = self.sca if self.sca is not None else SCA_NONE
        quality_bytes(quality, r, 9)
        c = self.counters
        rx = c.get("rx", 0) if c else 0
        bad = c.get("bad", 0) if c else 0
        r[12] = (rx >> 8) & 0xFF
        r[13] = rx & 0xFF
        r[14] = (bad >> 8) & 0xFF
        r[15] = bad & 0xFF
        return 16

    def _set_sca(self, sca):
        """Hold `sca` (None: none) and save it; return the REGISTER.RESP code."""
        self.sca = bytes(sca) if sca is not None else None
        if not self.store.put(_SCA_RECORD, self.sca if sca is not None else b""):
            return _CODE_NOT_SAVED
        return _CODE_OK

    # ---- REQADDR: discovery through this meter
    def _start_relay(self, f, now, out):
        if self._relay_busy:
            self.stats["busy"] += 1
            return 0
        addr = self._from(f)
        if addr is None:
            return self._bad()
        self._relay_from = addr
        reps = f.repeaters
        k = reps * f.rp_size
        self._relay_route[0:k] = memoryview(f.buf)[f.rp:f.rp + k]
        self._relay_reps = reps
        self._recs[0] = 0
        self._relay_busy = True
        self._relay_end = ticks_add(now, RELAY_WINDOW_MS)
        r = self._apdu
        r[0] = A.ADDRESS_REQ
        r[1:5] = memoryview(f.buf)[f.data + 1:f.data + 5]
        self.stats["relayed"] += 1
        return mac.encode(out, mac.BROADCAST, b"", _DISC_RC_RELAY, False, 0, False, DSAP_NM, NM_ECC, r, 5)

    def collect(self, f):
        """An uplink frame not for this node to repeat: keep it if it is an
        ADDRESS.RESP answering our REQADDR broadcast. True if kept."""
        if (not self._relay_busy or f.repeaters or f.dsap != DSAP_NM or f.ecc != NM_ECC
                or f.data_len != 1 + RECORD_LEN):
            return False
        buf = f.buf
        if buf[f.data] != A.ADDRESS_RESP:
            return False
        recs = self._recs
        count = recs[0]
        src = f.data + 1
        for i in range(count):  # the same meter twice: keep the first
            at = 1 + i * RECORD_LEN
            j = 0
            while j < mac.ADDR_LEN and recs[at + j] == buf[src + j]:
                j += 1
            if j == mac.ADDR_LEN:
                return True
        if count == RELAY_RECORDS:
            self.stats["overflow"] += 1
            return True
        at = 1 + count * RECORD_LEN
        recs[at:at + RECORD_LEN] = memoryview(buf)[src:src + RECORD_LEN]
        recs[0] = count + 1
        self.stats["collected"] += 1
        return True

    def _finish_relay(self, out):
        self._relay_busy = False
        r = self._apdu
        count = self._recs[0]
        size = 1 + 1 + count * RECORD_LEN
        r[0] = A.REQADDR_RESP
        r[1:size] = memoryview(self._recs)[0:size - 1]
        reps = self._relay_reps
        addr = self._relay_from
        route = memoryview(self._relay_route)[0:reps * mac.entry_len(addr)]
        self.stats["answered"] += 1
        return mac.encode(out, addr, route, mac.DISC_S, True, reps + 1, False, DSAP_NM, NM_ECC, r, size)

    # ---- timers
    def poll(self, now, out):
        """Length of a frame due now, written to `out` (0: none). Call until 0."""
        later = self._later_n and ticks_diff(now, self._later_at) >= 0
        relay = self._relay_busy and ticks_diff(now, self._relay_end) >= 0
        if later and relay and ticks_diff(self._relay_end, self._later_at) < 0:
            later = False  # the older deadline first
        if later:
            n = self._later_n
            out[0:n] = memoryview(self._later)[0:n]
            self._later_n = 0
            self.stats["answered"] += 1
            return n
        if relay:
            return self._finish_relay(out)
        return 0

    def next_timeout(self, now):
        """Milliseconds until poll() has something (0: now), or -1 if nothing is pending."""
        t = -1
        if self._later_n:
            t = ticks_diff(self._later_at, now)
        if self._relay_busy:
            u = ticks_diff(self._relay_end, now)
            if not self._later_n or u < t:
                t = u
        elif not self._later_n:
            return -1
        return t if t > 0 else 0
