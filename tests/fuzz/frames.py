# Frames of the meter's ports, built field by field rather than through the
# firmware's encoders, so that any field may also hold what they refuse.
# Each takes its layout from the module that decodes it.
from meter.link import mac
from meter.optical import modef as F
from meter.phy import st7580 as ST
from meter.crypto import crc32


def _crc_le(c):
    return bytes((c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, (c >> 24) & 0xFF))


def plc_body(addr, ctl, route, hop, control, lsap, data):
    """A PLC MAC frame without LT and CRC (meter/link/mac.py): LT placeholder | ADDRESS
    | CTL | RP | HOP | INF-control | INF-LSAP | LLC data."""
    body = bytearray(1)
    body.extend(addr)
    body.append(ctl)
    body.extend(route)
    body.append(hop)
    body.append(control)
    body.append(lsap)
    body.extend(data)
    return body


def plc_finish(body, lt=None):
    """Set LT (its own value when lt is None) and append the CRC-32."""
    body[0] = (len(body) - 1 if lt is None else lt) & 0xFF
    return bytes(body) + _crc_le(crc32(body))


def plc(addr, route, discipline, uplink, position, poll, lsap, data):
    """A well-formed PLC frame (as the concentrator sends it)."""
    reps = len(route) // mac.ADDR_LEN
    ctl = (discipline << 4) | (((reps - 1) << 1) if reps else 1)
    hop = (0x80 if uplink else 0) | position
    return plc_finish(plc_body(addr, ctl, route, hop, 1 if poll else 0, lsap, data))


def local(cmd, data, stx=ST.STX, length=None, cs_delta=0):
    """An ST7580 local-port frame; length and cs_delta falsify LEN and checksum."""
    n = len(data) if length is None else length
    out = bytearray((stx, n & 0xFF, cmd & 0xFF))
    out.extend(data)
    s = (ST.checksum(out, 1) + cs_delta) & 0xFFFF
    out.append(s & 0xFF)
    out.append(s >> 8)
    return bytes(out)


def mode_f(ctl, lsap, data, length=None, crc_delta=0):
    """A mode F frame (meter/optical/modef.py); length and crc_delta falsify LEN and CRC."""
    out = bytearray((F.SOF, (len(data) + 2 if length is None else length) & 0xFF, ctl, lsap))
    out.extend(data)
    return bytes(out) + _crc_le((crc32(memoryview(out)[1:]) + crc_delta) & 0xFFFFFFFF)
