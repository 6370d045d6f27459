"""The packages of the smitp-meter distribution (everything else: pyproject.toml).

The host tools are the package `smitp`. The firmware ships inside it, as
smitp/_firmware/meter/ with every sub-package found here (none left out), and
never as a top-level `meter` that could collide on a host; smitp.firmware
puts smitp/_firmware on sys.path, where the firmware's modules import each
other as `meter.*`, as on a board.
"""

from setuptools import find_packages, setup

FIRMWARE = find_packages("firmware", include=["meter", "meter.*"])

setup(
    packages=["smitp"] + ["smitp._firmware." + p for p in FIRMWARE],
    package_dir={"smitp": "host_tools/smitp",
                 **{"smitp._firmware." + p: "firmware/" + p.replace(".", "/") for p in FIRMWARE}},
    package_data={"smitp._firmware.meter": ["*.pyi"]},
)
