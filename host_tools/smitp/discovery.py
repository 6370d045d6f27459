"""Meter discovery, registration and routing by the concentrator.

The procedure of the TS's informative annexes (as the public sources describe
it, smitp-protocol reference 9.2 / 9.3):
1. un-silence everyone: TCT_SET 0xFF to broadcast, twice;
2. ADDRESS.REQ to broadcast (RC slots) until a round brings nothing new; each
   meter found is silenced with a unicast TCT_SET (TCT 1 < TCR 0x55) so that it
   stops answering. Rounds go to address groups (the ADDRESS.REQ filter), each
   in the RC discipline that suits the answers expected from its group;
3. level by level: ask each meter of the last level for a REQADDR (it
   broadcasts its own ADDRESS.REQ and reports up to 4 answers), silence the new
   meters, repeat with the same meter until nothing new; their route is the
   route to that meter plus that meter. The relays of a level are asked in
   batches whose 16 s windows overlap (`timetable`), a batch holding few relays
   that the reports showed near each other;
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
from meter.link.netmgmt import RECORD_LEN, RELAY_RECORDS, RELAY_WINDOW_MS
from smitp.scabook import ScaBook, ScaCollision
from smitp.concentrator import (BITRATE, ELABORATION_S, MARGIN_S, PHY_OVERHEAD_BITS, RETRIES, NoAnswer, aca_text,
                                response_timeout)

# Procedure constants. Public (Microchip DCU example) unless marked.
DISCOVERY_TCR = 0x55  # ADDRESS.REQ threshold: silenced meters (TCT 1) stay quiet
SILENT_TCT = 1
OPEN_TCT = 0xFF
UNSILENCE_TIMES = 2
UNSILENCE_GAP_S = 5.0
ANY_PHASE = 2
DIRECT_DISCIPLINE = 0xF  # project choice: RC4, 64 slots: the concentrator's first and last ADDRESS.REQ
RC_DISCIPLINES = (0xC, 0xD, 0xE, 0xF)  # RC1-RC4: 8, 16, 32, 64 slots
SPLIT_ANSWERS = 64  # project choice: a group expected to hold more answers than RC4 has slots is split
PROBE_SHIFT = 2  # project choice: the first round goes to a quarter of the addresses
RELAY_DISCIPLINE = 0x4  # RA3: REQADDR.RESP takes up to 50 bytes
RELAY_TRIES = 2  # project choice: a relay whose REQADDR.RESP did not come is asked once more
GUARD_S = 2 * ELABORATION_S  # project choice: line kept free between two frames of a batch's timetable
NEAR_LINE_S = RELAY_WINDOW_MS / 1000.0 / 4  # project choice: line time of near relays in one batch, at most
MAX_LEVEL = mac.MAX_REPEATERS + 1  # a meter at level L has L - 1 repeaters
PROBES = 1000  # project choice: at most this many candidate repeaters pinged per repair
SUBSECTION_NODES = 250  # project choice: SCA node numbers 1..250 per sub-section

_RECORD = RECORD_LEN  # one ADDRESS.RESP
_REQ = 5  # ADDRESS.REQ and REQADDR.REQ: ATTR and 4 bytes
_RESP_MAX = 2 + RELAY_RECORDS * _RECORD  # the longest REQADDR.RESP


def airtime_s(n_bytes):
    return (PHY_OVERHEAD_BITS + 8 * n_bytes) / BITRATE


def journey_s(repeaters, data_len):
    """Time a frame with `data_len` bytes of LLC data takes over a route of
    `repeaters` repeaters: each hop sends it whole, each repeater waits TEL."""
    n = mac.HEADER_LEN + mac.ADDR_LEN * repeaters + data_len + mac.CRC_LEN
    return (repeaters + 1) * airtime_s(n) + repeaters * ELABORATION_S


# A relay's own ADDRESS.REQ, sent TEL after the REQADDR.REQ reached it.
_BROADCAST_S = ELABORATION_S + journey_s(0, _REQ)


def answering(heard, slots):
    """How many meters answered a round of `slots` slots in which `heard`
    answers came through, the others colliding in their slots: the n, at most
    `slots`, with n (1 - 1/slots)^(n - 1) = heard (n answers in `slots` random
    slots leave that many alone in theirs)."""
    keep = 1.0 - 1.0 / slots
    lo, hi = float(heard), float(slots)
    for _ in range(32):
        mid = (lo + hi) / 2
        if mid * keep ** (mid - 1) < heard:
            lo = mid
        else:
            hi = mid
    return max(heard, int(round(lo)))


def rc_for(answers):
    """The RC discipline that, for this many answers in its random slots,
    hears the most of them alone in their slot per second of its round."""
    def rate(disc):
        slots = mac.DISCIPLINES[disc][2]
        return answers * (1.0 - 1.0 / slots) ** (answers - 1) / (slots * T.NM_SLOT_MS + T.ELABORATION_MS)
    return max(RC_DISCIPLINES, key=rate)


def line_s(repeaters):
    """Time one REQADDR keeps the line busy: request, the relay's ADDRESS.REQ, answer."""
    return journey_s(repeaters, _REQ) + _BROADCAST_S + journey_s(repeaters, _RESP_MAX)


