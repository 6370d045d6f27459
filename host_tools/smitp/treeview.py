"""Pictures of a PLC network: concentrators on top, meters below by hop level (SVG and PNG).

One panel per concentrator (an LV section), panels in a grid. In a panel the
hop levels are bands, each wrapped into rows, a meter placed under its parent
as far as the order allows; meters no concentrator reaches go to a last band.
The node pitch shrinks with the fleet so the picture stays within MAX_PX on a
side (2,000 meters: about 1,900 x 1,900 px); past AGGREGATE_AT nodes each
panel shows counts per level instead of nodes. A legend names the symbols.
Labels (ACAs, concentrator names) are placed only where they fit: a label
never overlaps another label, a node or a heading; every node keeps a tooltip
in the SVG.

The layout is a list of shapes in pixels (Scene); svg() and png() draw the
same list, text in a monospace 10 px font (6 px a character, 5 x 7 glyphs in
the PNG: smitp.font5x7).
"""

import math
from xml.sax.saxutils import escape

from smitp import font5x7
from smitp.png import encode_png

MAX_PX = 2000  # a side of the picture, up to AGGREGATE_AT nodes
AGGREGATE_AT = 4000  # more nodes than this: counts per level, not nodes
PITCH_MAX, PITCH_MIN = 84, 20  # px between neighbouring nodes
FONT_PX = 10
CHAR_W = 6  # monospace advance at FONT_PX (0.6 em), also the bitmap font's
TEXT_H = 10  # a text line's box height at FONT_PX
GAP = 2  # kept free around a label
PAD = 12  # inside a panel
HEAD_H = 18  # a panel's title line, a band's heading
LEGEND_H = 26

COLOURS = {  # name -> (r, g, b); index in this order in the PNG palette
    "background": (255, 255, 255),
    "text": (20, 20, 20),
    "link": (176, 176, 176),
    "route": (214, 39, 40),
    "concentrator": (31, 119, 180),
    "repeater": (255, 178, 60),
    "meter": (250, 250, 250),
    "failed": (120, 120, 120),
    "unreached": (242, 190, 190),
    "stroke": (50, 50, 50),
    "panel": (235, 238, 242),
    "label": (70, 70, 70),
}
_INDEX = {name: i for i, name in enumerate(COLOURS)}
LEGEND = (("concentrator", "concentrator"), ("repeater", "repeater"), ("meter", "meter"),
          ("failed", "failed"), ("unreached", "not reached"))


def text_width(text):
    return CHAR_W * len(text)


class Scene:
    """Shapes in drawing order: ("rect", x, y, w, h, fill, stroke, title), ("line", x1, y1, x2, y2,
    colour, width, dashed, title), ("circle", cx, cy, r, fill, stroke, title), ("text", x, top,
    text, colour, cls); colours by name (COLOURS)."""

    def __init__(self, width, height):
        self.width, self.height = int(width), int(height)
        self.shapes: list[tuple] = []
        self.groups: list[tuple[str, int]] = []  # (class, index of its first shape)

    def group(self, cls):
        self.groups.append((cls, len(self.shapes)))

    def add(self, *shape):
        self.shapes.append(shape)

    # ---- SVG
    def svg(self):
        w, h = self.width, self.height
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
               'font-family="monospace" font-size="%d">' % (w, h, w, h, FONT_PX),
               '<rect width="100%" height="100%" fill="white"/>']
        ends = [i for _, i in self.groups[1:]] + [len(self.shapes)]
        out.extend(_svg_shape(s) for s in self.shapes[:self.groups[0][1] if self.groups else None])
        for (cls, start), end in zip(self.groups, ends):
            out.append('<g class="%s">' % cls)
            out.extend(_svg_shape(s) for s in self.shapes[start:end])
            out.append("</g>")
        out.append("</svg>")
        return "\n".join(out) + "\n"

    # ---- PNG
    def png(self):
        w, h = self.width, self.height
        px = bytearray(w * h)  # index 0: background
        for s in self.shapes:
            kind = s[0]
            if kind == "rect":
                _, x, y, rw, rh, fill, stroke, _title = s
                _fill_rect(px, w, h, x, y, rw, rh, _INDEX[fill])
                if stroke:
                    for (a, b, c, d) in ((x, y, x + rw, y), (x, y + rh, x + rw, y + rh),
                                         (x, y, x, y + rh), (x + rw, y, x + rw, y + rh)):
                        _line(px, w, h, a, b, c, d, _INDEX[stroke], 1)
            elif kind == "line":
                _, x1, y1, x2, y2, colour, width, _dashed, _title = s
                _line(px, w, h, x1, y1, x2, y2, _INDEX[colour], width)
            elif kind == "circle":
                _, cx, cy, r, fill, stroke, _title = s
                _disc(px, w, h, cx, cy, r, _INDEX[stroke])
                _disc(px, w, h, cx, cy, r - 1, _INDEX[fill])
            elif kind == "text":
                _, x, top, text, colour, _cls = s
                c = _INDEX[colour]
                for gx, gy in font5x7.lit_pixels(text, round(x), round(top) + 2):
                    if 0 <= gx < w and 0 <= gy < h:
                        px[gy * w + gx] = c
        return encode_png(w, h, px, list(COLOURS.values()))


