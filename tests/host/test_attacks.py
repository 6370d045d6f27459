"""The attack suite of `smitp demo --auth` (smitp.attacks): the frame forging on
its own, every attack against in-process meters on the simulated feeder (each
checked by the meter's answer, ATTR and PAR1, not merely "a NACK"), the suite
catching meters that lack a protection, and one live run on emulated boards."""

import json
import random
import struct

import pytest

from meter import attrs as A
from meter import firmware_id
from meter.app import security as sec
from meter.app.services import Application
from meter.app.auth import SecureLayer, security_factory
from meter.model.datamodel import DataModel
from meter.app.lmon import LMON_MAX
from meter.model.metering import Metering
from meter.app.node import MeterNode
from meter.storage import Store
from smitp import attacks, demo
from smitp.cli import main
from smitp.concentrator import Concentrator, aca_text, parse_aca
from smitp.network import neighbourhood, serial_for
from smitp.provision import provision_store
from smitp.secure import KeyRing

ACA = parse_aca("A8040A1E8901")
K1, K2 = bytes(range(16)), bytes(range(16, 32))
NACK_A, NACK_AUTH = A.NACK_A, sec.ATTR_NACK_A_AUTH
READ_RESP_AUTH, ACK_AUTH = sec.auth_attr(A.READ_RESP), A.ACK_A_AUTH

# The meter's answers each attack must draw: [(step, ATTR, PAR1 or None)].
CRASH = ([("unicast ATTR %d, %d bytes" % (a, n), NACK_A, A.NACK_UNSUPPORTED) for a, n in ((245, 18), (239, 18),
                                                                                           (113, 19))]
         + [("unicast ATTR 190-238", NACK_A, A.NACK_UNSUPPORTED), ("unicast ATTR 240-246", NACK_A, A.NACK_UNSUPPORTED),
            ("unicast ECB, 18 encrypted bytes", NACK_AUTH, sec.NACK_AUTH), ("plain READ after them", A.READ_RESP, None)])
EXPECTED = {
    "replay": [("replayed read", NACK_AUTH, sec.NACK_AUTH)],
    "stale_lmon": [("read under the last LMON", NACK_AUTH, sec.NACK_AUTH)],
    "bit_flip": [("read with a flipped bit", NACK_AUTH, sec.NACK_AUTH)],
    "forged_tmac": [("read with a forged TMAC", NACK_AUTH, sec.NACK_AUTH)],
    "write_with_read_key": [("clock write under K2", NACK_AUTH, A.NACK_ACCESS_DENIED)],
    "crash_frames": CRASH,
    "ctr_rewrite_clock": [("label write rewritten to a clock write", NACK_AUTH, A.NACK_ACCESS_DENIED)],
    "ctr_rewrite_key": [("label write rewritten to a key write", NACK_AUTH, A.NACK_UNKNOWN_REGISTER)],
    "keystream_reuse": [("request suppressed, then another read", READ_RESP_AUTH, None),
                        ("answer jammed, then another read", READ_RESP_AUTH, None)],
    "nack10_double_execution": [("modified copy", NACK_AUTH, sec.NACK_AUTH)],
    "replay_after_power_cut": [("first write replayed", NACK_AUTH, sec.NACK_AUTH),
                               ("last write replayed", ACK_AUTH, None)],
    "broadcast_write_flood": [("plain write after %d broadcasts" % attacks.BROADCAST_WRITES, NACK_A, A.NACK_BUSY),
                              ("authenticated write", ACK_AUTH, None)],
    "nack10_flood": [("forged request", NACK_AUTH, sec.NACK_AUTH), ("forged request", None, None),
                     ("valid request right after", READ_RESP_AUTH, None)],
    "lmon_exhausted": [("authenticated read", NACK_A, A.NACK_LMON_EXHAUSTED), ("plain read", A.READ_RESP, None)],
}


def steps(answers):
    return [(s["step"], s["attr"], s["par1"]) for s in answers]


