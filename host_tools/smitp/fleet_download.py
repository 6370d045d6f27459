"""`smitp sim --download SIZE`: a software-download campaign over simulated sections.

Each section (topology.lv_sections: feeders, repeaters, up to 500 meters) runs
the firmware's meters in-process on a virtual clock at 4800 bit/s, every link
losing frames at random (LOSS). The concentrator's routes are the shortest
paths of the topology (what discovery finds, without spending its airtime
here), and every meter holds its own SCA (what registration gives: a
broadcast names its repeaters by 2-byte SCA entries). The campaign is
smitp/download.py's: OPEN per meter, the broadcast, gap filling from each
meter's bitmap, verification, activation at the time the OPEN programmed
(ACTIVATE_AT: a meter whose bitmap shows every block needs no other
request), and a read of what runs after the restart (the in-process meter
restarts through the same boot choice, meter/slots.py).

The broadcast goes along few chains of repeaters whose copies every meter
hears (broadcast_cover: walks that may turn from one branch into the next; a
meter keeps a block from any copy), each block once a chain, and the
concentrator starts each chain's frame as soon as no copy someone needs
would collide (Schedule).

Figures: channel efficiency = image bytes x 8 / (bit rate x campaign time up
to the last meter verified), and its bounds (efficiency_bound, cover_bound);
the broadcast's own efficiency; time to 100 % of reachable meters; frames of
the broadcast and of gap filling; time, frames and airtime per phase.
"""

import hashlib
import os
import random
import time
from typing import cast

from meter import fwimage as F
from meter import slots as S
from meter.app.download import Download, attach
from meter.link import mac
from meter.model import registers as R
from smitp import topology as T
from smitp.concentrator import Concentrator
from smitp.discovery import MAX_LEVEL, sca_for
from smitp.download import Campaign, transmissions
from smitp.medium import Medium
from smitp.network import ELABORATION_S, Network, VirtualClock, in_process_meter, serial_for
from smitp.secure import KeyRing

LOSS = 0.02  # frames lost on every link, at random
SCA_SECTION = 0x5A0000  # the section part of the repeaters' SCAs (its seed added)
ACTIVATE_AT = 86400  # the activation the OPEN programs: a day into the virtual clock, after the campaign
CONFIRM_WAIT_S = 30.0  # reads of a meter after its (instant) restart: retries on a deep, lossy route
MIN_SIZE = 1024  # (smitp sim --download checks the same range)
MAX_SIZE = F.MAX_BLOCKS * F.MAX_BLOCK - F.HEADER_LEN


def engine_of(node) -> Download:
    """The download engine of an in-process meter (its data model's owner of the download area)."""
    return cast(Download, node.app.model.owner(R.DOWNLOAD_STATE))


def synthetic_image(size, seed):
    """A download image whose body holds `size` bytes of made-up modules."""
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(max(0, size - 32)))
    body = F.pack_body([("meter/fleet.mpy", data)])
    h = F.Header(F.MAX_BLOCK, F.version_number("0.9.0"), len(body), hashlib.sha256(body).digest(), bytes(16))
    return h.pack() + body


def _routes(topo, root):
    """Shortest route (repeater names, nearest first) to every meter it reaches."""
    adj = T.adjacency(topo)
    heard = {s: {d for d, _ in out} for s, out in adj.items()}
    route: dict[str, tuple[str, ...]] = {root: ()}
    frontier = [root]
    while frontier:
        nxt = []
        for u in frontier:
            for v in sorted(heard[u]):
                if v not in route and u in heard[v] and len(route[u]) < MAX_LEVEL - 1 + (u == root):
                    route[v] = route[u] + ((u,) if u != root else ())
                    nxt.append(v)
        frontier = nxt
    route.pop(root)
    return route, heard


