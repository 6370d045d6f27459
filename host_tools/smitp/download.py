"""Software download, the concentrator's side (CLC/TS 50568-8 5.7.5).

A campaign, for one meter or a section:
1. OPEN each meter (REPROG_LOCAL, authenticated, ECB under the write key):
   the image header with the seal made under that meter's K1 (the image file
   may carry none: the key holder seals per meter), and the activation time
   when --at programs one;
2. broadcast every block (REPROG_BROADCAST, class S, no answer) along the
   fewest chains of repeaters whose copies every meter hears: a meter keeps
   a block from any hop's copy, so a chain feeds every meter whose route is
   a prefix of it (broadcast_chains);
3. gap filling: each meter's missing-block bitmap (MISSING); a block many
   meters lack goes once more by broadcast along their chains when that
   costs fewer transmissions than a unicast to each; then, per meter, the
   blocks it still lacks sent to it alone, until it has them all;
4. the meter checks seal and hash and installs; the concentrator reads the
   download state (ready, or the failure) and ACTIVATEs now; with --at, a
   meter whose last MISSING answer showed every block needs neither (it
   activates itself at that time; step 5 reads what happened);
5. after the restart, the firmware identification, the slots and the state
   are read: activated, rolled back (with the reason) or refused.
Layouts: meter/fwimage.py (the one place).
"""

import struct
import time
from typing import Any

from meter import attrs as A
from meter import fwimage as F
from meter import slots as S
from meter.app import security as sec
from meter.app.download import STATES, ST_IDLE, ST_READY, ST_RESTART, ST_TRIAL
from meter.errors import DecodeError
from meter.link import mac
from meter.model import registers as R
from smitp.aca import aca_text
from smitp.concentrator import NoAnswer
from smitp.secure import OutcomeUnknown
from smitp.medium import PHY_OVERHEAD_BITS
from smitp.errors import Nack, PeerError, UsageError

BITRATE = 4800
HOP_GAP_S = 0.05  # what a repeater takes to pass a frame on (TEL), with a margin
RETRIES = 3  # a meter that does not answer is asked again this many times ...
BUSY_PAUSE_S = 5.0  # ... this long apart
MISSING_ROUNDS = 8
RETRY_PASSES = 2  # passes for meters that fell silent  # gap-filling rounds per meter before it is given up
RESTART_WAIT_S = 90.0  # a restart into the new slot, a trial and a rollback fit in it


# What one meter's exchange may end in: silence, a refusal, an answer that does not verify. It is
# that meter's outcome; the campaign goes on with the others.
METER_FAULTS = (NoAnswer, PeerError, DecodeError)


class DownloadError(PeerError):
    """A campaign could not be run (not a meter's refusal: those are reported)."""


def load_image(path):
    try:
        with open(path, "rb") as f:
            raw = f.read(F.HEADER_LEN + F.MAX_BLOCK * F.MAX_BLOCKS + 1)
    except OSError as e:
        raise UsageError("image %s: %s" % (path, e.strerror or e)) from None
    try:
        h = F.unpack_header(raw)
    except Exception as e:  # DecodeError: one line
        raise UsageError("image %s: %s" % (path, e)) from None
    if len(raw) != F.HEADER_LEN + h.size:
        raise UsageError("image %s: %d bytes, its header says %d" % (path, len(raw), F.HEADER_LEN + h.size))
    return raw


def sealed_header(image, k1):
    """The image header sealed under one meter's write key."""
    h = F.unpack_header(image)
    h.seal = F.make_seal(k1, h)
    return h.pack()


def broadcast_chains(routes):
    """The fewest broadcast chains (repeater routes) feeding meters of these routes: every
    route must be a prefix of a chain, so the chains are the routes no other one extends."""
    distinct = set(tuple(r) for r in routes)
    prefixes = {r[:k] for r in distinct for k in range(len(r))}
    return sorted(r for r in distinct if r not in prefixes)


def transmissions(routes):
    """Frames on air for one frame along each route (the concentrator's and each repeater's)."""
    return sum(len(r) + 1 for r in routes)


