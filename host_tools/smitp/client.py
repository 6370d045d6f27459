"""The application layer as the concentrator and the hand-held unit speak it, without any I/O.

A Request is one application request: its plain ATTR and DATA (layouts: meter/app/services.py,
meter/app/tables.py, meter/app/keychange.py, docs/protocol.md), the longest answer it may get, and
the parser of that answer, which returns the service's result, raises Nack when the meter
refused, DecodeError when the answer is not one to it. A service that takes several exchanges
(a table in blocks, records in chunks, a custom table in parts, the spontaneous events) is a
procedure: a generator that yields Requests and gets each one's parsed answer back. run()
drives either over the caller's exchange(request) -> plain answer (ATTR | DATA). Authenticated,
smitp.secure's session seals the same ATTR | DATA and opens the answer back to them.
"""

import itertools
import struct

from meter import attrs as A
from meter.app import keychange as KC
from meter.link import bnodelink, mac
from meter.model import registers as R
from meter.app import security as sec
from meter.app import tables as TB
from meter.errors import DecodeError
from smitp.errors import BadAnswer, BNodeNack, Nack, UsageError

# Services that change nothing, or name a state (DATASPONT acknowledges up to a record number):
# running one twice is harmless. Every other service has an effect.
RERUNNABLE = frozenset((A.READ_REQ, A.READTAB_REQ, A.READTAB_SEL_REQ, A.BUFF_SELECT_REQ, A.GETTAB_REQ,
                        A.DATASPONT))
ENCRYPT_CHOICES = ("auto", "ecb", "ctr", "none")  # --encrypt of the CLI, ecc_for()
ENCRYPT_HELP = ("with --auth: auto (default: AES-ECB for writes and commands, AES-CTR for reads), ecb, ctr, or "
                "none (authenticated only); the meter refuses writes that are not ECB")
AUTH_NACKS = (sec.ATTR_NACK_A_AUTH, sec.ATTR_NACK_B_AUTH)
CHL_RESP_LEN = 1 + sec.CHL_T_LEN + sec.AUTH_OVERHEAD
NACK_LEN = 4  # NACK A-Node: ATTR | PAR1 | item (2), meter/app/services.py write_nack
_MORE = 0x80  # status byte of READTAB, GETTAB, DATASPONT: more follow; bits 0-6 count
_SELECT_MAX = 255  # records one READTAB selective asks for


# ---- lengths and ECCs --------------------------------------------------------------------------
def ecc_for(encrypt, write):
    """The ECC of --encrypt (ENCRYPT_CHOICES) for a request with effect (`write`: the write key)
    or a read (the read key). "auto": ECB for writes, the only ones the meter's policy lets
    change anything, CTR for reads."""
    mode = {"ecb": sec.MODE_ECB, "ctr": sec.MODE_CTR, "none": sec.MODE_NONE}.get(
        encrypt, sec.MODE_ECB if write else sec.MODE_CTR)
    return sec.make_ecc(mode, sec.KEY_WRITE if write else sec.KEY_READ)


def service_ecc(attr, ecc=None):
    """The ECC of an authenticated request of `attr`: `ecc`, else ecc_for("auto") by its effect."""
    return ecc_for("auto", attr not in RERUNNABLE) if ecc is None else ecc


def sealed_len(n, ecc):
    """Length on air of ATTR | DATA (n bytes) once authenticated with ecc (ECB pads DATA)."""
    if sec.ecc_mode(ecc) == sec.MODE_ECB:
        return 1 + sec.ecb_padded_len(n - 1) + sec.AUTH_OVERHEAD
    return n + sec.AUTH_OVERHEAD


def max_data(ecc):
    """The longest DATA an authenticated request with ecc carries."""
    room = sec.LSDU_MAX - 1 - sec.AUTH_OVERHEAD
    if sec.ecc_mode(ecc) == sec.MODE_ECB:
        return room // 16 * 16 - 1  # at least one pad byte
    return room


def register_size(reg_id):
    """Size of a register (or table record) of the register table."""
    row = R.lookup(reg_id)
    if row is None:
        raise UsageError("register 0x%04X is not in the register table" % reg_id)
    return row[R.R_SIZE]


