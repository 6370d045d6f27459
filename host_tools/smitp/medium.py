"""A shared LV power line for simulations: sans-io, on a clock the caller supplies.

Nodes are names. A frame sent at `now` occupies the air for airtime_s(len)
seconds; when its airtime ends, poll() reports it to every node that heard it
and reports the end of transmission to the sender:

    m = Medium(topology=topology.demo_feeder())
    end = m.transmit("dcu", frame, now=0.0)
    for ev in m.poll(end):
        ("rx", dst, src, payload, quality) or ("tx_done", src)

A virtual-clock loop jumps to next_time(); a real-time loop polls with the wall
clock. Times never go backwards: transmitting before the latest time seen is
an error.

Reception rules, per receiver:
- only over a link (who hears whom comes from the topology; links are
  symmetric unless marked directed);
- half duplex: a node transmitting at any moment of a frame's airtime does not
  receive that frame;
- collisions (when enabled): two frames that overlap in time at a receiver
  that hears both are both lost there; a sender the receiver cannot hear does
  not disturb it;
- power: a powered-off node neither sends nor hears; frames in flight to it
  when it goes off are lost, and a node going off mid-frame aborts its frame;
- a link's `loss` probability drops frames at random (seeded).
Per-frame work is proportional to the number of nodes that hear the sender.
"""

import heapq
import random

from smitp import topology as _topology

# On-air overhead of one PHY frame in bits, before the payload. Project choice
# (the M&M PHY framing is not public): a 32-bit preamble (the ST75MM default
# PSK preamble length), a 16-bit unique word and an 8-bit length header. The
# payload is counted as given: the MAC frame including its CRC-32.
PHY_OVERHEAD_BITS = 32 + 16 + 8

# Reasons a reception is lost (keys of stats["lost"]).
LOST_COLLISION = "collision"
LOST_HALF_DUPLEX = "half_duplex"
LOST_POWER = "power"
LOST_LINK = "link"
_REASONS = (LOST_COLLISION, LOST_HALF_DUPLEX, LOST_POWER, LOST_LINK)


class MediumError(Exception):
    """A node was asked to do something the medium cannot do (names the node)."""


class _Link:
    __slots__ = ("snr_db", "signal_dbuv", "impedance_ohm", "loss")

    def __init__(self, snr_db, attenuation_db, impedance_ohm, loss):
        self.snr_db = snr_db
        self.signal_dbuv = _topology.TX_LEVEL_DBUV - attenuation_db
        self.impedance_ohm = impedance_ohm
        self.loss = loss


class _Frame:
    __slots__ = ("src", "payload", "start", "end", "rxs", "aborted")

    def __init__(self, src, payload, start, end):
        self.src = src
        self.payload = payload
        self.start = start
        self.end = end
        self.rxs = []
        self.aborted = False


class _Rx:
    # One frame arriving at one receiver; `lost` is None or a LOST_* reason.
    __slots__ = ("frame", "dst", "link", "lost")

    def __init__(self, frame, dst, link):
        self.frame = frame
        self.dst = dst
        self.link = link
        self.lost = None