def broadcast_cover(heard, root, meters, max_relays=mac.MAX_REPEATERS):
    """Chains of repeaters whose copies of a block reach every meter: [(relay names)], () for
    the concentrator's frame alone. A chain is any walk of nodes that hear each other, up to
    `max_relays` long (the MAC's repeater list), not only a route: each copy feeds every meter
    that hears it (a meter keeps a download block from any copy), and a walk that turns from
    one branch into the next spares the concentrator's frame and the shared relays a second
    chain would repeat. Built greedily: a chain grows by the relays (the nearest first) that
    feed most meters not yet fed per relay added; a new chain starts when it cannot grow.
    Meters no walk reaches are left out."""
    both = {u: {v for v in heard[u] if u in heard.get(v, ())} for u in heard}
    left = set(meters) - heard[root]
    chains: list[tuple[str, ...]] = []
    while True:
        chain: list[str] = []
        while len(chain) < max_relays:
            path = _best_extension(both, heard, chain[-1] if chain else root, set(chain) | {root}, left,
                                   max_relays - len(chain))
            if not path:
                break
            chain += path
            for v in path:
                left -= heard[v]
        if chain or not chains:  # () when no relay is needed (or none reaches those left)
            chains.append(tuple(chain))
        if not chain or not left:
            return chains if meters else []


def _best_extension(both, heard, here, used, left, budget):
    """The walk from `here` (at most `budget` relays, none of `used`) whose copies feed most
    meters of `left` per relay: [] when none feeds any."""
    best, best_rate = [], 0.0
    paths = {here: ([], frozenset())}
    frontier = [here]
    for depth in range(1, budget + 1):
        nxt = []
        for u in frontier:
            walk, fed = paths[u]
            for v in sorted(both[u]):
                if v in used or v in paths:
                    continue
                fed_v = fed | (heard[v] & left)
                paths[v] = (walk + [v], fed_v)
                nxt.append(v)
                if heard[v] & left and len(fed_v) / depth > best_rate:
                    best, best_rate = walk + [v], len(fed_v) / depth
        frontier = nxt
    return best


def efficiency_bound(image_len, blocks, block, depth, bitrate):
    """The most channel efficiency any scheme relaying each block along one path reaches on a
    section whose deepest meter is `depth` repeaters away. Every block crosses the air at least
    once, in a frame with no repeater entry at best (with depth 0 that is the ceiling of any
    scheme: the frame's header, CRC and PHY overhead). Here a block goes along chains of repeaters, each
    repeater of a chain relaying every block, so such a repeater is busy more than one frame
    time a block: it hears its upstream copy and sends its own (2), and with a repeater below
    it also hears that one's copy, during which it can take nothing else in (3). Spatial reuse
    does not beat that: those frames all reach the same repeater. (A scheme whose relays each
    carried a share of the blocks over paths that do not hear each other could go higher;
    the MAC's repetition, one path a frame, does not express it.) This campaign's broadcast
    has a lower ceiling: the concentrator sends each block once a chain (`cover_bound`)."""
    frame = mac.HEADER_LEN + 1 + F.BLOCK_HEAD + block + mac.CRC_LEN
    busy = min(depth, 2) + 1
    return image_len * 8 / (bitrate * blocks * Medium(bitrate=bitrate).airtime_s(frame) * busy)


def cover_bound(image_len, blocks, block, chains, bitrate):
    """The ceiling of a broadcast along `chains` chains: the concentrator sends every block once
    a chain, one frame time each at best."""
    return efficiency_bound(image_len, blocks, block, 0, bitrate) / max(1, chains)


