# Firmware timers in one place (the ST7580 local-port timers TIC/TACK/TSR are
# the driver's defaults in meter/phy/st7580.py, from the modem manual).
from meter.compat import const

MODEM_RESET_PULSE_MS = const(10)  # RESETN low time (the modem needs >= 1 us)
MODEM_BOOT_WAIT_MS = const(4000)  # wait for BIO_ResetIndication before pulsing again
METERING_PERIOD_MS = const(1000)  # metrology sample and energy integration
ENERGY_PERSIST_S = const(300)  # energy registers written to flash at most this often
# data model (docs/data-model.md "Persistence"): writes the concentrator asks for
# (WRITE, WRITETAB, SETTAB, RESETTAB, COMMAND) spend a token; one comes back every
# WRITE_REFILL_S, at most WRITE_BURST are kept; none left: NACK 8 (busy).
# Authenticated and plain requests (broadcasts included) have a budget each,
# so that plain traffic, which anyone can send, never starves the utility's.
WRITE_BURST = const(60)
WRITE_REFILL_S = const(60)
PLAIN_WRITE_BURST = const(10)
PLAIN_WRITE_REFILL_S = const(300)
# NACK-10 and CHL.RESP (docs/security.md): a burst, then one per refill; beyond: silence
AUTH_NACK_BURST = const(4)
AUTH_NACK_REFILL_MS = const(2000)
# The watchdog (boards arm it): fed while the modem and metering tasks make progress
WATCHDOG_MS = const(8000)
TASK_RESTART_MS = const(1000)  # a supervised task that died starts again after this
GC_PERIOD_MS = const(5000)  # collect garbage when the meter is idle
ELABORATION_MS = const(20)  # TEL: a node's time to answer or repeat (public Microchip default)
NM_SLOT_MS = const(250)  # TC: length of one RC answer time slot (public Microchip default)
# display management (project choices, docs/data-model.md); the display timing
# register 0x0D03 overrides the first three
DISPLAY_DWELL_S = const(5)  # normal mode: time each value of the scroll list shows
DISPLAY_ALT_TIMEOUT_S = const(30)  # alternate mode: back to normal after this long without a press
DISPLAY_TEST_S = const(10)  # test mode: every segment on for this long
DISPLAY_REFRESH_MS = const(1000)  # the value on screen is read again this often
DISPLAY_MARQUEE_MS = const(400)  # a message longer than the line moves one character this often
DISPLAY_LONG_PRESS_MS = const(2000)  # a press held this long is a long press
BUTTON_DEBOUNCE_MS = const(30)  # a button level must hold this long to count
# Optical port (meter/optical/iec62056.py, readout.py, modef.py): IEC 62056-21 values
# where it gives one, project choices otherwise (docs/protocol.md, "Optical port").
OPT_REACTION_MS = const(50)  # tr before the identification: 20..1500 ms (lower-case 3rd letter)
OPT_INTERCHAR_MS = const(1500)  # ta: a longer gap drops a partial sign-on message (IEC 62056-21)
OPT_OPTION_MS = const(1500)  # the option select must come this long after the identification left
OPT_READOUT_MS = const(1200)  # tr before the mode C data message at the new rate (<= 1500 ms)
OPT_DRAIN_GUARD_MS = const(20)  # after the last byte left, before the port goes back to 300 Bd
OPT_F_INTERCHAR_MS = const(200)  # mode F: a longer gap drops a partial frame
OPT_F_IDLE_MS = const(5000)  # mode F: this long without a frame ends the session
OPT_LOCK_AFTER = const(3)  # consecutive failed authentications that lock the port
OPT_LOCK_BASE_MS = const(5000)  # the first lock; each further lock doubles it ...
OPT_LOCK_MAX_MS = const(3600000)  # ... up to one hour
# B-Node local link (meter/link/bnodelink.py, meter/app/bnode.py): project choices
BNODE_TIMEOUT_MS = const(300)  # the A-Node waits this long for the B-Node's answer
BNODE_PLAIN_BURST = const(10)  # plain B-Node messages (when allowed at all): a burst, ...
BNODE_PLAIN_REFILL_S = const(60)  # ... then one a minute
RESTART_AFTER_ACTIVATION_MS = const(1500)  # the ACK of an activation goes out before the restart
