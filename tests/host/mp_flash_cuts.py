# MicroPython (unix port) only: the data model on the emulated board's flash
# (littlefs2 on a file-backed NOR block device, boards/unix/board.py), driven
# in virtual time.
#
#   micropython tests/host/mp_flash_cuts.py wear DAYS IMAGE
#       a clean run: block erases per simulated day, the records written
#   micropython tests/host/mp_flash_cuts.py cuts CUTS SEED IMAGE
#       power cuts at random block operations (programs and erases, so in the
#       middle of littlefs updates): at a cut the flash stops taking writes,
#       RAM is dropped, the image is mounted again and the meter restarts.
#       Checks after each restart: no energy lost beyond one persistence
#       interval, every load profile record written before the cut step still
#       there (so at most the capture in progress is lost), rings readable
#       and in order.
# Prints one JSON line with the figures; exits 1 on a broken bound.
import json
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (HERE + "/../../firmware", HERE + "/../../boards/unix", HERE + "/../firmware"):
    sys.path.append(_p)

import vfs  # noqa: E402
from board import FileFlash  # noqa: E402
from meter.model import registers as R  # noqa: E402
from meter.storage import Store  # noqa: E402
from meter.timers import ENERGY_PERSIST_S  # noqa: E402
from meterkit import Sim, local_utc  # noqa: E402
from fwtest import Rng  # noqa: E402

WATTS = 1000  # per phase: 3 kW
STEP = 60
CUT_AFTER_OPS = 20  # block operations (programs, erases) until a cut: this many
CUT_SPREAD = 400  # ... plus a random count below this
# The energy record alone is written every ENERGY_PERSIST_S, so the cut
# comes within this many steps; more means the meter stopped writing.
MAX_STEPS_TO_CUT = (CUT_AFTER_OPS + CUT_SPREAD) * ENERGY_PERSIST_S // STEP + 1
MOUNT = "/fl"


class CuttingFlash(FileFlash):
    """The board's flash, dying after `left` more block programs or erases."""

    def __init__(self, path):
        super().__init__(path)
        self.left = -1
        self.ops = 0
        self.dead = False
        self.per_block = [0] * self.blocks

    def _op(self):
        self.ops += 1
        if self.left == 0:
            self.dead = True
        if self.dead:
            raise OSError(5)
        if self.left > 0:
            self.left -= 1

    def writeblocks(self, block, buf, off=0):
        self._op()
        super().writeblocks(block, buf, off)

    def ioctl(self, op, arg):
        if op == 6:  # erase
            self._op()
            self.per_block[arg] += 1
        return super().ioctl(op, arg)


_OLD = []  # flash objects of earlier mounts: files an abandoned littlefs still holds close against them


def mount(path):
    flash = CuttingFlash(path)
    _OLD.append(flash)
    try:
        fs = vfs.VfsLfs2(flash)
    except OSError:
        vfs.VfsLfs2.mkfs(flash)
        fs = vfs.VfsLfs2(flash)
    try:
        vfs.umount(MOUNT)
    except OSError:
        pass
    vfs.mount(fs, MOUNT)
    return flash


def wear(days, path):
    try:
        os.remove(path)
    except OSError:
        pass
    flash = mount(path)
    sim = Sim(local_utc(2026, 3, 1), store=Store(MOUNT), watts=WATTS)
    e0, w0 = flash.erases, sim.store.writes
    b0 = list(flash.per_block)
    sim.run(days * 86400, STEP)
    per_day = (flash.erases - e0) / days
    n = flash.blocks
    worst = max(flash.per_block[i] - b0[i] for i in range(n)) / days
    print(json.dumps({"days": days, "erases_per_day": per_day, "record_writes_per_day": (sim.store.writes - w0) / days,
                      "blocks": n, "erase_cycles_per_block_per_year": per_day * 365 / n,
                      "worst_block_cycles_per_year": worst * 365,
                      "profile_records": len(sim.meter.tables[R.LOAD_PROFILE])}))


def check_records(sim, period):
    recs = sim.records(R.LOAD_PROFILE)
    times = [int.from_bytes(r[0:4], "big") for r in recs]
    for a, b in zip(times, times[1:]):
        if b <= a or b % period:
            raise AssertionError("load profile out of order: %d then %d" % (a, b))
    sim.events()  # the event log reads back whole
    return times


def cuts(n_cuts, seed, path):
    try:
        os.remove(path)
    except OSError:
        pass
    rng = Rng(seed)
    flash = mount(path)
    sim = Sim(local_utc(2026, 3, 1), store=Store(MOUNT), watts=WATTS)
    done = 0
    worst_loss = 0
    steps = 0
    while done < n_cuts:
        flash.left = CUT_AFTER_OPS + rng.below(CUT_SPREAD)
        for _ in range(MAX_STEPS_TO_CUT):
            if flash.dead:
                break
            lp = sim.meter.tables[R.LOAD_PROFILE]
            before_end, before_energy = lp.end, sim.reg(R.ENERGY_IMPORT)
            sim.run(STEP, STEP)
            steps += 1
        else:
            raise AssertionError("cut %d: %d block operations left after %d steps: the meter stopped writing"
                                 % (done + 1, flash.left, MAX_STEPS_TO_CUT))
        done += 1
        t = sim.t_ms // 1000
        flash = mount(path)  # the next power-up, over what the flash kept
        sim = Sim(t + rng.below(1200), store=Store(MOUNT), sample=sim.sample)
        lp = sim.meter.tables[R.LOAD_PROFILE]
        loss = before_energy - sim.reg(R.ENERGY_IMPORT)
        worst_loss = max(worst_loss, loss)
        if loss > 3 * WATTS * ENERGY_PERSIST_S // 3600 + 1:
            raise AssertionError("cut %d lost %d Wh" % (done, loss))
        if lp.end < before_end:
            raise AssertionError("cut %d lost load profile records: %d -> %d" % (done, before_end, lp.end))
        check_records(sim, 900)
    print(json.dumps({"cuts": done, "steps": steps, "worst_energy_loss_wh": worst_loss,
                      "bound_wh": 3 * WATTS * ENERGY_PERSIST_S // 3600, "profile_records": len(lp),
                      "flash_faults_seen": sim.store.faults}))


if __name__ == "__main__":  # (mp_download_cuts.py imports the cutting flash)
    if sys.argv[1] == "wear":
        wear(int(sys.argv[2]), sys.argv[3])
    else:
        cuts(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
