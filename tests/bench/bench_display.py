# One display refresh on MicroPython (micropython tests/bench/bench_display.py):
# - Display.poll: timers, messages, alarms, and composing the screen of a
#   changing energy value (every poll changes it) or of a moving message;
# - Panel.draw of that screen into the emulated board's LCD framebuf
#   (200 x 72, GS2) and into the OLED's (128 x 64, MONO_VLSB);
# - SSD1306.flush of the 8 pages on a bus that takes the bytes at once (the
#   CPU share; the bus itself takes ~3 ms a page at 400 kHz).
# Median and p95 time per call and heap allocated per call (GC disabled).
import gc
import sys

import framebuf

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")

from meter.display import manager as D  # noqa: E402
from meter.display import lcd  # noqa: E402
from meter.model import registers as R  # noqa: E402
from meter.compat import ticks_diff, ticks_us  # noqa: E402
from meter.model.datamodel import DataModel  # noqa: E402
from meter.display.ssd1306 import SSD1306  # noqa: E402
from meter.storage import Store  # noqa: E402

N = 500


class NullI2C:
    def writeto(self, addr, buf):
        pass

    def writevto(self, addr, bufs):
        pass


def measure(name, fn):
    for i in range(20):
        fn(i)
    samples = [0] * N
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for i in range(N):
        t0 = ticks_us()
        fn(i)
        samples[i] = ticks_diff(ticks_us(), t0)
    a1 = gc.mem_alloc()
    gc.enable()
    samples.sort()
    print("%-40s median %5d us  p95 %5d us  %5d bytes a call" % (name, samples[N // 2], samples[N * 95 // 100],
                                                                 (a1 - a0) // N))


def main():
    model = DataModel("SN0042", b"\xa8\x04\x0a\x1e\x89\x01", "fw", Store(), lambda: 1700000000)
    disp = D.Display(model)
    w, h = lcd.LCD["size"]
    lcd_fb = framebuf.FrameBuffer(bytearray(w * h // 4), w, h, framebuf.GS2_HMSB)
    lcd_panel = lcd.Panel(lcd_fb, lcd.LCD, 3, 1, 0)
    oled = SSD1306(NullI2C())
    oled_panel = lcd.Panel(framebuf.FrameBuffer(oled.buf, 128, 64, framebuf.MONO_VLSB), lcd.OLED)
    disp.poll(0)

    def poll_value(i):
        model.set(R.ENERGY_IMPORT, 1000 * i + 7, persist=False)
        disp.poll(1000 * (i + 1))

    measure("Display.poll, value changed", poll_value)
    measure("Panel.draw, LCD (GS2 200 x 72)", lambda i: lcd_panel.draw(disp.screen))
    measure("Panel.draw, OLED (mono 128 x 64)", lambda i: oled_panel.draw(disp.screen))

    def flush_all(i):
        oled.buf[i % 1024] ^= 0xFF  # one page changed
        for p in range(8):
            oled.flush(p)

    measure("SSD1306.flush x 8 (one page changed)", flush_all)
    model.set(R.DISPLAY_MESSAGE, bytes((D.PRIO_HIGH, 0, 0)) + b"PLANNED WORKS ON YOUR LINE 3 JUL", persist=False)
    disp.written(R.DISPLAY_MESSAGE)
    t = [10 ** 6]

    def poll_marquee(i):
        t[0] += 400
        disp.poll(t[0])

    measure("Display.poll, message moving", poll_marquee)


main()