class Campaign:
    """One image to meters [(aca, route)] through a Concentrator with a key ring."""

    def __init__(self, conc, image, meters, at=0, progress=None, keys_of=None):
        self.conc, self.image, self.meters = conc, image, list(meters)
        self.route_of = dict(self.meters)
        self.header = F.unpack_header(image)
        self.body = image[F.HEADER_LEN:]
        self.at = at
        self.progress = progress
        self.keys_of = keys_of or (lambda aca: conc.keyring.get(aca).write_key())
        self.out = bytearray(mac.MAX_FRAME)
        self.frames = {"broadcast": 0, "gap_fill": 0, "gap_fill_broadcast": 0, "requests": 0}
        self.result: dict[str, dict[str, Any]] = {aca_text(a): {"aca": aca_text(a)} for a, _r in self.meters}
        self.t0 = conc.port.now()
        self._broadcast_rp: dict[tuple, bytes] = {}  # route -> its broadcast's 2-byte SCA entries
        self.transient: set[str] = set()  # meters refused only by silence: another pass may reach them
        self.complete: set[bytes] = set()  # meters whose last MISSING answer showed every block

    # ---- frames without an answer
    def frame(self, addr_air, route, data):
        """The class-S frame carrying `data` to `addr_air` (a meter or the broadcast) through `route`."""
        if addr_air == mac.BROADCAST:  # repeaters named by their SCAs (smitp.discovery.broadcast_entries)
            rp = self._broadcast_rp.get(tuple(route))
            if rp is None:
                from smitp.discovery import broadcast_entries

                rp = self._broadcast_rp[tuple(route)] = broadcast_entries(self.conc.port, route, self.conc.book)
        else:
            rp = b"".join(mac.aca_to_air(r) for r in route)
        n = mac.encode(self.out, addr_air, rp, mac.DISC_S, False, 0, False, 0, 0, data)
        return bytes(self.out[:n])

    def _send(self, addr_air, route, data):
        frame = self.frame(addr_air, route, data)
        port = self.conc.port
        port.send(frame)
        if route:  # its repetitions leave the air before the next frame
            medium = getattr(getattr(port, "network", None), "medium", None)
            n = len(frame)
            air = medium.airtime_s(n) if medium is not None else (n * 8 + PHY_OVERHEAD_BITS) / BITRATE
            self.conc.pause((air + HOP_GAP_S) * (len(route) + 1))

    def block_lsdu(self, i):
        h = self.header
        return (bytes((A.REPROG_BROADCAST,)) + h.image_id + struct.pack(">H", i)
                + self.body[i * h.block:(i + 1) * h.block])

    # ---- the steps
    def _local(self, aca, route, data):
        """An authenticated REPROG_LOCAL. Each operation may run twice (OPEN of the same header
        resumes, MISSING reads, ACTIVATE of an activated session is refused and the state read
        after tells): a lost answer or an outcome left unknown is tried again, later."""
        for attempt in range(RETRIES + 1):
            self.frames["requests"] += 1
            try:
                return self.conc.service(aca, A.REPROG_LOCAL, data, route, auth=True, ecc=sec.ECC_ECB_WRITE)
            except (NoAnswer, OutcomeUnknown):
                if attempt == RETRIES:
                    raise
                self.conc.pause(BUSY_PAUSE_S)  # a meter busy installing, restarting or relaying
        raise AssertionError("unreachable")

    def _read(self, aca, route, regs):
        for attempt in range(RETRIES + 1):
            try:
                return self.conc.read(aca, regs, route)
            except NoAnswer:
                if attempt == RETRIES:
                    raise
                self.conc.pause(BUSY_PAUSE_S)
        raise AssertionError("unreachable")

    def _state(self, aca, route):
        got = self._read(aca, route, [R.DOWNLOAD_STATE, R.DOWNLOAD_VERSIONS])
        st = struct.unpack(">BBHHBI", got[R.DOWNLOAD_STATE])
        ver = struct.unpack(">BBIII", got[R.DOWNLOAD_VERSIONS])
        return st, ver

    def _fail(self, aca, outcome, reason, error=None):
        """Record a meter's outcome; a silence (error NoAnswer or OutcomeUnknown) is worth another pass."""
        r = self.result[aca_text(aca)]
        r.setdefault("outcome", outcome)
        r.setdefault("reason", reason)
        if isinstance(error, (NoAnswer, OutcomeUnknown)):
            self.transient.add(aca_text(aca))

    def _live(self):
        return [(a, r) for a, r in self.meters if "outcome" not in self.result[aca_text(a)]]

    def _step(self, done, total, what):
        if self.progress:
            self.progress(done, total, what)

    def open_all(self):
        live = self._live()
        for k, (aca, route) in enumerate(live):
            self._step(k, len(live), "open")
            try:
                when = struct.pack(">I", self.at) if self.at else b""
                self._local(aca, route, bytes((F.OP_OPEN,)) + sealed_header(self.image, self.keys_of(aca)) + when)
            except METER_FAULTS as e:
                self._fail(aca, "refused", "open: %s" % e, e)

    def broadcast(self):
        """Every block once along each chain: the live meters' routes that no other one extends
        (a concentrator that knows more of who hears whom may do better: smitp/fleet_download.py)."""
        routes = broadcast_chains(route for _aca, route in self._live())
        n = self.header.blocks
        for i in range(n):
            lsdu = self.block_lsdu(i)
            for route in routes:
                self._send(mac.BROADCAST, route, lsdu)
                self.frames["broadcast"] += 1
            if self.progress:
                self.progress(i + 1, n, "broadcast")

    def missing(self, aca, route):
        """Indexes of the blocks the meter lacks."""
        h = self.header
        lacking, start = [], 0
        while start < h.blocks:
            ans = self._local(aca, route, bytes((F.OP_MISSING,)) + h.image_id + struct.pack(">H", start))
            if len(ans) < 10 or ans[1] != F.OP_MISSING_RESP or ans[2:6] != h.image_id:
                raise DownloadError("unexpected answer to MISSING from %s: %s" % (aca_text(aca), ans.hex()))
            first, _received = struct.unpack_from(">HH", ans, 6)
            bits = ans[10:]
            if first < start or not (bits or first >= h.blocks):  # before it: every block kept
                raise DownloadError("MISSING answer from %s starts at %d, asked %d" % (aca_text(aca), first, start))
            for k in range(min(len(bits) * 8, h.blocks - first)):
                if not bits[k >> 3] >> (k & 7) & 1:
                    lacking.append(first + k)
            start = first + len(bits) * 8
        return lacking

    def _lacking_all(self):
        """{aca: its missing blocks} of every live meter, one MISSING round."""
        out = {}
        live = self._live()
        for k, (aca, route) in enumerate(live):
            self._step(k, len(live), "missing blocks")
            try:
                out[aca] = self.missing(aca, route)
            except Nack:  # no session any more: the per-meter rounds find out
                continue
            except METER_FAULTS as e:
                self._fail(aca, "refused", "gap filling: %s" % e, e)
        return out

    def fill_gaps_grouped(self, lacking):
        """Each block some meters lack: by broadcast along their chains when that costs fewer
        transmissions than a unicast to each of them, else left to the per-meter rounds.
        Returns the indexes broadcast."""
        by_block: dict[int, list[bytes]] = {}
        for aca, blocks in lacking.items():
            for i in blocks:
                by_block.setdefault(i, []).append(aca)
        sent = set()
        for i in sorted(by_block):
            frames = self.gap_broadcast(self.block_lsdu(i), by_block[i])
            if frames:
                self.frames["gap_fill"] += frames
                self.frames["gap_fill_broadcast"] += frames
                sent.add(i)
        self.air_clear()
        return sent

    def gap_broadcast(self, lsdu, acas):
        """A block the meters `acas` lack, broadcast along chains that feed them all when that
        costs fewer transmissions than a unicast to each: the frames sent (0: none sent). The
        chains are their routes that no other one extends."""
        routes = [self.route_of[a] for a in acas]
        chains = broadcast_chains(routes)
        if transmissions(chains) >= transmissions(routes):
            return 0
        for chain in chains:
            self._send(mac.BROADCAST, chain, lsdu)
        return len(chains)

    def air_clear(self):
        """Wait until the relays of the broadcasts sent have left the air (each _send already
        waits for its own)."""

    def fill_gaps(self):
        known, sent = {}, set()
        if len(self.meters) > 1:
            known = self._lacking_all()
            sent = self.fill_gaps_grouped(known)
        live = self._live()
        for done, (aca, route) in enumerate(live):
            self._step(done, len(live), "gap filling")
            for k in range(MISSING_ROUNDS):
                try:
                    if k == 0 and aca in known:  # asked in the grouped round: what no broadcast since sent
                        lacking = [i for i in known[aca] if i not in sent]
                        if not lacking and known[aca]:
                            lacking = self.missing(aca, route)
                    else:
                        lacking = self.missing(aca, route)
                except Nack:  # no session for this image any more: refused; the state read next says why
                    break
                except METER_FAULTS as e:
                    self._fail(aca, "refused", "gap filling: %s" % e, e)
                    break
                if not lacking:  # complete: the meter checked and installed it
                    self.complete.add(aca)
                    break
                self.send_blocks(aca, route, lacking)
                self.frames["gap_fill"] += len(lacking)

    def send_blocks(self, aca, route, indexes):
        """The blocks `indexes` to one meter (class S, no answer), each after the last one's
        relays left the air."""
        for i in indexes:
            self._send(mac.aca_to_air(aca), route, self.block_lsdu(i))

    def verify_and_activate(self):
        for aca, route in self._live():
            if self.at and aca in self.complete:  # programmed at OPEN: it activates itself
                continue
            try:
                st, _ver = self._state(aca, route)
            except METER_FAULTS as e:
                self._fail(aca, "refused", "state: %s" % e, e)
                continue
            if st[0] == 1:  # still receiving: gap filling ran out of rounds on a poor route
                self._fail(aca, "refused", "not complete (%d of %d blocks)" % (st[2], st[3]), NoAnswer("gaps"))
                continue
            if st[0] != ST_READY:
                self._fail(aca, "refused", S.FAILURES.get(st[4], "state %s" % STATES[st[0]]))
                continue
            try:
                self._local(aca, route, bytes((F.OP_ACTIVATE,)) + self.header.image_id + struct.pack(">I", self.at))
            except METER_FAULTS as e:
                self._fail(aca, "refused", "activate: %s" % e, e)

    def confirm(self, wait_s=RESTART_WAIT_S):
        """Wait for each meter's restart and trial; read what runs."""
        want = self.header.version
        for aca, route in self._live():
            end = self.conc.port.now() + wait_s + max(0, self.at - time.time())
            st = ver = None
            while self.conc.port.now() < end:
                try:
                    got = self.conc.read(aca, [R.DOWNLOAD_STATE, R.DOWNLOAD_VERSIONS], route)
                    st = struct.unpack(">BBHHBI", got[R.DOWNLOAD_STATE])
                    ver = struct.unpack(">BBIII", got[R.DOWNLOAD_VERSIONS])
                except METER_FAULTS:
                    self.conc.pause(1.0)  # restarting
                    continue
                if st[0] not in (ST_RESTART, ST_TRIAL) and not (st[0] == 3 and self.at):
                    break
                self.conc.pause(1.0)
            r = self.result[aca_text(aca)]
            if st is None or ver is None:
                self._fail(aca, "no answer", "silent after the activation")
                continue
            try:
                fid = self.conc.read(aca, [R.FIRMWARE_ID], route)[R.FIRMWARE_ID].rstrip(b"\0").decode()
            except METER_FAULTS:
                fid = None
            running = ver[2 + ver[0]] if ver[0] else ver[2]
            r.update({"firmware_id": fid, "active_slot": ver[0], "version": F.version_text(running)})
            if st[0] == ST_IDLE and running == want and ver[0] != S.BUILTIN:
                r["outcome"] = "activated"
            elif st[4] in (S.FAIL_NO_BOOT, S.FAIL_START):
                self._fail(aca, "rolled back", S.FAILURES[st[4]])
            else:
                self._fail(aca, "not activated", "state %s, last failure %s" % (STATES[st[0]], S.FAILURES.get(st[4])))

    def retry_silent(self):
        """Another pass (open, gap filling, activation) for the meters that only fell silent."""
        for _ in range(RETRY_PASSES):
            again = [t for t in sorted(self.transient) if self.result[t].get("outcome") == "refused"]
            if not again:
                return
            self.transient.clear()
            for t in again:
                self.result[t] = {"aca": t, "passes": self.result[t].get("passes", 1) + 1}
            self.open_all()
            self.fill_gaps()
            self.verify_and_activate()

    def run(self, wait_s=RESTART_WAIT_S):
        self.open_all()
        self.broadcast()
        self.fill_gaps()
        self.verify_and_activate()
        self.retry_silent()
        self.confirm(wait_s)
        return self.report()

    def report(self):
        h = self.header
        out = {"image": {"version": F.version_text(h.version), "bytes": len(self.image), "blocks": h.blocks,
                         "image_id": h.image_id.hex()},
               "meters": list(self.result.values()), "frames": dict(self.frames),
               "seconds": round(self.conc.port.now() - self.t0, 1)}
        for kind in ("activated", "rolled back", "refused"):
            out[kind.replace(" ", "_")] = [m["aca"] for m in self.result.values() if m.get("outcome") == kind]
        return out


