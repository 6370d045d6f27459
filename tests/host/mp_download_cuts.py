# MicroPython (unix port) only: software download on the emulated board's
# flash (littlefs2 on a file-backed NOR block device, boards/unix/board.py),
# with power cuts at random block operations (programs and erases, so in the
# middle of littlefs updates) in every phase: receiving blocks, checking and
# installing, activating, the trial boot and its confirmation.
#
#   micropython tests/host/mp_download_cuts.py CUTS SEED FLASH K1HEX IMAGE...
#
# Rounds download the IMAGEs in turn, each round under a newer version (the
# version floor refuses an older one); every third round's firmware "fails
# its self-test" (never confirms), so its trial must roll back. At a cut the
# flash stops taking writes, RAM is dropped, the image is mounted again and
# the loader chooses the slot to boot (meter/slots.py choose). Checks after
# every boot: the chosen slot holds, file by file, exactly the image its
# record names (never a half-installed image runs), and the meter goes on to
# finish the round. Prints one JSON line; exits 1 on a broken rule.
import json
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (HERE + "/../../firmware", HERE + "/../../boards/unix", HERE + "/../firmware"):
    sys.path.append(_p)

import mp_flash_cuts  # noqa: E402
from mp_flash_cuts import CuttingFlash, MOUNT  # noqa: E402
from fwtest import Rng  # noqa: E402
from meter import fwimage as F  # noqa: E402
from meter import slots as S  # noqa: E402
from meter.storage import Store  # noqa: E402

BLOCKS_PER_STEP = 4
MAX_STEPS = 2000  # steps of one round without a cut: more means it is stuck


class PowerCut(Exception):
    """The supply is gone: nothing runs after the block operation that met it."""


_CUT = PowerCut()  # raised without allocating: littlefs may call in while the heap is locked


class DyingFlash(CuttingFlash):
    """The cutting flash, but the cut ends the run of the firmware there and
    then (a littlefs left in the middle of an update is never used again)."""

    def _op(self):
        try:
            CuttingFlash._op(self)
        except OSError:
            raise _CUT


def mount(path):
    mp_flash_cuts.CuttingFlash = DyingFlash  # what mp_flash_cuts.mount() builds
    return mp_flash_cuts.mount(path)


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        self.header = F.unpack_header(raw)
        self.body = raw[F.HEADER_LEN:]
        b = self.body
        self.files = list((name, b[p:p + n]) for name, p, n in F.walk_body(lambda p, n: b[p:p + n], len(b)))

    def block(self, i):
        h = self.header
        return self.body[i * h.block:(i + 1) * h.block]


def check_boot(store, images, cause="power"):
    """The loader's choice at a start (a power-up unless `cause` says other), checked against the images."""
    slot, trial = S.choose(store, cause)
    if slot == S.BUILTIN:
        return slot, trial, None
    h = S.Boot(store).header(slot)
    if h is None:
        raise AssertionError("slot %d chosen without its record" % slot)
    img = None
    for im in images:
        if im.header.digest == h.digest:
            img = im
    if img is None:
        raise AssertionError("slot %d names an unknown image" % slot)
    for name, data in img.files:
        got = store.get(S.folder(slot) + "/" + name)
        if got is None or bytes(got) != data:
            raise AssertionError("slot %d boots with %s %s" % (slot, name, "missing" if got is None else "different"))
    return slot, trial, img


PHASE = ["?"]  # the phase of the step under way: where a cut falls
# Each cut aims at a phase in turn, so that every phase gets its share: the
# flash is armed (dies within a few block operations) when the aimed phase begins.
# (phase, block operations it takes at most, about)
TARGETS = (("receiving", 60), ("installing", 60), ("activating", 4), ("restart", 4), ("trial", 4), ("open", 10))
AIM = {"phase": None, "flash": None, "ops": 0}


def _at(phase):
    PHASE[0] = phase
    if phase == AIM["phase"] and AIM["flash"] is not None:
        AIM["flash"].left = AIM["ops"]
        AIM["flash"] = None


