# Late answers on a loaded line: a meter with the right keys whose answers come after the
# concentrator's answer window. The concentrator (smitp.concentrator, smitp.secure) talks to the
# firmware's meter node in process, on a virtual clock; a wrapper holds the node's answers back
# by a script, so that every run interleaves them the same way.
import pytest

from meter import attrs as A
from meter.model import registers as R
from smitp.concentrator import Concentrator
from smitp.errors import NoAnswer
from smitp.medium import Medium
from smitp.network import Network, VirtualClock, in_process_meter
from smitp.secure import KeyRing

ACA = bytes.fromhex("A8040A1E8901")
K1, K2 = bytes([1]) * 16, bytes([9]) * 16


class Loaded:
    """A meter node whose answers a script holds back: entry i says after how many of the meter's
    later answers its i-th answer goes on the air (0: on time, as the node gives it; None: never).
    Answers past the script go on time. `log`: what happened to each answer."""

    def __init__(self, node, script=()):
        self.node, self.script = node, list(script)
        self.out = bytearray(len(node.out))
        self._held = []  # [answers still to come before this one goes, its bytes]
        self._due = []  # released, waiting for poll()
        self.log = []

    def on_phy(self, buf, n, now_ms=0, quality=None):
        k = self.node.on_phy(buf, n, now_ms, quality)
        if not k:
            return 0
        answer = bytes(self.node.out[:k])
        for h in self._held:
            h[0] -= 1
        self._due += [h[1] for h in self._held if h[0] <= 0]  # before this answer, on the air first
        self._held = [h for h in self._held if h[0] > 0]
        later = self.script.pop(0) if self.script else 0
        self.log.append(later)
        if later is None:
            return 0
        if later:
            self._held.append([later, answer])
            return 0
        if self._due:  # this one after the released ones
            self._due.append(answer)
            return 0
        self.out[:k] = answer
        return k

    def poll(self, now_ms):
        if self._due:
            frame = self._due.pop(0)
            self.out[:len(frame)] = frame
            return len(frame)
        n = self.node.poll(now_ms)
        self.out[:n] = self.node.out[:n]
        return n

    def next_timeout(self, now_ms):
        return 0 if self._due else self.node.next_timeout(now_ms)


def line(script=(), keys=(K1, K2)):
    """A concentrator holding `keys` for one meter (provisioned with K1, K2) whose answers
    `script` holds back."""
    medium = Medium()
    for name in ("dcu", "m"):
        medium.add_node(name)
    medium.add_link("dcu", "m")
    net = Network(medium, VirtualClock())
    port = net.add_concentrator("dcu")
    meter = Loaded(in_process_meter(ACA, "SN1", net.clock, (K1, K2)), script)
    net.add_meter("m", meter)
    ring = KeyRing.from_dict({ACA.hex(): {"k1": keys[0].hex(), "k2": keys[1].hex()}})
    return Concentrator(port, keyring=ring), meter


def read(conc, reg=R.SERIAL):
    return conc.read(ACA, [reg], auth=True)[reg].rstrip(b"\0")


def test_a_stale_answer_then_silence_is_silence_not_a_failed_verification():
    # 1st read: its answer comes in the second window (once the retry reached the meter), the
    # meter's cached answer to that retry one answer later: in the next exchange's window.
    # 2nd read: the loaded meter answers none of its three sendings in time.
    conc, meter = line([1, 1, 3, 3, 3])
    assert read(conc) == b"SN1"
    s = conc.keyring[ACA]
    with pytest.raises(NoAnswer) as e:
        read(conc, R.FIRMWARE_ID)
    assert "1 late answer" in str(e.value), str(e.value)
    assert s.pending is not None and s.stats["rejected"] == 0 and s.stats["late"] == 1
    # asked again, as it went: its answers come now, the first one verifies
    assert read(conc, R.FIRMWARE_ID).startswith(b"smitp-meter")
    assert s.pending is None and meter.log == [1, 1, 3, 3, 3, 0]
