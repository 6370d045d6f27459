"""The NUCLEO-F401RE + X-NUCLEO-PLM01A1 board against the firmware's
contracts (meter/contracts.pyi). For the type checker only
(pyrightconfig.json beside this file): never run. A required member missing
or of the wrong form fails the check; the optional members named here are
the ones this board has."""
import board
from meter.phy import st7580
from meter.contracts import (
    Board,
    HasButton,
    HasDlmsChoice,
    HasDownloadChoice,
    HasDisplay,
    HasOpticalPort,
    HasResetCause,
    HasWatchdog,
    PhyDriver,
)


def board_contract(b: board.Board) -> None:
    required: Board = b
    optical: HasOpticalPort = b
    display: HasDisplay = b
    button: HasButton = b
    watchdog: HasWatchdog = b
    reset_cause: HasResetCause = b
    dlms_choice: HasDlmsChoice = b
    download_choice: HasDownloadChoice = b


def phy_contract() -> None:
    # no modem_driver(): the modem task runs the ST7580 driver
    driver: PhyDriver = st7580.driver()
