# LLC sub-layer fields carried in the MAC frame: INF-control and INF-LSAP.
# Bit positions are project choices (docs/protocol.md): the public sources give
# only the ECC nibble (low half of INF-LSAP) and the existence of a poll flag.
from meter.compat import const

DSAP_APP = const(0x00)  # application frames (PLC)
DSAP_FMODE_1 = const(0x01)  # "F mode / PLC"
DSAP_NM = const(0x02)  # network management
DSAP_FMODE_3 = const(0x03)  # "F mode / PLC"
DSAP_DLMS = const(0x04)  # DLMS/COSEM profile, convergence layer (project choice)

_POLL = const(0x01)  # INF-control bit 0 (project choice)


def control(poll):
    return _POLL if poll else 0


def poll_flag(control_byte):
    return bool(control_byte & _POLL)


def lsap(dsap, ecc):
    """INF-LSAP: DSAP in the high nibble (project choice), ECC in the low nibble."""
    return ((dsap & 0x0F) << 4) | (ecc & 0x0F)


def dsap(lsap_byte):
    return lsap_byte >> 4


def ecc(lsap_byte):
    return lsap_byte & 0x0F