# ---- requests ----------------------------------------------------------------------------------
class Request:
    """ATTR | DATA of one request (plain ATTR) and how its answer reads. answer: the longest plain
    answer (ATTR | DATA); None for a table service: as long as the meter makes them
    (meter.app.tables.answer_room). parse(plain answer) -> the result."""

    def __init__(self, attr, data, parse, answer=None):
        self.attr, self.data, self.parse, self.answer = attr, bytes(data), parse, answer

    def __repr__(self):
        return "Request(%s, %s)" % (A.NAMES.get(self.attr, self.attr), self.data.hex())

    @property
    def lsdu(self):
        """The plain LSDU."""
        return bytes((self.attr,)) + self.data

    @property
    def effect(self):
        return self.attr not in RERUNNABLE

    def ecc(self, ecc=None):
        return service_ecc(self.attr, ecc)

    def answer_max(self, auth):
        return TB.answer_room(auth) if self.answer is None else self.answer


def read(reg_ids, sizes=None):
    """READ.REQ of registers in one request -> {id: raw value}. sizes: their sizes (items of
    the optical port's DSAP 0x03), default the register table's."""
    reg_ids = list(reg_ids)
    sizes = [register_size(r) for r in reg_ids] if sizes is None else list(sizes)

    def parse(ans):
        _expect(ans, A.READ_RESP, 1 + sum(sizes))
        return dict(zip(reg_ids, _split(ans, 1, sizes)))

    return Request(A.READ_REQ, _ids(reg_ids), parse, 1 + sum(sizes))


def write(values, sized=True):
    """WRITE.REQ of {id: raw value}, all applied or none -> None on ACK. sized: the ids are
    registers, whose sizes the values must have (else items of DSAP 0x03, taken as given)."""
    body = b""
    for reg, raw in values.items():
        if sized and len(raw) != register_size(reg):
            raise UsageError("register 0x%04X takes %d bytes, got %d" % (reg, register_size(reg), len(raw)))
        body += struct.pack(">H", reg) + bytes(raw)
    return Request(A.WRITE_REQ, body, ack, NACK_LEN)


def service(attr, data=b""):
    """Any service with DATA as given -> its answer (ATTR | DATA) as it came; NACK raised."""
    def parse(ans):
        refused(ans)
        return bytes(ans)

    return Request(attr, data, parse)


def select(table, t0=0, t1=0):
    """BUFF_SELECT.REQ of the records of `table` with time in [t0, t1) (0, 0: all)
    -> (first record number, records, records per block)."""
    def parse(ans):
        _expect(ans, A.BUFF_SELECT_RESP, 10)
        got, first, count, per = struct.unpack_from(">HIHB", ans, 1)
        _same("table", got, table)
        return first, count, per

    return Request(A.BUFF_SELECT_REQ, struct.pack(">HII", table, t0, t1), parse)


def read_block(table, block):
    """READTAB.REQ of block `block` of the last selection -> ([raw record], more blocks)."""
    size = register_size(table)

    def parse(ans):
        _expect(ans, A.READTAB_RESP, at_least=6)
        got, got_block, status = struct.unpack_from(">HHB", ans, 1)
        _same("table", got, table)
        _same("block", got_block, block)
        return _records(ans, 6, status & 0x7F, size), bool(status & _MORE)

    return Request(A.READTAB_REQ, struct.pack(">HH", table, block), parse)


def read_selected(table, first, count, mask=0):
    """READTAB.REQ selective of `count` records (at most 255) from record `first`, the fields of
    `mask` (bit i: field i; 0: all) -> (number of the first record sent, [raw selected fields])."""
    size = _selected_size(table, mask)

    def parse(ans):
        _expect(ans, A.READTAB_SEL_RESP, at_least=8)
        got, got_first, k = struct.unpack_from(">HIB", ans, 1)
        _same("table", got, table)
        return got_first, _records(ans, 8, k, size)

    return Request(A.READTAB_SEL_REQ, struct.pack(">HIBB", table, first, count, mask), parse)


