"""Deploy without hardware: the mpremote command lists a deploy would run."""

import json

import pytest

from smitp.deploy import DeployError, commands, deploy
from smitp.image import ROOT

BOARD = "nucleo_f401re_plm01a1"


def _image(tmp_path):
    (tmp_path / "meter").mkdir()
    (tmp_path / "meter" / "__init__.mpy").write_bytes(b"M")
    (tmp_path / "board.mpy").write_bytes(b"M")
    return tmp_path


def test_dry_run_command_list(tmp_path):
    build = _image(tmp_path)
    cmds = deploy(BOARD, "/dev/ttyACM0", build_dir=build, dry_run=True)
    for cmd in cmds:
        assert cmd[0].endswith("mpremote") and cmd[1:3] == ["connect", "/dev/ttyACM0"]
    steps = [cmd[3:] for cmd in cmds]
    # 1: remove the old tree and every module that would shadow the new .mpy files
    assert steps[0][0] == "exec"
    removed = json.loads(steps[0][1].split("for p in ", 1)[1].split(":\n", 1)[0])
    assert {"meter", "board.py", "board.mpy"} <= set(removed)
    # 2..: copy the compiled tree, then main.py as source, then reset
    assert steps[1:] == [
        ["cp", str(build / "board.mpy"), ":board.mpy"],
        ["cp", "-r", str(build / "meter"), ":meter"],
        ["cp", str(ROOT / "boards" / BOARD / "main.py"), ":main.py"],
        ["reset"],
    ]


def test_clean_script_compiles_as_python(tmp_path):
    cmds = commands(BOARD, "/dev/ttyACM0", _image(tmp_path))
    compile(cmds[0][4], "<exec>", "exec")


def test_refuses_unix_and_unknown_boards(tmp_path):
    build = _image(tmp_path)
    with pytest.raises(DeployError, match="raw REPL"):
        deploy("unix", "/dev/ttyACM0", build_dir=build, dry_run=True)
    with pytest.raises(DeployError, match="unknown board"):
        deploy("no_such_board", "/dev/ttyACM0", build_dir=build, dry_run=True)


def test_missing_image(tmp_path):
    with pytest.raises(DeployError, match="make image"):
        deploy(BOARD, "/dev/ttyACM0", build_dir=tmp_path / "nothing", dry_run=True)
