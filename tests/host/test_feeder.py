"""The persistent feeder (`smitp feeder`): emulated boards (real MicroPython) that stay up in the
background, the concentrator's ST7580 on an RFC 2217 port with its modem lines, each meter's
optical port on a pty, and the commands that use it by default. One feeder serves the module;
its teardown stops it whatever happened, and the last test checks that nothing of it is left."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from iec62056_21.client import Iec6205621Client

from smitp import feeder
from smitp.cli import main
from smitp.concentrator import Concentrator, parse_aca
from smitp.serial_modem import ModemPort, ModemTimeout, SerialModem

M1, M2, M3 = "A8040A1E8901", "A8040A1E8902", "A8040A1E8903"


def smitp(*args):
    """The command as a user runs it, in its own process."""
    return subprocess.run([sys.executable, "-m", "smitp.cli"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=110, stdin=subprocess.DEVNULL)


def _processes_of(state_dir):
    """Pids of live processes whose command line names the state directory (the feeder and its boards)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % pid) as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if str(state_dir).encode() in cmd and not zombie:
            found.append(int(pid))
    return found


def _stop(state):
    """Teardown: the feeder stopped, by `down`, else by its pid."""
    if feeder.running(state):
        try:
            feeder.down(state)
        except feeder.FeederError:
            pid = feeder.read_pid(state)
            if pid:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    st = feeder.State(tmp_path_factory.mktemp("feeder") / "state")
    try:
        yield st
    finally:
        _stop(st)


def up(state):
    if not feeder.running(state):
        feeder.up(state, 3)
    return state


