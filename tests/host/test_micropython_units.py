"""The MicroPython compatibility gate, part 2: the firmware unit tests pass
under the real MicroPython interpreter (tests/firmware/run_mp.py)."""

import os
import subprocess

from tools import ROOT, micropython_path


def _micropython():
    mp = micropython_path()
    assert mp, "micropython not found next to this Python nor on PATH: run `make setup`"
    return mp


def test_interpreter_is_micropython():
    r = subprocess.run(
        [_micropython(), "-c", "import sys; print(sys.implementation.name)"], capture_output=True, text=True
    )
    assert r.stdout.strip() == "micropython", r.stdout + r.stderr


def test_firmware_unit_tests_pass_under_micropython():
    r = subprocess.run(
        [_micropython(), os.path.join("tests", "firmware", "run_mp.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, "micropython run_mp.py exited %d:\n%s" % (r.returncode, out)
    assert "micropython: " in out and " passed, 0 failed" in out, out
