# One place for what differs between MicroPython and CPython.
# Firmware modules import `const` and the ticks helpers from here, never from
# `micropython` or `time` directly, so the same file runs on both.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


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
