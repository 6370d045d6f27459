# The meter's security state that must survive a reset: the LMON counter, the
# key pair, and the answer to the last accepted authenticated request.
#
# Sans-io apart from the Store it is given (records on the board's flash, or
# RAM). Nothing here logs key bytes or offers them to a register: the keys are
# write-only, as in the Host Interface MIB (protocol reference 7.1).
#
# On-flash records (project choices, docs/security.md):
#   "lmon0", "lmon1"  SEQ (4, BE) | CEILING (8, BE) | CRC-32 of the 12 (4, BE)
#   "keys"            K1 (16) | K2 (16)
#   "resp"            ECC (1) | request length (1) | request LSDU | answer LSDU
import struct

from meter.compat import const
from meter.crypto import crc32
from meter.errors import SmitpError
from meter.app.security import LSDU_MAX, Keys

RESERVE = const(64)  # LMON values one ceiling record covers
LMON_MAX = 0xFFFFFFFFFFFFFFFF  # uint64; not const(): a big int on 32-bit ports
_KEY_LEN = const(16)
_SLOTS = ("lmon0", "lmon1")
_SLOT_LEN = const(16)


class LmonError(SmitpError):
    """No further LMON value can be accepted (the uint64 range is used up)."""


def _check_lmon(value):
    if value < 0 or value > LMON_MAX:
        raise ValueError("LMON out of uint64 range")


def _slot_record(seq, ceiling):
    rec = bytearray(_SLOT_LEN)
    struct.pack_into(">IQ", rec, 0, seq, ceiling)
    struct.pack_into(">I", rec, 12, crc32(memoryview(rec)[0:12]))
    return rec


def _parse_slot(raw):
    # (seq, ceiling), or None for a record that is torn or damaged.
    if len(raw) != _SLOT_LEN:
        return None
    if struct.unpack_from(">I", raw, 12)[0] != crc32(memoryview(raw)[0:12]):
        return None
    return struct.unpack_from(">IQ", raw, 0)


class LmonCounter:
    """The meter's LMON (uint64) with reserved ranges on flash.

    Flash holds a ceiling C: the highest LMON the meter may accept without
    writing. Accepting a value above C first writes C' = value - 1 + reserve
    and only then accepts; at boot LMON := C, so nothing up to the old
    ceiling can be accepted twice, whatever instant the power failed at.

    Cost: N accepted messages after a boot take ceil(N / reserve) record
    writes (the first at the first message, then one every `reserve`); set()
    takes one. Price: a power cut skips at most `reserve` values, which the
    concentrator learns from the next NACK-10 (one extra round trip).

    The ceiling lives in two slot records written alternately, the newer one
    (higher SEQ, valid CRC) winning at boot: a write that is lost, torn or
    left half done by a filesystem whose rename is not atomic (FAT removes
    the old file first) leaves the other slot, which still bounds every
    accepted value. Records that exist but none of which is readable put the
    counter in `fault`: it refuses every commit until set() provisions it.

    initial: the LMON to start at when flash holds no record (a provisioned
    starting value); it is persisted by the first accepted message.
    """

    def __init__(self, store, reserve=RESERVE, initial=0):
        if reserve < 1:
            raise ValueError("reserve must be at least 1")
        _check_lmon(initial)
        self._store = store
        self._reserve = reserve
        self.writes = 0  # ceiling records written since boot
        self.refused = 0  # commits refused (flash write failed, or fault)
        seq = -1
        ceiling = initial
        slot = 1  # the slot holding the newest record; the other is written next
        seen = False
        for i in range(2):
            raw = store.get(_SLOTS[i])
            if raw is None:
                continue
            seen = True
            rec = _parse_slot(raw)
            if rec is not None and rec[0] > seq:
                seq, ceiling = rec
                slot = i
        # Present but unreadable: the ceiling is unknown, and any guess could
        # reopen replay. Store writes a temporary file and renames it, so a
        # power cut alone cannot do this; damaged flash can.
        self.fault = seen and seq < 0
        self._seq = seq if seq > 0 else 0
        self._slot = slot
        self._lmon = ceiling
        self._ceiling = ceiling

    @property
    def value(self):
        """The current LMON: the MON of the last accepted request."""
        return self._lmon

    @property
    def exhausted(self):
        """No further request can be accepted: LMON is at the top of its range."""
        return self._lmon >= LMON_MAX

    @property
    def ceiling(self):
        """Highest LMON acceptable without another flash write."""
        return self._ceiling

    def candidate(self):
        """LMON + 1: the only MON the next request may carry."""
        if self._lmon >= LMON_MAX:
            raise LmonError("LMON exhausted")
        return self._lmon + 1

    def commit(self):
        """LMON := LMON + 1, after the caller verified a request with
        candidate(). Returns False, leaving LMON unchanged, when the new
        ceiling could not be written (or in fault): refuse the request.
        LmonError once the uint64 range is used up."""
        if self.fault:
            self.refused += 1
            return False
        c = self.candidate()
        if c > self._ceiling:
            top = c - 1 + self._reserve
            if not self._persist(top if top < LMON_MAX else LMON_MAX):
                self.refused += 1
                return False
        self._lmon = c
        return True

    def set(self, value):
        """Provisioning: LMON := value, persisted before it applies; clears a
        fault. Returns False (nothing changed) if the flash refused. Setting a
        lower LMON lets old requests be replayed: trusted paths only."""
        _check_lmon(value)
        if not self._persist(value):
            return False
        self._lmon = value
        self.fault = False
        return True

    def _persist(self, ceiling):
        # Into the slot not holding the newest record, so that one survives.
        # SEQ is a uint32: 2**32 writes outlast any flash.
        slot = 1 - self._slot
        seq = self._seq + 1
        if not self._store.put(_SLOTS[slot], _slot_record(seq, ceiling)):
            return False
        self._slot = slot
        self._seq = seq
        self._ceiling = ceiling
        self.writes += 1
        return True


