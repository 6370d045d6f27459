"""The plan of docs/architecture.md holds: every firmware module is listed there
under its package, imports go only to the same package or lower ranks, there is
no import circle, and no firmware module is longer than 500 lines."""

import ast
import os
import re

from tools import ROOT

FIRMWARE = os.path.join(ROOT, "firmware")
DOC = os.path.join(ROOT, "docs", "architecture.md")
# package -> rank: a module imports only from its own package or lower ranks
RANKS = {"meter": 0, "phy": 1, "link": 2, "model": 3, "app": 4, "dlms": 4, "optical": 5, "display": 5, "runtime": 6}
MAX_LINES = 500


def modules():
    """{dotted name: path} of every firmware module (stubs included)."""
    out = {}
    for d, _, files in os.walk(os.path.join(FIRMWARE, "meter")):
        for f in files:
            if f.endswith((".py", ".pyi")) and f != "__init__.py":
                p = os.path.join(d, f)
                out[os.path.relpath(p, FIRMWARE).rsplit(".", 1)[0].replace(os.sep, ".")] = p
    return out


def package(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 2 else "meter"


def imports(path, known):
    """The firmware modules a file imports (also inside functions)."""
    deps = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "meter":
            for a in node.names:
                full = node.module + "." + a.name
                deps.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.split(".")[0] == "meter")
    return {d for d in deps if d in known}


def test_every_module_is_on_the_architecture_page():
    text = open(DOC).read()
    listed = {}
    for row in re.finditer(r"^\| `meter(?:\.(\w+))?` \|[^|]*\|([^|]*)\|$", text, re.M):
        listed[row.group(1) or "meter"] = set(re.findall(r"`([\w.]+?)(?:\.pyi)?`", row.group(2)))
    found = {}
    for name in modules():
        found.setdefault(package(name), set()).add(name.split(".")[-1])
    assert listed == found, "docs/architecture.md lists %s, the tree has %s" % (listed, found)


def test_imports_go_down_the_layers_without_circles():
    known = modules()
    graph = {m: imports(p, known) - {m} for m, p in known.items() if p.endswith(".py")}
    wrong = [(m, d) for m, deps in graph.items() for d in deps
             if package(d) != package(m) and RANKS[package(d)] >= RANKS[package(m)]]
    assert not wrong, "imports against the layers: %s" % wrong
    state = {}

    def visit(m, path):
        state[m] = 1
        for d in graph.get(m, ()):
            assert state.get(d) != 1, "import circle: %s" % " -> ".join(path + [m, d])
            if not state.get(d):
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [])


def test_no_firmware_module_is_longer_than_the_limit():
    long = {m: n for m, p in modules().items() if (n := sum(1 for _ in open(p))) > MAX_LINES}
    assert not long, long
