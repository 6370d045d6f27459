# The register table: the one place to add a register.
#
# The official identifiers of CLC/TS 50568-8 clause 10 are not public; only
# 0x003F (status word, 8 bytes) is. Every other identifier here is the
# project's own map (docs/data-model.md), kept in this one table so the
# official map can be loaded in its place.
#
# Row: (id, name, size, encoding, unit, scaler, read access, write access, persistent)
# Values travel big-endian (project choice, like the identifiers).
from meter.compat import const

# encodings
ENC_UINT = const(0)  # unsigned integer, big-endian
ENC_ASCII = const(1)  # text, zero padded
ENC_BYTES = const(2)  # opaque bytes, shown as hex
ENC_BITS = const(3)  # bit field, shown as hex
ENC_TIME = const(4)  # seconds since 1970-01-01 UTC, unsigned

# access: who may read or write a register (issue of the security layer)
ACC_NONE = const(0)  # never
ACC_PLAIN = const(1)  # plain services suffice
ACC_READ_KEY = const(2)  # authenticated with the read key K2 (or K1)
ACC_WRITE_KEY = const(3)  # authenticated with the write key K1

# row fields
R_ID = const(0)
R_NAME = const(1)
R_SIZE = const(2)
R_ENC = const(3)
R_UNIT = const(4)
R_SCALER = const(5)
R_READ = const(6)
R_WRITE = const(7)
R_PERSIST = const(8)

STATUS_WORD = const(0x003F)
SERIAL = const(0x0010)
ACA = const(0x0011)
FIRMWARE_ID = const(0x0012)
POINT_LABEL = const(0x0013)
SECURITY_COUNTERS = const(0x0014)
LMON = const(0x0015)
CLOCK = const(0x0020)
ENERGY_IMPORT = const(0x0030)
ENERGY_EXPORT = const(0x0031)

TABLE = (
    (STATUS_WORD, "status word", 8, ENC_BITS, "", 0, ACC_PLAIN, ACC_NONE, False),
    (SERIAL, "meter serial number", 16, ENC_ASCII, "", 0, ACC_PLAIN, ACC_NONE, True),
    (ACA, "absolute communication address", 6, ENC_BYTES, "", 0, ACC_PLAIN, ACC_NONE, True),
    (FIRMWARE_ID, "firmware identification", 48, ENC_ASCII, "", 0, ACC_PLAIN, ACC_NONE, False),
    (POINT_LABEL, "metering point label", 16, ENC_ASCII, "", 0, ACC_PLAIN, ACC_PLAIN, True),
    (SECURITY_COUNTERS, "security counters", 8, ENC_BYTES, "", 0, ACC_READ_KEY, ACC_NONE, False),
    (LMON, "last message order number", 8, ENC_UINT, "", 0, ACC_READ_KEY, ACC_NONE, False),
    (CLOCK, "clock", 4, ENC_TIME, "s", 0, ACC_PLAIN, ACC_WRITE_KEY, False),
    (ENERGY_IMPORT, "active energy import total", 4, ENC_UINT, "Wh", 0, ACC_PLAIN, ACC_NONE, True),
    (ENERGY_EXPORT, "active energy export total", 4, ENC_UINT, "Wh", 0, ACC_PLAIN, ACC_NONE, True),
)

BY_ID = {}
for _row in TABLE:
    BY_ID[_row[R_ID]] = _row

# status word bits (bit 0 = least significant bit of the last byte)
SW_CLOCK_UNSET = const(0)  # the clock has not been set since power-up
SW_STORAGE_FAULT = const(1)  # a write to non-volatile storage failed
SW_MODEM_RESET = const(2)  # the modem reported an unexpected reset since the last read


def lookup(reg_id):
    return BY_ID.get(reg_id)


def allowed(level, grant):
    """May a request with rights `grant` do what needs `level`?"""
    return level != ACC_NONE and grant >= level