def _key_record(k1, k2):
    rec = bytearray(bytes(k1) + bytes(k2) + bytes(4))
    struct.pack_into(">I", rec, 2 * _KEY_LEN, crc32(memoryview(rec)[0:2 * _KEY_LEN]))
    return rec


def _parse_keys(raw):
    # (k1, k2) from a key record, or None when absent or damaged. A 32-byte
    # record without CRC is what earlier firmware provisioned.
    if raw is None or len(raw) not in (2 * _KEY_LEN, 2 * _KEY_LEN + 4):
        return None
    if len(raw) > 2 * _KEY_LEN and struct.unpack_from(">I", raw, 2 * _KEY_LEN)[0] != crc32(
            memoryview(raw)[0:2 * _KEY_LEN]):
        return None
    return bytes(raw[0:_KEY_LEN]), bytes(raw[_KEY_LEN:2 * _KEY_LEN])


class KeyStore:
    """K1 (write key) and K2 (read key): one record "keys" = K1 | K2 | CRC-32,
    so both change in one atomic write; a staged pair waits in "keys_new"
    until it is activated (meter/app/keychange.py).

    keys() returns the meter.app.security.Keys built from them (None when not
    provisioned), the same object on each call. Key bytes never leave this
    object other than into the cipher objects and key check values.
    """

    def __init__(self, store):
        self._store = store
        self._keys = None
        self._pending = None  # (k1, k2, Keys) staged, not yet in force
        pair = _parse_keys(store.get("keys"))
        if pair is not None:
            self._keys = Keys(pair[0], pair[1])
        pair = _parse_keys(store.get("keys_new"))
        if pair is not None:
            self._pending = (pair[0], pair[1], Keys(pair[0], pair[1]))

    def keys(self):
        return self._keys

    def pair(self):
        """The key pair in force as (K1, K2) bytes from the store, or None: for a
        modem that runs the security itself (meter/app/modemkeys.py)."""
        return _parse_keys(self._store.get("keys"))

    @property
    def provisioned(self):
        return self._keys is not None

    def provision(self, k1, k2):
        """Store a new key pair (trusted paths: factory, local provisioning);
        it applies only once written (returns False and keeps the old pair
        if the flash refused). Drops a staged pair."""
        if len(k1) != _KEY_LEN or len(k2) != _KEY_LEN:
            raise ValueError("K1 and K2 must be 16 bytes each")
        keys = Keys(k1, k2)
        if not self._store.put("keys", _key_record(k1, k2)):
            return False
        self._keys = keys
        self._drop_pending()
        return True

    def stage(self, k1, k2):
        """Keep (k1, k2) to activate later; the current pair stays in force."""
        if not self._store.put("keys_new", _key_record(k1, k2)):
            return False
        self._pending = (bytes(k1), bytes(k2), Keys(k1, k2))
        return True

    def pending(self):
        """(k1, k2, Keys) of the staged pair, or None."""
        return self._pending

    def activate(self):
        """The staged pair takes over in one record write; False if refused."""
        p = self._pending
        return p is not None and self.provision(p[0], p[1])

    def _drop_pending(self):
        if self._pending is not None or self._store.get("keys_new") is not None:
            self._pending = None
            self._store.remove("keys_new")

    def __repr__(self):
        return "KeyStore(%s)" % ("provisioned" if self._keys else "empty")


