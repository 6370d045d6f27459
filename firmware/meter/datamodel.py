# Values behind the register table: what the application layer reads and
# writes. Values are encoded straight into the response buffer (no per-read
# allocation); persistent registers are saved in the Store.
#
# Where a value comes from, first match wins: a provider function
# (provide()), an owner object (attach(): the metering engines answer for
# energies, measurands, clock, status words ...), the value kept here (settings,
# counters; "r<id>" records in the Store for persistent ones, R.DEFAULTS at the
# factory). ENC_TABLE registers read their newest record from `tables`.
from meter import attrs as A
from meter import registers as R
from meter.clock import valid_time

_INTS = (R.ENC_UINT, R.ENC_TIME, R.ENC_BITS, R.ENC_INT)


def _clock_ok(raw):
    return valid_time(int.from_bytes(raw, "big"))


class AccessError(Exception):
    """A register exists but the request may not read or write it."""


class DataModel:
    def __init__(self, serial, aca, firmware_id, store, clock, set_clock=None):
        self._store = store
        self._set_clock = set_clock  # callable(seconds) that sets that clock, if it can be set
        self._values = {}
        self._sources = {R.CLOCK: clock}  # registers whose value is computed when read
        self._watchers = {}  # reg id -> fn(reg id), called after the concentrator wrote it
        self._owners = {}  # reg id -> object with reg_get(id) and reg_put(id, raw)
        self.checks = {R.CLOCK: _clock_ok}  # reg id -> fn(raw): may the concentrator write this value?
        self.tables = {}  # reg id of an ENC_TABLE register -> its ring.Ring / ring.Array
        self.meter = None  # the metering engines (meter.metering.Metering), when attached
        self.keystore = None  # the security layer's key store, when there is one
        self.clock = clock
        self.status = 1 << R.SW_CLOCK_UNSET
        for row in R.TABLE:
            enc = row[R.R_ENC]
            if enc == R.ENC_TABLE:
                continue
            d = R.DEFAULTS.get(row[R.R_ID])
            if d is None:
                d = 0 if enc in _INTS else bytes(row[R.R_SIZE])
            elif isinstance(d, str):
                d = d.encode() + bytes(row[R.R_SIZE] - len(d))
            self._values[row[R.R_ID]] = d
            if row[R.R_PERSIST]:
                saved = store.get("r%04x" % row[R.R_ID])
                if saved is not None and len(saved) == row[R.R_SIZE]:
                    self._set_raw(row, saved)
        self._set(R.SERIAL, serial)
        self._set(R.ACA, aca)
        self._set(R.FIRMWARE_ID, firmware_id)

    def _set_raw(self, row, raw):
        if row[R.R_ENC] in _INTS:
            v = 0
            for b in raw:
                v = (v << 8) | b
            if row[R.R_ENC] == R.ENC_INT and raw and raw[0] & 0x80:
                v -= 1 << (8 * len(raw))
            self._values[row[R.R_ID]] = v
        else:
            self._values[row[R.R_ID]] = bytes(raw)

    def _set(self, reg_id, value):
        row = R.BY_ID[reg_id]
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value[: row[R.R_SIZE]]) + bytes(row[R.R_SIZE] - min(len(value), row[R.R_SIZE]))
        self._values[reg_id] = value
        if row[R.R_PERSIST]:
            self._save(row)

    def _save(self, row):
        """Write the register's record; False (storage fault flagged) if refused."""
        buf = bytearray(row[R.R_SIZE])
        self.read_into(row, buf, 0)
        if not self._store.put("r%04x" % row[R.R_ID], buf):
            self.status |= 1 << R.SW_STORAGE_FAULT
            return False
        return True

    def provide(self, reg_id, fn):
        """Let fn() give the register's value whenever it is read."""
        self._sources[reg_id] = fn

    def on_write(self, reg_id, fn):
        """Call fn(reg_id) after each write of the register by the concentrator."""
        self._watchers[reg_id] = fn

    def attach(self, owner, ids):
        """Let owner.reg_get(id) give, and owner.reg_put(id, raw) take, these registers."""
        for i in ids:
            self._owners[i] = owner
            if i in self._sources and i == R.CLOCK:
                del self._sources[i]

    def get(self, reg_id):
        fn = self._sources.get(reg_id)
        if fn is not None:
            return fn()
        owner = self._owners.get(reg_id)
        if owner is not None:
            return owner.reg_get(reg_id)
        if reg_id == R.STATUS_WORD:
            return self.status
        return self._values[reg_id]

    def check(self, row, buf, off):
        """May the concentrator write the value at buf[off:]?"""
        fn = self.checks.get(row[R.R_ID])
        return fn is None or fn(buf[off:off + row[R.R_SIZE]])

    def may_read(self, row, grant):
        """Access check of a read, with the reading mode: in mode 1 a plain
        request reads only what identifies the meter and its status."""
        if not R.allowed(row[R.R_READ], grant):
            return False
        if grant == R.ACC_PLAIN and self._values.get(R.READING_MODE) == 1:
            return row[R.R_ID] in (R.STATUS_WORD, R.SERIAL, R.ACA, R.FIRMWARE_ID)
        return True

    def set(self, reg_id, value, persist=True):
        """Set a value from inside the meter (metering, configuration)."""
        if persist:
            self._set(reg_id, value)
        else:
            self._values[reg_id] = value

    def save(self, reg_id):
        self._save(R.BY_ID[reg_id])

    def read_into(self, row, out, off):
        """Encode the register's value at out[off:]; return the offset after it."""
        size = row[R.R_SIZE]
        if row[R.R_ENC] == R.ENC_TABLE:  # the newest record
            tb = self.tables.get(row[R.R_ID])
            if tb is None or tb.end == tb.first:
                for i in range(off, off + size):
                    out[i] = 0
                return off + size
            return tb.read_into(tb.end - 1, out, off)
        v = self.get(row[R.R_ID])
        if isinstance(v, int):
            i = off + size - 1
            while i >= off:
                out[i] = v & 0xFF
                v >>= 8
                i -= 1
        else:
            out[off:off + size] = v
        return off + size

    def write_from(self, row, buf, off):
        """Apply a value written by the concentrator (already access-checked)."""
        size = row[R.R_SIZE]
        raw = bytes(buf[off:off + size])
        owner = self._owners.get(row[R.R_ID])
        if owner is not None:
            return owner.reg_put(row[R.R_ID], raw)
        if row[R.R_ID] == R.CLOCK:
            if self._set_clock:
                self._set_clock(int.from_bytes(raw, "big"))
            self.status &= ~(1 << R.SW_CLOCK_UNSET)
            return 0
        old = self._values[row[R.R_ID]]
        self._set_raw(row, raw)
        if row[R.R_PERSIST] and not self._save(row):
            self._values[row[R.R_ID]] = old  # not on flash: not written
            return A.NACK_NOT_STORED
        fn = self._watchers.get(row[R.R_ID])
        if fn is not None:
            fn(row[R.R_ID])
        return 0
