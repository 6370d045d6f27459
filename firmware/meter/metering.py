# Energy accumulation from the board's power readings. Energy is integrated in
# watt-milliseconds so that no fraction of a watt-hour is lost between ticks;
# the registers are written to flash every ENERGY_PERSIST_S (see timers.py),
# so a power cut loses at most that much energy.
from meter import registers as R
from meter.timers import ENERGY_PERSIST_S

_WMS_PER_WH = 3600000


class Metering:
    def __init__(self, model):
        self._model = model
        self._rest = [0, 0]  # watt-milliseconds not yet a whole Wh: import, export
        self._since_save_ms = 0

    def tick(self, import_w, export_w, dt_ms):
        """Add dt_ms of the given power; return True when a save is due."""
        self._add(0, R.ENERGY_IMPORT, import_w, dt_ms)
        self._add(1, R.ENERGY_EXPORT, export_w, dt_ms)
        self._since_save_ms += dt_ms
        return self._since_save_ms >= 1000 * ENERGY_PERSIST_S

    def _add(self, i, reg, watts, dt_ms):
        self._rest[i] += int(watts * dt_ms)
        wh = self._rest[i] // _WMS_PER_WH
        if wh:
            self._rest[i] -= wh * _WMS_PER_WH
            self._model.set(reg, self._model.get(reg) + wh, persist=False)

    def save(self):
        self._since_save_ms = 0
        self._model.save(R.ENERGY_IMPORT)
        self._model.save(R.ENERGY_EXPORT)

