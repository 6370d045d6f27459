# The cut-off device and load modulation. COMMAND 2 opens, COMMAND 3 closes
# (and resets the automatic reconnections). Import power above the contract 1
# limit plus the tolerance for longer than the delay opens it; in
# reconnection mode 1 it closes again after the reconnection delay, at most
# the configured number of times a day. The state is on flash before the
# relay moves, and the relay takes the saved state at power-up.
import struct

from meter.model import events as E
from meter.model import profiles as P
from meter.model import registers as R
from meter.model import tariff as TF
from meter.compat import const
from meter.model.engine import NEVER, Part

# state and reasons
CUT_CLOSED = const(0)
CUT_OPEN = const(1)
WHY_COMMAND = const(1)
WHY_LOAD = const(2)
WHY_AUTO = const(3)


def _lm_ok(raw):
    return raw[0] <= 100 and raw[3] <= 1


class Cutoff(Part):
    """set_relay: callable(open) driving the device, or None."""

    def __init__(self, meter, set_relay):
        Part.__init__(self, meter)
        self.set_relay = set_relay
        cs = meter.model.get(R.CUTOFF_STATE)
        self.state, self.reason = cs[0], cs[1]
        self._since = struct.unpack_from(">I", cs, 2)[0]
        self._auto = 0  # automatic reconnections since the last command or midnight
        self._over_since = -1  # when the power went above the limit; -1: it is not
        self.due = NEVER  # the load-modulation deadline
        meter.model.register("cutoff", self)
        if self.state == CUT_OPEN and set_relay:
            set_relay(True)

    def reg_get(self, reg):
        if reg == R.POWER_LIMIT:
            return self.limit()
        if reg == R.OVER_LIMIT_TIME:
            return 0 if self._over_since < 0 else min(0xFFFF, self.meter.now() - self._over_since)
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return reg != R.LOAD_MODULATION or _lm_ok(raw)

    def status(self):
        b = 0
        if self.state == CUT_OPEN:
            b |= 1 << R.SW_CUTOFF_OPEN
            if self.reason == WHY_LOAD and not self._auto_allowed():
                b |= 1 << R.SW_LM_LOCKED
        if self._over_since >= 0:
            b |= 1 << R.SW_OVER_LIMIT
        return b

    def limit(self):
        """The power limit (W): contract 1's, plus the tolerance."""
        c = TF.contract_fields(self.model.get(R.CONTRACT_1))
        return c[1] * (100 + self.model.get(R.LOAD_MODULATION)[0]) // 100

    def _lm(self):
        return struct.unpack(">BHBHB", self.model.get(R.LOAD_MODULATION))

    def _auto_allowed(self):
        lm = self._lm()
        return lm[2] == 1 and self._auto < lm[4]

    def new_day(self):
        self._auto = 0

    def check_limit(self, t, w):
        """Import power w at t: above the limit or not."""
        limit = self.limit()
        over = self.flag(R.CF_LOAD_MODULATION) and limit > 0 and w > limit
        if over and self._over_since < 0:
            self._over_since = t
            self.alarm(R.XS_OVER_LIMIT)
            self.log(t, E.EV_OVER_LIMIT, w)
            self.plan()
        elif not over and self._over_since >= 0:
            self._over_since = -1
            self.plan()

    def plan(self):
        due = NEVER
        lm = self._lm()
        if self._over_since >= 0 and self.state == CUT_CLOSED:
            due = self._over_since + lm[1]
        elif self.state == CUT_OPEN and self.reason == WHY_LOAD and self._auto_allowed():
            due = self._since + lm[3]
        self.due = due
        self.meter.refresh()

    def deadline(self, t):
        """The delay above the limit, or the reconnection delay, ran out at t."""
        if self._over_since >= 0 and self.state == CUT_CLOSED:
            self._over_since = -1
            m = self.model
            m.set(R.LM_TRIPS, (m.get(R.LM_TRIPS) + 1) & 0xFFFF)
            self.operate(True, WHY_LOAD, t)
        elif self.state == CUT_OPEN and self.reason == WHY_LOAD and self._auto_allowed():
            self._auto += 1
            self.operate(False, WHY_AUTO, t)
        self.plan()

    def operate(self, open_, reason, t=None):
        """Open or close the device; the state is on flash before the relay moves."""
        meter = self.meter
        if t is None:
            t = meter.now()
        state = CUT_OPEN if open_ else CUT_CLOSED
        if state == self.state:
            return
        m = self.model
        self.state, self.reason, self._since = state, reason, t
        m.set(R.CUTOFF_STATE, struct.pack(">BBI", state, reason, t))
        m.set(R.CUTOFF_OPERATIONS, (m.get(R.CUTOFF_OPERATIONS) + 1) & 0xFFFF)
        if self.set_relay is not None:
            self.set_relay(open_)
        if open_:
            meter.measurands.set_power(0, 0)
            meter.profiles.mark(P.PS_CUTOFF)
            self.alarm(R.XS_LM_OPENED if reason == WHY_LOAD else R.XS_CMD_OPENED)
            self.log(t, E.EV_CUTOFF_OPEN, reason)
        else:
            self.log(t, E.EV_CUTOFF_CLOSE, reason)
            if reason == WHY_COMMAND:
                self._auto = 0
        self.plan()
