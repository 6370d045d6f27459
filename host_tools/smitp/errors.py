"""The host tools' errors, under the project's base (meter.errors.SmitpError), in two families
the `smitp` command tells apart (exit code 1 or 2):

PeerError   what the meter, or the line to it, did: no answer, a NACK, an answer that is not
            one to the request, an outcome nobody can know;
UsageError  what the caller got wrong: bad arguments, no keys for the meter.
"""

from meter import attrs as A
from meter.errors import SmitpError


class PeerError(SmitpError):
    pass


class UsageError(SmitpError):
    pass


class NoAnswer(PeerError):
    pass


class BadAnswer(PeerError):
    """An answer that is not one to the request sent (another service, a wrong length)."""


class Nack(PeerError):
    """NACK A-Node: the meter refused, with its PAR1 code and the register or item concerned
    (0: none). reg_id: the item, as the register services name it."""

    def __init__(self, code, item=0):
        super().__init__("NACK %d (%s)%s" % (code, A.NACK_NAMES.get(code, "?"), " for 0x%04X" % item if item else ""))
        self.code = code
        self.item = self.reg_id = item


class BNodeNack(PeerError):
    """NACK B-Node: the meter could not update its B-Node (meter/app/bnode.py), with its PAR1
    code and, plain, the B-Node's own code (0: none or not carried)."""

    def __init__(self, code, detail=0):
        super().__init__("NACK B-Node %d (%s)%s" % (code, A.BNACK_NAMES.get(code, "?"),
                                                    ", B-Node code %d" % detail if detail else ""))
        self.code = code
        self.detail = detail
