"""Conventions of the `smitp` command: --version, one JSON shape for a register
value, ISO 8601 times in and out, decode --json as fields. In-process: the
meters are the firmware's MeterNode under CPython on the simulated medium."""

import contextlib
import json
import struct
from importlib import metadata

import pytest

import meter
from meter.model import events as E
from meter.model import registers as R
from smitp import cli, topology
from smitp.cli import main
from smitp.concentrator import Concentrator
from smitp.network import neighbourhood
from smitp.values import decode_record, encode_value, parse_time, register_json, show_value

M1 = "A8040A1E8901"
SHAPE = {"id", "name", "raw", "value", "unit"}
READ_VIA_M2 = "1303891e0a04a83002891e0a04a800000002003fc01b3bee"


@pytest.fixture
def feeder(monkeypatch):
    """The demo feeder's meters in-process, for the commands that talk to a meter."""
    _net, port = neighbourhood(topology.demo_feeder(), boards=False)
    conc = Concentrator(port)
    monkeypatch.setattr(cli, "_concentrator", lambda args: contextlib.nullcontext(conc))
    return conc


def run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


# ---- 1. --version
def test_version_is_one_line_with_the_package_and_firmware_versions(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert metadata.version("smitp-meter") in out and "firmware smitp-meter %s" % meter.VERSION in out


# ---- 2. one register shape
def test_register_shape_of_bit_fields_times_and_units():
    status = register_json(R.STATUS_WORD, bytes.fromhex("0000000000000209"))
    assert status == {"id": "0x003F", "name": "status word", "raw": "0000000000000209",
                      "value": ["clock unset", "cutoff open", "alarm"], "unit": None}
    ext = register_json(R.EXT_STATUS, (1 << R.XS_KEYS_CHANGED | 1 << R.XS_POWER_FAIL).to_bytes(8, "big"))
    assert ext["value"] == ["power fail", "keys changed"]
    assert register_json(R.EXT_STATUS, bytes(8))["value"] == []
    clock = register_json(R.CLOCK, (1796205600).to_bytes(4, "big"))
    assert clock["value"] == "2026-12-02T10:00:00Z" and clock["raw"] == "6B0FEC20"
    energy = register_json(R.ENERGY_IMPORT, bytes(3) + b"\x10")
    assert energy["value"] == 16 and energy["unit"] == "Wh"
    contract = register_json(R.CONTRACT_1, encode_value(R.CONTRACT_1, "1,6000,1,2,2026-12-02T10:00:00Z"))
    assert contract["value"]["activation"] == "2026-12-02T10:00:00Z" and contract["value"]["power limit"] == 6000


def test_record_times_in_iso_8601():
    raw = struct.pack(R.LAYOUTS[R.EVENT_LOG][0], 1796205600, E.EV_POWER_UP, 0)
    assert decode_record(R.EVENT_LOG, raw, iso=True) == {"time": "2026-12-02T10:00:00Z", "event": E.EV_POWER_UP,
                                                        "event name": "power up", "data": 0}
    assert decode_record(R.EVENT_LOG, raw)["time"] == 1796205600  # numbers for scripts in Python


def test_text_output_keeps_units_and_names_the_flags():
    assert show_value(R.STATUS_WORD, bytes.fromhex("0000000000000001")) == "0000000000000001 (clock unset)"
    assert show_value(R.ENERGY_IMPORT, bytes(3) + b"\x10") == "16 Wh"


def test_read_write_and_readtab_print_the_register_shape(feeder, capsys):
    rep = run_json(capsys, ["read", "--meter", M1, "--register", "status word", "--register", "clock",
                            "--register", "active energy import total"])
    regs = {r["id"]: r for r in rep["registers"]}
    assert all(set(r) == SHAPE for r in rep["registers"]) and list(regs) == ["0x003F", "0x0020", "0x0030"]
    assert regs["0x003F"]["value"] == ["clock unset"] and regs["0x0030"]["unit"] == "Wh"
    assert regs["0x0020"]["value"].endswith("Z") and "T" in regs["0x0020"]["value"]
    rep = run_json(capsys, ["write", "--meter", M1, "--register", "metering point label", "--value", "STREET 12"])
    assert set(rep["register"]) == SHAPE and rep["register"]["value"] == "STREET 12" and rep["result"] == "ACK"
    rep = run_json(capsys, ["readtab", "--meter", M1, "--table", "contract 1 day profiles"])
    assert set(rep["records"][0]) == {"number", "raw", "values"}
    assert rep["records"][0]["values"]["switch point 3"] == "08:00 T1"
    assert main(["read", "--meter", M1, "--register", "active energy import total"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(" Wh")


# ---- 3. ISO 8601 times as arguments
def test_times_in_iso_8601_or_seconds():
    assert parse_time("2026-12-02T10:00:00Z") == parse_time("1796205600") == 1796205600
    assert parse_time("2026-12-02T11:00:00+01:00") == 1796205600
    assert parse_time("2026-12-02") == 1796169600
    assert encode_value(R.CLOCK, "2026-12-02T10:00:00Z") == encode_value(R.CLOCK, "1796205600")


def test_readtab_from_to_take_iso_8601():
    args = cli.build_parser().parse_args(["readtab", "--meter", M1, "--table", "load profile",
                                          "--from", "2026-12-01T00:00:00Z", "--to", "1796169600"])
    assert (args.since, args.until) == (1796083200, 1796169600)


def test_sync_clock_takes_iso_8601(monkeypatch, capsys):
    sent = []

    class Conc:
        def command(self, aca, code, params, route, auth, ecc):
            sent.append(params)

    monkeypatch.setattr(cli, "_concentrator", lambda args: contextlib.nullcontext(Conc()))
    rep = run_json(capsys, ["command", "--meter", M1, "sync-clock", "--time", "2026-12-02T10:00:00Z"])
    assert sent == [(1796205600).to_bytes(4, "big")] and rep["parameters"] == "6B0FEC20"


@pytest.mark.parametrize("argv", [
    ["write", "--meter", M1, "--register", "clock", "--value", "tomorrow"],
    ["command", "--meter", M1, "sync-clock", "--time", "2026-13-02T10:00:00Z"],
    ["readtab", "--meter", M1, "--table", "load profile", "--from", "yesterday"],
    ["readtab", "--meter", M1, "--table", "load profile", "--to", "2200-01-01T00:00:00Z"],
])
def test_a_bad_time_is_one_clear_line(capsys, argv):
    err = one_line_error(capsys, argv)
    assert "ISO 8601" in err or "1970-01-01 .. 2106-02-07" in err


# ---- 4. decode --json gives fields
def test_decode_json_is_one_object_of_fields_per_layer(capsys):
    rep = run_json(capsys, ["decode", READ_VIA_M2])
    assert [layer["layer"] for layer in rep] == ["MAC", "LLC", "AL"]
    mac, llc, al = (layer["fields"] for layer in rep)
    assert mac["address"] == "A8040A1E8903" and mac["route"] == ["A8040A1E8902"] and mac["discipline"] == "RA2"
    assert mac["max_response"] == 40 and mac["direction"] == "downlink" and mac["crc_check"] == "ok"
    assert llc["dsap_name"] == "application" and llc["ecc"] == 0
    assert al == {"attr": 2, "name": "READ.REQ", "registers": [{"id": "0x003F", "name": "status word"}]}