def step(store, img, healthy, rng, k1, images):
    """One step of the round towards img running (or rolled back). Returns
    the round's outcome, None while it goes on."""
    _at("boot record")
    boot = S.Boot(store)
    h = img.header
    running = boot.header(boot.active)
    if boot.trial == S.TRIAL_BOOTED:
        _at("trial")
        if healthy:
            S.confirm(store)
            return None
        check_boot(store, images, "watchdog")  # unhealthy: the watchdog resets, the loader rolls back
        return "rolled back"
    if boot.trial == S.CONFIRMED and running is not None and running.digest == h.digest:
        return "activated"
    if boot.failure == S.FAIL_NO_BOOT and not healthy and boot.trial == S.CONFIRMED:
        return "rolled back"
    _at("open")
    s = S.Session(store)
    if s.header is None or s.header.digest != h.digest:
        s.open(h, boot)
        return None
    if s.stage == S.RECEIVING and not s.complete:
        _at("receiving")
        missing = [i for i in range(h.blocks) if not s.has(i)]
        for _ in range(BLOCKS_PER_STEP):
            if missing:
                i = missing.pop(rng.below(len(missing)))
                s.put_block(i, img.block(i))
        return None
    if s.stage == S.RECEIVING:
        _at("installing")
        code = s.install(k1)
        if code not in (S.FAIL_NONE, S.FAIL_FLASH):
            raise AssertionError("install of a good image failed: %s" % S.FAILURES[code])
        return None
    _at("activating")
    if s.activate(boot):
        _at("restart")
        check_boot(store, images, "soft")  # the restart into the new slot
    return None


def main(n_cuts, seed, path, k1, paths):
    images = [Image(p) for p in paths]
    rng = Rng(seed)
    flash = mount(path)
    store = Store(MOUNT)
    cuts = 0
    per_phase = {}
    outcomes = {"activated": 0, "rolled back": 0}
    boots = {"builtin": 0, "slot": 0, "trial": 0}
    rnd = 0
    steps = 0
    floor = 0  # the version floor as the last power-up read it: only ever raised
    img = None
    while cuts < n_cuts:
        healthy = rnd % 3 != 2
        if img is None:  # each round downloads the image that does not run
            boot = S.Boot(store)
            running = boot.header(boot.active)
            img = images[1] if running is not None and running.digest == images[0].header.digest else images[0]
            # each round a newer version, sealed again: the version floor forbids going back
            img.header.version = 0x000200 + rnd
            img.header.seal = F.make_seal(k1, img.header)
        AIM["phase"], spread = TARGETS[cuts % len(TARGETS)]
        AIM["flash"], AIM["ops"] = flash, 1 + rng.below(spread)
        for _ in range(MAX_STEPS):
            outcome = None
            try:
                outcome = step(store, img, healthy, rng, k1, images)
            except PowerCut:
                pass
            phase = PHASE[0]
            steps += 1
            if flash.dead:
                cuts += 1
                per_phase[phase] = per_phase.get(phase, 0) + 1
                flash = mount(path)  # the next power-up, over what the flash kept
                store = Store(MOUNT)
                slot, trial, _ = check_boot(store, images)
                boots["trial" if trial else "slot" if slot else "builtin"] += 1
                if S.floor(store) < floor:
                    raise AssertionError("the version floor went down: %x after %x" % (S.floor(store), floor))
                floor = S.floor(store)
                break
            if outcome is not None:
                outcomes[outcome] += 1
                rnd += 1
                img = None
                break
        else:
            raise AssertionError("round %d stuck after %d steps" % (rnd, MAX_STEPS))
    print(json.dumps({"cuts": cuts, "cuts_per_phase": per_phase, "rounds": rnd, "outcomes": outcomes,
                      "boots_after_cuts": boots, "steps": steps, "floor": S.floor(store), "flash_faults_seen": store.faults}))


main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], bytes.fromhex(sys.argv[4]), sys.argv[5:])
