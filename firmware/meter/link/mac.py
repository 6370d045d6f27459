# MAC frame codec of the SMITP B-PSK data link (CLC/TS 50568-4 lineage).
#
# On-air layout (docs/protocol.md, "MAC frame"; project choices marked there):
#   LT | ADDRESS(6) | CTL | RP(n x 6) | HOP | INF-control | INF-LSAP | LLC data | CRC-32 (4)
# - LT      number of bytes from ADDRESS to the end of the LLC data (project choice)
# - ADDRESS final destination (downlink) or responding node (uplink), ACA least
#           significant byte first
# - CTL     bit 0 NOR (1 = direct), bits 1-3 repeaters - 1, bits 4-7 discipline
# - RP      repeater addresses, the one nearest the concentrator first (project
#           choice): 6-byte entries (an ACA, or a whole SCA) when ADDRESS is an
#           ACA; 2-byte entries (sub-section | node of an SCA in ADDRESS's
#           section) when ADDRESS is in SCA form (byte 5 = 03, as the public
#           parser reads it, the broadcast included)
# - HOP     the "Reserved" byte, used for the repetition state (project choice):
#           bit 7 uplink, bits 0-3 position of the node that sent this copy
#           (0 concentrator, 1..n repeaters, n + 1 the remote node)
# - CRC-32  zlib CRC-32 over LT .. end of LLC data, little-endian (project choice)
# Decoding never slices: it fills a preallocated Frame with offsets into the
# caller's buffer. Encoding writes in place, in the caller's buffer (a modem
# driver's transmit slot); nothing here allocates once imported.
from array import array

from meter.compat import const
from meter.errors import DecodeError
from meter.link import llc

ADDR_LEN = const(6)
SCA_ENTRY_LEN = const(2)  # a repeater entry of an SCA-addressed frame: sub-section | node
SCA_MARK = const(0x03)  # ADDRESS byte 5 (on air) of the SCA form
MAX_REPEATERS = const(8)  # 3-bit CTL field, repeaters - 1
MAX_LLC_DATA = const(128)  # ATTR + APDU
HEADER_LEN = const(11)  # LT, ADDRESS, CTL, HOP, INF-control, INF-LSAP (no RP)
CRC_LEN = const(4)
MAX_FRAME = const(191)  # 11 + 8 * 6 + 128 + 4
MIN_FRAME = const(16)  # header + ATTR + CRC

_OFF_ADDR = const(1)
_OFF_CTL = const(7)
_OFF_RP = const(8)
_NOR = const(0x01)
_UPLINK = const(0x80)
_POS_MASK = const(0x0F)

# Disciplines (CTL high nibble): class, max response bytes, RC time slots.
CLASS_S = const(0)
CLASS_RA = const(1)
CLASS_RB = const(2)
CLASS_RC = const(3)
# index = discipline nibble: (class, max response length, time slots)
DISCIPLINES = (
    (CLASS_S, 0, 0),
    (CLASS_S, 0, 0),
    (CLASS_RA, 20, 0),
    (CLASS_RA, 40, 0),
    (CLASS_RA, 60, 0),
    (CLASS_RA, 80, 0),
    (CLASS_RA, 100, 0),
    (CLASS_RA, 120, 0),
    (CLASS_RA, 140, 0),
    (CLASS_RB, 20, 0),
    (CLASS_RB, 30, 0),
    (CLASS_RB, 50, 0),
    (CLASS_RC, 90, 8),
    (CLASS_RC, 90, 16),
    (CLASS_RC, 90, 32),
    (CLASS_RC, 90, 64),
)
DISC_S = const(0x0)
DISC_RA7 = const(0x8)  # the largest RA response (140 bytes)

BROADCAST = b"\xff\xff\xff\xff\xff\x03"  # on-air order; byte 5 = 0x03 marks SCA form


# CRC-32 (zlib) by table, in two 16-bit halves: binascii.crc32 would need a
# slice of the frame, and its result is a heap int on 32-bit ports.
_CRC_T = array("H", bytes(1024))  # 256 low halves, then 256 high halves
for _i in range(256):
    _c = _i
    for _k in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC_T[_i] = _c & 0xFFFF
    _CRC_T[_i + 256] = _c >> 16
