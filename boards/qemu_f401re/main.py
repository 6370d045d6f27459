# Boot of the emulated MCU board (frozen; the port runs it before the REPL).
# The emulator's command line (QEMU -append) holds the board's options
# (board.py); with "--repl 1" the board stops at the REPL instead, for
# measurements on the bare interpreter with the meter's modules frozen.
import gc
import time

import machine
import semihost

args = semihost.cmdline()
if "--repl 1" not in args:
    # While the firmware starts, a collection every 2 KiB allocated: the
    # garbage of the imports and the build is freed before the next
    # long-lived object is placed, so those pack together and the free heap
    # stays in one piece (docs/mcu.md). The board lifts it once started.
    gc.threshold(2048)
    import board
    from meter.runtime.firmware import run

    # A meter never stops: whatever ends the firmware resets the board (QEMU
    # exits; the host powers it up again, as the unix board's harness does).
    try:
        run(board.from_cmdline(args))
        why = "returned"
    except BaseException as e:  # noqa: BLE001 - the last word before the reset
        why = repr(e)
    print("meter: firmware stopped (%s), resetting" % why)
    time.sleep_ms(100)
    machine.reset()
