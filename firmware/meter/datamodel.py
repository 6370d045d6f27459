# Values behind the register table: what the application layer reads and
# writes. Values are encoded straight into the response buffer (no per-read
# allocation); persistent registers are saved in the Store.
from meter import registers as R


class AccessError(Exception):
    """A register exists but the request may not read or write it."""


class DataModel:
    def __init__(self, serial, aca, firmware_id, store, clock, set_clock=None):
        self._store = store
        self._set_clock = set_clock  # callable(seconds) that sets that clock, if it can be set
        self._values = {}
        self._sources = {R.CLOCK: clock}  # registers whose value is computed when read
        self.status = 1 << R.SW_CLOCK_UNSET
        for row in R.TABLE:
            self._values[row[R.R_ID]] = 0 if row[R.R_ENC] in (R.ENC_UINT, R.ENC_TIME, R.ENC_BITS) else bytes(row[R.R_SIZE])
            if row[R.R_PERSIST]:
                saved = store.get("r%04x" % row[R.R_ID])
                if saved is not None and len(saved) == row[R.R_SIZE]:
                    self._set_raw(row, saved)
        self._set(R.SERIAL, serial)
        self._set(R.ACA, aca)
        self._set(R.FIRMWARE_ID, firmware_id)

    def _set_raw(self, row, raw):
        if row[R.R_ENC] in (R.ENC_UINT, R.ENC_TIME, R.ENC_BITS):
            v = 0
            for b in raw:
                v = (v << 8) | b
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
        buf = bytearray(row[R.R_SIZE])
        self.read_into(row, buf, 0)
        if not self._store.put("r%04x" % row[R.R_ID], buf):
            self.status |= 1 << R.SW_STORAGE_FAULT

    def provide(self, reg_id, fn):
        """Let fn() give the register's value whenever it is read."""
        self._sources[reg_id] = fn

    def get(self, reg_id):
        fn = self._sources.get(reg_id)
        if fn is not None:
            return fn()
        if reg_id == R.STATUS_WORD:
            return self.status
        return self._values[reg_id]

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
        if row[R.R_ID] == R.CLOCK:
            if self._set_clock:
                self._set_clock(int.from_bytes(raw, "big"))
            self.status &= ~(1 << R.SW_CLOCK_UNSET)
            return
        self._set_raw(row, raw)
        if row[R.R_PERSIST]:
            self._save(row)