def custom_part(number, entry, reg_ids):
    """GETTAB.REQ of custom table `number` (1-4) from entry `entry`; reg_ids: the table's list
    -> ([(id, raw value)], more)."""
    def parse(ans):
        _expect(ans, A.GETTAB_RESP, at_least=4)
        _same("custom table", ans[1], number)
        _same("first entry", ans[2], entry)
        regs = reg_ids[entry:entry + (ans[3] & 0x7F)]
        if len(regs) != ans[3] & 0x7F or (ans[3] & _MORE and not regs):
            raise DecodeError("status", "0x%02X: not the entries of the list from %d" % (ans[3], entry))
        sizes = [_listed_size(r) for r in regs]
        _length(ans, 4 + sum(sizes))
        return list(zip(regs, _split(ans, 4, sizes))), bool(ans[3] & _MORE)

    return Request(A.GETTAB_REQ, bytes((number, entry)), parse)


def set_custom(number, reg_ids):
    """SETTAB.REQ: custom table `number` (1-4) lists reg_ids (at most 16; none clears it)."""
    return Request(A.SETTAB_REQ, bytes((number,)) + _ids(reg_ids), ack)


def write_records(table, first, records):
    """WRITETAB.REQ of whole records (raw, back to back) from record `first` on."""
    return Request(A.WRITETAB_REQ, struct.pack(">HH", table, first) + bytes(records), ack)


def reset_tables(reg_ids):
    """RESETTAB.REQ: tables and settings back to their defaults (logs emptied)."""
    return Request(A.RESETTAB_REQ, _ids(reg_ids), ack)


def command(code, params=b""):
    """COMMAND `code` (meter.app.tables.CMD_*) with its parameters -> None on ACK."""
    return Request(A.COMMAND, bytes((code,)) + bytes(params), ack)


def dataspont(acknowledged):
    """DATASPONT: the spontaneous events at or after record `acknowledged`, which also tells the
    meter everything below it arrived -> ([(record number, raw event record)], more)."""
    size = register_size(R.EVENT_LOG)

    def parse(ans):
        _expect(ans, A.DATASPONT, at_least=2)
        if ans[1] == _MORE:
            raise DecodeError("status", "more events announced, none sent")
        items = _records(ans, 2, ans[1] & 0x7F, 4 + size)
        return [(struct.unpack_from(">I", item)[0], item[4:]) for item in items], bool(ans[1] & _MORE)

    return Request(A.DATASPONT, struct.pack(">I", acknowledged), parse)


# B-Node services (meter/app/bnode.py): in an RB discipline, answered ACK / NACK B-Node
BNODE_SERVICES = frozenset((A.SETIC_REQ, A.WRITETABIC_REQ))


def is_bnode(attr):
    """Is attr (plain or authenticated) a request the meter passes to its B-Node?"""
    return (attr - 100 if attr >= 102 else attr) in BNODE_SERVICES


def bnode_update(data, table=None, first=0):
    """SETIC.REQ of data for the meter's B-Node, or WRITETABIC.REQ of entries (data) of B-Node
    table `table` from entry `first` -> the B-Node's reply (bytes) on ACK B-Node; raises
    BNodeNack on NACK B-Node, Nack when the meter refused before asking the B-Node."""
    data = bytes(data)
    if table is None:
        attr, body = A.SETIC_REQ, data
    else:
        attr, body = A.WRITETABIC_REQ, struct.pack(">BH", table, first) + data
    if not 1 <= len(body) <= bnodelink.MAX_DATA:
        raise UsageError("B-Node data of %d bytes: 1..%d with the table header" % (len(body), bnodelink.MAX_DATA))

    def parse(ans):
        refused(ans)
        if ans[:1] == bytes((A.NACK_B,)):
            if len(ans) < 2:
                raise DecodeError("NACK", "no PAR1 code")
            raise BNodeNack(ans[1], ans[2] if len(ans) > 2 else 0)
        if ans[:1] != bytes((A.ACK_B,)) or len(ans) > 1 + bnodelink.MAX_REPLY:
            raise DecodeError("ATTR", "%s, expected ACK B-Node" % A.NAMES.get(ans[0], ans[0]) if ans else "empty")
        return bytes(ans[1:])

    return Request(attr, body, parse, 1 + bnodelink.MAX_REPLY)


