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


# CRC-32 (zlib) by table: entry x is the CRC of byte x, kept as four planes of
# bytes. binascii.crc32 would need a slice of the frame, and its result is a
# heap int on 32-bit ports; the planes keep every step on small ints. The table
# is written out, not computed at import: bytes constants are frozen into
# flash with the bytecode and cost no RAM (tests/firmware/test_mac.py checks it).
_CRC_T = (  # byte p of entry x at p * 256 + x
    b"\x00\x96\x2c\xba\x19\x8f\x35\xa3\x32\xa4\x1e\x88\x2b\xbd\x07\x91\x64\xf2\x48\xde\x7d\xeb\x51\xc7"
    b"\x56\xc0\x7a\xec\x4f\xd9\x63\xf5\xc8\x5e\xe4\x72\xd1\x47\xfd\x6b\xfa\x6c\xd6\x40\xe3\x75\xcf\x59"
    b"\xac\x3a\x80\x16\xb5\x23\x99\x0f\x9e\x08\xb2\x24\x87\x11\xab\x3d\x90\x06\xbc\x2a\x89\x1f\xa5\x33"
    b"\xa2\x34\x8e\x18\xbb\x2d\x97\x01\xf4\x62\xd8\x4e\xed\x7b\xc1\x57\xc6\x50\xea\x7c\xdf\x49\xf3\x65"
    b"\x58\xce\x74\xe2\x41\xd7\x6d\xfb\x6a\xfc\x46\xd0\x73\xe5\x5f\xc9\x3c\xaa\x10\x86\x25\xb3\x09\x9f"
    b"\x0e\x98\x22\xb4\x17\x81\x3b\xad\x20\xb6\x0c\x9a\x39\xaf\x15\x83\x12\x84\x3e\xa8\x0b\x9d\x27\xb1"
    b"\x44\xd2\x68\xfe\x5d\xcb\x71\xe7\x76\xe0\x5a\xcc\x6f\xf9\x43\xd5\xe8\x7e\xc4\x52\xf1\x67\xdd\x4b"
    b"\xda\x4c\xf6\x60\xc3\x55\xef\x79\x8c\x1a\xa0\x36\x95\x03\xb9\x2f\xbe\x28\x92\x04\xa7\x31\x8b\x1d"
    b"\xb0\x26\x9c\x0a\xa9\x3f\x85\x13\x82\x14\xae\x38\x9b\x0d\xb7\x21\xd4\x42\xf8\x6e\xcd\x5b\xe1\x77"
    b"\xe6\x70\xca\x5c\xff\x69\xd3\x45\x78\xee\x54\xc2\x61\xf7\x4d\xdb\x4a\xdc\x66\xf0\x53\xc5\x7f\xe9"
    b"\x1c\x8a\x30\xa6\x05\x93\x29\xbf\x2e\xb8\x02\x94\x37\xa1\x1b\x8d\x00\x30\x61\x51\xc4\xf4\xa5\x95"
    b"\x88\xb8\xe9\xd9\x4c\x7c\x2d\x1d\x10\x20\x71\x41\xd4\xe4\xb5\x85\x98\xa8\xf9\xc9\x5c\x6c\x3d\x0d"
    b"\x20\x10\x41\x71\xe4\xd4\x85\xb5\xa8\x98\xc9\xf9\x6c\x5c\x0d\x3d\x30\x00\x51\x61\xf4\xc4\x95\xa5"
    b"\xb8\x88\xd9\xe9\x7c\x4c\x1d\x2d\x41\x71\x20\x10\x85\xb5\xe4\xd4\xc9\xf9\xa8\x98\x0d\x3d\x6c\x5c"
    b"\x51\x61\x30\x00\x95\xa5\xf4\xc4\xd9\xe9\xb8\x88\x1d\x2d\x7c\x4c\x61\x51\x00\x30\xa5\x95\xc4\xf4"
    b"\xe9\xd9\x88\xb8\x2d\x1d\x4c\x7c\x71\x41\x10\x20\xb5\x85\xd4\xe4\xf9\xc9\x98\xa8\x3d\x0d\x5c\x6c"
    b"\x83\xb3\xe2\xd2\x47\x77\x26\x16\x0b\x3b\x6a\x5a\xcf\xff\xae\x9e\x93\xa3\xf2\xc2\x57\x67\x36\x06"
    b"\x1b\x2b\x7a\x4a\xdf\xef\xbe\x8e\xa3\x93\xc2\xf2\x67\x57\x06\x36\x2b\x1b\x4a\x7a\xef\xdf\x8e\xbe"
    b"\xb3\x83\xd2\xe2\x77\x47\x16\x26\x3b\x0b\x5a\x6a\xff\xcf\x9e\xae\xc2\xf2\xa3\x93\x06\x36\x67\x57"
    b"\x4a\x7a\x2b\x1b\x8e\xbe\xef\xdf\xd2\xe2\xb3\x83\x16\x26\x77\x47\x5a\x6a\x3b\x0b\x9e\xae\xff\xcf"
    b"\xe2\xd2\x83\xb3\x26\x16\x47\x77\x6a\x5a\x0b\x3b\xae\x9e\xcf\xff\xf2\xc2\x93\xa3\x36\x06\x57\x67"
    b"\x7a\x4a\x1b\x2b\xbe\x8e\xdf\xef\x00\x07\x0e\x09\x6d\x6a\x63\x64\xdb\xdc\xd5\xd2\xb6\xb1\xb8\xbf"
    b"\xb7\xb0\xb9\xbe\xda\xdd\xd4\xd3\x6c\x6b\x62\x65\x01\x06\x0f\x08\x6e\x69\x60\x67\x03\x04\x0d\x0a"
    b"\xb5\xb2\xbb\xbc\xd8\xdf\xd6\xd1\xd9\xde\xd7\xd0\xb4\xb3\xba\xbd\x02\x05\x0c\x0b\x6f\x68\x61\x66"
    b"\xdc\xdb\xd2\xd5\xb1\xb6\xbf\xb8\x07\x00\x09\x0e\x6a\x6d\x64\x63\x6b\x6c\x65\x62\x06\x01\x08\x0f"
    b"\xb0\xb7\xbe\xb9\xdd\xda\xd3\xd4\xb2\xb5\xbc\xbb\xdf\xd8\xd1\xd6\x69\x6e\x67\x60\x04\x03\x0a\x0d"
    b"\x05\x02\x0b\x0c\x68\x6f\x66\x61\xde\xd9\xd0\xd7\xb3\xb4\xbd\xba\xb8\xbf\xb6\xb1\xd5\xd2\xdb\xdc"
    b"\x63\x64\x6d\x6a\x0e\x09\x00\x07\x0f\x08\x01\x06\x62\x65\x6c\x6b\xd4\xd3\xda\xdd\xb9\xbe\xb7\xb0"
    b"\xd6\xd1\xd8\xdf\xbb\xbc\xb5\xb2\x0d\x0a\x03\x04\x60\x67\x6e\x69\x61\x66\x6f\x68\x0c\x0b\x02\x05"
    b"\xba\xbd\xb4\xb3\xd7\xd0\xd9\xde\x64\x63\x6a\x6d\x09\x0e\x07\x00\xbf\xb8\xb1\xb6\xd2\xd5\xdc\xdb"
    b"\xd3\xd4\xdd\xda\xbe\xb9\xb0\xb7\x08\x0f\x06\x01\x65\x62\x6b\x6c\x0a\x0d\x04\x03\x67\x60\x69\x6e"
    b"\xd1\xd6\xdf\xd8\xbc\xbb\xb2\xb5\xbd\xba\xb3\xb4\xd0\xd7\xde\xd9\x66\x61\x68\x6f\x0b\x0c\x05\x02"
    b"\x00\x77\xee\x99\x07\x70\xe9\x9e\x0e\x79\xe0\x97\x09\x7e\xe7\x90\x1d\x6a\xf3\x84\x1a\x6d\xf4\x83"
    b"\x13\x64\xfd\x8a\x14\x63\xfa\x8d\x3b\x4c\xd5\xa2\x3c\x4b\xd2\xa5\x35\x42\xdb\xac\x32\x45\xdc\xab"
    b"\x26\x51\xc8\xbf\x21\x56\xcf\xb8\x28\x5f\xc6\xb1\x2f\x58\xc1\xb6\x76\x01\x98\xef\x71\x06\x9f\xe8"
    b"\x78\x0f\x96\xe1\x7f\x08\x91\xe6\x6b\x1c\x85\xf2\x6c\x1b\x82\xf5\x65\x12\x8b\xfc\x62\x15\x8c\xfb"
    b"\x4d\x3a\xa3\xd4\x4a\x3d\xa4\xd3\x43\x34\xad\xda\x44\x33\xaa\xdd\x50\x27\xbe\xc9\x57\x20\xb9\xce"
    b"\x5e\x29\xb0\xc7\x59\x2e\xb7\xc0\xed\x9a\x03\x74\xea\x9d\x04\x73\xe3\x94\x0d\x7a\xe4\x93\x0a\x7d"
    b"\xf0\x87\x1e\x69\xf7\x80\x19\x6e\xfe\x89\x10\x67\xf9\x8e\x17\x60\xd6\xa1\x38\x4f\xd1\xa6\x3f\x48"
    b"\xd8\xaf\x36\x41\xdf\xa8\x31\x46\xcb\xbc\x25\x52\xcc\xbb\x22\x55\xc5\xb2\x2b\x5c\xc2\xb5\x2c\x5b"
    b"\x9b\xec\x75\x02\x9c\xeb\x72\x05\x95\xe2\x7b\x0c\x92\xe5\x7c\x0b\x86\xf1\x68\x1f\x81\xf6\x6f\x18"
    b"\x88\xff\x66\x11\x8f\xf8\x61\x16\xa0\xd7\x4e\x39\xa7\xd0\x49\x3e\xae\xd9\x40\x37\xa9\xde\x47\x30"
    b"\xbd\xca\x53\x24\xba\xcd\x54\x23\xb3\xc4\x5d\x2a\xb4\xc3\x5a\x2d"
)
_CRC_OUT = bytearray(4)


def crc_into(buf, start, end, out, at):
    """Write the CRC-32 of buf[start:end] at out[at:at + 4], little-endian."""
    t = _CRC_T
    lo = hi = 0xFFFF
    for i in range(start, end):
        x = (lo ^ buf[i]) & 0xFF
        lo = ((hi & 0xFF) << 8 | lo >> 8) ^ t[x] ^ t[x + 256] << 8
        hi = hi >> 8 ^ t[x + 512] ^ t[x + 768] << 8
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
