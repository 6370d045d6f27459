# Table services of the application layer: READTAB (selective and block),
# BUFF_SELECT, GETTAB, SETTAB, WRITETAB, RESETTAB, COMMAND, DATASPONT.
# The payload layouts are project choices (the standard's are not public),
# all in this file and in the choices table of docs/protocol.md. DATA after
# the ATTR, numbers big-endian:
#
#   READTAB.REQ sel (6)   table (2) | first record number (4) | count (1) | field mask (1, 0 = all)
#   READTAB.RESP sel (7)  table (2) | first (4) | count (1) | records (selected fields only)
#   READTAB.REQ (8)       table (2) | block (2)
#   READTAB.RESP (9)      table (2) | block (2) | status (1): bit 7 more blocks, bits 0-6 records | records
#   BUFF_SELECT.REQ (22)  table (2) | from (4) | to (4): records whose time is in [from, to); 0, 0 = all
#   BUFF_SELECT.RESP (23) table (2) | first record number (4) | records (2) | records per block (1)
#   GETTAB.REQ (30)       custom table (1, 1-4) | first entry (1)
#   GETTAB.RESP (31)      custom table (1) | first entry (1) | status (1): bit 7 more, bits 0-6 values | values
#   SETTAB.REQ (14)       custom table (1) | register ids (2 each, up to 16; none clears)
#   WRITETAB.REQ (10)     table (2) | first record (2) | whole records
#   RESETTAB.REQ (16)     table or register ids (2 each): back to the default / emptied
#   COMMAND (18)          code (1) | parameters (COMMANDS below)
#   DATASPONT (20)        request: acknowledged record number (4): the concentrator has every
#                         spontaneous event below it; answer: status (1): bit 7 more, bits 0-6
#                         events | events: record number (4) + event record (9)
# Write-type services answer ACK A-Node, refusals NACK A-Node (attrs.py).
#
# Splitting (an answer holds at most 127 bytes after the ATTR, 111 when
# authenticated): a block of a table holds BLOCK_ROOM // record size records,
# so that the same blocks fit both variants; READTAB selective, GETTAB and
# DATASPONT put in as many whole items as the answer room allows and say how
# many, the concentrator asks again from the next one.
import struct

from meter import attrs as A
from meter.model import billing as BL
from meter.model import cutoff as CO
from meter.model import registers as R
from meter.model import tariff as TF
from meter.model import timekeeping as TK
from meter.clock import valid_time
from meter.compat import const
from meter.link.mac import MAX_LLC_DATA
from meter.errors import Refused
from meter.app.security import AUTH_OVERHEAD

BLOCK_ROOM = const(106)  # 128 - 16 (authentication) - 6 (READTAB.RESP header)

# COMMAND codes (project choice)
CMD_CLOSE_BILLING = const(1)
CMD_OPEN_CUTOFF = const(2)
CMD_CLOSE_CUTOFF = const(3)
CMD_RESET_ALARMS = const(4)
CMD_SYNC_CLOCK = const(5)  # parameter: the time (4, seconds since 1970 UTC)
CMD_FREEZE = const(6)  # synchronized measurands; plain requests and broadcasts may send it
CMD_ACTIVATE_CONTRACT = const(7)
# code -> (parameter bytes, access needed, the register whose owner carries it
# out, by which of its methods); unsupported where no owner has it (no metering)
COMMANDS = {
    CMD_CLOSE_BILLING: (0, R.ACC_WRITE_KEY, R.BILLING_DATA, "close"),
    CMD_OPEN_CUTOFF: (0, R.ACC_WRITE_KEY, R.CUTOFF_STATE, "operate"),
    CMD_CLOSE_CUTOFF: (0, R.ACC_WRITE_KEY, R.CUTOFF_STATE, "operate"),
    CMD_RESET_ALARMS: (0, R.ACC_WRITE_KEY, R.EXT_STATUS, "reset"),
    CMD_SYNC_CLOCK: (4, R.ACC_WRITE_KEY, R.CLOCK, "set_clock"),
    CMD_FREEZE: (0, R.ACC_PLAIN, R.SYNC_MEASURANDS, "freeze"),
    CMD_ACTIVATE_CONTRACT: (0, R.ACC_WRITE_KEY, R.CONTRACT_2, "activate"),
}

