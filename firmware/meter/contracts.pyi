# The firmware's typed contracts, read by the type checker only
# (tests/typecheck/): the Board a board support module hands to
# meter.runtime.firmware.run(), and the modem driver of meter/phy/contract.py, which the modem
# task (meter.runtime.firmware.ModemPort) consumes.
#
# There is no meter/contracts.py: MicroPython has no `typing` module, so a
# runtime module names these types only in quoted annotations or `# type:`
# comments, after
#     TYPE_CHECKING = const(False)
#     if TYPE_CHECKING:
#         from meter.contracts import Board
# (the compiler drops that block: the device never imports this module).
#
# Members a consumer reads but never sets are read-only properties here, so a
# class attribute, an instance attribute or a property of a narrower type all
# satisfy them.
from typing import List, Optional, Protocol, Tuple, Union

from meter.display.screen import Screen

Buffer = Union[bytes, bytearray, memoryview]

# ---- the PHY-driver contract (meter/phy/contract.py has the words) -------------------

# Link figures of the last DATA event, indexed by meter.phy.contract.Q_*: ints, a bool
# for Q_IN_PHASE, None where the modem gives nothing.
Quality = List[Union[int, bool, None]]

class PhyDriver(Protocol):
    """A power-line modem driver (meter/phy/contract.py): sans-io, fed by the modem
    task with the UART's bytes and the time in ms (ticks)."""

    def receive(self, buf: Buffer, now: int, n: int = ..., /) -> object: ...
    def poll(self, now: int, /) -> object: ...
    def next_timeout(self, now: int, /) -> int: ...
    def next_kind(self) -> int: ...
    def to_send(self) -> int: ...
    @property
    def out(self) -> memoryview: ...
    @property
    def treq(self) -> int: ...
    def tx_space(self) -> Optional[memoryview]: ...
    def send(self, n: int, /) -> bool: ...
    def answer(self, n: int, ecc: int = ..., /) -> bool: ...
    @property
    def ready(self) -> bool: ...
    @property
    def stats(self) -> dict[str, int]: ...
    # the fields of the event next_kind() returned
    @property
    def rx(self) -> Optional[memoryview]: ...
    @property
    def rx_len(self) -> int: ...
    @property
    def quality(self) -> Quality: ...
    @property
    def ev_cmd(self) -> int: ...
    @property
    def ev_code(self) -> int: ...

# ---- the Board contract -----------------------------------------------------

class OutputPin(Protocol):
    """The modem's T_REQ and RESETN lines: value(level) drives them."""

    def value(self, level: int, /) -> object: ...

class ModemStream(Protocol):
    """The modem UART: a MicroPython stream the asyncio StreamReader polls.
    write(buf, n) writes buf[0:n] without a slice."""

    def write(self, buf: Buffer, n: int, /) -> Optional[int]: ...
    def readinto(self, buf: bytearray, /) -> Optional[int]: ...

class OpticalStream(Protocol):
    """The optical port's UART (IEC 62056-21 optical head)."""

    def write(self, buf: Buffer, /) -> Optional[int]: ...
    def readinto(self, buf: bytearray, /) -> Optional[int]: ...

class Sample(Protocol):
    """What a board's measure() fills in (meter's metrology Sample): per phase
    k voltage (0.1 V), current (0.01 A), active (W) and reactive (var) power;
    the phases in use; the frequency (0.01 Hz)."""

    phases: int
    f: int
    def set(self, k: int, volts_d: int, amps_c: int, watts: int, vars_: int = ..., /) -> object: ...

class DisplayDriver(Protocol):
    """show(screen) draws it; flush(part) sends one of `parts` parts to the
    panel, so the firmware yields between parts."""

    @property
    def parts(self) -> int: ...
    def show(self, screen: Screen, /) -> object: ...
    def flush(self, part: int, /) -> object: ...

class Button(Protocol):
    async def wait(self) -> Optional[int]:
        """The next debounced level: 1 pressed, 0 released; None: no more."""

class Watchdog(Protocol):
    def feed(self) -> object: ...

class _BoardBase(Protocol):
    """What every board has (meter/runtime/firmware.py, meter/optical/port.py)."""

    @property
    def name(self) -> str: ...
    @property
    def storage_dir(self) -> str: ...
    @property
    def treq(self) -> OutputPin: ...
    @property
    def resetn(self) -> OutputPin: ...
    def identity(self) -> Tuple[bytes, str]:
        """(ACA: 6 bytes, serial number)."""
    def unix_time(self) -> int: ...
    def set_unix_time(self, t: int, /) -> object: ...
    def modem_uart(self) -> ModemStream: ...

class MeasuringBoard(_BoardBase, Protocol):
    def measure(self, sample: Sample, /) -> object:
        """Fill in the metrology sample."""

class PowerBoard(_BoardBase, Protocol):
    def power_w(self) -> Tuple[int, int]:
        """(import W, export W), both >= 0: a single-phase reading."""

# A board: the common members, and measure(sample) or power_w().
Board = Union[MeasuringBoard, PowerBoard]

# Optional members: the firmware looks for them (getattr) and does without.
# Each board's type check (tests/typecheck/<board>/) names the ones it has,
# so their signatures are checked too.

class HasClock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in ms (else the firmware keeps the RTC in step with ticks)."""

class HasOpticalPort(Protocol):
    def optical_uart(self) -> Optional[OpticalStream]: ...
    def set_optical_line(self, baud: int, seven_e1: bool, /) -> object: ...

class HasBNodeLink(Protocol):
    def bnode_uart(self) -> Optional[ModemStream]: ...

class HasDisplay(Protocol):
    def display(self) -> Optional[DisplayDriver]: ...

class HasButton(Protocol):
    def button(self) -> Optional[Button]: ...

class HasRelay(Protocol):
    def set_relay(self, open_: bool, /) -> object:
        """The cut-off device: open (True) or closed."""

class HasWatchdog(Protocol):
    def watchdog(self, timeout_ms: int, /) -> Watchdog: ...

class HasResetCause(Protocol):
    def reset_cause(self) -> str:
        """"power", "watchdog", "soft" or "other"."""

class HasDlmsChoice(Protocol):
    def serves_dlms(self) -> bool:
        """False: the board runs without the DLMS/COSEM profile (RAM); absent: with it."""

class HasDownloadChoice(Protocol):
    def serves_download(self) -> bool:
        """False: the board runs without the software-download engine (it cannot boot a slot:
        REPROG answered NACK 6 as any unsupported ATTR, no download area); absent: with it."""

class HasModemDriver(Protocol):
    def modem_driver(self) -> PhyDriver:
        """A new driver for the board's modem (else meter.phy.st7580.driver())."""