def _svg_shape(s):
    kind = s[0]
    if kind == "rect":
        _, x, y, w, h, fill, stroke, title = s
        body = '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s' % (
            x, y, w, h, _hex(fill), ' stroke="%s"' % _hex(stroke) if stroke else "")
    elif kind == "line":
        _, x1, y1, x2, y2, colour, width, dashed, title = s
        body = '<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%d"%s' % (
            x1, y1, x2, y2, _hex(colour), width, ' stroke-dasharray="4 3"' if dashed else "")
    elif kind == "circle":
        _, cx, cy, r, fill, stroke, title = s
        body = '<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" stroke="%s"' % (cx, cy, r, _hex(fill), _hex(stroke))
    else:
        _, x, top, text, colour, cls = s
        return '<text class="%s" x="%.1f" y="%.1f" fill="%s">%s</text>' % (
            cls, x, top + 8, _hex(colour), escape(text))  # baseline 0.8 em below the top
    return body + ("><title>%s</title></%s>" % (escape(title), kind) if title else "/>")


def _hex(name):
    return "#%02x%02x%02x" % COLOURS[name]


# ---- rasterising (whole pixels, clipped to the picture)
def _fill_rect(px, w, h, x, y, rw, rh, c):
    x0, x1 = max(0, round(x)), min(w, round(x + rw) + 1)
    for yy in range(max(0, round(y)), min(h, round(y + rh) + 1)):
        px[yy * w + x0:yy * w + x1] = bytes([c]) * max(0, x1 - x0)


def _disc(px, w, h, cx, cy, r, c):
    r2 = r * r + r * 0.8
    for dy in range(-int(r), int(r) + 1):
        yy = round(cy) + dy
        if not 0 <= yy < h:
            continue
        half = int(math.sqrt(max(0.0, r2 - dy * dy)))
        x0, x1 = max(0, round(cx) - half), min(w, round(cx) + half + 1)
        px[yy * w + x0:yy * w + x1] = bytes([c]) * max(0, x1 - x0)


def _line(px, w, h, x1, y1, x2, y2, c, width):
    x1, y1, x2, y2 = round(x1), round(y1), round(x2), round(y2)
    n = max(abs(x2 - x1), abs(y2 - y1), 1)
    steep = abs(y2 - y1) > abs(x2 - x1)
    for i in range(n + 1):
        x = x1 + (x2 - x1) * i // n
        y = y1 + (y2 - y1) * i // n
        for k in range(width):
            xx, yy = (x + k, y) if steep else (x, y + k)
            if 0 <= xx < w and 0 <= yy < h:
                px[yy * w + xx] = c


