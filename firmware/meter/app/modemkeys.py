# The firmware's side of a Meters and More modem that runs the LMON-protected
# security itself (meter/phy/hi.py, Microchip profile: MIB 8 keys, MIB 9 flags,
# MIB 10 LMON): the keys and the LMON stay in the firmware's store (meter/app/lmon.py),
# are written into the modem after every modem reset (it keeps nothing), and
# every LMON the modem reports is persisted, so a reset of either side never
# lets an old request be replayed.
from meter.compat import const

SECURITY_FLAGS = const(0x00)  # MIB 9: its bits are not public (docs/protocol.md, choices table)


class ModemSecrets:
    """The keeper of meter/phy/hi.py: modem_secrets() and lmon_reported(value)."""

    def __init__(self, keystore, lmon, random_bytes=None):
        self.keystore = keystore
        self.lmon = lmon
        self._random = random_bytes
        self.reported = 0  # LMONs the modem reported
        self.refused = 0  # reports that were not above the stored LMON, or not persisted

    def modem_secrets(self):
        """(K1, K2, flags, LMON as 8 bytes little-endian) to write into the modem.
        Without provisioned keys the modem gets a random pair nobody knows: no
        authenticated request passes until the meter is provisioned."""
        pair = self.keystore.pair()
        if pair is None:
            rnd = self._random or _urandom
            pair = (rnd(16), rnd(16))
        return pair[0], pair[1], SECURITY_FLAGS, self.lmon.value.to_bytes(8, "little")

    def lmon_reported(self, value):
        """The modem accepted a request: its LMON (8 bytes, little-endian) is
        persisted before the next one counts; never lowered."""
        self.reported += 1
        v = int.from_bytes(bytes(value), "little")
        if v <= self.lmon.value or not self.lmon.set(v):
            self.refused += 1
            return False
        return True


def _urandom(n):
    import os

    return os.urandom(n)
