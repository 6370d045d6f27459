# Helpers for firmware unit tests. These tests run unchanged under CPython
# (pytest) and under the real MicroPython interpreter (run_mp.py), so they use
# plain functions and assert, and nothing from pytest.


class raises:
    """Context manager: the block must raise `exc_type`; keeps it as .value."""

    def __init__(self, exc_type):
        self.exc_type = exc_type
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise AssertionError("expected %s" % self.exc_type.__name__)
        if not issubclass(et, self.exc_type):
            return False
        self.value = ev
        return True


def unhex(s):
    return bytes.fromhex(s.replace(" ", ""))


class Rng:
    """Small deterministic PRNG (xorshift32): same sequence on both runtimes."""

    def __init__(self, seed=1):
        self.s = seed or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def bytes(self, n):
        return bytes(self.next() & 0xFF for _ in range(n))

    def below(self, n):
        return self.next() % n