def check_answers(name, answers):
    assert steps(answers) == EXPECTED[name], (name, answers)
    if name == "nack10_flood":
        # Rate-limited: what the attacks before left of the burst, and the refills, answered (the
        # verdict holds the count to the rate); silence for the rest.
        answered, silent = answers[0]["count"], answers[1]["count"]
        assert answered + silent == attacks.FLOOD_REQUESTS, answers
        assert answered >= 1 and silent >= attacks.FLOOD_REQUESTS // 4, answers


# ---- forging ------------------------------------------------------------------------------------
def test_crc_correction_keeps_the_crc_of_any_input():
    import zlib

    delta = bytearray(40)
    delta[7] = 0x5A
    delta[20] = 0x01
    delta[30:34] = attacks.crc_correction(delta, 30)
    for text in (bytes(40), bytes(range(40)), b"x" * 40):
        assert zlib.crc32(bytes(a ^ b for a, b in zip(text, delta))) == zlib.crc32(text)


def test_ctr_rewrite_turns_a_label_write_into_a_key_write_without_the_key():
    keys = sec.Keys(K1, K2)
    label = struct.pack(">H", 0x0013) + attacks.LABEL
    genuine = sec.seal(keys, ACA, sec.auth_attr(A.WRITE_REQ), label, 7, sec.ECC_CTR_WRITE, 1800000000)
    wanted = struct.pack(">H", 0x0300) + attacks.ATTACKER_KEY
    forged = attacks.ctr_rewrite(genuine, label, wanted)
    assert forged[-sec.TMAC_LEN:] == genuine[-sec.TMAC_LEN:]  # the TMAC is the genuine one
    data, when = sec.open_(keys, ACA, forged, 7, sec.ECC_CTR_WRITE)  # ... and it verifies
    assert data == wanted and when != 1800000000


class Idle:
    """A port nobody talks on: enough for the forging helpers."""

    def now(self):
        return 0


def test_two_reads_under_one_mon_are_found_and_read_by_an_eavesdropper():
    t = attacks.Target(Concentrator(Idle()), ACA, (), (K1, K2))
    first, second = (sec.seal_msg(t.keys, ACA, sec.auth_attr(A.READ_REQ), struct.pack(">H", reg), 5,
                                  sec.ECC_CTR_READ, 1800000000) for reg in (0x003F, 0x0030))
    later = sec.seal_msg(t.keys, ACA, sec.auth_attr(A.READ_REQ), b"\x00\x30", 6, sec.ECC_CTR_READ, 1800000000)
    assert attacks._reuse(t, [first, later], 4, sec.ECC_CTR_READ) is None
    assert attacks._reuse(t, [first, later, second], 4, sec.ECC_CTR_READ) == (5, first, second)
    assert attacks.recover(first, b"\x00\x3f", second) == b"\x00\x30"


def test_reframe_changes_the_lsdu_only():
    t = attacks.Target(Concentrator(Idle()), ACA, (parse_aca("A8040A1E8902"),))
    f = attacks.frame(t, b"\x66" + bytes(20), sec.ECC_ECB_WRITE)
    g = attacks.reframe(f, b"\x67" + bytes(20))
    assert attacks.lsdu_of(g) == (b"\x67" + bytes(20), sec.ECC_ECB_WRITE) and f[:-30] == g[:-30]


def test_the_live_run_sends_a_representative_few_of_the_crash_frames():
    every = list(attacks.crash_lsdus(random.Random(1)))
    served = (200, 201)  # REPROG_LOCAL and REPROG_BROADCAST authenticated: the download's, not garbage
    assert [lsdu[0] for step, lsdu, _ecc, _ans in every if "-" in step] == \
        [a for a in range(190, 239) if a not in served] + list(range(240, 247))
    for seed in range(20):
        few = list(attacks.crash_lsdus(random.Random(seed), sweep=False))
        shown = [(step, lsdu[0], len(lsdu), ecc) for step, lsdu, ecc, _ans in few]
        assert shown[:3] == [("ATTR 245, 18 bytes", 245, 18, 0), ("ATTR 239, 18 bytes", 239, 18, 0),
                             ("ATTR 113, 19 bytes", 113, 19, 0)]
        garbage = [attr for step, attr, _n, _ecc in shown if "-" in step]
        assert garbage[0] == 190 and 190 < garbage[1] < 238 and garbage[1] not in served and garbage[2] == 238
        assert garbage[3] in (240, 242, 244, 246) and len(garbage) == 4
        assert shown[-1] == ("ECB, 18 encrypted bytes", sec.auth_attr(A.READ_REQ), 19, sec.ECC_ECB_READ)


