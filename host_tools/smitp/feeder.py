"""`smitp feeder`: emulated meters on a simulated feeder that stay up in the background.

The feeder lives in a state directory (default $XDG_DATA_HOME/smitp/feeder, else
~/.local/share/smitp/feeder):

    topology.json        the feeder: the demo section (up to 3 meters) or a seeded LV feeder
    keys.json            the meters' keys (a --keys file), made at the first `up`, provisioned
                         into each meter's flash image before its first boot
    routes.json          the concentrator's routing table: {ACA: [repeater ACAs]} (`smitp discover`)
    <meter>.flash        each meter's flash image (littlefs2): everything the meter keeps
    <meter>.log          each meter's console; feeder.log the feeder process's
    feeder.pid           the feeder process's id, feeder.lock the lock it holds while it runs
    control.sock         its control socket; optical-<ACA>: a link to each meter's optical pty
    modem.port           the TCP port of the last run's modem (tried first at the next `up`)

The process itself is smitp.feeder_daemon; this module starts it, asks it and stops it, and
finds the running feeder for the commands that talk to meters.
"""

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from meter.errors import SmitpError

MAX_METERS = 16  # each meter is a MicroPython process
UP_TIMEOUT_S = 90.0
CLIENT_WAIT_S = 60  # how long a command waits for the feeder's modem port while another uses it
DOWN_TIMEOUT_S = 30.0


class FeederError(SmitpError):
    """No feeder runs, one already runs, or it failed (exit 1)."""


def default_state_dir():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "smitp" / "feeder"


class State:
    """The files of one state directory (made if missing)."""

    def __init__(self, path=None, create=True):
        self.dir = Path(path) if path else default_state_dir()
        if create:  # a new one is its user's only: it holds keys and a control socket
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir = self.dir.resolve()
        d = self.dir
        self.topology, self.keys, self.routes = d / "topology.json", d / "keys.json", d / "routes.json"
        self.pid, self.lock, self.log = d / "feeder.pid", d / "feeder.lock", d / "feeder.log"
        self.control, self.port = d / "control.sock", d / "modem.port"

    def optical_link(self, aca):
        return self.dir / ("optical-%s" % aca)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def one_line(e):
    return " ".join(str(e).split())


# ---- the state files
def feeder_topology(meters):
    """The demo section's first `meters` meters (m3 hears only m2), or a seeded LV feeder of more."""
    from smitp import topology

    if meters <= 3:
        topo = topology.demo_feeder()
        keep = {"dcu"} | {"m%d" % i for i in range(1, meters + 1)}
        return topology.load({"nodes": [n for n in topo["nodes"] if n["name"] in keep],
                              "links": [lk for lk in topo["links"] if lk["a"] in keep and lk["b"] in keep]})
    return topology.lv_feeder(meters, seed=0)


def create(state, meters=None):
    """A new feeder's topology and keys (the keys provisioned into new flash images); an existing
    one is kept (`meters`, if given, must match it)."""
    from smitp.provision import provision_image

    if state.topology.exists():
        have = len([n for n in load_topology(state)["nodes"] if n["role"] == "meter"])
        if meters is not None and meters != have:
            raise FeederError("%s holds a feeder of %d meters, not %d (another --state, or no --meters)"
                              % (state.dir, have, meters))
        return
    topo = feeder_topology(3 if meters is None else meters)
    keys = {}
    for node in topo["nodes"]:
        if node["role"] == "meter":
            k1, k2 = os.urandom(16), os.urandom(16)
            provision_image(state.dir / ("%s.flash" % node["name"]), k1, k2)
            keys[node["aca"]] = {"k1": k1.hex(), "k2": k2.hex()}
    _write_json(state.keys, keys, private=True)
    _write_json(state.topology, topo)  # last: a feeder exists once its topology does


def load_topology(state):
    from smitp import topology

    return topology.load(json.loads(state.topology.read_text()))


def save_key(state, aca, k1, k2):
    keys = json.loads(state.keys.read_text()) if state.keys.exists() else {}
    keys[aca] = {"k1": k1, "k2": k2}
    _write_json(state.keys, keys, private=True)


def load_routes(state):
    try:
        return json.loads(state.routes.read_text())
    except (OSError, ValueError):
        return {}


def save_routes(state, routes):
    """The routing table: {ACA: [repeater ACAs, nearest the concentrator first]}."""
    _write_json(state.routes, routes)


def last_port(state):
    try:
        return int(state.port.read_text())
    except (OSError, ValueError):
        return 0


def save_port(state, port):
    state.port.write_text("%d\n" % port)


