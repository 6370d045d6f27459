"""`smitp demo --mcu` on a machine without the emulated-MCU image or QEMU: one
line saying how to get them, exit 1, and the JSON error; no board started."""

import json
from pathlib import Path

from smitp import mcu_board
from smitp.cli import main


def test_demo_mcu_without_image_says_how_to_build_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(mcu_board, "IMAGE", Path(tmp_path) / "firmware.elf")
    monkeypatch.setattr(mcu_board.shutil, "which", lambda name: "/usr/bin/" + name)
    assert main(["demo", "--mcu", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["error"].endswith("run `make mcu`")
    assert err.count("\n") == 1 and "make mcu" in err


def test_demo_mcu_without_qemu_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(mcu_board.shutil, "which", lambda name: None)
    assert main(["demo", "--mcu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install qemu-system-arm" in err
