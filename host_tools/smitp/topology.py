"""Topologies of a low-voltage PLC section: who hears whom, and how well.

A topology is a plain dict (and so loadable from JSON):

    {"nodes": [{"name": "dcu", "role": "concentrator"},
               {"name": "m1", "aca": "010000000001"}],
     "links": [{"a": "dcu", "b": "m1", "snr_db": 20, "attenuation_db": 40}]}

Nodes
    name  unique non-empty string (the node's identity on the medium)
    role  "concentrator" or "meter" (default "meter")
    aca   12 hex digits, natural order (most significant byte first); required
          for meters, optional for concentrators; the first byte may not be 03
          (that value marks the logical SCA form of an address)
    Any other key is free metadata (positions, labels) and is kept as is.

Links (only the keys below are accepted, so a typo is an error)
    a, b            node names
    snr_db          signal-to-noise ratio at the receiver
    attenuation_db  path loss; the received level is TX_LEVEL_DBUV - attenuation
    impedance_ohm   line impedance seen by the receiver (default 5)
    loss            probability that a frame on this link is lost (default 0)
    directed        false (default): a and b hear each other; true: only b
                    hears a. Two directed entries give an asymmetric link.
Give snr_db or attenuation_db or both; the missing one is derived from
TX_LEVEL_DBUV and NOISE_FLOOR_DBUV, and a link with neither gets
DEFAULT_ATTENUATION_DB.

load() returns a normalised copy (every link field filled in); loading a
normalised topology again gives the same result.
"""

import json
import math
import random

# Link budget. Project choices, plausible for CENELEC-A band PLC on a European
# LV network; the standard's PHY figures are not public.
TX_LEVEL_DBUV = 120.0  # level a node injects at its coupler
NOISE_FLOOR_DBUV = 60.0  # background noise at a receiver
DEFAULT_ATTENUATION_DB = 40.0  # a link given without any quality figure
DEFAULT_IMPEDANCE_OHM = 5.0  # typical LV access impedance in this band

# lv_feeder() model. Project choices.
REACH_MAX_ATTENUATION_DB = 54.0  # a link exists below this (SNR above 6 dB)
CABLE_DB_PER_M = 0.1  # cable attenuation, dB per metre of LV cable
TAP_LOSS_DB = 0.3  # extra loss per meter connected between the two ends
COUPLING_LOSS_DB = 6.0  # both couplers together, on every link
BUSBAR_LOSS_DB = 10.0  # crossing the transformer busbar to another feeder
LINK_SIGMA_DB = 3.0  # seeded per-link randomness (standard deviation) ...
LINK_CLIP_DB = 6.0  # ... clipped to +-this, so pruning by distance is exact
SPACING_M = (10.0, 40.0)  # distance between consecutive meters on a feeder
DROP_M = (3.0, 25.0)  # service cable from the feeder to the meter
METERS_PER_FEEDER = 50  # feeders = ceil(n / this) ...
MAX_FEEDERS = 8  # ... at most this many per transformer
FEEDER_ACA_BASE = 0xA8040B000000  # ACA of meter i = base + i (first byte A8)

ROLES = ("concentrator", "meter")
_LINK_KEYS = ("a", "b", "snr_db", "attenuation_db", "impedance_ohm", "loss", "directed")


class TopologyError(ValueError):
    """A topology entry is invalid; `where` names it (e.g. "links[3] (dcu-m9)")."""

    def __init__(self, where, why):
        super().__init__("%s: %s" % (where, why))
        self.where = where
        self.why = why


