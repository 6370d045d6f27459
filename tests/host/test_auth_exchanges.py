"""Authenticated services end to end: the concentrator's session against
meters that run the firmware's receive rules, in process and on MicroPython."""

import os

import pytest

from meter import registers as R
from smitp import topology
from smitp.concentrator import Concentrator, Nack, parse_aca
from smitp.demo import wait_until_ready
from smitp.network import neighbourhood
from smitp.secure import KeyRing

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


def test_concentrator_resynchronises_after_nack10():
    keys = make_keys()
    net, port = neighbourhood(topology.demo_feeder(), boards=False, keys=keys)
    conc = Concentrator(port, keyring=ring(keys, lmon=500))  # the concentrator is ahead
    v = conc.read(M1, [R.LMON], auth=True)
    assert int.from_bytes(v[R.LMON], "big") == 1
    assert conc.stats["resyncs"] == 1


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
