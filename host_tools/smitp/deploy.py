"""Deploy a board image to a real board with mpremote.

Steps, one mpremote call each: remove the old :meter tree and any module that
would shadow the new .mpy files (a board imports foo.py before foo.mpy), copy
the compiled tree, copy the board's main.py as source (the port runs main.py at
boot), then hard-reset the board. mpremote cannot drive the unix port (it has no
raw REPL), so the emulated board is not a deploy target.

    python -m smitp.deploy --board nucleo_f401re_plm01a1 --port /dev/ttyACM0 [--dry-run]
"""

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from meter.errors import SmitpError
from smitp.image import BOARDS, ROOT, ImageError, boards, build_image, find_tool

# Runs on the board: remove files and trees, ignoring what is not there.
_CLEAN = """import os
def rm(p):
    try:
        if os.stat(p)[0] & 0x4000:
            for n in os.listdir(p):
                rm(p + "/" + n)
            os.rmdir(p)
        else:
            os.remove(p)
    except OSError:
        pass
for p in %s:
    rm(p)
"""


class DeployError(SmitpError):
    """The image could not be built or a step on the board failed."""


def _main_py(board):
    if board == "unix":
        raise DeployError("the unix port has no raw REPL, mpremote cannot drive it: run it with micropython")
    main_py = BOARDS / board / "main.py"
    if not main_py.is_file():
        raise DeployError("unknown board %r: no boards/%s/main.py" % (board, board))
    return main_py


def targets():
    """The boards a deploy can reach."""
    out = []
    for board in boards():
        try:
            _main_py(board)
        except DeployError:
            continue
        out.append(board)
    return out


def commands(board, port, build_dir, mpremote="mpremote"):
    """The mpremote argument lists that deploy the compiled tree in build_dir."""
    main_py = _main_py(board)
    build_dir = Path(build_dir)
    entries = sorted(build_dir.iterdir()) if build_dir.is_dir() else []
    if not entries:
        raise DeployError(
            "empty or missing image folder %s: build it with `make image BOARD=%s`" % (build_dir, board)
        )
    stale = []
    for e in entries:
        if e.is_dir():
            stale += [e.name, e.name + ".py", e.name + ".mpy"]
        elif e.suffix == ".mpy":
            stale += [e.stem + ".py", e.name]
    base = [mpremote, "connect", port]
    cmds = [base + ["exec", _CLEAN % json.dumps(stale)]]
    for e in entries:
        if e.is_dir():
            cmds.append(base + ["cp", "-r", str(e), ":" + e.name])
        elif e.suffix == ".mpy":
            cmds.append(base + ["cp", str(e), ":" + e.name])
    cmds.append(base + ["cp", str(main_py), ":main.py"])
    cmds.append(base + ["reset"])
    return cmds


def deploy(board, port, build_dir=None, dry_run=False):
    """Build (unless build_dir is given) and copy the image; return the commands.

    With dry_run=True nothing touches the board: the mpremote argument lists
    are returned without running them.
    """
    _main_py(board)
    if build_dir is None:
        build_dir = ROOT / "build" / board
        try:
            build_image(board, build_dir)
        except ImageError as e:
            raise DeployError(str(e)) from e
    mpremote = find_tool("mpremote") or "mpremote"
    cmds = commands(board, port, build_dir, mpremote)
    if dry_run:
        return cmds
    for i, cmd in enumerate(cmds, 1):
        print("[%d/%d] %s" % (i, len(cmds), _show(cmd)), file=sys.stderr, flush=True)  # stdout: the result
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            raise DeployError("cannot run %s: %s (run `make setup`)" % (cmd[0], e.strerror or e)) from None
        if r.returncode != 0:
            said = (r.stderr or r.stdout).strip().splitlines() or ["no message"]
            raise DeployError("step %d failed: %s: %s" % (i, _show(cmd), said[-1].strip()))
    return cmds


def _show(cmd):
    if cmd[3] == "exec":
        return shlex.join(cmd[1:4]) + " <remove old image>"
    return shlex.join(cmd[1:])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="smitp deploy", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--board", default="nucleo_f401re_plm01a1", help="folder under boards/")
    ap.add_argument("--port", default="/dev/ttyACM0", help="the board's serial port")
    ap.add_argument("--build-dir", help="deploy this compiled tree instead of building build/<board>")
    ap.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    args = ap.parse_args(argv)
    try:
        cmds = deploy(args.board, args.port, args.build_dir, args.dry_run)
    except DeployError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 1
    if args.dry_run:
        for cmd in cmds:
            print(shlex.join(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
