# The status words. The normal status word (0x003F) is the latched bits the
# data model keeps (clock unset, storage fault, modem reset) and the
# conditions each engine of the metering sees now (Engine.status()); the
# extended status word (0x0040) latches alarms, on flash, until COMMAND 4
# "reset alarms". Bits: registers.SW_* and XS_*, docs/data-model.md.
from meter.model import events as E
from meter.model import registers as R
from meter.model.engine import Part


class Alarms(Part):
    def __init__(self, meter):
        Part.__init__(self, meter)
        meter.model.register("alarms", self)

    def reg_get(self, reg):
        if reg == R.STATUS_WORD:
            b = self.model.stored(reg)
            for e in self.meter.engines:
                b |= e.status()
            return b
        return self.model.stored(reg)

    def status(self):
        return 1 << R.SW_ALARM if self.model.stored(R.EXT_STATUS) else 0

    def alarm(self, bit):
        """Latch an extended status bit."""
        xs = self.model.stored(R.EXT_STATUS)
        if not (xs >> bit) & 1:
            self.model.set(R.EXT_STATUS, xs | (1 << bit))

    def reset(self):
        """COMMAND 4: clear the extended status word and the latched status bits."""
        m = self.model
        old = m.stored(R.EXT_STATUS)
        m.set(R.EXT_STATUS, 0)
        m.status &= ~((1 << R.SW_STORAGE_FAULT) | (1 << R.SW_MODEM_RESET))
        self.log(self.meter.now(), E.EV_ALARMS_RESET, old)

    def keys_changed(self):
        """The key-change procedure put new keys in force (meter/app/auth.py)."""
        self.alarm(R.XS_KEYS_CHANGED)
        self.log(self.meter.now(), E.EV_KEYS, 3)
