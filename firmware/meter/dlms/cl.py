# Convergence layer of the DLMS/COSEM SMITP B-PSK profile (CLC/TS 50568-8
# 4.4), meter side: CL-DATA.indication (a whole request APDU, reassembled)
# and CL-DATA.request (a response APDU, segmented) over LLC data on DSAP_DLMS.
#
# The CLPDU layout is not public: everything here is a project choice
# (docs/protocol.md, "DLMS convergence layer"), kept in this one module.
#   KIND (1) | XID (1) | SEG (1) | segment data (0..125)
#   KIND  DATA_MORE 0x00 / DATA_LAST 0x01: segment SEG of an APDU;
#         NEXT 0x02: "segment SEG arrived, send SEG + 1" (client, server phase);
#         ERROR 0x03: the exchange is over, data = one error code (E_*).
#   XID   exchange number, chosen by the client, new for each APDU it sends.
# One exchange: the client transmitting phase (DATA segments, each answered
# by NEXT) ends with the DATA_LAST segment; the server's answer to it is the
# first segment of the response APDU (server transmitting phase), and each
# NEXT of the client fetches the following one. The link is polled: the meter
# only answers. A repeated frame (its answer lost) gets the same answer again,
# and a complete request is executed once only: its response is kept. A repeat
# is the last segment again, same XID, same number and same bytes (a sum of
# them is kept): a new exchange that happens to reuse the XID is not one.
# A broadcast (MAC broadcast address, class S) carries one whole APDU in one
# DATA_LAST segment numbered 0, XID free: nothing answers it, so nothing can
# ask for more; it leaves any exchange in progress alone.
from meter.compat import const, ticks_diff

HEADER = const(3)
LSDU_MAX = const(128)  # the MAC's largest LLC data (meter.link.mac.MAX_LLC_DATA)
SEG_MAX = const(125)  # LSDU_MAX - HEADER: the largest segment
MTU = const(1024)  # largest APDU either way (the xDLMS max PDU size offered)
TIMEOUT_MS = const(30000)  # a request left unfinished this long is dropped

DATA_MORE = const(0x00)
DATA_LAST = const(0x01)
NEXT = const(0x02)
ERROR = const(0x03)

# error codes carried by ERROR
E_SEQUENCE = const(1)  # a segment out of order (not the next one, not a repeat)
E_TOO_LONG = const(2)  # the APDU would exceed MTU
E_TIMEOUT = const(3)  # the request stayed unfinished longer than TIMEOUT_MS
E_NO_EXCHANGE = const(4)  # NEXT for nothing (another XID, nothing more to send)
E_CLPDU = const(5)  # a CLPDU too short or of an unknown kind
E_ROOM = const(6)  # the answer room of a NEXT is smaller than the exchange's segments
E_NO_RESPONSE = const(7)  # the application gave no response APDU
ERRORS = ("", "out of sequence", "APDU too long", "timeout", "no exchange", "bad CLPDU",
          "segment room", "no response")

# server states
_IDLE = const(0)
_RX = const(1)  # receiving request segments
_TX = const(2)  # response kept, segments sent on NEXT


def _fletcher(buf, start, end):
    # Fletcher-16 of buf[start:end]: small ints only, no allocation
    a = b = 0
    for i in range(start, end):
        a = (a + buf[i]) % 255
        b = (b + a) % 255
    return (b << 8) | a


def segment_size(limit):
    """Segment size for an answer room of `limit` LLC bytes."""
    room = (limit if limit < LSDU_MAX else LSDU_MAX) - HEADER
    return room if room > 0 else 0