def timetable(repeaters):
    """When to send REQADDR.REQs, one after the other, to relays over routes
    of these lengths so that their windows overlap: seconds from the first
    request, for as many as fit. Each request leaves once the previous relay
    has sent its own ADDRESS.REQ, and reaches its relay once the previous
    relay's REQADDR.RESP (due a window after that relay got its request) has
    come home; the last relay has its request, and has sent its ADDRESS.REQ,
    before the first answer is due. So requests, ADDRESS.REQs and answers
    never overlap on the line; only the neighbours' ADDRESS.RESPs do."""
    window = RELAY_WINDOW_MS / 1000.0
    out = []
    first = prev = None  # when the first relay got its request; (the previous one, its answer's journey)
    for reps in repeaters:
        there = journey_s(reps, _REQ)
        go = 0.0
        if prev is not None:
            go = max(prev[0] + _BROADCAST_S, prev[0] + prev[1] - there) + GUARD_S
        if first is not None and go + there + _BROADCAST_S + GUARD_S > first + window:
            break
        out.append(go)
        first = go + there if first is None else first
        prev = (go + there, journey_s(reps, _RESP_MAX))
    return out


def sca_for(section, index):
    """Project SCA assignment: section (3 bytes LE) | sub-section | node | 03, on-air order."""
    sub, node = divmod(index, SUBSECTION_NODES)
    return section.to_bytes(3, "little") + bytes((sub + 1, node + 1, 0x03))


