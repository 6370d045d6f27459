# Values behind the register table: what the application layer reads and
# writes. Values are encoded straight into the response buffer (no per-read
# allocation); persistent registers are saved in the Store.
#
# Every row of the table names its owner (registers.R_OWNER); engines
# register under their owner name, and a read, a write or a write check of a
# register goes to its owner (meter/model/engine.py). The data model keeps the
# values of the registers it owns itself ("model"), and of those whose owner
# keeps them here (settings, counters): "r<id>" records in the Store for
# persistent ones, R.DEFAULTS at the factory. A register whose owner is not
# registered (a data model without metering) reads its kept value; the clock
# register is the board's clock (timekeeping.WallClock) until the metering's
# clock engine takes it over. ENC_TABLE registers read their newest record
# from `tables`.
from meter import attrs as A
from meter.model import registers as R
from meter.model.timekeeping import WallClock

_INTS = (R.ENC_UINT, R.ENC_TIME, R.ENC_BITS, R.ENC_INT)


class AccessError(Exception):
    """A register exists but the request may not read or write it."""


class DataModel:
    def __init__(self, serial, aca, firmware_id, store, clock, set_clock=None):
        self._store = store
        self._values = {}
        self._given = {}  # reg id -> fn() giving its value (provide())
        self._engines = {}  # owner name (registers.R_OWNER) -> the engine registered under it
        self.tables = {}  # reg id of an ENC_TABLE register -> its ring.Ring / ring.Array
        self.clock = clock
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
        self.status = 1 << R.SW_CLOCK_UNSET
        self.wall = WallClock(self, clock, set_clock)  # the board's clock, the clock register's first owner
        self._set(R.SERIAL, serial)
        self._set(R.ACA, aca)
        self._set(R.FIRMWARE_ID, firmware_id)

    # The latched status-word bits (clock unset, storage fault, modem reset)
    # are the value kept for the status word; its owner adds the live ones.
    @property
    def status(self):
        return self._values[R.STATUS_WORD]

    @status.setter
    def status(self, bits):
        self._values[R.STATUS_WORD] = bits

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

    def register(self, name, engine):
        """Hand engine the registers whose row names `name` as their owner, and
        its tables; an engine registered later under the same name takes over."""
        self._engines[name] = engine  # by name, not by register: one entry, not one per register
        self.tables.update(engine.tables)

    def owner(self, reg_id):
        """The engine answering for the register, or None."""
        row = R.BY_ID.get(reg_id)
        return None if row is None else self._engines.get(row[R.R_OWNER])

    def provide(self, reg_id, fn):
        """Let fn() give the register's value whenever it is read (ahead of
        its owner: the node's diagnostics, a test's fault)."""
        self._given[reg_id] = fn

    def get(self, reg_id):
        fn = self._given.get(reg_id)
        if fn is not None:
            return fn()
        owner = self._engines.get(R.BY_ID[reg_id][R.R_OWNER])
        if owner is not None:
            return owner.reg_get(reg_id)
        return self._values[reg_id]

    def stored(self, reg_id):
        """The value kept here for the register."""
        return self._values[reg_id]

    def check(self, row, buf, off):
        """May the concentrator write the value at buf[off:]?"""
        owner = self._engines.get(row[R.R_OWNER])
        return owner is None or owner.reg_check(row[R.R_ID], buf[off:off + row[R.R_SIZE]])

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

    def keep(self, reg_id, raw):
        """Keep a value the concentrator wrote; NACK_NOT_STORED (and the old
        value back) when the flash refused a persistent one."""
        row = R.BY_ID[reg_id]
        old = self._values[reg_id]
        self._set_raw(row, raw)
        if row[R.R_PERSIST] and not self._save(row):
            self._values[reg_id] = old  # not on flash: not written
            return A.NACK_NOT_STORED
        return 0

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
        raw = bytes(buf[off:off + row[R.R_SIZE]])
        owner = self._engines.get(row[R.R_OWNER])
        if owner is None:
            return self.keep(row[R.R_ID], raw)
        return owner.reg_put(row[R.R_ID], raw)
