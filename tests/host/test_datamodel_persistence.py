"""Persistence of the data model against the bounds stated in
docs/data-model.md ("Persistence"): energy lost at a power cut at most one
persistence interval, at most the load profile capture in progress, flash
wear. On the emulated board's flash (littlefs2 on a NOR image) under
MicroPython: power cuts in the middle of littlefs updates (mp_flash_cuts.py),
and an emulated board killed at random instants."""

import json
import os
import random
import re
import struct
import subprocess

from tools import ROOT, micropython_path

from meter.model import registers as R
from meter.timers import ENERGY_PERSIST_S
from meterkit import K1, K2
from smitp import topology
from smitp.concentrator import Concentrator, NoAnswer, parse_aca
from smitp.emulated_board import EmulatedBoard
from smitp.medium import Medium
from smitp.network import Network
from smitp.provision import provision_image
from smitp.secure import KeyRing

SCRIPT = os.path.join(ROOT, "tests", "host", "mp_flash_cuts.py")
DOC = os.path.join(ROOT, "docs", "data-model.md")
ACA = parse_aca("A8040A1E8901")


def run_mp(*args):
    r = subprocess.run([micropython_path(), SCRIPT] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def stated(name):
    """A figure stated in docs/data-model.md as `name: N`."""
    m = re.search(r"%s: (\d+)" % re.escape(name), open(DOC).read())
    assert m, "docs/data-model.md states no %r" % name
    return int(m.group(1))


def test_power_cuts_inside_littlefs_updates_stay_within_the_bounds(tmp_path):
    got = run_mp("cuts", 60, 3, tmp_path / "cuts.img")
    assert got["cuts"] == 60 and got["worst_energy_loss_wh"] <= got["bound_wh"]
    assert stated("energy persistence interval (s)") == ENERGY_PERSIST_S


def test_flash_wear_within_the_stated_figure(tmp_path):
    got = run_mp("wear", 3, tmp_path / "wear.img")
    assert got["erases_per_day"] <= stated("block erases a day, at most")
    assert got["erase_cycles_per_block_per_year"] <= stated("erase cycles per block and year, average, at most")


def test_emulated_board_killed_at_random_instants(tmp_path):
    """3 kW on a board whose clock runs 60 times as fast: energy and load
    profile read before each kill are there after the restart, less at most
    one persistence interval of energy; nothing is invented."""
    rng = random.Random(11)
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": ACA.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=48000, topology=topo))
    board = EmulatedBoard("m1", ACA.hex(), "SNKILL", tmp_path, load="1000,1000,1000", time_scale=60)
    provision_image(board.flash, K1, K2)
    slot = net.add_board("m1", board)
    conc = Concentrator(net.add_concentrator("dcu"), retries=1,
                        keyring=KeyRing.from_dict({ACA.hex(): {"k1": K1.hex(), "k2": K2.hex()}}))
    boots = 1
    bound = 3000 * ENERGY_PERSIST_S // 3600 + 3000 * 2 * 60 // 3600  # + two metering ticks of meter time

    def booted():
        assert net.run_until(lambda: board.log_text().count("modem configured") >= boots, 20), board.log_text()
        net.run_for(1.2)

    def reading():
        for _ in range(3):
            try:
                e = int.from_bytes(conc.read(ACA, [R.ENERGY_IMPORT])[R.ENERGY_IMPORT], "big")
                lp = conc.read_table(ACA, R.LOAD_PROFILE, auth=True)
                return e, lp
            except NoAnswer:
                net.run_for(0.5)
        raise AssertionError("no answer:\n" + board.log_text()[-2000:])

    try:
        booted()
        conc.write(ACA, {R.PROFILE_PERIOD: struct.pack(">H", 300)}, auth=True)
        for cut in range(3):
            net.run_for(rng.uniform(2, 5))
            e_before, lp_before = reading()
            t_read = net.clock.now()
            net.run_for(rng.uniform(0.0, 4.0))  # the kill falls anywhere, a write included
            powered = net.clock.now() - t_read
            board.power_cut()
            net.run_for(rng.uniform(0.2, 1.0))
            board.start()
            slot.emu.power_on(net.clock.now() * 1000)
            boots += 1
            booted()
            e_after, lp_after = reading()
            assert e_after >= e_before - bound, (cut, e_before, e_after)
            assert e_after <= e_before + 3000 * (powered + 4) * 60 / 3600, (cut, e_before, e_after)
            assert lp_after[:len(lp_before)] == lp_before, cut  # every record read before the kill is still there
        assert boots == 4
    finally:
        net.close()
