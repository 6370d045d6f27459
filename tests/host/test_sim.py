"""`smitp sim`: the fleet simulation on the virtual clock, small sizes."""

import json
import xml.etree.ElementTree as ET

from smitp import sim, treeview
from smitp import topology as T
from smitp.cli import main
from smitp.discovery import MAX_LEVEL
from smitp.png import decode_png

SVG = "{http://www.w3.org/2000/svg}"

KEYS = ("meters", "reachable", "discovered", "registered", "read_ok", "max_hops", "frames", "airtime_s",
        "sim_time_s", "wall_s")


def test_cli_json_reports_every_meter_discovered_registered_and_read(capsys, tmp_path):
    svg, png = tmp_path / "tree.svg", tmp_path / "tree.png"
    assert main(["sim", "--meters", "60", "--seed", "1", "--json", "--svg", str(svg), "--png", str(png)]) == 0
    rep = json.loads(capsys.readouterr().out)
    for k in KEYS:
        assert k in rep, k
    assert rep["meters"] == rep["reachable"] == rep["discovered"] == rep["registered"] == rep["read_ok"] == 60
    assert rep["max_hops"] >= 2 and rep["frames"] > 60
    assert rep["sim_time_s"] > rep["airtime_min_s"] > 0
    text = svg.read_text()
    nodes = ET.fromstring(text).find(SVG + "g[@class='nodes']")
    assert text.startswith("<svg") and len(nodes.findall(SVG + "circle")) == 60 and "hop 2: " in text
    assert len(nodes.findall(SVG + "circle[@fill='#%02x%02x%02x']" % treeview.COLOURS["repeater"])) >= 1
    width, height, _, _ = decode_png(png.read_bytes())
    assert (width, height) == (int(ET.fromstring(text).get("width")), int(ET.fromstring(text).get("height")))


def test_cli_text_and_failed_repeaters(capsys):
    assert main(["sim", "--meters", "80", "--seed", "2", "--fail-repeaters", "2"]) == 0
    out = capsys.readouterr().out
    assert "discovered 80, registered 80, read 80" in out
    assert "after powering off 2 repeater(s)" in out


def test_failure_figures():
    rep = sim.run(80, seed=2, fail_repeaters=2)
    assert len(rep["failed_repeaters"]) == 2 and rep["affected"] >= 1
    assert rep["rerouted"] == rep["affected"]
    assert rep["read_ok_after"] == rep["reachable_after"] == 78


def test_sections_run_in_parallel_workers():
    rep = sim.run(45, seed=3, section_meters=15)
    assert rep["sections"] == 3 and rep["read_ok"] == 45
    roots = [d["root"] for d in rep["details"]]
    assert roots == ["dcu1", "dcu2", "dcu3"]
    svg = sim.tree_svg(rep, 45, 3, section_meters=15)
    assert svg.count("(concentrator)</title>") == 3 and "not reached:" not in svg


def test_a_section_costs_a_few_times_its_floor():
    # 150 meters, one section, four levels. The floor: the airtime of the
    # frames that must be sent plus the windows the protocol imposes (one
    # REQADDR window per level, a slot per direct answer, the un-silencing gap).
    # A level's relays listen at once, in batches of about two windows
    # (requests go out while the first runs, answers come home during the
    # next), and a level takes a few batches: the relays that found something
    # are asked again until they report nothing new. Hence about 3 x the floor;
    # with one window after the other it was 16 x (27 x the airtime).
    rep = sim.run(150, seed=1)
    assert rep["reachable"] == rep["discovered"] == rep["registered"] == rep["read_ok"] == 150
    assert rep["max_hops"] >= 3
    assert rep["sim_time_s"] < 4 * (rep["airtime_min_s"] + rep["fixed_windows_s"])
    assert rep["sim_to_min_airtime"] <= 8  # the fleet target holds for one small section too
    phases = rep["details"][0]["phases_s"]
    assert set(phases) == {"direct", "relays", "register", "read"}
    assert abs(sum(phases.values()) - rep["sim_time_s"]) < 1


def test_bad_arguments_are_one_line_errors(capsys):
    assert main(["sim", "--meters", "0"]) == 2
    assert "error" in capsys.readouterr().err


def test_sections_keep_names_unique_and_depth_within_the_mac():
    sections = T.lv_sections(1200, seed=1)
    assert len(sections) == 3
    names = [n["name"] for t in sections for n in t["nodes"] if n["role"] == "meter"]
    acas = [n["aca"] for t in sections for n in t["nodes"] if n["role"] == "meter"]
    assert len(set(names)) == len(set(acas)) == 1200 and names[0] == "m1" and names[-1] == "m1200"
    for t in sections:
        h = T.hops(t, t["nodes"][0]["name"])
        assert len(h) == len(t["nodes"]) and max(h.values()) <= MAX_LEVEL
