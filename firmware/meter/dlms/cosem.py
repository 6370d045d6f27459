# COSEM objects (EN 62056-6-2) over the one data model: each object's values
# are the registers of meter/model/registers.py, read and written through the
# DataModel and the owner engines exactly as the Original-SMITP READ and WRITE
# do, so both profiles see the same register.
#
# OBJECTS is the one list (docs/cosem.md is generated from it): class id,
# version, OBIS, the level that may read attributes 2.., the attributes and
# the methods the manager may write or invoke (bit n = attribute or method n),
# and the register behind the value. Levels are the association's
# authentication (meter/dlms/server.py): PUBLIC none, READER LLS, MANAGER
# HLS-GMAC with suite 0 ciphering. Logical names are readable by all.
from meter.compat import const
from meter.clock import valid_time
from meter.errors import DecodeError
from meter.model import cutoff as CO
from meter.model import registers as R
from meter.dlms import axdr as X
from meter.dlms import calendar as CAL
from meter.dlms import demand as DEM
from meter.dlms.base import (CLASS_INCONSISTENT, DENIED, HARDWARE_FAULT, MANAGER, NOBODY, OK, OTHER,  # noqa: F401
                             PUBLIC, READER, TEMPORARY_FAILURE, TYPE_UNMATCHED, UNAVAILABLE, UNDEFINED, date_time,
                             parse_date_time, write)

DATA = const(1)
REGISTER = const(3)
EXTENDED_REGISTER = const(4)
DEMAND_REGISTER = const(5)
PROFILE_GENERIC = const(7)
CLOCK = const(8)
SCRIPT_TABLE = const(9)
SPECIAL_DAYS = const(11)
ASSOCIATION_LN = const(15)
ACTIVITY_CALENDAR = const(20)
SINGLE_ACTION = const(22)
SECURITY_SETUP = const(64)
DISCONNECT_CONTROL = const(70)
LIMITER = const(71)
ATTRS = {DATA: 2, REGISTER: 3, EXTENDED_REGISTER: 5, DEMAND_REGISTER: 9, PROFILE_GENERIC: 8, CLOCK: 9,
         SCRIPT_TABLE: 2, SPECIAL_DAYS: 2, ASSOCIATION_LN: 9, ACTIVITY_CALENDAR: 10, SINGLE_ACTION: 4,
         SECURITY_SETUP: 5, DISCONNECT_CONTROL: 4, LIMITER: 11}
METHODS = {DATA: 0, REGISTER: 1, EXTENDED_REGISTER: 1, DEMAND_REGISTER: 2, PROFILE_GENERIC: 2, CLOCK: 6,
           SCRIPT_TABLE: 1, SPECIAL_DAYS: 2, ASSOCIATION_LN: 4, ACTIVITY_CALENDAR: 1, SINGLE_ACTION: 0,
           SECURITY_SETUP: 2, DISCONNECT_CONTROL: 2, LIMITER: 0}

# units (Blue Book table of units)
_UNIT = {"Wh": 30, "varh": 32, "W": 27, "var": 29, "V": 35, "A": 33, "s": 7, "Hz": 44}

ASSOCIATION_OBIS = b"\x00\x00\x28\x00\x00\xff"  # the current association, 0.0.40.0.0.255
SECURITY_OBIS = b"\x00\x00\x2b\x00\x00\xff"


def _o(a, b, c, d, e, f=255):
    return bytes((a, b, c, d, e, f))


_B = (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8)  # the clock's writable attributes

