"""Convergence layer, client (concentrator) side: CL-DATA.request of a request APDU, segmented,
and its CL-DATA.confirm, the response APDU reassembled (the CLPDU and the exchange are the
meter's: meter/dlms/cl.py, one definition of the layout).

The link is a callable link(lsdu, max_response, accept) -> answer LSDU that resends the same
frame while no answer comes that accept(lsdu) takes and raises NoAnswer in the end (the
concentrator's request on DSAP_DLMS). Every way an exchange fails ends in ClError, with the
stated reason: the meter's ERROR code, or a timeout when the line stayed silent.
"""

import os

from meter.dlms import cl as C
from smitp.errors import NoAnswer, PeerError


class ClError(PeerError):
    """The exchange failed: code is the meter's ERROR code (meter.dlms.cl E_*), or 0 for a
    timeout or a malformed answer, with the reason in the message."""

    def __init__(self, reason, code=0):
        super().__init__("DLMS convergence layer: %s" % reason)
        self.code = code
        self.reason = reason


class ClClient:
    def __init__(self, link, max_response=140, mtu=C.MTU, xid=None):
        """xid: the number before the first exchange's (None: a random one, so that a new client
        rarely meets the XID of the meter's last exchange)."""
        self.link = link
        self.max_response = max_response  # answer room of every request (the MAC discipline's)
        self.mtu = mtu
        self.xid = (os.urandom(1)[0] if xid is None else xid) & 0xFF
        self.stats = {"exchanges": 0, "frames": 0}

    def exchange(self, apdu):
        """CL-DATA.request(apdu) -> the response APDU (CL-DATA.confirm); raises ClError."""
        apdu = bytes(apdu)
        if not apdu or len(apdu) > self.mtu:
            raise ClError("APDU of %d bytes out of 1..%d" % (len(apdu), self.mtu), C.E_TOO_LONG)
        self.xid = (self.xid + 1) & 0xFF
        xid = self.xid
        self.stats["exchanges"] += 1
        size = C.SEG_MAX
        count = (len(apdu) + size - 1) // size
        for seg in range(count):
            last = seg == count - 1
            kind = C.DATA_LAST if last else C.DATA_MORE
            ans = self._send(bytes((kind, xid, seg)) + apdu[seg * size:(seg + 1) * size],
                             (C.DATA_MORE, C.DATA_LAST) if last else (C.NEXT,), 0 if last else seg)
        out = bytearray(ans[C.HEADER:])
        while ans[0] == C.DATA_MORE:
            seg = ans[2]
            ans = self._send(bytes((C.NEXT, xid, seg)), (C.DATA_MORE, C.DATA_LAST), seg + 1)
            out += ans[C.HEADER:]
            if len(out) > self.mtu:
                raise ClError("response longer than %d bytes" % self.mtu, C.E_TOO_LONG)
        return bytes(out)

    def _send(self, clpdu, kinds, seg):
        # One CLPDU out; the answer of one of `kinds` for segment `seg` of this exchange back.
        xid = clpdu[1]

        def ours(lsdu):
            return len(lsdu) >= C.HEADER and lsdu[1] == xid and (
                lsdu[0] == C.ERROR or (lsdu[0] in kinds and lsdu[2] == seg))

        self.stats["frames"] += 1
        try:
            ans = self.link(clpdu, self.max_response, ours)
        except NoAnswer as e:
            raise ClError("timeout: %s" % e) from None
        if not ours(ans):
            raise ClError("unexpected answer %s" % bytes(ans[:C.HEADER]).hex())
        if ans[0] == C.ERROR:
            code = ans[3] if len(ans) > C.HEADER else 0
            reason = C.ERRORS[code] if 0 < code < len(C.ERRORS) else "error %d" % code
            raise ClError("the meter ended the exchange: %s" % reason, code)
        return bytes(ans)


def plc_link(conc, aca, route=()):
    """The link of a ClClient through a smitp.concentrator.Concentrator to meter `aca` (6 bytes)
    along `route`: DSAP_DLMS, ECC 0, the concentrator's resends and timeouts."""
    from meter.link.llc import DSAP_DLMS

    def link(lsdu, max_response, accept):
        return conc.request(aca, lsdu, route, max_response, dsap=DSAP_DLMS,
                            accept=lambda data, ecc: ecc == 0 and accept(data))

    return link
