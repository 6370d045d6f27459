# Board support: STM32 NUCLEO-F401RE + X-NUCLEO-PLM01A1 (ST7580 PLC modem) on the
# MicroPython stm32 port. The firmware reaches the hardware only through Board.
#
# Needs a MicroPython build with USART1 on PA9/PA10: the official NUCLEO_F401RE
# build only has UART2 (the ST-LINK console) and UART6 (docs/flashing.md).
import binascii
import json
import time

import machine

from meter import timers as T
from meter.compat import const

TYPE_CHECKING = const(False)
if TYPE_CHECKING:  # the type checker's view only (meter/contracts.pyi)
    from meter.contracts import ModemStream

# Pin map, from the shield's BSP header stm32_plm01a1.h (X-CUBE-PLM1 V1.1.0).
# Nucleo-64 Arduino header names in brackets.
MODEM_UART_ID = 1  # USART1
MODEM_UART_TX = "PA9"  # USART1_TX -> ST7580 RXD [D8]
MODEM_UART_RX = "PA10"  # USART1_RX <- ST7580 TXD [D2]
T_REQ = "PA5"  # T_REQ, active low [D13]; also drives the Nucleo's green LED LD2
RESETN = "PA8"  # ST7580 RESETN, active low [D7]
PL_TX_ON = "PC0"  # ST7580 output: power-line transmission in progress [A5]
PL_RX_ON = "PC1"  # ST7580 output: power-line reception in progress [A4]

# Display and push-button (the shield's pin map above uses none of these pins):
# an SSD1306 128 x 64 OLED module on the Arduino I2C pins, and the Nucleo's
# blue user button B1 (to ground, pulled up on the board: pressed reads 0).
OLED_I2C_ID = 1  # I2C1
OLED_SCL = "PB8"  # I2C1_SCL [D15]
OLED_SDA = "PB9"  # I2C1_SDA [D14]
OLED_I2C_FREQ = 400000
OLED_ADDRESS = 0x3C  # SA0 low; 0x3D on modules with SA0 high
BUTTON = "PC13"  # B1 USER

# 57600 8N1: the modem samples BR0 = BR1 = high after reset (stm32_plm01a1.h runs 57600).
MODEM_BAUD = 57600
# 57600 baud / 10 bits = 5760 B/s; 50 ms of scheduling latency = 288 B, rounded
# up to 512 (also more than one 260-byte maximum ST7580 local frame).
MODEM_RXBUF = 512

# The optical port (IEC 62056-21 optical head: IR LED and photodiode with a
# UART interface) on USART6, pins the PLM01A1 shield leaves free: TX PC6
# (morpho CN10 pin 4), RX PC7 [D9]. The UART frames 7E1 itself at sign-on
# (7 data bits plus even parity) and 8N1 in mode F.
OPTICAL_UART_ID = 6  # USART6
OPTICAL_TX = "PC6"
OPTICAL_RX = "PC7"
OPTICAL_RXBUF = 256  # two mode F frames

STORAGE_DIR = "/flash"  # the stm32 port mounts its internal flash filesystem here
IDENTITY_FILE = STORAGE_DIR + "/identity.json"

_SECONDS_1970_TO_2000 = 946684800
# The IWDG counts LSI/256 (about 8 ms) in 12 bits: the port refuses more than 32767 ms.
WATCHDOG_MAX_MS = 32000
# machine.reset_cause() values by name; a port without one of them never reports it
_RESET_CAUSES = (("PWRON_RESET", "power"), ("WDT_RESET", "watchdog"), ("SOFT_RESET", "soft"))


def _pin(name, *args, **kwargs):
    # "PA5" -> the CPU pin. Not machine.Pin("A5"): on Nucleo boards "A5" is the
    # Arduino name of PC0.
    cpu = getattr(getattr(machine.Pin, "cpu", None), name[1:], None)
    return machine.Pin(name if cpu is None else cpu, *args, **kwargs)