def key_change_stage(current_k1, k1, k2):
    """KEY_CHANGE stage: the new pair under the current write key (an Aes or 16 bytes). Only
    authenticated, ECB with the write key."""
    return Request(A.KEY_CHANGE, KC.stage_data(current_k1, k1, k2), ack, 1)


def key_change_activate(k1, k2):
    """KEY_CHANGE activate of the staged pair; sealed with that new pair."""
    return Request(A.KEY_CHANGE, KC.activate_data(k1, k2), ack, 1)


def challenge(session):
    """CHL.REQ with a fresh challenge of `session` (a smitp.secure.MeterSecurity); its parse
    verifies the CHL.RESP with that session and returns the LMON it carries, adopted."""
    return Request(A.CHL_REQ, session.challenge(), session.accept_challenge, CHL_RESP_LEN)


# ---- procedures: services of several exchanges -------------------------------------------------
def read_table(table, t0=0, t1=0, progress=None):
    """Every record of `table` (or those with time in [t0, t1)): BUFF_SELECT, then READTAB blocks
    until the meter says no more -> [(record number, raw record)]. progress(done, total, what)."""
    register_size(table)
    first, count, per = yield select(table, t0, t1)
    out = []
    for block in itertools.count():
        if progress:
            progress(len(out), count, "block %d" % block)
        records, more = yield read_block(table, block)
        k = len(records)
        # a short block before the last lost its oldest records to newer ones
        base = first + block * per + (per - k if k < per and more else 0)
        out.extend((base + i, raw) for i, raw in enumerate(records))
        if not more:
            break
    if progress:
        progress(len(out), len(out), "")
    return out


def read_records(table, first, count, mask=0):
    """READTAB selective: records `first`.. (`count` of them, the fields of `mask`), in as many
    requests as the answers need -> [(record number, raw selected fields)]."""
    _selected_size(table, mask)
    out = []
    while count > 0:
        got_first, records = yield read_selected(table, first, min(count, _SELECT_MAX), mask)
        if not records:
            break
        out.extend((got_first + i, raw) for i, raw in enumerate(records))
        count -= len(records) + (got_first - first)  # records the meter no longer holds count too
        first = got_first + len(records)
    return out


