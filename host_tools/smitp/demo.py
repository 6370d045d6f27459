"""`smitp demo`: three emulated meters on a simulated LV feeder, read by the concentrator.

Meter 3 hears only meter 2, so the concentrator reaches it through meter 2
acting as a repeater. Everything printed is what the meters answered.
"""

import os
import sys
import tempfile

from meter import registers as R
from meter.errors import SmitpError
from smitp import topology
from smitp import attacks
from smitp.concentrator import Concentrator, NoAnswer, aca_text, parse_aca
from smitp.secure import KeyRing
from smitp.network import neighbourhood
from smitp.values import decode_value, register_name, show_value

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
    """Try the meter directly, then through each meter already reached directly."""
    for route in [()] + [(r,) for r in reached]:
        try:
            conc.read(aca, [R.STATUS_WORD], route)
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
            "registers": {"0x%04X" % r: values[r].hex().upper() for r in regs},
            "values": {register_name(r): decode_value(r, values[r]) for r in regs},
            "shown": {register_name(r): show_value(r, values[r]) for r in regs},
            "firmware": decode_value(R.FIRMWARE_ID, values[R.FIRMWARE_ID]),
        })
    if progress:
        progress(len(meters), len(meters), "")
    return results


def run(progress=None, auth=False, **board_options):
    """The demo; with `auth` every meter gets its own random keys, is read
    authenticated and encrypted, then attacked (see smitp.attacks)."""
    topo = topology.load(topology.demo_feeder())
    meters = [bytes.fromhex(n["aca"]) for n in topo["nodes"] if n["role"] == "meter"]
    keys = {aca_text(a): (os.urandom(16), os.urandom(16)) for a in meters} if auth else None
    keyring = KeyRing.from_dict({a: {"k1": k1.hex(), "k2": k2.hex()} for a, (k1, k2) in keys.items()}) if auth else None
    report = {}
    with tempfile.TemporaryDirectory(prefix="smitp-demo-") as workdir:
        net, port = neighbourhood(topo, workdir, boards=True, keys=keys, **board_options)
        try:
            wait_until_ready(net)
            conc = Concentrator(port, keyring=keyring)
            report["meters"] = read_meters(conc, meters, progress, auth)
            if auth:
                report["security"] = try_attacks(conc, report["meters"])
            report["concentrator"] = dict(conc.stats)
        finally:
            net.close()
    report["medium"] = net.medium.stats
    return report


def try_attacks(conc, results):
    """Attack every reachable meter; each meter entry gets its verdicts, and
    proves it still serves with one more authenticated read."""
    per_meter = {}
    for m in results:
        if m.get("error"):
            continue
        aca = parse_aca(m["aca"])
        route = tuple(parse_aca(r) for r in m["route"][:-1])
        verdicts, details = attacks.attack(conc, aca, route)
        after = conc.read(aca, [R.LMON], route, auth=True)
        m["security"] = verdicts
        m["security_detail"] = details
        m["lmon_after_attacks"] = int.from_bytes(after[R.LMON], "big")
        per_meter[m["aca"]] = verdicts
    return attacks.summary(per_meter)


def print_table(report, out=sys.stdout):
    for m in report["meters"]:
        if m.get("error"):
            print("meter %s: %s" % (m["aca"], m["error"]), file=out)
            continue
        print("meter %s  route %s" % (m["aca"], " -> ".join(["concentrator"] + m["route"])), file=out)
        for reg, raw in m["registers"].items():
            name = register_name(int(reg, 16))
            print("  %s  %-32s %s" % (reg, name, m["shown"][name]), file=out)
        for name, verdict in m.get("security", {}).items():
            print("  attack %-20s %-9s %s" % (name, verdict, m["security_detail"][name]), file=out)
    c = report["concentrator"]
    print("%d requests, %d retries, %d timeouts" % (c["requests"], c["retries"], c["timeouts"]), file=out)
