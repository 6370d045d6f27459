"""Every shell example of README.md, run as written (split as a shell splits it, comments
dropped), in the order the README gives them, in one working directory, with a data home of
their own: the README's own `smitp feeder up` starts the feeder the examples after it use.
Those that cannot run here are skipped with the reason in the test output (`pytest -rs`);
a feeder left running is stopped at the end whatever happened."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from smitp import feeder

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_examples():
    """(line, argv) of each command line of the README's ```sh blocks."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                found.append((line.split("  #")[0].strip(), argv))
    return found


def skip_reason(argv):
    """Why an example does not run here, or None."""
    device = next((a for a in argv if a.startswith("/dev/tty")), None)
    if device:
        return "needs hardware on %s" % device
    if argv[:2] == ["make", "test"]:
        return "runs the whole test suite, this test included"
    if argv[:2] == ["make", "demo"]:
        return "`make setup` then `smitp demo`, which runs as its own example"
    if argv[:3] == ["smitp", "demo", "--auth"]:
        return "over a minute; tests/host/test_attacks.py runs `smitp demo --auth --json`"
    if argv[:2] in (["make", "mcu"], ["make", "test-mcu"]) or "--mcu" in argv:
        return "the emulated-MCU image and toolchain: `make test-mcu` runs these"
    if argv[:2] == ["smitp", "download"] or (argv[:2] in (["smitp", "demo"], ["smitp", "sim"]) and "--download" in argv):
        return "a download takes minutes a route in real time; test_download_campaign.py runs campaigns in process"
    if argv[:2] == ["smitp", "discover"] and not os.environ.get("SMITP_SLOW_TESTS"):
        return "discovery in real time takes about 2 minutes; set SMITP_SLOW_TESTS=1"
    return None


EXAMPLES = readme_examples()


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """The examples' working directory and environment; the feeders they start, stopped at the end."""
    cwd = tmp_path_factory.mktemp("readme")
    env = dict(os.environ, XDG_DATA_HOME=str(cwd / "data"), PATH="%s%s%s" % (BIN, os.pathsep, os.environ["PATH"]))
    try:
        yield cwd, env
    finally:
        for state in (feeder.State(cwd / "data" / "smitp" / "feeder", create=False),
                      feeder.State(cwd / "feeder-demo", create=False)):
            if feeder.running(state):
                feeder.down(state)


def test_the_readme_has_examples():
    assert len(EXAMPLES) > 30 and any(a[:3] == ["smitp", "feeder", "up"] for _line, a in EXAMPLES)


@pytest.mark.parametrize("line,argv", EXAMPLES, ids=[line for line, _ in EXAMPLES])
def test_readme_example(place, line, argv):
    reason = skip_reason(argv)
    if reason:
        pytest.skip("`%s`: %s" % (line, reason))
    cwd, env = place
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=110, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "%s\nexit %d\n%s%s" % (line, r.returncode, r.stdout[-1500:], r.stderr[-1500:])
