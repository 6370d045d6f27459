# Messages updating the B-Node with A-Node data (CLC/TS 50568-8 9.1.6.4): the
# concentrator asks this meter (the A-Node) to pass data to its B-Node; the
# meter sends it on the local link (meter/link/bnodelink.py), waits for the
# B-Node, and answers ACK B-Node (251, authenticated 241) with the B-Node's
# reply or NACK B-Node (249, authenticated 239). Project mapping
# (docs/protocol.md, "B-Nodes"), DATA after the ATTR:
#   SETIC.REQ      (40/140)  data for the B-Node (1..100)
#   WRITETABIC.REQ (42/142)  table (1) | first entry (2, big-endian) | entries (1..97)
#   ACK B-Node     (251)     the B-Node's reply (0..8), cut to what the discipline leaves
#   NACK B-Node    (249)     PAR1 code (attrs.BNACK_*) | the B-Node's own code (1) | 0
# Served only in an RB discipline (the answer waits for the B-Node), one at a
# time; refusals before anything is sent are NACK A-Node (bad length 3, access
# 2, busy 8, discipline 12). Rights (docs/security.md): the write key in ECB;
# a plain request only if control flag CF_BNODE_PLAIN is set (off at the
# factory), within its own budget, and marked plain to the B-Node.
from meter import attrs as A
from meter.model import registers as R
from meter import timers as T
from meter.budget import TokenBucket
from meter.compat import const
from meter.errors import Refused
from meter.link import bnodelink as L

_TABLE_HEAD = const(3)  # WRITETABIC: table | first entry


def nack_b(resp, code, detail=0):
    """NACK B-Node into resp; returns its length."""
    resp[0] = A.NACK_B
    resp[1] = code
    resp[2] = detail
    resp[3] = 0
    return 4


class BNodeRelay:
    """The B-Node services of an application (its `services` table gains
    SETIC and WRITETABIC). link: the A-Node's side of the local link
    (meter.link.bnodelink.ANodeLink), None when the board has none."""

    def __init__(self, app, link=None):
        self.app = app
        self.link = link
        self.accepting = False  # the node sets it: an RB request from the power line
        self.now = 0  # ms ticks of the request being served (the node sets it)
        self.held = False  # an exchange with the B-Node is under way
        self._room = 0
        self._plain = TokenBucket(T.BNODE_PLAIN_BURST, T.BNODE_PLAIN_REFILL_S)
        self.stats = {"sent": 0, "acked": 0, "nacked": 0, "refused": 0}
        app.services[A.SETIC_REQ] = self._setic
        app.services[A.WRITETABIC_REQ] = self._writetabic

    def _setic(self, req, off, n, room, grant):
        if n < 1 or n > L.MAX_DATA:
            raise Refused(A.NACK_BAD_LENGTH)
        return self._start(L.KIND_SET, req, off, n, room, grant)

    def _writetabic(self, req, off, n, room, grant):
        if n <= _TABLE_HEAD or n > L.MAX_DATA:
            raise Refused(A.NACK_BAD_LENGTH)
        return self._start(L.KIND_TABLE, req, off, n, room, grant)

    def _start(self, kind, req, off, n, room, grant):
        if not self.accepting:
            raise Refused(A.NACK_DISCIPLINE)
        if grant == R.ACC_READ_KEY:  # the read key never writes, here as anywhere
            raise Refused(A.NACK_ACCESS_DENIED)
        model = self.app.model
        if grant == R.ACC_PLAIN:
            if not (model.get(R.CONTROL_FLAGS) >> R.CF_BNODE_PLAIN) & 1:
                raise Refused(A.NACK_ACCESS_DENIED)
            if not self._plain.take(model.clock()):
                raise Refused(A.NACK_BUSY)
        if self.held:
            raise Refused(A.NACK_BUSY)
        if self.link is None:
            self.stats["nacked"] += 1
            return nack_b(self.app.resp, A.BNACK_NO_BNODE)
        flag = L.KIND_AUTH if grant == R.ACC_WRITE_KEY else 0
        self.link.send(kind | flag, req, off, n, self.now)
        self.stats["sent"] += 1
        self.held = True
        self._room = room
        self.app.deferred = True
        self.app.changed = True
        return 0

    def finish(self, now):
        """The answer once the B-Node answered or the wait is over, in
        app.resp: its length; 0 while the exchange goes on (or none is held)."""
        link = self.link
        if not self.held or link is None:
            return 0
        r = link.result(now)
        if r == L.PENDING:
            return 0
        self.held = False
        link.done()
        resp = self.app.resp
        if r == L.ACKED:
            self.stats["acked"] += 1
            k = link.reply_n
            if k > self._room - 1:  # the reply is cut to what the discipline leaves
                k = self._room - 1
            resp[0] = A.ACK_B
            for i in range(k):
                resp[1 + i] = link.reply[i]
            return 1 + k
        self.stats["nacked"] += 1
        if r == L.REFUSED:
            return nack_b(resp, A.BNACK_REFUSED, link.code)
        return nack_b(resp, A.BNACK_NO_ANSWER)

    def next_timeout(self, now):
        link = self.link
        return link.next_timeout(now) if self.held and link is not None else -1
