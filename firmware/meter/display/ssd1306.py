# SSD1306 OLED controller on I2C (128 x 64 or 128 x 32 panels), written from
# the command table of the Solomon Systech SSD1306 datasheet (rev 1.1,
# sections 8-10) and its application note's power-up sequence.
#
# The bus is injected: anything with writeto(addr, buf) and
# writevto(addr, bufs), as machine.I2C and machine.SoftI2C have. `buf` is the
# frame in the controller's own GDDRAM layout (one byte = 8 pixels down, 128
# bytes a page): wrap it in framebuf.FrameBuffer(buf, w, h, MONO_VLSB) to draw.
# flush(page) sends one page, and only if it changed since it was last sent,
# so a caller can yield between pages (each is ~3 ms of bus time at 400 kHz).
from meter.compat import const

ADDRESS = const(0x3C)  # 7-bit address with SA0 low (0x3D with SA0 high)

# I2C control byte (datasheet 8.1.5): Co = 0, then D/C# selects the stream
_CTRL_CMD = const(0x00)
_CTRL_DATA = const(0x40)

# fundamental commands (datasheet 10.1)
SET_CONTRAST = const(0x81)  # + contrast 0..255
DISPLAY_FOLLOW_RAM = const(0xA4)  # 0xA5 would light every pixel whatever the RAM holds
SET_NORMAL = const(0xA6)  # 0xA7: inverse
DISPLAY_OFF = const(0xAE)  # 0xAF: on
DEACTIVATE_SCROLL = const(0x2E)
# addressing (10.1.3, 10.1.4, 10.1.5)
SET_MEMORY_MODE = const(0x20)  # + 0 horizontal, 1 vertical, 2 page
SET_COLUMN_RANGE = const(0x21)  # + first, last column
SET_PAGE_RANGE = const(0x22)  # + first, last page
# hardware configuration (10.1.6 - 10.1.18)
SET_START_LINE = const(0x40)  # | line 0..63
SET_SEGMENT_REMAP = const(0xA1)  # column 127 drives SEG0 (0xA0: column 0)
SET_MUX_RATIO = const(0xA8)  # + rows - 1
SET_COM_SCAN_REMAPPED = const(0xC8)  # scan COM[N-1] to COM0 (0xC0: COM0 first)
SET_DISPLAY_OFFSET = const(0xD3)  # + vertical shift 0..63
SET_COM_PINS = const(0xDA)  # + 0x02 sequential (128 x 32), 0x12 alternative (128 x 64)
# timing and driving (10.1.16 - 10.1.19, charge pump: application note)
SET_CLOCK = const(0xD5)  # + (oscillator frequency << 4) | (divide ratio - 1)
SET_PRECHARGE = const(0xD9)  # + (phase 2 << 4) | phase 1, in display clocks
SET_VCOMH = const(0xDB)  # + deselect level: 0x00 0.65, 0x20 0.77, 0x30 0.83 x VCC
SET_CHARGE_PUMP = const(0x8D)  # + 0x14 enable (internal VCC), 0x10 disable

_CONTRAST_INTERNAL = const(0xCF)
_CONTRAST_EXTERNAL = const(0x9F)


class SSD1306:
    def __init__(self, i2c, width=128, height=64, addr=ADDRESS, external_vcc=False):
        if width != 128 or height not in (32, 64):
            raise ValueError("SSD1306 panels here are 128 x 64 or 128 x 32")
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.pages = height // 8
        self.parts = self.pages  # the board's display interface: flush(part) per page
        self.external_vcc = external_vcc
        self.buf = bytearray(width * self.pages)
        self._sent = bytearray(len(self.buf))  # what the panel holds
        self._valid = 0  # pages whose content in _sent is known to be on the panel
        self._cmd = bytearray(8)
        self._data_ctrl = bytes((_CTRL_DATA,))
        self.init_display()

    def _command(self, *codes):
        c = self._cmd
        c[0] = _CTRL_CMD
        for i in range(len(codes)):
            c[i + 1] = codes[i]
        self.i2c.writeto(self.addr, memoryview(c)[0:len(codes) + 1])

    def init_display(self):
        """The power-up sequence; the panel is cleared and switched on."""
        ext = self.external_vcc
        self.i2c.writeto(self.addr, bytes((
            _CTRL_CMD,
            DISPLAY_OFF,
            SET_CLOCK, 0x80,  # reset oscillator frequency, divide by 1
            SET_MUX_RATIO, self.height - 1,
            SET_DISPLAY_OFFSET, 0x00,
            SET_START_LINE | 0,
            SET_CHARGE_PUMP, 0x10 if ext else 0x14,
            SET_MEMORY_MODE, 0x00,  # horizontal: a page is sent in one data stream
            SET_SEGMENT_REMAP,
            SET_COM_SCAN_REMAPPED,
            SET_COM_PINS, 0x12 if self.height == 64 else 0x02,
            SET_CONTRAST, _CONTRAST_EXTERNAL if ext else _CONTRAST_INTERNAL,
            SET_PRECHARGE, 0x22 if ext else 0xF1,
            SET_VCOMH, 0x30,
            DISPLAY_FOLLOW_RAM,
            SET_NORMAL,
            DEACTIVATE_SCROLL,
        )))
        for i in range(len(self.buf)):
            self.buf[i] = 0
        self._valid = 0
        self.show()
        self.power(True)

    def power(self, on):
        self._command(DISPLAY_OFF | (1 if on else 0))

    def contrast(self, level):
        self._command(SET_CONTRAST, level & 0xFF)

    def invert(self, on):
        self._command(SET_NORMAL | (1 if on else 0))

    def flush(self, page):
        """Send page `page` of buf if it changed; return True if it was sent."""
        a = page * self.width
        b = a + self.width
        bit = 1 << page
        if self._valid & bit and self.buf[a:b] == self._sent[a:b]:
            return False
        self._command(SET_COLUMN_RANGE, 0, self.width - 1, SET_PAGE_RANGE, page, page)
        self.i2c.writevto(self.addr, (self._data_ctrl, memoryview(self.buf)[a:b]))
        self._sent[a:b] = self.buf[a:b]
        self._valid |= bit
        return True

    def show(self):
        """Send every page that changed."""
        for page in range(self.pages):
            self.flush(page)
