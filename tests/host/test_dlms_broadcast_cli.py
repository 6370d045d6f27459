"""`smitp dlms broadcast`: the clock of the meters next to the concentrator, and of the meter behind
the repeater (--via), set by a DLMS broadcast under the key file's broadcast key (emulated boards
of the demo feeder, the firmware on MicroPython), read back by a public GET; and its refusals of
bad input."""

import json

import pytest

from smitp.cli import main

ENTRY = {"ek": "000102030405060708090A0B0C0D0E0F", "ak": "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",
         "bk": "B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF"}


def keys_file(tmp_path, entry=ENTRY, aca="A8040A1E8901"):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({aca: entry}))
    return str(path)


def run(capsys, *argv):
    code = main(["dlms", "broadcast", "--json"] + list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_a_broadcast_sets_the_clock_of_an_emulated_board(capsys, tmp_path):
    code, report = run(capsys, "--meter", "A8040A1E8901", "--keys", keys_file(tmp_path), "--time",
                       "2026-03-01T08:30:00Z")
    assert code == 0, report
    assert report["broadcast"] == "set clock" and report["ic"] == 1
    assert "2026-03-01T08:30:00Z" <= report["clock"] <= "2026-03-01T08:30:20Z"


def test_a_broadcast_via_the_repeater_sets_the_clock_of_the_board_behind_it(capsys, tmp_path):
    code, report = run(capsys, "--meter", "A8040A1E8903", "--via", "A8040A1E8902", "--keys",
                       keys_file(tmp_path, aca="A8040A1E8903"), "--time", "2026-03-01T08:30:00Z")
    assert code == 0, report
    assert report["broadcast"] == "set clock" and report["via"] == ["A8040A1E8902"] and report["ic"] == 1
    assert "2026-03-01T08:30:00Z" <= report["clock"] <= "2026-03-01T08:30:20Z"


@pytest.mark.parametrize("argv, message", [
    (["--time", "2026-03-01T08:30:00Z"], "--keys is needed"),
    (["--keys", "K"], "--time TIME or --shift SECONDS"),
    (["--keys", "K", "--time", "5", "--shift", "5"], "--time TIME or --shift SECONDS"),
    (["--keys", "K", "--shift", "5", "--obis", "0.0.1.0.0.255"], "--obis does not go with broadcast"),
    (["--keys", "K", "--shift", "5", "--via", "A8040A1E8909"], "A8040A1E8909 is not on the emulated demo feeder"),
    (["--keys", "K", "--shift", "901"], "outside -900..900"),
    (["--keys", "NOBK", "--shift", "5"], "needs bk"),
])
def test_broadcast_usage_errors(capsys, tmp_path, argv, message):
    full = keys_file(tmp_path)
    (tmp_path / "nobk").mkdir()
    nobk = keys_file(tmp_path / "nobk", {"ek": ENTRY["ek"], "ak": ENTRY["ak"]})
    argv = [{"K": full, "NOBK": nobk}.get(a, a) for a in argv]
    code, report = run(capsys, "--meter", "A8040A1E8901", *argv)
    assert code == 2 and message in report["error"], report


def test_shift_goes_only_with_broadcast(capsys):
    code = main(["dlms", "get", "--json", "--meter", "A8040A1E8901", "--obis", "0.0.1.0.0.255", "--attr", "2",
                 "--shift", "5"])
    assert code == 2 and "--shift goes with broadcast" in json.loads(capsys.readouterr().out)["error"]
