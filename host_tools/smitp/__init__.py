"""Host tools for smitp-meter: concentrator, hand-held unit, simulators and emulated boards.

They run the firmware in-process as the package `meter`, which smitp.firmware
finds (inside this package once installed, firmware/ in a source tree).
"""

from smitp import firmware as _firmware

_firmware.load()
