# Image of NUCLEO-F401RE + X-NUCLEO-PLM01A1 (MicroPython stm32 port). main.py is
# not compiled: the stm32 port runs main.py at boot, so deploy copies it as source.
metadata(description="smitp-meter firmware, NUCLEO-F401RE + X-NUCLEO-PLM01A1 (ST7580)")
package("meter", base_path="$(PROJECT)/firmware")
module("board.py", base_path="$(BOARD_DIR)")