_MORE = const(0x80)
_CUSTOM_MAX = const(16)

# record checks of the writable tables
_RECORD_CHECKS = {
    R.DAY_PROFILES_1: TF.check_day_profile,
    R.DAY_PROFILES_2: TF.check_day_profile,
    R.WEEK_PROGRAMS_1: TF.check_week_program,
    R.WEEK_PROGRAMS_2: TF.check_week_program,
    R.SEASONS_1: TF.check_season,
    R.SEASONS_2: TF.check_season,
    R.HOLIDAYS: TF.check_holiday,
}


def field_sizes(reg_id):
    """Sizes of the fields of a layout, from its struct format."""
    fmt = R.LAYOUTS[reg_id][0]
    out = []
    n = 0
    for c in fmt[1:]:
        if "0" <= c <= "9":
            n = n * 10 + ord(c) - 48
            continue
        size = struct.calcsize(">" + c)
        for _ in range(n or 1):
            out.append(size)
        n = 0
    return out


def _u16(b, o):
    return (b[o] << 8) | b[o + 1]


def _u32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


class TableService:
    def __init__(self, app):
        self.app = app
        self.model = app.model
        self.resp = app.resp
        self.sel = None  # [table id, first record number, end] of the last BUFF_SELECT
        self._scratch = bytearray(64)
        self._sizes = {}

    def services(self):
        """{ATTR: handler(req, off, n, room, grant)} of the table services."""
        return {
            A.READTAB_REQ: self._block,
            A.READTAB_SEL_REQ: self._selective,
            A.BUFF_SELECT_REQ: self._select,
            A.GETTAB_REQ: self._gettab,
            A.SETTAB_REQ: self._settab,
            A.WRITETAB_REQ: self._writetab,
            A.RESETTAB_REQ: self._resettab,
            A.COMMAND: self._command,
            A.DATASPONT: self._dataspont,
        }

    # ---- helpers
    def _table(self, reg_id, grant, write=False):
        """(row, table); Refused when the request may not have it."""
        row = R.BY_ID.get(reg_id)
        if row is None or row[R.R_ENC] != R.ENC_TABLE:
            raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
        if write:
            if grant != R.ACC_WRITE_KEY or not R.allowed(row[R.R_WRITE], grant):
                raise Refused(A.NACK_ACCESS_DENIED, reg_id)
        elif not self.model.may_read(row, grant):
            raise Refused(A.NACK_ACCESS_DENIED, reg_id)
        tb = self.model.tables.get(reg_id)
        if tb is None:
            raise Refused(A.NACK_UNSUPPORTED, reg_id)
        return row, tb

    def _head(self, attr, reg_id):
        r = self.resp
        r[0] = attr
        r[1] = reg_id >> 8
        r[2] = reg_id & 0xFF

    def _time_index(self, tb, t):
        """First record number whose time (first 4 bytes) is >= t (records in time order)."""
        lo, hi = tb.first, tb.end
        sc = self._scratch
        while lo < hi:
            mid = (lo + hi) // 2
            tb.read_into(mid, sc, 0)
            if _u32(sc, 0) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # ---- READTAB, BUFF_SELECT
    def _select(self, req, off, n, room, grant):
        if n != 10:
            raise Refused(A.NACK_BAD_LENGTH)
        reg_id = _u16(req, off)
        row, tb = self._table(reg_id, grant)
        t0, t1 = _u32(req, off + 2), _u32(req, off + 6)
        if t0 == 0 and t1 == 0:
            first, end = tb.first, tb.end
        else:
            first, end = self._time_index(tb, t0), self._time_index(tb, t1)
            if end < first:
                end = first
        self.sel = [reg_id, first, end]
        self._head(A.BUFF_SELECT_RESP, reg_id)
        struct.pack_into(">IHB", self.resp, 3, first, min(end - first, 0xFFFF), BLOCK_ROOM // row[R.R_SIZE])
        return 10

    def _block(self, req, off, n, room, grant):
        if n != 4:
            raise Refused(A.NACK_BAD_LENGTH)
        reg_id = _u16(req, off)
        block = _u16(req, off + 2)
        row, tb = self._table(reg_id, grant)
        sel = self.sel
        if sel is None or sel[0] != reg_id:
            sel = self.sel = [reg_id, tb.first, tb.end]
        per = BLOCK_ROOM // row[R.R_SIZE]
        start = sel[1] + block * per
        s = max(start, tb.first)
        e = min(start + per, sel[2], tb.end)
        k = e - s if e > s else 0
        r = self.resp
        self._head(A.READTAB_RESP, reg_id)
        r[3] = block >> 8
        r[4] = block & 0xFF
        r[5] = (_MORE if start + per < sel[2] else 0) | k
        if 6 + k * row[R.R_SIZE] > room:
            raise Refused(A.NACK_TOO_LONG, reg_id)
        return tb.read_run(s, k, r, 6) if k else 6

    def _selective(self, req, off, n, room, grant):
        if n != 8:
            raise Refused(A.NACK_BAD_LENGTH)
        reg_id = _u16(req, off)
        first = _u32(req, off + 2)
        count = req[off + 6]
        mask = req[off + 7]
        row, tb = self._table(reg_id, grant)
        size = row[R.R_SIZE]
        sizes = self._sizes.get(reg_id)
        if sizes is None:
            sizes = self._sizes[reg_id] = field_sizes(reg_id)
        if mask >> len(sizes):
            raise Refused(A.NACK_BAD_VALUE, reg_id)
        sel_size = size
        if mask:
            sel_size = 0
            for i in range(len(sizes)):
                if (mask >> i) & 1:
                    sel_size += sizes[i]
        if room < 8 + sel_size:  # not one record fits the discipline
            raise Refused(A.NACK_TOO_LONG, reg_id)
        if first < tb.first:
            first = tb.first
        avail = tb.end - first if tb.end > first else 0
        k = min(count, avail, (room - 8) // sel_size)
        r = self.resp
        self._head(A.READTAB_SEL_RESP, reg_id)
        struct.pack_into(">IB", r, 3, first, k)
        if not mask:
            return tb.read_run(first, k, r, 8) if k else 8
        pos = 8
        sc = self._scratch
        for i in range(k):
            tb.read_into(first + i, sc, 0)
            fo = 0
            for j in range(len(sizes)):
                fs = sizes[j]
                if (mask >> j) & 1:
                    r[pos:pos + fs] = sc[fo:fo + fs]
                    pos += fs
                fo += fs
        return pos

    # ---- custom tables
    def _custom(self, req, off):
        c = req[off]
        return R.BY_ID.get(R.CUSTOM_TABLE_1 + c - 1) if 1 <= c <= 4 else None

    def _gettab(self, req, off, n, room, grant):
        app = self.app
        if n != 2:
            raise Refused(A.NACK_BAD_LENGTH)
        crow = self._custom(req, off)
        if crow is None:
            raise Refused(A.NACK_BAD_VALUE)
        if not self.model.may_read(crow, grant):
            raise Refused(A.NACK_ACCESS_DENIED, crow[R.R_ID])
        ids = self.model.get(crow[R.R_ID])
        r = self.resp
        r[0] = A.GETTAB_RESP
        r[1] = req[off]
        first = req[off + 1]
        r[2] = first
        pos = 4
        count = 0
        more = 0
        i = first
        while i < _CUSTOM_MAX:
            reg_id = _u16(ids, 2 * i)
            if reg_id == 0:
                break
            row = R.BY_ID.get(reg_id)
            if row is None:
                raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
            if not self.model.may_read(row, grant):
                raise Refused(A.NACK_ACCESS_DENIED, reg_id)
            if pos + row[R.R_SIZE] > room:
                if count == 0:
                    raise Refused(A.NACK_TOO_LONG, reg_id)
                more = _MORE
                break
            pos = self.model.read_into(row, r, pos)
            count += 1
            i += 1
        r[3] = more | count
        return pos

    def _settab(self, req, off, n, room, grant):
        app = self.app
        if n < 1 or (n - 1) & 1 or n - 1 > 2 * _CUSTOM_MAX:
            raise Refused(A.NACK_BAD_LENGTH)
        crow = self._custom(req, off)
        if crow is None:
            raise Refused(A.NACK_BAD_VALUE)
        if grant != R.ACC_WRITE_KEY or not R.allowed(crow[R.R_WRITE], grant):
            raise Refused(A.NACK_ACCESS_DENIED, crow[R.R_ID])
        raw = bytearray(2 * _CUSTOM_MAX)
        for p in range(off + 1, off + n, 2):
            reg_id = _u16(req, p)
            row = R.BY_ID.get(reg_id)
            if row is None or row[R.R_READ] == R.ACC_NONE:
                raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
            if row[R.R_SIZE] > BLOCK_ROOM:
                raise Refused(A.NACK_BAD_VALUE, reg_id)
            raw[p - off - 1] = req[p]
            raw[p - off] = req[p + 1]
        if not app.spend():
            raise Refused(A.NACK_BUSY)
        return self._apply(crow, raw)

    def _apply(self, row, raw):
        # a settings value through the model: its owner checks and takes it
        app = self.app
        if not self.model.check(row, raw, 0):
            raise Refused(A.NACK_BAD_VALUE, row[R.R_ID])
        code = self.model.write_from(row, raw, 0)
        if code:
            raise Refused(code, row[R.R_ID])
        return self.app.ack(True)

    # ---- WRITETAB, RESETTAB
    def _writetab(self, req, off, n, room, grant):
        app = self.app
        if n < 4:
            raise Refused(A.NACK_BAD_LENGTH)
        reg_id = _u16(req, off)
        row, tb = self._table(reg_id, grant, write=True)
        size = row[R.R_SIZE]
        first = _u16(req, off + 2)
        body = n - 4
        if body == 0 or body % size:
            raise Refused(A.NACK_BAD_LENGTH, reg_id)
        count = body // size
        check = _RECORD_CHECKS.get(reg_id)
        if first + count > tb.end or not hasattr(tb, "write"):
            raise Refused(A.NACK_BAD_VALUE, reg_id)
        if check is not None:
            for i in range(count):
                if not check(req, off + 4 + i * size):
                    raise Refused(A.NACK_BAD_VALUE, reg_id)
        if not app.spend():
            raise Refused(A.NACK_BUSY, reg_id)
        if not tb.write(first, req, off + 4, count):
            raise Refused(A.NACK_NOT_STORED, reg_id)
        self.model.owner(reg_id).written(reg_id)
        return self.app.ack(True)

    def _resettab(self, req, off, n, room, grant):
        app = self.app
        if n < 2 or n & 1:
            raise Refused(A.NACK_BAD_LENGTH)
        model = self.model
        for p in range(off, off + n, 2):  # check all, then reset all
            reg_id = _u16(req, p)
            row = R.BY_ID.get(reg_id)
            if row is None:
                raise Refused(A.NACK_UNKNOWN_REGISTER, reg_id)
            if grant != R.ACC_WRITE_KEY:
                raise Refused(A.NACK_ACCESS_DENIED, reg_id)
            if row[R.R_ENC] == R.ENC_TABLE:
                if reg_id not in model.tables:
                    raise Refused(A.NACK_UNSUPPORTED, reg_id)
            elif row[R.R_WRITE] == R.ACC_NONE or reg_id not in R.DEFAULTS:
                raise Refused(A.NACK_BAD_VALUE, reg_id)
        if not app.spend():
            raise Refused(A.NACK_BUSY)
        for p in range(off, off + n, 2):
            reg_id = _u16(req, p)
            row = R.BY_ID[reg_id]
            if row[R.R_ENC] == R.ENC_TABLE:
                model.owner(reg_id).reset_table(reg_id)
                continue
            d = R.DEFAULTS[reg_id]
            if isinstance(d, int):
                d = d.to_bytes(row[R.R_SIZE], "big")
            elif isinstance(d, str):
                d = d.encode() + bytes(row[R.R_SIZE] - len(d))
            model.write_from(row, d, 0)
        return self.app.ack(True)

    # ---- COMMAND, DATASPONT
    def _command(self, req, off, n, room, grant):
        app = self.app
        if n < 1:
            raise Refused(A.NACK_BAD_LENGTH)
        code = req[off]
        spec = COMMANDS.get(code)
        if spec is None:
            raise Refused(A.NACK_UNSUPPORTED)
        run = getattr(self.model.owner(spec[2]), spec[3], None)
        if run is None:
            raise Refused(A.NACK_UNSUPPORTED)
        if n != 1 + spec[0]:
            raise Refused(A.NACK_BAD_LENGTH)
        if code == CMD_SYNC_CLOCK and not valid_time(_u32(req, off + 1)):
            raise Refused(A.NACK_BAD_VALUE)
        if not R.allowed(spec[1], grant) or (spec[1] == R.ACC_WRITE_KEY and grant != R.ACC_WRITE_KEY):
            raise Refused(A.NACK_ACCESS_DENIED)
        if code != CMD_FREEZE:
            if not app.spend():
                raise Refused(A.NACK_BUSY)
            app.changed = True
        if code == CMD_CLOSE_BILLING:
            run(BL.BILL_COMMAND)
        elif code == CMD_OPEN_CUTOFF or code == CMD_CLOSE_CUTOFF:
            run(code == CMD_OPEN_CUTOFF, CO.WHY_COMMAND)
        elif code == CMD_SYNC_CLOCK:
            run(_u32(req, off + 1), TK.CLOCK_SYNC)
        elif code == CMD_ACTIVATE_CONTRACT:
            if not run():
                raise Refused(A.NACK_BAD_VALUE)
        else:  # reset alarms, freeze
            run()
        return self.app.ack(self.app.changed)

    def _dataspont(self, req, off, n, room, grant):
        app = self.app
        ev = self.model.owner(R.EVENT_LOG)  # the event log
        if n != 4:
            raise Refused(A.NACK_BAD_LENGTH)
        if ev is None:
            raise Refused(A.NACK_UNSUPPORTED)
        if not self.model.may_read(R.BY_ID[R.EVENT_LOG], grant):
            raise Refused(A.NACK_ACCESS_DENIED, R.EVENT_LOG)
        ack = _u32(req, off)
        if ack != self.model.get(R.SPONT_ACK) and ack <= ev.ring.end:
            if not app.spend():  # moving the acknowledgement is a flash write
                raise Refused(A.NACK_BUSY)
            app.changed = True
        ev.acknowledge(ack)
        r = self.resp
        r[0] = A.DATASPONT
        pos = 2
        count = 0
        more = 0
        nxt = ev.next_spontaneous(self.model.get(R.SPONT_ACK), 256)
        while nxt >= 0:
            if pos + 4 + ev.ring.size > room:
                more = _MORE
                break
            struct.pack_into(">I", r, pos, nxt)
            pos = ev.ring.read_into(nxt, r, pos + 4)
            count += 1
            nxt = ev.next_spontaneous(nxt + 1, 256)
        r[1] = more | count
        return pos


def answer_room(authenticated):
    """Longest answer (ATTR included) the meter gives to a table service."""
    return MAX_LLC_DATA - (AUTH_OVERHEAD if authenticated else 0)
