"""The concentrator's rules for authenticated requests (smitp.secure, docs/security.md section 7)
against in-process meters (the firmware under CPython) on the simulated medium: one request
per MON, whatever the line does; a request with effect never runs twice; the key change."""

import random
import zlib

import pytest

from meter import attrs as A
from meter.app import keychange as KC
from meter.link import mac
from meter.model import registers as R
from meter.app import security as sec
from meter.app import tables as TB
from meter.app.lmon import LMON_MAX
from smitp import secure, topology
from smitp.concentrator import Concentrator, parse_aca
from smitp.errors import Nack, NoAnswer
from smitp.network import neighbourhood
from smitp.secure import ExchangeError, KeyRing, MeterSecurity, OutcomeUnknown, Refused, SecureError

M1 = parse_aca("A8040A1E8901")
K1, K2 = bytes([1]) * 16, bytes([0x81]) * 16
N1, N2 = bytes([2]) * 16, bytes([0x82]) * 16
LABEL = R.POINT_LABEL


class Wire:
    """The concentrator's port with somebody on the line. Records every frame the concentrator
    sends; a script says, per sending, what happens to it: "ok", "drop" (the meter's answer is
    jammed), "tamper" (the request is altered on the way, its last 8 bytes kept, so that the
    meter's NACK-10 still verifies at the concentrator) or "lost" (it never reaches the meter)."""

    def __init__(self, port, script=()):
        self.port, self.script, self.sent = port, list(script), []
        self._jam = False

    def now(self):
        return self.port.now()

    def send(self, payload):
        self.sent.append(bytes(payload))
        step = self.script.pop(0) if self.script else "ok"
        self._jam = step == "drop"
        if step == "tamper":
            payload = _altered(payload)
        if step != "lost":
            self.port.send(payload)

    def recv(self, timeout_s):
        end = self.now() + timeout_s
        while True:
            got = self.port.recv(max(0.0, end - self.now()))
            if got is None or not self._jam:
                return got

    def lsdus(self):
        """(LSDU, ECC) of every frame sent."""
        out = []
        for frame in self.sent:
            f = mac.Frame()
            mac.decode(f, frame, len(frame))
            out.append((bytes(frame[f.data:f.data + f.data_len]), f.ecc))
        return out


def _altered(frame):
    f = mac.Frame()
    mac.decode(f, frame, len(frame))
    b = bytearray(frame)
    b[f.data + 1] ^= 0x01  # a DATA byte; the TMAC (Etm*) stays
    b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "little")
    return bytes(b)


def opened(lsdu, ecc, pairs, top=400):
    """(MON, DATA) of a captured request: the MON its TMAC verifies with, found with the codec
    alone (not with the session that sealed it)."""
    for k1, k2 in pairs:
        for mon in range(top):
            try:
                data, _dt = sec.open_(sec.Keys(k1, k2), M1, lsdu, mon, ecc)
            except sec.AuthError:
                continue
            if sec.ecc_mode(ecc) == sec.MODE_ECB:
                data = data[:sec.ecb_unpad(bytearray(b"x" + data), 1 + len(data)) - 1]
            return mon, data
    raise AssertionError("no MON verifies %s" % lsdu.hex())


def requests_by_mon(wire, pairs=((K1, K2),)):
    """{MON: {distinct LSDUs sealed under it}} of everything the concentrator sent."""
    out = {}
    for lsdu, ecc in wire.lsdus():
        if sec.is_authenticated(lsdu[0]):
            out.setdefault(opened(lsdu, ecc, pairs)[0], set()).add(lsdu)
    return out


def feeder(script=(), lmon=0):
    keys = {M1.hex().upper(): (K1, K2)}
    net, port = neighbourhood(topology.demo_feeder(), boards=False, keys=keys)
    wire = Wire(port, script)
    ring = KeyRing.from_dict({M1.hex(): {"k1": K1.hex(), "k2": K2.hex(), "lmon": lmon}})
    return net, Concentrator(wire, keyring=ring), wire


