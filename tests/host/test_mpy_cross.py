"""The MicroPython compatibility gate, part 1: mpy-cross accepts every file that
runs on a board, and the board images build and load on the unix port."""

import glob
import os
import subprocess

import pytest
from tools import ROOT, micropython_path, mpy_cross_path

from smitp.image import ImageError, Manifest, build_image, compile_file, manifest_files

SOURCES = sorted(
    os.path.relpath(p, ROOT)
    for d in ("firmware", "boards")
    for p in glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True)
)
BOARDS = ["unix", "nucleo_f401re_plm01a1", "nucleo_f401re_pl460"]


@pytest.mark.parametrize("src", SOURCES)
def test_mpy_cross_accepts(src, tmp_path):
    mpy_cross = mpy_cross_path()
    assert mpy_cross, "mpy-cross not found: run `make setup`"
    r = subprocess.run(
        [mpy_cross, "-o", str(tmp_path / "out.mpy"), os.path.join(ROOT, src)], capture_output=True, text=True
    )
    assert r.returncode == 0, "mpy-cross rejected %s:\n%s%s" % (src, r.stdout, r.stderr)


@pytest.mark.parametrize("board", BOARDS)
def test_build_image_compiles_every_firmware_module(board, tmp_path):
    written = build_image(board, tmp_path)
    expected = sorted(
        [
            os.path.relpath(p, os.path.join(ROOT, "firmware"))[:-3] + ".mpy"
            for p in glob.glob(os.path.join(ROOT, "firmware", "meter", "**", "*.py"), recursive=True)
        ]
        + ["board.mpy"]
    )
    got = sorted(os.path.relpath(p, tmp_path) for p in written)
    assert got == expected
    for p in written:
        assert p.read_bytes()[:1] == b"M", "%s is not an .mpy file" % p  # .mpy header starts with 'M'
    assert sorted(t.as_posix()[:-3] + ".mpy" for _, t in manifest_files(board)) == got


def test_unix_port_imports_every_module_from_the_image(tmp_path):
    """The .mpy files load in the real interpreter (same mpy version) and every
    firmware module imports without the source tree on sys.path."""
    mp = micropython_path()
    assert mp, "micropython not found: run `make setup`"
    build_image("nucleo_f401re_plm01a1", tmp_path)
    mods = sorted(
        os.path.relpath(p, tmp_path)[:-4].replace(os.sep, ".").replace(".__init__", "")
        for p in glob.glob(os.path.join(tmp_path, "meter", "**", "*.mpy"), recursive=True)
    )
    script = (
        "import sys\n"
        "sys.path[:] = [%r, '.frozen']\n"
        "for m in %r:\n"
        "    __import__(m)\n"
        "    assert sys.modules[m].__file__.endswith('.mpy'), m\n"
        "print('imported', len(%r))\n" % (str(tmp_path), mods, mods)
    )
    r = subprocess.run([mp, "-c", script], capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0 and "imported %d" % len(mods) in r.stdout, r.stdout + r.stderr


def test_rejected_file_is_named(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("match x:\n    case 1:\n        pass\n")
    with pytest.raises(ImageError) as e:
        compile_file(bad, tmp_path / "bad.mpy", "bad.py")
    assert str(bad) in str(e.value) and "SyntaxError" in str(e.value)


def test_manifest_vocabulary(tmp_path):
    (tmp_path / "lib" / "pkg" / "sub").mkdir(parents=True)
    for f in ("pkg/__init__.py", "pkg/a.py", "pkg/sub/b.py", "one.py"):
        (tmp_path / "lib" / f).write_text("X = 1\n")
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "board.py").write_text("B = 1\n")
    (tmp_path / "lib" / "manifest.py").write_text(
        'options.defaults(extra=False)\n'
        'package("pkg", files=["a.py"] if not options.extra else None)\n'
        'module("one.py", opt=3)\n'
    )
    (tmp_path / "board" / "manifest.py").write_text(
        'metadata(description="test")\n'
        'include("../lib", extra=True)\n'
        'include("../lib/manifest.py")\n'  # a second include of the same manifest is ignored
        'module("board.py", base_path="$(BOARD_DIR)")\n'
    )
    m = Manifest(tmp_path / "board")
    m.run(tmp_path / "board" / "manifest.py")
    assert [(t.as_posix(), opt) for _, t, opt in m.files] == [
        ("pkg/__init__.py", None), ("pkg/a.py", None), ("pkg/sub/b.py", None), ("one.py", 3), ("board.py", None)
    ]
    assert m.metadata == {"description": "test"}

    (tmp_path / "board" / "manifest.py").write_text('require("aioble")\n')
    with pytest.raises(ImageError, match="require"):
        Manifest(tmp_path / "board").run(tmp_path / "board" / "manifest.py")
    (tmp_path / "board" / "manifest.py").write_text('module("missing.py")\n')
    with pytest.raises(ImageError, match="missing.py"):
        Manifest(tmp_path / "board").run(tmp_path / "board" / "manifest.py")


def test_unknown_board():
    with pytest.raises(ImageError, match="unknown board"):
        build_image("no_such_board")
