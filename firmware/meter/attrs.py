# Application-layer message attributes (ATTR, first byte of the LLC data) and
# the NACK codes. ATTR values are public (smitp-protocol reference, section
# 6.2); NACK codes other than 10 are project choices (docs/protocol.md).
from meter.compat import const

READ_REQ = const(2)
READ_RESP = const(3)
WRITE_REQ = const(4)
READTAB_SEL_REQ = const(6)
READTAB_SEL_RESP = const(7)
READTAB_REQ = const(8)
READTAB_RESP = const(9)
WRITETAB_REQ = const(10)
SETTAB_REQ = const(14)
RESETTAB_REQ = const(16)
COMMAND = const(18)
DATASPONT = const(20)
BUFF_SELECT_REQ = const(22)
KEY_CHANGE = const(24)  # project choice: meter/app/keychange.py
BUFF_SELECT_RESP = const(23)
GETTAB_REQ = const(30)
GETTAB_RESP = const(31)
ADDRESS_REQ = const(90)
ADDRESS_RESP = const(91)
TCT_SET_REQ = const(92)
REQADDR_REQ = const(94)
REQADDR_RESP = const(95)
# Network management of the DLMS profile's remaining services (CLC/TS 50568-8
# clause 4.7 / 8.1): project choices in the free range 80-87 (docs/protocol.md).
REGISTER_REQ = const(80)  # Register: assign the logical SCA address
REGISTER_RESP = const(81)  # RegisterReport, after Register and Deregister
DEREGISTER_REQ = const(82)  # Deregister: clear the SCA address
STATUS_REQ = const(84)  # Status
STATUS_RESP = const(85)
PING_REQ = const(86)  # Ping: reachability and link quality
PING_RESP = const(87)
SETIC_REQ = const(40)  # public code; carries data for the B-Node (project mapping, docs/protocol.md)
WRITETABIC_REQ = const(42)  # public code; a table for the B-Node (project mapping)
REPROG_LOCAL = const(100)  # software download: payloads in meter/fwimage.py
REPROG_BROADCAST = const(101)
CHL_REQ = const(112)
CHL_RESP = const(113)
NACK_RESP = const(247)
ACK_A = const(253)
NACK_A = const(255)
ACK_A_AUTH = const(243)
NACK_A_AUTH = const(245)
NACK_B_AUTH = const(239)
ACK_B = const(251)
NACK_B = const(249)
ACK_B_AUTH = const(241)

# NACK A-Node PAR1 codes
NACK_UNKNOWN_REGISTER = const(1)  # project choice
NACK_ACCESS_DENIED = const(2)  # project choice
NACK_BAD_LENGTH = const(3)  # project choice
NACK_TOO_LONG = const(4)  # project choice: the answer does not fit the discipline
NACK_BAD_VALUE = const(5)  # project choice
NACK_UNSUPPORTED = const(6)  # project choice: unknown or unsupported ATTR
NACK_NOT_STORED = const(7)  # project choice: the flash refused the write
NACK_BUSY = const(8)  # project choice: the flash write budget is used up, try later
NACK_AUTH = const(10)  # public: authentication failure / LMON mismatch
NACK_LMON_EXHAUSTED = const(11)  # project choice: LMON used up, authenticated services refused
NACK_DISCIPLINE = const(12)  # project choice: a B-Node message not in an RB discipline

# NACK B-Node PAR1 codes (project choices): why the B-Node was not updated
BNACK_NO_ANSWER = const(1)  # the B-Node did not answer in time
BNACK_REFUSED = const(2)  # the B-Node refused; its own code follows PAR1
BNACK_NO_BNODE = const(3)  # this meter has no B-Node link