def print_report(rep, out=None):
    import sys

    out = out or sys.stdout
    im = rep["image"]
    print("image %s: %d bytes, %d blocks, id %s" % (im["version"], im["bytes"], im["blocks"], im["image_id"]), file=out)
    for m in rep["meters"]:
        print("  %s  %-13s %s%s" % (m["aca"], m.get("outcome", "?"), m.get("firmware_id") or "",
                                    ("  (%s)" % m["reason"]) if m.get("reason") else ""), file=out)
    f = rep["frames"]
    print("frames: %d broadcast, %d gap filling, %d requests; %.1f s" % (f["broadcast"], f["gap_fill"], f["requests"],
                                                                        rep["seconds"]), file=out)


# ---- `smitp demo --download`: the demo feeder's emulated boards really run the image
DEMO_BITRATE = 19200  # the demo's line: four times 4800 bit/s, so that 140 KB take a minute, not five
DEMO_VERSION = "0.2.0"
_BROKEN = {  # module -> source of a deliberately broken image (replaces the firmware's runtime)
    "raises": 'raise RuntimeError("this image is broken on purpose")\n',
    "hangs": "while True:\n    pass\n",
}


def _flip(image, index):
    """The image with one byte of its body changed: the header (and its seal) as it was."""
    raw = bytearray(image)
    raw[F.HEADER_LEN + index] ^= 0x01
    return bytes(raw)


