# Board support: STM32 NUCLEO-F401RE wired to a Meters and More modem: Microchip's
# PL460 evaluation kit driven by a SAMD20 Xplained Pro (or a PIC32CXMTG-EK) that runs
# Microchip's M&M modem application (metersandmore_modem_hi), on the MicroPython
# stm32 port. The modem runs the data link on air; the firmware talks to it over
# the M&M Host Interface (meter/phy/hi.py). Wiring and bring-up: docs/flashing.md.
#
# Needs the same MicroPython build as boards/nucleo_f401re_plm01a1 (USART1 on
# PA9/PA10, LED1 off PA5).
import binascii
import json
import time

import machine

from meter.compat import const

TYPE_CHECKING = const(False)
if TYPE_CHECKING:  # the type checker's view only (meter/contracts.pyi)
    from meter.contracts import ModemStream, PhyDriver

# Pin map (Nucleo-64 Arduino header names in brackets). The modem side's pins
# are the modem application's: its host UART and its TREQ input (an external
# interrupt, falling edge on the SAMD20).
MODEM_UART_ID = 1  # USART1
MODEM_UART_TX = "PA9"  # USART1_TX -> modem host-UART RX [D8]
MODEM_UART_RX = "PA10"  # USART1_RX <- modem host-UART TX [D2]
T_REQ = "PA5"  # -> modem TREQ input, idle high, pulled low to send [D13]
RESETN = "PA8"  # -> the modem board's reset input, if wired [D7]; else BIO_Reset does it
MODEM_BAUD = 57600  # fixed by the modem application (8N1, no flow control)
MODEM_RXBUF = 1024  # four 262-byte HI frames: a status, a confirm and indications may queue up

STORAGE_DIR = "/flash"
IDENTITY_FILE = STORAGE_DIR + "/identity.json"
_SECONDS_1970_TO_2000 = 946684800
WATCHDOG_MAX_MS = 32000
_RESET_CAUSES = (("PWRON_RESET", "power"), ("WDT_RESET", "watchdog"), ("SOFT_RESET", "soft"))


def _pin(name, *args, **kwargs):
    # "PA5" -> the CPU pin (on Nucleo boards "A5" is the Arduino name of PC0)
    cpu = getattr(getattr(machine.Pin, "cpu", None), name[1:], None)
    return machine.Pin(name if cpu is None else cpu, *args, **kwargs)


class Board:
    name = "nucleo_f401re_pl460"
    storage_dir = STORAGE_DIR

    def __init__(self):
        self.treq = _pin(T_REQ, machine.Pin.OUT, value=1)
        self.resetn = _pin(RESETN, machine.Pin.OUT, value=1)
        self._uart = None
        self._rtc = machine.RTC()
        self._epoch = _SECONDS_1970_TO_2000 if time.gmtime(0)[0] == 2000 else 0

    def modem_uart(self) -> "ModemStream":
        if self._uart is None:
            try:
                self._uart = machine.UART(
                    MODEM_UART_ID, MODEM_BAUD, bits=8, parity=None, stop=1, timeout=0, rxbuf=MODEM_RXBUF
                )
            except ValueError as e:
                raise ValueError("modem UART: %s; this MicroPython build lacks USART1 on PA9/PA10" % e)
        return self._uart  # pyright: ignore[reportReturnType]

    def modem_driver(self) -> "PhyDriver":
        """The M&M Host Interface, Microchip profile (CRC-16 checksum); the modem
        runs the LMON-protected security with the firmware's keys and LMON."""
        from meter.phy import hi

        aca, serial = self.identity()
        return hi.driver(hi.MICROCHIP, aca=aca, serial=serial, modem_security=True)

    def watchdog(self, timeout_ms):
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
        cause = machine.reset_cause()
        for name, text in _RESET_CAUSES:
            if getattr(machine, name, None) == cause:
                return text
        return "other"

    def unix_time(self):
        y, mo, d, _wd, h, mi, s, _sub = self._rtc.datetime()
        return time.mktime((y, mo, d, h, mi, s, 0, 0, 0)) + self._epoch

    def set_unix_time(self, t):
        tm = time.gmtime(int(t) - self._epoch)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))

    def power_w(self):
        # No metrology front end on this bench: a metering IC driver plugs in here.
        return (0, 0)

    def identity(self):
        """(aca: 6 bytes, natural order, serial: str) from IDENTITY_FILE, else derived
        from the STM32 unique ID as on boards/nucleo_f401re_plm01a1."""
        try:
            with open(IDENTITY_FILE) as f:
                doc = json.load(f)
        except OSError:
            return self._derived_identity()
        try:
            aca = bytes(binascii.unhexlify(doc["aca"]))
            if len(aca) != 6 or aca[0] == 0x03:
                raise ValueError("aca")
            return aca, str(doc.get("serial") or "NUC-" + binascii.hexlify(aca).decode().upper())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                '%s: expected {"aca": "12 hex digits, first byte not 03", "serial": "..."}' % IDENTITY_FILE
            )

    def _derived_identity(self):
        uid = machine.unique_id()
        lot = 0
        for b in uid[5:]:
            lot ^= b
        aca = bytearray(uid[:5])
        aca.append(lot)
        if aca[0] == 0x03:
            aca[0] ^= 0x80
        aca = bytes(aca)
        return aca, "NUC-" + binascii.hexlify(aca).decode().upper()

    def pins(self):
        return {
            "uart": "USART1 %d 8N1" % MODEM_BAUD,
            "uart_tx": MODEM_UART_TX,
            "uart_rx": MODEM_UART_RX,
            "t_req": T_REQ,
            "resetn": RESETN,
            "modem": "Meters and More Host Interface, Microchip CRC-16",
        }
