"""B-Nodes updated through their A-Node from the host: the concentrator's SETIC / WRITETABIC in
RB disciplines (plain only where allowed, authenticated with the write key), ACK / NACK B-Node,
the B-Node device in process and beside an emulated board, `smitp bnode` and its bad input."""

import json

import pytest

from meter import attrs as A
from meter.link import bnodelink as L
from meter.link import mac
from meter.model import registers as R
from smitp import bnode, topology
from smitp.cli import main
from smitp.concentrator import Concentrator
from smitp.errors import BNodeNack, Nack
from smitp.network import neighbourhood
from smitp.secure import KeyRing

M2, M3 = bytes.fromhex("A8040A1E8902"), bytes.fromhex("A8040A1E8903")
K1, K2 = bytes(range(16)), bytes(range(16, 32))
KEYS = {"A8040A1E8903": (K1, K2)}


def ring():
    return KeyRing.from_dict({a: {"k1": k1.hex(), "k2": k2.hex()} for a, (k1, k2) in KEYS.items()})


@pytest.fixture
def feeder():
    net, port = neighbourhood(topology.demo_feeder(), boards=False, keys=KEYS)
    devices = bnode.attach(net)
    sent = []
    send = port.send
    port.send = lambda payload: (sent.append(bytes(payload)), send(payload))[1]
    yield Concentrator(port, keyring=ring()), devices, sent
    net.close()


def test_plain_update_needs_the_flag_then_reaches_the_b_node_in_rb1(feeder):
    conc, devices, sent = feeder
    with pytest.raises(Nack) as e:
        conc.bnode_update(M3, b"HELLO", route=(M2,))
    assert e.value.code == A.NACK_ACCESS_DENIED and devices["m3"].received == []
    bnode.allow_plain(conc, M3, (M2,))
    assert conc.bnode_update(M3, b"HELLO", route=(M2,)) == bytes((0, 1, L.KIND_SET))
    f = mac.decode(mac.Frame(), sent[-1], len(sent[-1]))
    assert f.discipline == 0x9  # RB1: a plain ACK B-Node fits 20 bytes
    assert devices["m3"].received == [(L.KIND_SET, b"HELLO")]


def test_authenticated_update_and_table_in_rb3(feeder):
    conc, devices, sent = feeder
    assert conc.bnode_update(M3, b"PRICE", route=(M2,), auth=True) == bytes((0, 1, L.KIND_SET | L.KIND_AUTH))
    assert conc.bnode_update(M3, b"AB", table=3, first=7, route=(M2,), auth=True)[1] == 2
    assert devices["m3"].received[1] == (L.KIND_TABLE | L.KIND_AUTH, b"\x03\x00\x07AB")
    f = mac.decode(mac.Frame(), sent[-1], len(sent[-1]))
    assert f.discipline == 0xB and sent[-1][f.data] == 142  # RB3: an authenticated ACK needs 33 bytes


def test_nack_b_node_plain_and_authenticated(feeder):
    conc, devices, _sent = feeder
    devices["m3"].silent = True
    with pytest.raises(BNodeNack) as e:
        conc.bnode_update(M3, b"X", route=(M2,), auth=True)
    assert e.value.code == A.BNACK_NO_ANSWER
    devices["m3"].silent = False
    devices["m3"].refuse = bnode.REFUSE_CODE
    bnode.allow_plain(conc, M3, (M2,))
    with pytest.raises(BNodeNack) as e:
        conc.bnode_update(M3, b"X", route=(M2,))
    assert (e.value.code, e.value.detail) == (A.BNACK_REFUSED, bnode.REFUSE_CODE)


def test_read_key_never_writes_to_the_b_node(feeder):
    from meter.app import security as sec

    conc, devices, _sent = feeder
    with pytest.raises(Nack) as e:
        conc.bnode_update(M3, b"X", route=(M2,), auth=True, ecc=sec.ECC_ECB_READ)
    assert e.value.code == A.NACK_ACCESS_DENIED and devices["m3"].received == []


def run_json(capsys, argv, code=0):
    assert main(argv + ["--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_cli_plain_and_authenticated(tmp_path, capsys):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"A8040A1E8903": {"k1": K1.hex(), "k2": K2.hex()}}))
    base = ["bnode", "--meter", "A8040A1E8903", "--via", "A8040A1E8902", "--data", "48454C4C4F"]
    assert run_json(capsys, base, 1) == {"error": "NACK 2 (access denied)"}
    rep = run_json(capsys, base + ["--allow-plain", "--keys", str(keys)])
    assert rep["result"] == "ACK B-Node" and rep["reply"] == "000101"
    assert rep["bnode_received"] == [{"kind": "set", "authenticated": False, "data": "48454C4C4F"}]
    rep = run_json(capsys, base + ["--auth", "--keys", str(keys), "--table", "2"])
    assert rep["service"] == "WRITETABIC" and rep["bnode_received"][0]["authenticated"]
    assert rep["bnode_received"][0]["data"] == "020000" + "48454C4C4F"
    assert run_json(capsys, base + ["--auth", "--keys", str(keys), "--bnode", "silent"], 1) == {
        "error": "NACK B-Node 1 (no answer from the B-Node)"}


@pytest.mark.parametrize("extra,needle", [
    (["--data", "zz"], "--data: not hex"),
    (["--data", "00" * 101], "101 bytes, 1..100"),
    (["--data", ""], "--data: 0 bytes"),
    (["--data", "01", "--table", "256"], "--table"),
    (["--data", "01", "--auth"], "--keys FILE is needed"),
    (["--data", "01", "--bnode", "loud"], "--bnode"),
])
def test_cli_bad_input(capsys, extra, needle):
    assert main(["bnode", "--meter", "A8040A1E8903"] + extra) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_emulated_board_updates_its_b_node(tmp_path, capsys):
    # the real MicroPython firmware, its B-Node on a pty, plain then authenticated
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"A8040A1E8903": {"k1": K1.hex(), "k2": K2.hex()}}))
    base = ["bnode", "--meter", "A8040A1E8903", "--via", "A8040A1E8902", "--data", "4849", "--emulated",
            "--keys", str(keys)]
    rep = run_json(capsys, base + ["--allow-plain"])
    assert rep["emulated"] and rep["result"] == "ACK B-Node" and rep["bnode_received"] == [
        {"kind": "set", "authenticated": False, "data": "4849"}]
    rep = run_json(capsys, base + ["--auth", "--bnode", "refuse"], 1)
    assert rep == {"error": "NACK B-Node 2 (refused by the B-Node)"}