_NAMES = (  # tuples of constants: frozen into flash, no RAM
    (READ_REQ, "READ.REQ"),
    (READ_RESP, "READ.RESP"),
    (WRITE_REQ, "WRITE.REQ"),
    (READTAB_SEL_REQ, "READTAB.REQ (selective)"),
    (READTAB_SEL_RESP, "READTAB.RESP (selective)"),
    (READTAB_REQ, "READTAB.REQ"),
    (READTAB_RESP, "READTAB.RESP"),
    (WRITETAB_REQ, "WRITETAB.REQ"),
    (SETTAB_REQ, "SETTAB.REQ"),
    (RESETTAB_REQ, "RESETTAB.REQ"),
    (COMMAND, "COMMAND"),
    (DATASPONT, "DATASPONT"),
    (BUFF_SELECT_REQ, "BUFF_SELECT.REQ"),
    (BUFF_SELECT_RESP, "BUFF_SELECT.RESP"),
    (KEY_CHANGE, "KEY_CHANGE"),
    (GETTAB_REQ, "GETTAB.REQ"),
    (GETTAB_RESP, "GETTAB.RESP"),
    (ADDRESS_REQ, "ADDRESS.REQ"),
    (ADDRESS_RESP, "ADDRESS.RESP"),
    (TCT_SET_REQ, "TCT_SET.REQ"),
    (REQADDR_REQ, "REQADDR.REQ"),
    (REQADDR_RESP, "REQADDR.RESP"),
    (REGISTER_REQ, "REGISTER.REQ"),
    (REGISTER_RESP, "REGISTER.RESP"),
    (DEREGISTER_REQ, "DEREGISTER.REQ"),
    (STATUS_REQ, "STATUS.REQ"),
    (STATUS_RESP, "STATUS.RESP"),
    (PING_REQ, "PING.REQ"),
    (PING_RESP, "PING.RESP"),
    (SETIC_REQ, "SETIC.REQ"),
    (WRITETABIC_REQ, "WRITETABIC.REQ"),
    (REPROG_LOCAL, "REPROG_LOCAL"),
    (REPROG_BROADCAST, "REPROG_BROADCAST"),
    (CHL_REQ, "CHL.REQ"),
    (CHL_RESP, "CHL.RESP"),
    (NACK_RESP, "NACK.RESP"),
    (ACK_A, "ACK A-Node"),
    (NACK_A, "NACK A-Node"),
    (ACK_A_AUTH, "ACK A-Node AUTH"),
    (NACK_A_AUTH, "NACK A-Node AUTH"),
    (NACK_B_AUTH, "NACK B-Node AUTH"),
    (ACK_B, "ACK B-Node"),
    (NACK_B, "NACK B-Node"),
    (ACK_B_AUTH, "ACK B-Node AUTH"),
)

_NACK_NAMES = (
    (NACK_UNKNOWN_REGISTER, "unknown register"),
    (NACK_ACCESS_DENIED, "access denied"),
    (NACK_BAD_LENGTH, "bad length"),
    (NACK_TOO_LONG, "answer too long"),
    (NACK_BAD_VALUE, "bad value"),
    (NACK_UNSUPPORTED, "unsupported service"),
    (NACK_NOT_STORED, "not stored"),
    (NACK_BUSY, "busy"),
    (NACK_AUTH, "authentication failure"),
    (NACK_LMON_EXHAUSTED, "LMON exhausted"),
    (NACK_DISCIPLINE, "B-Node messages need an RB discipline"),
)

_BNACK_NAMES = (
    (BNACK_NO_ANSWER, "no answer from the B-Node"),
    (BNACK_REFUSED, "refused by the B-Node"),
    (BNACK_NO_BNODE, "no B-Node link"),
)


def __getattr__(name) -> "dict[int, str]":
    """NAMES, NACK_NAMES, BNACK_NAMES: code -> name, for the host tools (the
    firmware never shows a name). Built when asked for: module-level dicts
    would cost a board RAM; the tuples above stay in flash."""
    if name in ("NAMES", "NACK_NAMES", "BNACK_NAMES"):
        return dict(globals()["_" + name])
    raise AttributeError(name)
