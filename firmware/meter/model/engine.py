# Owners of registers. Each row of registers.TABLE names its owner, and the
# data model (meter/model/datamodel.py) hands every read, write and write check of
# the register to the engine registered under that name. An owner answers:
#
#   reg_get(reg)         the value; by default the one the data model keeps
#                        for it (a setting or counter of this engine)
#   reg_check(reg, raw)  may the concentrator write raw? By default: yes
#   reg_put(reg, raw)    a concentrator write: by default kept by the data
#                        model (on flash when persistent), then written(reg)
#   written(reg)         follow a register or a table the concentrator wrote
#   status()             the status-word bits of the conditions it sees now
#   tables               its tables (ENC_TABLE registers): reg id -> ring.Ring / ring.Array
#
# Part is an engine of the metering (meter/model/metering.py): it runs on the
# coordinator's time base, a write of one of its settings is logged and the
# boundaries planned again, and reset_table(reg) serves RESETTAB of its tables.
from meter.model import registers as R
from meter.model.ring import Array, Ring

NEVER = 1 << 40  # a boundary that never comes (s)


def next_multiple(t, period):
    """The first multiple of period after t."""
    return (t // period + 1) * period


def ring(store, reg, name):
    """The ring on flash behind a log or profile register, its records named
    `name` (docs/data-model.md "Persistence")."""
    pages, per, batch = R.RINGS[reg]
    return Ring(store, name, R.BY_ID[reg][R.R_SIZE], pages, per, batch)


def array(store, reg):
    """The fixed array behind a tariff table register."""
    return Array(store, "t%04x" % reg, R.BY_ID[reg][R.R_SIZE], R.CAPACITY[reg], R.DEFAULTS[reg])


class Engine:
    """An owner of registers, with the defaults above."""

    def __init__(self, model):
        self.model = model
        self.tables = {}

    def reg_get(self, reg):
        return self.model.stored(reg)

    def reg_check(self, reg, raw):
        return True

    def reg_put(self, reg, raw):
        code = self.model.keep(reg, raw)
        if not code:
            self.written(reg)
        return code

    def written(self, reg):
        pass

    def status(self):
        return 0


class Part(Engine):
    """An engine of the metering; `meter` is the coordinator (meter/model/metering.py)."""

    def __init__(self, meter):
        Engine.__init__(self, meter.model)
        self.meter = meter

    def written(self, reg):
        self.meter.changed(reg)

    def reset_table(self, reg):
        """RESETTAB of one of its tables: emptied, or back to its default."""
        self.tables[reg].reset()
        self.meter.table_reset(reg)

    def flag(self, bit):
        """A bit of the control flags (registers.CF_*)."""
        return (self.model.get(R.CONTROL_FLAGS) >> bit) & 1

    def log(self, t, code, data=0):
        self.meter.events.log(t, code, data)

    def alarm(self, bit):
        self.meter.alarms.alarm(bit)
