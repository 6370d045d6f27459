import json
import xml.etree.ElementTree as ET

import pytest

from smitp import topology as T
from smitp.topology import TopologyError


def small(**link):
    link = dict({"a": "dcu", "b": "m1"}, **link)
    return {"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": "010000000001"}],
            "links": [link]}


def pairs(topo):
    return {frozenset((l["a"], l["b"])) for l in topo["links"]}


# --- load and validation ---------------------------------------------------------


def test_load_normalises_links():
    topo = T.load(small(snr_db=20, attenuation_db=40))
    assert topo["links"] == [{"a": "dcu", "b": "m1", "snr_db": 20.0, "attenuation_db": 40.0,
                              "impedance_ohm": 5.0, "loss": 0.0, "directed": False}]
    assert topo["nodes"][1] == {"name": "m1", "aca": "010000000001", "role": "meter"}
    assert T.load(topo) == topo  # idempotent


def test_missing_quality_is_derived_from_the_link_budget():
    # 120 dBuV sent, 60 dBuV noise: SNR = 60 - attenuation.
    assert T.load(small(attenuation_db=45))["links"][0]["snr_db"] == 15.0
    assert T.load(small(snr_db=12))["links"][0]["attenuation_db"] == 48.0
    assert T.load(small())["links"][0]["attenuation_db"] == T.DEFAULT_ATTENUATION_DB


def test_load_from_json_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(small(snr_db=9)))
    assert T.load(str(p))["links"][0]["snr_db"] == 9.0
    bad = tmp_path / "bad.json"
    bad.write_text("{nodes")
    with pytest.raises(TopologyError, match="not valid JSON"):
        T.load(str(bad))


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.pop("nodes"), r"nodes: must be a list"),
    (lambda t: t.update(extra=1), r"topology: unknown key 'extra'"),
    (lambda t: t["nodes"].append({"name": "m1", "aca": "010000000002"}), r"nodes\[2\] \(m1\): duplicate name"),
    (lambda t: t["nodes"].append({"aca": "010000000002"}), r"nodes\[2\]: name must be a non-empty string"),
    (lambda t: t["nodes"].append({"name": "m2"}), r"nodes\[2\] \(m2\): a meter needs an aca"),
    (lambda t: t["nodes"].append({"name": "m2", "aca": "0100000002"}), r"nodes\[2\] \(m2\): aca must be 12 hex"),
    (lambda t: t["nodes"].append({"name": "m2", "aca": "01000000000G"}), r"aca must be 12 hex"),
    (lambda t: t["nodes"].append({"name": "m2", "aca": "030000000002"}), r"first byte 03 is reserved"),
    (lambda t: t["nodes"].append({"name": "m2", "aca": "010000000001"}), r"nodes\[2\] \(m2\): aca 010000000001 already used by m1"),
    (lambda t: t["nodes"].append({"name": "x", "role": "relay", "aca": "010000000002"}), r"role must be one of"),
    (lambda t: t["links"].append({"a": "dcu", "b": "m9"}), r"links\[1\] \(dcu-m9\): unknown node 'm9'"),
    (lambda t: t["links"].append({"a": "m1", "b": "m1"}), r"links\[1\] \(m1-m1\): a node cannot link to itself"),
    (lambda t: t["links"].append({"a": "m1", "b": "dcu"}), r"links\[1\] \(m1-dcu\): duplicate of links\[0\]"),
    (lambda t: t["links"][0].update(snr="20"), r"links\[0\] \(dcu-m1\): unknown key 'snr'"),
    (lambda t: t["links"][0].update(snr_db="20"), r"snr_db must be a number"),
    (lambda t: t["links"][0].update(attenuation_db=True), r"attenuation_db must be a number"),
    (lambda t: t["links"][0].update(loss=1.5), r"loss must be within 0..1"),
    (lambda t: t["links"][0].update(impedance_ohm=0), r"impedance_ohm must be positive"),
    (lambda t: t["links"][0].update(directed="yes"), r"directed must be true or false"),
])
def test_validation_errors_name_the_entry(mutate, message):
    t = small()
    mutate(t)
    with pytest.raises(TopologyError, match=message):
        T.load(t)


def test_two_directed_links_make_an_asymmetric_pair():
    t = small(directed=True, snr_db=20)
    t["links"].append({"a": "m1", "b": "dcu", "directed": True, "snr_db": 5})
    topo = T.load(t)
    assert T.links_from(topo, "dcu")[0][1]["snr_db"] == 20.0
    assert T.links_from(topo, "m1")[0][1]["snr_db"] == 5.0
    t["links"].append({"a": "m1", "b": "dcu", "directed": True})
    with pytest.raises(TopologyError, match=r"links\[2\] \(m1-dcu\): duplicate of links\[1\]"):
        T.load(t)


def test_aca_is_upper_cased():
    t = small()
    t["nodes"][1]["aca"] = "a8040a1e8901"
    assert T.load(t)["nodes"][1]["aca"] == "A8040A1E8901"


# --- demo feeder ---------------------------------------------------------------


def test_demo_feeder_reachability():
    topo = T.demo_feeder()
    assert [(n["name"], n["role"], n.get("aca")) for n in topo["nodes"]] == [
        ("dcu", "concentrator", None),
        ("m1", "meter", "A8040A1E8901"),
        ("m2", "meter", "A8040A1E8902"),
        ("m3", "meter", "A8040A1E8903"),
    ]
    heard = {src: sorted(d for d, _ in out) for src, out in T.adjacency(topo).items()}
    assert heard == {"dcu": ["m1", "m2"], "m1": ["dcu", "m2"], "m2": ["dcu", "m1", "m3"], "m3": ["m2"]}
    assert T.hops(topo) == {"dcu": 0, "m1": 1, "m2": 1, "m3": 2}