def get_custom(number):
    """GETTAB of custom table `number` (1-4): its list (a READ), then its values in as many parts
    as they need -> [(register id, raw value)] in the list's order."""
    listing = _custom_table(number)
    raw = (yield read([listing]))[listing]
    reg_ids = list(struct.unpack(">%dH" % (len(raw) // 2), raw))
    reg_ids = reg_ids[:reg_ids.index(0)] if 0 in reg_ids else reg_ids  # the list ends at the first 0000
    out = []
    while True:
        values, more = yield custom_part(number, len(out), reg_ids)
        out.extend(values)
        if not more:
            return out


def write_table(table, first, records, auth=False, ecc=None):
    """WRITETAB of whole records from record `first` on, in as many requests as they need (the
    DATA room: plain, or authenticated with `ecc`, None: its default)."""
    size = register_size(table)
    if len(records) % size:
        raise UsageError("records of table 0x%04X are %d bytes" % (table, size))
    room = max_data(service_ecc(A.WRITETAB_REQ, ecc)) if auth else mac.MAX_LLC_DATA - 1
    chunk = (room - 4) // size * size
    if not chunk:
        raise UsageError("a record of table 0x%04X does not fit one request" % table)
    for i in range(0, len(records), chunk):
        yield write_records(table, first + i // size, records[i:i + chunk])


def spontaneous(acknowledged=0):
    """Drain the spontaneous events from record `acknowledged` on
    -> ([(record number, raw event record)], the acknowledgement to give next time)."""
    out = []
    while True:
        items, more = yield dataspont(acknowledged)
        out.extend(items)
        if items:
            acknowledged = items[-1][0] + 1
        if not more:
            yield dataspont(acknowledged)  # acknowledge the last ones
            return out, acknowledged


def run(op, exchange):
    """The result of op, a Request or a procedure, exchange(request) -> its plain answer doing the
    I/O. An answer its request cannot read raises BadAnswer."""
    if isinstance(op, Request):
        return _result(op, exchange(op))
    try:
        req = next(op)
        while True:
            req = op.send(_result(req, exchange(req)))
    except StopIteration as end:
        return end.value


def _result(req, answer):
    try:
        return req.parse(answer)
    except DecodeError as e:
        raise BadAnswer("unexpected answer %s to %s (%s)" % (bytes(answer).hex(), A.NAMES.get(req.attr, req.attr),
                                                             e)) from None


# ---- answers -----------------------------------------------------------------------------------
def ack(ans):
    """ACK A-Node -> None."""
    _expect(ans, A.ACK_A, 1)


def refused(ans):
    """Raise Nack for a NACK A-Node (plain, or an authenticated one once opened)."""
    if not ans:
        raise DecodeError("ATTR", "empty answer")
    if ans[0] == A.NACK_A:
        code, item = nack_fields(ans)
        raise Nack(code, item or 0)


def nack_fields(ans):
    """(PAR1 code, item or None) of a NACK A-Node; an authenticated one opens to ATTR | PAR1."""
    if len(ans) < 2:
        raise DecodeError("NACK", "no PAR1 code")
    return ans[1], (struct.unpack_from(">H", ans, 2)[0] if len(ans) >= NACK_LEN else None)


def is_nack10(lsdu):
    """An authenticated NACK with PAR1 10: the meter's LMON instead of an answer."""
    return len(lsdu) > 1 and lsdu[0] in AUTH_NACKS and lsdu[1] == sec.NACK_AUTH


def read_ids(data):
    """The register ids of a READ.REQ's DATA."""
    if len(data) % 2:
        raise DecodeError("READ.REQ", "odd number of register id bytes")
    return list(struct.unpack(">%dH" % (len(data) // 2), data))


def _expect(ans, attr, n=None, at_least=None):
    refused(ans)
    if ans[0] != attr:
        raise DecodeError("ATTR", "%s, expected %s" % (A.NAMES.get(ans[0], ans[0]), A.NAMES[attr]))
    if n is not None:
        _length(ans, n)
    if at_least is not None and len(ans) < at_least:
        raise DecodeError("length", "%d bytes, at least %d expected" % (len(ans), at_least))


def _length(ans, n):
    if len(ans) != n:
        raise DecodeError("length", "%d bytes, expected %d" % (len(ans), n))


def _same(field, got, sent):
    if got != sent:
        raise DecodeError(field, "%d, the request named %d" % (got, sent))


def _split(ans, pos, sizes):
    out = []
    for size in sizes:
        out.append(bytes(ans[pos:pos + size]))
        pos += size
    return out


def _records(ans, pos, k, size):
    _length(ans, pos + k * size)
    return _split(ans, pos, [size] * k)


def _ids(reg_ids):
    return b"".join(struct.pack(">H", r) for r in reg_ids)


def _listed_size(reg_id):
    # a register the meter lists: not in our table is the meter's fault, not the caller's
    row = R.lookup(reg_id)
    if row is None:
        raise DecodeError("register", "0x%04X is not in the register table" % reg_id)
    return row[R.R_SIZE]


def _selected_size(table, mask):
    row = R.lookup(table)
    if row is None or row[R.R_ENC] != R.ENC_TABLE:
        raise UsageError("0x%04X is not a table" % table)
    sizes = TB.field_sizes(table)
    if mask >> len(sizes):
        raise UsageError("table 0x%04X has %d fields, mask 0x%02X names more" % (table, len(sizes), mask))
    return sum(s for i, s in enumerate(sizes) if not mask or mask >> i & 1)


def _custom_table(number):
    if not 1 <= number <= 4:
        raise UsageError("custom tables are 1 to 4, not %d" % number)
    return R.CUSTOM_TABLE_1 + number - 1
