"""Bad input to `smitp`: one line on stderr naming the field at fault, exit code 2 (1 when what
the command talked to failed, 130 on Ctrl-C), never a traceback, and nothing started before
the input was checked. With --json the error is also {"error": "..."} on stdout."""

import json
import os
import select
import signal
import subprocess
import sys

import pytest

K1, K2 = "11" * 16, "22" * 16
M1 = "A8040A1E8901"
FRAME = "1d84891e0a04a831000001667fd351742c7a4f2827dcf3f6a47559d82ed83bf4175b"

# The command as its console script runs it: sys.exit(main()).
RUN = "from smitp.cli import main\nsys.exit(main(sys.argv[1:]))\n"
# Before it, every way to start something is closed: a board, a tool or a key writer is a
# subprocess, a modem or an optical probe a serial port. A case that gets that far exits 99.
GUARD = """
import os, subprocess, sys
import serial

def started(*args, **kwargs):
    sys.stderr.write("started %r\\n" % (args[:1],))
    os._exit(99)

subprocess.Popen = started
serial.Serial.open = started
"""


def smitp(*args, cwd, setup="", guard=True):
    """Run `smitp args`; the CompletedProcess."""
    code = "import sys\n" + (GUARD if guard else "") + setup + RUN
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def error_line(r):
    """The one line of a failed command, after 'smitp CMD: error: '."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and ": error: " in lines[-1], r.stderr
    return lines[-1].split(": error: ", 1)[1]


def key_file(**entry):
    return json.dumps({M1: dict({"k1": K1, "k2": K2}, **entry)})


FILES = {
    "good.json": key_file(),
    "null.json": "null",
    "deep.json": "[" * 100000 + "]" * 100000,
    "nonhex.json": key_file(k1="zz" * 16),
    "short.json": key_file(k2="22" * 15),
    "nullkey.json": key_file(k1=None),
    "nullentry.json": json.dumps({M1: None}),
    "other.json": json.dumps({"A8040A1E8902": {"k1": K1, "k2": K2}}),
    "badaca.json": json.dumps({"XYZ": {"k1": K1, "k2": K2}}),
    "neglmon.json": key_file(lmon=-1),
    "boollmon.json": key_file(lmon=True),
    "twice.json": json.dumps({M1: {"k1": K1, "k2": K2}, M1.lower(): {"k1": K1, "k2": K2}}),
    "invalid.json": '{"A8040A1E8901": ',
    "notes.txt": "not an image",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    for name, text in FILES.items():
        (d / name).write_text(text)
    (d / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (d / "adir").mkdir()
    (d / "old").mkdir()
    (d / "old" / "notes.txt").write_text("not part of an image")
    return d


def provision(keys):
    return ["provision", "--meter", M1, "--keys", keys, "--flash", "m1.flash"]


READ = ["read", "--meter", M1, "--register", "status word"]
READTAB = ["readtab", "--meter", M1, "--table", "event log"]
CLOCK = ["command", "--meter", M1, "sync-clock"]
DISPLAY = ["display", "--emulated"]

# (command line, what the one line must name)
BAD_INPUT = [
    # key files
    (provision("null.json"), "argument --keys: key file null.json: expected"),
    (provision("deep.json"), "nesting too deep"),
    (provision("nonhex.json"), "meter A8040A1E8901: k1 is not hexadecimal"),
    (provision("short.json"), "meter A8040A1E8901: k2 must be 16 bytes"),
    (provision("nullkey.json"), "meter A8040A1E8901: k1 must be a string"),
    (provision("nullentry.json"), "meter A8040A1E8901: expected"),
    (provision("badaca.json"), "ACA 'XYZ' is not hexadecimal"),
    (provision("neglmon.json"), "LMON must be an integer in 0 .. 2**64 - 1"),
    (provision("boollmon.json"), "LMON must be an integer in 0 .. 2**64 - 1"),
    (provision("twice.json"), "a meter appears twice"),
    (provision("invalid.json"), "is not valid JSON"),
    (provision("binary.json"), "is not UTF-8 text"),
    (provision("missing.json"), "missing.json: No such file"),
    (provision("adir"), "key file adir is a directory"),
    (provision("/dev/zero"), "is not a regular file"),
    (["hhu", "provision", "--emulated", "--keys", "good.json", "--new-keys", "null.json"], "argument --new-keys"),
    (["read", "--meter", "A8040A1E8902", "--register", "1", "--auth", "--keys", "good.json"],
     "--keys: the key file has no entry for meter A8040A1E8902"),
    (READ + ["--auth"], "--keys FILE is needed: the request is authenticated"),
    # numbers out of range
    (READTAB + ["--first", "-1"], "argument --first: '-1' is outside 0..4294967295"),
    (READTAB + ["--count", "0"], "argument --count"),
    (["readtab", "--meter", M1, "--spontaneous", "-5"], "argument --spontaneous"),
    (CLOCK + ["--time", str(1 << 32)], "argument --time"),
    (CLOCK + ["--time", "yesterday"], "argument --time: 'yesterday' is neither"),
    (provision("good.json") + ["--lmon", str(1 << 64)], "argument --lmon"),
    (["decode", FRAME, "--mon", "-1"], "argument --mon"),
    (["sim", "--meters", "0"], "argument --meters: '0' is outside 1..100000"),
    (["sim", "--meters", "1000000000"], "argument --meters"),
    (["sim", "--boards", "51"], "argument --boards: '51' is outside 0..50"),
    (["sim", "--meters", "100", "--boards", "2"], "--boards"),
    (["sim", "--meters", "10", "--fail-repeaters", "11"], "--fail-repeaters"),
    (DISPLAY + ["--frames", "0"], "argument --frames"),
    (DISPLAY + ["--interval", "nan"], "argument --interval"),
    (DISPLAY + ["--dwell", "256"], "argument --dwell"),
    (DISPLAY + ["--import-w", "-5"], "argument --import-w"),
    (DISPLAY + ["--scroll", ",".join(["status word"] * 9)], "argument --scroll: a display list holds at most 8"),
    (DISPLAY + ["--message", "x" * 33], "argument --message"),
    (DISPLAY + ["--message", "caf\u00e9"], "argument --message: a message is printable ASCII"),
    # paths
    (["sim", "--svg", "missing/tree.svg"], "argument --svg: missing/tree.svg: No such file or directory"),
    (["sim", "--svg", "adir"], "argument --svg: adir is not a regular file"),
    (DISPLAY + ["--png", "notes.txt/lcd.png"], "argument --png"),
    (DISPLAY + ["--workdir", "notes.txt"], "argument --workdir: notes.txt is not a folder"),
    (provision("good.json")[:-1] + ["adir"], "argument --flash: adir is not a regular file"),
    (["image", "--out", "old"], "argument --out: old holds notes.txt"),
    (READ + ["--port", "/dev/no-such-modem"], "argument --port: /dev/no-such-modem: No such file"),
    (["deploy", "--port", "adir"], "argument --port: adir is not a serial device"),
    # ACAs
    (["read", "--meter", "A8040A1E89", "--register", "1"], "argument --meter: ACA 'A8040A1E89' is not 6 bytes"),
    (READ + ["--via", "A8040A1E8902,nothex"], "argument --via: ACA 'nothex'"),
    (READ + ["--via", ",".join(["A8040A1E8902"] * 9)], "argument --via: at most 8 repeaters"),
    (["read", "--meter", "A8040A1E8999", "--register", "1", "--emulated"], "--meter: A8040A1E8999 is not on the emulated"),
    (["hhu", "--emulated", "--aca", "A8040A1E89GG"], "argument --aca"),
    (["hhu", "provision", "--emulated", "--keys", "good.json", "--address", "a!b"], "argument --address"),
    # registers, values, fields
    (["read", "--meter", M1, "--register", "0x7777"], "argument --register: no register '0x7777'"),
    (["read", "--meter", M1] + ["--register", "clock"] * 40, "--register: 40 registers do not fit"),
    (["write", "--meter", M1, "--register", "clock", "--value", "soon"], "--value: 'soon' is neither seconds since 1970 nor an ISO 8601"),
    (["write", "--meter", M1, "--register", "clock", "--value", "-1"], "--value: '-1' is outside 1970-01-01"),
    (["readtab", "--meter", M1, "--table", "status word"], "argument --table: 0x003F (status word) is not a table"),
    (READTAB + ["--fields", "colour"], "--fields: table 0x0A00 has no field 'colour'"),
    (READTAB + ["--from", "5", "--first", "1"], "do not mix"),
    (["hhu", "command", "--emulated", "--data", "zz"], "argument --data"),
    (["hhu", "write", "--emulated", "--register", "clock", "--value", "x"], "--value"),
    (["hhu", "read", "--emulated", "--register", "clock", "--auth"], "--keys FILE is needed"),
    (["hhu", "provision", "--emulated", "--keys", "good.json", "--new-keys", "other.json"],
     "--new-keys: the key file has no entry for meter A8040A1E8901"),
    (["decode", FRAME, "--key", "zz" * 16], "argument --key: the key is not hexadecimal"),
    # commands and their parts
    (["image", "--board", "no_such_board"], "argument --board: invalid choice"),
    (["deploy", "--board", "unix", "--port", "/dev/null"], "argument --board: invalid choice: 'unix'"),
    (["no-such-command"], "argument command: invalid choice"),
    (["readtab", "--meter", M1], "one of the arguments --table --custom --spontaneous is required"),
    (provision("good.json") + ["--state", "adir"], "argument --state: not allowed with argument --flash"),
    (["command", "--meter", M1, "freeze", "--time", "5"], "--time goes with sync-clock"),
]


@pytest.mark.parametrize("args,names", BAD_INPUT, ids=[" ".join(a)[:60] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_field(work, args, names):
    r = smitp(*args, cwd=work)
    assert r.returncode == 2, r.stderr
    assert names in error_line(r)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert K1 not in r.stderr and "zz" * 16 not in r.stderr  # keys are never shown


@pytest.mark.parametrize("args", [
    ["read", "--meter", "XYZ", "--register", "1", "--json"],
    ["sim", "--json", "--meters", "0"],
    provision("null.json") + ["--json"],
])
def test_json_errors_are_json(work, args):
    r = smitp(*args, cwd=work)
    assert r.returncode == 2
    assert json.loads(r.stdout) == {"error": error_line(r)}


def test_bare_command_prints_usage(work):
    r = smitp(cwd=work)
    assert r.returncode == 2 and r.stderr.startswith("usage: smitp")
    assert "give a command" in error_line(r) and "smitp COMMAND --help" in error_line(r)


def fake_tool(work, name, *said):
    """A stand-in for a tool that fails saying `said` (a MicroPython traceback, say)."""
    path = work / name
    path.write_text("#!/bin/sh\n" + "".join("echo '%s' >&2\n" % line for line in said) + "exit 1\n")
    path.chmod(0o755)
    return path


def test_mpy_cross_failure_is_one_line(work, tmp_path):
    tool = fake_tool(work, "mpy-cross", "Traceback (most recent call last):", '  File "x.py", line 3',
                     "SyntaxError: invalid syntax")
    setup = "import smitp.image\nsmitp.image.find_tool = lambda name: %r\n" % str(tool)
    r = smitp("image", "--out", str(tmp_path / "image"), "--json", cwd=work, setup=setup, guard=False)
    assert r.returncode == 1
    line = error_line(r)
    assert line.startswith("mpy-cross rejected ") and line.endswith(": line 3: SyntaxError: invalid syntax")
    assert json.loads(r.stdout) == {"error": line}


def test_mpremote_failure_is_one_line(work, tmp_path):
    tool = fake_tool(work, "mpremote", "mpremote: failed to access /dev/null")
    image = tmp_path / "build" / "nucleo_f401re_plm01a1"
    image.mkdir(parents=True)
    (image / "board.mpy").write_bytes(b"M")
    setup = ("import pathlib, smitp.deploy as d\n"
             "d.ROOT, d.build_image, d.find_tool = pathlib.Path(%r), lambda *a: [], lambda name: %r\n"
             % (str(tmp_path), str(tool)))
    r = smitp("deploy", "--port", "/dev/null", cwd=work, setup=setup, guard=False)
    assert r.returncode == 1
    assert error_line(r).startswith("step 1 failed: ") and error_line(r).endswith("failed to access /dev/null")


@pytest.fixture
def silent_pty():
    """A serial port with nothing behind it: (the slave side's name, the master side) of a pty
    nobody answers on."""
    master, slave = os.openpty()
    yield os.ttyname(slave), master
    os.close(master)
    os.close(slave)


@pytest.fixture
def silent_port(silent_pty):
    return silent_pty[0]


def test_no_answer_is_a_runtime_failure(work, silent_port):
    setup = "import smitp.hhu\nsmitp.hhu.SIGN_ON_TIMEOUT_S = 0.2\n"  # no need to wait 2 s for nothing
    r = smitp("hhu", "--port", silent_port, "--json", cwd=work, setup=setup, guard=False)
    assert r.returncode == 1
    assert "no identification from the optical port" in error_line(r)
    assert json.loads(r.stdout) == {"error": error_line(r)}


def test_interrupt_is_one_line(work, silent_pty):
    port, master = silent_pty
    # A sign-on timeout longer than the test, so a busy machine cannot end the wait before the signal.
    setup = "import sys\nimport smitp.hhu\nsmitp.hhu.SIGN_ON_TIMEOUT_S = 600\n"
    p = subprocess.Popen([sys.executable, "-c", setup + RUN, "hhu", "--port", port], cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupted while signing on: its request is out, the identification never comes.
    assert select.select([master], [], [], 60)[0], "no sign-on request within 60 s"
    assert os.read(master, 64).startswith(b"/?")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert (p.returncode, err, out) == (130, "smitp hhu: error: interrupted\n", "")


def test_provision_refuses_to_format_a_file_that_is_not_a_flash_image(work):
    before = (work / "good.json").read_bytes()
    r = smitp("provision", "--meter", M1, "--keys", "good.json", "--flash", "good.json", cwd=work, guard=False)
    assert r.returncode == 1 and "not an emulated board's flash image" in error_line(r)
    assert (work / "good.json").read_bytes() == before  # nothing lost
