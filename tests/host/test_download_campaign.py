"""Software download: the image `smitp image --download` builds, checked with
independent oracles (cryptography's CMAC, hashlib), and the power-cut
campaign on the emulated board's flash under MicroPython (mp_download_cuts.py)."""

import hashlib
import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from meter import fwimage as F
from smitp.image import ImageError, build_download, download_summary, manifest_files
from tools import ROOT, micropython_path

K1 = bytes(range(16))
CUTS = int(os.environ.get("DOWNLOAD_CUTS", "210"))
SEED = int(os.environ.get("DOWNLOAD_CUT_SEED", "7"))


@pytest.fixture(scope="module")
def image():
    return build_download("unix", "0.2.0", key=K1)


def test_image_header_sealed_under_k1_as_cmac_says(image):
    h = F.unpack_header(image)
    mac = CMAC(algorithms.AES(K1))
    mac.update(image[:F.SEALED_LEN])
    assert h.seal == mac.finalize()
    assert image[:4] == b"SMFW" and image[F.SEALED_LEN:F.HEADER_LEN] == h.seal


def test_image_body_is_every_module_compiled_with_its_hash(image):
    h = F.unpack_header(image)
    body = image[F.HEADER_LEN:]
    assert len(body) == h.size and hashlib.sha256(body).digest() == h.digest
    names = [n for n, _p, _n in F.walk_body(lambda p, n: body[p:p + n], len(body))]
    want = sorted(t.with_suffix(".mpy").as_posix() for _s, t in manifest_files("unix"))
    assert sorted(names) == want
    files = {n: body[p:p + k] for n, p, k in F.walk_body(lambda p, n: body[p:p + n], len(body))}
    assert all(data[:1] == b"M" for data in files.values())  # .mpy files
    assert b"0.2.0" in files["meter/__init__.mpy"]
    assert download_summary(image)["version"] == "0.2.0" and download_summary(image)["sealed"]


def test_unsealed_image_and_bad_arguments():
    raw = build_download("unix", "0.2.1", block=64)
    assert F.unpack_header(raw).seal == bytes(16) and not download_summary(raw)["sealed"]
    for kwargs in ({"version": "2"}, {"version": "0.2.0", "block": 8}, {"version": "0.2.0", "block": 121},
                   {"version": "0.2.0", "replace": {"meter/nothing.py": "x = 1"}},
                   {"version": "0.2.0", "replace": {"meter/clock.py": "def ("}}):
        with pytest.raises(ImageError):
            build_download("unix", **kwargs)


def _campaign_images(tmp_path):
    """Two small images of made-up modules: the campaign is about the flash, not the size."""
    paths = []
    for i, version in enumerate(("0.2.0", "0.3.0")):
        rnd = hashlib.sha256(b"campaign %d" % i).digest() * 40
        body = F.pack_body([("meter/__init__.mpy", rnd[:300]), ("meter/app/node.mpy", rnd[300:1000]),
                            ("board.mpy", rnd[1000:1250])])
        h = F.Header(64, F.version_number(version), len(body), hashlib.sha256(body).digest(), bytes(16))
        h.seal = F.make_seal(K1, h)
        p = tmp_path / ("image%d.bin" % i)
        p.write_bytes(h.pack() + body)
        paths.append(str(p))
    return paths


@pytest.mark.timeout(600)  # about 15 s of CPU; a loaded host stretches it
def test_power_cuts_in_every_phase_never_brick_nor_run_half_an_image(tmp_path):
    script = os.path.join(ROOT, "tests", "host", "mp_download_cuts.py")
    r = subprocess.run([micropython_path(), script, str(CUTS), str(SEED), str(tmp_path / "flash.img"), K1.hex()]
                       + _campaign_images(tmp_path), capture_output=True, text=True, timeout=590)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and lines, "seed %d (DOWNLOAD_CUT_SEED):\n%s" % (SEED, (r.stdout + r.stderr)[-3000:])
    got = json.loads(lines[-1])
    print("download power-cut campaign, seed %d: %s" % (SEED, got))
    assert got["cuts"] >= 200
    for phase in ("open", "receiving", "installing", "activating", "restart", "trial"):
        assert got["cuts_per_phase"].get(phase, 0) >= 5, (phase, got)
    assert got["outcomes"]["activated"] >= 10 and got["outcomes"]["rolled back"] >= 5, got
    assert got["floor"] >= 0x000200 + 10, got  # raised round after round, never lowered (checked at every cut)


