# Entry point of an emulated board for test_watchdog.py, in place of
# boards/unix/main.py (same command line). At a power-up the serial number
# says what goes wrong: "hang" arms a 500 ms watchdog, feeds it a few times,
# then stops feeding; "raise" raises. After a reset the board says why it
# started and idles, the watchdog not armed.
import sys
import time

ROOT = __file__.rsplit("/", 3)[0]
sys.path.append(ROOT + "/boards/unix")
sys.path.append(ROOT + "/firmware")

import board  # noqa: E402

b = board.from_argv(sys.argv)
cause = b.reset_cause()
print("test board: started after", cause)
if cause == "power":
    if b.identity()[1] == "raise":
        raise RuntimeError("test board: failing on purpose")
    wdt = b.watchdog(500)
    for _ in range(6):
        time.sleep_ms(150)
        wdt.feed()
    print("test board: feeding stopped")
while True:
    time.sleep(1)
