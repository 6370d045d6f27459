"""Pictures of the network (smitp.treeview): bounded size, a legend, labels that never overlap.

The checks read the SVG as a viewer would: a text's box from its position and
the monospace advance (0.6 em), a node's from its circle or square.
"""

import itertools
import xml.etree.ElementTree as ET

import pytest

from smitp import topology as T
from smitp import treeview as V
from smitp.png import decode_png

SVG = "{http://www.w3.org/2000/svg}"


def fleet(n_meters, seed=1, failed=0):
    """Nodes, tree links and roots of a fleet's sections, as smitp.sim draws them
    (parents: breadth first over the medium's links; repeaters: meters with children)."""
    nodes, links, roots = [], [], []
    for topo in T.lv_sections(n_meters, seed):
        root = topo["nodes"][0]["name"]
        roots.append(root)
        _, parent = V.spanning(topo["nodes"], topo["links"], [root])
        repeaters = sorted({p for p in parent.values() if p and p != root}, key=lambda x: int(x[1:]))
        for n in topo["nodes"]:
            n = dict(n, root=root)
            if n["name"] in repeaters:
                n["repeater"] = True
            if n["name"] in repeaters[:failed]:
                n["failed"] = True
            nodes.append(n)
        links += [{"a": p, "b": c} for c, p in parent.items() if p]
    return nodes, links, roots


def text_boxes(root):
    """(x0, y0, x1, y1, text) of every text: monospace 10 px, 0.8 em above the baseline, 0.2 below."""
    out = []
    for t in root.iter(SVG + "text"):
        size = float(t.get("font-size", root.get("font-size")))
        x, y = float(t.get("x")), float(t.get("y"))
        out.append((x, y - 0.8 * size, x + 0.6 * size * len(t.text), y + 0.2 * size, t.text))
    return out


def node_boxes(root):
    g = root.find(SVG + "g[@class='nodes']")
    out = []
    for c in g.iter(SVG + "circle"):
        cx, cy, r = float(c.get("cx")), float(c.get("cy")), float(c.get("r"))
        out.append((cx - r, cy - r, cx + r, cy + r))
    for s in g.iter(SVG + "rect"):
        x, y = float(s.get("x")), float(s.get("y"))
        out.append((x, y, x + float(s.get("width")), y + float(s.get("height"))))
    return out


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("n_meters", [30, 1000, 2000])
def test_a_fleet_fits_the_bound_and_no_label_overlaps(n_meters):
    nodes, links, roots = fleet(n_meters, failed=2)
    scene = V.draw(nodes, links, roots)
    root = ET.fromstring(scene.svg())
    w, h = int(root.get("width")), int(root.get("height"))
    assert w <= V.MAX_PX and h <= V.MAX_PX
    assert len(root.find(SVG + "g[@class='nodes']")) == n_meters + len(roots)  # every node drawn
    texts = text_boxes(root)
    for a, b in itertools.combinations(texts, 2):
        assert not overlap(a, b), "%s overlaps %s" % (a[4], b[4])
    shapes = node_boxes(root)
    labels = [t for t in texts if t[4] not in roots]
    for t in labels:
        assert 0 <= t[0] and t[2] <= w and 0 <= t[1] and t[3] <= h
        assert not any(overlap(t, s) for s in shapes), t[4]
    acas = {n["aca"] for n in nodes if "aca" in n}
    aca_labels = [t[4] for t in texts if t[4] in acas]
    assert len(aca_labels) >= min(n_meters, 100)  # labels where they fit: many
    if n_meters <= 30:
        assert set(aca_labels) == acas  # a small section: every meter by its ACA
    # the PNG is the same picture
    pw, ph, palette, pixels = decode_png(scene.png())
    assert (pw, ph) == (w, h) and len(set(pixels)) > 5


def test_the_legend_names_every_symbol_and_levels_go_down():
    nodes, links, roots = fleet(120, failed=1)
    root = ET.fromstring(V.draw(nodes, links, roots).svg())
    legend = [t.text for t in root.find(SVG + "g[@class='legend']").iter(SVG + "text")]
    assert legend == ["concentrator", "repeater", "meter", "failed", "not reached"]
    titles = {c.find(SVG + "title").text.split(" ")[0]: c for c in root.find(SVG + "g[@class='nodes']")}
    y = {name: float(e.get("cy", e.get("y"))) for name, e in titles.items()}
    level, parent = V.spanning(nodes, links, roots)
    for child, p in parent.items():
        if p is not None:
            assert y[child] > y[p], (child, p)  # the concentrator on top, each meter below its parent
    fills = {c.get("fill") for c in root.find(SVG + "g[@class='nodes']").iter(SVG + "circle")}
    assert {"#%02x%02x%02x" % V.COLOURS[k] for k in ("repeater", "meter", "failed")} <= fills


def test_a_city_is_drawn_as_counts_within_the_bound():
    nodes, links, roots = fleet(V.AGGREGATE_AT + 1000)
    root = ET.fromstring(V.draw(nodes, links, roots).svg())
    assert int(root.get("width")) <= V.MAX_PX and int(root.get("height")) <= V.MAX_PX
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "dcu1: 500 meters" in texts and any(t.startswith("hop 2: ") for t in texts)
    for a, b in itertools.combinations(text_boxes(root), 2):
        assert not overlap(a, b)


def test_font_covers_what_the_pictures_write():
    from smitp import font5x7

    for text in ["0123456789ABCDEF", "concentrator repeater meter failed not reached", "hop 3: 12 (4 rep., 1 failed)"]:
        assert all(c in font5x7.GLYPHS for c in text.upper()), text
    assert all(len(rows) == font5x7.HEIGHT for rows in font5x7.GLYPHS.values())