def test_answers_are_named_with_their_code():
    assert attacks.describe(b"") == "no answer"
    assert attacks.describe(bytes((245, 10)) + bytes(16)) == "NACK 245, PAR1 10 (authentication failure)"
    assert attacks.describe(bytes((255, 11, 0, 0))) == "NACK 255, PAR1 11 (LMON exhausted)"
    assert attacks.describe(bytes((103,)) + bytes(20)) == "READ.RESP AUTH (ATTR 103)"


def test_summary_names_the_meters_that_did_not_reject():
    per_meter = {"M1": {"replay": "rejected"}, "M2": {"replay": "accepted"}, "MX": {"lmon_exhausted": "rejected"}}
    s = attacks.summary(per_meter)
    assert s["replay"] == "accepted by M2" and s["lmon_exhausted"] == "rejected" and s["bit_flip"] == "not tried"


# ---- in-process meters --------------------------------------------------------------------------
class Feeder:
    """The demo's attack feeder with in-process meters on a virtual clock, each
    over a store that survives its power cuts."""

    def __init__(self):
        topo, self.meters, self.exhausted = demo.attack_feeder()
        self.net, port = neighbourhood(topo, boards=False)
        self.names = {n["aca"]: n["name"] for n in topo["nodes"] if n["role"] == "meter"}
        self.stores = {}
        self.keys = {}
        for i, aca in enumerate(self.names):
            self.keys[aca] = (bytes([i + 1]) * 16, bytes([0x80 + i]) * 16)
            self.stores[aca] = Store()
            lmon = LMON_MAX if parse_aca(aca) == self.exhausted else None
            provision_store(self.stores[aca], *self.keys[aca], lmon)
            self.boot(aca)
        ring = KeyRing.from_dict({a: {"k1": k1.hex(), "k2": k2.hex()} for a, (k1, k2) in self.keys.items()
                                  if parse_aca(a) != self.exhausted})
        self.conc = Concentrator(port, keyring=ring)

    def boot(self, aca):
        """Power the meter up over its store (a power cut loses everything else)."""
        store = self.stores[aca]

        def now():
            return int(self.net.clock.now())

        raw = parse_aca(aca)
        model = DataModel(serial_for(aca), raw, firmware_id("in-process"), store, now)
        Metering(model, store)
        self.net.meters[self.names[aca]] = MeterNode(raw, model, security_factory(raw, store, model, now), store=store)

    def targets(self):
        results = demo.read_meters(self.conc, self.meters, auth=True)
        for m in results:
            route = tuple(parse_aca(r) for r in m["route"][:-1])
            yield attacks.Target(self.conc, parse_aca(m["aca"]), route, self.keys[m["aca"]],
                                 lambda a=m["aca"]: self.boot(a))

    def exhausted_target(self):
        return attacks.Target(self.conc, self.exhausted, (), self.keys[aca_text(self.exhausted)])


@pytest.fixture(scope="module")
def attacked():
    """Every attack against every in-process meter, once: {ACA: {attack: Outcome}}."""
    feeder = Feeder()
    found = {aca_text(t.aca): attacks.attack(feeder.conc, t) for t in feeder.targets()}
    found[aca_text(feeder.exhausted)] = attacks.attack(feeder.conc, feeder.exhausted_target(), attacks.EXHAUSTED_METER)
    return found


