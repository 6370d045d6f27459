# Image of NUCLEO-F401RE + a Meters and More modem (PL460-EK, M&M modem application) (MicroPython stm32 port). Works both
# for `make image` (.mpy files to copy) and as FROZEN_MANIFEST of a MicroPython
# firmware build (docs/flashing.md): the code then runs from flash, which this
# board needs, its 96 KB of RAM being too small for the firmware's bytecode.
# main.py is not compiled: the stm32 port runs main.py at boot from /flash.
metadata(description="smitp-meter firmware, NUCLEO-F401RE + a Meters and More modem (PL460-EK, M&M modem application) (M&M Host Interface)")
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)
package("meter", base_path="../../firmware")
module("board.py")