# The cached answer, and the order the meter follows for an authenticated
# request R that carries MON c = LMON + 1:
#   1. lookup(R): a byte-identical repeat of the last accepted request gets
#      the cached answer again; nothing else happens (LMON, registers).
#   2. Open R with c; on failure answer NACK-10, store nothing.
#   3. LmonCounter.commit(): a new ceiling is on flash before c counts.
#   4. The application serves R; the answer A is sealed with MON = c.
#   5. put(R, A): the cache is written ...
#   6. ... before A is sent: A is what reports the commit of c to the
#      concentrator.
# Why: 3 before 4, so R takes effect only once c can never be accepted
# again. 5 before 6, so a concentrator that missed A and repeats R after a
# reboot gets A from the cache; if A left first and the power failed before
# the write, the repeat would meet a meter that skipped to its ceiling, get
# NACK-10, and the concentrator would resend R's content under a new MON: R
# would take effect twice. The gap left, a cut between 4 and 5, has the same
# outcome as a lost answer; services keep it harmless by being idempotent
# (WRITE sets values, commands name a target state).
class ResponseCache:
    """The last accepted authenticated request and its answer, both as LSDUs
    on air, with the ECC they travelled with; record "resp"."""

    def __init__(self, store):
        self._store = store
        raw = store.get("resp")
        self._rec = raw if raw is not None and self._valid(raw) else None
        self._on_flash = bool(raw)  # flash holds a non-empty record

    @staticmethod
    def _valid(raw):
        return len(raw) >= 3 and raw[1] > 0 and 2 + raw[1] < len(raw)

    def lookup(self, lsdu, ecc=0):
        """The cached answer (a memoryview) if lsdu is byte for byte the last
        accepted request and came with the same ECC; else None."""
        rec = self._rec
        if rec is None or rec[0] != ecc or rec[1] != len(lsdu):
            return None
        for i in range(len(lsdu)):
            if rec[2 + i] != lsdu[i]:
                return None
        return memoryview(rec)[2 + len(lsdu):]

    def put(self, request, answer, ecc=0, persist=True):
        """Cache (request, answer). It serves repeats at once; persist=False
        keeps it in RAM only (for requests without effect, to spare the
        flash). Returns False if the flash refused the record."""
        if not 0 < len(request) <= LSDU_MAX or not 0 < len(answer) <= LSDU_MAX:
            raise ValueError("request and answer must be LSDUs of 1..128 bytes")
        rec = bytearray(2 + len(request) + len(answer))
        rec[0] = ecc
        rec[1] = len(request)
        rec[2:2 + len(request)] = request
        rec[2 + len(request):] = answer
        self._rec = rec
        if persist:
            self._on_flash = True  # the new record, or the old one if refused
            return self._store.put("resp", rec)
        if self._on_flash:
            # An answer kept in RAM only replaces one on flash: empty the flash
            # record (once), or a reboot would bring the older one back as if
            # it were still the last accepted request.
            self._on_flash = not self._store.put("resp", b"")
        return True

    def clear(self):
        """Forget the cached answer (after new keys or a new LMON)."""
        self._rec = None
        self._on_flash = False
        return self._store.put("resp", b"")
