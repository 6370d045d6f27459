import time

import board
import machine
from meter.runtime.firmware import run

# A meter never stops: whatever ends the firmware (an error, SystemExit) resets
# the board, except Ctrl-C, which leaves a developer at the REPL.
try:
    run(board.Board())
    why = "returned"
except KeyboardInterrupt:
    raise
except BaseException as e:
    why = repr(e)
print("meter: firmware stopped (%s), resetting" % why)
time.sleep_ms(100)  # let the line leave the console
machine.reset()
