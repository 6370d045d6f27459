# The screen: the character model every display driver renders (an
# identifier field, a value field, an alphanumeric line, a unit and
# annunciators), and how a register's value is laid out on it. The display
# manager (meter/display/manager.py) decides what shows; drivers (meter/display/lcd.py,
# meter/display/ssd1306.py) draw it.
from meter.model import registers as R
from meter.clock import civil_from_days
from meter.compat import const

MODE_NORMAL = const(0)
MODE_ALTERNATE = const(1)
MODE_TEST = const(2)
MODE_NAMES = ("normal", "alternate", "test")

# what the screen holds
SHOW_VALUE = const(0)
SHOW_MESSAGE = const(1)
SHOW_ALARM = const(2)
SHOW_TEST = const(3)
SHOW_NAMES = ("value", "message", "alarm", "test")

# annunciators (bit mask)
ICON_ALARM = const(1)  # a status-word alarm is set
ICON_MESSAGE = const(2)  # a utility or special message is active
ICON_ALTERNATE = const(4)  # alternate mode
ICON_CLOCK = const(8)  # the clock has not been set since power-up
ICON_NAMES = ("alarm", "message", "alternate", "clock")
ICONS_ALL = const(15)

# the character model every display driver renders
LINE_CHARS = const(16)  # alphanumeric line (dot matrix)
CODE_DIGITS = const(4)  # identifier field: seven-segment positions, each with a point
VALUE_DIGITS = const(8)  # value field: seven-segment positions with points and colons

# each register the display can show. Others show their id in hex and name.
ITEMS = {
    R.ENERGY_IMPORT: ("1.8.0", "ACTIVE IMPORT"),
    R.ENERGY_EXPORT: ("2.8.0", "ACTIVE EXPORT"),
    R.CLOCK: ("0.9.1", "TIME"),
    R.SERIAL: ("C.1.0", "SERIAL NUMBER"),
    R.ACA: ("0.0.0", "PLC ADDRESS"),
    R.STATUS_WORD: ("F.F", "STATUS WORD"),
}


class Screen:
    """What the display shows, as fields of the character model."""

    def __init__(self):
        self.show = SHOW_VALUE
        self.mode = MODE_NORMAL
        self.line = ""  # alphanumeric line, at most LINE_CHARS
        self.code = ""  # identifier, at most CODE_DIGITS positions ('.' joins the one before)
        self.value = ""  # value, at most VALUE_DIGITS positions ('.' and ':' join the one before)
        self.unit = ""
        self.icons = 0

    def _set(self, show, line, code, value, unit):
        self.show = show
        self.line = line
        self.code = code
        self.value = value
        self.unit = unit

    def key(self):
        return (self.show, self.mode, self.line, self.code, self.value, self.unit, self.icons)

    def text(self):
        """One line: mode|show|code|value|unit|line|icons (logs, the emulated board's dump)."""
        icons = ",".join(ICON_NAMES[i] for i in range(len(ICON_NAMES)) if self.icons & (1 << i))
        return "%s|%s|%s|%s|%s|%s|%s" % (MODE_NAMES[self.mode], SHOW_NAMES[self.show], self.code, self.value,
                                         self.unit, self.line, icons)



def _text(raw):
    end = len(raw)
    while end and raw[end - 1] == 0:
        end -= 1
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw[:end])



def format_value(screen, reg, value):
    """Fill the screen with register `reg` holding `value` (int or bytes)."""
    row = R.BY_ID[reg]
    code, label = ITEMS.get(reg, (None, None))
    if code is None:
        code = "%04X" % reg
        label = row[R.R_NAME].upper()
    enc, unit = row[R.R_ENC], row[R.R_UNIT]
    line, text = label, ""
    if enc == R.ENC_TIME:
        y, mo, d = civil_from_days(value // 86400)
        s = value % 86400
        line = "%04d-%02d-%02d UTC" % (y, mo, d)
        text = "%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)
        unit = ""
    elif enc == R.ENC_UINT:
        scaler = row[R.R_SCALER]
        if scaler > 0:
            value *= 10 ** scaler
        if unit == "Wh":  # energies in kWh with three decimals, as meters show them
            unit = "kWh"
            scaler -= 3
        if scaler < 0:
            div = 10 ** -scaler
            text = "%d.%0*d" % (value // div, -scaler, value % div)
            if len(text) > VALUE_DIGITS + 1:  # the decimals make way for the integer part
                text = "%d" % (value // div)
        else:
            text = "%d" % value
        if len(text) > VALUE_DIGITS + (1 if "." in text else 0):
            line, text = text[-LINE_CHARS:], ""
    elif enc == R.ENC_BITS:
        text = "%08X" % (value & 0xFFFFFFFF)
    elif enc == R.ENC_ASCII:
        line = _text(value)[:LINE_CHARS] or "-"
    else:
        hexed = "".join("%02X" % b for b in value)
        if len(hexed) <= VALUE_DIGITS:
            text = hexed
        else:
            line = hexed[:LINE_CHARS]
    screen._set(SHOW_VALUE, line, code, text, unit)
