"""The fuzzer (tests/fuzz): a short seeded slice of every entry point and the
crash corpus, on CPython and on MicroPython; the same inputs on both; and the
campaign telling an escaped exception, a guarded fault and a resized buffer
apart from a clean input."""

import os
import subprocess
import sys

import pytest

from tools import ROOT, micropython_path

FUZZ = os.path.join(ROOT, "tests", "fuzz")
RUN = os.path.join(FUZZ, "run.py")
if FUZZ not in sys.path:
    sys.path.insert(0, FUZZ)


def _run(interpreter, *args):
    exe = sys.executable if interpreter == "cpython" else micropython_path()
    assert exe, "micropython not found: run `make setup`"
    r = subprocess.run([exe, RUN, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
def test_short_slice_of_every_entry_point(interpreter):
    rc, out = _run(interpreter, "--entry", "all", "--count", "2000", "--seed", "20261")
    assert rc == 0, out
    assert out.count("crashing inputs (0 kinds)") == 9 and out.count("state checks 1: ok") == 9, out


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
def test_corpus_replays_without_a_crash(interpreter):
    rc, out = _run(interpreter, "--replay")
    assert rc == 0, out
    assert "0 failing" in out, out


def test_inputs_are_the_same_on_both_interpreters():
    args = ("--digest", "--count", "300", "--seed", "11")
    a, b = _run("cpython", *args), _run("micropython", *args)
    assert a[0] == 0 and b[0] == 0, a[1] + b[1]
    assert a[1] == b[1] and a[1].count("digest ") == 9, a[1] + b[1]


def test_the_campaign_tells_crashes_from_clean_inputs():
    import campaign
    import gen
    import targets
    from xrng import Rng

    t = targets.TARGETS["app"]()
    blob = gen.gen_app(Rng(1, 0))
    assert campaign.run_one(t, blob) is None

    def boom(*args, **kwargs):
        raise RuntimeError("planted")

    t.node.app.handle = boom  # under the node's guard: a counted fault
    sig, msg = campaign.run_one(t, gen.gen_app(Rng(1, 1)))
    assert sig.startswith("RuntimeError@test_fuzz.py:") and "planted" in msg

    t = targets.TARGETS["app"]()
    t.apply = boom  # out of the entry point
    assert campaign.run_one(t, blob)[0].startswith("RuntimeError@")

    t = targets.TARGETS["app"]()
    t.node.app.resp.extend(b"\x00")  # a shared answer buffer grew
    sig, msg = campaign.run_one(t, blob)
    assert sig.startswith("invariant:buffer sizes"), msg
    assert campaign.run_one(t, blob) is None  # reported once