def demo(progress=None, workdir=None, bitrate=DEMO_BITRATE):
    """On the demo feeder (three emulated boards, one behind a repeater),
    each meter with its own keys: a tampered image and a wrongly sealed one
    refused before activation; an image that raises at import and one that
    hangs, each rolled back to the running firmware; then the new version
    activated on every meter. Returns the report (the meters' own answers)."""
    import os
    import tempfile

    from smitp import demo as D
    from smitp import topology
    from smitp.image import build_download
    from smitp.medium import Medium
    from smitp.network import Network, serial_for
    from smitp.emulated_board import EmulatedBoard
    from smitp.provision import provision_image
    from smitp.secure import KeyRing
    from smitp.concentrator import Concentrator

    def say(what):
        if progress:
            progress(0, 1, what)

    say("building the images")
    good = build_download("unix", DEMO_VERSION)
    broken = {k: build_download("unix", "0.2.%d" % (i + 1), replace={"meter/runtime/firmware.py": src})
              for i, (k, src) in enumerate(sorted(_BROKEN.items()))}
    topo = topology.demo_feeder()
    meters = [n for n in topo["nodes"] if n.get("role") != "concentrator"]
    keys = {n["aca"]: (os.urandom(16), os.urandom(16)) for n in meters}
    ring = KeyRing.from_dict({a: {"k1": k[0].hex(), "k2": k[1].hex()} for a, k in keys.items()})
    acas = [bytes.fromhex(n["aca"]) for n in meters]
    own = tempfile.TemporaryDirectory(prefix="smitp-download-") if workdir is None else None
    where = own.name if own is not None else workdir
    net = Network(Medium(bitrate=bitrate, topology=topo))
    try:
        port = net.add_concentrator("dcu")
        for n in meters:
            board = EmulatedBoard(n["name"], n["aca"], serial_for(n["aca"]), where)
            provision_image(board.flash, *keys[n["aca"]])
            net.add_board(n["name"], board)
        D.wait_until_ready(net)
        conc = Concentrator(port, keyring=ring)
        routes, reached = {}, []
        for aca in acas:
            route = D.find_route(conc, aca, reached)
            if route is None:
                raise DownloadError("meter %s does not answer" % aca_text(aca))
            routes[aca] = route
            if not route:
                reached.append(aca)
        before = {aca_text(a): conc.read(a, [R.FIRMWARE_ID], routes[a])[R.FIRMWARE_ID].rstrip(b"\0").decode()
                  for a in acas}
        steps = []

        def campaign(label, image, targets, keys_of=None, wait_s=RESTART_WAIT_S):
            say(label)
            c = Campaign(conc, image, [(a, routes[a]) for a in targets], progress=progress, keys_of=keys_of)
            rep = c.run(wait_s)
            rep["step"] = label
            steps.append(rep)
            return rep

        wrong = {a: os.urandom(16) for a in keys}
        campaign("wrong seal", good, acas[:1], keys_of=lambda a: wrong[aca_text(a)])
        campaign("tampered block", _flip(good, len(good) // 2), acas[1:2])
        campaign("image that raises at import", broken["raises"], acas[:1])
        campaign("image that hangs", broken["hangs"], acas[1:2])
        final = campaign("new version", good, acas)
        seconds = final["seconds"]  # the last campaign's image bytes over the line's capacity meanwhile
        efficiency = round(len(good) * 8 / (bitrate * seconds), 3) if seconds else None
        report = {
            "activated": final["activated"],
            "rolled_back": [m["aca"] + ": " + m.get("reason", "") for s in steps for m in s["meters"]
                            if m.get("outcome") == "rolled back"],
            "refused": [m["aca"] + ": " + m.get("reason", "") for s in steps for m in s["meters"]
                        if m.get("outcome") == "refused"],
            "efficiency": efficiency,
            "firmware_before": before,
            "firmware_after": {m["aca"]: m.get("firmware_id") for m in final["meters"]},
            "bitrate": bitrate,
            "steps": steps,
        }
        return report
    finally:
        net.close()
        if own is not None:
            own.cleanup()


def print_demo(rep, out=None):
    import sys

    out = out or sys.stdout
    for s in rep["steps"]:
        print("== %s" % s["step"], file=out)
        print_report(s, out)
    print("activated:   %s" % ", ".join(rep["activated"]), file=out)
    print("rolled back: %s" % "; ".join(rep["rolled_back"]), file=out)
    print("refused:     %s" % "; ".join(rep["refused"]), file=out)
    print("efficiency of the last campaign: %s of the line's %d bit/s" % (rep["efficiency"], rep["bitrate"]), file=out)


# ---- the command line's bodies (cli.py registers them)
def build_command(args):
    """`smitp image --download`: the image file, sealed for one meter when --keys and --meter say so."""
    from pathlib import Path

    import meter
    from smitp.image import ROOT, build_download, download_summary
    from smitp.secure import KeyRing

    key = None
    if args.meter or args.keys:
        if not (args.meter and args.keys):
            raise UsageError("--keys and --meter go together: the meter whose write key seals the image")
        key = KeyRing.load(args.keys).get(bytes.fromhex(args.meter)).write_key()
    raw = build_download(args.board, args.image_version or meter.VERSION, key=key)
    out = Path(args.file) if args.file else ROOT / "build" / ("%s.smfw" % args.board)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    rep = download_summary(raw)
    rep["out"] = str(out)
    return rep


def run_command(conc, image, args, progress=None):
    """`smitp download`: one meter (--meter, --via) or the key file's meters (--section)."""
    from smitp import demo as D

    if args.section:
        meters, reached = [], []
        for text in sorted(conc.keyring):  # the ring iterates over ACA texts
            aca = bytes.fromhex(text)
            route = D.find_route(conc, aca, reached)
            if route is None:
                continue  # not on this line
            meters.append((aca, route))
            if not route:
                reached.append(aca)
        if not meters:
            raise DownloadError("no meter of the key file answers on this line")
    else:
        route = tuple(bytes.fromhex(a) for a in args.via.split(",")) if args.via else ()
        meters = [(bytes.fromhex(args.meter), route)]
    return Campaign(conc, image, meters, at=args.at or 0, progress=progress).run()

