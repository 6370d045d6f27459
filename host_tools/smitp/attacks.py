"""Attacks the demo tries against each meter, and what the meter answered
(the list and the expected answers: docs/security.md, "Attacks the demo tries").

The attacker sits on the line next to the concentrator: it hears what the
concentrator hears, sends frames of its own, and through a Tap suppresses the
concentrator's frames or jams the answers the concentrator would hear. The
genuine side (the concentrator, or a key holder sealing a request it will then
lose to the attacker) uses the meter's keys; the attacker's frames never do.

Each attack is a small function (conc, target) -> Outcome. Verdicts:
  rejected    the meter refused as its rules say, and nothing changed
  accepted    the attack had its effect
  no answer   silence where the rules ask for an answer, or the meter is down
  faulted     the meter's guard caught an exception (diagnostics register)
  unexpected  another answer than the rules', without effect
  error       the attack could not be carried out (the reason follows)
"""

import random
import struct
import time
from collections.abc import Callable

from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.app import security as sec
from meter.app import tables as TB
from meter import timers as T
from meter.budget import TokenBucket
from meter.crypto import crc32
from meter.errors import SmitpError
from meter.app.lmon import LMON_MAX
from smitp.concentrator import BITRATE, ELABORATION_S, NoAnswer, response_timeout
from smitp.medium import PHY_OVERHEAD_BITS

REJECTED = "rejected"
ACCEPTED = "accepted"
NO_ANSWER = "no answer"
FAULTED = "faulted"
UNEXPECTED = "unexpected"
ERROR = "error"

READ_ECC = sec.ECC_CTR_READ  # reads may go in CTR
WRITE_ECC = sec.ECC_ECB_WRITE  # requests with effect only in ECB (docs/security.md, W1)
# Forged requests of the NACK-10 flood: a meter answering each would send more
# NACK-10 than the rate allows over the seconds the flood lasts (the burst, one
# per refill period, two for clocks out of step): 12 against at most 7 on a
# direct link, 9 behind a repeater.
FLOOD_REQUESTS = 12
HANDLING_S = 0.05  # an emulated board's own time to take a frame in and relay it, per hop
# Plain broadcast writes of the starvation attempt: more than the plain budget
# (docs/protocol.md, "Flash write budgets"), so that the plain write after
# them finds it spent.
BROADCAST_WRITES = T.PLAIN_WRITE_BURST + 3
LABEL = b"FEEDER 7 POS 3".ljust(16, b"\0")  # the intercepted label write: known plaintext
ATTACKER_KEY = bytes(range(0xA0, 0xB0))
OLD_KEY_REGISTER = 0x0300  # K1 was once a writable register; keys now change by procedure only
_NACKS = (A.NACK_A, sec.ATTR_NACK_A_AUTH, sec.ATTR_NACK_B_AUTH)
_READ_AUTH = sec.auth_attr(A.READ_REQ)


# ---- what the meter answered ----------------------------------------------------------------
def describe(lsdu):
    """One meter answer (an LSDU as on air, ATTR in clear) in words."""
    if not lsdu:
        return "no answer"
    if lsdu[0] in _NACKS:
        code = lsdu[1] if len(lsdu) > 1 else -1
        return "NACK %d, PAR1 %d (%s)" % (lsdu[0], code, A.NACK_NAMES.get(code, "?"))
    return "%s (ATTR %d)" % (_name(lsdu[0]), lsdu[0])


def _name(attr):
    if attr in A.NAMES:
        return A.NAMES[attr]
    try:
        return A.NAMES[sec.plain_attr(attr)] + " AUTH"
    except (KeyError, ValueError):
        return "?"


def is_nack(lsdu, codes=None):
    return bool(lsdu) and lsdu[0] in _NACKS and len(lsdu) > 1 and (codes is None or lsdu[1] in codes)


class Outcome:
    """The verdict of one attack, the answers it drew (step by step, equal
    answers to the same step counted once) and a note on what changed."""

    def __init__(self, verdict=REJECTED, note=""):
        self.verdict = verdict
        self.note = note
        self.steps = []  # [label, answer LSDU, count]

    def saw(self, label, answer):
        answer = bytes(answer or b"")
        for step in self.steps:
            if step[0] == label and describe(step[1]) == describe(answer):
                step[2] += 1
                return answer
        self.steps.append([label, answer, 1])
        return answer

    def worst(self, verdict):
        """Keep the worst verdict seen (an effect outranks a fault, a fault silence ...)."""
        order = (REJECTED, UNEXPECTED, NO_ANSWER, FAULTED, ACCEPTED, ERROR)
        if order.index(verdict) > order.index(self.verdict):
            self.verdict = verdict
        return self

    def text(self):
        parts = ["%s: %s%s" % (label, describe(ans), " x%d" % n if n > 1 else "") for label, ans, n in self.steps]
        return "; ".join(parts + ([self.note] if self.note else []))

    def answers(self):
        """The answers as data: [{step, attr, par1, answer, count}]."""
        out = []
        for label, ans, n in self.steps:
            nack = is_nack(ans)
            out.append({"step": label, "attr": ans[0] if ans else None, "par1": ans[1] if nack else None,
                        "answer": describe(ans), "count": n})
        return out


