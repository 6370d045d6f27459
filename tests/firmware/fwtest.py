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


def canvas(width, height):
    """A drawing surface with one byte a pixel: framebuf.FrameBuffer (GS8) on
    MicroPython; on CPython the stand-in below."""
    try:
        import framebuf
    except ImportError:
        return Canvas(width, height)
    return framebuf.FrameBuffer(bytearray(width * height), width, height, framebuf.GS8)


class Canvas:
    """CPython stand-in for framebuf.FrameBuffer in tests only: the methods
    meter/display/lcd.py draws with, same clipping. text() draws each non-blank
    character as a 5 x 6 block (the real 8 x 8 font is in framebuf)."""

    def __init__(self, width, height):
        self.width = width
        self.height = height
        self.buf = bytearray(width * height)

    def pixel(self, x, y, c=None):
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None if c is not None else 0
        if c is None:
            return self.buf[y * self.width + x]
        self.buf[y * self.width + x] = c
        return None

    def fill(self, c):
        for i in range(len(self.buf)):
            self.buf[i] = c

    def fill_rect(self, x, y, w, h, c):
        for yy in range(max(y, 0), min(y + h, self.height)):
            for xx in range(max(x, 0), min(x + w, self.width)):
                self.buf[yy * self.width + xx] = c

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c):
        self.hline(x, y, w, c)
        self.hline(x, y + h - 1, w, c)
        self.vline(x, y, h, c)
        self.vline(x + w - 1, y, h, c)

    def line(self, x0, y0, x1, y1, c):
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.pixel(x0, y0, c)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, s, x, y, c=1):
        for i in range(len(s)):
            if s[i] != " ":
                self.fill_rect(x + 8 * i + 1, y + 1, 5, 6, c)