def read_pid(state):
    try:
        return int(state.pid.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path, data, private=False):
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ---- is one running?
def running(state):
    """True while a feeder process holds the state directory's lock."""
    if not state.lock.exists():
        return False
    with open(state.lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _stale_pid(state):
    """A pid file left by a feeder that did not stop cleanly: removed; returns its pid (or None)."""
    pid = read_pid(state)
    if state.pid.exists():
        state.pid.unlink()
    return pid


def how_to_start(state):
    option = "" if state.dir == default_state_dir().resolve() else " --state %s" % state.dir
    return "no feeder runs in %s: start one with `smitp feeder up%s` (or give --port)" % (state.dir, option)


def request(state, op, timeout_s=120.0, **fields):
    """One control request to the running feeder; its answer's payload. FeederError when none runs."""
    if not running(state):
        raise FeederError(how_to_start(state))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(state.control))
        s.sendall((json.dumps(dict(fields, op=op)) + "\n").encode())
        answer = json.loads(s.makefile("rb").readline() or b"null")
    except (OSError, ValueError) as e:
        raise FeederError("the feeder in %s does not answer (%s): see %s" % (state.dir, one_line(e), state.log))
    finally:
        s.close()
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise FeederError("feeder: %s" % (answer.get("error") if isinstance(answer, dict) else "no answer"))
    return answer


def status(state):
    return request(state, "status", timeout_s=30.0)["status"]


def meter_entry(state, aca):
    """The running feeder's entry of meter `aca` (FeederError when none runs or it is not there)."""
    st = status(state)
    for m in st["meters"]:
        if m["aca"] == aca:
            return m
    raise FeederError("meter %s is not on the feeder in %s (%s)"
                      % (aca, state.dir, ", ".join(m["aca"] for m in st["meters"])))


# ---- up / down
def up(state, meters=None, timeout_s=UP_TIMEOUT_S):
    """Start the feeder process in the background; returns its status once its meters are ready."""
    if running(state):
        raise FeederError("a feeder already runs in %s (pid %s): `smitp feeder down` first"
                          % (state.dir, read_pid(state) or "?"))
    stale = _stale_pid(state)
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "smitp.feeder_daemon", "--state", str(state.dir), "--ready-fd", str(w), "--detach"]
    if meters is not None:
        cmd += ["--meters", str(meters)]
    with open(state.log, "ab") as log:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(w,),
                                 cwd=state.dir, start_new_session=True)
    os.close(w)
    child.wait()  # the detaching parent: it returns at once
    line = _read_line(r, timeout_s)
    if line is None:
        raise FeederError("the feeder did not start in %.0f s: see %s" % (timeout_s, state.log))
    if line.startswith("ready "):
        st = json.loads(line[6:])
        if stale:
            st["stale_pid_removed"] = stale
        return st
    if line.startswith("error "):
        raise FeederError(line[6:])
    raise FeederError("the feeder did not start: see %s" % state.log)


def _read_line(fd, timeout_s):
    """The first line the feeder process writes on the pipe, '' when it closed without one,
    None after timeout_s."""
    import select

    data = b""
    end = time.monotonic() + timeout_s
    try:
        while b"\n" not in data:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode(errors="replace").split("\n")[0]


def down(state, timeout_s=DOWN_TIMEOUT_S):
    """Stop the running feeder (its meters' flash images stay); returns its pid."""
    if not running(state):
        stale = _stale_pid(state)
        raise FeederError("no feeder runs in %s%s" % (state.dir, ": removed the stale pid file of process %d"
                                                      % stale if stale else ""))
    pid = read_pid(state)
    if pid is None:
        raise FeederError("a feeder holds %s but its pid file is gone: stop process holding %s by hand"
                          % (state.dir, state.lock))
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout_s
    while running(state):
        if time.monotonic() > end:
            raise FeederError("the feeder (pid %d) did not stop within %.0f s: see %s" % (pid, timeout_s, state.log))
        time.sleep(0.05)
    return pid


# ---- the commands
def add_state_option(sp):
    sp.add_argument("--state", metavar="DIR", help="the feeder's state directory (default %s)" % _shown_default())


def _shown_default():
    return "$XDG_DATA_HOME/smitp/feeder" if os.environ.get("XDG_DATA_HOME") else "~/.local/share/smitp/feeder"


