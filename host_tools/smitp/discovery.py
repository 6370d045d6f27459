"""Meter discovery, registration and routing by the concentrator.

The procedure of the TS's informative annexes (as the public sources describe
it, smitp-protocol reference 9.2 / 9.3):
1. un-silence everyone: TCT_SET 0xFF to broadcast, twice;
2. ADDRESS.REQ to broadcast (RC slots) until a round brings nothing new; each
   meter found is silenced with a unicast TCT_SET (TCT 1 < TCR 0x55) so that it
   stops answering;
3. level by level: ask each meter of the last level for a REQADDR (it
   broadcasts its own ADDRESS.REQ and reports up to 4 answers), silence the new
   meters, repeat with the same meter until nothing new; their route is the
   route to that meter plus that meter;
4. register every meter (REGISTER.REQ assigns its SCA).
The routing table maps each ACA to its route (repeater ACAs, nearest the
concentrator first). When a route fails, `repair` finds the dead repeater
(pinging the route's repeaters in order), then a new route through another
meter (a ping through each candidate, the likeliest first), and updates the
table.

Works through any concentrator port (`send`, `recv`, `now`).
"""

from meter import attrs as A
from meter.link import mac
from meter import timers as T
from meter.errors import DecodeError
from meter.link.llc import DSAP_NM
from meter.link.netmgmt import RECORD_LEN, RELAY_WINDOW_MS
from smitp.concentrator import BITRATE, PHY_OVERHEAD_BITS, RETRIES, NoAnswer, aca_text, response_timeout

# Procedure constants. Public (Microchip DCU example) unless marked.
DISCOVERY_TCR = 0x55  # ADDRESS.REQ threshold: silenced meters (TCT 1) stay quiet
SILENT_TCT = 1
OPEN_TCT = 0xFF
UNSILENCE_TIMES = 2
UNSILENCE_GAP_S = 5.0
ANY_PHASE = 2
DIRECT_DISCIPLINE = 0xF  # project choice: RC4, 64 slots, for the concentrator's own ADDRESS.REQ
CROWDED = 16  # project choice: a direct round with this many answers splits the address group
RELAY_DISCIPLINE = 0x4  # RA3: REQADDR.RESP takes up to 50 bytes
MAX_LEVEL = mac.MAX_REPEATERS + 1  # a meter at level L has L - 1 repeaters
PROBES = 1000  # project choice: at most this many candidate repeaters pinged per repair
SUBSECTION_NODES = 250  # project choice: SCA node numbers 1..250 per sub-section

_RECORD = RECORD_LEN  # one ADDRESS.RESP


def airtime_s(n_bytes):
    return (PHY_OVERHEAD_BITS + 8 * n_bytes) / BITRATE


def sca_for(section, index):
    """Project SCA assignment: section (3 bytes LE) | sub-section | node | 03, on-air order."""
    sub, node = divmod(index, SUBSECTION_NODES)
    return section.to_bytes(3, "little") + bytes((sub + 1, node + 1, 0x03))


class Meter:
    """What the concentrator knows of one meter."""

    __slots__ = ("aca", "level", "route", "quality", "found_by", "silenced", "sca", "registered", "order")

    def __init__(self, aca, level, route, quality, found_by, order):
        self.aca = aca
        self.level = level
        self.route = route  # tuple of repeater ACAs, nearest the concentrator first
        self.quality = quality  # SIG, SNR, TX bytes of its discovery answer
        self.found_by = found_by  # ACA of the relay that found it (None: the concentrator)
        self.silenced = False
        self.sca = None
        self.registered = False
        self.order = order