# ---- the tree of a network
def spanning(nodes, links, roots):
    """(level, parent) of every node reached from `roots` over `links` ({"a", "b"}, both ways:
    the tree of discovered routes, or a topology's links), breadth first, in the given order."""
    names = [n["name"] for n in nodes]
    adj: dict[str, list[str]] = {n: [] for n in names}
    for link in links:
        adj[link["a"]].append(link["b"])
        if not link.get("directed"):
            adj[link["b"]].append(link["a"])
    level = {r: 0 for r in roots}
    parent: dict[str, str | None] = {r: None for r in roots}
    frontier = list(roots)
    while frontier:
        nxt = []
        for u in frontier:
            for v in adj[u]:
                if v not in level:
                    level[v], parent[v] = level[u] + 1, u
                    nxt.append(v)
        frontier = nxt
    return level, parent


def _panels(nodes, links, roots):
    """[(root, [[node, ...] per level], [unreached nodes])] with levels in drawing order."""
    level, parent = spanning(nodes, links, roots)
    by_name = {n["name"]: n for n in nodes}
    owner: dict[str, str] = {r: r for r in roots}
    for name in level:  # up the tree to its concentrator
        top, up = name, parent[name]
        while up is not None:
            top, up = up, parent[up]
        owner[name] = top
    mine: dict[str, list[list[dict]]] = {r: [] for r in roots}  # root -> nodes by level, given order
    unreached: dict[str, list[dict]] = {r: [] for r in roots}
    for n in nodes:
        name = n["name"]
        if name not in level:
            unreached.get(n.get("root"), unreached[roots[0]]).append(n)
        elif owner[name] != name:  # a concentrator heads its own panel
            rows = mine[owner[name]]
            rows.extend([] for _ in range(level[name] - len(rows)))
            rows[level[name] - 1].append(n)
    out = []
    for r in roots:
        levels: list[list[dict]] = [[by_name[r]]]
        order = {r: 0}
        for row in mine[r]:
            row.sort(key=lambda n: order[parent[n["name"]]])  # stable: ties keep the given order
            order.update({n["name"]: i for i, n in enumerate(row)})
            levels.append(row)
        out.append((r, levels, unreached[r]))
    return out


def _kind(node, reached):
    if node.get("role") == "concentrator":
        return "concentrator"
    if node.get("failed"):
        return "failed"
    if not reached:
        return "unreached"
    return "repeater" if node.get("repeater") else "meter"


