"""Register values as people read them: names, units, text, times."""

import datetime

from meter import registers as R


def decode_value(reg_id, raw):
    """Raw register bytes -> a JSON-friendly value (int, str)."""
    row = R.lookup(reg_id)
    if row is None:
        return bytes(raw).hex()
    enc = row[R.R_ENC]
    if enc in (R.ENC_UINT, R.ENC_TIME):
        return int.from_bytes(raw, "big") * 10 ** row[R.R_SCALER]
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
        when = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        return "%s (%d s)" % (when.strftime("%Y-%m-%d %H:%M:%S UTC"), value)
    unit = row[R.R_UNIT]
    return "%s %s" % (value, unit) if unit else str(value)


def encode_value(reg_id, text):
    """Text from the command line -> raw register bytes (ints, text or hex)."""
    row = R.lookup(reg_id)
    if row is None:
        raise ValueError("register 0x%04X is not in the register table" % reg_id)
    size, enc = row[R.R_SIZE], row[R.R_ENC]
    if enc in (R.ENC_UINT, R.ENC_TIME):
        value = int(text, 0)
        if not 0 <= value < 1 << (8 * size):
            raise ValueError("%d does not fit %d bytes" % (value, size))
        return value.to_bytes(size, "big")
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
        if row[R.R_NAME] == text.replace("_", " ").lower():
            return row[R.R_ID]
    raise ValueError("unknown register %r" % text)
