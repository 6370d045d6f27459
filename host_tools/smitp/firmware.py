"""The firmware the host tools run in-process, importable as `meter`.

On a board the firmware is the top-level package `meter`: a short name, since
MicroPython keeps every module's name in RAM and flash, and the firmware's
modules import each other by it (`from meter.link import mac`). On a host a
top-level `meter` could collide with any other distribution's, so the
smitp-meter distribution installs no such package: the wheel carries the
firmware inside the host tools, as smitp/_firmware/meter/ (setup.py), and a
source tree has it in firmware/meter/. Importing `smitp` puts that folder on
sys.path, after checking that no other `meter` is already imported or would
be found first.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = os.path.join(HERE, "_firmware")  # an installed wheel
SOURCE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "firmware")  # a source tree (editable install)


class ForeignFirmware(ImportError):
    """Another package named `meter` shadows the firmware."""


def firmware_dir():
    """The folder holding the firmware package `meter`."""
    for folder in (BUNDLED, SOURCE):
        if os.path.isfile(os.path.join(folder, "meter", "__init__.py")):
            return folder
    raise ImportError("the firmware (package meter) is neither in %s nor in %s: reinstall smitp-meter"
                      % (BUNDLED, SOURCE))


def _home(module):
    """The folder a module named `meter` was imported from (the one holding meter/)."""
    path = getattr(module, "__file__", None)
    return os.path.realpath(os.path.dirname(os.path.dirname(path))) if path else None


def load():
    """Make `import meter` give this distribution's firmware; returns its folder."""
    folder = firmware_dir()
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import meter

    if _home(meter) != os.path.realpath(folder):
        raise ForeignFirmware("another package named meter (%s) shadows the smitp-meter firmware (%s): "
                              "uninstall it or run the host tools in their own environment"
                              % (getattr(meter, "__file__", "?"), folder))
    return folder