def billing_closures(conc):
    return int.from_bytes(conc.read(M1, [R.BILLING_COUNTER])[R.BILLING_COUNTER], "big")


def test_writes_and_commands_go_ecb_padded_reads_ctr():
    _net, conc, wire = feeder()
    conc.read(M1, [R.STATUS_WORD], auth=True)
    conc.write(M1, {LABEL: b"ECB".ljust(16, b"\0")}, auth=True)
    conc.command(M1, TB.CMD_FREEZE, auth=True)
    sent = [(lsdu, ecc) for lsdu, ecc in wire.lsdus() if sec.is_authenticated(lsdu[0])]
    assert [(lsdu[0], ecc) for lsdu, ecc in sent] == [(102, 1), (104, 6), (118, 6)]
    assert all((len(lsdu) - 1) % 16 == 0 for lsdu, ecc in sent if ecc == 6)
    assert opened(*sent[1], [(K1, K2)])[1] == LABEL.to_bytes(2, "big") + b"ECB".ljust(16, b"\0")
    with pytest.raises(Nack) as e:  # the meter's policy: nothing changes but under ECB
        conc.write(M1, {LABEL: b"CTR".ljust(16, b"\0")}, auth=True, ecc=sec.ECC_CTR_WRITE)
    assert e.value.code == A.NACK_ACCESS_DENIED
    assert conc.read(M1, [LABEL], auth=True)[LABEL].rstrip(b"\0") == b"ECB"


def test_one_request_per_mon_whatever_the_line_does():
    rng = random.Random(7)
    steps = ["ok"] * 4 + ["drop"] * 3 + ["tamper"] * 2 + ["lost"]
    _net, conc, wire = feeder()
    conc.read(M1, [R.STATUS_WORD], auth=True)
    wire.script = [rng.choice(steps) for _ in range(400)]
    commands = acked = 0
    for i in range(60):
        kind = i % 3
        try:
            if kind == 0:
                conc.read(M1, [R.LMON, R.STATUS_WORD], auth=True)
            elif kind == 1:
                conc.write(M1, {LABEL: (b"W%d" % i).ljust(16, b"\0")}, auth=True)
            else:
                commands += 1
                conc.command(M1, TB.CMD_CLOSE_BILLING, auth=True)
                acked += 1
        except (NoAnswer, ExchangeError, SecureError, sec.AuthError):
            pass
    wire.script = []
    by_mon = requests_by_mon(wire)
    assert all(len(lsdus) == 1 for lsdus in by_mon.values()), {m: len(v) for m, v in by_mon.items() if len(v) > 1}
    sealed_commands = {lsdu for lsdus in by_mon.values() for lsdu in lsdus if lsdu[0] == A.COMMAND + 100}
    assert len(sealed_commands) <= commands  # never sealed again after a NACK-10
    assert acked <= billing_closures(conc) <= len(sealed_commands)


def test_a_lost_write_answer_goes_first_before_a_different_request():
    _net, conc, wire = feeder()
    conc.read(M1, [R.STATUS_WORD], auth=True)
    wire.script = ["drop"] * (conc.retries + 1)
    with pytest.raises(NoAnswer) as e:
        conc.write(M1, {LABEL: b"FIRST".ljust(16, b"\0")}, auth=True)
    assert "stays pending" in str(e.value)
    write = wire.lsdus()[-1]
    assert {x for x in wire.lsdus()[-3:]} == {write}  # the retries: the same bytes
    n = len(wire.sent)
    assert conc.read(M1, [LABEL], auth=True)[LABEL].rstrip(b"\0") == b"FIRST"
    assert wire.lsdus()[n] == write  # the write, as it went, before the read: its cached answer came
    assert wire.lsdus()[n + 1][0][0] == A.READ_REQ + 100
    assert conc.keyring[M1].pending is None
    assert all(len(v) == 1 for v in requests_by_mon(wire).values())