def add_arguments(sp):
    """`smitp feeder up|status|down` (the caller added --json)."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    add_state_option(common)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    sub = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("up", parents=[common], help="start the feeder in the background (or resume it)")
    p.add_argument("--meters", type=_meters, metavar="N", help="meters of a new feeder (1..%d, default 3: the demo "
                                                  "section); a state directory keeps its own" % MAX_METERS)
    sub.add_parser("status", parents=[common], help="the meters (by ACA), their routes and the ports")
    sub.add_parser("down", parents=[common], help="stop the feeder (flash images, keys and routes stay)")


def _meters(text):
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not 1 <= n <= MAX_METERS:
        raise argparse.ArgumentTypeError("%d is outside 1..%d" % (n, MAX_METERS))
    return n


def run_command(args):
    """Run `smitp feeder ACTION`; returns (report, function printing it as text)."""
    state = State(args.state)
    if args.action == "up":
        st = up(state, args.meters)
        return st, _print_status
    if args.action == "status":
        return status(state), _print_status
    pid = down(state)
    return {"state": str(state.dir), "stopped": pid}, lambda rep: print(
        "feeder (pid %d) stopped; %s keeps its meters" % (pid, state.dir))


def _print_status(st):
    if st.get("stale_pid_removed"):
        print("(removed the stale pid file of process %d)" % st["stale_pid_removed"])
    print("feeder in %s, pid %d, up since %s" % (st["state"], st["pid"], st["since"]))
    print("modem (ST7580, RTS = T_REQ, DTR = RESETN): --port %s" % st["modem"])
    print("keys: %s" % st["keys"])
    for m in st["meters"]:
        route = m["route"]
        shown = "not discovered" if route is None else " -> ".join(["concentrator"] + route + [m["aca"]])
        print("meter %s (%s)%s  optical %s  route: %s" % (m["aca"], m["name"], "" if m["alive"] else " STOPPED",
                                                        m["optical"], shown))


# ---- what the other commands need of it
def modem_for(port, state_dir, meter=None):
    """(the modem's port, the routing table's route to `meter` as ACA bytes): --port as given, else
    the running feeder's modem (FeederError when none runs, or `meter` is not on it). The routing
    table is the state directory's, whichever the modem."""
    from smitp.aca import parse_aca

    state = State(state_dir, create=False)
    if not port:
        # a client waits its turn while another uses the port (pyserial's own wait is 3 s)
        port = "%s?timeout=%d" % (status(state)["modem"], CLIENT_WAIT_S)
        if meter is not None:
            meter_entry(state, meter)
    route = load_routes(state).get(meter) if meter is not None else None
    return port, tuple(parse_aca(a) for a in route or ())


def provision(state_dir, aca, k1, k2, lmon=None):
    """The running feeder's meter `aca` provisioned (its board stopped, keys written, started again);
    returns its flash image's path."""
    state = State(state_dir, create=False)
    meter_entry(state, aca)
    answer = request(state, "provision", aca=aca, k1=k1.hex(), k2=k2.hex(), lmon=lmon)
    return answer["result"]["provisioned"]


def open_modem(port):
    """A SerialModem on `port`, opened; a port that cannot be opened is the modem's failure (exit 1)."""
    import serial

    from smitp.serial_modem import ModemError, SerialModem

    modem = SerialModem(port)
    try:
        modem.open()
    except serial.SerialException as e:
        raise ModemError(0, -1, "%s: %s" % (port.split("?")[0], one_line(e))) from None
    return modem


def keys_file(state_dir):
    """The feeder's key file (it follows its meters' keys), if the state directory has one."""
    path = State(state_dir, create=False).keys
    return str(path) if path.exists() else None


def optical_port(state_dir, aca):
    """The optical pty of the running feeder's meter `aca` (its link in the state directory)."""
    return meter_entry(State(state_dir, create=False), aca)["optical"]


def run_discover(args, progress=None):
    """`smitp discover`: the whole procedure (un-silence, ADDRESS.REQ rounds, REQADDR level by level,
    registration) through the modem; the routes found replace the routing table."""
    from smitp.aca import aca_text
    from smitp.discovery import Discovery
    from smitp.serial_modem import ModemPort

    state = State(args.state, create=bool(args.port))
    port, _route = modem_for(args.port, args.state)
    modem = open_modem(port)
    try:
        modem.reset()
        mport = ModemPort(modem)
        t0 = mport.now()
        d = Discovery(mport, progress=progress)
        d.discover()
        registered = d.register_all()
        seconds = mport.now() - t0
    finally:
        modem.close()
    routes = {aca_text(a): [aca_text(r) for r in route] for a, route in d.routes.items()}
    if not routes:  # the table stays as it was
        raise FeederError("no meter answered the discovery (%.0f s)" % seconds)
    save_routes(state, routes)
    meters = [{"aca": aca_text(m.aca), "level": m.level, "route": routes[aca_text(m.aca)],
               "registered": bool(m.registered), "sca": None if m.sca is None else bytes(m.sca).hex().upper()}
              for m in d.by_level()]
    report = {"routes_file": str(state.routes), "meters": meters, "registered": registered,
              "seconds": round(seconds, 1)}

    def text(rep):
        for m in meters:
            print("meter %s  level %d  route %s%s" % (m["aca"], m["level"], " -> ".join(
                ["concentrator"] + m["route"] + [m["aca"]]), "" if m["registered"] else "  (not registered)"))
        print("%d meters found, %d registered in %.1f s; routes in %s" % (len(meters), registered, rep["seconds"],
                                                                         state.routes))

    return report, text