class Schedule:
    """Spatial reuse for the broadcast: when the concentrator may send each chain's frame.

    A copy matters only to the listeners that need it: the chain's next relay and the meters
    designated to it (needs(): each meter the first copy of the block it hears, in the cover's
    order). Two transmissions may overlap when neither sender is heard by, nor is, a listener
    the other needs: a collision elsewhere takes a copy nobody counts on. A chain's hops follow
    each other one frame and one TEL apart (each repeater relays TEL after the copy it heard
    ends)."""

    GUARD_S = 0.005

    def __init__(self, heard, root):
        self.heard, self.root = heard, root
        self.zone = {n: frozenset(heard[n]) | {n} for n in heard}  # a sender and who hears it
        self.busy: list[tuple[float, float, str, set]] = []  # (start, end, sender, needed) booked
        self.free = float("-inf")  # the concentrator's next start

    def needs(self, cover, meters):
        """[[the listeners that need each hop's copy] a chain of `cover`] for a block `meters` lack."""
        hops = [[self.root] + list(chain) for chain in cover]
        need = [[set(h[j + 1:j + 2]) for j in range(len(h))] for h in hops]
        for m in meters:
            for k, j in ((k, j) for k, h in enumerate(hops) for j in range(len(h))):
                if m in self.heard[hops[k][j]] and m != hops[k][j]:
                    need[k][j].add(m)
                    break
        return need

    def _clash(self, t, hops, need, air):
        """The latest end among booked transmissions the chain started at t would clash with,
        shifted to the chain's start; None: no clash."""
        late = None
        step = air + ELABORATION_S
        for j, node in enumerate(hops):
            a, b, zone = t + j * step, t + j * step + air, self.zone[node]
            for s, e, sender, needed in self.busy:
                if (s < b + self.GUARD_S and a < e + self.GUARD_S
                        and (not need[j].isdisjoint(self.zone[sender]) or not needed.isdisjoint(zone))):
                    shift = e + self.GUARD_S - j * step
                    late = shift if late is None or shift > late else late
        return late

    def place(self, now, chain, need, air):
        """The earliest start at or after `now` for a frame along `chain` (relay names), `need`
        the listeners each hop's copy must reach (one of needs()' lists); its transmissions
        then booked."""
        self.busy = [x for x in self.busy if x[1] > now]
        hops = [self.root] + list(chain)
        t = max(now, self.free)
        while True:
            late = self._clash(t, hops, need, air)
            if late is None:
                break
            t = max(late, t + 0.001)
        step = air + ELABORATION_S
        for j, node in enumerate(hops):
            self.busy.append((t + j * step, t + j * step + air, node, need[j]))
        self.free = t + air + self.GUARD_S
        return t


class SectionCampaign(Campaign):
    """The campaign where the concentrator knows who hears whom (the section's topology): the
    broadcast and the gap-filling broadcasts go along chains that may turn from branch to
    branch (broadcast_cover), and every frame without an answer waits only for collisions
    that would take a copy somebody needs (Schedule), instead of for the last relay."""

    def __init__(self, conc, image, by_name, route, heard, root, medium, **kw):
        self.by_name, self.route, self.heard, self.root, self.medium = by_name, route, heard, root, medium
        self.name_of = {a: n for n, a in by_name.items()}
        meters = [(by_name[n], tuple(by_name[r] for r in route[n])) for n in sorted(route) if n in by_name]
        super().__init__(conc, image, meters, **kw)
        # chains no longer than the deepest route: a longer walk pipelines worse (the next block
        # waits for more hops to clear) and a relay missing a copy starves more meters after it
        self.depth = max((len(r) for r in route.values()), default=0)
        self.cover = broadcast_cover(heard, root, [n for n in route if n in by_name], self.depth)
        self.sched = Schedule(heard, root)

    def _at(self, t):
        """Wait until the port's time t (now if it passed)."""
        if t > self.conc.port.now():
            self.conc.pause(t - self.conc.port.now())

    def _along(self, addr_air, chain, need, lsdu):
        """The frame of `lsdu` to `addr_air` along `chain` (relay names), as soon as it may go."""
        frame = self.frame(addr_air, tuple(self.by_name[r] for r in chain), lsdu)
        self._at(self.sched.place(self.conc.port.now(), chain, need, self.medium.airtime_s(len(frame))))
        self.conc.port.send(frame)

    def air_clear(self):
        self._at(max((e for _s, e, _n, _w in self.sched.busy), default=0.0))

    def broadcast(self):
        need = self.sched.needs(self.cover, self.by_name)
        n = self.header.blocks
        for i in range(n):
            lsdu = self.block_lsdu(i)
            for chain, chain_need in zip(self.cover, need):
                self._along(mac.BROADCAST, chain, chain_need, lsdu)
            self.frames["broadcast"] += len(self.cover)
            if self.progress:
                self.progress(i + 1, n, "broadcast")
        self.air_clear()

    def gap_broadcast(self, lsdu, acas):
        names = [self.name_of[a] for a in acas]
        chains = broadcast_cover(self.heard, self.root, names, self.depth)
        if transmissions(chains) >= transmissions(self.route[n] for n in names):
            return 0
        for chain, chain_need in zip(chains, self.sched.needs(chains, names)):
            self._along(mac.BROADCAST, chain, chain_need, lsdu)
        return len(chains)

    def send_blocks(self, aca, route, indexes):
        """Blocks to one meter along its route, pipelined as the Schedule allows (each hop's
        copy needed by the next relay, the last by the meter); the line clear after them."""
        name = self.name_of[aca]
        need = [{n} for n in self.route[name] + (name,)]
        for i in indexes:
            self._along(mac.aca_to_air(aca), self.route[name], need, self.block_lsdu(i))
        self.air_clear()


