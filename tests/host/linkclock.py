"""A modem driver and a modem emulator back to back on a virtual clock: the
time stepping shared by the ST7580 and the M&M HI test links. The driver
sees whole ms, the emulator float ms."""


class ClockedLink:
    """The subclass has `t` (ms), `drv`, `emu` and settle() (move bytes and
    pins until nothing moves); _at() sets the time (and any clock of its own)."""

    t = 0.0

    def settle(self):
        raise NotImplementedError

    def _at(self, t):
        self.t = t

    def _next(self):
        times = []
        d = self.drv.next_timeout(int(self.t))
        if d >= 0:
            times.append(int(self.t) + d)
        e = self.emu.next_timeout(self.t)
        if e is not None:
            times.append(self.t + e)
        return min(times) if times else None

    def run(self, ms):
        end = self.t + ms
        for _ in range(100000):
            self.settle()
            nt = self._next()
            if nt is None or nt > end:
                break
            self._at(max(nt, self.t + 0.01))
        self._at(end)
        self.settle()