class _Labels:
    """Boxes already taken (nodes, headings, labels), in a grid of cells for quick look-up."""

    CELL = 64

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.cells: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}

    def _keys(self, box):
        x0, y0, x1, y1 = box
        for cx in range(int(x0 // self.CELL), int(x1 // self.CELL) + 1):
            for cy in range(int(y0 // self.CELL), int(y1 // self.CELL) + 1):
                yield cx, cy

    def take(self, box):
        for k in self._keys(box):
            self.cells.setdefault(k, []).append(box)

    def free(self, box, within=None):
        """No taken box overlaps `box`, which lies inside the picture and inside `within` (a box)."""
        x0, y0, x1, y1 = box
        bx0, by0, bx1, by1 = within or (0, 0, self.width, self.height)
        if x0 < max(0, bx0) or y0 < max(0, by0) or x1 > min(self.width, bx1) or y1 > min(self.height, by1):
            return False
        for k in self._keys(box):
            for a0, b0, a1, b1 in self.cells.get(k, ()):
                if x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1:
                    return False
        return True


def text_box(x, top, text):
    return (x - GAP, top - GAP, x + text_width(text) + GAP, top + TEXT_H + GAP)


def draw(nodes, links, roots, routes=(), tree=None):
    """The Scene of a network: nodes ({"name", "role", "aca", "repeater", "failed", "root"}),
    links ({"a", "b", "directed", "snr_db"}) drawn, the concentrators `roots`, routes (paths of
    names); the levels come from the links of `tree` (default: all links)."""
    if not nodes:
        return Scene(0, 0)
    roots = list(roots) or [nodes[0]["name"]]
    panels = _panels(nodes, links if tree is None else tree, roots)
    if len(nodes) > AGGREGATE_AT:
        return _draw_counts(panels)
    pitch = max(PITCH_MIN, min(PITCH_MAX, int(math.sqrt(MAX_PX * MAX_PX * 0.45 / len(nodes)))))
    while True:
        geo = _geometry(panels, pitch)
        if max(geo[0], geo[1]) <= MAX_PX or pitch <= PITCH_MIN:
            break
        pitch -= 2
    width, height, pos, boxes = geo
    scene = Scene(width, height)
    taken = _Labels(width, height)
    scene.group("panels")
    panel_of = {}
    for (r, levels, unreached), (x, y, w, h, heads) in zip(panels, boxes):
        scene.add("rect", x, y, w, h, "panel", None, "")
        for n in [n for row in levels for n in row] + unreached:
            panel_of[n["name"]] = (x, y, x + w, y + h)
        for hx, hy, text in heads:
            scene.add("text", hx, hy, text, "text", "heading")
            taken.take(text_box(hx, hy, text))
    _legend(scene, taken)
    reached = {n["name"] for _, levels, _ in panels for row in levels for n in row}
    scene.group("links")
    for link in links:
        a, b = pos.get(link["a"]), pos.get(link["b"])
        if a and b:
            tip = "%s - %s%s" % (link["a"], link["b"], ", %.1f dB SNR" % link["snr_db"] if "snr_db" in link else "")
            scene.add("line", a[0], a[1], b[0], b[1], "link", 1, bool(link.get("directed")), tip)
    scene.group("routes")
    for path in routes:
        for u, v in zip(path, path[1:]):
            if u in pos and v in pos:
                scene.add("line", pos[u][0], pos[u][1], pos[v][0], pos[v][1], "route", 3, False, "")
    scene.group("nodes")
    radius = max(3, min(7, pitch // 5))
    for n in nodes:
        if n["name"] not in pos:
            continue
        x, y = pos[n["name"]]
        kind = _kind(n, n["name"] in reached)
        tip = "%s (%s)%s" % (n["name"], dict(LEGEND)[kind], ", ACA " + n["aca"] if n.get("aca") else "")
        if kind == "concentrator":
            scene.add("rect", x - 8, y - 8, 16, 16, "concentrator", "stroke", tip)
            taken.take((x - 8, y - 8, x + 8, y + 8))
        else:
            scene.add("circle", x, y, radius, kind, "stroke", tip)
            taken.take((x - radius, y - radius, x + radius, y + radius))
    scene.group("labels")
    # concentrators first, then failed and repeaters, then the other meters, top to bottom
    rank = {"concentrator": 0, "failed": 1, "repeater": 2, "meter": 3, "unreached": 4}
    order = sorted((n for n in nodes if n["name"] in pos),
                   key=lambda n: (rank[_kind(n, n["name"] in reached)], pos[n["name"]][1], pos[n["name"]][0]))
    for n in order:
        text = n["name"] if n.get("role") == "concentrator" or not n.get("aca") else n["aca"]
        x, y = pos[n["name"]]
        r = 8 if n.get("role") == "concentrator" else radius
        for lx, top in ((x - text_width(text) / 2, y + r + GAP + 1), (x + r + GAP + 2, y - TEXT_H / 2),
                        (x - text_width(text) / 2, y - r - GAP - 1 - TEXT_H), (x - r - GAP - 2 - text_width(text),
                                                                                 y - TEXT_H / 2)):
            box = text_box(lx, top, text)
            if taken.free(box, panel_of.get(n["name"])):
                taken.take(box)
                scene.add("text", lx, top, text, "label", "label")
                break
    return scene


def _geometry(panels, pitch):
    """(width, height, {name: (x, y)}, [(x, y, w, h, headings) per panel]) at this pitch."""
    laid = []
    for r, levels, unreached in panels:
        count = sum(len(row) for row in levels[1:]) + len(unreached)
        per_row = max(4, min(60, math.ceil(math.sqrt(count * 2))))
        w = 2 * PAD + per_row * pitch
        heads, pos = [(PAD, 4, "%s: %d meters" % (r, count))], {}
        rise = max(PITCH_MIN, round(pitch * 0.7))  # between rows: a label fits below a node
        y = HEAD_H + 8
        pos[r] = (w / 2, y + 8)
        y += 16 + pitch / 2
        bands = [("hop %d" % i, row) for i, row in enumerate(levels) if i] + [("not reached", unreached)]
        for title, row in bands:
            if not row:
                continue
            heads.append((PAD, y, "%s: %d" % (title, len(row))))
            y += HEAD_H
            for i, n in enumerate(row):
                pos[n["name"]] = (PAD + pitch / 2 + (i % per_row) * pitch, y + rise / 2 + (i // per_row) * rise)
            y += math.ceil(len(row) / per_row) * rise + 4
        w = max(w, 2 * PAD + max(text_width(t) for _, _, t in heads))
        laid.append((w, y + PAD, heads, pos))
    cols = math.ceil(math.sqrt(len(laid)))
    cell_w = max(w for w, _, _, _ in laid) + PAD
    legend_w = sum(30 + text_width(label) for _, label in LEGEND) + PAD
    width = max(cols * cell_w + PAD, legend_w)
    positions, boxes, y = {}, [], LEGEND_H + PAD
    for row in range(0, len(laid), cols):
        row_h = max(h for _, h, _, _ in laid[row:row + cols])
        for c, (w, h, heads, pos) in enumerate(laid[row:row + cols]):
            x = PAD + c * cell_w
            boxes.append((x, y, w, h, [(x + hx, y + hy, t) for hx, hy, t in heads]))
            positions.update({name: (x + px, y + py) for name, (px, py) in pos.items()})
        y += row_h + PAD
    return width, y, positions, boxes


def _legend(scene, taken):
    scene.group("legend")
    x = PAD
    for kind, label in LEGEND:
        if kind == "concentrator":
            scene.add("rect", x, 8, 12, 12, kind, "stroke", "")
        else:
            scene.add("circle", x + 6, 14, 6, kind, "stroke", "")
        scene.add("text", x + 16, 9, label, "text", "legend")
        taken.take((x - GAP, 6, x + 16 + text_width(label) + GAP, 22))
        x += 30 + text_width(label)


def _draw_counts(panels):
    """A large fleet: per panel, its concentrator and one line of counts per level."""
    laid = []
    for r, levels, unreached in panels:
        lines = ["%s: %d meters" % (r, sum(len(row) for row in levels[1:]) + len(unreached))]
        for i, row in enumerate(levels[1:], 1):
            rep = sum(1 for n in row if n.get("repeater"))
            failed = sum(1 for n in row if n.get("failed"))
            lines.append("hop %d: %d (%d rep.%s)" % (i, len(row), rep, ", %d failed" % failed if failed else ""))
        if unreached:
            lines.append("not reached: %d" % len(unreached))
        laid.append(lines)
    cell_w = max(text_width(t) for lines in laid for t in lines) + 2 * PAD
    cell_h = max(len(lines) for lines in laid) * 14 + 2 * PAD
    cols = max(1, min(len(laid), (MAX_PX - PAD) // (cell_w + PAD)))
    rows = math.ceil(len(laid) / cols)
    legend_w = sum(30 + text_width(label) for _, label in LEGEND) + PAD
    scene = Scene(max(legend_w, PAD + cols * (cell_w + PAD)), LEGEND_H + PAD + rows * (cell_h + PAD))
    _legend(scene, _Labels(scene.width, scene.height))
    scene.group("panels")
    for k, lines in enumerate(laid):
        x = PAD + (k % cols) * (cell_w + PAD)
        y = LEGEND_H + PAD + (k // cols) * (cell_h + PAD)
        scene.add("rect", x, y, cell_w, cell_h, "panel", None, "")
        for i, t in enumerate(lines):
            scene.add("text", x + PAD, y + PAD + i * 14, t, "text", "heading")
    return scene
