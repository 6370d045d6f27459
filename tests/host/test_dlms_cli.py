"""`smitp dlms get` against the emulated demo feeder (MicroPython boards serving the DLMS profile
over the convergence layer), and its refusals of bad input."""

import json

import pytest

from smitp.cli import main

KEYS = {"A8040A1E8901": {"ek": "000102030405060708090A0B0C0D0E0F", "ak": "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",
                         "lls": "12345678"},
        "A8040A1E8903": {"ek": "101112131415161718191A1B1C1D1E1F", "ak": "202122232425262728292A2B2C2D2E2F"}}


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS))
    return str(path)


def run(capsys, *argv, action="get"):
    code = main(["dlms", action, "--json"] + list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_public_get_of_the_clock_on_an_emulated_board(capsys):
    code, report = run(capsys, "--emulated", "--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2")
    assert code == 0, report
    assert report["class"] == 8 and report["data"].startswith("090c") and report["value"].endswith("Z")
    assert report["value"][:4] >= "2025"


def test_hls_get_through_a_repeater_on_emulated_boards(capsys, keys):
    code, report = run(capsys, "--meter", "A8040A1E8903", "--via", "A8040A1E8902", "--obis", "0.0.1.0.0.255",
                       "--attr", "2", "--auth", "hls", "--keys", keys)
    assert code == 0, report
    assert report["auth"] == "hls" and report["value"].endswith("Z")
    code, report = run(capsys, "--meter", "A8040A1E8901", "--obis", "1.0.1.8.0.255", "--attr", "2")
    assert code == 1 and report["error"] == "GET refused: read-write-denied"  # energy: not for the public


def test_object_list_and_an_hls_set_and_action(capsys, keys):
    code, report = run(capsys, "--meter", "A8040A1E8901", action="objects")
    assert code == 0 and {"class": 8, "version": 0, "obis": "0.0.1.0.0.255"} in report["objects"]
    assert {"class": 70, "version": 0, "obis": "0.0.96.3.10.255"} in report["objects"]
    code, report = run(capsys, "--meter", "A8040A1E8901", "--obis", "0.0.96.3.10.255", "--method", "1", "--data",
                       "0F00", "--auth", "hls", "--keys", keys, action="action")
    assert code == 0 and report["result"] == "success"
    code, report = run(capsys, "--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2", "--time",
                       "2026-03-01T08:30:00Z", action="set")
    assert code == 1 and report["error"] == "SET refused: read-write-denied"  # the public client


@pytest.mark.parametrize("action, argv, message", [
    ("set", ["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2"], "--data HEX or as --time"),
    ("set", ["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2", "--data", "0600"], "--data"),
    ("get", ["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2", "--time", "5"], "--time goes"),
    ("action", ["--meter", "A8040A1E8901", "--obis", "0.0.96.3.10.255"], "--method is needed"),
    ("get", ["--meter", "A8040A1E8901", "--attr", "2"], "--obis is needed"),
])
def test_bad_action_options_are_usage_errors(capsys, action, argv, message):
    code, report = run(capsys, *argv, action=action)
    assert code == 2 and message in report["error"], report


@pytest.mark.parametrize("argv, message", [
    (["--meter", "A8040A1E8901", "--obis", "1.0.1.8.0", "--attr", "2"], "--obis"),
    (["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "0"], "--attr"),
    (["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2", "--auth", "hls"], "--keys FILE"),
    (["--meter", "A8040A1E8901", "--obis", "1.0.99.8.0.255", "--attr", "2"], "--class is needed"),
    (["--meter", "A8040A1E8999", "--obis", "0.0.1.0.0.255", "--attr", "2"], "not on the emulated demo feeder"),
    (["--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2", "--keys", "/nonexistent.json"],
     "--keys"),
])
def test_bad_input_is_one_usage_error(capsys, argv, message):
    code, report = run(capsys, *argv)
    assert code == 2 and message in report["error"], report