# ---- the concentrator's campaign against in-process meters on a virtual clock
def _section(image_keys=None):
    """Three in-process meters, the third behind the second; their keys; the concentrator."""
    from smitp import topology
    from smitp.concentrator import Concentrator
    from smitp.medium import Medium
    from smitp.network import Network, VirtualClock, in_process_meter
    from smitp.secure import KeyRing

    acas = ["A8040A1E8901", "A8040A1E8902", "A8040A1E8903"]
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}]
                          + [{"name": "m%d" % i, "aca": a} for i, a in enumerate(acas)],
                          "links": [{"a": "dcu", "b": "m0"}, {"a": "dcu", "b": "m1"}, {"a": "m1", "b": "m2"}]})
    net = Network(Medium(topology=topo), VirtualClock())
    port = net.add_concentrator("dcu")
    ring, nodes = {}, {}
    for i, a in enumerate(acas):
        k1, k2 = bytes([i + 1]) * 16, bytes([i + 9]) * 16
        ring[a] = {"k1": k1.hex(), "k2": k2.hex()}
        nodes[bytes.fromhex(a)] = in_process_meter(bytes.fromhex(a), "SN%d" % i, net.clock, (k1, k2))
        net.add_meter("m%d" % i, nodes[bytes.fromhex(a)])
    m = [bytes.fromhex(a) for a in acas]
    return Concentrator(port, keyring=KeyRing.from_dict(ring)), [(m[0], ()), (m[1], ()), (m[2], (m[1],))], nodes


def _restart(nodes):
    """What a board does after an activation: the loader's choice, then the new slot's self-test."""
    from meter import slots as S
    from meter.app.download import attach
    from smitp.fleet_download import engine_of

    for node in nodes.values():
        dl = engine_of(node)
        if dl.restart_due:
            assert S.choose(dl.store)[1]  # on trial
            attach(node, node.app.model, dl.store).confirm()


def _run(c, nodes):
    """A campaign's phases, with the restarts a board makes after an activation; its report."""
    c.open_all()
    c.broadcast()
    c.fill_gaps()
    c.verify_and_activate()
    _restart(nodes)
    c.confirm(wait_s=5)
    return c.report()


def test_campaign_activates_a_section_through_a_repeater(image):
    from smitp.download import Campaign

    conc, meters, nodes = _section()
    rep = _run(Campaign(conc, image, meters), nodes)
    assert sorted(rep["activated"]) == sorted(m["aca"] for m in rep["meters"]), rep["meters"]
    assert all(m["version"] == "0.2.0" and m["active_slot"] == 1 for m in rep["meters"])
    h = F.unpack_header(image)
    # one chain through the repeater: the direct meter keeps the concentrator's copy, the
    # repeater the copy it relays, the meter behind it the repeater's
    assert rep["frames"]["broadcast"] == h.blocks
    # a lossless line: gap filling only for what collisions took
    print("gap filling frames: %d of %d blocks" % (rep["frames"]["gap_fill"], h.blocks))
    assert rep["frames"]["gap_fill"] < h.blocks // 10


def test_campaign_refuses_a_tampered_image_and_a_wrong_seal(image):
    from smitp.download import Campaign

    conc, meters, nodes = _section()
    raw = bytearray(image)
    raw[F.HEADER_LEN + 1000] ^= 1
    rep = Campaign(conc, bytes(raw), meters[:1]).run(wait_s=5)
    assert rep["refused"] == [meters[0][0].hex().upper()] and rep["meters"][0]["reason"] == "image hash mismatch"
    rep = Campaign(conc, image, meters[1:2], keys_of=lambda aca: bytes(16)).run(wait_s=5)
    assert rep["refused"] and "NACK 5" in rep["meters"][0]["reason"]
    assert not any(engine_of_all(nodes))


def test_an_answer_that_does_not_verify_costs_that_meter_only(image, monkeypatch):
    from meter.app import security as sec
    from smitp.download import Campaign
    from smitp.secure import MeterSecurity

    conc, meters, nodes = _section()
    unprotect = MeterSecurity.unprotect
    bad = meters[0][0]

    def failing(self, lsdu, ecc=None):
        if self.aca == bad:
            raise sec.AuthError("tmac", "mismatch")
        return unprotect(self, lsdu, ecc)

    monkeypatch.setattr(MeterSecurity, "unprotect", failing)
    rep = _run(Campaign(conc, image, meters), nodes)
    assert sorted(rep["activated"]) == sorted(a.hex().upper() for a, _route in meters[1:]), rep["meters"]
    (m,) = [m for m in rep["meters"] if m["aca"] == bad.hex().upper()]
    assert m["outcome"] == "refused" and "mismatch" in m["reason"], m


def engine_of_all(nodes):
    from smitp.fleet_download import engine_of

    return [engine_of(n).restart_due for n in nodes.values()]


