"""Power cuts during authenticated exchanges.

The random test: an emulated board (the firmware on MicroPython, LMON and
caches in littlefs on a file-backed flash image) loses its supply at instants
drawn from one seed (POWER_CUT_SEED repeats a run; a failure names its seed).
After every restart no earlier request may be accepted again, and the
concentrator must resynchronise and go on.

Below it, what made that test fail at random, reproduced on a virtual clock
with an in-process meter: an answer that reaches the concentrator after it
gave up waiting must not be taken for the answer to its next request. (The
meter's part, an older write's answer back after a reboot, is in
tests/firmware/test_robustness.py.)"""

import os
import random

import pytest

from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.app import security as sec
from smitp import topology
from smitp.concentrator import Concentrator, Nack, NoAnswer, parse_aca
from smitp.emulated_board import EmulatedBoard
from smitp.medium import Medium
from smitp.network import Network, in_process_meter
from smitp.provision import provision_image
from smitp.secure import KeyRing, OutcomeUnknown

ACA = parse_aca("A8040A1E8901")
K1, K2 = bytes(range(16)), bytes(range(16, 32))
SEED = int(os.environ.get("POWER_CUT_SEED", "2024"))
EXCHANGES = 500
ATTEMPTS = 3 * EXCHANGES  # failed exchanges (cuts, busy, silence) do not count: a bound, not a target
CUT_EVERY = 20  # on average
CUT_WITHIN_S = 0.03  # a cut comes this long at most after the request went out
FAST_BITRATE = 48000  # a faster line than 4800 bit/s, to keep the test short
BOOT_S = 20  # longest restart of the board
REPLAYS = 3  # requests replayed after each cut: the last one and older ones
FAILS_IN_A_ROW = 10  # failed exchanges in a row that mean the meter stopped answering


def keyring():
    return KeyRing.from_dict({ACA.hex(): {"k1": K1.hex(), "k2": K2.hex()}})


class CuttingPort:
    """The concentrator's port; arm(delay) cuts the board's supply `delay`
    seconds after the next request goes out. The board's restart does not
    count against the concentrator's wait: how long an emulated boot takes on
    a busy host must not decide what the concentrator sees."""

    def __init__(self, port, net, slot):
        self.port, self.net, self.slot = port, net, slot
        self.armed = None
        self.cut_at = None
        self.cuts = 0
        self.late = 0  # frames still waiting when a request goes out: answers that came too late

    def now(self):
        return self.port.now()

    def arm(self, delay):
        self.armed = delay

    def send(self, payload):
        self.late += len(self.port.inbox)
        self.port.send(payload)
        if self.armed is not None:
            self.cut_at, self.armed = self.now() + self.armed, None

    def recv(self, timeout_s):
        end = self.now() + timeout_s
        while True:
            wait = end - self.now()
            if self.cut_at is not None:
                wait = min(wait, self.cut_at - self.now())
            payload = self.port.recv(max(0.0, wait))
            end += self._maybe_cut()
            if payload is not None or self.now() >= end:
                return payload

    def _maybe_cut(self):
        """Cut and restart the board if it is time; returns the time the restart took."""
        if self.cut_at is None or self.now() < self.cut_at:
            return 0.0
        self.cut_at = None
        self.cuts += 1
        t0 = self.now()
        medium, name, board = self.net.medium, self.slot.name, self.slot.board
        medium.set_power(name, False, t0)  # the modem shares the supply: its frame on the air ends here
        board.power_cut()
        self.slot.out = b""  # what the modem had for the old process's UART
        board.start()
        medium.set_power(name, True, self.now())
        self.slot.emu.power_on(self.now() * 1000)
        booted = self.cuts + 1
        assert self.net.run_until(lambda: board.log_text().count("modem configured") >= booted, BOOT_S), \
            board.log_text()
        return self.now() - t0


def answer_to(raw, lsdu, ecc):
    """The meter's answer to the bytes of an earlier request, b"" for silence."""
    try:
        return raw.request(ACA, lsdu, (), mac.DISCIPLINES[mac.DISC_RA7][1], ecc)
    except NoAnswer:
        return b""