# (class, version, OBIS, read level, writable attrs, methods, register or None)
OBJECTS = (
    (CLOCK, 0, _o(0, 0, 1, 0, 0), PUBLIC, _B, 0, R.CLOCK),
    (ASSOCIATION_LN, 1, ASSOCIATION_OBIS, PUBLIC, 0, 1 << 1, None),
    (SECURITY_SETUP, 0, SECURITY_OBIS, READER, 0, 0, None),
    (DATA, 0, _o(0, 0, 42, 0, 0), PUBLIC, 0, 0, R.SERIAL),  # COSEM logical device name
    (DATA, 0, _o(0, 0, 96, 1, 0), PUBLIC, 0, 0, R.SERIAL),
    (DATA, 0, _o(1, 0, 0, 2, 0), READER, 0, 0, R.FIRMWARE_ID),
    (DATA, 0, _o(0, 0, 96, 5, 0), READER, 0, 0, R.STATUS_WORD),
    (REGISTER, 0, _o(1, 0, 1, 8, 0), READER, 0, 0, R.ENERGY_IMPORT),
    (REGISTER, 0, _o(1, 0, 2, 8, 0), READER, 0, 0, R.ENERGY_EXPORT),
    (REGISTER, 0, _o(1, 0, 1, 8, 1), READER, 0, 0, R.ENERGY_IMPORT_T1),
    (REGISTER, 0, _o(1, 0, 1, 8, 2), READER, 0, 0, R.ENERGY_IMPORT_T1 + 1),
    (REGISTER, 0, _o(1, 0, 1, 8, 3), READER, 0, 0, R.ENERGY_IMPORT_T1 + 2),
    (REGISTER, 0, _o(1, 0, 1, 8, 4), READER, 0, 0, R.ENERGY_IMPORT_T1 + 3),
    (REGISTER, 0, _o(1, 0, 3, 8, 0), READER, 0, 0, R.REACTIVE_IMPORT),
    (REGISTER, 0, _o(1, 0, 4, 8, 0), READER, 0, 0, R.REACTIVE_EXPORT),
    (REGISTER, 0, _o(1, 0, 1, 7, 0), READER, 0, 0, R.ACTIVE_POWER),
    (DISCONNECT_CONTROL, 0, _o(0, 0, 96, 3, 10), READER, 0, (1 << 1) | (1 << 2), R.CUTOFF_STATE),
    (PROFILE_GENERIC, 1, _o(1, 0, 99, 1, 0), READER, 0, 0, R.LOAD_PROFILE),  # meter/dlms/profile.py
    (PROFILE_GENERIC, 1, _o(0, 0, 99, 98, 0), READER, 0, 0, R.EVENT_LOG),
    # meter/dlms/demand.py
    (EXTENDED_REGISTER, 0, _o(1, 0, 1, 6, 0), READER, 0, 1 << 1, R.MAX_DEMAND),
    (EXTENDED_REGISTER, 0, _o(1, 0, 1, 6, 1), READER, 0, 1 << 1, R.MAX_DEMAND_T1),
    (EXTENDED_REGISTER, 0, _o(1, 0, 1, 6, 2), READER, 0, 1 << 1, R.MAX_DEMAND_T1 + 1),
    (EXTENDED_REGISTER, 0, _o(1, 0, 1, 6, 3), READER, 0, 1 << 1, R.MAX_DEMAND_T1 + 2),
    (EXTENDED_REGISTER, 0, _o(1, 0, 1, 6, 4), READER, 0, 1 << 1, R.MAX_DEMAND_T1 + 3),
    (DEMAND_REGISTER, 0, _o(1, 0, 1, 4, 0), READER, 1 << 8, (1 << 1) | (1 << 2), R.DEMAND_LAST),
    (LIMITER, 0, _o(0, 0, 17, 0, 0), READER, (1 << 4) | (1 << 6) | (1 << 7), 0, R.POWER_LIMIT),
    # meter/dlms/calendar.py
    (DATA, 0, CAL.CURRENT_TARIFF, READER, 0, 0, R.CURRENT_BAND),
    (SCRIPT_TABLE, 0, CAL.BILLING_SCRIPTS, READER, 0, 1 << 1, None),
    (SCRIPT_TABLE, 0, CAL.TARIFF_SCRIPTS, READER, 0, 0, None),
    (SCRIPT_TABLE, 0, CAL.DISCONNECTOR_SCRIPTS, READER, 0, 1 << 1, None),
    (SPECIAL_DAYS, 0, _o(0, 0, 11, 0, 0), READER, 0, (1 << 1) | (1 << 2), R.HOLIDAYS),
    (ACTIVITY_CALENDAR, 0, _o(0, 0, 13, 0, 0), READER, 1 << 10, 1 << 1, R.CONTRACT_1),
    (SINGLE_ACTION, 0, _o(0, 0, 15, 0, 0), READER, 1 << 4, 0, R.BILLING_SETTINGS),
)
O_CLASS = const(0)
O_VERSION = const(1)
O_OBIS = const(2)
O_READ = const(3)
O_WRITE = const(4)
O_METHODS = const(5)
O_REG = const(6)


