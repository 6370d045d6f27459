# Meters and More Host Interface (M&M HI) wire format, sans-io: the codes,
# the two checksum rules and the frame codec. The framing core (start bytes,
# duplicate drop, TIC, ACK/NAK, status message) is the ST7580's receiver
# (meter/phy/st7580_codec.py FrameReceiver), built here with the HI's length
# rule, checksum and 4-byte status message. The link machine is meter/phy/hi.py.
#
#   frame   FS(0x02 | 0x03 repeat) LEN CMD PAYLOAD[LEN + 1] CS_lo CS_hi
#   CS      over LEN, CMD and PAYLOAD, per modem profile: CS_SUM, the 16-bit
#           byte sum (ST UM2241), or CS_CRC, Microchip's CRC-16 (polynomial
#           0x1021, initial 0, each byte shifted in: crc = T[crc >> 8] ^ (crc << 8) ^ b)
#   ACK 0x06, NAK 0x15, status message 0x3F STATUS MASK_lo MASK_hi (modem -> host)
from array import array

from meter.compat import const
from meter.phy.st7580_codec import FrameReceiver, checksum, open_frame

STX = const(0x02)
STX_REPEAT = const(0x03)
ACK = const(0x06)
NAK = const(0x15)
STATUS_MSG = const(0x3F)
MAX_PAYLOAD = const(256)
MAX_FRAME = const(262)  # FS LEN CMD PAYLOAD[256] CS CS
HEAD_LEN = const(3)  # FS LEN CMD: the payload starts here
STATUS_LEN = const(3)  # bytes after 0x3F: status, MIB mask (16 bits, low byte first)

CS_SUM = const(0)  # byte sum (UM2241 reading)
CS_CRC = const(1)  # Microchip MMHI CRC-16

# ---- command codes (UM2241 Table 5; Microchip's M&M Host Interface documentation)
CMD_MIB_WRITE_REQ = const(0x08)
CMD_MIB_WRITE_CNF = const(0x09)
CMD_MIB_WRITE_IND = const(0x0A)
CMD_MIB_WRITE_ERR = const(0x0B)
CMD_MIB_READ_REQ = const(0x0C)
CMD_MIB_READ_CNF = const(0x0D)
CMD_MIB_READ_ERR = const(0x0F)
CMD_SLAVE_REQ = const(0x24)
CMD_SLAVE_CNF = const(0x25)
CMD_SLAVE_IND = const(0x26)
CMD_SLAVE_ERR = const(0x27)
CMD_MASTER_REQ = const(0x28)
CMD_PING_REQ = const(0x2C)
CMD_PING_CNF = const(0x2D)
CMD_HI_ERROR = const(0x36)
CMD_RESET_REQ = const(0x3C)
CMD_RESET_CNF = const(0x3D)
CMD_RESET_IND = const(0x3E)
CMD_RESET_ERR = const(0x3F)  # ST75MM only
CNF_OFFSET = const(1)
ERR_OFFSET = const(3)

# ---- error codes of negative confirms (one byte)
ERR_WPL = const(0x02)
ERR_WPV = const(0x03)
ERR_BUSY = const(0x04)
ERR_GENERAL = const(0xFF)
ERR_UNKNOWN_CMD = const(0x36)  # project choice: FAILED code for an HI_Error naming our request

# ---- status byte (Microchip D-CP)
SM_CONFIGURED = const(0x01)
SM_TX = const(0x02)
SM_RX = const(0x04)
SM_PLC_BUSY = const(0x08)  # the only bit a host tests before sending

# ---- Slave_Data protocol byte
PROTO_PLC = const(0)  # slave M&M PLC, DSAP 0x00
PROTO_OTHER = const(2)  # any other DSAP (Microchip)
PROTO_ECC_SHIFT = const(4)  # project choice: bits 4-7 carry the LLC ECC (data-link-only split)
PROTO_BASE_MASK = const(0x0F)

# ---- MIB indices: Microchip M&M modem
MIB_MAC_CONFIG = const(3)
MIB_FW_RELEASE = const(4)
MIB_MANUFACTURER = const(6)  # serial (16) + ACA (6, little-endian)
MIB_LOGICAL_ADDR = const(7)
MIB_KEYS = const(8)  # K1 (16) then K2 (16), write only
MIB_SEC_FLAGS = const(9)
MIB_LMON = const(10)
MIB_TIMING = const(12)  # Tel, Delay, ICdelay, Tc (u16 LE, ms), TCT (u8)
# ---- ST75MM
MIB_HI_TIMINGS = const(14)  # TSR, TACK, TIC in ms