# --- hops ----------------------------------------------------------------------


def test_hops_needs_both_directions():
    t = small(directed=True)
    assert T.hops(T.load(t)) == {"dcu": 0}  # m1 cannot answer
    with pytest.raises(TopologyError, match="unknown node 'nope'"):
        T.hops(T.load(t), root="nope")


# --- generated feeders ---------------------------------------------------------------


def test_lv_feeder_is_deterministic_by_seed():
    assert T.lv_feeder(60, seed=4) == T.lv_feeder(60, seed=4)
    assert T.lv_feeder(60, seed=4)["links"] != T.lv_feeder(60, seed=5)["links"]


def test_lv_feeder_nodes_and_acas():
    topo = T.lv_feeder(120, seed=2)
    names = [n["name"] for n in topo["nodes"]]
    assert names == ["dcu"] + ["m%d" % i for i in range(1, 121)]
    assert topo["nodes"][0]["role"] == "concentrator"
    acas = [n["aca"] for n in topo["nodes"][1:]]
    assert len(set(acas)) == 120
    assert all(len(a) == 12 and not a.startswith("03") for a in acas)
    # ACAs do not depend on the seed.
    assert acas == [n["aca"] for n in T.lv_feeder(120, seed=9)["nodes"][1:]]


def test_lv_feeder_links_are_within_reach():
    topo = T.lv_feeder(150, seed=3)
    assert topo["links"]
    for l in topo["links"]:
        assert l["attenuation_db"] < T.REACH_MAX_ATTENUATION_DB
        assert l["snr_db"] == pytest.approx(T.TX_LEVEL_DBUV - T.NOISE_FLOOR_DBUV - l["attenuation_db"])


def test_small_feeder_is_one_hop():
    for seed in range(5):
        h = T.hops(T.lv_feeder(5, seed=seed))
        assert h == {"dcu": 0, **{"m%d" % i: 1 for i in range(1, 6)}}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_large_feeder_needs_several_hops(seed):
    topo = T.lv_feeder(200, seed=seed)
    h = T.hops(topo)
    assert len(h) == 201  # everyone reachable
    assert max(h.values()) >= 3
    # Far meters are not heard by the concentrator directly.
    direct = {d for d, _ in T.links_from(topo, "dcu")}
    assert len(direct) < 200


def test_lv_feeder_explicit_feeders_and_root():
    topo = T.lv_feeder(30, seed=1, feeders=3, root="sub")
    assert topo["meta"]["feeders"] == 3
    assert {n["feeder"] for n in topo["nodes"][1:]} == {1, 2, 3}
    assert set(T.hops(topo, root="sub")) == {n["name"] for n in topo["nodes"]}


# --- svg -----------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def test_svg_is_well_formed_and_draws_everything():
    topo = T.demo_feeder()
    root = ET.fromstring(T.to_svg(topo))
    assert root.tag == SVG + "svg"
    texts = [t.text for t in root.iter(SVG + "text")]
    # meters by ACA, the concentrator by name, a heading per hop level
    for name in ("dcu", "A8040A1E8901", "A8040A1E8902", "A8040A1E8903", "hop 1: 2", "hop 2: 1"):
        assert name in texts
    links = root.find(SVG + "g[@class='links']")
    assert len(links.findall(SVG + "line")) == 4
    assert len(root.find(SVG + "g[@class='routes']")) == 0
    y = {e.find(SVG + "title").text.split(" ")[0]: float(e.get("cy", e.get("y")))
         for e in root.find(SVG + "g[@class='nodes']")}
    assert y["dcu"] < y["m1"] == y["m2"] < y["m3"]  # the concentrator on top, then by hop level


def test_svg_routes_are_highlighted():
    topo = T.demo_feeder()
    # A dict of routes without the concentrator, one with, and one by ACA.
    svg = T.to_svg(topo, routes={"m3": ["m2", "m3"], "m1": ["dcu", "m1"]})
    routes = ET.fromstring(svg).find(SVG + "g[@class='routes']")
    assert len(routes.findall(SVG + "line")) == 3
    svg = T.to_svg(topo, routes=[["A8040A1E8902", "A8040A1E8903"]])
    assert len(ET.fromstring(svg).find(SVG + "g[@class='routes']")) == 2


def test_svg_unreachable_and_escaping():
    t = small()
    t["nodes"].append({"name": "<lonely&>", "aca": "010000000009"})
    root = ET.fromstring(T.to_svg(t))
    texts = [x.text for x in root.iter(SVG + "text")]
    assert "010000000009" in texts and "not reached: 1" in texts
    titles = [x.text for x in root.iter(SVG + "title")]
    assert "<lonely&> (not reached), ACA 010000000009" in titles


def test_svg_of_an_empty_topology():
    assert ET.fromstring(T.to_svg({"nodes": []})).tag == SVG + "svg"


def test_svg_of_a_generated_feeder():
    topo = T.lv_feeder(80, seed=1)
    root = ET.fromstring(T.to_svg(topo))
    assert len(root.find(SVG + "g[@class='links']")) == len(topo["links"])
