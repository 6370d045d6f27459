"""Provisioning: a meter's keys (and optionally its LMON) into its non-volatile store.

The firmware's own KeyStore and LmonCounter write the records, so the layout
is the meter's by construction:
- an emulated board: the real MicroPython interpreter mounts the board's flash
  image (littlefs2, created if blank) and writes the records;
- a real board: the same lines run on the board through mpremote;
- an in-process meter: its Store directly.
Keys travel on the interpreter's standard input or in the mpremote command,
never in a log line.
"""

import subprocess
import sys

from meter.errors import SmitpError
from smitp.emulated_board import BOARD_MAIN, micropython_path

_WRITE_RECORDS = """
from meter.app.lmon import KeyStore, LmonCounter
from meter.storage import Store
store = Store("/flash")
ok = KeyStore(store).provision(bytes.fromhex(K1), bytes.fromhex(K2))
if ok and LMON is not None:
    ok = LmonCounter(store).set(LMON)
print("provisioned" if ok else "flash refused the records")
"""

_MOUNT = """
import sys, vfs
sys.path.append(%(board_dir)r)
sys.path.append(%(firmware)r)
from board import FileFlash
flash = FileFlash(%(image)r)
try:
    fs = vfs.VfsLfs2(flash)
except OSError:
    vfs.VfsLfs2.mkfs(flash)
    fs = vfs.VfsLfs2(flash)
vfs.mount(fs, "/flash")
"""
_READ_KEYS = """
K1, K2, LMON = sys.stdin.readline().split()
LMON = None if LMON == "-" else int(LMON)
"""


class ProvisionError(SmitpError):
    pass


def _check(k1, k2):
    for name, k in (("K1", k1), ("K2", k2)):
        if len(k) != 16:
            raise ProvisionError("%s must be 16 bytes" % name)


def _check_image(image):
    # A new image is formatted; an existing file must already hold the
    # board's filesystem (littlefs2 keeps "littlefs" in its superblock) or be
    # erased, so that a mistyped path is refused instead of formatted over.
    try:
        with open(image, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ProvisionError("%s: %s" % (image, e.strerror)) from None
    if head.strip(b"\xff") and b"littlefs" not in head:  # all 0xFF: an erased chip
        raise ProvisionError("%s is not an emulated board's flash image; refusing to format it" % image)


def mount_script(image):
    """The start of a MicroPython script that mounts the emulated board's flash image `image` on
    /flash (formatted if new), the board's and the firmware's modules importable."""
    return _MOUNT % {"board_dir": str(BOARD_MAIN.parent), "firmware": str(BOARD_MAIN.parents[2] / "firmware"),
                     "image": str(image)}


def provision_image(image, k1, k2, lmon=None):
    """Write the keys (and LMON) into an emulated board's flash image file."""
    _check(k1, k2)
    _check_image(image)
    script = mount_script(image) + _READ_KEYS + _WRITE_RECORDS
    line = "%s %s %s\n" % (k1.hex(), k2.hex(), "-" if lmon is None else lmon)
    _run("provisioning %s" % image, [micropython_path(), "-c", script], line, 30)


def provision_board(port, k1, k2, lmon=None):
    """Write the keys (and LMON) into a real board's /flash through mpremote."""
    _check(k1, k2)
    code = "K1=%r\nK2=%r\nLMON=%r\n" % (k1.hex(), k2.hex(), lmon) + _WRITE_RECORDS
    _run("provisioning the board on %s" % port, [sys.executable, "-m", "mpremote", "connect", port, "exec", code],
         None, 60)


def _run(what, cmd, stdin, timeout_s):
    """Run the writer; ProvisionError with the last line it said unless it says "provisioned"."""
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ProvisionError("%s failed: no end after %d s" % (what, timeout_s)) from None
    if r.returncode != 0 or "provisioned" not in r.stdout:
        said = (r.stdout + r.stderr).strip().splitlines() or ["no message"]
        raise ProvisionError("%s failed: %s" % (what, said[-1].strip()))


def provision_store(store, k1, k2, lmon=None):
    """Same records into a meter.storage.Store (in-process meters, tests)."""
    from meter.app.lmon import KeyStore, LmonCounter

    _check(k1, k2)
    if not KeyStore(store).provision(k1, k2) or (lmon is not None and not LmonCounter(store).set(lmon)):
        raise ProvisionError("the store refused the records")
