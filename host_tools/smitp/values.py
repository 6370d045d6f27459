"""Register values as people read them: names, units, text, times, and the
fields of structured values and table records (layouts: meter.model.registers.LAYOUTS)."""

import datetime
import struct

from meter.model import events as E
from meter.model import registers as R

# Event codes (meter/model/events.py) as people read them.
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


def _field_value(unit, scaler, v, iso=False):
    if unit == "=time" and iso:
        return iso_time(v) if v else None
    if unit == "=point":
        return None if v == 0xFFFF else "%02d:%02d T%d" % ((v & 0xFFF) // 60, (v & 0xFFF) % 60, v >> 12)
    if unit == "=bits":
        return "%X" % v
    if scaler:
        return round(v * 10 ** scaler, -scaler)
    return v


def record_fields(fields, values, iso=False):
    """[(name, unit, scaler)] and their numbers -> {field: value} (JSON-friendly);
    iso: times as ISO 8601 UTC text (None for 0), else seconds since 1970."""
    out = {}
    for (name, unit, scaler), v in zip(fields, values):
        out[name] = _field_value(unit, scaler, v, iso)
        if unit == "=event":
            out[name + " name"] = EVENT_NAMES.get(v, "unknown")
    return out


def decode_record(reg_id, raw, iso=False):
    """A structured value or table record -> {field: value} (JSON-friendly)."""
    return record_fields(layout_fields(reg_id), struct.unpack(R.LAYOUTS[reg_id][0], bytes(raw)), iso)


TIME_MAX = (1 << 32) - 1  # times travel as 4 bytes, seconds since 1970
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(t):
    """Seconds since 1970 -> ISO 8601 UTC text: 2026-12-02T10:00:00Z."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(ISO_FORMAT)


def parse_time(text):
    """Seconds since 1970 from an integer or an ISO 8601 date-time (UTC unless it
    says otherwise); ValueError in one line naming the text."""
    try:
        t = parse_int(text)
    except ValueError:
        try:
            d = datetime.datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError("%s is neither seconds since 1970 nor an ISO 8601 date-time "
                             "(2026-12-02T10:00:00Z)" % quoted(text)) from None
        t = int(d.replace(tzinfo=d.tzinfo or datetime.timezone.utc).timestamp())
    if not 0 <= t <= TIME_MAX:
        raise ValueError("%s is outside 1970-01-01 .. 2106-02-07 (0..%d s)" % (quoted(text), TIME_MAX))
    return t


def _bit_names(prefix):
    """{bit: name} of the register table's constants PREFIX_NAME (SW_CLOCK_UNSET -> "clock unset")."""
    return {v: k[len(prefix):].lower().replace("_", " ") for k, v in vars(R).items() if k.startswith(prefix)}


# Bit fields whose bits have names: the status words, the control flags.
BIT_NAMES = {R.STATUS_WORD: _bit_names("SW_"), R.EXT_STATUS: _bit_names("XS_"), R.CONTROL_FLAGS: _bit_names("CF_")}


def set_flags(reg_id, raw):
    """The names of the bits set in a bit field register, least significant first."""
    v, names = int.from_bytes(raw, "big"), BIT_NAMES[reg_id]
    return [names.get(b, "bit %d" % b) for b in range(8 * len(raw)) if v >> b & 1]


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
    if reg_id in BIT_NAMES:
        return "%s (%s)" % (value, ", ".join(set_flags(reg_id, raw)) or "no flag set")
    unit = row[R.R_UNIT]
    return "%s %s" % (value, unit) if unit else str(value)


def json_value(reg_id, raw):
    """Raw register bytes -> the value of its JSON shape: bit fields with named
    bits as the list of the flags set, times in ISO 8601 UTC."""
    row = R.lookup(reg_id)
    if row is not None and reg_id in BIT_NAMES:
        return set_flags(reg_id, raw)
    if row is not None and row[R.R_ENC] == R.ENC_TIME:
        return iso_time(decode_value(reg_id, raw))
    if row is not None and row[R.R_ENC] in (R.ENC_STRUCT, R.ENC_TABLE):
        return decode_record(reg_id, raw, iso=True)
    return decode_value(reg_id, raw)


def register_json(reg_id, raw):
    """The one JSON shape of a register value, wherever one is printed."""
    row = R.lookup(reg_id)
    unit = row[R.R_UNIT] if row and row[R.R_ENC] != R.ENC_TIME else ""  # a time says its own: ISO 8601 UTC
    return {"id": "0x%04X" % reg_id, "name": register_name(reg_id), "raw": bytes(raw).hex().upper(),
            "value": json_value(reg_id, raw), "unit": unit or None}


def quoted(text):
    """Text a person gave, as an error message quotes it: short, on one line."""
    return repr(text if len(text) <= 24 else text[:20] + "...")


def parse_int(text):
    """'42', '0x2A', '0b101010' or '042' -> 42; ValueError naming the text."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return int(text, 10)  # leading zeros
    except ValueError:
        raise ValueError("%s is not an integer" % quoted(text)) from None


def _int_bytes(text, size, signed):
    value = parse_int(text)
    bits = 8 * size - signed
    lo, hi = (-(1 << bits), (1 << bits) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise ValueError("%d is outside %d..%d (%d bytes)" % (value, lo, hi, size))
    return value.to_bytes(size, "big", signed=signed)


def encode_value(reg_id, text):
    """Text from the command line -> raw register bytes (ints, text or hex);
    ValueError says what is wrong with the text."""
    row = R.lookup(reg_id)
    if row is None:
        raise ValueError("register 0x%04X is not in the register table" % reg_id)
    size, enc = row[R.R_SIZE], row[R.R_ENC]
    if enc == R.ENC_TIME:
        return parse_time(text).to_bytes(size, "big")
    if enc in (R.ENC_UINT, R.ENC_BITS, R.ENC_INT):
        return _int_bytes(text, size, enc == R.ENC_INT)
    if enc in (R.ENC_STRUCT, R.ENC_TABLE) and "," in text:
        # comma-separated field values, in layout order; times also in ISO 8601
        units = [f[1] for f in layout_fields(reg_id)] + [""] * text.count(",")
        fields = [parse_time(f) if u == "=time" else parse_int(f.strip()) for f, u in zip(text.split(","), units)]
        try:
            return struct.pack(R.LAYOUTS[reg_id][0], *fields)
        except struct.error as e:
            raise ValueError("register 0x%04X takes %d comma-separated fields (%s): %s"
                             % (reg_id, len(layout_fields(reg_id)), ", ".join(f[0] for f in layout_fields(reg_id)),
                                e)) from None
    if enc == R.ENC_ASCII:
        if not text.isascii():
            raise ValueError("register 0x%04X takes ASCII text" % reg_id)
        if len(text) > size:
            raise ValueError("register 0x%04X takes at most %d characters" % (reg_id, size))
        return text.encode("ascii") + bytes(size - len(text))
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("register 0x%04X takes %d bytes in hex, not %s" % (reg_id, size, quoted(text))) from None
    if len(raw) != size:
        raise ValueError("register 0x%04X takes %d bytes (%d hex digits), not %d" % (reg_id, size, 2 * size, len(raw)))
    return raw


def register_name(reg_id):
    row = R.lookup(reg_id)
    return row[R.R_NAME] if row else "unknown"


def parse_register(text):
    """'0x003F', '63' or a name such as 'status word' -> the id of a register of the table."""
    try:
        reg = int(text, 0)
    except ValueError:
        name = text.replace("_", " ").lower()
        reg = next((row[R.R_ID] for row in R.TABLE if row[R.R_NAME].lower() == name), None)
    if reg is None or R.lookup(reg) is None:
        raise ValueError("no register %s in the register table (docs/data-model.md)" % quoted(text))
    return reg
