"""Progress of long commands (smitp.progress): heartbeat lines off a terminal, a bar per
phase on one, always on stderr, so stdout (JSON included) stays the command's."""

import io
import json
import re
import subprocess
import sys

from smitp import progress
from smitp.cli import main
from tools import ROOT

HEARTBEAT = re.compile(r"^smitp sim: \d+ s, (working|(discovering|registering|reading) \d+/\d+)$")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_heartbeat_lines_name_the_phase_and_json_stays_clean(capsys, monkeypatch):
    monkeypatch.setattr(progress, "FIRST_S", 0.05)
    monkeypatch.setattr(progress, "EVERY_S", 0.1)
    assert main(["sim", "--meters", "60", "--seed", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["read_ok"] == 60  # stdout: the JSON report and nothing else
    lines = err.splitlines()
    assert any(" reading " in line for line in lines), err  # the bar no longer stops at discovery
    assert re.match(r"^smitp sim: ended after \d+ s$", lines[-1])
    assert all(HEARTBEAT.match(line) for line in lines[:-1]), err


def test_a_quick_command_prints_no_progress():
    r = subprocess.run([sys.executable, "-m", "smitp.cli", "decode", "--json", "0000"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("smitp decode: error: ")
    assert len(r.stderr.splitlines()) == 1  # the error, no progress around it


def test_on_a_terminal_a_bar_per_phase_each_ended_by_its_new_line():
    term = Terminal()
    p = progress.Progress("smitp sim", stream=term, first_s=0, every_s=0.05)
    for phase in ("discovering", "registering", "reading"):
        for done in range(0, 11, 5):
            p.update(phase, done, 10)
    p.update("sections", 1, 4)
    p.close()
    text = term.getvalue()
    finished = [line.rsplit("\r", 1)[-1] for line in text.split("\n")[:-1]]
    for line, phase in zip(finished, ("discovering", "registering", "reading", "sections")):
        assert line.startswith("smitp sim %s [" % phase), finished
    assert "] 10/10 " in finished[0] and "#" * progress.BAR_WIDTH in finished[0]
    assert "] 1/4 " in finished[3]  # an unfinished phase keeps its line when the command ends
    assert text.endswith("\n") and len(finished) == 4


def test_a_broken_stream_stops_the_progress_quietly():
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

    p = progress.Progress("x", stream=Closed(), tty=False, first_s=0, every_s=0.01)
    p.update("reading", 1, 2)
    p.close()  # no exception, the thread ended
    assert not p._thread.is_alive()


def test_outside_a_command_progress_is_silent(capsys):
    import threading

    before = threading.active_count()
    report = progress.current().reporter("reading")
    report(1, 2, "A8040A1E8901")
    progress.current().by_phase(1, 2, "sections")
    assert capsys.readouterr().err == "" and threading.active_count() == before
