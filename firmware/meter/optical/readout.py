# Mode C data readout of the optical port (IEC 62056-21), sans-io: after the
# option select "ACK 0 Z 0" the meter waits tr at the new rate and sends
#
#   STX  address(value*unit) CR LF ...  ! CR LF  ETX  BCC        7E1
#
# BCC = XOR of the characters after STX up to and including ETX. The data
# lines name the meter's values by their OBIS codes in the short C.D.E form
# usual in readouts; the table below maps them to registers (project choice,
# docs/protocol.md): only registers that plain services may read appear, as
# the readout needs no authentication.
from meter.model import registers as R
from meter import timers as T
from meter.clock import civil_from_days
from meter.compat import const, ticks_add, ticks_diff

STX = const(0x02)
ETX = const(0x03)


def bcc(buf, start, end):
    """IEC 62056-21 block check character: XOR of the 7-bit characters
    buf[start:end] (after STX or SOH, up to and including ETX)."""
    x = 0
    for i in range(start, end):
        x ^= buf[i]
    return x & 0x7F


# (OBIS address, register, format); formats below
_F_TEXT = 0  # ASCII register, trailing zeros removed
_F_HEX = 1  # bytes or bit field as upper-case hex
_F_KWH = 2  # Wh counter as kWh with 3 decimals
_F_TIME = 3  # seconds since 1970 -> hh:mm:ss (UTC)
_F_DATE = 4  # seconds since 1970 -> YY-MM-DD (UTC)
_F_VERSION = 5  # the firmware version (the register's full text is longer than 32 characters)

LINES = (
    ("0.0.0", R.SERIAL, _F_TEXT),  # device identification: the serial number
    ("0.0.1", R.ACA, _F_HEX),  # second identification: the PLC address (ACA)
    ("0.2.0", R.FIRMWARE_ID, _F_VERSION),  # firmware version
    ("0.9.1", R.CLOCK, _F_TIME),
    ("0.9.2", R.CLOCK, _F_DATE),
    ("1.8.0", R.ENERGY_IMPORT, _F_KWH),  # active energy import, total
    ("2.8.0", R.ENERGY_EXPORT, _F_KWH),  # active energy export, total
    ("F.F", R.STATUS_WORD, _F_HEX),  # status (IEC 62056-21 "fatal error" register)
)
# energy per tariff band: 1.8.1 .. 1.8.4 import, 2.8.1 .. 2.8.4 export
for _obis, _name in (("1.8.", "ENERGY_IMPORT_T1"), ("2.8.", "ENERGY_EXPORT_T1")):
    _first = getattr(R, _name, None)
    if _first is not None:
        LINES += tuple((_obis + str(_t + 1), _first + _t, _F_KWH) for _t in range(4))
MAX_VALUE = 32  # characters of a value in a data set (IEC 62056-21)


def civil(t):
    """(year, month, day, hour, minute, second) of Unix time t, UTC, without
    the time module (ports differ in their epoch)."""
    days, secs = divmod(t, 86400)
    y, m, d = civil_from_days(days)
    return y, m, d, secs // 3600, secs // 60 % 60, secs % 60


def _hex(b):
    return "".join("%02X" % x for x in b)


def _value(model, reg_id, fmt):
    row = R.BY_ID[reg_id]
    if fmt == _F_HEX or fmt == _F_TEXT:
        raw = bytearray(row[R.R_SIZE])
        model.read_into(row, raw, 0)
        if fmt == _F_HEX:
            return _hex(raw)
        end = len(raw)
        while end and raw[end - 1] == 0:
            end -= 1
        return "".join(chr(c) if 0x20 <= c < 0x7F and c not in b"()*/!" else "_" for c in raw[:end])
    if fmt == _F_VERSION:
        from meter import VERSION

        return VERSION
    v = model.get(reg_id)
    if fmt == _F_KWH:
        return "%07d.%03d*kWh" % (v // 1000, v % 1000)
    t = civil(v)
    if fmt == _F_TIME:
        return "%02d:%02d:%02d" % (t[3], t[4], t[5])
    return "%02d-%02d-%02d" % (t[0] % 100, t[1], t[2])


def readout_lines(model):
    """The data lines of the readout for the DataModel `model`, as bytes."""
    out = []
    for address, reg_id, fmt in LINES:
        row = R.BY_ID.get(reg_id)
        if row is None or not R.allowed(row[R.R_READ], R.ACC_PLAIN):
            continue
        out.append("%s(%s)\r\n" % (address, _value(model, reg_id, fmt)[:MAX_VALUE]))
    return "".join(out).encode()


def data_message(lines):
    """STX lines ! CR LF ETX BCC."""
    msg = bytearray()
    msg.append(STX)
    msg.extend(lines)
    msg.extend(b"!\r\n")
    msg.append(ETX)
    msg.append(bcc(msg, 1, len(msg)))
    return bytes(msg)


class ReadoutSession:
    """The mode C readout: one data message, tr after the switch, then done."""

    seven_e1 = True

    def __init__(self, lines):
        self._lines = lines  # callable giving the data lines
        self._due = None
        self._out = None
        self.done = None

    def start(self, now):
        self._due = ticks_add(now, T.OPT_READOUT_MS)

    def receive(self, data, now):
        pass  # the HHU has nothing to say during a readout

    def poll(self, now):
        if self._due is not None and ticks_diff(now, self._due) >= 0:
            self._due = None
            self._out = data_message(self._lines())
            self.done = "readout"

    def next_timeout(self, now):
        return -1 if self._due is None else max(0, ticks_diff(self._due, now))

    def data_to_send(self):
        out = self._out
        self._out = None
        return out
