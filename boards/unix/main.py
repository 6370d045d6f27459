# Entry point of the emulated board:
#   micropython boards/unix/main.py --uart fd:N --pins fd:M --flash IMAGE --aca HEX12 --serial S
#       [--import-w W] [--export-w W] [--display DUMPFILE] [--control fd:K] [--optical fd:O]
#       [--load W1,W2,W3] [--mains FILE] [--time-scale N] [--reset-cause power|watchdog|soft|other]
#       [--modem st7580|hi|hi-sum|hi-sec]
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_here, _here + "/../../firmware"):
    if _p not in sys.path:
        sys.path.append(_p)

import board  # noqa: E402
from meter.runtime.firmware import run  # noqa: E402

run(board.from_argv(sys.argv))
