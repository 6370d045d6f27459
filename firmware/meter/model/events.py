# The event log and the list of log events. Codes and data are project
# choices (docs/data-model.md "Events"); the record layout is LAYOUTS[EVENT_LOG]:
# time (4) | code (1) | data (4). The "logged events" register (0x0A10) says
# which codes are written (bit n = code n); the "spontaneous events" register
# (0x0A11) which of them wait for the concentrator's DATASPONT poll.
import struct

from meter.model import registers as R
from meter.compat import const
from meter.model.engine import Part, ring

EV_POWER_DOWN = const(1)  # data: 1 = supply lost (measured), 0 = cut without warning (logged at start-up)
EV_POWER_UP = const(2)  # data: outage duration s (bit 31: start estimated from the last save)
EV_CLOCK_SET = const(3)  # data: the clock before (s)
EV_CLOCK_SYNC = const(4)  # data: the correction (s, signed)
EV_DST = const(5)  # data: the new UTC offset (minutes, signed)
EV_BILLING = const(6)  # data: reason (1 programmed, 2 command, 3 contract switch)
EV_CUTOFF_OPEN = const(7)  # data: reason (1 command, 2 load modulation)
EV_CUTOFF_CLOSE = const(8)  # data: reason (1 command, 3 automatic reconnection)
EV_OVER_LIMIT = const(9)  # data: the power (W) when it went above the limit
EV_CONTRACT = const(10)  # data: the new contract id
EV_SETTINGS = const(11)  # data: register or table id written
EV_TABLE_RESET = const(12)  # data: register or table id reset
EV_ALARMS_RESET = const(13)  # data: the extended status word bits cleared (low 32)
EV_PHASE_INTERRUPTION = const(14)  # data: phase mask << 24 | duration s
EV_UNDERVOLTAGE = const(15)  # data: phase << 24 | duration s
EV_OVERVOLTAGE = const(16)  # data: phase << 24 | duration s
EV_STORAGE_FAULT = const(17)  # data: failed writes so far
EV_KEYS = const(18)  # data: 3 (both keys, by the key-change procedure)
EV_LOG_RESET = const(19)  # data: 0
EV_MAX = const(19)

_FMT = ">IBI"


class EventLog(Part):
    """The event log of the metering, owner of the event registers."""

    def __init__(self, meter):
        Part.__init__(self, meter)
        self.ring = ring(meter.store, R.EVENT_LOG, "ev")
        self.tables = {R.EVENT_LOG: self.ring}
        self._rec = bytearray(self.ring.size)
        self.pending = False  # a spontaneous event waits for DATASPONT
        self.check_pending()
        meter.model.register("events", self)

    def reg_get(self, reg):
        if reg == R.EVENT_COUNT:
            return self.ring.end
        return self.model.stored(reg)

    def written(self, reg):
        self.check_pending()  # the masks say anew which events wait
        self.meter.changed(reg)

    def status(self):
        return 1 << R.SW_SPONT_PENDING if self.pending else 0

    def reset_table(self, reg):
        self.ring.reset()
        self.log(self.meter.now(), EV_LOG_RESET, 0)
        self.check_pending()
        self.meter.replan()

    def log(self, t, code, data=0):
        """Log an event if the "logged events" register enables its code."""
        m = self.model
        if not (m.get(R.EVENT_MASK) >> code) & 1:
            return False
        struct.pack_into(_FMT, self._rec, 0, t, code, data & 0xFFFFFFFF)
        if not self.ring.append(self._rec):
            return False
        if self.spontaneous(code):
            self.pending = True
        return True

    def spontaneous(self, code):
        m = self.model
        return (m.get(R.CONTROL_FLAGS) >> R.CF_SPONTANEOUS) & 1 and (m.get(R.SPONT_MASK) >> code) & 1

    def next_spontaneous(self, n, limit=64):
        """Number of the first spontaneous record at or after n (looking at
        most `limit` records on), or -1."""
        ring = self.ring
        if n < ring.first:
            n = ring.first
        end = min(ring.end, n + limit)
        rec = self._rec
        while n < end:
            ring.read_into(n, rec, 0)
            if self.spontaneous(rec[4]):
                return n
            n += 1
        return -1

    def check_pending(self):
        n = self.model.get(R.SPONT_ACK)
        if self.ring.end - max(n, self.ring.first) > 64:
            self.pending = True  # too many to scan now; the poll will tell
        else:
            self.pending = self.next_spontaneous(n) >= 0

    def acknowledge(self, n):
        """The concentrator has every spontaneous record below number n."""
        m = self.model
        if n != m.get(R.SPONT_ACK) and n <= self.ring.end:
            m.set(R.SPONT_ACK, n)
        self.check_pending()
