# Entry point of the emulated board:
#   micropython boards/unix/main.py --uart fd:N --pins fd:M --flash IMAGE --aca HEX12 --serial S
#       [--import-w W] [--export-w W] [--display DUMPFILE] [--control fd:K] [--optical fd:O] [--bnode fd:B]
#       [--load W1,W2,W3] [--mains FILE] [--time-scale N] [--reset-cause power|watchdog|soft|other]
#       [--modem st7580|hi|hi-sum|hi-sec]
# It is also the board's loader: the flash may hold downloaded firmware in a
# slot (meter/slots.py); the slot to run is chosen before the firmware is
# imported, and a slot (on trial or not) runs under the watchdog from its
# first import: a hang resets the board, and the chooser counts the restarts.
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_here, _here + "/../../firmware"):
    if _p not in sys.path:
        sys.path.append(_p)

import board  # noqa: E402
from meter import slots  # noqa: E402
from meter.storage import Store  # noqa: E402
from meter.timers import WATCHDOG_MS  # noqa: E402

_board = board.from_argv(sys.argv)  # mounts the flash
_slot, _trial = slots.choose(Store(_board.storage_dir), _board.reset_cause())
if _slot:
    _board.watchdog(WATCHDOG_MS)  # a hang while importing a slot's firmware resets the board
if _slot:
    sys.path.insert(0, _board.storage_dir + "/" + slots.folder(_slot))
    for _name in list(sys.modules):  # the loader's modules: the slot brings its own
        if _name == "meter" or _name.startswith("meter."):
            del sys.modules[_name]
    print("meter: running slot", _slot, "(on trial)" if _trial else "")

try:
    from meter.runtime.firmware import run
except Exception as e:  # a slot whose firmware does not import
    if not _slot:
        raise
    print("meter: slot", _slot, "does not start:", repr(e))
    if _trial:  # a new one: back to the previous one at once
        slots.Boot(Store(_board.storage_dir)).rollback(slots.FAIL_START)
    raise SystemExit(1)  # a confirmed one: the restart is counted (slots.MAX_STARTS)

run(_board)
