# A token bucket: at most `burst` events at once, one more every `period`.
# Used for the flash-write budgets (seconds of the meter clock) and the
# NACK-10 / CHL.RESP rate limit (ms ticks). Sans-io: the caller gives the time.


class TokenBucket:
    def __init__(self, burst, period):
        self.burst = burst
        self.period = period
        self.tokens = burst
        self._at = None

    def take(self, now):
        """Spend one token at time `now`; False when none is left."""
        if self._at is None or now < self._at:  # first use, or the time base went back
            self._at = now
        got = (now - self._at) // self.period
        if got:
            self.tokens = min(self.burst, self.tokens + got)
            self._at += got * self.period
        if self.tokens <= 0:
            return False
        self.tokens -= 1
        return True
