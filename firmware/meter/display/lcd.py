# The display's character/segment model (meter/display/manager.py Screen) drawn on a
# pixel canvas: a MicroPython framebuf.FrameBuffer, or anything with the same
# fill / fill_rect / hline / vline / line / rect / text methods.
#
# The picture is that of a meter's LCD: an identifier field of small
# seven-segment digits, a value field of large ones (points and colons), a unit,
# four icons and a 16-character dot-matrix line. On a canvas with more than two
# levels the unlit segments show faintly ("ghost"), as on a real LCD. Test mode
# lights everything. Sizes come from a layout, so the same model fits the
# emulated board's LCD and a 128 x 64 OLED.
from meter.display import screen as SC
from meter.compat import const

# seven segments: bit 0 a (top), 1 b (upper right), 2 c (lower right),
# 3 d (bottom), 4 e (lower left), 5 f (upper left), 6 g (middle)
_ALL = const(0x7F)
SEGMENTS = {
    "0": 0x3F, "1": 0x06, "2": 0x5B, "3": 0x4F, "4": 0x66, "5": 0x6D, "6": 0x7D, "7": 0x07, "8": 0x7F,
    "9": 0x6F, "A": 0x77, "B": 0x7C, "C": 0x39, "D": 0x5E, "E": 0x79, "F": 0x71, "G": 0x3D, "H": 0x76,
    "I": 0x06, "J": 0x1E, "L": 0x38, "N": 0x54, "O": 0x3F, "P": 0x73, "R": 0x50, "S": 0x6D, "T": 0x78,
    "U": 0x3E, "Y": 0x6E, "-": 0x40, "_": 0x08, " ": 0,
}
_POINT = const(1)
_COLON = const(2)

# Layouts: field -> (x, y, digit width, digit height, pitch, stroke) for the
# digit fields, (x, y) for the others; icons: (x, y, pitch).
LCD = {  # the emulated board's LCD, 200 x 72, two bits a pixel
    "size": (200, 72),
    "code": (150, 3, 8, 14, 12, 2),
    "value": (6, 22, 14, 28, 19, 3),
    "unit": (164, 38),
    "icons": (6, 3, 18),
    "line": (36, 58),
}
OLED = {  # a 128 x 64 monochrome OLED (SSD1306)
    "size": (128, 64),
    "code": (0, 11, 7, 12, 10, 1),
    "value": (0, 33, 12, 24, 16, 2),
    "unit": (104, 11),
    "icons": (44, 11, 15),
    "line": (0, 0),
}


def cells(text, n, segs, flags, right):
    """Split text into n seven-segment positions (segs, flags: point, colon);
    '.' and ':' join the position before them. Right or left aligned."""
    count = 0
    for ch in text:
        if ch not in ".:":
            count += 1
    i = n - count if right else 0
    for k in range(n):
        segs[k] = 0
        flags[k] = 0
    for ch in text:
        if ch == "." or ch == ":":
            if 0 < i <= n:
                flags[i - 1] |= _POINT if ch == "." else _COLON
            continue
        if 0 <= i < n:
            segs[i] = SEGMENTS.get(ch.upper(), 0)
        i += 1


class Panel:
    """Draws Screens on `canvas` with `layout`; colours: lit, unlit segment, background."""

    def __init__(self, canvas, layout, on=1, ghost=0, off=0):
        self.canvas = canvas
        self.layout = layout
        self.on = on
        self.ghost = ghost
        self.off = off
        self._segs = bytearray(SC.VALUE_DIGITS)
        self._flags = bytearray(SC.VALUE_DIGITS)

    def draw(self, screen):
        c = self.canvas
        lay = self.layout
        c.fill(self.off)
        test = screen.show == SC.SHOW_TEST
        self._digits(lay["code"], screen.code, SC.CODE_DIGITS, False, test)
        self._digits(lay["value"], screen.value, SC.VALUE_DIGITS, True, test)
        x, y, pitch = lay["icons"]
        for i in range(len(SC.ICON_NAMES)):
            self._icon(i, x + i * pitch, y, self.on if test or screen.icons & (1 << i) else self.ghost)
        x, y = lay["unit"]
        self._text(screen.unit, x, y, 3, test)
        x, y = lay["line"]
        self._text(screen.line, x, y, SC.LINE_CHARS, test)

    def _text(self, text, x, y, n, test):
        # dot-matrix cells: unlit cells faint, then the characters
        c = self.canvas
        cell = self.on if test else self.ghost
        if cell != self.off:
            for i in range(n):
                c.fill_rect(x + 8 * i, y, 7, 8, cell)
        if not test and text:
            c.text(text[:n], x, y, self.on)

    def _digits(self, field, text, n, right, test):
        x, y, w, h, pitch, t = field
        segs, flags = self._segs, self._flags
        cells(text, n, segs, flags, right)
        for i in range(n):
            lit = _ALL if test else segs[i]
            f = (_POINT | _COLON) if test else flags[i]
            self._digit(x + i * pitch, y, w, h, t, lit, f)

    def _seg(self, on, x, y, w, h):
        colour = self.on if on else self.ghost
        if on or colour != self.off:
            self.canvas.fill_rect(x, y, w, h, colour)

    def _digit(self, x, y, w, h, t, lit, flags):
        half = h // 2
        seg = self._seg
        seg(lit & 0x01, x + t, y, w - 2 * t, t)  # a
        seg(lit & 0x02, x + w - t, y + t, t, half - t)  # b
        seg(lit & 0x04, x + w - t, y + half + 1, t, h - half - t - 1)  # c
        seg(lit & 0x08, x + t, y + h - t, w - 2 * t, t)  # d
        seg(lit & 0x10, x, y + half + 1, t, h - half - t - 1)  # e
        seg(lit & 0x20, x, y + t, t, half - t)  # f
        seg(lit & 0x40, x + t, y + half - t // 2, w - 2 * t, t)  # g
        right = x + w + 1  # point and colon sit right of the digit
        seg(flags & _POINT, right, y + h - t, t, t)
        seg(flags & _COLON, right, y + h // 4, t, t)
        seg(flags & _COLON, right, y + h - h // 4 - t, t, t)

    def _icon(self, which, x, y, colour):
        if colour == self.off:
            return
        c = self.canvas
        if which == 0:  # alarm: a triangle with '!'
            c.line(x, y + 11, x + 6, y, colour)
            c.line(x + 6, y, x + 12, y + 11, colour)
            c.hline(x, y + 11, 13, colour)
            c.vline(x + 6, y + 4, 4, colour)
            c.pixel(x + 6, y + 9, colour)
        elif which == 1:  # message: an envelope
            c.rect(x, y + 2, 13, 9, colour)
            c.line(x, y + 2, x + 6, y + 7, colour)
            c.line(x + 12, y + 2, x + 6, y + 7, colour)
        elif which == 2:  # alternate mode: a double arrow
            for dx in (0, 5):
                c.line(x + dx, y + 1, x + dx + 5, y + 6, colour)
                c.line(x + dx + 5, y + 6, x + dx, y + 11, colour)
        else:  # clock not set: a clock face
            c.rect(x, y, 12, 12, colour)
            c.vline(x + 6, y + 2, 5, colour)
            c.hline(x + 6, y + 6, 4, colour)
