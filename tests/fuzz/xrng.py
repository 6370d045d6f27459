# The fuzzer's randomness: the firmware tests' xorshift32 (fwtest.Rng) with
# the picks the generators need. A (seed, index) pair names one input, the
# same on CPython and MicroPython (no `random` module: its seeding differs).
from fwtest import Rng as _Xorshift


def _mix(seed, index):
    # murmur3's finalizer: neighbouring indexes give unrelated states
    h = (seed ^ (index * 0x9E3779B1)) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h or 1


class Rng(_Xorshift):
    def __init__(self, seed, index=0):
        super().__init__(_mix(seed & 0xFFFFFFFF, index))

    def chance(self, percent):
        return self.below(100) < percent

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def span(self, lo, hi):
        """An int in lo..hi, both included."""
        return lo + self.below(hi - lo + 1)

    def number(self, nbytes):
        """An unsigned nbytes-wide value, biased to the boundaries: 0, 1, the
        top, the sign bit, just below them, small counts."""
        top = (1 << (8 * nbytes)) - 1
        k = self.below(12)
        if k == 0:
            return 0
        if k == 1:
            return 1
        if k == 2:
            return top
        if k == 3:
            return top >> 1
        if k == 4:
            return (top >> 1) + 1
        if k == 5:
            return top - 1 - self.below(3)
        if k < 9:
            return self.below(32)
        return int.from_bytes(self.bytes(nbytes), "big")

    def field(self, nbytes):
        return self.number(nbytes).to_bytes(nbytes, "big")
