"""The PHY-driver contract: what the modem task (meter.runtime.firmware.ModemPort)
asks of a power-line modem driver, so that another modem is a new driver,
not a new modem task. meter.phy.st7580 (driver()) implements it.

A driver is sans-io: it never reads a clock, sleeps or touches a pin. The
task reads the UART, passes the bytes and the time in ms (ticks_ms), and
after every call writes what the driver has to send and sets the request
line. Once warmed up, a frame in (DATA) and a frame out (tx_space, send,
the handshake to its confirm) allocate nothing: no call below may, on
that path (tests/firmware/test_no_alloc.py).

  receive(buf, now, n=-1)  bytes read from the UART at now: buf[0:n], all of
                           buf when n < 0, any chunking. Not kept after the call.
  poll(now)                runs the timers; call it after receive() and within
                           next_timeout(now) ms.
  next_timeout(now)        ms until poll() is due: 0 now, -1 no timer running.
  next_kind()              kind of the next event, NONE when there is none;
                           its fields (below) hold until the next call to
                           next_kind(), receive() or poll().
  to_send()                count n of bytes to write to the UART now, from
                           `out` (a memoryview): write out[0:n], then call
                           again until it returns 0. A driver writes nothing
                           on its own.
  treq                     level of the modem's request line after the writes
                           (1 released; a modem without one keeps it at 1).
  tx_space()               memoryview where the next frame to send goes, at
                           its final place in the driver's transmit buffer
                           (room for a meter.link.mac.MAX_FRAME frame), or None
                           when the transmit queue is full. Valid until
                           send() or any other request.
  send(n)                  queue the frame written in tx_space()[0:n] for the
                           line; False (and nothing sent) when the queue is full.
  ready                    True from READY to the next RESET: send() makes sense.
  stats                    dict of the driver's counters (diagnostics only).

Events (next_kind):
  DATA     a frame from the line: rx[0:rx_len] (a memoryview into the
           driver's receive buffer) and its link figures in `quality`, a list
           indexed by the Q_* below (None where the modem gives nothing).
  READY    the modem is configured for this profile; the driver configures
           it by itself after every RESET.
  RESET    the modem restarted (ev_code: the modem's cause, for the log); not
           ready until the next READY. A request in flight was lost.
  FAILED   a request to the modem failed (ev_cmd, ev_code: the modem's error,
           or NO_ANSWER); for the log: the driver retries its configuration.
  LSDU     an application request from a modem that runs the data link
           itself (meter/phy/hi.py): rx[0:rx_len] is the LLC data (ATTR,
           APDU), ev_code the ECC it came with (with OPENED set: the modem
           opened and verified it under that ECC, so it is served in clear
           with that key's rights and answered in clear, the modem sealing
           the answer), ev_cmd the most bytes the answer may have. The answer LSDU goes into tx_space() and out
           with answer(n, ecc); a driver without such a modem never raises
           it (its answer() is False).
Kinds from DRIVER up are the driver's own; the modem task ignores them.

The board picks the driver: Board.modem_driver(), when the board has it,
returns a new driver object; without it the task uses meter.phy.st7580.driver().
meter.phy.base.DriverBase holds what drivers share: the transmit slots,
to_send() and the event ring; meter.phy.base.LinkDriver adds the T_REQ link
of the local ports (ST7580, M&M Host Interface).

The contract is typed in meter/contracts.pyi (PhyDriver), for the type
checker (tests/typecheck/): the modem task holds its driver as a PhyDriver.
"""
from meter.compat import const

TYPE_CHECKING = const(False)
if TYPE_CHECKING:
    from meter.contracts import Quality

# event kinds
NONE = const(0)
DATA = const(1)
READY = const(2)
RESET = const(3)
FAILED = const(4)
LSDU = const(5)
DRIVER = const(16)  # first kind a driver may use for itself

OPENED = const(0x10)  # LSDU ev_code flag: the modem runs the security and opened the request
NO_ANSWER = const(-1)  # FAILED code: the modem did not answer in time

# quality: link figures of the last DATA event, a list indexed by these
Q_SIGNAL = const(0)  # received level, dBuV
Q_SNR = const(1)  # signal-to-noise ratio, dB
Q_IMPEDANCE = const(2)  # estimated line impedance, ohm
Q_IN_PHASE = const(3)  # True/False: same mains phase as the sender; None unknown
Q_COUNT = const(4)


def new_quality() -> "Quality":
    """A quality list with nothing known."""
    return [None] * Q_COUNT
