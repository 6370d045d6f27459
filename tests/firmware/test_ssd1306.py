# The SSD1306 driver against a fake I2C bus that records every transaction:
# the power-up command stream byte by byte (checked against the datasheet's
# command table), page writes in horizontal addressing mode, only changed
# pages sent again, and the single commands.
from meter.display import ssd1306
from fwtest import raises

ADDR = 0x3C


class FakeI2C:
    """Records (address, bytes) per transaction; writevto joins its buffers."""

    def __init__(self):
        self.log = []

    def writeto(self, addr, buf):
        self.log.append((addr, bytes(buf)))
        return len(buf)

    def writevto(self, addr, bufs):
        self.log.append((addr, b"".join(bytes(b) for b in bufs)))

    def take(self):
        out, self.log = self.log, []
        return out


# control byte 00 (commands), then: display off; clock D5 80; mux A8 3F (64 rows);
# offset D3 00; start line 40; charge pump 8D 14; horizontal addressing 20 00;
# segment remap A1; COM scan C8; COM pins DA 12; contrast 81 CF; precharge D9 F1;
# VCOMH DB 30; follow RAM A4; normal A6; scroll off 2E.
INIT_128X64 = bytes.fromhex("00 AE D5 80 A8 3F D3 00 40 8D 14 20 00 A1 C8 DA 12 81 CF D9 F1 DB 30 A4 A6 2E")


def page_write(page, data):
    return [(ADDR, bytes((0x00, 0x21, 0x00, 0x7F, 0x22, page, page))), (ADDR, b"\x40" + data)]


def test_power_up_sequence_clears_the_panel_then_switches_it_on():
    bus = FakeI2C()
    oled = ssd1306.SSD1306(bus)
    log = bus.take()
    assert log[0] == (ADDR, INIT_128X64)
    pages = log[1:-1]
    assert len(pages) == 16
    for p in range(8):
        assert pages[2 * p:2 * p + 2] == page_write(p, bytes(128))
    assert log[-1] == (ADDR, b"\x00\xaf")
    assert oled.parts == 8 and len(oled.buf) == 1024


def test_128x32_and_external_vcc_variants():
    bus = FakeI2C()
    ssd1306.SSD1306(bus, 128, 32, addr=0x3D, external_vcc=True)
    addr, init = bus.take()[0]
    assert addr == 0x3D
    assert init == bytes.fromhex("00 AE D5 80 A8 1F D3 00 40 8D 10 20 00 A1 C8 DA 02 81 9F D9 22 DB 30 A4 A6 2E")
    with raises(ValueError):
        ssd1306.SSD1306(FakeI2C(), 96, 16)


def test_only_changed_pages_are_sent_again():
    bus = FakeI2C()
    oled = ssd1306.SSD1306(bus)
    bus.take()
    oled.show()
    assert bus.take() == []
    oled.buf[3 * 128 + 5] = 0x81  # a pixel on rows 24 and 31, column 5
    assert [oled.flush(p) for p in range(8)] == [False, False, False, True, False, False, False, False]
    data = bytearray(128)
    data[5] = 0x81
    assert bus.take() == page_write(3, bytes(data))
    assert not oled.flush(3) and bus.take() == []


def test_init_display_resends_every_page():
    bus = FakeI2C()
    oled = ssd1306.SSD1306(bus)
    oled.buf[0] = 0xFF
    bus.take()
    oled.init_display()
    log = bus.take()
    assert log[0] == (ADDR, INIT_128X64) and len(log) == 18 and oled.buf[0] == 0


def test_single_commands():
    bus = FakeI2C()
    oled = ssd1306.SSD1306(bus)
    bus.take()
    oled.contrast(0x7F)
    oled.invert(True)
    oled.invert(False)
    oled.power(False)
    oled.contrast(0x1FF)
    assert bus.take() == [(ADDR, b"\x00\x81\x7f"), (ADDR, b"\x00\xa7"), (ADDR, b"\x00\xa6"), (ADDR, b"\x00\xae"),
                          (ADDR, b"\x00\x81\xff")]