def test_a_jammed_answer_and_a_forged_nack_never_run_a_command_twice():
    _net, conc, wire = feeder()
    conc.read(M1, [R.STATUS_WORD], auth=True)
    before = billing_closures(conc)
    # It runs, its answer is jammed; the retry is altered on the way: the meter answers NACK-10
    # with LMON = its MON, which verifies. Sent once more for the cached answer: jammed again.
    wire.script = ["drop", "tamper"] + ["drop"] * (conc.retries + 1)
    with pytest.raises(OutcomeUnknown) as e:
        conc.command(M1, TB.CMD_CLOSE_BILLING, auth=True)
    message = str(e.value)
    assert "outcome unknown" in message and "COMMAND" in message and "\n" not in message
    assert billing_closures(conc) == before + 1
    commands = {lsdu for lsdu, _ecc in wire.lsdus() if lsdu[0] == A.COMMAND + 100}
    assert len(commands) == 1  # never sealed again
    conc.read(M1, [R.STATUS_WORD], auth=True)  # and the session goes on
    assert billing_closures(conc) == before + 1
    assert all(len(v) == 1 for v in requests_by_mon(wire).values())


def test_a_forged_nack_is_settled_by_the_cached_answer():
    _net, conc, wire = feeder()
    conc.read(M1, [R.STATUS_WORD], auth=True)
    before = billing_closures(conc)
    wire.script = ["drop", "tamper", "ok"]
    conc.command(M1, TB.CMD_CLOSE_BILLING, auth=True)
    assert billing_closures(conc) == before + 1


def test_a_first_command_learns_the_lmon_first():
    _net, conc, wire = feeder()
    for _ in range(3):
        conc.read(M1, [R.STATUS_WORD], auth=True)
    late = Concentrator(wire, keyring=KeyRing.from_dict({M1.hex(): {"k1": K1.hex(), "k2": K2.hex()}}))
    before = billing_closures(late)
    late.command(M1, TB.CMD_CLOSE_BILLING, auth=True)  # a stale LMON is not taken for an answer lost
    assert billing_closures(late) == before + 1 and late.keyring[M1].lmon == 4
    assert wire.lsdus()[-3][0][0] == A.CHL_REQ  # challenge, command, then the plain check


def test_lmon_exhausted_meter_serves_plain_requests_only():
    net, conc, _wire = feeder()
    assert net.meters["m1"].secure.lmon.set(LMON_MAX)
    with pytest.raises(Refused) as e:
        conc.read(M1, [R.LMON], auth=True)
    assert e.value.code == A.NACK_LMON_EXHAUSTED and "LMON" in str(e.value)
    assert conc.read(M1, [R.SERIAL])[R.SERIAL]


def test_challenge_backs_off_while_the_meter_is_silent():
    net, conc, _wire = feeder()
    layer = net.meters["m1"].secure
    forged = sec.seal(sec.Keys(bytes(16), bytes(16)), M1, A.READ_REQ + 100, b"\x00\x15", 1, sec.ECC_CTR_READ, 0)
    for _ in range(10):  # bad requests spend the meter's NACK-10 budget; then it is silent
        try:
            conc.request(M1, forged, (), 40, sec.ECC_CTR_READ, tries=1)
        except NoAnswer:
            break
    silenced, t0 = layer.stats["silenced"], conc.port.now()
    assert silenced >= 1
    assert conc.challenge(M1) == 0
    assert layer.stats["silenced"] > silenced  # the first CHL.REQ met silence too
    assert conc.port.now() - t0 >= secure.BACKOFF_S  # backed off, then the CHL.RESP came


# ---- key change ----------------------------------------------------------------------------

def key_changes(conc):
    return int.from_bytes(conc.read(M1, [R.KEY_CHANGES])[R.KEY_CHANGES], "big")


