# The character/segment model drawn on a canvas (meter/display/lcd.py): positions of
# points and colons, lit and unlit segments, icons, the dot-matrix line, test
# mode, and the OLED layout on a monochrome canvas. On MicroPython the canvas
# is a real framebuf; on CPython the stand-in of fwtest.
from meter.display import screen as SC
from meter.display import lcd
from fwtest import canvas

ON, GHOST, OFF = 3, 1, 0


def cells(text, n, right):
    segs, flags = bytearray(n), bytearray(n)
    lcd.cells(text, n, segs, flags, right)
    return list(segs), list(flags)


def draw(layout=lcd.LCD, on=ON, ghost=GHOST, **fields):
    w, h = layout["size"]
    c = canvas(w, h)
    s = SC.Screen()
    for k, v in fields.items():
        setattr(s, k, v)
    lcd.Panel(c, layout, on, ghost, OFF).draw(s)
    return c


def segment_points(layout, field, i):
    """Middle pixel of each segment a..g, the point and the upper colon dot of position i."""
    x, y, w, h, pitch, t = layout[field]
    x += i * pitch
    m = t // 2
    right = x + w + 1 + m
    return [(x + w // 2, y + m), (x + w - t + m, y + h // 4), (x + w - t + m, y + 3 * h // 4),
            (x + w // 2, y + h - t + m), (x + m, y + 3 * h // 4), (x + m, y + h // 4), (x + w // 2, y + h // 2),
            (right, y + h - t + m), (right, y + h // 4 + m)]


def lit(c, points):
    return [c.pixel(x, y) for x, y in points]


def test_cells_alignment_points_and_colons():
    segs, flags = cells("1234.567", 8, True)
    assert segs == [0, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07] and flags == [0, 0, 0, 0, 1, 0, 0, 0]
    segs, flags = cells("12:34:56", 8, True)
    assert segs[:2] == [0, 0] and segs[2] == 0x06 and flags == [0, 0, 0, 2, 0, 2, 0, 0]
    segs, flags = cells("F.F", 4, False)
    assert segs == [0x71, 0x71, 0, 0] and flags == [1, 0, 0, 0]
    segs, flags = cells("a?b", 4, False)  # lower case as upper case, unknown blank
    assert segs == [0x77, 0, 0x7C, 0]
    segs, _ = cells("123456789", 8, True)  # too long: the rightmost eight
    assert segs[0] == 0x5B and segs[7] == 0x6F


def test_lit_and_unlit_segments():
    c = draw(value="1.", code="8")
    assert lit(c, segment_points(lcd.LCD, "value", 7)) == [GHOST, ON, ON, GHOST, GHOST, GHOST, GHOST, ON, GHOST]
    assert lit(c, segment_points(lcd.LCD, "value", 0)) == [GHOST] * 9
    assert lit(c, segment_points(lcd.LCD, "code", 0)) == [ON] * 7 + [GHOST, GHOST]
    assert c.pixel(0, 0) == OFF and c.pixel(199, 71) == OFF


def test_icons_lit_only_when_set():
    x, y, pitch = lcd.LCD["icons"]
    c = draw(icons=SC.ICON_ALARM | SC.ICON_CLOCK)
    apex = [(x + i * pitch + 6, y) for i in range(4)]  # alarm apex, envelope top, arrow, clock hand
    assert c.pixel(*apex[0]) == ON and c.pixel(x + pitch, y + 2) == GHOST
    assert c.pixel(x + 3 * pitch, y) == ON and c.pixel(x + 2 * pitch, y + 1) == GHOST


def test_line_characters_on_dot_matrix_cells():
    x, y = lcd.LCD["line"]
    c = draw(line="A B")
    cell = lambda i: [c.pixel(x + 8 * i + dx, y + dy) for dy in range(8) for dx in range(7)]  # noqa: E731
    assert ON in cell(0) and ON in cell(2)
    assert ON not in cell(1) and set(cell(1)) == {GHOST}
    assert set(cell(15)) == {GHOST}


def test_test_mode_lights_everything():
    c = draw(show=SC.SHOW_TEST, value="", code="", line="", icons=0)
    for i in range(SC.VALUE_DIGITS):
        assert lit(c, segment_points(lcd.LCD, "value", i)) == [ON] * 9
    for i in range(SC.CODE_DIGITS):
        assert lit(c, segment_points(lcd.LCD, "code", i)) == [ON] * 9
    x, y = lcd.LCD["line"]
    assert all(c.pixel(x + 8 * i + 3, y + 4) == ON for i in range(SC.LINE_CHARS))
    ux, uy = lcd.LCD["unit"]
    assert c.pixel(ux + 3, uy + 4) == ON
    ix, iy, pitch = lcd.LCD["icons"]
    assert c.pixel(ix + pitch, iy + 2) == ON


def test_oled_layout_on_a_monochrome_canvas():
    c = draw(lcd.OLED, on=1, ghost=0, value="8", line="HI", unit="kWh")
    assert lit(c, segment_points(lcd.OLED, "value", 7)) == [1] * 7 + [0, 0]
    assert lit(c, segment_points(lcd.OLED, "value", 0)) == [0] * 9  # no ghost on an OLED
    w, h = lcd.OLED["size"]
    for field in ("code", "value"):
        x, y, dw, dh, pitch, t = lcd.OLED[field]
        n = SC.CODE_DIGITS if field == "code" else SC.VALUE_DIGITS
        assert x + (n - 1) * pitch + dw + 1 + t <= w and y + dh <= h
    assert any(c.pixel(x, y) for x in range(16) for y in range(8))  # the line, top left
