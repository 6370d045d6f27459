"""Attacks the demo tries against each meter, and what the meter did about them.

Each verdict comes from the meter's answer on the line: "rejected" when it
answered an authenticated NACK (PAR1 10 for a failed check, the access code for
a refused write), "accepted" when it served the request, "no answer" when it
stayed silent.
"""

import os
import time

from meter import attrs as A
from meter import registers as R
from meter import security as sec
from smitp.concentrator import Nack, NoAnswer

ATTACKS = ("replay", "stale_lmon", "bit_flip", "forged_tmac", "write_with_read_key")


def _apdu(*regs):
    return b"".join(r.to_bytes(2, "big") for r in regs)


def _verdict(answer):
    if not answer:
        return "no answer", "silent"
    if answer[0] in (sec.ATTR_NACK_A_AUTH, A.NACK_A):
        code = answer[1] if len(answer) > 1 else -1
        return "rejected", "NACK %d, PAR1 %d (%s)" % (answer[0], code, A.NACK_NAMES.get(code, "?"))
    return "accepted", "answered ATTR %d" % answer[0]


def _send(conc, aca, route, lsdu, ecc):
    try:
        return conc.request(aca, lsdu, route, 140, ecc)
    except NoAnswer:
        return b""


def attack(conc, aca, route=()):
    """Run every attack against one meter; returns ({attack: verdict}, {attack: detail})."""
    meter = conc.keyring[aca]
    ecc = sec.ECC_CTR_READ
    # A captured, accepted request; then another one, so the capture is stale.
    conc.read(aca, [R.STATUS_WORD], route, auth=True)
    captured = conc.last_request_lsdu  # as it went on the line
    conc.read(aca, [R.STATUS_WORD], route, auth=True)
    found = {}
    found["replay"] = _verdict(_send(conc, aca, route, captured, ecc))

    saved = meter.lmon  # a request sealed under an LMON the meter already used
    meter.lmon = saved - 1
    stale = meter.protect(A.READ_REQ, _apdu(R.CLOCK), ecc, int(time.time()))
    meter.lmon = saved
    found["stale_lmon"] = _verdict(_send(conc, aca, route, stale, ecc))

    flipped = bytearray(meter.protect(A.READ_REQ, _apdu(R.ENERGY_IMPORT), ecc, int(time.time())))
    flipped[2] ^= 0x01  # one bit of the ciphertext (the register id)
    found["bit_flip"] = _verdict(_send(conc, aca, route, bytes(flipped), ecc))

    forged = meter.protect(A.READ_REQ, _apdu(R.ENERGY_EXPORT), ecc, int(time.time()))
    forged = forged[:-sec.TMAC_LEN] + os.urandom(sec.TMAC_LEN)
    found["forged_tmac"] = _verdict(_send(conc, aca, route, forged, ecc))

    try:  # a genuine, authenticated write, but under the read key
        conc.write(aca, {R.CLOCK: int(time.time()).to_bytes(4, "big")}, route, auth=True, ecc=sec.ECC_CTR_READ)
        found["write_with_read_key"] = ("accepted", "ACK")
    except Nack as e:
        found["write_with_read_key"] = ("rejected", "NACK, PAR1 %d (%s)" % (e.code, A.NACK_NAMES.get(e.code, "?")))
    return {k: v[0] for k, v in found.items()}, {k: v[1] for k, v in found.items()}


def summary(per_meter):
    """One verdict per attack over all meters: "rejected" only if every meter rejected it."""
    out = {}
    for name in ATTACKS:
        odd = [aca for aca, v in per_meter.items() if v.get(name) != "rejected"]
        out[name] = "rejected" if not odd else "%s by %s" % (per_meter[odd[0]].get(name), ", ".join(odd))
    return out