class ClServer:
    """The meter's end of the convergence layer. handler(req, n, resp) serves
    the request APDU req[0:n] and writes the response APDU into resp (a
    bytearray of MTU bytes); it returns its length (0: no response). server:
    the object behind the handler (diagnostics, tests)."""

    def __init__(self, handler, mtu=MTU, server=None, on_broadcast=None):
        """on_broadcast(buf, off, n): takes a broadcast APDU (meter/dlms/broadcast.py), or None."""
        self.handler = handler
        self.on_broadcast = on_broadcast
        self.bcast = bytearray(SEG_MAX)  # a broadcast APDU, apart from the exchange's buffers
        self.server = server  # the xDLMS server behind the handler, if any (meter/dlms/server.py profile)
        self.req = bytearray(mtu)
        self.resp = bytearray(mtu)
        self.ans = bytearray(LSDU_MAX)  # the CLPDU to send back
        self._state = _IDLE
        self._xid = -1
        self._next = 0  # next request segment expected
        self._len = 0  # request bytes so far
        self._t = 0  # when the last request segment arrived
        self._sum = 0  # Fletcher-16 of the last request segment (repeats must match)
        self._rlen = 0  # response length
        self._seg = 0  # response segment size of this exchange
        self.stats = {"apdus": 0, "segments": 0, "repeats": 0, "errors": 0, "broadcasts": 0}

    def broadcast(self, buf, off, n):
        """One broadcast CLPDU buf[off:off+n]: its APDU to on_broadcast; never
        answered. True if the APDU was taken."""
        size = n - HEADER
        if size < 1 or size > SEG_MAX or buf[off] != DATA_LAST or buf[off + 2] != 0 or self.on_broadcast is None:
            self.stats["errors"] += 1
            return False
        self.stats["broadcasts"] += 1
        b = self.bcast
        for i in range(size):
            b[i] = buf[off + HEADER + i]
        return bool(self.on_broadcast(b, 0, size))

    def serve(self, buf, off, n, limit, now_ms):
        """One CLPDU buf[off:off+n] received with `limit` bytes of answer
        room; returns the length of the CLPDU to send (in self.ans), 0: none."""
        if n < HEADER:
            return self._error(0, 0, E_CLPDU)
        kind = buf[off]
        xid = buf[off + 1]
        seg = buf[off + 2]
        self.stats["segments"] += 1
        if kind == NEXT:
            return self._on_next(xid, seg, limit)
        if kind != DATA_MORE and kind != DATA_LAST:
            return self._error(xid, seg, E_CLPDU)
        total = _fletcher(buf, off, off + n)
        if xid == self._xid and self._state != _IDLE and seg == self._next - 1 and total == self._sum:
            return self._repeat(xid, seg, kind)
        if seg == 0:
            self._state = _RX  # a new exchange: whatever was going on is dropped
            self._xid = xid
            self._next = 0
            self._len = 0
        elif xid != self._xid or self._state != _RX or seg != self._next:
            return self._fail(xid, seg, E_SEQUENCE)
        elif ticks_diff(now_ms, self._t) > TIMEOUT_MS:
            return self._fail(xid, seg, E_TIMEOUT)
        size = n - HEADER
        if self._len + size > len(self.req):
            return self._fail(xid, seg, E_TOO_LONG)
        req = self.req
        at = self._len
        for i in range(size):
            req[at + i] = buf[off + HEADER + i]
        self._len = at + size
        self._next = seg + 1
        self._t = now_ms
        self._sum = total
        if kind == DATA_MORE:
            return self._head(NEXT, xid, seg)
        return self._respond(xid, limit)

    def _respond(self, xid, limit):
        # The request is whole: serve it once, keep the response, send segment 0.
        self.stats["apdus"] += 1
        self._state = _IDLE  # until the handler has answered (it may raise)
        self._seg = segment_size(limit)
        if self._seg == 0:
            return self._fail(xid, 0, E_ROOM)
        rlen = self.handler(self.req, self._len, self.resp)
        if rlen <= 0:
            return self._fail(xid, 0, E_NO_RESPONSE)
        self._rlen = rlen
        self._state = _TX
        return self._segment(xid, 0)

    def _repeat(self, xid, seg, kind):
        # The client sent its last segment again: our answer to it was lost.
        self.stats["repeats"] += 1
        if self._state == _TX and kind == DATA_LAST:
            return self._segment(xid, 0)
        if self._state == _RX and kind == DATA_MORE:
            return self._head(NEXT, xid, seg)
        return self._fail(xid, seg, E_SEQUENCE)

    def _on_next(self, xid, seg, limit):
        if self._state != _TX or xid != self._xid or (seg + 1) * self._seg >= self._rlen:
            return self._error(xid, seg, E_NO_EXCHANGE)
        if segment_size(limit) < self._seg:
            return self._error(xid, seg, E_ROOM)
        return self._segment(xid, seg + 1)

    def _segment(self, xid, seg):
        # Response segment `seg`, cut at the exchange's segment size.
        start = seg * self._seg
        size = self._rlen - start
        last = size <= self._seg
        if not last:
            size = self._seg
        n = self._head(DATA_LAST if last else DATA_MORE, xid, seg)
        ans = self.ans
        resp = self.resp
        for i in range(size):
            ans[n + i] = resp[start + i]
        return n + size

    def _head(self, kind, xid, seg):
        a = self.ans
        a[0] = kind
        a[1] = xid
        a[2] = seg
        return HEADER

    def _fail(self, xid, seg, code):
        # A broken exchange: forget it, tell the client why.
        self._state = _IDLE
        self._xid = -1
        return self._error(xid, seg, code)

    def _error(self, xid, seg, code):
        self.stats["errors"] += 1
        n = self._head(ERROR, xid, seg)
        self.ans[n] = code
        return n + 1