# ---- modem profiles: which modem, which checksum, which MIB set-up (project choices)
MICROCHIP = const(0)  # PL460 M&M modem application: CRC-16, MIB 6 (+ 12, 8, 9, 10 as they apply)
ST75MM = const(1)  # UM2241: byte sum, MIB 6, 3 and 14

# Microchip CRC-16 table: polynomial 0x1021, not reflected
_T = array("H", bytes(512))
for _i in range(256):
    _c = _i << 8
    for _k in range(8):
        _c = ((_c << 1) ^ 0x1021) & 0xFFFF if _c & 0x8000 else (_c << 1) & 0xFFFF
    _T[_i] = _c
del _i, _c, _k


def crc16(data, start=0, stop=None):
    """Microchip's CRC-16 of data[start:stop]; "123456789" gives 0xBEEF."""
    if stop is None:
        stop = len(data)
    crc = 0
    t = _T
    for i in range(start, stop):
        crc = t[crc >> 8] ^ ((crc << 8) & 0xFFFF) ^ data[i]
    return crc


def check_fn(kind):
    """The checksum function (buf, start, stop) of a profile's CS_* rule."""
    if kind == CS_CRC:
        return crc16
    if kind == CS_SUM:
        return checksum
    raise ValueError("checksum rule %r" % (kind,))


def seal(buf, pos, check):
    """Write the checksum of the frame at buf[pos] (FS, LEN, CMD, payload in
    place); returns the position after it."""
    end = pos + HEAD_LEN + buf[pos + 1] + 1
    s = check(buf, pos + 1, end)
    buf[end] = s & 0xFF
    buf[end + 1] = s >> 8
    return end + 2


def encode_into(buf, pos, cmd, payload, check, fs=STX):
    """Write one frame into buf at pos (1..256 payload bytes: the caller
    checks); returns the position after it."""
    n = len(payload)
    buf[pos] = fs
    buf[pos + 1] = n - 1
    buf[pos + 2] = cmd
    p = pos + HEAD_LEN
    for i in range(n):
        buf[p + i] = payload[i]
    return seal(buf, pos, check)


def encode_frame(cmd, payload, kind=CS_CRC, fs=STX):
    """One frame as bytes. ValueError on a code, start byte or length out of range."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError("CMD 0x%X out of range" % cmd)
    if fs != STX and fs != STX_REPEAT:
        raise ValueError("frame start 0x%02X" % fs)
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise ValueError("%d payload bytes, 1 to 256" % len(payload))
    buf = bytearray(len(payload) + 5)
    encode_into(buf, 0, cmd, payload, check_fn(kind), fs)
    return bytes(buf)


def decode_frame(frame, kind=CS_CRC):
    """One complete frame -> (fs, cmd, payload bytes). DecodeError names the field."""
    return open_frame(frame, check_fn(kind), 1, "FS", "payload")


def receiver(kind, tic_ms=10, buffers=3):
    """The shared framing core set for the HI: LEN = payload - 1, the
    profile's checksum, 4-byte status message."""
    return FrameReceiver(tic_ms, 255, buffers, 1, check_fn(kind), STATUS_LEN)


def setup(profile, aca, serial, tic_ms=10, tack_ms=1000):
    """The MIB writes (index, value) that configure a modem of this profile
    after each reset (project choices, docs/protocol.md)."""
    sn = bytes(serial, "ascii") if isinstance(serial, str) else bytes(serial)
    mnf = (sn + bytes(16))[:16] + bytes(reversed(bytes(aca)))  # ACA little-endian
    if profile == MICROCHIP:
        return ((MIB_MANUFACTURER, mnf),)
    if profile == ST75MM:
        return ((MIB_MANUFACTURER, mnf), (MIB_MAC_CONFIG, b"\x01\x01"),
                (MIB_HI_TIMINGS, bytes((125, min(tack_ms, 255), tic_ms))))
    raise ValueError("modem profile %r" % (profile,))