class _NodeStats:
    __slots__ = ("sent", "bytes_sent", "airtime_s", "received", "collisions", "lost")

    def __init__(self):
        self.sent = 0
        self.bytes_sent = 0
        self.airtime_s = 0.0
        self.received = 0
        self.collisions = 0
        self.lost = 0

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class Medium:
    """The shared line. See the module docstring for the reception rules.

    bitrate        bits per second on air (4800 for SMITP B-PSK)
    overhead_bits  PHY bits added to every frame (PHY_OVERHEAD_BITS)
    collisions     False: overlapping frames are all received (ideal medium)
    seed           seeds link loss and quality noise
    topology       a topology dict or JSON path (see smitp.topology), optional
    noise_db       standard deviation of seeded noise added to the reported
                   snr_db and signal_dbuv (0: the link's values exactly)
    """

    def __init__(self, bitrate=4800, overhead_bits=PHY_OVERHEAD_BITS, collisions=True, seed=0,
                 topology=None, noise_db=0.0):
        if bitrate <= 0:
            raise ValueError("bitrate must be positive, not %r" % (bitrate,))
        if overhead_bits < 0:
            raise ValueError("overhead_bits must not be negative, not %r" % (overhead_bits,))
        self.bitrate = bitrate
        self.overhead_bits = overhead_bits
        self.collisions = collisions
        self.noise_db = noise_db
        self._rng = random.Random(seed)
        self._adj = {}  # src -> {dst: _Link}: who hears src
        self._on = {}  # node -> powered
        self._tx = {}  # node -> its latest _Frame (transmitting while end > now)
        self._active = {}  # node -> [_Rx] not yet delivered nor dropped
        self._events = []  # heap of (end, seq, _Frame)
        self._seq = 0
        self._clock = float("-inf")
        self.reset_stats()
        if topology is not None:
            topo = _topology.load(topology)
            for n in topo["nodes"]:
                self.add_node(n["name"])
            for link in topo["links"]:
                self.add_link(link["a"], link["b"], snr_db=link["snr_db"],
                              attenuation_db=link["attenuation_db"],
                              impedance_ohm=link["impedance_ohm"], loss=link["loss"],
                              directed=link["directed"])

    # --- building ------------------------------------------------------------

    def add_node(self, name):
        if name in self._adj:
            raise MediumError("node %r already exists" % (name,))
        self._adj[name] = {}
        self._on[name] = True
        self._tx[name] = None
        self._active[name] = []
        self._node_stats[name] = _NodeStats()

    def add_link(self, a, b, snr_db=None, attenuation_db=None,
                 impedance_ohm=_topology.DEFAULT_IMPEDANCE_OHM, loss=0.0, directed=False):
        """b hears a (and a hears b unless `directed`), with this quality."""
        for n in (a, b):
            self._check(n)
        if a == b:
            raise MediumError("node %r cannot link to itself" % (a,))
        snr_db, attenuation_db = _topology.link_quality(snr_db, attenuation_db)
        link = _Link(snr_db, attenuation_db, impedance_ohm, loss)
        self._adj[a][b] = link
        if not directed:
            self._adj[b][a] = link

    def _check(self, node):
        if node not in self._adj:
            raise MediumError("unknown node %r" % (node,))

    @property
    def nodes(self):
        return list(self._adj)

    def hears(self, dst, src):
        """True if frames from `src` reach `dst` (ignoring power and traffic)."""
        self._check(src)
        return dst in self._adj[src]

    def neighbours(self, src):
        """The nodes that hear `src`."""
        self._check(src)
        return list(self._adj[src])

    # --- timing --------------------------------------------------------------

    def airtime_s(self, n_bytes):
        """Seconds on air for a PHY frame carrying `n_bytes` of payload."""
        return (self.overhead_bits + 8 * n_bytes) / self.bitrate

    def _advance(self, now):
        if now < self._clock:
            raise MediumError("time went backwards: %r is before %r" % (now, self._clock))
        self._clock = now

    def next_time(self):
        """End time of the next frame still to be reported, or None.

        (A frame whose sender went off mid-frame may end with nothing to report.)
        """
        return self._events[0][0] if self._events else None

    # --- traffic -------------------------------------------------------------

    def is_transmitting(self, node, now):
        self._check(node)
        f = self._tx[node]
        return f is not None and not f.aborted and f.start <= now < f.end

    def carrier_sense(self, node, now):
        """True if a frame `node` can hear is on the air at `now`."""
        self._check(node)
        for rx in self._active[node]:
            if rx.frame.start <= now < rx.frame.end:
                return True
        return False

    def _lose(self, rx, reason):
        if rx.lost is None:
            rx.lost = reason
            self._lost[reason] += 1
            ns = self._node_stats[rx.dst]
            ns.lost += 1
            if reason == LOST_COLLISION:
                ns.collisions += 1

    def transmit(self, src, payload, now):
        """`src` starts sending `payload` at `now`; returns the end of its airtime."""
        self._check(src)
        if not self._on[src]:
            raise MediumError("node %r is powered off and cannot transmit" % (src,))
        if self.is_transmitting(src, now):
            raise MediumError("node %r is already transmitting until %r" % (src, self._tx[src].end))
        self._advance(now)
        payload = bytes(payload)
        airtime = self.airtime_s(len(payload))
        frame = _Frame(src, payload, now, now + airtime)
        self._tx[src] = frame
        # Half duplex: whatever src was receiving is lost.
        for rx in self._active[src]:
            if rx.frame.end > now:
                self._lose(rx, LOST_HALF_DUPLEX)
        on = self._on
        active = self._active
        tx = self._tx
        for dst, link in self._adj[src].items():
            if not on[dst]:
                continue
            rx = _Rx(frame, dst, link)
            here = active[dst]
            busy = tx[dst]
            if busy is not None and not busy.aborted and busy.end > now:
                self._lose(rx, LOST_HALF_DUPLEX)
            if self.collisions:
                for other in here:
                    if other.frame.end > now:
                        self._lose(other, LOST_COLLISION)
                        self._lose(rx, LOST_COLLISION)
            here.append(rx)
            frame.rxs.append(rx)
        self._seq += 1
        heapq.heappush(self._events, (frame.end, self._seq, frame))
        st = self._node_stats[src]
        st.sent += 1
        st.bytes_sent += len(payload)
        st.airtime_s += airtime
        self._frames += 1
        self._bytes += len(payload)
        self._airtime += airtime
        return frame.end

    def poll(self, now):
        """Events of every frame whose airtime ended at or before `now`, in time order.

        ("rx", dst, src, payload, quality) for each node that received it, then
        ("tx_done", src) for its sender. quality = {"snr_db", "signal_dbuv",
        "impedance_ohm"}.
        """
        if now > self._clock:
            self._clock = now
        out = []
        events = self._events
        while events and events[0][0] <= now:
            frame = heapq.heappop(events)[2]
            for rx in frame.rxs:
                here = self._active[rx.dst]
                if rx in here:
                    here.remove(rx)
                if rx.lost is None and not self._on[rx.dst]:
                    self._lose(rx, LOST_POWER)
                if rx.lost is None and rx.link.loss and self._rng.random() < rx.link.loss:
                    self._lose(rx, LOST_LINK)
                if rx.lost is None:
                    self._deliveries += 1
                    self._node_stats[rx.dst].received += 1
                    out.append(("rx", rx.dst, frame.src, frame.payload, self._quality(rx.link)))
            if not frame.aborted and self._on[frame.src]:
                out.append(("tx_done", frame.src))
        return out

    def _quality(self, link):
        if not self.noise_db:
            return {"snr_db": link.snr_db, "signal_dbuv": link.signal_dbuv,
                    "impedance_ohm": link.impedance_ohm}
        g = self._rng.gauss
        return {"snr_db": round(link.snr_db + g(0.0, self.noise_db), 1),
                "signal_dbuv": round(link.signal_dbuv + g(0.0, self.noise_db), 1),
                "impedance_ohm": link.impedance_ohm}

    # --- power ---------------------------------------------------------------

    def powered(self, node):
        self._check(node)
        return self._on[node]

    def set_power(self, node, on, now=None):
        """Switch `node` on or off at `now` (default: the latest time seen).

        Going off loses the frames in flight to it and aborts its own frame
        (its receivers lose it, and no tx_done is reported).
        """
        self._check(node)
        if now is None:
            now = self._clock
        else:
            self._advance(now)
        on = bool(on)
        if on == self._on[node]:
            return
        self._on[node] = on
        if on:
            return
        here = self._active[node]
        for rx in here:
            if rx.frame.end > now:
                self._lose(rx, LOST_POWER)
        here[:] = [rx for rx in here if rx.lost is None]
        frame = self._tx[node]
        if frame is not None and frame.end > now:
            frame.aborted = True
            for rx in frame.rxs:
                self._lose(rx, LOST_POWER)
                others = self._active[rx.dst]
                if rx in others:
                    others.remove(rx)

    # --- statistics ----------------------------------------------------------

    def reset_stats(self):
        self._frames = 0
        self._bytes = 0
        self._airtime = 0.0
        self._deliveries = 0
        self._lost = dict.fromkeys(_REASONS, 0)
        old = getattr(self, "_node_stats", {})
        self._node_stats = {name: _NodeStats() for name in old}

    @property
    def stats(self):
        """A snapshot: totals, losses by reason (per receiver) and per-node counts."""
        return {
            "frames": self._frames,
            "bytes": self._bytes,
            "airtime_s": self._airtime,
            "deliveries": self._deliveries,
            "collisions": self._lost[LOST_COLLISION],
            "lost": dict(self._lost),
            "nodes": {name: s.as_dict() for name, s in self._node_stats.items()},
        }
