"""Authenticated services end to end: the concentrator's session against
meters that run the firmware's receive rules, in process and on MicroPython."""

import pytest

from meter.model import registers as R
from smitp import topology
from smitp.concentrator import Concentrator, parse_aca
from smitp.demo import wait_until_ready
from smitp.errors import Nack
from smitp.network import neighbourhood
from smitp.secure import KeyRing, LmonBehind

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


def make_keys(seed=0):
    return {aca.hex().upper(): (bytes([seed + i]) * 16, bytes([0x80 + seed + i]) * 16)
            for i, aca in enumerate((M1, M2, M3))}


def ring(keys, lmon=0):
    return KeyRing.from_dict({a: {"k1": k1.hex(), "k2": k2.hex(), "lmon": lmon} for a, (k1, k2) in keys.items()})


@pytest.fixture
def inproc():
    keys = make_keys()
    net, port = neighbourhood(topology.demo_feeder(), boards=False, keys=keys)
    return net, Concentrator(port, keyring=ring(keys)), keys


def test_authenticated_read_counts_lmon_through_a_repeater(inproc):
    _net, conc, _ = inproc
    for expected in (1, 2, 3):
        v = conc.read(M3, [R.LMON, R.STATUS_WORD], route=(M2,), auth=True)
        assert int.from_bytes(v[R.LMON], "big") == expected
    assert conc.keyring[M3].lmon == 3


def test_plain_read_of_a_protected_register_is_refused(inproc):
    _net, conc, _ = inproc
    with pytest.raises(Nack) as e:
        conc.read(M1, [R.LMON])
    assert e.value.code == 2


def test_write_with_write_key_accepted_and_read_key_refused(inproc):
    _net, conc, _ = inproc
    conc.write(M1, {R.POINT_LABEL: b"A".ljust(16, b"\0")}, auth=True)
    with pytest.raises(Nack) as e:
        conc.write(M1, {R.CLOCK: (1).to_bytes(4, "big")}, auth=True, ecc=1)
    assert e.value.code == 2
    conc.write(M1, {R.CLOCK: (1800000000).to_bytes(4, "big")}, auth=True)


def test_concentrator_resynchronises_after_nack10(inproc):
    _net, conc, keys = inproc
    for _ in range(3):  # another concentrator moves the meter's LMON on
        conc.read(M1, [R.STATUS_WORD], auth=True)
    late = Concentrator(conc.port, keyring=ring(keys))
    v = late.read(M1, [R.LMON], auth=True)
    assert int.from_bytes(v[R.LMON], "big") == 4
    assert late.stats["resyncs"] == 1


def test_concentrator_ahead_of_the_meter_seals_nothing_under_a_used_mon():
    keys = make_keys()
    net, port = neighbourhood(topology.demo_feeder(), boards=False, keys=keys)
    conc = Concentrator(port, keyring=ring(keys, lmon=500))  # MONs up to 500 may have gone out
    with pytest.raises(LmonBehind):
        conc.read(M1, [R.LMON], auth=True)
    assert conc.keyring[M1].lmon == 0 and conc.keyring[M1].sealed == 501


def test_wrong_keys_never_get_data(inproc):
    _net, conc, keys = inproc
    conc.keyring = ring(make_keys(seed=7))
    with pytest.raises(Exception) as e:
        conc.read(M1, [R.STATUS_WORD], auth=True)
    assert "tmac" in str(e.value) or "refus" in str(e.value)


def test_emulated_board_with_provisioned_keys(tmp_path):
    keys = make_keys(seed=3)
    net, port = neighbourhood(topology.demo_feeder(), tmp_path, boards=True, keys=keys)
    try:
        wait_until_ready(net)
        conc = Concentrator(port, keyring=ring(keys))
        v = conc.read(M3, [R.LMON, R.ENERGY_IMPORT], route=(M2,), auth=True)
        assert int.from_bytes(v[R.LMON], "big") == 1
        conc.write(M2, {R.CLOCK: (1800000000).to_bytes(4, "big")}, auth=True)
        v = conc.read(M2, [R.CLOCK, R.STATUS_WORD], auth=True)
        assert int.from_bytes(v[R.CLOCK], "big") - 1800000000 < 30
        assert v[R.STATUS_WORD][-1] & 1 == 0  # the clock is set now
        assert all(k.hex() not in net.boards["m2"].board.log_text() for pair in keys.values() for k in pair)
    finally:
        net.close()


def test_cli_key_change_on_the_emulated_feeder(tmp_path, capsys):
    import json

    from smitp.cli import main

    current, new = tmp_path / "keys.json", tmp_path / "new.json"
    current.write_text(json.dumps({a: {"k1": k1.hex(), "k2": k2.hex()} for a, (k1, k2) in make_keys().items()}))
    assert main(["keys", "--meter", "A8040A1E8903", "--new-keys", str(new), "--generate"]) == 0
    assert (new.stat().st_mode & 0o777) == 0o600
    assert main(["keys", "--meter", "A8040A1E8903", "--new-keys", str(new), "--generate"]) == 2  # never over one
    capsys.readouterr()
    assert main(["keys", "--meter", "A8040A1E8903", "--via", "A8040A1E8902", "--emulated", "--keys", str(current),
                 "--new-keys", str(new), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == "activated"
    saved, fresh = json.loads(current.read_text()), json.loads(new.read_text())
    assert saved["A8040A1E8903"]["k1"] == fresh["A8040A1E8903"]["k1"]
    assert saved["A8040A1E8903"]["k2"] == fresh["A8040A1E8903"]["k2"]
    assert saved["A8040A1E8901"]["k1"] == make_keys()["A8040A1E8901"][0].hex()  # the others stay
    assert fresh["A8040A1E8903"]["k1"] not in capsys.readouterr().err
