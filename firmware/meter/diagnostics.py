# What went wrong inside the firmware without stopping it: frames whose
# handling raised (each costs that frame only), supervised tasks restarted,
# boots after a watchdog reset. Read through the diagnostics register
# (registers.DIAGNOSTICS); the watchdog count survives resets in record "wdt".
import struct

_LOG_FIRST = 8  # faults logged per boot, one line each; later ones are only counted


class Diagnostics:
    def __init__(self, store=None, log=print):
        self.faults = 0
        self.restarts = 0
        self._store = store
        self._log = log
        raw = store.get("wdt") if store is not None else None
        self.watchdog_resets = struct.unpack(">H", raw)[0] if raw is not None and len(raw) == 2 else 0

    def fault(self, where, exc):
        """A frame's handling raised exc: count it, log it (the first few)."""
        self.faults += 1
        if self.faults <= _LOG_FIRST:
            self._log("meter: fault in %s: %s %s" % (where, type(exc).__name__, exc))

    def restarted(self, task, exc):
        self.restarts += 1
        self._log("meter: task %s died (%s %s), restarting" % (task, type(exc).__name__, exc))

    def watchdog_reset(self):
        """Called at boot when the board says the watchdog reset it."""
        self.watchdog_resets = min(0xFFFF, self.watchdog_resets + 1)
        if self._store is not None:
            self._store.put("wdt", struct.pack(">H", self.watchdog_resets))

    def value(self):
        """The diagnostics register: faults (4) | restarts (2) | watchdog resets (2)."""
        return struct.pack(">IHH", self.faults & 0xFFFFFFFF, min(0xFFFF, self.restarts), self.watchdog_resets)