def _hex(b):
    return binascii.hexlify(b).decode().upper()


class OledDisplay:
    """The display model (meter/display/lcd.py, OLED layout) on an SSD1306; flush()
    sends one 8-row page, so the firmware yields between pages."""

    def __init__(self, i2c):
        import framebuf
        from meter.display.lcd import OLED, Panel
        from meter.display.ssd1306 import SSD1306

        w, h = OLED["size"]
        self.oled = SSD1306(i2c, w, h, OLED_ADDRESS)
        self.fb = framebuf.FrameBuffer(self.oled.buf, w, h, framebuf.MONO_VLSB)
        self.panel = Panel(self.fb, OLED, on=1, ghost=0, off=0)
        self.parts = self.oled.parts

    def show(self, screen):
        self.panel.draw(screen)

    def flush(self, part):
        self.oled.flush(part)


class PinButton:
    """A push-button to ground on a pulled-up input: an edge interrupt wakes
    wait(), which reports a level once it held BUTTON_DEBOUNCE_MS."""

    def __init__(self, pin):
        import asyncio

        self._pin = pin
        self._flag = asyncio.ThreadSafeFlag()
        self._level = 0  # released
        pin.irq(self._edge, machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)

    def _edge(self, _pin):
        self._flag.set()  # the only thing an interrupt handler does

    async def wait(self):
        """The next debounced level: 1 pressed, 0 released."""
        import asyncio

        while True:
            await self._flag.wait()
            await asyncio.sleep_ms(T.BUTTON_DEBOUNCE_MS)
            level = 1 - self._pin.value()
            if level != self._level:
                self._level = level
                return level