def test_done_when_a_written_label_survives_down_and_up(state):
    r = smitp("feeder", "up", "--meters", 3, "--state", state.dir)
    assert r.returncode == 0, r.stderr
    assert "rfc2217://127.0.0.1:" in r.stdout and M3 in r.stdout  # `up` returned; the feeder stays
    assert feeder.running(state)
    r = smitp("write", "--state", state.dir, "--meter", M1, "--register", "metering point label", "--value", "KITCHEN")
    assert r.returncode == 0 and "written: ACK" in r.stdout, r.stderr
    r = smitp("feeder", "down", "--state", state.dir)
    assert r.returncode == 0 and "stopped" in r.stdout, r.stderr
    assert not feeder.running(state) and not _processes_of(state.dir)
    r = smitp("feeder", "up", "--state", state.dir)  # the state directory knows its meters
    assert r.returncode == 0, r.stderr
    r = smitp("read", "--state", state.dir, "--meter", M1, "--register", "metering point label", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["registers"][0]["value"] == "KITCHEN"


def test_status_json_lists_meters_routes_and_ports(state, capsys):
    up(state)
    assert main(["feeder", "status", "--state", str(state.dir), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert [m["aca"] for m in st["meters"]] == [M1, M2, M3] and all(m["alive"] for m in st["meters"])
    assert st["modem"].startswith("rfc2217://127.0.0.1:") and st["pid"] == feeder.read_pid(state)
    for m in st["meters"]:
        assert os.path.realpath(m["optical"]) == m["optical_pty"] and m["optical_pty"].startswith("/dev/pts/")
        assert os.path.exists(m["flash"])
    assert st["keys"] == str(state.keys) and set(json.loads(state.keys.read_text())) == {M1, M2, M3}
    assert (state.keys.stat().st_mode & 0o777) == 0o600


def test_a_stock_iec62056_21_client_reads_a_meter_through_its_optical_pty(state):
    up(state)
    client = Iec6205621Client.with_serial_transport(str(state.optical_link(M2)))
    client.connect()
    try:
        answer = client.standard_readout()
    finally:
        client.disconnect()
    values = {d.address: d.value for d in answer.data}
    assert values["0.0.1"] == M2 and values["0.0.0"] == "SN1E8902"


def test_the_modem_port_behaves_as_an_st7580_behind_a_usb_adapter(state):
    url = feeder.status(up(state))["modem"]
    modem = SerialModem(url)  # the driver of a real modem: RTS drives T_REQ, DTR RESETN
    modem.open()
    try:
        modem.reset()  # a RESETN pulse (DTR): BIO_ResetIndication, then the configuration written
        assert modem.resets == 1 and modem.config_errors == 0
        conc = Concentrator(ModemPort(modem))
        assert conc.read(parse_aca(M1), [0x0011])[0x0011] == bytes.fromhex(M1)
    finally:
        modem.close()
    wrong = SerialModem(url, baudrate=9600, boot_timeout_s=1.0)  # the modem runs at 57600 8N1 only
    wrong.open()
    try:
        with pytest.raises(ModemTimeout):
            wrong.reset()
    finally:
        wrong.close()


def test_port_options_take_the_feeders_ports_as_they_take_hardware(state, capsys):
    st = feeder.status(up(state))
    assert main(["read", "--port", st["modem"], "--meter", M2, "--register", "0x0011", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["registers"][0]["value"] == M2
    optical = st["meters"][2]["optical"]
    assert main(["hhu", "--port", optical, "--json"]) == 0  # as an optical probe's port
    assert json.loads(capsys.readouterr().out)["aca"] == M3


def test_commands_at_once_take_the_modem_port_in_turn(state):
    up(state)
    procs = [subprocess.Popen([sys.executable, "-m", "smitp.cli", "read", "--state", str(state.dir), "--meter", m,
                               "--register", "0x0011"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in (M1, M2)]
    outs = [p.communicate(timeout=110) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert M1 in outs[0][0] and M2 in outs[1][0]


def test_routes_come_from_the_routing_table(state, capsys):
    up(state)
    feeder.save_routes(state, {M1: [], M3: [M2]})  # what `smitp discover` writes
    try:
        # M3 hears only M2: without --via the route can only come from the table
        assert main(["read", "--state", str(state.dir), "--meter", M3, "--register", "0x0011", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["registers"][0]["value"] == M3
        assert main(["feeder", "status", "--state", str(state.dir)]) == 0
        assert "route: concentrator -> %s -> %s" % (M2, M3) in capsys.readouterr().out
    finally:
        state.routes.unlink()


def test_provision_and_hhu_use_the_running_feeder(state, tmp_path, capsys):
    up(state)
    keys = tmp_path / "keys.json"
    keys.write_text(state.keys.read_text())
    assert main(["provision", "--state", str(state.dir), "--meter", M2, "--keys", str(keys), "--lmon", "41"]) == 0
    assert str(state.dir / "m2.flash") in capsys.readouterr().out
    assert main(["read", "--state", str(state.dir), "--meter", M2, "--register", "last message order number",
                 "--auth", "--keys", str(keys), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["registers"][0]["value"] == 42  # the LMON provisioned, + 1
    assert main(["hhu", "--state", str(state.dir), "--aca", M3, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["aca"] == M3


def test_two_ups_on_one_state_directory_are_refused(state):
    up(state)
    r = smitp("feeder", "up", "--state", state.dir)
    assert r.returncode == 1 and "a feeder already runs in %s" % state.dir in r.stderr
    assert feeder.running(state)


def test_down_when_none_runs_and_a_stale_pid_file(state, capsys):
    _stop(state)
    assert main(["feeder", "down", "--state", str(state.dir)]) == 1
    assert capsys.readouterr().err.strip() == "smitp feeder: error: no feeder runs in %s" % state.dir
    state.pid.write_text("999999999\n")  # left by a feeder killed without its clean-up
    assert main(["feeder", "down", "--state", str(state.dir)]) == 1
    assert "removed the stale pid file of process 999999999" in capsys.readouterr().err
    state.pid.write_text("999999999\n")
    assert main(["feeder", "up", "--state", str(state.dir), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["stale_pid_removed"] == 999999999 and feeder.read_pid(state) == st["pid"] != 999999999


def test_a_killed_feeder_leaves_a_stale_pid_file_and_boards_the_next_up_ends(state):
    up(state)
    pid = feeder.read_pid(state)
    boards = [p for p in _processes_of(state.dir) if p != pid]
    assert len(boards) == 3
    os.kill(pid, signal.SIGKILL)  # no clean-up: its pid file and its boards stay
    end = time.monotonic() + 5
    while feeder.running(state) and time.monotonic() < end:
        time.sleep(0.05)
    assert not feeder.running(state) and state.pid.exists()
    st = feeder.up(state)
    assert st["stale_pid_removed"] == pid and all(m["alive"] for m in st["meters"])
    assert not set(boards) & set(_processes_of(state.dir))  # one board process per flash image
    assert "ended 3 boards left by a feeder that did not stop" in state.log.read_text()


def test_commands_say_how_to_start_a_feeder_when_none_runs(tmp_path):
    r = smitp("read", "--state", tmp_path / "none", "--meter", M1, "--register", "0x003F", "--json")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "no feeder runs in %s: start one with `smitp feeder up --state %s`" % (tmp_path / "none",
                                                                                 tmp_path / "none") in r.stderr
    assert json.loads(r.stdout)["error"].startswith("no feeder runs")
    assert not (tmp_path / "none").exists()  # asking made nothing


@pytest.mark.skipif(not os.environ.get("SMITP_SLOW_TESTS"), reason="discovery in real time takes about 2 minutes; "
                                                                   "set SMITP_SLOW_TESTS=1")
@pytest.mark.timeout(400)
def test_discover_fills_the_routing_table(state, capsys):
    up(state)
    assert main(["discover", "--state", str(state.dir), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["registered"] == 3
    assert feeder.load_routes(state) == {M1: [], M2: [], M3: [M2]}


def test_down_leaves_nothing_running(state):
    up(state)
    pid = feeder.read_pid(state)
    assert pid and _processes_of(state.dir)
    feeder.down(state)
    end = time.monotonic() + 5
    while _processes_of(state.dir) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _processes_of(state.dir)
    assert not state.pid.exists() and not state.control.exists() and not state.optical_link(M1).exists()
    assert (state.dir / "m1.flash").exists() and state.keys.exists()  # what the meters keep stays