def expect(out, label, answer, codes, attr=None):
    """Record an answer that should be a NACK with a PAR1 in `codes` (and
    ATTR `attr` when given), and judge it."""
    out.saw(label, answer)
    if not answer:
        return out.worst(NO_ANSWER)
    if not is_nack(answer):
        return out.worst(ACCEPTED)
    if answer[1] not in codes or (attr is not None and answer[0] != attr):
        return out.worst(UNEXPECTED)
    return out


# ---- the meter under attack -----------------------------------------------------------------
class Target:
    """One meter: where it is, the concentrator's session with it, its keys
    (the genuine side's), how to cut its power (None: not possible), and
    whether every crash frame goes (`sweep`) or a representative few (a line
    in real time, crash_lsdus)."""

    def __init__(self, conc, aca, route=(), keys=None, power_cycle=None, sweep=True):
        self.conc = conc
        self.aca = bytes(aca)
        self.route = tuple(route)
        self.keys = sec.Keys(keys[0], keys[1]) if keys else None
        self.power_cycle = power_cycle
        self.sweep = sweep
        self.port = conc.port  # the line itself, under any tap
        self.rested()
        self.behind = False  # the meter may have taken a MON the concentrator does not know of

    @property
    def session(self):
        return self.conc.keyring[self.aca]

    def now(self):
        return self.port.now()

    def nack_token(self):
        """Wait until the meter will answer a NACK-10 rather than stay silent."""
        while not self._nacks.take(int(self.now() * 1000)):
            idle(self, T.AUTH_NACK_REFILL_MS / 4000.0)

    def counted(self, tap, took=0):
        """Square the picture with the answers the rate counts that the meter
        sent under `tap`, of which `took` were counted beforehand (nack_token)."""
        self._nacks.tokens = min(self._nacks.burst, self._nacks.tokens + took - tap.rate_limited())

    def rested(self):
        """The meter's NACK-10 rate as the attacker pictures it, for a meter at
        rest (or just powered up): its full burst; the refills then fill it up
        to one answer short of that, since the meter's clock and ours are not
        aligned."""
        self._nacks = TokenBucket(T.AUTH_NACK_BURST - 1, T.AUTH_NACK_REFILL_MS)
        self._nacks.tokens = T.AUTH_NACK_BURST


# ---- the line: frames, forging --------------------------------------------------------------
def frame(t, lsdu, ecc=0, broadcast=False, max_response=mac.DISCIPLINES[mac.DISC_RA7][1]):
    """The MAC frame that carries `lsdu` to the meter (or to all, along its route)."""
    out = bytearray(mac.MAX_FRAME)
    addr = mac.BROADCAST if broadcast else mac.aca_to_air(t.aca)
    route = broadcast_route(t) if broadcast and t.route else b"".join(mac.aca_to_air(r) for r in t.route)
    disc = mac.DISC_S if broadcast else mac.discipline_for(max_response)
    n = mac.encode(out, addr, route, disc, False, 0, False, 0, ecc, bytes(lsdu))
    return bytes(out[:n])


def broadcast_route(t):
    """A broadcast's repeater entries are 2-byte SCA entries (the public parser's rule for an
    address in SCA form): the route's repeaters by their SCAs, learnt by STATUS and given by
    REGISTER where they hold none; both are plain network management, open to anyone
    (docs/security.md)."""
    if getattr(t, "_bcast_route", None) is None:
        from smitp.discovery import broadcast_entries

        t._bcast_route = broadcast_entries(t.port, t.route)
    return t._bcast_route


def lsdu_of(payload):
    """(LSDU, ECC) a frame carries."""
    f = mac.Frame()
    mac.decode(f, payload, len(payload))
    return bytes(payload[f.data:f.data + f.data_len]), f.ecc


def reframe(payload, lsdu):
    """The same frame (address, route, discipline, ECC) carrying another LSDU."""
    f = mac.Frame()
    mac.decode(f, payload, len(payload))
    out = bytearray(mac.MAX_FRAME)
    route = payload[f.rp:f.rp + f.repeaters * f.rp_size]
    n = mac.encode(out, payload[f.addr:f.addr + mac.ADDR_LEN], route, f.discipline, f.uplink, f.position,
                   f.poll, f.dsap, f.ecc, lsdu)
    return bytes(out[:n])


def answer_in(t, payload):
    """The LSDU of `payload` if it is the meter's answer reaching us, else None."""
    f = mac.Frame()
    try:
        mac.decode(f, payload, len(payload))
    except SmitpError:
        return None
    mine = mac.same_addr(payload, f.addr, mac.aca_to_air(t.aca))
    if f.uplink and f.position == 1 and f.repeaters == len(t.route) and mine:
        return bytes(payload[f.data:f.data + f.data_len])
    return None