del _i, _c, _k
_CRC_OUT = bytearray(4)


def crc_into(buf, start, end, out, at):
    """Write the CRC-32 of buf[start:end] at out[at:at + 4], little-endian."""
    t = _CRC_T
    lo = hi = 0xFFFF
    for i in range(start, end):
        x = (lo ^ buf[i]) & 0xFF
        lo = ((hi & 0xFF) << 8 | lo >> 8) ^ t[x]
        hi = hi >> 8 ^ t[x + 256]
    lo ^= 0xFFFF
    hi ^= 0xFFFF
    out[at] = lo & 0xFF
    out[at + 1] = lo >> 8
    out[at + 2] = hi & 0xFF
    out[at + 3] = hi >> 8


def aca_to_air(aca):
    """Natural-order ACA (most significant byte first) -> on-air order."""
    return bytes(reversed(aca))


def discipline_for(max_response, cls=CLASS_RA):
    """Smallest discipline of class RA (or RB) whose response length fits `max_response`."""
    for d in range(2, 12):
        if DISCIPLINES[d][0] == cls and DISCIPLINES[d][1] >= max_response:
            return d
    raise DecodeError("discipline", "no R%s discipline fits %d bytes" % ("A" if cls == CLASS_RA else "B", max_response))


class Frame:
    """Fields of one decoded frame; offsets point into the decoded buffer."""

    def __init__(self):
        self.buf = None
        self.length = 0  # whole frame including CRC
        self.addr = 0  # offset of ADDRESS
        self.ctl = 0
        self.repeaters = 0
        self.discipline = 0
        self.rp = 0  # offset of RP
        self.rp_size = ADDR_LEN  # bytes per repeater entry: 6, or 2 when ADDRESS is an SCA
        self.uplink = False
        self.position = 0
        self.poll = False
        self.dsap = 0
        self.ecc = 0
        self.data = 0  # offset of the LLC data (ATTR)
        self.data_len = 0

    def rp_addr(self, i):
        """Offset of repeater i (0 = nearest the concentrator)."""
        return self.rp + self.rp_size * i


def entry_len(addr, off=0):
    """Bytes per repeater entry of a frame whose ADDRESS is addr[off:off + 6]."""
    return SCA_ENTRY_LEN if addr[off + 5] == SCA_MARK else ADDR_LEN


def same_addr(buf, off, addr):
    """True if buf[off:off+6] equals addr, without slicing."""
    for i in range(ADDR_LEN):
        if buf[off + i] != addr[i]:
            return False
    return True


def decode(frame, buf, n):
    """Validate the frame in buf[0:n] and fill `frame`; raise DecodeError."""
    if n < MIN_FRAME:
        raise DecodeError("LT", "frame of %d bytes is shorter than %d" % (n, MIN_FRAME))
    if n > MAX_FRAME:
        raise DecodeError("LT", "frame of %d bytes is longer than %d" % (n, MAX_FRAME))
    lt = buf[0]
    if lt + 1 + CRC_LEN != n:
        raise DecodeError("LT", "LT %d does not match a %d-byte frame" % (lt, n))
    body = n - CRC_LEN
    c = _CRC_OUT
    crc_into(buf, 0, body, c, 0)
    if c[0] != buf[body] or c[1] != buf[body + 1] or c[2] != buf[body + 2] or c[3] != buf[body + 3]:
        raise DecodeError("CRC", "frame CRC-32 mismatch")
    esz = entry_len(buf, _OFF_ADDR)
    ctl = buf[_OFF_CTL]
    reps = 0 if ctl & _NOR else ((ctl >> 1) & 0x07) + 1
    hop = _OFF_RP + reps * esz
    if hop + 3 >= body:
        raise DecodeError("RP", "%d repeaters leave no room for the LLC header" % reps)
    pos = buf[hop] & _POS_MASK
    if buf[hop] & 0x70 or pos > reps + 1:
        raise DecodeError("HOP", "invalid repetition state 0x%02x" % buf[hop])
    frame.buf = buf
    frame.length = n
    frame.addr = _OFF_ADDR
    frame.ctl = ctl
    frame.repeaters = reps
    frame.discipline = ctl >> 4
    frame.rp = _OFF_RP
    frame.rp_size = esz
    frame.uplink = bool(buf[hop] & _UPLINK)
    frame.position = pos
    frame.poll = llc.poll_flag(buf[hop + 1])
    frame.dsap = llc.dsap(buf[hop + 2])
    frame.ecc = llc.ecc(buf[hop + 2])
    frame.data = hop + 3
    frame.data_len = body - frame.data
    if frame.data_len > MAX_LLC_DATA:
        raise DecodeError("LLC data", "%d bytes exceed %d" % (frame.data_len, MAX_LLC_DATA))
    return frame