def _number(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TopologyError(where, "%s must be a number, not %r" % (key, value))
    if not math.isfinite(value):
        raise TopologyError(where, "%s must be finite, not %r" % (key, value))
    return float(value)


def _check_aca(where, aca):
    if not isinstance(aca, str) or len(aca) != 12:
        raise TopologyError(where, "aca must be 12 hex digits, not %r" % (aca,))
    try:
        bytes.fromhex(aca)
    except ValueError:
        raise TopologyError(where, "aca must be 12 hex digits, not %r" % (aca,)) from None
    aca = aca.upper()
    if aca.startswith("03"):
        raise TopologyError(where, "aca %s: first byte 03 is reserved for SCA addresses" % aca)
    return aca


def link_quality(snr_db=None, attenuation_db=None):
    """(snr_db, attenuation_db), deriving a missing one from the link budget."""
    if snr_db is None:
        if attenuation_db is None:
            attenuation_db = DEFAULT_ATTENUATION_DB
        snr_db = TX_LEVEL_DBUV - NOISE_FLOOR_DBUV - attenuation_db
    elif attenuation_db is None:
        attenuation_db = TX_LEVEL_DBUV - NOISE_FLOOR_DBUV - snr_db
    return float(snr_db), float(attenuation_db)


def _node(i, raw, names, acas):
    where = "nodes[%d]" % i
    if not isinstance(raw, dict):
        raise TopologyError(where, "must be an object, not %r" % (raw,))
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError(where, "name must be a non-empty string, not %r" % (name,))
    where = "nodes[%d] (%s)" % (i, name)
    if name in names:
        raise TopologyError(where, "duplicate name %r" % name)
    node = dict(raw)
    role = node.setdefault("role", "meter")
    if role not in ROLES:
        raise TopologyError(where, "role must be one of %s, not %r" % (", ".join(ROLES), role))
    if "aca" in node:
        node["aca"] = aca = _check_aca(where, node["aca"])
        if aca in acas:
            raise TopologyError(where, "aca %s already used by %s" % (aca, acas[aca]))
        acas[aca] = name
    elif role == "meter":
        raise TopologyError(where, "a meter needs an aca")
    return node


def _link(i, raw, names, seen):
    where = "links[%d]" % i
    if not isinstance(raw, dict):
        raise TopologyError(where, "must be an object, not %r" % (raw,))
    a, b = raw.get("a"), raw.get("b")
    where = "links[%d] (%s-%s)" % (i, a, b)
    for key in raw:
        if key not in _LINK_KEYS:
            raise TopologyError(where, "unknown key %r (allowed: %s)" % (key, ", ".join(_LINK_KEYS)))
    for end in (a, b):
        if end not in names:
            raise TopologyError(where, "unknown node %r" % (end,))
    if a == b:
        raise TopologyError(where, "a node cannot link to itself")
    directed = raw.get("directed", False)
    if not isinstance(directed, bool):
        raise TopologyError(where, "directed must be true or false, not %r" % (directed,))
    # A symmetric link occupies both directions; two directed ones may share a pair.
    for key in ((a, b),) if directed else ((a, b), (b, a)):
        if key in seen:
            raise TopologyError(where, "duplicate of links[%d]" % seen[key])
        seen[key] = i
    snr = raw.get("snr_db")
    att = raw.get("attenuation_db")
    snr, att = link_quality(
        None if snr is None else _number(where, "snr_db", snr),
        None if att is None else _number(where, "attenuation_db", att),
    )
    imp = _number(where, "impedance_ohm", raw.get("impedance_ohm", DEFAULT_IMPEDANCE_OHM))
    if imp <= 0:
        raise TopologyError(where, "impedance_ohm must be positive, not %r" % imp)
    loss = _number(where, "loss", raw.get("loss", 0.0))
    if not 0.0 <= loss <= 1.0:
        raise TopologyError(where, "loss must be within 0..1, not %r" % loss)
    return {"a": a, "b": b, "snr_db": snr, "attenuation_db": att,
            "impedance_ohm": imp, "loss": loss, "directed": directed}


def load(path_or_dict):
    """Validate a topology (a dict, or the path of a JSON file); return a normalised copy."""
    if isinstance(path_or_dict, dict):
        raw = path_or_dict
    else:
        with open(path_or_dict, encoding="utf-8") as f:
            try:
                raw = json.load(f)
            except ValueError as e:
                raise TopologyError(str(path_or_dict), "not valid JSON: %s" % e) from None
        if not isinstance(raw, dict):
            raise TopologyError("topology", "must be a JSON object")
    for key in raw:
        if key not in ("nodes", "links", "meta"):
            raise TopologyError("topology", "unknown key %r (allowed: nodes, links, meta)" % (key,))
    nodes, links = raw.get("nodes"), raw.get("links", [])
    if not isinstance(nodes, list):
        raise TopologyError("nodes", "must be a list")
    if not isinstance(links, list):
        raise TopologyError("links", "must be a list")
    names, acas = {}, {}
    out_nodes = []
    for i, n in enumerate(nodes):
        node = _node(i, n, names, acas)
        names[node["name"]] = i
        out_nodes.append(node)
    seen = {}
    out = {"nodes": out_nodes, "links": [_link(i, l, names, seen) for i, l in enumerate(links)]}
    if "meta" in raw:
        out["meta"] = raw["meta"]
    return out


def adjacency(topology):
    """{src: [(dst, link), ...]}: who hears frames sent by src, over which link.

    `topology` must already be normalised by load().
    """
    adj = {n["name"]: [] for n in topology["nodes"]}
    for link in topology["links"]:
        adj[link["a"]].append((link["b"], link))
        if not link["directed"]:
            adj[link["b"]].append((link["a"], link))
    return adj


def links_from(topology, src):
    """[(dst, link), ...]: the nodes that hear `src` (normalised topology)."""
    return adjacency(topology)[src]


def hops(topology, root: str | list | tuple = "dcu", skip=()):
    """Minimum hop count from `root` to every node it can reach (BFS).

    A hop needs both directions (every exchange is request and response), so a
    one-way link counts only when a link back exists. Nodes missing from the
    result cannot be reached. `root` may be a list (several concentrators, all
    at hop 0); nodes in `skip` (e.g. powered off) relay nothing.
    """
    adj = adjacency(topology)
    heard = {src: {dst for dst, _ in out} for src, out in adj.items()}
    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    for r in roots:
        if r not in heard:
            raise TopologyError("root", "unknown node %r" % (r,))
    dist: dict[str, int | None] = {r: 0 for r in roots}
    for n in skip:
        dist.setdefault(n, None)
    frontier = list(roots)
    level = 0  # of the frontier
    while frontier:
        level += 1
        nxt = []
        for u in frontier:
            for v in heard[u]:
                if v not in dist and u in heard[v]:
                    dist[v] = level
                    nxt.append(v)
        frontier = nxt
    return {n: d for n, d in dist.items() if d is not None}


def demo_feeder():
    """The demo section: dcu hears m1 and m2, m1 and m2 hear each other, m3 hears only m2."""
    return load({
        "nodes": [
            {"name": "dcu", "role": "concentrator"},
            {"name": "m1", "aca": "A8040A1E8901"},
            {"name": "m2", "aca": "A8040A1E8902"},
            {"name": "m3", "aca": "A8040A1E8903"},
        ],
        "links": [
            {"a": "dcu", "b": "m1", "attenuation_db": 40},
            {"a": "dcu", "b": "m2", "attenuation_db": 46},
            {"a": "m1", "b": "m2", "attenuation_db": 38},
            {"a": "m2", "b": "m3", "attenuation_db": 44},
        ],
    })


def lv_feeder(n_meters, seed=0, feeders=None, root="dcu", first=1):
    """A seeded LV section: `n_meters` meters along feeders from a transformer.

    The concentrator `root` sits at the transformer. Meters are spread evenly
    over `feeders` feeders (default ceil(n / METERS_PER_FEEDER), at most
    MAX_FEEDERS), SPACING_M apart along the feeder, each on a DROP_M service
    cable. The attenuation between two nodes is COUPLING_LOSS_DB + cable length
    x CABLE_DB_PER_M + TAP_LOSS_DB per meter connected in between (+
    BUSBAR_LOSS_DB across feeders) + clipped seeded noise; nodes hear each other
    when it is below REACH_MAX_ATTENUATION_DB. Meters are named m1..mN, feeder
    by feeder from the transformer outwards (m<first>.. when `first` is given,
    with the ACAs to match). Same arguments, same topology.
    """
    if not isinstance(n_meters, int) or n_meters < 0:
        raise ValueError("n_meters must be a non-negative integer, not %r" % (n_meters,))
    if feeders is None:
        feeders = min(MAX_FEEDERS, max(1, math.ceil(n_meters / METERS_PER_FEEDER)))
    if feeders < 1:
        raise ValueError("feeders must be at least 1, not %r" % (feeders,))
    rng = random.Random(seed)
    nodes: list[dict] = [{"name": root, "role": "concentrator"}]
    # Each feeder: [(name, position along the feeder, drop length)], root first.
    lines = []
    k = first - 1
    for f in range(feeders):
        count = n_meters // feeders + (1 if f < n_meters % feeders else 0)
        line = [(root, 0.0, 0.0)]
        x = 0.0
        for _ in range(count):
            k += 1
            x += rng.uniform(*SPACING_M)
            drop = rng.uniform(*DROP_M)
            name = "m%d" % k
            line.append((name, x, drop))
            nodes.append({"name": name, "aca": "%012X" % (FEEDER_ACA_BASE + k),
                          "feeder": f + 1, "distance_m": round(x, 1)})
        lines.append(line)

    links = []

    def jitter():
        return max(-LINK_CLIP_DB, min(LINK_CLIP_DB, rng.gauss(0.0, LINK_SIGMA_DB)))

    def add(a, b, att):
        if att < REACH_MAX_ATTENUATION_DB:
            att = round(att, 1)
            snr = round(TX_LEVEL_DBUV - NOISE_FLOOR_DBUV - att, 1)
            links.append({"a": a, "b": b, "snr_db": snr, "attenuation_db": att})

    floor = COUPLING_LOSS_DB - LINK_CLIP_DB  # the least any link can lose
    # Along one feeder (the root is element 0): scan outwards until even the
    # best case is out of reach.
    for line in lines:
        for i in range(len(line)):
            na, xa, da = line[i]
            for j in range(i + 1, len(line)):
                nb, xb, db = line[j]
                if floor + (xb - xa) * CABLE_DB_PER_M >= REACH_MAX_ATTENUATION_DB:
                    break
                att = (COUPLING_LOSS_DB + (xb - xa + da + db) * CABLE_DB_PER_M
                       + (j - i - 1) * TAP_LOSS_DB + jitter())
                add(na, nb, att)
    # Across feeders, through the busbar: only meters near the transformer.
    near = []
    for f, line in enumerate(lines):
        for idx in range(1, len(line)):
            name, x, drop = line[idx]
            if floor + BUSBAR_LOSS_DB + x * CABLE_DB_PER_M >= REACH_MAX_ATTENUATION_DB:
                break
            near.append((f, idx, name, x, drop))
    for p in range(len(near)):
        fa, ia, na, xa, da = near[p]
        for q in range(p + 1, len(near)):
            fb, ib, nb, xb, db = near[q]
            if fa == fb:
                continue
            if floor + BUSBAR_LOSS_DB + (xa + xb) * CABLE_DB_PER_M >= REACH_MAX_ATTENUATION_DB:
                continue
            att = (COUPLING_LOSS_DB + BUSBAR_LOSS_DB + (xa + da + xb + db) * CABLE_DB_PER_M
                   + (ia - 1 + ib - 1) * TAP_LOSS_DB + jitter())
            add(na, nb, att)
    meta = {"generator": "lv_feeder", "n_meters": n_meters, "seed": seed, "feeders": feeders}
    return load({"nodes": nodes, "links": links, "meta": meta})


# A town's meters are split over LV sections, one per MV/LV transformer, each
# with its own concentrator; sections do not hear each other. Project choice:
# up to 500 meters per section keeps the deepest meter within the MAC's 8
# repeaters (about 5 hops with lv_feeder's link budget, 9 at 1,000 meters).
SECTION_METERS = 500


def lv_sections(n_meters, seed=0, section_meters=SECTION_METERS):
    """[topology, ...]: `n_meters` meters over ceil(n / section_meters) lv_feeder
    sections of near-equal size. Concentrators are dcu1, dcu2, ... (dcu when
    there is one section); meters m1..mN and their ACAs are unique across them."""
    return [lv_section(n_meters, k, seed, section_meters) for k in range(section_count(n_meters, section_meters))]


def section_count(n_meters, section_meters=SECTION_METERS):
    if not isinstance(n_meters, int) or n_meters < 0:
        raise ValueError("n_meters must be a non-negative integer, not %r" % (n_meters,))
    if section_meters < 1:
        raise ValueError("section_meters must be at least 1, not %r" % (section_meters,))
    return max(1, math.ceil(n_meters / section_meters))


def lv_section(n_meters, k, seed=0, section_meters=SECTION_METERS):
    """Section k (from 0) of lv_sections(n_meters, seed, section_meters), built
    alone: a worker of a cluster makes its own from these few numbers."""
    count = section_count(n_meters, section_meters)
    if not 0 <= k < count:
        raise ValueError("section %r of %d" % (k, count))
    base, extra = divmod(n_meters, count)
    size = base + (1 if k < extra else 0)
    first = 1 + k * base + min(k, extra)
    root = "dcu" if count == 1 else "dcu%d" % (k + 1)
    topo = lv_feeder(size, seed=seed * 1000 + k, root=root, first=first)
    topo["meta"].update({"section": k + 1, "sections": count})
    return topo


# --- pictures (smitp.treeview draws) -------------------------------------------


def _route_paths(routes, root, by_aca):
    if routes is None:
        return []
    paths = routes.values() if isinstance(routes, dict) else routes
    out = []
    for path in paths:
        names = [by_aca.get(str(p).upper(), p) for p in path]
        if names and isinstance(root, str) and names[0] != root:
            names.insert(0, root)  # routes may leave out the concentrator
        out.append(names)
    return out


def scene(topology, routes=None, root=None):
    """The picture of a topology (smitp.treeview.Scene): concentrators on top,
    nodes by hop level, every link, highlighted routes.

    `routes` is a list of paths, or a dict {destination: path}; a path is a list
    of node names (or ACAs) from the concentrator, which may be left out.
    `root` defaults to the concentrators (the first node if there is none).
    """
    from smitp import treeview

    topo = load(topology)
    if root is None:
        roots = [n["name"] for n in topo["nodes"] if n["role"] == "concentrator"]
        root = (roots if len(roots) > 1 else roots[0]) if roots else topo["nodes"][0]["name"] if topo["nodes"] else []
    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    by_aca = {n["aca"]: n["name"] for n in topo["nodes"] if "aca" in n}
    # a one-way link is no hop (hops()): the tree follows links heard both ways only
    heard = {(link["a"], link["b"]) for link in topo["links"]}
    heard |= {(link["b"], link["a"]) for link in topo["links"] if not link["directed"]}
    two_way = [link for link in topo["links"] if not link["directed"] or (link["b"], link["a"]) in heard]
    return treeview.draw(topo["nodes"], topo["links"], roots, _route_paths(routes, root, by_aca), tree=two_way)


def to_svg(topology, routes=None, root=None):
    """SVG text of scene()."""
    return scene(topology, routes, root).svg()
