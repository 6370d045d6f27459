"""The DLMS entry of the fuzzer (tests/fuzz, entry `dlms`): sessions of mutated APDUs in mutated
CLPDUs, broadcasts among them, on CPython and on MicroPython; after them the meter still answers
a public association and a GET of its clock (checks.dlms_get), and that check, like the
campaign's fault count, does fail when the DLMS profile breaks."""

import os
import subprocess
import sys

import pytest

from tools import ROOT, micropython_path

FUZZ = os.path.join(ROOT, "tests", "fuzz")
if FUZZ not in sys.path:
    sys.path.insert(0, FUZZ)


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
def test_a_short_dlms_campaign_leaves_the_meter_serving(interpreter):
    exe = sys.executable if interpreter == "cpython" else micropython_path()
    assert exe, "micropython not found: run `make setup`"
    r = subprocess.run([exe, os.path.join(FUZZ, "run.py"), "--entry", "dlms", "--count", "3000", "--seed", "13"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "0 crashing inputs (0 kinds), state checks 1: ok" in out, out


def test_the_dlms_checks_and_faults_can_fail():
    import campaign
    import checks
    import gen
    import targets
    from xrng import Rng

    t = targets.TARGETS["dlms"]()
    blob = gen.gen_dlms(Rng(1, 0))
    assert campaign.run_one(t, blob) is None and checks.run("dlms", t) == []

    def boom(*args):
        raise RuntimeError("planted")

    t.cl.handler = boom  # inside the node's guard: a counted fault
    sig, msg = campaign.run_one(t, blob)
    assert "planted" in msg
    assert any("DLMS" in p for p in checks.run("dlms", t))  # no answer to the GET any more

    t = targets.TARGETS["dlms"]()
    t.server.long = bytearray(10)  # a shared buffer resized
    assert "buffer sizes" in campaign.run_one(t, blob)[0]