def test_fleet_campaign_with_frame_loss_reaches_every_meter():
    from smitp import fleet_download as FD
    from smitp import topology as T

    topo = T.lv_sections(40, seed=3)[0]
    rep = FD.run_section(topo, 6000, seed=3, loss=0.05)
    assert rep["activated"] == rep["reachable"] == 40, rep["not_activated"]
    assert rep["frames"]["gap_fill"] > 0  # 5 % loss leaves gaps the unicast fills
    assert 0 < rep["efficiency"] < rep["efficiency_bound"] < 1
    ph = rep["phases"]
    # the activation programmed at OPEN: a complete meter needs no other request
    assert ph["verify and activate"]["frames"] < ph["open"]["frames"] // 4, ph


def test_a_lossless_broadcast_leaves_no_gap_though_copies_collide():
    """The schedule lets copies collide only where nobody needs them: on a line that loses
    nothing, every meter has every block after the broadcast, while the line was reused."""
    from smitp import fleet_download as FD
    from smitp import topology as T

    topo = T.lv_sections(150, seed=2)[0]
    rep = FD.run_section(topo, 3000, seed=2, loss=0.0)
    assert rep["activated"] == rep["reachable"] == 150, rep["not_activated"]
    assert rep["frames"]["gap_fill"] == 0, rep["frames"]
    assert rep["phases"]["broadcast"]["collisions"] > 0, rep["phases"]


def test_schedule_reuses_the_line_where_no_needed_listener_hears_two_senders():
    from smitp.fleet_download import Schedule

    line = ["dcu", "a", "b", "c", "d", "e"]  # each hears its neighbours only
    heard = {n: {m for m in line if abs(line.index(m) - line.index(n)) == 1} for n in line}
    sched = Schedule(heard, "dcu")
    chain = ("a", "b", "c", "d", "e")
    need = sched.needs([chain], line[1:])
    assert need == [[{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, set()]]  # the next relay, or the meter fed
    air, step = 0.3, 0.3 + 0.02
    starts = [sched.place(0.0, chain, need[0], air) for _ in range(4)]
    booked = sched.busy
    overlaps = 0
    for i, (s1, e1, n1, need1) in enumerate(booked):
        for s2, e2, n2, need2 in booked[i + 1:]:
            if s1 < e2 and s2 < e1:
                overlaps += 1
                assert need1.isdisjoint(heard[n2] | {n2}) and need2.isdisjoint(heard[n1] | {n1}), (n1, n2)
    assert overlaps
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # the next block once the second relay's copy ended (the first relay hears the concentrator,
    # sends, hears the second relay: 3 frame times), not after all five relays as one chain after
    # the other
    assert all(2 * step + air <= g <= 2 * step + air + 2 * Schedule.GUARD_S for g in gaps), gaps


def test_broadcast_cover_walks_from_branch_to_branch():
    from smitp.fleet_download import broadcast_cover

    # two branches whose ends hear each other: one walk down the first and up the second
    # feeds all four meters with one frame of the concentrator
    heard = {"dcu": {"a1"}, "a1": {"dcu", "a2", "b1"}, "a2": {"a1", "b2", "ma"}, "b2": {"a2", "b1", "mb"},
             "b1": {"a1", "b2"}, "ma": {"a2"}, "mb": {"b2"}}
    assert broadcast_cover(heard, "dcu", ["a1", "a2", "b2", "ma", "mb"]) == [("a1", "a2", "b2")]
    assert broadcast_cover(heard, "dcu", ["a1"]) == [()]  # heard by the concentrator itself
    assert broadcast_cover(heard, "dcu", ["mb"]) == [("a1", "a2", "b2")]  # three relays to feed one
    assert broadcast_cover(heard, "dcu", ["mb"], max_relays=2) == [()]  # out of reach: left out
    assert broadcast_cover(heard, "dcu", []) == []


def test_broadcast_chains_are_the_routes_no_other_extends():
    from smitp.download import broadcast_chains, transmissions

    a, b, c = b"\x01" * 6, b"\x02" * 6, b"\x03" * 6
    routes = [(), (a,), (a, b), (a, b), (c,), (a, c)]
    assert broadcast_chains(routes) == [(a, b), (a, c), (c,)]
    assert transmissions(broadcast_chains(routes)) == 3 + 3 + 2 < transmissions(routes)
    assert broadcast_chains([()]) == [()] and broadcast_chains([]) == []


def test_efficiency_bound_by_depth():
    from smitp.fleet_download import efficiency_bound

    frame_bits = 56 + 8 * (11 + 1 + 6 + 120 + 4)  # PHY overhead, MAC header, ATTR, ID, index, block, CRC
    direct = efficiency_bound(137 * 120, 137, 120, 0, 4800)
    assert abs(direct - 120 * 8 / frame_bits) < 1e-9
    assert abs(efficiency_bound(137 * 120, 137, 120, 1, 4800) - direct / 2) < 1e-9
    deep = efficiency_bound(137 * 120, 137, 120, 5, 4800)
    assert abs(deep - direct / 3) < 1e-9 and deep < 0.7