def broadcast_entries(port, route, book=None):
    """The repeater entries of a broadcast along `route` (repeater ACAs, nearest first): 2-byte
    SCA entries, the public parser's rule for an address in SCA form. Each repeater's SCA comes
    from `book` (smitp.scabook), else is learnt by STATUS, else given by REGISTER (a project
    section); both are plain network management."""
    d = None
    entries = b""
    for i, r in enumerate(route):
        sca = book.by_aca.get(bytes(r)) if book is not None else None
        if sca is None:
            d = d or Discovery(port)
            sca = bytes(d.status(r, route[:i])["sca"])
            if sca == bytes(6):
                sca = sca_for(0x5A5A5A, 200 + i)
                d.register(r, sca, route[:i])
        entries += sca[3:5]
    return entries


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
        self._near = {}  # ACA -> ACAs the line showed it hears (one reported the other)
        self.dead = set()  # ACAs found powered off or unreachable as repeaters
        self.fixers = {}  # dead ACA -> repeaters that gave new routes to meters behind it
        self._out = bytearray(mac.MAX_FRAME)
        self._f = mac.Frame()
        self.stats = {"rounds": 0, "reqaddr": 0, "silenced": 0, "registered": 0, "exchanges": 0,
                      "retries": 0, "timeouts": 0, "rerouted": 0, "probes": 0}
        self.phase_s = {}
        self.book = ScaBook()  # the SCAs registration gave: a Concentrator(book=...) addresses by them

    # ---- the routing table
    @property
    def routes(self):
        """{ACA: route}: the routing table."""
        return {aca: m.route for aca, m in self.meters.items()}

    def by_level(self):
        return sorted(self.meters.values(), key=lambda m: (m.level, m.order))

    # ---- link: frames out, answers in
    def _send(self, addr, route, disc, poll, data):
        if route and mac.entry_len(addr) != mac.ADDR_LEN:  # the broadcast's repeater entries are SCA entries
            raise ValueError("a broadcast goes through repeaters only by their SCAs")
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

    def reqaddr(self, relay, add=0, shift=0, tcr=DISCOVERY_TCR):
        """REQADDR.REQ to one relay (a Meter); [(ACA, quality bytes)] it heard (at most 4)."""
        for _ in range(RELAY_TRIES):
            records = self.reqaddr_batch([relay], add, shift, tcr)[relay]
            if records is not None:
                return records
        raise NoAnswer("no REQADDR.RESP from %s" % aca_text(relay.aca))

    def reqaddr_batch(self, queue, add=0, shift=0, tcr=DISCOVERY_TCR):
        """REQADDR.REQ to a batch of relays (Meters) taken off `queue`
        (`_next_batch`), their windows overlapping (`timetable`). Returns
        {relay: [(ACA, quality bytes)], or None if its REQADDR.RESP did not come}."""
        data = bytes((A.REQADDR_REQ, ANY_PHASE, tcr, add, shift))
        window = RELAY_WINDOW_MS / 1000.0
        batch = self._next_batch(queue)
        times = timetable([len(m.route) for m in batch])
        queue[:0] = batch[len(times):]  # in their new order, fewer may fit
        batch = batch[:len(times)]
        due = {}  # relay's on-air address -> [relay, repeaters, latest arrival, records]
        t0 = self.port.now()
        for m, at in zip(batch, times):
            self._listen(t0 + at, due)
            self.stats["reqaddr"] += 1
            reps = len(m.route)
            self._send(mac.aca_to_air(m.aca), m.route, RELAY_DISCIPLINE, False, data)
            last = self.port.now() + journey_s(reps, _REQ) + window + journey_s(reps, _RESP_MAX) + MARGIN_S
            due[mac.aca_to_air(m.aca)] = [m, reps, last, None]
        self._listen(max(d[2] for d in due.values()), due, until_all=True)
        return {d[0]: d[3] for d in due.values()}

    def _listen(self, end, due, until_all=False):
        """Take the REQADDR.RESPs of `due` heard before `end` (until_all: or once all came)."""
        for f, payload in self._frames_until(end):
            d = due.get(bytes(payload[f.addr:f.addr + mac.ADDR_LEN]))
            if d is None or f.repeaters != d[1] or d[3] is not None:
                continue
            ans = bytes(payload[f.data:f.data + f.data_len])
            if len(ans) < 2 or ans[0] != A.REQADDR_RESP or len(ans) != 2 + ans[1] * _RECORD:
                continue
            d[3] = [(ans[2 + i * _RECORD:8 + i * _RECORD], ans[8 + i * _RECORD:11 + i * _RECORD])
                    for i in range(ans[1])]
            if until_all and all(x[3] is not None for x in due.values()):
                return

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
        """Steps 1-2: the meters the concentrator hears; returns them. The first
        round goes to a quarter of the addresses (PROBE_SHIFT): what it heard
        tells how many answers to expect from each quarter. Then rounds to
        address groups, each in the RC discipline that suits the answers
        expected from it, until none is left; then a round to everyone, in the
        first round's discipline (a crowd left by a wrong guess would jam a
        short one), which must bring nothing new (else what it heard tells how
        many are left)."""
        before = len(self.meters)
        _new, groups, answered = self._direct_round(0, PROBE_SHIFT, self.direct_discipline)
        for add in range(1, 1 << PROBE_SHIFT):
            groups += self._plan(add, PROBE_SHIFT, answered)
        while True:
            while groups:
                groups += self._direct_round(*groups.pop())[1]
            new, groups, _answered = self._direct_round(0, 0, self.direct_discipline)
            if not new:
                return list(self.meters.values())[before:]

    def _direct_round(self, add, shift, disc):
        """ADDRESS.REQ to one address group in `disc`; returns (how many meters
        were new, the rounds the group still needs, how many answered: see
        `answering`). A group is done when nothing was new or nobody is left."""
        records = self.address_round(add, shift, disc=disc)
        new = self._take(records, 1, (), None)
        answered = answering(len(records), mac.DISCIPLINES[disc][2])
        left = answered - len(records)
        return new, (self._plan(add, shift, left) if new and left > 0 else []), answered

    def _plan(self, add, shift, expected):
        """Rounds for `expected` answers from an address group: (add, shift,
        discipline), one in the discipline `rc_for` them, or one per sub-group
        (on more ACA bits) if more than SPLIT_ANSWERS are expected."""
        if expected <= 0:
            return []
        split = 0
        while expected > SPLIT_ANSWERS << split and shift + split < 8:
            split += 1
        each = -(-expected // (1 << split))
        return [(add + (i << shift), shift + split, rc_for(each)) for i in range(1 << split)]

    # ---- neighbourhoods: what the line showed of who hears whom
    def near(self, a, b):
        """True if the reports put meters a and b within two hops: one
        reported the other, or a third one reported or was reported by both."""
        na = self._near.get(a, ())
        return a == b or b in na or not self._near.get(b, set()).isdisjoint(na)

    def _next_batch(self, queue):
        """The relays of the next batch, taken off `queue` in its order: as many
        as the timetable holds, the relays near each one (itself included)
        keeping the line busy NEAR_LINE_S at most (near relays hear each
        other's traffic, which would bury the answers in their windows).
        Sorted by route, so that near relays are asked one after the other and
        their traffic stays within a short stretch of each other's windows."""
        batch, rest, load = [], [], []  # load[i]: line time of the batch's relays near batch[i]
        for m in queue:
            cost = line_s(len(m.route))
            near = [i for i, x in enumerate(batch) if self.near(m.aca, x.aca)]
            mine = cost + sum(line_s(len(batch[i].route)) for i in near)
            fits = len(timetable([len(x.route) for x in batch] + [len(m.route)])) > len(batch)
            if fits and (not batch or mine <= NEAR_LINE_S and all(load[i] + cost <= NEAR_LINE_S for i in near)):
                for i in near:
                    load[i] += cost
                batch.append(m)
                load.append(mine)
            else:
                rest.append(m)
        queue[:] = rest
        return sorted(batch, key=lambda m: (m.route, m.aca))

    def discover_level(self, relays):
        """Step 3 for one level: REQADDR to each relay, in batches of overlapping
        windows, until it reports nothing new; returns the new meters."""
        before = len(self.meters)
        queue = [m for m in relays if m.level < MAX_LEVEL]
        misses = {}
        while queue:
            got = self.reqaddr_batch(queue)
            found = self._take_batch(got)
            for relay, records in got.items():
                if records is None:
                    misses[relay.aca] = misses.get(relay.aca, 0) + 1
                    if misses[relay.aca] < RELAY_TRIES:
                        queue.append(relay)  # its answer was lost: once more
                elif relay in found:
                    queue.append(relay)  # it found something: its neighbourhood may hold more
        return list(self.meters.values())[before:]

    def _take_batch(self, got):
        """Record what a batch of relays heard; a meter reported by several
        goes behind the one that heard it best (SNR). Silences the new meters;
        returns the relays that reported one."""
        best = {}  # new ACA -> (SNR, relay, quality)
        for relay, records in got.items():
            for aca, quality in records or ():
                self.heard.setdefault(aca, set()).add(relay.aca)
                self._near.setdefault(aca, set()).add(relay.aca)
                self._near.setdefault(relay.aca, set()).add(aca)
                if aca not in self.meters:
                    snr = -1 if quality[1] == 0xFF else quality[1]
                    if aca not in best or snr > best[aca][0]:
                        best[aca] = (snr, relay, quality)
        for aca, (_snr, relay, quality) in best.items():
            m = self._found(aca, quality, relay.level + 1, relay.route + (relay.aca,), relay.aca)
            self._silence(m)
        for relay, records in got.items():
            for aca, _q in records or ():
                if aca not in best and not self.meters[aca].silenced:
                    self._silence(self.meters[aca])  # its silencing failed before: again
        return {relay for relay, records in got.items() if any(aca in best for aca, _q in records or ())}

    def discover(self):
        """The whole procedure; returns the number of meters known. The time
        its steps took goes to self.phase_s ("direct": steps 1-2, "relays": 3)."""
        t0 = self.port.now()
        self.unsilence()
        frontier = self.discover_direct()
        t1 = self.port.now()
        while frontier:
            frontier = self.discover_level(frontier)
        self.phase_s.update(direct=t1 - t0, relays=self.port.now() - t1)
        return len(self.meters)

    def register_all(self, progress=None):
        """Step 4: REGISTER.REQ to every meter not yet registered; returns how many are.
        progress(done, total, "registering") after each meter."""
        order = self.by_level()
        for i, m in enumerate(order):
            if progress:
                progress(i, len(order), "registering")
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
                try:
                    self.book.learn(m.aca, sca)
                except ScaCollision:  # addressed by ACA then; the registration stands
                    self.stats["sca_collisions"] = self.stats.get("sca_collisions", 0) + 1
        if progress:
            progress(len(order), len(order), "registering")
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