def run_section(topo, size, seed=0, loss=LOSS, progress=None):
    root = next(n["name"] for n in topo["nodes"] if n["role"] == "concentrator")
    for link in topo["links"]:
        link["loss"] = loss
    route, heard = _routes(topo, root)
    net = Network(Medium(topology=topo, seed=seed), VirtualClock())
    port = net.add_concentrator(root)
    rng = random.Random(seed)
    ring, by_name, nodes = KeyRing(), {}, {}
    for n in topo["nodes"]:
        if n["role"] != "meter":
            continue
        aca = bytes.fromhex(n["aca"])
        k1, k2 = rng.getrandbits(128).to_bytes(16, "big"), rng.getrandbits(128).to_bytes(16, "big")
        ring.add(aca, k1, k2)
        node = in_process_meter(aca, serial_for(n["aca"]), net.clock, (k1, k2), seed=seed)
        net.add_meter(n["name"], node)
        by_name[n["name"]] = aca
        nodes[aca] = node
    conc = Concentrator(port, keyring=ring)
    # The SCAs registration gives, one a meter: a broadcast's 2-byte entries then name one
    # repeater each (an SCA shared by several repeaters makes them all relay at once), and a
    # request through repeaters names them in 2 bytes instead of 6 (smitp/scabook.py).
    for k, name in enumerate(sorted(by_name)):
        sca = sca_for(SCA_SECTION + seed, k)
        nodes[by_name[name]].nm._set_sca(sca)
        conc.book.learn(by_name[name], sca)
    image = synthetic_image(size, seed)
    c = SectionCampaign(conc, image, by_name, route, heard, root, net.medium, at=ACTIVATE_AT, progress=progress)
    meters, cover, medium = c.meters, c.cover, net.medium
    phases: dict[str, dict] = {}

    def phase(name, step):
        """Run one step of the campaign; keep its time, airtime and frames on air."""
        st = medium.stats
        t, air, frames, lost = port.now(), st["airtime_s"], st["frames"], st["collisions"]
        step()
        st = medium.stats
        phases[name] = {"s": round(port.now() - t, 1), "airtime_s": round(st["airtime_s"] - air, 1),
                        "frames": st["frames"] - frames, "collisions": st["collisions"] - lost}

    t0 = port.now()
    phase("open", c.open_all)
    phase("broadcast", c.broadcast)
    t_bc = port.now()
    phase("gap filling", c.fill_gaps)
    phase("verify and activate", c.verify_and_activate)
    phase("retries", c.retry_silent)
    t_ready = port.now()
    for aca, _r in meters:  # the programmed time; the restart: the loader's choice, the new slot's self-test
        node = nodes[aca]
        dl = engine_of(node)
        dl.tick(ACTIVATE_AT)
        if dl.restart_due:
            S.choose(dl.store)
            attach(node, node.app.model, dl.store).confirm()
    phase("confirm", lambda: c.confirm(wait_s=CONFIRM_WAIT_S))
    rep = c.report()
    campaign_s = t_ready - t0
    return {
        "meters": len(by_name), "reachable": len(meters), "activated": len(rep["activated"]),
        "not_activated": [m for m in rep["meters"] if m.get("outcome") != "activated"][:10],
        "image_bytes": len(image), "blocks": c.header.blocks, "broadcast_routes": len(cover),
        "broadcast_transmissions_per_block": transmissions(cover),
        "frames": rep["frames"], "broadcast_s": round(t_bc - t0, 1), "time_to_all_s": round(campaign_s, 1),
        "efficiency": round(len(image) * 8 / (net.medium.bitrate * campaign_s), 3) if campaign_s else None,
        "efficiency_bound": round(efficiency_bound(len(image), c.header.blocks, c.header.block,
                                                   max(len(r) for _a, r in meters), net.medium.bitrate), 3),
        "frame_ceiling": round(efficiency_bound(len(image), c.header.blocks, c.header.block, 0,
                                                net.medium.bitrate), 3),
        "broadcast_efficiency": round(len(image) * 8 / (net.medium.bitrate * phases["broadcast"]["s"]), 3),
        "broadcast_bound": round(cover_bound(len(image), c.header.blocks, c.header.block, len(cover),
                                             net.medium.bitrate), 3),
        "per_meter_s": round(phases["open"]["s"] + phases["gap filling"]["s"], 1),
        "airtime_s": round(net.medium.stats["airtime_s"], 1), "loss": loss, "phases": phases,
        "collisions": net.medium.stats["collisions"],
    }


