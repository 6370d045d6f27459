"""The emulated board against the firmware's contracts (meter/contracts.pyi).
For the type checker only (pyrightconfig.json beside this file): never run.
A required member missing or of the wrong form fails the check; the optional
members named here are the ones this board has."""
import board
from meter.phy import st7580
from meter.contracts import (
    Board,
    HasButton,
    HasClock,
    HasDisplay,
    HasModemDriver,
    HasOpticalPort,
    HasRelay,
    HasResetCause,
    HasWatchdog,
    PhyDriver,
)


def board_contract(b: board.Board) -> None:
    required: Board = b
    clock: HasClock = b
    optical: HasOpticalPort = b
    display: HasDisplay = b
    button: HasButton = b
    relay: HasRelay = b
    watchdog: HasWatchdog = b
    reset_cause: HasResetCause = b
    modem: HasModemDriver = b


def phy_contract() -> None:
    # modem_driver() gives the ST7580's or the M&M Host Interface's driver (--modem)
    driver: PhyDriver = st7580.driver()