def other(conc, k1, k2, lmon=0):
    """A concentrator on the same line holding another pair."""
    return Concentrator(conc.port, keyring=KeyRing.from_dict({M1.hex(): {"k1": k1.hex(), "k2": k2.hex(),
                                                                          "lmon": lmon}}))


def test_key_change_stage_and_activate():
    _net, conc, wire = feeder()
    assert conc.change_keys(M1, N1, N2) == "activated"
    assert key_changes(conc) == 1
    assert conc.keyring[M1].stats["key_changes"] == 1
    conc.write(M1, {LABEL: b"NEW KEYS".ljust(16, b"\0")}, auth=True)  # the session uses the new pair
    assert all(len(v) == 1 for v in requests_by_mon(wire, ((K1, K2), (N1, N2))).values())
    with pytest.raises(sec.AuthError):
        other(conc, K1, K2).read(M1, [R.STATUS_WORD], auth=True)  # only the new keys work now
    assert other(conc, N1, N2).read(M1, [LABEL], auth=True)[LABEL].rstrip(b"\0") == b"NEW KEYS"


def test_old_keys_work_until_the_activate_and_a_wrong_activate_is_refused():
    _net, conc, _wire = feeder()
    conc.challenge(M1)
    stage = KC.stage_data(K1, N1, N2)
    assert conc.secure_request(M1, A.KEY_CHANGE, stage, (), 1, sec.ECC_ECB_WRITE) == (A.ACK_A, b"")
    conc.write(M1, {LABEL: b"STILL OLD".ljust(16, b"\0")}, auth=True)  # staged, not in force
    with pytest.raises(sec.AuthError):
        other(conc, N1, N2).read(M1, [R.STATUS_WORD], auth=True)
    lmon = conc.keyring[M1].lmon
    for k1, k2 in ((bytes([3]) * 16, N2), (N1, bytes([4]) * 16)):  # sealed with another K1 / names another pair
        wrong = MeterSecurity(M1, k1, k2, lmon)
        lsdu = wrong.protect(A.KEY_CHANGE, KC.activate_data(k1, k2), sec.ECC_ECB_WRITE, 0)
        answer = conc.request(M1, lsdu, (), 40, sec.ECC_ECB_WRITE)
        assert answer[:2] == bytes((sec.ATTR_NACK_A_AUTH, sec.NACK_AUTH))
    assert key_changes(conc) == 0
    assert conc.read(M1, [LABEL], auth=True)[LABEL].rstrip(b"\0") == b"STILL OLD"
    assert conc.change_keys(M1, N1, N2) == "activated"
    assert key_changes(conc) == 1


def test_key_change_with_its_activate_answer_lost_is_settled_by_challenge():
    _net, conc, wire = feeder()
    # the challenge, the stage, then every answer to the activate jammed
    wire.script = ["ok", "ok"] + ["drop"] * (conc.retries + 1)
    assert conc.change_keys(M1, N1, N2) == "activated, answer lost"
    assert key_changes(conc) == 1 and not conc.keyring[M1].changing
    assert conc.read(M1, [R.LMON], auth=True)
    # challenge, stage, activate (three times), the challenge that settled it, then the reads
    assert [lsdu[0] for lsdu, _ecc in wire.lsdus()] == [112, 124] + [124] * 3 + [112, 2, 102]


def test_key_change_refused_when_the_activate_never_takes_effect():
    _net, conc, wire = feeder()
    # the activate altered on the way each time: the meter refuses it (NACK-10, LMON = its MON - 1)
    wire.script = ["ok", "ok"] + ["tamper"] * 3 + ["ok"]
    with pytest.raises(ExchangeError):
        conc.change_keys(M1, N1, N2)
    assert key_changes(conc) == 0 and conc.keyring[M1].changing
    assert conc.change_keys(M1, N1, N2) == "activated"  # again: the same activate goes first
    assert key_changes(conc) == 1