def run(n_meters, size, seed=0, loss=LOSS, progress=None):
    """The fleet's campaign, section by section (their concentrators work in parallel)."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError("image size %d out of %d..%d" % (size, MIN_SIZE, MAX_SIZE))
    wall0 = time.monotonic()
    sections = T.lv_sections(n_meters, seed)
    results = []
    for i, topo in enumerate(sections):
        step = (lambda d, t, w, i=i: progress(d, t, "section %d/%d %s" % (i + 1, len(sections), w))) if progress else None
        results.append(run_section(topo, size, seed + i, loss, step))
    slowest = max(results, key=lambda r: r["time_to_all_s"])
    return {
        "meters": n_meters, "image_bytes": results[0]["image_bytes"], "sections": len(results),
        "reachable": sum(r["reachable"] for r in results), "activated": sum(r["activated"] for r in results),
        "efficiency": min(r["efficiency"] or 0 for r in results),
        "efficiency_bound": min(r["efficiency_bound"] for r in results),
        "frame_ceiling": results[0]["frame_ceiling"],
        "time_to_all_s": slowest["time_to_all_s"],
        "gap_fill_frames": sum(r["frames"]["gap_fill"] for r in results),
        "gap_fill_broadcast_frames": sum(r["frames"]["gap_fill_broadcast"] for r in results),
        "broadcast_frames": sum(r["frames"]["broadcast"] for r in results),
        "requests": sum(r["frames"]["requests"] for r in results),
        "loss": loss, "seed": seed, "details": results, "wall_s": round(time.monotonic() - wall0, 1),
        "cpus": os.cpu_count(),
    }


def print_report(rep, out=None):
    import sys

    out = out or sys.stdout
    print("download of %d bytes to %d meters in %d sections, %.0f %% frame loss a link"
          % (rep["image_bytes"], rep["meters"], rep["sections"], rep["loss"] * 100), file=out)
    print("activated %d of %d reachable; time to 100 %%: %.0f s; channel efficiency %.1f %%"
          % (rep["activated"], rep["reachable"], rep["time_to_all_s"], rep["efficiency"] * 100), file=out)
    print("bound: %.1f %% for any scheme relaying each block along one path on these sections (a repeater"
          " hearing its upstream copy, sending its own and hearing the next one's is busy 3 frame times a"
          " block); without repeaters: %.1f %% (one frame a block)"
          % (rep["efficiency_bound"] * 100, rep["frame_ceiling"] * 100), file=out)
    print("frames: %d broadcast, %d gap filling (%d of them broadcast), %d requests; %.1f s of wall clock"
          % (rep["broadcast_frames"], rep["gap_fill_frames"], rep["gap_fill_broadcast_frames"], rep["requests"],
             rep["wall_s"]), file=out)
    for i, r in enumerate(rep["details"]):
        print("  section %d: %d meters, %d broadcast chains (%d transmissions a block), efficiency %.1f %%"
              " (bound %.1f %%), %.0f s" % (i + 1, r["meters"], r["broadcast_routes"],
                                          r["broadcast_transmissions_per_block"], r["efficiency"] * 100,
                                          r["efficiency_bound"] * 100, r["time_to_all_s"]), file=out)
        print("    " + ", ".join("%s %.0f s (%d frames)" % (name, p["s"], p["frames"])
                                 for name, p in r["phases"].items()), file=out)
        print("    broadcast alone: %.1f %% of the line (its chains' ceiling %.1f %%: the concentrator sends each"
              " block once a chain); exchanges with each meter (open, gap filling): %.0f s"
              % (r["broadcast_efficiency"] * 100, r["broadcast_bound"] * 100, r["per_meter_s"]), file=out)
