# Image of the emulated board (MicroPython unix port). main.py is not compiled:
# it is the script the harness runs.
metadata(description="smitp-meter firmware, emulated board (MicroPython unix port)")
package("meter", base_path="$(PROJECT)/firmware")
module("board.py", base_path="$(BOARD_DIR)")
