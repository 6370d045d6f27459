# Firmware timers in one place (the ST7580 local-port timers TIC/TACK/TSR are
# the driver's defaults in meter/st7580.py, from the modem manual).
from meter.compat import const

MODEM_RESET_PULSE_MS = const(10)  # RESETN low time (the modem needs >= 1 us)
MODEM_BOOT_WAIT_MS = const(4000)  # wait for BIO_ResetIndication before pulsing again
METERING_PERIOD_MS = const(1000)  # metrology sample and energy integration
ENERGY_PERSIST_S = const(300)  # energy registers written to flash at most this often
GC_PERIOD_MS = const(5000)  # collect garbage when the meter is idle