def flip(lsdu, index, mask=0x01):
    """The LSDU with bits `mask` of byte `index` flipped."""
    out = bytearray(lsdu)
    out[index] ^= mask
    return bytes(out)


def _crc_lin(v):
    # The linear part of CRC-32: crc(a ^ b) = crc(a) ^ lin(b) for inputs of one length.
    return crc32(bytes(v)) ^ crc32(bytes(len(v)))


def crc_correction(delta, free):
    """4 bytes that, XORed at offset `free` of a CRC-32 input together with
    `delta`, leave its CRC-32 unchanged, whatever the input. CRC-32 is affine
    over GF(2): solve lin(bits) = lin(delta) over the 32 bits at `free`."""
    n = len(delta)
    rows = []  # reduced basis: (image, bits of `free` that make it), leading bits distinct
    for i in range(32):
        e = bytearray(n)
        e[free + i // 8] = 1 << (i % 8)
        v, bits = _crc_lin(e), 1 << i
        for rv, rb in rows:
            if v ^ rv < v:
                v, bits = v ^ rv, bits ^ rb
        if v:
            rows.append((v, bits))
            rows.sort(reverse=True)
    t, bits = _crc_lin(delta), 0
    for rv, rb in rows:
        if t ^ rv < t:
            t, bits = t ^ rv, bits ^ rb
    if t:
        raise ValueError("no correction at offset %d" % free)
    return bits.to_bytes(4, "little")


def ctr_rewrite(lsdu, old_data, new_data):
    """An intercepted CTR request whose DATA was `old_data` (known plaintext)
    turned into one carrying `new_data`, same length, without the key: flip
    the ciphertext where they differ, and 4 DATE-TIME bytes so that
    CRC-32(ACA | DATA | DATE-TIME) and so the TMAC stay valid."""
    if len(old_data) != len(new_data):
        raise ValueError("the rewrite keeps the length")
    crc_len = 6 + len(lsdu) - 1 - sec.TMAC_LEN  # ACA, then the LSDU after ATTR up to the TMAC
    delta = bytearray(crc_len)
    for i, (a, b) in enumerate(zip(old_data, new_data)):
        delta[6 + i] = a ^ b
    free = 6 + len(old_data)  # the DATE-TIME, which the meter does not check
    delta[free:free + 4] = crc_correction(delta, free)
    out = bytearray(lsdu)
    for k in range(6, crc_len):
        out[k - 5] ^= delta[k]
    return bytes(out)


def mon_of(t, lsdu, ecc, first, count=8):
    """The MON a sealed request was made under (checked with the keys), or None."""
    for mon in range(first, first + count):
        try:
            sec.open_msg(t.keys, t.aca, lsdu, mon, ecc)
            return mon
        except SmitpError:
            continue
    return None


# ---- sending, listening ---------------------------------------------------------------------
def idle(t, seconds):
    """Let the line run for `seconds`, dropping what we hear."""
    end = t.now() + seconds
    while t.now() < end:
        t.port.recv(end - t.now())


def drain(t):
    """Drop what was heard before: the next answer is the one we listen for."""
    while t.port.recv(0) is not None:
        pass


def window(t, request_len, answer_len=mac.DISCIPLINES[mac.DISC_RA7][1]):
    """How long the concentrator waits for such an answer."""
    return response_timeout(len(t.route), request_len, answer_len)


def pace(t, frame_len):
    """Time a frame needs to travel the route, each hop on air and handled,
    when no answer comes back: the next frame may follow without colliding."""
    hop = (PHY_OVERHEAD_BITS + 8 * frame_len) / BITRATE + ELABORATION_S + HANDLING_S
    return (len(t.route) + 1) * hop


def listen(t, seconds):
    """The meter's first answer within `seconds`, or b""."""
    end = t.now() + seconds
    while True:
        left = end - t.now()
        payload = t.port.recv(left) if left > 0 else None
        if payload is None:
            return b""
        ans = answer_in(t, payload)
        if ans is not None:
            return ans


def exchange(t, lsdu, ecc=0, seconds=None):
    """Send `lsdu` to the meter once (no retry: an attacker does not insist); its answer or b""."""
    drain(t)
    f = frame(t, lsdu, ecc)
    t.port.send(f)
    ans = listen(t, window(t, len(f)) if seconds is None else seconds)
    if sec.is_authenticated(lsdu[0]) and not (is_nack(ans, (sec.NACK_AUTH,)) or ans[:1] == bytes((A.NACK_A,))):
        t.behind = True  # not refused before its MON was checked: the meter may have taken it
    return ans


def broadcast(t, lsdu, ecc=0):
    """Send `lsdu` to every meter along the route; any answer from the meter, or b""."""
    drain(t)
    f = frame(t, lsdu, ecc, broadcast=True)
    t.port.send(f)
    return listen(t, pace(t, len(f)))


class Tap:
    """The attacker between the concentrator and the line, for a `with` block:
    each frame the concentrator sends goes through on_send (returns the frame
    to put on the line, another one, or None to suppress it); while `jam` is
    set the concentrator hears nothing. Keeps what was offered, sent and heard.

    The attacker knows when no answer can come: after a suppressed frame, or
    once it jammed the meter's answer. The concentrator's wait then ends at
    once, as its timeout would have ended it, only sooner."""

    def __init__(self, t):
        self.t = t
        self.conc = t.conc
        self.port = t.conc.port  # the line, or a tap already in place
        self.on_send: Callable[[bytes], bytes | None] | None = None
        self.jam = False
        self.offered = []
        self.sent = []
        self.heard = []
        self.jammed = []
        self._hopeless = False  # no answer can come to the last frame offered

    def __enter__(self):
        self.conc.port = self
        return self

    def __exit__(self, *exc):
        self.conc.port = self.port

    def now(self):
        return self.port.now()

    def send(self, payload):
        payload = bytes(payload)
        self.offered.append(payload)
        out = self.on_send(payload) if self.on_send else payload
        self._hopeless = out is None
        if out is not None:
            self.sent.append(out)
            self.port.send(out)

    def recv(self, timeout_s):
        if self._hopeless:  # the wait for an answer to a suppressed frame
            self._hopeless = False
            return None
        end = self.port.now() + timeout_s
        while True:
            payload = self.port.recv(max(0.0, end - self.port.now()))
            if payload is None or not self.jam:
                if payload is not None:
                    self.heard.append(payload)
                return payload
            self.jammed.append(payload)
            if answer_in(self.t, payload) is not None:
                return None  # the answer was jammed: nothing else will come

    def requests(self):
        """The distinct LSDUs the concentrator tried to send, in order."""
        seen = []
        for payload in self.offered:
            lsdu = lsdu_of(payload)[0]
            if lsdu not in seen:
                seen.append(lsdu)
        return seen

    def answer(self, t):
        """The last answer of the meter the concentrator heard, or b""."""
        for payload in reversed(self.heard):
            ans = answer_in(t, payload)
            if ans is not None:
                return ans
        return b""

    def rate_limited(self):
        """How many answers the meter's NACK-10 rate counts (NACK-10, CHL.RESP) it sent."""
        n = 0
        for payload in self.heard + self.jammed:
            ans = answer_in(self.t, payload)
            n += bool(ans) and (ans[0] == sec.ATTR_CHL_RESP or is_nack(ans, (sec.NACK_AUTH,)))
        return n


def through_concentrator(t, call):
    """Run a concentrator service under a tap: (its error or None, the meter's
    last answer it heard, the tap)."""
    with Tap(t) as tap:
        try:
            call()
            err = None
        except SmitpError as e:
            err = e
    t.counted(tap)
    return err, tap.answer(t), tap


# ---- genuine traffic ------------------------------------------------------------------------
def _item(reg, raw):
    return struct.pack(">H", reg) + bytes(raw)


def _regs(*regs):
    return b"".join(struct.pack(">H", r) for r in regs)


def seal(t, attr, apdu, ecc, mon=None):
    """A request as the key holder seals it, under the concentrator's next MON by default."""
    mon = t.session.cmon if mon is None else mon
    return sec.seal_msg(t.keys, t.aca, sec.auth_attr(attr), apdu, mon, ecc, int(time.time()))


def resync(t):
    """The concentrator and the meter agree on LMON again (an attack may have
    moved it): one authenticated read, patient with the NACK-10 rate when the
    concentrator is behind (its read then meets a NACK-10 first) or when the
    meter kept silent."""
    for attempt in range(3):
        took = int(t.behind or attempt > 0)
        if took:
            t.nack_token()
        with Tap(t) as tap:
            try:
                values = t.conc.read(t.aca, [R.LMON], t.route, auth=True)
            except NoAnswer:
                values = None
        t.counted(tap, took)
        if values is not None:
            t.behind = False
            return values
    raise NoAnswer("meter does not answer authenticated reads")


def catch_up(t):
    """resync, when an attack may have moved the meter's LMON."""
    if t.behind:
        resync(t)


def plain_reads(t, *regs):
    """Plain register values in one READ, or None when the meter does not answer."""
    try:
        values = t.conc.read(t.aca, list(regs), t.route)
    except NoAnswer:
        return None
    return [bytes(values[r]) for r in regs]


def plain_read(t, reg):
    """A plain register value, or None when the meter does not answer."""
    values = plain_reads(t, reg)
    return None if values is None else values[0]


def faults(t, raw=None):
    """Frames the meter's guard caught so far (diagnostics register, or its value `raw`), or None."""
    raw = plain_read(t, R.DIAGNOSTICS) if raw is None else raw
    return None if raw is None else struct.unpack(">IHH", raw)[0]


def billing_closures(t):
    raw = plain_read(t, R.BILLING_COUNTER)
    return None if raw is None else int.from_bytes(raw, "big")


# ---- the attacks ----------------------------------------------------------------------------
def replay(conc, t):
    """An accepted request, captured, sent again once a later one went through."""
    with Tap(t) as tap:
        conc.read(t.aca, [R.STATUS_WORD], t.route, auth=True)
    conc.read(t.aca, [R.STATUS_WORD], t.route, auth=True)
    t.nack_token()
    return expect(Outcome(), "replayed read", exchange(t, tap.requests()[-1], READ_ECC), (sec.NACK_AUTH,))


def stale_lmon(conc, t):
    """A request sealed under an LMON the meter already used."""
    t.nack_token()
    req = seal(t, A.READ_REQ, _regs(R.CLOCK), READ_ECC, mon=t.session.lmon)
    return expect(Outcome(), "read under the last LMON", exchange(t, req, READ_ECC), (sec.NACK_AUTH,))


def bit_flip(conc, t):
    """One flipped ciphertext bit (the register id), nothing else changed."""
    t.nack_token()
    req = flip(seal(t, A.READ_REQ, _regs(R.ENERGY_IMPORT), READ_ECC), 2)
    return expect(Outcome(), "read with a flipped bit", exchange(t, req, READ_ECC), (sec.NACK_AUTH,))


def forged_tmac(conc, t):
    """A request whose TMAC the attacker made up."""
    t.nack_token()
    req = seal(t, A.READ_REQ, _regs(R.ENERGY_EXPORT), READ_ECC)
    req = req[:-sec.TMAC_LEN] + random.Random(t.aca).randbytes(sec.TMAC_LEN)
    return expect(Outcome(), "read with a forged TMAC", exchange(t, req, READ_ECC), (sec.NACK_AUTH,))


def write_with_read_key(conc, t):
    """A genuine write, in ECB, but under the read key: read rights only."""
    when = struct.pack(">I", int(time.time()))
    _err, ans, _tap = through_concentrator(
        t, lambda: conc.write(t.aca, {R.CLOCK: when}, t.route, auth=True, ecc=sec.ECC_ECB_READ))
    return expect(Outcome(), "clock write under K2", ans, (A.NACK_ACCESS_DENIED,))


def crash_attrs(rng, sweep=True):
    """The ATTRs of crash_lsdus with authenticated garbage: every one of
    190-238 but the download's 200 and 201, and 240-246 (`sweep`), or a
    representative few: the ends of 190-238 and one drawn between them, an even ATTR of 240-246 (no request
    behind it; the odd ones are answers, as 239 and 245 are)."""
    served = (sec.auth_attr(A.REPROG_LOCAL), sec.auth_attr(A.REPROG_BROADCAST))  # the download's: served
    if sweep:
        return [a for a in range(190, 239) if a not in served] + list(range(240, 247))
    middle = rng.randrange(191, 236)
    return [190, middle + 2 if middle in served else middle, 238, rng.choice((240, 242, 244, 246))]


def crash_lsdus(rng, sweep=True):
    """(step, LSDU, ECC, the answer the rules give: (ATTR, PAR1)) of frames
    that used to stop a meter: answer ATTRs, authenticated ATTRs nobody
    serves (crash_attrs), an ECB request whose encrypted region is not
    block-aligned."""
    unsupported = (A.NACK_A, A.NACK_UNSUPPORTED)
    for attr, size in ((sec.ATTR_NACK_A_AUTH, 18), (sec.ATTR_NACK_B_AUTH, 18), (sec.ATTR_CHL_RESP, 19)):
        yield "ATTR %d, %d bytes" % (attr, size), bytes((attr,)) + rng.randbytes(size - 1), 0, unsupported
    for attr in crash_attrs(rng, sweep):
        step = "ATTR 190-238" if attr < 239 else "ATTR 240-246"
        yield step, bytes((attr,)) + rng.randbytes(sec.AUTH_OVERHEAD), 0, unsupported
    misaligned = bytes((_READ_AUTH,)) + rng.randbytes(18)  # an 18-byte encrypted region
    yield "ECB, 18 encrypted bytes", misaligned, sec.ECC_ECB_READ, (sec.ATTR_NACK_A_AUTH, sec.NACK_AUTH)


def crash_frames(conc, t):
    """Each frame broadcast (no answer allowed) and unicast (its NACK), then a plain READ."""
    out = Outcome()
    before = faults(t)
    garbage = []
    for step, lsdu, ecc, (attr, code) in crash_lsdus(random.Random(t.aca), t.sweep):
        if step.startswith(("ATTR 190", "ATTR 240")):
            garbage.append(lsdu[0])
        if code == sec.NACK_AUTH:
            t.nack_token()  # a failed check costs the meter a token even where it must not answer
        heard = broadcast(t, lsdu, ecc)
        if heard:  # no answer to a broadcast, whatever it carries
            out.saw("broadcast " + step, heard)
            out.worst(UNEXPECTED if is_nack(heard) else ACCEPTED)
        if code == sec.NACK_AUTH:
            t.nack_token()
        expect(out, "unicast " + step, exchange(t, lsdu, ecc), (code,), attr)
    read = plain_reads(t, R.SERIAL, R.DIAGNOSTICS)
    out.saw("plain READ after them", bytes((A.READ_RESP,)) if read else b"")
    if read is None:
        return out.worst(NO_ANSWER)
    after = faults(t, read[1])
    caught = 0 if before is None or after is None else after - before
    out.note = "broadcasts: no answer; faults caught: %d" % caught
    if not t.sweep:
        out.note += "; ATTRs with garbage: %s" % ", ".join(str(a) for a in garbage)
    return out.worst(FAULTED) if caught else out


def _rewrite(conc, t, new_data, step):
    """The concentrator's CTR label write (known plaintext): the attacker
    suppresses it and delivers it rewritten to `new_data`, the TMAC still
    valid; the concentrator hears the meter's answer (its TMAC covers the
    request's last 8 bytes, the TMAC the rewrite keeps)."""
    catch_up(t)
    old_data = _item(R.POINT_LABEL, LABEL)
    first = t.session.cmon
    forged = {}  # the genuine request -> its rewrite

    def on_send(payload):
        lsdu = lsdu_of(payload)[0]
        if lsdu[0] != sec.auth_attr(A.WRITE_REQ):
            return payload
        if lsdu not in forged:
            forged[lsdu] = ctr_rewrite(lsdu, old_data, new_data)
        return reframe(payload, forged[lsdu])

    with Tap(t) as tap:
        tap.on_send = on_send
        try:
            conc.write(t.aca, {R.POINT_LABEL: LABEL}, t.route, auth=True, ecc=sec.ECC_CTR_WRITE)
        except SmitpError:
            pass
    t.counted(tap)
    t.behind = t.session.cmon <= first  # the meter took MON `first`: has the concentrator learnt it?
    if not forged or any(mon_of(t, f, sec.ECC_CTR_WRITE, first, 1) is None for f in forged.values()):
        return Outcome(ERROR, "the rewritten request does not verify: the CRC correction failed")
    out = expect(Outcome(), step, tap.answer(t), (A.NACK_ACCESS_DENIED, A.NACK_UNKNOWN_REGISTER),
                 sec.ATTR_NACK_A_AUTH)
    out.note = "the rewritten request's TMAC is valid (CRC-32 restored in 4 DATE-TIME bytes)"
    return out


def ctr_rewrite_clock(conc, t):
    """The label write becomes three clock writes (same 18 bytes)."""
    when = struct.pack(">I", int(time.time()) + 3600)
    return _rewrite(conc, t, _item(R.CLOCK, when) * 3, "label write rewritten to a clock write")


def ctr_rewrite_key(conc, t):
    """The label write becomes a write of the attacker's key to the old K1 register."""
    return _rewrite(conc, t, _item(OLD_KEY_REGISTER, ATTACKER_KEY), "label write rewritten to a key write")


def _reuse(t, requests, first, ecc):
    """Two different requests sealed under one MON: (MON, first, second), or None."""
    mons = {}
    for lsdu in requests:
        if not sec.is_authenticated(lsdu[0]):
            continue
        mon = mon_of(t, lsdu, ecc, first)
        if mon in mons and mon is not None:
            return mon, mons[mon], lsdu
        mons[mon] = lsdu
    return None


def _times(tap, lsdu):
    n = sum(1 for payload in tap.offered if lsdu_of(payload)[0] == lsdu)
    return "once" if n == 1 else "%d times" % n


def recover(first, known, second):
    """What an eavesdropper reads of `second` when both requests went under one
    CTR keystream and the start of `first`'s DATA is `known`."""
    stream = bytes(x ^ y for x, y in zip(first[1:1 + len(known)], known))
    return bytes(x ^ y for x, y in zip(second[1:1 + len(known)], stream))


def keystream_reuse(conc, t):
    """A request that gets no answer (suppressed, or its answer jammed), then
    another one: does the concentrator seal the second under the same MON?"""
    out = Outcome()
    known = _regs(R.STATUS_WORD)
    for how in ("request suppressed", "answer jammed"):
        catch_up(t)
        first = t.session.cmon
        with Tap(t) as tap:
            tap.on_send = (lambda f: None) if how == "request suppressed" else None
            tap.jam = how == "answer jammed"
            try:
                conc.read(t.aca, [R.STATUS_WORD], t.route, auth=True, ecc=READ_ECC)
            except NoAnswer:
                pass
            tap.on_send, tap.jam = None, False
            try:
                conc.read(t.aca, [R.ENERGY_IMPORT], t.route, auth=True, ecc=READ_ECC)
            except SmitpError:
                pass
        t.counted(tap)
        out.saw(how + ", then another read", tap.answer(t))
        sealed = [lsdu for lsdu in tap.requests() if sec.is_authenticated(lsdu[0])]
        found = _reuse(t, sealed, first, READ_ECC)
        if found:
            mon, a, b = found
            out.note += "%s: two requests under MON %d, the second's DATA %s read from the first's. " % (
                how, mon, recover(a, known, b).hex())
            out.worst(ACCEPTED)
        else:
            mons = ", ".join("MON %s (sent %s)" % (mon_of(t, r, READ_ECC, first), _times(tap, r)) for r in sealed)
            out.note += "%s: %s. " % (how, mons)
    out.note = out.note.strip()
    return out


def nack10_double_execution(conc, t):
    """close-billing whose answer is jammed; the concentrator's retry is
    replaced by a modified copy with the same last 8 bytes, whose NACK-10
    the concentrator takes for the answer to its own request."""
    catch_up(t)
    before = billing_closures(t)
    t.nack_token()
    state: dict[str, bytes | None] = {"genuine": None, "copy": None}

    def on_send(payload):
        if lsdu_of(payload)[0][0] != sec.auth_attr(A.COMMAND):  # a challenge first, say: let it be
            return payload
        if state["genuine"] is None:
            state["genuine"] = payload
            tap.jam = True  # the meter acts; its answer never arrives
            return payload
        if payload == state["genuine"] and state["copy"] is None:
            lsdu = lsdu_of(payload)[0]
            state["copy"] = reframe(payload, flip(lsdu, 1))  # last 8 bytes (Etm*) unchanged
            tap.jam = False
            return state["copy"]
        return payload

    with Tap(t) as tap:
        tap.on_send = on_send
        try:
            conc.command(t.aca, TB.CMD_CLOSE_BILLING, b"", t.route, auth=True, ecc=WRITE_ECC)
        except SmitpError:
            pass
    t.counted(tap, 1)
    if state["copy"] is None:
        return Outcome(ERROR, "the concentrator did not retry the command")
    out = expect(Outcome(), "modified copy", _first_answer(t, tap.heard), (sec.NACK_AUTH,))
    after = billing_closures(t)
    if after is None or before is None:
        return out.worst(NO_ANSWER)
    closures = after - before
    out.note = "the concentrator sealed %d request(s); billing closures: %d" % (len(tap.requests()), closures)
    return out.worst(ACCEPTED if closures > 1 else REJECTED)


def _first_answer(t, heard):
    for payload in heard:
        ans = answer_in(t, payload)
        if ans is not None:
            return ans
    return b""


def replay_after_power_cut(conc, t):
    """Three accepted writes, a power cut, then the first replayed (NACK-10)
    and the last replayed byte for byte (its cached answer, no second effect)."""
    if t.power_cycle is None:
        return Outcome(ERROR, "this meter's power cannot be cut")
    catch_up(t)
    sent = []
    for call in (lambda: conc.write(t.aca, {R.POINT_LABEL: b"REPLAY A".ljust(16, b"\0")}, t.route, True, WRITE_ECC),
                 lambda: conc.write(t.aca, {R.POINT_LABEL: b"REPLAY B".ljust(16, b"\0")}, t.route, True, WRITE_ECC),
                 lambda: conc.command(t.aca, TB.CMD_CLOSE_BILLING, b"", t.route, auth=True, ecc=WRITE_ECC)):
        err, ans, tap = through_concentrator(t, call)
        if err is not None:
            return Outcome(ERROR, "a genuine write failed: %s" % err)
        sent.append((tap.requests()[-1], ans))
    closures = billing_closures(t)
    t.power_cycle()
    t.rested()
    t.behind = True  # a meter powering up goes on from its LMON ceiling (docs/security.md, section 4)
    out = Outcome()
    t.nack_token()
    expect(out, "first write replayed", exchange(t, sent[0][0], WRITE_ECC), (sec.NACK_AUTH,))
    again = out.saw("last write replayed", exchange(t, sent[2][0], WRITE_ECC))
    if again != sent[2][1]:
        out.worst(NO_ANSWER if not again else UNEXPECTED)
    read = plain_reads(t, R.POINT_LABEL, R.BILLING_COUNTER)
    if read is None or closures is None:
        return out.worst(NO_ANSWER)
    label, now_closed = read[0], int.from_bytes(read[1], "big")
    out.note = "cached answer %s; label %r; billing closures after the replays: %+d" % (
        "returned" if again == sent[2][1] else "not returned", label.rstrip(b"\0").decode(), now_closed - closures)
    if now_closed != closures or not label.startswith(b"REPLAY B"):
        out.worst(ACCEPTED)
    return out


def broadcast_write_flood(conc, t):
    """Plain broadcast label writes, more than the plain budget takes; then a
    plain write (busy: that budget is spent) and an authenticated one (served
    from its own budget). One budget for both fails either way: a small one
    refuses the authenticated write, a large one serves the plain write."""
    lsdu = bytes((A.WRITE_REQ,)) + _item(R.POINT_LABEL, b"FLOOD".ljust(16, b"\0"))
    for _i in range(BROADCAST_WRITES):
        broadcast(t, lsdu)
    out = Outcome()
    expect(out, "plain write after %d broadcasts" % BROADCAST_WRITES, exchange(t, lsdu), (A.NACK_BUSY,), A.NACK_A)
    catch_up(t)
    label = {R.POINT_LABEL: b"AUTHENTICATED".ljust(16, b"\0")}
    _err, ans, _ = through_concentrator(t, lambda: conc.write(t.aca, label, t.route, auth=True, ecc=WRITE_ECC))
    out.saw("authenticated write", ans)
    if is_nack(ans, (A.NACK_BUSY,)):
        return out.worst(ACCEPTED)
    return out if ans[:1] == bytes((A.ACK_A_AUTH,)) else out.worst(UNEXPECTED if ans else NO_ANSWER)


def nack10_flood(conc, t):
    """FLOOD_REQUESTS forged requests at the meter's pace (each given the time
    its answer takes, learnt from the first: closer together, an answer would
    meet the next request on the half-duplex line and be lost, and the count
    would prove nothing), each answered at most by a NACK-10 the rate allows;
    then a valid request must be served at once."""
    catch_up(t)
    rng = random.Random(t.aca)
    out = Outcome()
    seconds = None  # learnt from the first answer: the flood goes at the meter's pace
    start = t.now()
    answered = 0
    for _i in range(FLOOD_REQUESTS):
        sent_at = t.now()
        ans = out.saw("forged request", exchange(t, bytes((_READ_AUTH,)) + _regs(R.STATUS_WORD) + rng.randbytes(16),
                                                 READ_ECC, seconds))
        if ans:
            answered += is_nack(ans, (sec.NACK_AUTH,))
            seconds = seconds or (t.now() - sent_at) * 1.25 + HANDLING_S
    elapsed = t.now() - start
    # A full burst, one per refill period, and one for a refill falling due
    # just after the flood began (the meter's clock and ours are not aligned).
    allowed = T.AUTH_NACK_BURST + int(elapsed * 1000) // T.AUTH_NACK_REFILL_MS + 2
    err, ans, _ = through_concentrator(t, lambda: conc.read(t.aca, [R.STATUS_WORD], t.route, auth=True))
    out.saw("valid request right after", ans)
    out.note = "%d forged requests in %.1f s drew %d NACK-10 (the rate allows %d)" % (
        FLOOD_REQUESTS, elapsed, answered, allowed)
    if answered > allowed:
        out.worst(ACCEPTED)
    return out if err is None and ans else out.worst(NO_ANSWER)


def lmon_exhausted(conc, t):
    """A meter whose LMON is at 2**64 - 1: an authenticated request, then a plain read."""
    out = Outcome()
    req = seal(t, A.READ_REQ, _regs(R.STATUS_WORD), READ_ECC, mon=LMON_MAX)
    expect(out, "authenticated read", exchange(t, req, READ_ECC), (A.NACK_LMON_EXHAUSTED,), A.NACK_A)
    status = plain_read(t, R.STATUS_WORD)
    out.saw("plain read", bytes((A.READ_RESP,)) if status is not None else b"")
    return out if status is not None else out.worst(NO_ANSWER)


# Against every meter, in this order: the write budget and the NACK-10 rate
# spent last, so that the attacks before them meet a meter at rest.
PER_METER = (
    ("replay", replay),
    ("stale_lmon", stale_lmon),
    ("bit_flip", bit_flip),
    ("forged_tmac", forged_tmac),
    ("write_with_read_key", write_with_read_key),
    ("crash_frames", crash_frames),
    ("ctr_rewrite_clock", ctr_rewrite_clock),
    ("ctr_rewrite_key", ctr_rewrite_key),
    ("keystream_reuse", keystream_reuse),
    ("nack10_double_execution", nack10_double_execution),
    ("replay_after_power_cut", replay_after_power_cut),
    ("broadcast_write_flood", broadcast_write_flood),
    ("nack10_flood", nack10_flood),
)
# Against a meter provisioned for it (its LMON at the top of the range).
EXHAUSTED_METER = (("lmon_exhausted", lmon_exhausted),)
ATTACKS = tuple(name for name, _fn in PER_METER + EXHAUSTED_METER)


def attack(conc, target, attacks=PER_METER, progress=None):
    """Run `attacks` against one meter; returns {attack name: Outcome}."""
    found = {}
    for i, (name, fn) in enumerate(attacks):
        if progress:
            progress(i, len(attacks), name)
        try:
            found[name] = fn(conc, target)
        except (SmitpError, ValueError) as e:  # a meter that stops answering, a refused sealing
            found[name] = Outcome(ERROR, "%s: %s" % (type(e).__name__, e))
    if progress:
        progress(len(attacks), len(attacks), "")
    return found


def verdicts(found):
    """The three views a report keeps: verdicts, answers in words, answers as data."""
    return ({k: o.verdict for k, o in found.items()}, {k: o.text() for k, o in found.items()},
            {k: o.answers() for k, o in found.items()})


def summary(per_meter):
    """One verdict per attack over the meters that met it: "rejected" only if every one rejected it."""
    out = {}
    for name in ATTACKS:
        met = {aca: v[name] for aca, v in per_meter.items() if name in v}
        odd = [aca for aca, v in met.items() if v != REJECTED]
        if not met:
            out[name] = "not tried"
        else:
            out[name] = REJECTED if not odd else "%s by %s" % (met[odd[0]], ", ".join(odd))
    return out