@pytest.mark.timeout(240)  # about 50 s on an idle host
def test_random_power_cuts_never_let_a_request_count_twice(tmp_path):
    print("power-cut seed %d (POWER_CUT_SEED=%d repeats this run)" % (SEED, SEED))
    # The plan (which attempt is a write, which one is cut and when) comes from
    # the seed alone; the replays after a cut draw from a stream of their own.
    plan_rng, replay_rng = random.Random(SEED), random.Random(SEED + 1)
    plan = [(plan_rng.randrange(3) == 0,
             plan_rng.uniform(0.0, CUT_WITHIN_S) if plan_rng.randrange(CUT_EVERY) == 0 else None)
            for _ in range(ATTEMPTS)]
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"},
                                    {"name": "m1", "aca": ACA.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=FAST_BITRATE, topology=topo))
    board = EmulatedBoard("m1", ACA.hex(), "SNCUT", tmp_path)
    provision_image(board.flash, K1, K2)
    slot = net.add_board("m1", board)
    port = CuttingPort(net.add_concentrator("dcu"), net, slot)
    conc = Concentrator(port, retries=1, keyring=keyring())
    raw = Concentrator(port, retries=0)  # replays: sent once, silence is a refusal too
    done = failures = replays = in_a_row = 0
    try:
        assert net.run_until(lambda: "modem configured" in board.log_text(), BOOT_S), board.log_text()
        accepted = []  # (request LSDU, ECC, answer LSDU) the meter accepted
        for write, cut in plan:
            if done == EXCHANGES:
                break
            if cut is not None:
                port.arm(cut)
            cuts_before = port.cuts
            ecc = sec.ECC_ECB_WRITE if write else sec.ECC_CTR_READ
            try:
                if write:
                    label = b"CUT %d" % done
                    conc.write(ACA, {R.POINT_LABEL: label.ljust(16, b"\0")}, auth=True, ecc=ecc)
                else:
                    conc.read(ACA, [R.LMON], auth=True, ecc=ecc)
                accepted.append((conc.last_request_lsdu, ecc, conc.last_answer))
                done += 1
                in_a_row = 0
            except (NoAnswer, Nack, OutcomeUnknown):  # a cut may leave a request's outcome unknown
                failures += 1
                in_a_row += 1
                assert in_a_row < FAILS_IN_A_ROW, "%d exchanges in a row failed" % in_a_row
            if port.cuts != cuts_before and accepted:
                # Replay what the meter accepted before the cut: the last request may
                # only get its own cached answer back; any older one must be refused
                # (NACK-10, or silence past the meter's NACK-10 rate limit, which
                # the resynchronisation and these REPLAYS stay within).
                last = accepted[-1]
                older = replay_rng.sample(accepted[:-1], min(REPLAYS - 1, len(accepted) - 1))
                for req, req_ecc, _answer in [last] + older:
                    got = answer_to(raw, req, req_ecc)
                    replays += 1
                    own = req == last[0] and got == last[2]
                    assert got == b"" or own or got[:2] == bytes((sec.ATTR_NACK_A_AUTH, A.NACK_AUTH)), \
                        "a request counted twice after a power cut: %s got %s" % (req.hex(), got.hex())
        assert done == EXCHANGES, "%d exchanges of %d in %d attempts" % (done, EXCHANGES, ATTEMPTS)
        assert port.cuts >= EXCHANGES // CUT_EVERY // 2, port.cuts
        assert conc.stats.get("resyncs", 0) >= 1
        lmon = int.from_bytes(conc.read(ACA, [R.LMON], auth=True)[R.LMON], "big")
        assert lmon >= done  # every accepted request took a fresh MON
        print("%d exchanges, %d power cuts, %d failed exchanges, %d replays refused, %d resyncs, LMON %d"
              % (done, port.cuts, failures, replays, conc.stats.get("resyncs", 0), lmon))
    except BaseException as e:
        e.add_note("power-cut seed %d (POWER_CUT_SEED=%d repeats this run): %d exchanges, %d cuts, "
                   "%d late answers; the board's log ends:\n%s"
                   % (SEED, SEED, done, port.cuts, port.late, "\n".join(board.log_text().splitlines()[-15:])))
        raise
    finally:
        net.close()


# ---- the causes of the random test's old failures, on a virtual clock
ANSWER_S = 0.02  # the meter's answer arrives this long after its request


class Line:
    """The concentrator's port wired to one in-process meter, on a virtual
    clock. hold(): the meter's next answer reaches the port only as the next
    request goes out, that is after the concentrator gave up waiting for it."""

    def __init__(self):
        self.t = 0.0
        self.node = in_process_meter(ACA, "SNLINE", self, (K1, K2))
        self.frames = []  # (arrival time, frame), in arrival order
        self.holding = False
        self.held = None

    def now(self):
        return self.t

    def hold(self):
        self.holding = True

    def send(self, payload):
        if self.held is not None:
            self._arrives(self.t, self.held)
            self.held = None
        n = self.node.on_phy(bytes(payload), len(payload), int(self.t * 1000))
        if not n:
            return
        answer = bytes(self.node.out[:n])
        if self.holding:
            self.held, self.holding = answer, False
        else:
            self._arrives(self.t + ANSWER_S, answer)

    def _arrives(self, at, frame):
        self.frames.append((at, frame))
        self.frames.sort(key=lambda f: f[0])  # stable: frames due together keep their order

    def recv(self, timeout_s):
        if self.frames and self.frames[0][0] <= self.t + timeout_s:
            at, frame = self.frames.pop(0)
            self.t = max(self.t, at)
            return frame
        self.t += timeout_s
        return None


def lmon_read(conc):
    return int.from_bytes(conc.read(ACA, [R.LMON], auth=True)[R.LMON], "big")


def test_an_answer_to_a_repeat_that_comes_late_is_not_the_next_answer():
    # Symptom: an uncaught AuthError from the concentrator's next exchange. A
    # cut (or a slow meter) makes the first answer come after the timeout: the
    # concentrator sends the same bytes again, takes the late first answer, and
    # the meter's (cached) answer to the repeat stays on the line.
    line = Line()
    conc = Concentrator(line, retries=1, keyring=keyring())
    line.hold()
    assert lmon_read(conc) == 1 and conc.stats["retries"] == 1
    assert lmon_read(conc) == 2  # not the answer to the repeat, sealed under MON 1


def test_a_late_refusal_of_a_replay_is_not_the_next_answer():
    # Symptom: a replayed old request "answered from the cache" (the answers of
    # the replays came one behind each other), or an AuthError: the NACK-10 to
    # the replay, which covers the replay's bytes, taken for the next answer.
    line = Line()
    conc = Concentrator(line, retries=0, keyring=keyring())
    assert lmon_read(conc) == 1
    old = conc.last_request_lsdu
    assert lmon_read(conc) == 2
    line.hold()
    with pytest.raises(NoAnswer):
        conc.request(ACA, old, (), mac.DISCIPLINES[mac.DISC_RA7][1], sec.ECC_CTR_READ)
    assert lmon_read(conc) == 3
