# Application layer, plain services: READ.REQ -> READ.RESP, WRITE.REQ -> ACK /
# NACK A-Node; the table services (READTAB, GETTAB, SETTAB, WRITETAB,
# RESETTAB, BUFF_SELECT, COMMAND, DATASPONT) in meter/app/tables.py. Payload
# layouts are project choices (docs/protocol.md):
#   READ.REQ   ATTR | id (2, big-endian) ...        one or more registers
#   READ.RESP  ATTR | value ...                     values in request order
#   WRITE.REQ  ATTR | id (2) | value (size) ...     all applied or none
#   NACK A     ATTR | PAR1 code | id (2)            id of the offending register
from meter import attrs as A
from meter.model import registers as R
from meter import timers as T
from meter.budget import TokenBucket
from meter.errors import Refused
from meter.link.mac import MAX_LLC_DATA
from meter.app.tables import TableService


def write_nack(resp, code, item=0):
    """NACK A-Node into resp: ATTR, PAR1 code, the register (or item)
    concerned; returns its length."""
    resp[0] = A.NACK_A
    resp[1] = code
    resp[2] = item >> 8
    resp[3] = item & 0xFF
    return 4


class Responder:
    """What the security layer (meter/app/auth.py) expects of an application:
    serves(attr), handle(...), refuse(code), ack(changed), the answer in
    `resp` and whether the last request `changed` something."""

    def __init__(self):
        self.resp = bytearray(MAX_LLC_DATA)
        self.stats = {"requests": 0, "nacks": 0}
        self.changed = False  # the last request changed something (the security layer keeps its answer)
        self.deferred = False  # the last request's answer comes later (a B-Node exchange: meter/app/bnode.py)

    def _nack(self, code, item=0):
        self.stats["nacks"] += 1
        return write_nack(self.resp, code, item)

    def refuse(self, code=A.NACK_UNSUPPORTED):
        """A NACK for a request the layers above refused (by default: a
        plain service sent encrypted, not supported)."""
        self.changed = False
        return self._nack(code)

    def ack(self, changed):
        """An ACK for a request the layers above served."""
        self.changed = changed
        self.resp[0] = A.ACK_A
        return 1


class Application(Responder):
    def __init__(self, model):
        Responder.__init__(self)
        self.model = model
        self.tables = TableService(self)
        self._budgets = (TokenBucket(T.PLAIN_WRITE_BURST, T.PLAIN_WRITE_REFILL_S),
                         TokenBucket(T.WRITE_BURST, T.WRITE_REFILL_S))
        self._grant = R.ACC_PLAIN
        self._undo = bytearray(MAX_LLC_DATA)  # old values of a WRITE, to put back on failure
        # {request ATTR: handler(req, off, n, room, grant) -> answer length}
        self.services = self.tables.services()
        self.services[A.READ_REQ] = self._read
        self.services[A.WRITE_REQ] = self._write

    def serves(self, attr):
        """Is attr a request ATTR this application serves?"""
        return attr in self.services

    def spend(self):
        """Take one flash-write token of the current request's budget
        (authenticated or plain); False: none left, answer busy."""
        return self._budgets[self._grant != R.ACC_PLAIN].take(self.model.clock())

    def handle(self, req, off, n, max_resp, grant=R.ACC_PLAIN):
        """Serve the APDU req[off:off+n] (ATTR first); return the length of the
        answer in self.resp (0 = no answer). max_resp: longest answer the
        request's discipline allows; grant: the rights the request proved
        (ACC_PLAIN, or ACC_READ_KEY / ACC_WRITE_KEY after authentication)."""
        self.stats["requests"] += 1
        self.changed = False
        self.deferred = False
        self._grant = grant
        room = min(max_resp, MAX_LLC_DATA)
        try:
            if room < 1:  # not even an ACK fits: refuse before anything happens
                raise Refused(A.NACK_TOO_LONG)
            fn = self.services.get(req[off])
            if fn is None:
                raise Refused(A.NACK_UNSUPPORTED)
            size = fn(req, off + 1, n - 1, room, grant)
            if size > room:
                raise Refused(A.NACK_TOO_LONG)
            return size
        except Refused as e:  # the one place a refusal becomes a NACK
            self.changed = False
            return self._nack(e.code, e.item)

    def _read(self, req, off, n, room, grant):
        if n < 2 or n & 1:
            raise Refused(A.NACK_BAD_LENGTH)
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
                raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
            if not model.may_read(row, grant):
                raise Refused(A.NACK_ACCESS_DENIED, reg_id)
            if pos + row[R.R_SIZE] > MAX_LLC_DATA:
                raise Refused(A.NACK_TOO_LONG, reg_id)
            pos = model.read_into(row, out, pos)
        return pos

    def _write(self, req, off, n, room, grant):
        # Check every item first so that a bad one leaves nothing half written.
        end = off + n
        p = off
        if n < 3:
            raise Refused(A.NACK_BAD_LENGTH)
        model = self.model
        while p < end:
            if p + 2 > end:
                raise Refused(A.NACK_BAD_LENGTH)
            reg_id = (req[p] << 8) | req[p + 1]
            row = R.BY_ID.get(reg_id)
            if row is None:
                raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
            # The read key never writes, whatever the register allows.
            if grant == R.ACC_READ_KEY or not R.allowed(row[R.R_WRITE], grant) or row[R.R_ENC] == R.ENC_TABLE:
                raise Refused(A.NACK_ACCESS_DENIED, reg_id)
            if p + 2 + row[R.R_SIZE] > end:
                raise Refused(A.NACK_BAD_LENGTH, reg_id)
            if not model.check(row, req, p + 2):
                raise Refused(A.NACK_BAD_VALUE, reg_id)
            p += 2 + row[R.R_SIZE]
        if not self.spend():
            raise Refused(A.NACK_BUSY)
        self.changed = True
        # All or none: keep the old values, put them back if an item fails.
        undo = self._undo
        p = off
        u = 0
        while p < end:
            row = R.BY_ID[(req[p] << 8) | req[p + 1]]
            u = model.read_into(row, undo, u)
            p += 2 + row[R.R_SIZE]
        p = off
        try:
            while p < end:
                row = R.BY_ID[(req[p] << 8) | req[p + 1]]
                code = model.write_from(row, req, p + 2)
                if code:
                    self._restore(req, off, p)
                    raise Refused(code, row[R.R_ID])
                p += 2 + row[R.R_SIZE]
        except Exception:
            self._restore(req, off, p + 2 + row[R.R_SIZE])
            raise
        return self.ack(True)

    def _restore(self, req, off, stop):
        # Write back the old values of the items in req[off:stop].
        model = self.model
        p = off
        u = 0
        while p < stop:
            row = R.BY_ID[(req[p] << 8) | req[p + 1]]
            model.write_from(row, self._undo, u)
            u += row[R.R_SIZE]
            p += 2 + row[R.R_SIZE]
