"""Register values as people read them: names, units, text, times, and the
fields of structured values and table records (layouts: meter.registers.LAYOUTS)."""

import datetime
import struct

from meter import events as E
from meter import registers as R

# Event codes (meter/events.py) as people read them.
EVENT_NAMES = {
    E.EV_POWER_DOWN: "power down",
    E.EV_POWER_UP: "power up",
    E.EV_CLOCK_SET: "clock set",
    E.EV_CLOCK_SYNC: "clock synchronised",
    E.EV_DST: "daylight saving time change",
    E.EV_BILLING: "billing period closed",
    E.EV_CUTOFF_OPEN: "cut-off device opened",
    E.EV_CUTOFF_CLOSE: "cut-off device closed",
    E.EV_OVER_LIMIT: "power above the limit",
    E.EV_CONTRACT: "contract switched",
    E.EV_SETTINGS: "settings changed",
    E.EV_TABLE_RESET: "table reset",
    E.EV_ALARMS_RESET: "alarms reset",
    E.EV_PHASE_INTERRUPTION: "phase interruption",
    E.EV_UNDERVOLTAGE: "undervoltage",
    E.EV_OVERVOLTAGE: "overvoltage",
    E.EV_STORAGE_FAULT: "storage fault",
    E.EV_KEYS: "keys changed",
    E.EV_LOG_RESET: "event log reset",
}


def layout_fields(reg_id):
    """[(name, unit, scaler)] of a structured register or table record; units
    starting with "=" are kinds: =time, =bits, =event, =point."""
    fields = []
    for spec in R.LAYOUTS[reg_id][1].split(","):
        parts = spec.split(":")
        name, unit = parts[0], parts[1] if len(parts) > 1 else ""
        scaler = int(parts[2]) if len(parts) > 2 else 0
        if "*" in name:
            base, n = name.split("*")
            fields.extend(("%s %d" % (base, i + 1), unit, scaler) for i in range(int(n)))
        else:
            fields.append((name, unit, scaler))
    return fields


def _field_value(unit, scaler, v):
    if unit == "=point":
        return None if v == 0xFFFF else "%02d:%02d T%d" % ((v & 0xFFF) // 60, (v & 0xFFF) % 60, v >> 12)
    if unit == "=bits":
        return "%X" % v
    if scaler:
        return round(v * 10 ** scaler, -scaler)
    return v


def decode_record(reg_id, raw):
    """A structured value or table record -> {field: value} (JSON-friendly)."""
    values = struct.unpack(R.LAYOUTS[reg_id][0], bytes(raw))
    out = {}
    for (name, unit, scaler), v in zip(layout_fields(reg_id), values):
        out[name] = _field_value(unit, scaler, v)
        if unit == "=event":
            out[name + " name"] = EVENT_NAMES.get(v, "unknown")
    return out


def _utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def show_record(reg_id, raw):
    """A structured value or table record -> one line: field value unit, ..."""
    values = struct.unpack(R.LAYOUTS[reg_id][0], bytes(raw))
    parts = []
    for (name, unit, scaler), v in zip(layout_fields(reg_id), values):
        if unit == "=time":
            text = _utc(v) if v else "-"
        elif unit == "=event":
            text = "%s (%d)" % (EVENT_NAMES.get(v, "unknown"), v)
        else:
            fv = _field_value(unit, scaler, v)
            text = "-" if fv is None else str(fv)
            if unit and not unit.startswith("="):
                text += " " + unit
        parts.append("%s %s" % (name, text))
    return ", ".join(parts)


def decode_value(reg_id, raw):
    """Raw register bytes -> a JSON-friendly value (int, str)."""
    row = R.lookup(reg_id)
    if row is None:
        return bytes(raw).hex()
    enc = row[R.R_ENC]
    if enc in (R.ENC_STRUCT, R.ENC_TABLE):
        return decode_record(reg_id, raw)
    if enc in (R.ENC_UINT, R.ENC_TIME, R.ENC_INT):
        v = int.from_bytes(raw, "big", signed=enc == R.ENC_INT)
        scaler = row[R.R_SCALER]
        return round(v * 10 ** scaler, -scaler) if scaler < 0 else v * 10 ** scaler
    if enc == R.ENC_ASCII:
        return bytes(raw).rstrip(b"\x00").decode("ascii", "replace")
    return bytes(raw).hex().upper()


def show_value(reg_id, raw):
    """Raw register bytes -> one line of text with the unit."""
    row = R.lookup(reg_id)
    value = decode_value(reg_id, raw)
    if row is None:
        return value
    if row[R.R_ENC] == R.ENC_TIME:
        return "%s (%d s)" % (_utc(value), value)
    if row[R.R_ENC] in (R.ENC_STRUCT, R.ENC_TABLE):
        return show_record(reg_id, raw)
    unit = row[R.R_UNIT]
    return "%s %s" % (value, unit) if unit else str(value)


def encode_value(reg_id, text):
    """Text from the command line -> raw register bytes (ints, text or hex)."""
    row = R.lookup(reg_id)
    if row is None:
        raise ValueError("register 0x%04X is not in the register table" % reg_id)
    size, enc = row[R.R_SIZE], row[R.R_ENC]
    if enc in (R.ENC_UINT, R.ENC_TIME, R.ENC_BITS):
        value = int(text, 0)
        if not 0 <= value < 1 << (8 * size):
            raise ValueError("%d does not fit %d bytes" % (value, size))
        return value.to_bytes(size, "big")
    if enc in (R.ENC_STRUCT, R.ENC_TABLE) and "," in text:
        # comma-separated field values, in layout order
        fields = [int(f, 0) for f in text.split(",")]
        try:
            return struct.pack(R.LAYOUTS[reg_id][0], *fields)
        except struct.error as e:
            raise ValueError("register 0x%04X takes %d fields: %s" % (reg_id, len(layout_fields(reg_id)), e))
    if enc == R.ENC_ASCII:
        raw = text.encode("ascii")
        if len(raw) > size:
            raise ValueError("text longer than %d bytes" % size)
        return raw + bytes(size - len(raw))
    raw = bytes.fromhex(text)
    if len(raw) != size:
        raise ValueError("register 0x%04X takes %d bytes" % (reg_id, size))
    return raw


def register_name(reg_id):
    row = R.lookup(reg_id)
    return row[R.R_NAME] if row else "unknown"


def parse_register(text):
    """'0x003F', '63' or a name such as 'status word' -> id."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    for row in R.TABLE:
        if row[R.R_NAME].lower() == text.replace("_", " ").lower():
            return row[R.R_ID]
    raise ValueError("unknown register %r" % text)
