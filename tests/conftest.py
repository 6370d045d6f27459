import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Firmware unit tests import `meter.*` and `fwtest` exactly as run_mp.py sets them up.
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware")):
    if p not in sys.path:
        sys.path.insert(0, p)
sys.path.insert(0, os.path.join(ROOT, "host_tools"))  # host tools import `smitp.*`


def pytest_addoption(parser):
    group = parser.getgroup("smitp", "hardware in the loop")
    group.addoption("--modem-port", help="serial port of a concentrator-side ST7580 modem (real boards)")
    group.addoption("--meter-aca", help="ACA of a real meter reachable through that modem")
    group.addoption("--hi-port", help="serial port wired to a real Meters and More modem's Host Interface "
                                      "(T_REQ on RTS, active low)")