def find(cls, buf, off):
    """Index in OBJECTS of the object named by buf[off:off + 6]; -1: none,
    -2: it exists with another class."""
    for i in range(len(OBJECTS)):
        o = OBJECTS[i][O_OBIS]
        k = 0
        while k < 6 and buf[off + k] == o[k]:
            k += 1
        if k == 6:
            return i if OBJECTS[i][O_CLASS] == cls else -2
    return -1


def may_read(obj, attr, level):
    if obj[O_CLASS] == ASSOCIATION_LN and attr == 7:
        return False  # the LLS secret: never read
    return attr == 1 or level >= obj[O_READ]


def may_write(obj, attr, level):
    return level >= MANAGER and obj[O_WRITE] >> attr & 1


def access_selectors(obj, attr, w):
    """The access selectors of an attribute in the object list: by range (1)
    and by entry (2) for a profile's buffer, none (null-data) elsewhere."""
    if obj[O_CLASS] == PROFILE_GENERIC and attr == 2:
        w.group(X.ARRAY, 2)
        w.value(X.S8, 1)
        w.value(X.S8, 2)
    else:
        w.byte(X.NULL)


def may_invoke(obj, method, level):
    return level >= MANAGER and obj[O_METHODS] >> method & 1


def _value(model, reg, w):
    # A register as the Data its encoding maps to
    row = R.BY_ID[reg]
    size = row[R.R_SIZE]
    enc = row[R.R_ENC]
    v = model.get(reg)
    if enc == R.ENC_ASCII:
        k = len(v)
        while k and v[k - 1] == 0:
            k -= 1
        w.byte(X.VISIBLE)
        w.length(k)
        w.raw(v, 0, k)
    elif enc == R.ENC_UINT or enc == R.ENC_TIME or enc == R.ENC_INT:
        if isinstance(v, (bytes, bytearray)):
            v = X.uint(v, 0, size)
        signed = enc == R.ENC_INT
        tag = {1: X.S8, 2: X.S16, 4: X.S32, 8: X.S64}[size] if signed else {
            1: X.U8, 2: X.U16, 4: X.U32, 8: X.U64}[size]
        w.value(tag, v & ((1 << (8 * size)) - 1))
    else:  # bytes, bit fields, structures: the register's bytes as the READ gives them
        w.octets(v.to_bytes(size, "big") if isinstance(v, int) else v)


def source(obj, attr):
    """(register, struct field or -1) behind attribute attr of obj, or None:
    what docs/cosem.md names and the tests compare with the Original-SMITP READ."""
    cls, reg = obj[O_CLASS], obj[O_REG]
    if attr == 1 or reg is None:
        return None
    if cls == DATA or cls == REGISTER:
        return (reg, -1) if attr == 2 else None
    if cls == DISCONNECT_CONTROL:
        return (reg, 0) if attr < 4 else None
    if cls == PROFILE_GENERIC:
        return (reg, -1) if attr == 2 else None
    return DEM.source(cls, attr, reg) or CAL.source(cls, attr, reg)