@pytest.mark.parametrize("name", attacks.ATTACKS)
def test_every_meter_rejects_with_the_answer_its_rules_give(attacked, name):
    met = {aca: found[name] for aca, found in attacked.items() if name in found}
    assert met, name
    for aca, outcome in met.items():
        assert outcome.verdict == attacks.REJECTED, (aca, name, outcome.text())
        check_answers(name, outcome.answers())


def test_meters_behind_a_repeater_met_every_attack_too(attacked):
    assert set(attacked["A8040A1E8903"]) == {name for name, _fn in attacks.PER_METER}
    assert "no answer" not in attacked["A8040A1E8903"]["replay_after_power_cut"].text()


def run_one(name, target_aca="A8040A1E8901"):
    feeder = Feeder()
    target = next(t for t in feeder.targets() if aca_text(t.aca) == target_aca)
    return attacks.attack(feeder.conc, target, [a for a in attacks.PER_METER if a[0] == name])[name]


@pytest.mark.parametrize("target_aca", ["A8040A1E8901", "A8040A1E8903"])  # directly, behind the repeater
def test_a_meter_answering_every_forgery_is_caught(monkeypatch, target_aca):
    monkeypatch.setattr(SecureLayer, "_may_answer", lambda self, now_ms: True)
    outcome = run_one("nack10_flood", target_aca)
    assert outcome.verdict == attacks.ACCEPTED and outcome.answers()[0]["count"] == attacks.FLOOD_REQUESTS


@pytest.mark.parametrize("budget", ["plain", "authenticated"])
def test_a_meter_with_one_write_budget_for_everybody_is_caught(monkeypatch, budget):
    # One budget for all writes, of the plain size (the broadcasts starve the
    # authenticated write) or of the authenticated size (the plain write after
    # them goes through).
    shared = 0 if budget == "plain" else 1
    monkeypatch.setattr(Application, "spend", lambda self: self._budgets[shared].take(self.model.clock()))
    outcome = run_one("broadcast_write_flood")
    assert outcome.verdict == attacks.ACCEPTED
    if budget == "plain":
        assert steps(outcome.answers())[-1] == ("authenticated write", NACK_AUTH, A.NACK_BUSY)
    else:
        assert steps(outcome.answers())[0] == ("plain write after %d broadcasts" % attacks.BROADCAST_WRITES,
                                               A.ACK_A, None)


def test_a_meter_that_forgets_its_last_answer_at_a_power_cut_is_caught(monkeypatch):
    from meter.app.lmon import ResponseCache

    put = ResponseCache.put
    monkeypatch.setattr(ResponseCache, "put", lambda self, req, ans, ecc=0, persist=True: put(self, req, ans, ecc, False))
    outcome = run_one("replay_after_power_cut", "A8040A1E8903")
    assert outcome.verdict != attacks.REJECTED
    assert steps(outcome.answers())[-1] == ("last write replayed", NACK_AUTH, sec.NACK_AUTH)


# ---- live: the demo on emulated boards ----------------------------------------------------------
@pytest.mark.timeout(240)
def test_demo_auth_every_attack_rejected_by_every_emulated_board(capsys):
    assert main(["demo", "--auth", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    entries = report["meters"] + [report["exhausted_meter"]]
    assert [m["aca"] for m in entries] == ["A8040A1E8901", "A8040A1E8902", "A8040A1E8903", demo.EXHAUSTED_ACA]
    for m in entries:  # first meter by meter, so a failure shows the attack's own account
        for name, verdict in m["security"].items():
            assert verdict == attacks.REJECTED, (m["aca"], name, m["security_detail"][name])
            check_answers(name, m["security_answers"][name])
    assert report["security"] == {name: attacks.REJECTED for name in attacks.ATTACKS}
    for m in report["meters"]:
        (lmon,) = [r["value"] for r in m["registers"] if r["name"] == "last message order number"]
        assert lmon >= 1
        assert m["lmon_after_attacks"] > lmon  # still serving
