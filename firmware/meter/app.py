# Application layer, plain services: READ.REQ -> READ.RESP, WRITE.REQ -> ACK /
# NACK A-Node; the table services (READTAB, GETTAB, SETTAB, WRITETAB,
# RESETTAB, BUFF_SELECT, COMMAND, DATASPONT) in meter/tables.py. Payload
# layouts are project choices (docs/protocol.md):
#   READ.REQ   ATTR | id (2, big-endian) ...        one or more registers
#   READ.RESP  ATTR | value ...                     values in request order
#   WRITE.REQ  ATTR | id (2) | value (size) ...     all applied or none
#   NACK A     ATTR | PAR1 code | id (2)            id of the offending register
from meter import attrs as A
from meter import registers as R
from meter.mac import MAX_LLC_DATA
from meter.tables import TableService
from meter.timers import WRITE_BURST, WRITE_REFILL_S

_TABLE_ATTRS = (A.READTAB_REQ, A.READTAB_SEL_REQ, A.BUFF_SELECT_REQ, A.GETTAB_REQ, A.SETTAB_REQ, A.WRITETAB_REQ,
                A.RESETTAB_REQ, A.COMMAND, A.DATASPONT)


def write_nack(resp, code, item=0):
    """NACK A-Node into resp: ATTR, PAR1 code, the register (or item)
    concerned; returns its length."""
    resp[0] = A.NACK_A
    resp[1] = code
    resp[2] = item >> 8
    resp[3] = item & 0xFF
    return 4


class Application:
    def __init__(self, model):
        self.model = model
        self.resp = bytearray(MAX_LLC_DATA)
        self.stats = {"requests": 0, "nacks": 0}
        self.tables = TableService(self)
        self.changed = False  # the last request changed something (the security layer keeps its answer)
        self._tokens = WRITE_BURST
        self._refill_at = None

    def _nack(self, code, reg_id=0):
        self.stats["nacks"] += 1
        return write_nack(self.resp, code, reg_id)

    def refuse(self):
        """Answer to a plain service sent encrypted (not supported)."""
        return self._nack(A.NACK_UNSUPPORTED)

    def spend(self):
        """Take one flash-write token (False: none left, answer busy)."""
        now = self.model.clock()
        if self._refill_at is None or now < self._refill_at:
            self._refill_at = now
        got = (now - self._refill_at) // WRITE_REFILL_S
        if got:
            self._tokens = min(WRITE_BURST, self._tokens + got)
            self._refill_at += got * WRITE_REFILL_S
        if self._tokens <= 0:
            return False
        self._tokens -= 1
        return True

    def handle(self, req, off, n, max_resp, grant=R.ACC_PLAIN):
        """Serve the APDU req[off:off+n] (ATTR first); return the length of the
        answer in self.resp (0 = no answer). max_resp: longest answer the
        request's discipline allows; grant: the rights the request proved
        (ACC_PLAIN, or ACC_READ_KEY / ACC_WRITE_KEY after authentication)."""
        self.stats["requests"] += 1
        self.changed = False
        attr = req[off]
        if attr == A.READ_REQ:
            size = self._read(req, off + 1, n - 1, grant)
        elif attr == A.WRITE_REQ:
            size = self._write(req, off + 1, n - 1, grant)
        elif attr in _TABLE_ATTRS:
            size = self.tables.handle(attr, req, off + 1, n - 1, max_resp, grant)
        else:
            size = self._nack(A.NACK_UNSUPPORTED)
        if size > max_resp:
            size = self._nack(A.NACK_TOO_LONG)
        return size

    def _read(self, req, off, n, grant):
        if n < 2 or n & 1:
            return self._nack(A.NACK_BAD_LENGTH)
        out = self.resp
        out[0] = A.READ_RESP
        pos = 1
        end = off + n
        model = self.model
        while off < end:
            reg_id = (req[off] << 8) | req[off + 1]
            off += 2
            row = R.BY_ID.get(reg_id)
            if row is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, reg_id)
            if not model.may_read(row, grant):
                return self._nack(A.NACK_ACCESS_DENIED, reg_id)
            if pos + row[R.R_SIZE] > MAX_LLC_DATA:
                return self._nack(A.NACK_TOO_LONG, reg_id)
            pos = model.read_into(row, out, pos)
        return pos

    def _write(self, req, off, n, grant):
        # Check every item first so that a bad one leaves nothing half written.
        end = off + n
        p = off
        if n < 3:
            return self._nack(A.NACK_BAD_LENGTH)
        model = self.model
        while p < end:
            if p + 2 > end:
                return self._nack(A.NACK_BAD_LENGTH)
            reg_id = (req[p] << 8) | req[p + 1]
            row = R.BY_ID.get(reg_id)
            if row is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, reg_id)
            # The read key never writes, whatever the register allows.
            if grant == R.ACC_READ_KEY or not R.allowed(row[R.R_WRITE], grant) or row[R.R_ENC] == R.ENC_TABLE:
                return self._nack(A.NACK_ACCESS_DENIED, reg_id)
            if p + 2 + row[R.R_SIZE] > end:
                return self._nack(A.NACK_BAD_LENGTH, reg_id)
            if not model.check(row, req, p + 2):
                return self._nack(A.NACK_BAD_VALUE, reg_id)
            p += 2 + row[R.R_SIZE]
        if not self.spend():
            return self._nack(A.NACK_BUSY)
        self.changed = True
        p = off
        while p < end:
            row = R.BY_ID[(req[p] << 8) | req[p + 1]]
            code = model.write_from(row, req, p + 2)
            if code:
                return self._nack(code, row[R.R_ID])
            p += 2 + row[R.R_SIZE]
        self.resp[0] = A.ACK_A
        return 1