class Objects:
    """The attributes and methods of OBJECTS on one data model; `assoc` is the
    xDLMS server, which knows the association (for classes 15 and 64)."""

    def __init__(self, model, assoc):
        self.model = model
        self.assoc = assoc
        self.demand = DEM.Demand(model)
        self.calendar = CAL.Calendar(model, self)

    def index(self, cls, obis):
        """Index in OBJECTS of the object (class, logical name)."""
        return find(cls, obis, 0)

    def get(self, i, attr, w):
        """Write attribute `attr` of OBJECTS[i] as Data into w; return the
        data-access-result (OK: written)."""
        obj = OBJECTS[i]
        cls = obj[O_CLASS]
        if attr < 1 or attr > ATTRS[cls]:
            return UNDEFINED
        if attr == 1:
            w.octets(obj[O_OBIS])
            return OK
        m = self.model
        reg = obj[O_REG]
        if cls == DATA or (cls == REGISTER and attr == 2):
            _value(m, reg, w)
        elif cls == REGISTER:
            row = R.BY_ID[reg]
            w.group(X.STRUCT, 2)
            w.value(X.S8, row[R.R_SCALER] & 0xFF)
            w.value(X.ENUM, _UNIT.get(row[R.R_UNIT], 255))
        elif cls == CLOCK and attr in (2, 4, 9):
            if attr == 2:
                date_time(w, m.get(R.CLOCK), self.clock_status())
            elif attr == 4:
                w.value(X.U8, self.clock_status())
            else:
                w.value(X.ENUM, 1)  # internal crystal
        elif cls == ASSOCIATION_LN and attr in (3, 4, 6):
            self._partners(attr, w)
        elif cls == ASSOCIATION_LN:
            return self.assoc.association_attr(attr, w)
        elif cls == PROFILE_GENERIC:
            return self.assoc.profiles.attr(obj[O_OBIS], attr, w)
        elif cls == SECURITY_SETUP:
            return self.assoc.security_attr(attr, w)
        elif cls == DISCONNECT_CONTROL:
            if attr == 4:
                w.value(X.ENUM, 1)  # control mode 1: remote disconnection and reconnection
                return OK
            cut = m.owner(reg)
            if cut is None:
                return UNAVAILABLE
            closed = cut.state == CO.CUT_CLOSED
            if attr == 2:
                w.value(X.BOOL, 1 if closed else 0)
            else:
                w.value(X.ENUM, 1 if closed else 0)  # connected / disconnected
        elif cls == EXTENDED_REGISTER or cls == DEMAND_REGISTER or cls == LIMITER:
            return self.demand.get(cls, reg, attr, w)
        else:
            return self.calendar.get(cls, obj[O_OBIS], attr, w)
        return OK

    def _partners(self, attr, w):
        # The convergence layer carries no SAPs (docs/protocol.md): the client is named by its
        # association's kind, 16 the public client, 1 the management client; the server is 1.
        a = self.assoc
        if attr == 3:
            w.group(X.STRUCT, 2)
            w.value(X.S8, 16 if a.level == PUBLIC else 1)
            w.value(X.U16, 1)
            return
        # object identifiers 2.16.756.5.8.1.n (context) and 2.16.756.5.8.2.n (mechanism), as 7 fields
        w.group(X.STRUCT, 7)
        w.value(X.U8, 2)
        w.value(X.U8, 16)
        w.value(X.U16, 756)
        w.value(X.U8, 5)
        w.value(X.U8, 8)
        w.value(X.U8, 1 if attr == 4 else 2)
        w.value(X.U8, (3 if a.ciphered else 1) if attr == 4 else (5 if a.ciphered else a.level))

    def clock_status(self):
        # bit 0 invalid value: the clock was not set since power-up
        return 1 if self.model.status >> R.SW_CLOCK_UNSET & 1 else 0

    def set(self, i, attr, buf, off, end):
        """Apply Data buf[off:end] to attribute `attr` of OBJECTS[i] (access
        checked by the caller); return the data-access-result."""
        obj = OBJECTS[i]
        cls = obj[O_CLASS]
        try:
            if cls == CLOCK and attr == 2:
                t = parse_date_time(buf, off, end)
                if not valid_time(t):
                    return TYPE_UNMATCHED
                return write(self.model, R.CLOCK, t.to_bytes(4, "big"))
            if cls == DEMAND_REGISTER or cls == LIMITER:
                return self.demand.set(cls, attr, buf, off, end)
            if cls == CLOCK or cls == ACTIVITY_CALENDAR or cls == SINGLE_ACTION:
                return self.calendar.set(cls, attr, buf, off, end)
        except (DecodeError, IndexError):
            return TYPE_UNMATCHED
        return DENIED

    def action(self, i, method, buf, off, end):
        """Invoke `method` of OBJECTS[i] with the Data at buf[off:end] (end ==
        off: none); return the action-result."""
        obj = OBJECTS[i]
        cls = obj[O_CLASS]
        try:
            if off < end:
                X.skip(buf, off, end)
            if cls == DISCONNECT_CONTROL:
                cut = self.model.owner(obj[O_REG])
                if cut is None:
                    return UNAVAILABLE
                cut.operate(method == 1, CO.WHY_COMMAND)
                return OK
            if cls == EXTENDED_REGISTER or cls == DEMAND_REGISTER:
                return self.demand.action(cls, obj[O_REG], method, self.model.get(R.CLOCK))
            if off == end:
                return TYPE_UNMATCHED  # the methods below take a parameter
            return self.calendar.action(cls, obj[O_OBIS], method, buf, off, end)
        except (DecodeError, IndexError):
            return TYPE_UNMATCHED
