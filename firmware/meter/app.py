# Application layer, plain services: READ.REQ -> READ.RESP, WRITE.REQ -> ACK /
# NACK A-Node. Payload layouts are project choices (docs/protocol.md):
#   READ.REQ   ATTR | id (2, big-endian) ...        one or more registers
#   READ.RESP  ATTR | value ...                     values in request order
#   WRITE.REQ  ATTR | id (2) | value (size) ...     all applied or none
#   NACK A     ATTR | PAR1 code | id (2)            id of the offending register
from meter import attrs as A
from meter import registers as R
from meter.mac import MAX_LLC_DATA


class Application:
    def __init__(self, model):
        self.model = model
        self.resp = bytearray(MAX_LLC_DATA)
        self.stats = {"requests": 0, "nacks": 0}

    def _nack(self, code, reg_id=0):
        r = self.resp
        r[0] = A.NACK_A
        r[1] = code
        r[2] = reg_id >> 8
        r[3] = reg_id & 0xFF
        self.stats["nacks"] += 1
        return 4

    def refuse(self):
        """Answer to a plain service sent encrypted (not supported)."""
        return self._nack(A.NACK_UNSUPPORTED)

    def handle(self, req, off, n, max_resp, grant=R.ACC_PLAIN):
        """Serve the APDU req[off:off+n] (ATTR first); return the length of the
        answer in self.resp (0 = no answer). max_resp: longest answer the
        request's discipline allows; grant: the rights the request proved
        (ACC_PLAIN, or ACC_READ_KEY / ACC_WRITE_KEY after authentication)."""
        self.stats["requests"] += 1
        attr = req[off]
        if attr == A.READ_REQ:
            size = self._read(req, off + 1, n - 1, grant)
        elif attr == A.WRITE_REQ:
            size = self._write(req, off + 1, n - 1, grant)
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
        while off < end:
            reg_id = (req[off] << 8) | req[off + 1]
            off += 2
            row = R.BY_ID.get(reg_id)
            if row is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, reg_id)
            if not R.allowed(row[R.R_READ], grant):
                return self._nack(A.NACK_ACCESS_DENIED, reg_id)
            if pos + row[R.R_SIZE] > MAX_LLC_DATA:
                return self._nack(A.NACK_TOO_LONG, reg_id)
            pos = self.model.read_into(row, out, pos)
        return pos

    def _write(self, req, off, n, grant):
        # Check every item first so that a bad one leaves nothing half written.
        end = off + n
        p = off
        if n < 3:
            return self._nack(A.NACK_BAD_LENGTH)
        while p < end:
            if p + 2 > end:
                return self._nack(A.NACK_BAD_LENGTH)
            reg_id = (req[p] << 8) | req[p + 1]
            row = R.BY_ID.get(reg_id)
            if row is None:
                return self._nack(A.NACK_UNKNOWN_REGISTER, reg_id)
            # The read key never writes, whatever the register allows.
            if grant == R.ACC_READ_KEY or not R.allowed(row[R.R_WRITE], grant):
                return self._nack(A.NACK_ACCESS_DENIED, reg_id)
            p += 2 + row[R.R_SIZE]
            if p > end:
                return self._nack(A.NACK_BAD_LENGTH, reg_id)
        p = off
        while p < end:
            row = R.BY_ID[(req[p] << 8) | req[p + 1]]
            self.model.write_from(row, req, p + 2)
            p += 2 + row[R.R_SIZE]
        self.resp[0] = A.ACK_A
        return 1
