# One place for what differs between MicroPython and CPython.
# Firmware modules import `const` and the ticks helpers from here, never from
# `micropython` or `time` directly, so the same file runs on both.


def const(x):
    """micropython.const. The compiler folds `NAME = const(value)` whatever
    `const` is bound to, so this runs only on CPython, or for a value the
    compiler cannot fold: it gives the value back, as MicroPython's does."""
    return x


# Under TYPE_CHECKING, what the type checker reads (tests/typecheck/): the
# ticks helpers as both runtimes give them, ticks being small ints. The
# device never runs that block: const(False) makes the compiler drop it.
TYPE_CHECKING = const(False)

if TYPE_CHECKING:

    def ticks_ms() -> int: ...

    def ticks_us() -> int: ...

    def ticks_add(t: int, delta: int) -> int: ...

    def ticks_diff(a: int, b: int) -> int: ...

else:
    try:
        from time import ticks_ms, ticks_us, ticks_diff, ticks_add
    except ImportError:  # CPython: same semantics, 30-bit wrap like the ports
        import time as _time

        _TICKS_MASK = (1 << 30) - 1
        _TICKS_HALF = 1 << 29

        def ticks_ms():
            return (_time.monotonic_ns() // 1000000) & _TICKS_MASK

        def ticks_us():
            return (_time.monotonic_ns() // 1000) & _TICKS_MASK

        def ticks_add(t, delta):
            return (t + delta) & _TICKS_MASK

        def ticks_diff(a, b):
            return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF
