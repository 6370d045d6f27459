"""The type checks (tests/typecheck/README.md): pyright finds no error in any
configuration, one pyright process each: the firmware with each board against
that board's MicroPython port stubs (the Board and PHY-driver contracts
included), the host tools against CPython 3.11."""

import glob
import json
import os
import subprocess
import sys

import pytest
from tools import ROOT

TYPECHECK = os.path.join(ROOT, "tests", "typecheck")
CONFIGS = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(TYPECHECK, "*", "pyrightconfig.json")))


def _pyright():
    here = os.path.join(os.path.dirname(sys.executable), "pyright")
    return here if os.access(here, os.X_OK) else None


def _line(d):
    start = d.get("range", {}).get("start", {})
    rule = " (%s)" % d["rule"] if d.get("rule") else ""
    return "%s:%d:%d - %s: %s%s" % (os.path.relpath(d.get("file", "?"), ROOT), start.get("line", -1) + 1,
                                     start.get("character", -1) + 1, d["severity"], d["message"], rule)


def test_every_board_has_a_configuration():
    boards = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(ROOT, "boards", "*", "board.py")))
    assert boards and set(boards) <= set(CONFIGS), "boards without a type check in tests/typecheck/: %s" % (
        sorted(set(boards) - set(CONFIGS)))
    assert "host" in CONFIGS


@pytest.mark.parametrize("config", CONFIGS)
def test_no_type_errors(config):
    pyright = _pyright()
    assert pyright, "pyright not found next to %s: run `make setup`" % sys.executable
    project = os.path.join(TYPECHECK, config)
    with open(os.path.join(project, "pyrightconfig.json")) as f:
        settings = json.load(f)
    for key in ("stubPath", "typeshedPath"):
        if key in settings:
            path = os.path.normpath(os.path.join(project, settings[key]))
            assert os.path.isdir(path), "%s: %s %s is missing: run `make setup`" % (config, key, path)
    # --outputjson: machine-readable, and no look-up of the latest pyright release
    env = dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1")
    r = subprocess.run([pyright, "--outputjson", "-p", project], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=300)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        pytest.fail("pyright (exit %d) gave no report:\n%s%s" % (r.returncode, r.stdout, r.stderr))
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert report["summary"]["filesAnalyzed"] > 0, "%s: pyright analyzed no file" % config
    assert report["summary"]["errorCount"] == 0 and not errors, "pyright -p tests/typecheck/%s: %d errors\n%s" % (
        config, report["summary"]["errorCount"], "\n".join(_line(d) for d in report["generalDiagnostics"]))
