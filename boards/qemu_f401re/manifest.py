# Frozen into the emulated MCU image (boards/qemu_f401re/build.sh): asyncio,
# the meter package, this board and its boot script.
metadata(description="smitp-meter firmware, emulated Cortex-M4 with the NUCLEO-F401RE's memory (QEMU)")
include("$(MPY_DIR)/extmod/asyncio")
package("meter", base_path="../../firmware")
module("board.py")
module("main.py")
