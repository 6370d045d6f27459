"""ACAs as people write them: 12 hex digits, most significant byte first."""

from meter.errors import SmitpError
from smitp.values import quoted


class AcaError(SmitpError, ValueError):
    pass


def parse_aca(text):
    """'A8040A1E8903' (natural order, most significant byte first) -> 6 bytes."""
    try:
        aca = bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise AcaError("ACA %s is not hexadecimal" % quoted(text)) from None
    if len(aca) != 6:
        raise AcaError("ACA %s is not 6 bytes (12 hex digits)" % quoted(text))
    return aca


def aca_text(aca):
    return bytes(aca).hex().upper()
