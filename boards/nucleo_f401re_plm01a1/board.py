# Board support: STM32 NUCLEO-F401RE + X-NUCLEO-PLM01A1 (ST7580 PLC modem) on the
# MicroPython stm32 port. The firmware reaches the hardware only through Board.
#
# Needs a MicroPython build with USART1 on PA9/PA10: the official NUCLEO_F401RE
# build only has UART2 (the ST-LINK console) and UART6 (docs/flashing.md).
import binascii
import json
import time

import machine

# Pin map, from the shield's BSP header stm32_plm01a1.h (X-CUBE-PLM1 V1.1.0).
# Nucleo-64 Arduino header names in brackets.
MODEM_UART_ID = 1  # USART1
MODEM_UART_TX = "PA9"  # USART1_TX -> ST7580 RXD [D8]
MODEM_UART_RX = "PA10"  # USART1_RX <- ST7580 TXD [D2]
T_REQ = "PA5"  # T_REQ, active low [D13]; also drives the Nucleo's green LED LD2
RESETN = "PA8"  # ST7580 RESETN, active low [D7]
PL_TX_ON = "PC0"  # ST7580 output: power-line transmission in progress [A5]
PL_RX_ON = "PC1"  # ST7580 output: power-line reception in progress [A4]

# 57600 8N1: the modem samples BR0 = BR1 = high after reset (stm32_plm01a1.h runs 57600).
MODEM_BAUD = 57600
# 57600 baud / 10 bits = 5760 B/s; 50 ms of scheduling latency = 288 B, rounded
# up to 512 (also more than one 260-byte maximum ST7580 local frame).
MODEM_RXBUF = 512

STORAGE_DIR = "/flash"  # the stm32 port mounts its internal flash filesystem here
IDENTITY_FILE = STORAGE_DIR + "/identity.json"

_SECONDS_1970_TO_2000 = 946684800


def _pin(name, *args, **kwargs):
    # "PA5" -> the CPU pin. Not machine.Pin("A5"): on Nucleo boards "A5" is the
    # Arduino name of PC0.
    cpu = getattr(getattr(machine.Pin, "cpu", None), name[1:], None)
    return machine.Pin(name if cpu is None else cpu, *args, **kwargs)


def _hex(b):
    return binascii.hexlify(b).decode().upper()


class Board:
    name = "nucleo_f401re_plm01a1"
    storage_dir = STORAGE_DIR

    def __init__(self):
        # Both outputs idle high: T_REQ released, modem out of reset.
        self.treq = _pin(T_REQ, machine.Pin.OUT, value=1)
        self.resetn = _pin(RESETN, machine.Pin.OUT, value=1)
        self._uart = None
        self._rtc = machine.RTC()
        # time.mktime/gmtime count from the port's epoch: 2000 on the stm32 port.
        self._epoch = _SECONDS_1970_TO_2000 if time.gmtime(0)[0] == 2000 else 0

    def modem_uart(self):
        if self._uart is None:
            try:
                self._uart = machine.UART(
                    MODEM_UART_ID, MODEM_BAUD, bits=8, parity=None, stop=1, timeout=0, rxbuf=MODEM_RXBUF
                )
            except ValueError as e:
                raise ValueError("modem UART: %s; this MicroPython build lacks USART1 on PA9/PA10" % e)
        return self._uart

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
        }