def _finish(out, end):
    """Write LT and the CRC-32 of out[0:end]; return the frame length."""
    out[0] = end - 1
    crc_into(out, 0, end, out, end)
    return end + CRC_LEN


def _head(out, addr, route, rp, reps, discipline, uplink, position, poll, dsap, ecc):
    """Everything before the LLC data, the route copied from route[rp:rp + reps *
    entry size] (the entry size follows addr); returns where the LLC data goes."""
    for i in range(ADDR_LEN):
        out[_OFF_ADDR + i] = addr[i]
    out[_OFF_CTL] = (discipline << 4) | (((reps - 1) << 1) if reps else _NOR)
    hop = _OFF_RP + reps * entry_len(addr)
    for i in range(hop - _OFF_RP):
        out[_OFF_RP + i] = route[rp + i]
    out[hop] = (_UPLINK if uplink else 0) | position
    out[hop + 1] = llc.control(poll)
    out[hop + 2] = llc.lsap(dsap, ecc)
    return hop + 3


def _check_data(n):
    if n < 1 or n > MAX_LLC_DATA:
        raise DecodeError("LLC data", "length %d out of 1..%d" % (n, MAX_LLC_DATA))


def encode(out, addr, route, discipline, uplink, position, poll, dsap, ecc, data, size=-1):
    """Build a frame into `out` (bytearray or memoryview); return its length.

    addr: on-air ADDRESS (6 bytes); route: on-air repeater entries concatenated,
    nearest the concentrator first: 6 bytes each, or 2 (sub-section | node)
    when addr is in SCA form; data: the LLC data, data[0:size] (all of data
    when size < 0).
    """
    data_len = len(data) if size < 0 else size
    _check_data(data_len)
    esz = entry_len(addr)
    reps = len(route) // esz
    if reps * esz != len(route) or reps > MAX_REPEATERS:
        raise DecodeError("RP", "route of %d bytes is not 0..8 entries of %d" % (len(route), esz))
    d = _head(out, addr, route, 0, reps, discipline, uplink, position, poll, dsap, ecc)
    for i in range(data_len):
        out[d + i] = data[i]
    return _finish(out, d + data_len)


def answer(out, frame, addr, ecc, data, size):
    """The answer to the decoded `frame` into `out`: from addr, back along
    the frame's repeaters, class S, same DSAP, LLC data data[0:size]; return
    its length. The one copy of an answer on its way to the modem. addr must
    have the frame's address form (an SCA when the route has 2-byte entries)."""
    _check_data(size)
    if frame.repeaters and entry_len(addr) != frame.rp_size:
        raise DecodeError("ADDRESS", "answer address form differs from the route's")
    reps = frame.repeaters
    d = _head(out, addr, frame.buf, frame.rp, reps, DISC_S, True, reps + 1, False, frame.dsap, ecc)
    for i in range(size):
        out[d + i] = data[i]
    return _finish(out, d + size)


def relay(frame, out):
    """Copy `frame` into `out` as sent by the next node on its path; return length.

    The only change a repeater makes is the position in HOP (and so the CRC).
    """
    buf = frame.buf
    body = frame.length - CRC_LEN
    for i in range(body):
        out[i] = buf[i]
    hop = frame.data - 3
    pos = frame.position - 1 if frame.uplink else frame.position + 1
    out[hop] = (buf[hop] & _UPLINK) | pos
    return _finish(out, body)
