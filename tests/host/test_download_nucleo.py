"""The F401RE boards (the Nucleo with either modem shield, and its emulation under QEMU) take
no software download: no room for two slots (docs/flashing.md, "Software download"). Their
Board says so (serves_download() returns False), and the firmware then answers REPROG with
NACK 6 (tests/firmware/test_download.py); the unix board keeps the services."""

import ast
import os

import pytest

from tools import ROOT

F401_BOARDS = ("nucleo_f401re_plm01a1", "nucleo_f401re_pl460", "qemu_f401re")


def _serves_download(board):
    """The constant serves_download() of the board's Board class returns, None if it has none."""
    with open(os.path.join(ROOT, "boards", board, "board.py")) as f:
        tree = ast.parse(f.read())
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Board"):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "serves_download"):
            rets = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
            assert len(rets) == 1 and isinstance(rets[0].value, ast.Constant), board
            return rets[0].value.value
    return None


@pytest.mark.parametrize("board", F401_BOARDS)
def test_f401re_boards_refuse_download(board):
    assert _serves_download(board) is False


def test_unix_board_serves_download_and_the_refusal_is_documented():
    assert _serves_download("unix") is None  # absent: the services are there
    with open(os.path.join(ROOT, "docs", "flashing.md")) as f:
        doc = f.read()
    assert "## Software download" in doc and "NACK 6" in doc
