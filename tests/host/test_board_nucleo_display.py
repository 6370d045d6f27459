"""The Nucleo board's display and button glue on the real MicroPython
interpreter (real framebuf, real SSD1306 driver), with a fake `machine`: an
I2C bus that records, and a button pin whose interrupt the script fires.
The OLED's frame is saved as artifacts/display/oled.png and compared with
its reference image, like the emulated board's pictures."""

import json
import os
import subprocess

from test_display_pictures import ARTIFACTS, REFS, same_picture
from tools import ROOT, micropython_path

from smitp.png import write_png

OLED_PALETTE = [(8, 10, 14), (140, 210, 255)]  # dark panel, lit pixel

SCRIPT = r"""
import sys, json
sys.path[:0] = [%(board)r, %(firmware)r]

class Pin:
    OUT, IN, IRQ_FALLING, IRQ_RISING = 1, 0, 2, 1
    made = {}
    class cpu:
        A5, A8, C13 = "cpu.A5", "cpu.A8", "cpu.C13"
    def __init__(self, name, mode=None, value=None):
        self.name, self.mode, self.level, self.handler = name, mode, 1 if value is None else value, None
        Pin.made[name] = self
    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
    def irq(self, handler, trigger):
        self.handler, self.trigger = handler, trigger

class I2C:
    log = []
    def __init__(self, bus, freq):
        I2C.bus, I2C.freq = bus, freq
    def scan(self):
        return [0x3C]
    def writeto(self, addr, buf):
        I2C.log.append((addr, bytes(buf)))
    def writevto(self, addr, bufs):
        I2C.log.append((addr, b"".join(bytes(b) for b in bufs)))

class RTC:
    def datetime(self, dt=None):
        return (2000, 1, 1, 6, 0, 0, 0, 0)

class machine:
    pass
machine.Pin, machine.I2C, machine.RTC = Pin, I2C, RTC
machine.unique_id = lambda: b"0123456789AB"
sys.modules["machine"] = machine

import asyncio
import board
from meter.display import screen as SC

b = board.Board()
d = b.display()
s = SC.Screen()
s.code, s.value, s.unit, s.line = "1.8.0", "1234.567", "kWh", "ACTIVE IMPORT"
d.show(s)
I2C.log = []
for part in range(d.parts):
    d.flush(part)
pages = [(data[5], len(I2C.log[i + 1][1])) for i, (addr, data) in enumerate(I2C.log) if data[:2] == b"\x00\x21"]
lit = sum(bin(x).count("1") for x in d.oled.buf)
I2C.log = []
d.show(s)
for part in range(d.parts):
    d.flush(part)
again = len(I2C.log)

btn = b.button()
pin = Pin.made["cpu.C13"]
levels = []
async def press():
    pin.level = 0          # pressed: the pull-up loses
    pin.handler(pin)
    levels.append(await btn.wait())
    pin.level = 1
    pin.handler(pin)
    pin.handler(pin)       # a bounce
    levels.append(await btn.wait())
asyncio.run(press())
import binascii
print(json.dumps({"oled": binascii.hexlify(d.oled.buf).decode(), "bus": I2C.bus, "freq": I2C.freq,
                  "pages": pages, "lit": lit, "again": again, "levels": levels, "trigger": pin.trigger,
                  "pins": b.pins()}))
"""


def test_oled_and_button_of_the_nucleo_board():
    script = SCRIPT % {"board": ROOT + "/boards/nucleo_f401re_plm01a1", "firmware": ROOT + "/firmware"}
    r = subprocess.run([micropython_path(), "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["bus"] == 1 and out["freq"] == 400000
    # control byte + 128 columns for each page that differs from the cleared panel
    # (rows 24-31, between the identifier and the value, stay blank)
    assert out["pages"] == [[p, 129] for p in (0, 1, 2, 4, 5, 6, 7)]
    assert out["lit"] > 300  # 8 large digits, a code, a unit and a line of text
    assert out["again"] == 0  # nothing changed: nothing sent
    assert out["levels"] == [1, 0] and out["trigger"] == 3
    pins = out["pins"]
    assert (pins["oled_scl"], pins["oled_sda"], pins["button"]) == ("PB8", "PB9", "PC13")
    assert pins["oled_i2c"] == "I2C1 0x3C 400000 Hz"
    buf = bytes.fromhex(out["oled"])  # MONO_VLSB: a byte is 8 rows of one column
    pixels = bytes((buf[(y // 8) * 128 + x] >> (y % 8)) & 1 for y in range(64) for x in range(128))
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "oled.png")
    write_png(path, 128, 64, pixels, OLED_PALETTE, scale=4)
    same_picture(path, os.path.join(REFS, "oled.png"), "1.8.0 1234.567 kWh ACTIVE IMPORT")
