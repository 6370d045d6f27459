import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Firmware unit tests import `meter.*` and `fwtest` exactly as run_mp.py sets them up.
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "firmware")):
    if p not in sys.path:
        sys.path.insert(0, p)
sys.path.insert(0, os.path.join(ROOT, "host_tools"))  # host tools import `smitp.*`
