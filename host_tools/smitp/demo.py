"""`smitp demo`: three emulated meters on a simulated LV feeder, read by the concentrator.

Meter 3 hears only meter 2, so the concentrator reaches it through meter 2
acting as a repeater. With --auth every meter gets its own keys, is read
authenticated, then attacked (smitp.attacks), and one more meter, provisioned
with its LMON at the top of the range, meets the attack that needs it.
Everything printed is what the meters answered.
"""

import functools
import os
import sys
import tempfile

from meter import attrs as A
from meter.model import registers as R
from meter.errors import SmitpError
from meter.app.lmon import LMON_MAX
from smitp import topology
from smitp import attacks
from smitp.concentrator import Concentrator, NoAnswer, aca_text, parse_aca, register_size
from smitp.secure import KeyRing
from smitp.network import neighbourhood
from smitp.values import decode_value, register_json, register_name, show_value

# The extra meter of `demo --auth`, provisioned with its LMON at 2**64 - 1.
EXHAUSTED_NAME = "mx"
EXHAUSTED_ACA = "A8040A1E89FF"
DEMO_REGISTERS = (R.STATUS_WORD, R.ENERGY_IMPORT, R.ENERGY_EXPORT, R.CLOCK, R.SERIAL, R.FIRMWARE_ID)
BOOT_TIMEOUT_S = 20.0


class DemoError(SmitpError):
    pass


def wait_until_ready(net, timeout_s=BOOT_TIMEOUT_S):
    """Every board has booted and configured its modem (it says so on its console)."""
    def ready():
        for slot in net.boards.values():
            if not slot.board.alive():
                raise DemoError("board %s stopped:\n%s" % (slot.name, slot.board.log_text()[-2000:]))
        return all("modem configured" in s.board.log_text() for s in net.boards.values())

    if not net.run_until(ready, timeout_s):
        logs = "\n".join("%s: %s" % (s.name, s.board.log_text()[-500:]) for s in net.boards.values())
        raise DemoError("boards not ready after %.0f s:\n%s" % (timeout_s, logs))


def find_route(conc, aca, reached):
    """Try the meter directly, then through each meter already reached
    directly, one frame each, as many rounds as the concentrator has tries:
    a meter out of direct reach costs one wait a round, not every retry."""
    request = bytes((A.READ_REQ,)) + R.STATUS_WORD.to_bytes(2, "big")
    size = 1 + register_size(R.STATUS_WORD)
    for _round in range(1 + conc.retries):
        for route in [()] + [(r,) for r in reached]:
            try:
                conc.request(aca, request, route, max_response=size, tries=1)
                return route
            except NoAnswer:
                continue
    return None


def read_meters(conc, meters, progress=None, auth=False):
    """Find a route to each meter and read the demo registers (authenticated
    and encrypted with AES-CTR under the read key when `auth`)."""
    regs = list(DEMO_REGISTERS) + ([R.LMON] if auth else [])
    results, direct = [], []
    for i, aca in enumerate(meters):
        if progress:
            progress(i, len(meters), aca_text(aca))
        route = find_route(conc, aca, direct)
        if route is None:
            results.append({"aca": aca_text(aca), "route": None, "error": "unreachable"})
            continue
        if not route:
            direct.append(aca)
        values = conc.read(aca, regs, route, auth=auth)
        results.append({
            "aca": aca_text(aca),
            "route": [aca_text(r) for r in route] + [aca_text(aca)],
            "registers": [register_json(r, values[r]) for r in regs],
            "shown": {register_name(r): show_value(r, values[r]) for r in regs},
            "firmware": decode_value(R.FIRMWARE_ID, values[R.FIRMWARE_ID]),
        })
    if progress:
        progress(len(meters), len(meters), "")
    return results


def _meters(topo):
    return [bytes.fromhex(n["aca"]) for n in topo["nodes"] if n["role"] == "meter"]


def attack_feeder():
    """The demo feeder plus the meter provisioned with its LMON at the top of
    the range (for the attack that needs it), next to the concentrator.
    Returns (topology, the demo's meters, that meter's ACA)."""
    topo = topology.load(topology.demo_feeder())
    meters = _meters(topo)
    dcu = next(n["name"] for n in topo["nodes"] if n["role"] == "concentrator")
    topo["nodes"].append({"name": EXHAUSTED_NAME, "aca": EXHAUSTED_ACA, "role": "meter"})
    topo["links"].append({"a": dcu, "b": EXHAUSTED_NAME, "attenuation_db": 40})
    return topology.load(topo), meters, parse_aca(EXHAUSTED_ACA)


def _random_keys(meters, exhausted):
    """{ACA: (K1, K2)} for each meter, (K1, K2, LMON) for the exhausted one."""
    keys: dict = {aca_text(a): (os.urandom(16), os.urandom(16)) for a in meters}
    keys[aca_text(exhausted)] = (os.urandom(16), os.urandom(16), LMON_MAX)
    return keys


def _keyring(keys, meters):
    """The concentrator's keys for the meters it reads (the exhausted meter is
    attacked with its own, outside the concentrator's sessions)."""
    pairs = {aca_text(a): keys[aca_text(a)] for a in meters}
    return KeyRing.from_dict({a: {"k1": k[0].hex(), "k2": k[1].hex()} for a, k in pairs.items()})


MODEMS = ("st7580", "hi", "mixed")


def demo_modems(topo, modem):
    """{meter name: its modem}: all on the ST7580 or all on a Meters and More
    modem (Host Interface), or mixed: every other meter on each, in the
    topology's order (the demo's repeater then serves meters on the other kind)."""
    names = [n["name"] for n in topo["nodes"] if n["role"] == "meter"]
    if modem == "mixed":
        return {name: ("hi" if i % 2 else "st7580") for i, name in enumerate(names)}
    return dict.fromkeys(names, modem)