class Discovery:
    def __init__(self, port, section=1, retries=RETRIES, progress=None, expected=None,
                 direct_discipline=DIRECT_DISCIPLINE, unsilence_gap_s=UNSILENCE_GAP_S):
        """progress(done, total, what) is called as meters are found; expected: total to show;
        direct_discipline: RC discipline of the concentrator's own ADDRESS.REQ."""
        self.port = port
        self.direct_discipline = direct_discipline
        self.unsilence_gap_s = unsilence_gap_s
        self.section = section
        self.retries = retries
        self.progress = progress
        self.expected = expected
        self.meters = {}  # ACA -> Meter, in discovery order
        self.heard = {}  # ACA -> set of relay ACAs (None: the concentrator) whose REQADDR reported it
        self.dead = set()  # ACAs found powered off or unreachable as repeaters
        self.fixers = {}  # dead ACA -> repeaters that gave new routes to meters behind it
        self._out = bytearray(mac.MAX_FRAME)
        self._f = mac.Frame()
        self.stats = {"rounds": 0, "reqaddr": 0, "silenced": 0, "registered": 0, "exchanges": 0,
                      "retries": 0, "timeouts": 0, "rerouted": 0, "probes": 0}

    # ---- the routing table
    @property
    def routes(self):
        """{ACA: route}: the routing table."""
        return {aca: m.route for aca, m in self.meters.items()}

    def by_level(self):
        return sorted(self.meters.values(), key=lambda m: (m.level, m.order))

    # ---- link: frames out, answers in
    def _send(self, addr, route, disc, poll, data):
        rp = b"".join(mac.aca_to_air(r) for r in route)
        n = mac.encode(self._out, addr, rp, disc, False, 0, poll, DSAP_NM, 0, bytes(data))
        self.port.send(self._out[:n])
        return n

    def _frames_until(self, end):
        """Decoded uplink NM frames heard before `end` (network time): (frame, bytes)."""
        port, f = self.port, self._f
        while True:
            left = end - port.now()
            if left <= 0:
                return
            payload = port.recv(left)
            if payload is None:
                return
            try:
                mac.decode(f, payload, len(payload))
            except DecodeError:
                continue
            if f.uplink and f.position == 1 and f.dsap == DSAP_NM:
                yield f, payload

    def exchange(self, aca, data, route=(), poll=False, disc=2, extra_wait_s=0.0, retries=None):
        """Unicast NM request; return the answer's LLC data, or raise NoAnswer."""
        air = mac.aca_to_air(aca)
        max_resp = mac.DISCIPLINES[disc][1] or 20
        self.stats["exchanges"] += 1
        tries = 1 + (self.retries if retries is None else retries)
        for attempt in range(tries):
            if attempt:
                self.stats["retries"] += 1
            n = self._send(air, route, disc, poll, data)
            end = self.port.now() + response_timeout(len(route), n, max_resp) + extra_wait_s
            for f, payload in self._frames_until(end):
                if f.repeaters == len(route) and mac.same_addr(payload, f.addr, air):
                    return bytes(payload[f.data:f.data + f.data_len])
        self.stats["timeouts"] += 1
        raise NoAnswer("no NM answer from %s via [%s]" % (aca_text(aca), ", ".join(aca_text(r) for r in route)))

    # ---- services
    def unsilence(self, route=()):
        """TCT_SET 0xFF to broadcast (through `route`), UNSILENCE_TIMES times."""
        for i in range(UNSILENCE_TIMES):
            if i:
                self._idle(self.unsilence_gap_s)
            self._send(mac.BROADCAST, route, mac.DISC_S, False, (A.TCT_SET_REQ, OPEN_TCT))

    def _idle(self, seconds):
        end = self.port.now() + seconds
        for _ in self._frames_until(end):
            pass

    def set_tct(self, aca, tct, route=()):
        """TCT_SET with the poll flag; True if the meter confirmed (NACK.RESP code 0)."""
        ans = self.exchange(aca, (A.TCT_SET_REQ, tct), route, poll=True)
        return len(ans) == 5 and ans[0] == A.NACK_RESP and ans[1] == 0

    def address_round(self, add=0, shift=0, tcr=DISCOVERY_TCR, disc=None, phase=ANY_PHASE):
        """ADDRESS.REQ to broadcast; [(ACA, quality bytes)] answered in its RC slots."""
        self.stats["rounds"] += 1
        disc = self.direct_discipline if disc is None else disc
        slots = mac.DISCIPLINES[disc][2]
        n = self._send(mac.BROADCAST, (), disc, False, (A.ADDRESS_REQ, phase, tcr, add, shift))
        answer = airtime_s(mac.HEADER_LEN + 1 + _RECORD + mac.CRC_LEN)
        end = (self.port.now() + airtime_s(n) + T.ELABORATION_MS / 1000.0
               + slots * T.NM_SLOT_MS / 1000.0 + answer)
        found = []
        for f, payload in self._frames_until(end):
            if f.repeaters == 0 and f.data_len == 1 + _RECORD and payload[f.data] == A.ADDRESS_RESP:
                rec = bytes(payload[f.data + 1:f.data + 1 + _RECORD])
                found.append((rec[:6], rec[6:9]))
        return found

    def reqaddr(self, relay, route, add=0, shift=0, tcr=DISCOVERY_TCR, retries=1):
        """REQADDR.REQ to `relay`; [(ACA, quality bytes)] it heard (at most 4)."""
        self.stats["reqaddr"] += 1
        window = RELAY_WINDOW_MS / 1000.0
        ans = self.exchange(relay, (A.REQADDR_REQ, ANY_PHASE, tcr, add, shift), route,
                            disc=RELAY_DISCIPLINE, extra_wait_s=window, retries=retries)
        if len(ans) < 2 or ans[0] != A.REQADDR_RESP or len(ans) != 2 + ans[1] * _RECORD:
            raise NoAnswer("bad REQADDR.RESP from %s: %s" % (aca_text(relay), ans.hex()))
        return [(ans[2 + i * _RECORD:8 + i * _RECORD], ans[8 + i * _RECORD:11 + i * _RECORD])
                for i in range(ans[1])]

    def register(self, aca, sca, route=()):
        ans = self.exchange(aca, bytes((A.REGISTER_REQ,)) + sca, route)
        return len(ans) == 8 and ans[0] == A.REGISTER_RESP and ans[1] == 0 and ans[2:] == sca

    def deregister(self, aca, route=()):
        ans = self.exchange(aca, (A.DEREGISTER_REQ,), route)
        return len(ans) == 8 and ans[0] == A.REGISTER_RESP and ans[1] == 0

    def status(self, aca, route=()):
        """STATUS.RESP fields as a dict."""
        ans = self.exchange(aca, (A.STATUS_REQ,), route)
        if len(ans) != 16 or ans[0] != A.STATUS_RESP:
            raise NoAnswer("bad STATUS.RESP from %s: %s" % (aca_text(aca), ans.hex()))
        return {"flags": ans[1], "tct": ans[2], "sca": ans[3:9], "quality": ans[9:12],
                "rx": int.from_bytes(ans[12:14], "big"), "bad": int.from_bytes(ans[14:16], "big")}

    def ping(self, aca, route=(), retries=None):
        """True if the meter answers a PING.REQ through `route`."""
        self.stats["probes"] += 1
        try:
            ans = self.exchange(aca, (A.PING_REQ,), route, retries=retries)
        except NoAnswer:
            return False
        return ans[:1] == bytes((A.PING_RESP,))

    # ---- the procedure
    def _found(self, aca, quality, level, route, by):
        if aca in self.meters:
            return None
        m = Meter(aca, level, route, quality, by, len(self.meters))
        self.meters[aca] = m
        if self.progress:
            self.progress(len(self.meters), self.expected or len(self.meters), aca_text(aca))
        return m

    def _silence(self, m):
        try:
            m.silenced = self.set_tct(m.aca, SILENT_TCT, m.route)
        except NoAnswer:
            m.silenced = False
        if m.silenced:
            self.stats["silenced"] += 1

    def _take(self, records, level, route, by):
        """Record what one round heard; silence the new meters; return how many were new."""
        new = 0
        for aca, quality in records:
            self.heard.setdefault(aca, set()).add(by)
            m = self._found(aca, quality, level, route, by)
            if m is not None:
                new += 1
                self._silence(m)
            elif not self.meters[aca].silenced:
                self._silence(self.meters[aca])  # its silencing failed before: again
        return new

    def discover_direct(self):
        """Steps 1-2: the meters the concentrator hears; returns them."""
        before = len(self.meters)
        groups = [(0, 0)]
        while groups:
            add, shift = groups.pop()
            while True:
                records = self.address_round(add, shift)
                new = self._take(records, 1, (), None)
                crowded = min(CROWDED, mac.DISCIPLINES[self.direct_discipline][2] // 4)
                if len(records) >= crowded and shift < 8:
                    # Crowded: split the group on one more ACA bit to spread the answers.
                    groups += [(add + (1 << shift), shift + 1), (add, shift + 1)]
                    break
                if not new:
                    break
        return list(self.meters.values())[before:]

    def discover_via(self, relay):
        """Step 3 for one relay: REQADDR until nothing new; returns the new meters."""
        if relay.level >= MAX_LEVEL:
            return []
        before = len(self.meters)
        route = relay.route + (relay.aca,)
        while True:
            try:
                records = self.reqaddr(relay.aca, relay.route)
            except NoAnswer:
                break
            if not self._take(records, relay.level + 1, route, relay.aca):
                break
        return list(self.meters.values())[before:]

    def discover(self):
        """The whole procedure; returns the number of meters known."""
        self.unsilence()
        frontier = self.discover_direct()
        while frontier:
            nxt = []
            for relay in frontier:
                nxt += self.discover_via(relay)
            frontier = nxt
        return len(self.meters)

    def register_all(self):
        """Step 4: REGISTER.REQ to every meter not yet registered; returns how many are."""
        for m in self.by_level():
            if m.registered:
                continue
            sca = sca_for(self.section, m.order)
            try:
                m.registered = self.register(m.aca, sca, m.route)
            except NoAnswer:
                m.registered = False
            if m.registered:
                m.sca = sca
                self.stats["registered"] += 1
        return sum(1 for m in self.meters.values() if m.registered)

    # ---- route repair
    def route_ok(self, m):
        return not any(r in self.dead for r in m.route)

    def locate_failure(self, m):
        """Ping the repeaters of m's route in order; mark the first silent one dead."""
        for i, r in enumerate(m.route):
            if r in self.dead:
                return r
            if not self.ping(r, m.route[:i], retries=1):
                self.dead.add(r)
                return r
        return None

    def _candidates(self, m, dead=None):
        """Meters that may repeat for m, the likeliest first: those that already
        repaired routes behind the same dead repeater (they stand near it), those
        that reported m in discovery, those one level above m's old level (then
        further away), those sharing the most of m's route."""
        heard = self.heard.get(m.aca, set())
        fixers = self.fixers.get(dead, ())
        out = []
        for c in self.meters.values():
            if c.aca == m.aca or c.aca in self.dead or not self.route_ok(c) or c.level >= MAX_LEVEL:
                continue
            if m.aca in c.route or c.aca in m.route[-1:]:
                continue  # behind m, or the hop that just failed
            shared = 0
            for a, b in zip(c.route + (c.aca,), m.route):
                if a != b:
                    break
                shared += 1
            out.append((c.aca not in fixers, c.aca not in heard, abs(c.level + 1 - m.level), -shared, c.order, c))
        out.sort(key=lambda x: x[:5])
        return [x[5] for x in out]

    def repair(self, m):
        """Find a new route for m (its route failed); update the table; True if found."""
        if self.route_ok(m):
            self.locate_failure(m)
        dead = next((r for r in m.route if r in self.dead), None)
        cands = self._candidates(m, dead)
        new = None
        if m.route and self.ping(m.aca, (), retries=0):  # it may hear us directly now
            new = ()
        for c in cands[:PROBES] if new is None else ():
            route = c.route + (c.aca,)
            if self.ping(m.aca, route, retries=0):
                new = route
                break
        if new is None:
            return False
        if new and dead is not None:
            self.fixers.setdefault(dead, []).append(new[-1])
        self._reroute(m, new)
        return True

    def _reroute(self, m, new):
        old = m.route
        m.route = new
        m.level = len(new) + 1
        self.stats["rerouted"] += 1
        # Meters behind m keep their path after it (verified when used).
        for o in self.meters.values():
            if m.aca in o.route:
                i = o.route.index(m.aca)
                route = new + o.route[i:]
                if len(route) <= mac.MAX_REPEATERS:
                    o.route = route
                    o.level = len(route) + 1
        return old
