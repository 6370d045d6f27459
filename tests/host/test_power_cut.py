"""Power cuts at random instants during authenticated exchanges with an
emulated board (the firmware on MicroPython, LMON and caches in littlefs on a
file-backed flash image). After every restart no earlier request may be
accepted again, and the concentrator must resynchronise and go on."""

import random

from meter import attrs as A
from meter import registers as R
from meter import security as sec
from smitp import topology
from smitp.concentrator import Concentrator, Nack, NoAnswer, parse_aca
from smitp.medium import Medium
from smitp.network import Network
from smitp.emulated_board import EmulatedBoard
from smitp.provision import provision_image
from smitp.secure import KeyRing

ACA = parse_aca("A8040A1E8901")
K1, K2 = bytes(range(16)), bytes(range(16, 32))
EXCHANGES = 500
CUT_EVERY = 20  # on average
FAST_BITRATE = 48000  # a faster line than 4800 bit/s, to keep the test short


class CuttingPort:
    """The concentrator's port, with a power cut of the board scheduled at a random instant."""

    def __init__(self, port, net, slot):
        self.port, self.net, self.slot = port, net, slot
        self.cut_at = None
        self.cuts = 0

    def now(self):
        return self.port.now()

    def send(self, payload):
        self._maybe_cut()
        self.port.send(payload)

    def recv(self, timeout_s):
        end = self.now() + timeout_s
        while True:
            wait = end - self.now()
            if self.cut_at is not None:
                wait = min(wait, self.cut_at - self.now())
            payload = self.port.recv(max(0.0, wait))
            self._maybe_cut()
            if payload is not None or self.now() >= end:
                return payload

    def _maybe_cut(self):
        if self.cut_at is not None and self.now() >= self.cut_at:
            self.cut_at = None
            self.cuts += 1
            board = self.slot.board
            board.power_cut()
            board.start()
            self.slot.emu.power_on(self.now() * 1000)
            booted = self.cuts + 1
            assert self.net.run_until(lambda: board.log_text().count("modem configured") >= booted, 20), board.log_text()


def answer_to(conc, lsdu, ecc):
    try:
        return conc.request(ACA, lsdu, (), 140, ecc)
    except NoAnswer:
        return b""


def test_random_power_cuts_never_let_a_request_count_twice(tmp_path):
    rng = random.Random(2024)
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"},
                                    {"name": "m1", "aca": ACA.hex()}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=FAST_BITRATE, topology=topo))
    board = EmulatedBoard("m1", ACA.hex(), "SNCUT", tmp_path)
    provision_image(board.flash, K1, K2)
    slot = net.add_board("m1", board)
    port = CuttingPort(net.add_concentrator("dcu"), net, slot)
    ring = KeyRing.from_dict({ACA.hex(): {"k1": K1.hex(), "k2": K2.hex()}})
    conc = Concentrator(port, retries=1, keyring=ring)
    try:
        assert net.run_until(lambda: "modem configured" in board.log_text(), 20), board.log_text()
        accepted = []  # (request LSDU, ECC, answer LSDU) the meter accepted
        done = failures = replays = 0
        while done < EXCHANGES:
            if rng.randrange(CUT_EVERY) == 0:
                port.cut_at = port.now() + rng.uniform(0.0, 0.03)
            cuts_before = port.cuts
            write = rng.randrange(3) == 0
            try:
                if write:
                    label = b"CUT %d" % done
                    conc.write(ACA, {R.POINT_LABEL: label.ljust(16, b"\0")}, auth=True)
                else:
                    conc.read(ACA, [R.LMON], auth=True)
                accepted.append((conc.last_request_lsdu, sec.ECC_CTR_WRITE if write else sec.ECC_CTR_READ,
                                 conc.last_answer))
                done += 1
            except (NoAnswer, Nack):
                failures += 1
            if port.cuts != cuts_before and accepted:
                # Replay what the meter accepted before the cut: the last request may
                # only get its own cached answer back; any older one must be refused.
                last = accepted[-1]
                for req, ecc, answer in [last] + rng.sample(accepted, min(3, len(accepted))):
                    got = answer_to(conc, req, ecc)
                    replays += 1
                    assert got[:2] == bytes((sec.ATTR_NACK_A_AUTH, A.NACK_AUTH)) or (
                        req == last[0] and got == last[2]), "a request counted twice after a power cut"
        assert port.cuts >= EXCHANGES // CUT_EVERY // 2, port.cuts
        assert conc.stats.get("resyncs", 0) >= 1
        lmon = int.from_bytes(conc.read(ACA, [R.LMON], auth=True)[R.LMON], "big")
        assert lmon >= done  # every accepted request took a fresh MON
        print("%d exchanges, %d power cuts, %d failed exchanges, %d replays refused, %d resyncs, LMON %d"
              % (done, port.cuts, failures, replays, conc.stats.get("resyncs", 0), lmon))
    finally:
        net.close()