def run(progress=None, auth=False, modem="st7580", **board_options):
    """The demo; with `auth` every meter gets its own random keys, is read
    authenticated and encrypted, then attacked (see smitp.attacks). modem:
    one of MODEMS, the modem behind every meter's board."""
    if auth:
        topo, meters, exhausted = attack_feeder()
        keys = _random_keys(meters, exhausted)
        keyring = _keyring(keys, meters)
    else:
        topo = topology.load(topology.demo_feeder())
        meters, keys, keyring = _meters(topo), None, None
    if modem not in MODEMS:
        raise DemoError("unknown modem %r (one of %s)" % (modem, ", ".join(MODEMS)))
    modems = demo_modems(topo, modem)
    report = {}
    with tempfile.TemporaryDirectory(prefix="smitp-demo-") as workdir:
        net, port = neighbourhood(topo, workdir, boards=True, keys=keys, modems=modems, **board_options)
        try:
            wait_until_ready(net)
            conc = Concentrator(port, keyring=keyring)
            report["meters"] = read_meters(conc, meters, progress, auth)
            by_aca = {n["aca"]: modems[n["name"]] for n in topo["nodes"] if n["name"] in modems}
            for m in report["meters"]:
                m["modem"] = by_aca.get(m["aca"])
            if auth:
                attack_all(conc, net, topo, report, keys, exhausted, progress)
            report["concentrator"] = dict(conc.stats)
        finally:
            net.close()
    report["medium"] = net.medium.stats
    return report


def attack_all(conc, net, topo, report, keys, exhausted, progress=None):
    """The attacks against every meter read (with power cuts of its board),
    then against the exhausted meter; report["security"]: one verdict per attack."""
    names = {n["aca"]: n["name"] for n in topo["nodes"] if n["role"] == "meter"}
    cycle = {a: functools.partial(power_cycle, net, names[a]) for a in names}
    try_attacks(conc, report["meters"], keys, cycle, progress)
    target = attacks.Target(conc, exhausted, (), keys[aca_text(exhausted)][:2])
    report["exhausted_meter"] = _attacked(aca_text(exhausted), conc, target, attacks.EXHAUSTED_METER)
    report["security"] = attacks.summary(_verdicts(report))


def power_cycle(net, name):
    """Cut an emulated board's power, power it up again, wait until it serves."""
    slot = net.boards[name]
    boots = slot.board.log_text().count("modem configured")
    slot.board.power_cut()
    slot.board.start()
    slot.emu.power_on(net.clock.now() * 1000)
    if not net.run_until(lambda: slot.board.log_text().count("modem configured") > boots, BOOT_TIMEOUT_S):
        raise DemoError("board %s did not come back after a power cut:\n%s" % (name, slot.board.log_text()[-500:]))


def _attacked(aca, conc, target, which, progress=None):
    """The report entry of one meter's attacks: verdicts, answers in words and as data."""
    said = attacks.attack(conc, target, which, progress)
    verdicts, details, answers = attacks.verdicts(said)
    return {"aca": aca, "security": verdicts, "security_detail": details, "security_answers": answers}


def _verdicts(report):
    """{ACA: {attack: verdict}} over the demo's meters and the exhausted one."""
    entries = [m for m in report["meters"] if "security" in m] + [report["exhausted_meter"]]
    return {m["aca"]: m["security"] for m in entries}


def try_attacks(conc, results, keys, power_cycles, progress=None):
    """Attack every reachable meter; each meter entry gets its verdicts and
    the meter's answers, and proves it still serves with one more
    authenticated read."""
    for m in results:
        if m.get("error"):
            continue
        aca = parse_aca(m["aca"])
        route = tuple(parse_aca(r) for r in m["route"][:-1])
        target = attacks.Target(conc, aca, route, keys[m["aca"]], power_cycles.get(m["aca"]), sweep=False)

        def step(i, n, name, who=m["aca"]):
            if progress:
                progress(i, n, "attacking %s: %s" % (who, name))

        m.update(_attacked(m["aca"], conc, target, attacks.PER_METER, step))
        try:
            m["lmon_after_attacks"] = int.from_bytes(attacks.resync(target)[R.LMON], "big")
        except SmitpError as e:
            m["lmon_after_attacks"] = None
            m["error_after_attacks"] = "no authenticated answer: %s" % e


def print_table(report, out=sys.stdout):
    for m in report["meters"]:
        if m.get("error"):
            print("meter %s: %s" % (m["aca"], m["error"]), file=out)
            continue
        print("meter %s  route %s%s" % (m["aca"], " -> ".join(["concentrator"] + m["route"]),
                                          "  modem %s" % m["modem"] if m.get("modem") else ""), file=out)
        for reg in m["registers"]:
            print("  %s  %-32s %s" % (reg["id"], reg["name"], m["shown"][reg["name"]]), file=out)
        _print_attacks(m, out)
    if "exhausted_meter" in report:
        print("meter %s  (LMON at 2**64 - 1)" % report["exhausted_meter"]["aca"], file=out)
        _print_attacks(report["exhausted_meter"], out)
    c = report["concentrator"]
    print("%d requests, %d retries, %d timeouts" % (c["requests"], c["retries"], c["timeouts"]), file=out)


def _print_attacks(m, out):
    for name, verdict in m.get("security", {}).items():
        print("  attack %-24s %-10s %s" % (name, verdict, m["security_detail"][name]), file=out)
