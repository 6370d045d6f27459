"""The NUCLEO-F401RE + Meters and More modem (PL460-EK) board against the
firmware's contracts (meter/contracts.pyi). For the type checker only
(pyrightconfig.json beside this file): never run. A required member missing
or of the wrong form fails the check; the optional members named here are
the ones this board has."""
import board
from meter.phy import hi
from meter.contracts import (
    Board,
    HasDlmsChoice,
    HasDownloadChoice,
    HasModemDriver,
    HasResetCause,
    HasWatchdog,
    PhyDriver,
)


def board_contract(b: board.Board) -> None:
    required: Board = b
    modem: HasModemDriver = b
    watchdog: HasWatchdog = b
    reset_cause: HasResetCause = b
    dlms_choice: HasDlmsChoice = b
    download_choice: HasDownloadChoice = b


def phy_contract() -> None:
    # modem_driver(): the M&M Host Interface driver
    driver: PhyDriver = hi.driver()