class Board:
    name = "nucleo_f401re_plm01a1"
    storage_dir = STORAGE_DIR

    def __init__(self):
        # Both outputs idle high: T_REQ released, modem out of reset.
        self.treq = _pin(T_REQ, machine.Pin.OUT, value=1)
        self.resetn = _pin(RESETN, machine.Pin.OUT, value=1)
        self._uart = None
        self._optical = None
        self._button = None
        self._rtc = machine.RTC()
        # time.mktime/gmtime count from the port's epoch: 2000 on the stm32 port.
        self._epoch = _SECONDS_1970_TO_2000 if time.gmtime(0)[0] == 2000 else 0

    def modem_uart(self) -> "ModemStream":
        if self._uart is None:
            try:
                self._uart = machine.UART(
                    MODEM_UART_ID, MODEM_BAUD, bits=8, parity=None, stop=1, timeout=0, rxbuf=MODEM_RXBUF
                )
            except ValueError as e:
                raise ValueError("modem UART: %s; this MicroPython build lacks USART1 on PA9/PA10" % e)
        # A machine.UART is a MicroPython stream: write(buf, n) writes buf[0:n]
        # (the contract's form). Its stub lists write(buf) only.
        return self._uart  # pyright: ignore[reportReturnType]

    def optical_uart(self):
        if self._optical is None:
            self._optical = machine.UART(
                OPTICAL_UART_ID, 300, bits=7, parity=0, stop=1, timeout=0, rxbuf=OPTICAL_RXBUF
            )
        return self._optical

    def set_optical_line(self, baud, seven_e1):
        self.optical_uart().init(
            baud, bits=7 if seven_e1 else 8, parity=0 if seven_e1 else None, stop=1, timeout=0, rxbuf=OPTICAL_RXBUF
        )

    def watchdog(self, timeout_ms):
        """Arm the IWDG: from now on only a reset stops it; feed() it in time."""
        return machine.WDT(timeout=max(1, min(int(timeout_ms), WATCHDOG_MAX_MS)))

    def serves_download(self):
        # No downloaded slot ever runs here: the board starts the firmware frozen into its flash,
        # and a slot (~150 KB of modules) fits neither the 64 KiB flash filesystem nor, loaded
        # from it, the 80 KiB heap. The engine is left out, its RAM with it; REPROG is answered
        # NACK 6 (docs/flashing.md "Software download", docs/mcu.md).
        return False

    def serves_dlms(self):
        # The F401RE's 96 KB of RAM holds the Original-SMITP profile; with the
        # DLMS/COSEM profile beside it the heap runs out at start (docs/mcu.md).
        return False

    def reset_cause(self):
        """Why the board started: "power", "watchdog", "soft" or "other" (reset pin, wake-up)."""
        cause = machine.reset_cause()
        for name, text in _RESET_CAUSES:
            if getattr(machine, name, None) == cause:
                return text
        return "other"

    def display(self):
        """The OLED, or None when no SSD1306 answers on the I2C bus."""
        i2c = machine.I2C(OLED_I2C_ID, freq=OLED_I2C_FREQ)
        if OLED_ADDRESS not in i2c.scan():
            return None
        return OledDisplay(i2c)

    def button(self):
        if self._button is None:
            self._button = PinButton(_pin(BUTTON, machine.Pin.IN))
        return self._button

    def unix_time(self):
        # RTC.datetime(): (year, month, day, weekday 1-7, hour, minute, second, subsecond)
        y, mo, d, _wd, h, mi, s, _sub = self._rtc.datetime()
        return time.mktime((y, mo, d, h, mi, s, 0, 0, 0)) + self._epoch

    def set_unix_time(self, t):
        tm = time.gmtime(int(t) - self._epoch)  # weekday tm[6]: 0 = Monday
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))

    def power_w(self):
        # The shield has no metrology front end. A metering IC driver (for example
        # ST's STPM3x on SPI or UART) plugs in here: read its active power and
        # return (import_w, export_w), both non-negative.
        return (0, 0)

    def identity(self):
        """(aca: 6 bytes, natural order, serial: str) from IDENTITY_FILE, else derived."""
        try:
            with open(IDENTITY_FILE) as f:
                doc = json.load(f)
        except OSError:  # not provisioned
            return self._derived_identity()
        try:
            aca = bytes(binascii.unhexlify(doc["aca"]))
            if len(aca) != 6 or aca[0] == 0x03:
                raise ValueError("aca")
            return aca, str(doc.get("serial") or "NUC-" + _hex(aca))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                '%s: expected {"aca": "12 hex digits, first byte not 03", "serial": "..."}' % IDENTITY_FILE
            )

    def _derived_identity(self):
        # STM32 unique ID (12 bytes): wafer X/Y (0-3), wafer number (4), lot
        # number (5-11, ASCII). Boards of one lot share the lot bytes, so the ACA
        # keeps the 5 bytes that differ between dies and folds the lot into one.
        uid = machine.unique_id()
        lot = 0
        for b in uid[5:]:
            lot ^= b
        aca = bytearray(uid[:5])
        aca.append(lot)
        if aca[0] == 0x03:  # a first byte 0x03 marks a logical (SCA) address
            aca[0] ^= 0x80
        aca = bytes(aca)
        return aca, "NUC-" + _hex(aca)

    def pins(self):
        return {
            "uart": "USART1 %d 8N1" % MODEM_BAUD,
            "uart_tx": MODEM_UART_TX,
            "uart_rx": MODEM_UART_RX,
            "t_req": T_REQ,
            "resetn": RESETN,
            "pl_tx_on": PL_TX_ON,
            "pl_rx_on": PL_RX_ON,
            "oled_i2c": "I2C%d 0x%02X %d Hz" % (OLED_I2C_ID, OLED_ADDRESS, OLED_I2C_FREQ),
            "oled_scl": OLED_SCL,
            "oled_sda": OLED_SDA,
            "button": BUTTON,
            "optical_uart": "USART%d 300 7E1 (mode F: 8N1)" % OPTICAL_UART_ID,
            "optical_tx": OPTICAL_TX,
            "optical_rx": OPTICAL_RX,
        }
