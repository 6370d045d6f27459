"""`smitp dlms get|set|action|objects`: a COSEM object's attribute read or written, its method
invoked, or the meter's object list, over the DLMS/COSEM profile (convergence layer on DSAP 4,
xDLMS, suite 0 with --auth hls), on the emulated demo feeder or through a real ST7580 modem
(--port).

Key file (--keys): {"<ACA>": {"ek": "<32 hex>", "ak": "<32 hex>", "lls": "<secret>", "ic": N}};
ek/ak for --auth hls, lls for --auth lls; "ic" is the client's next invocation counter, written
back after a run against a real meter (an emulated feeder starts afresh each run).
"""

import contextlib
import json
import tempfile

from smitp.errors import UsageError

ACTIONS = ("get", "set", "action", "objects", "broadcast")
CLIENT_TITLE = b"SMITPDCU"  # the concentrator's system title (project choice)


def parse_obis(text):
    parts = text.replace("-", ".").replace(":", ".").replace("*", ".").split(".")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError("%r is not an OBIS code A.B.C.D.E.F" % text) from None
    if len(values) != 6 or not all(0 <= v <= 255 for v in values):
        raise ValueError("%r is not an OBIS code: six numbers 0..255, A.B.C.D.E.F" % text)
    return bytes(values)


def obis_text(obis):
    return ".".join(str(b) for b in obis)


def load_keys(path):
    """The key file -> {ACA text: entry}; ValueError naming what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ValueError("%s: %s" % (path, e.strerror)) from None
    except ValueError:
        raise ValueError("%s is not a JSON key file" % path) from None
    if not isinstance(data, dict):
        raise ValueError("%s: an object of meters expected" % path)
    out = {}
    for aca, e in data.items():
        if not isinstance(e, dict):
            raise ValueError("%s: the entry of %s is not an object" % (path, aca))
        for k in ("ek", "ak", "bk"):
            if k in e:
                try:
                    if len(bytes.fromhex(e[k])) != 16:
                        raise ValueError
                except (TypeError, ValueError):
                    raise ValueError("%s: %s of %s is not 16 bytes in hex" % (path, k, aca)) from None
        if "lls" in e and (not isinstance(e["lls"], str) or not 1 <= len(e["lls"].encode()) <= 16):
            raise ValueError("%s: lls of %s is not a text of 1 to 16 bytes" % (path, aca))
        for k in ("ic", "bic"):
            if k in e and (not isinstance(e[k], int) or not 0 <= e[k] < 1 << 32):
                raise ValueError("%s: %s of %s is not 0..2^32-1" % (path, k, aca))
        out[aca.upper()] = e
    return out


def add_arguments(sp, aca_type, via_type, device_type, arg):
    sp.add_argument("action", choices=ACTIONS,
                    help="get: read an attribute; set: write one (--data or --time); action: invoke a method "
                         "(--method, --data); objects: the object list; broadcast: set (--time) or shift (--shift) "
                         "the clock of every meter that hears the concentrator (or the last repeater of --via), "
                         "then read --meter's")
    sp.add_argument("--meter", required=True, type=aca_type, help="the meter's ACA, 12 hex digits")
    sp.add_argument("--via", type=via_type, help="repeater ACAs, comma separated, nearest the concentrator first")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--emulated", action="store_true", help="the emulated demo feeder (the default)")
    where.add_argument("--port", type=device_type, help="serial port of a real ST7580 modem")
    sp.add_argument("--obis", type=arg(parse_obis), help="the object's OBIS code, A.B.C.D.E.F")
    sp.add_argument("--attr", type=arg(_attr), help="attribute index, 1..127 (get, set)")
    sp.add_argument("--method", type=arg(_attr), help="method index, 1..127 (action)")
    sp.add_argument("--data", type=arg(_data), help="the value (set) or the parameters (action): A-XDR Data in hex")
    sp.add_argument("--time", type=arg(_time), help="set, broadcast: a date-time value, unix s or ISO 8601 (UTC unless "
                                                    "it says)")
    sp.add_argument("--shift", type=arg(_shift), help="broadcast: Clock shift_time, -900..900 s")
    sp.add_argument("--class", dest="cls", type=arg(_class_id),
                    help="interface class id (default: the meter's, for the objects it is known to have)")
    sp.add_argument("--auth", choices=("none", "lls", "hls"), default="none",
                    help="none (public client), lls (password) or hls (HLS-GMAC, suite 0 ciphering)")
    sp.add_argument("--keys", type=arg(_key_file), help='key file: {"<ACA>": {"ek": "<hex>", "ak": "<hex>", '
                                                        '"lls": "<secret>"}}')


def _attr(text):
    v = int(text, 0)
    if not 1 <= v <= 127:
        raise ValueError("%s is outside 1..127" % text)
    return v


def _data(text):
    from smitp.dlms.client import decode_data

    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("%r is not hexadecimal" % text) from None
    _, end = decode_data(raw)
    if end != len(raw):
        raise ValueError("%r holds more than one A-XDR Data" % text)
    return raw


def _time(text):
    from smitp.values import parse_time

    return parse_time(text)


def _shift(text):
    v = int(text, 0)
    if not -900 <= v <= 900:
        raise ValueError("%s is outside -900..900" % text)
    return v


def _class_id(text):
    v = int(text, 0)
    if not 0 <= v <= 0xFFFF:
        raise ValueError("%s is outside 0..65535" % text)
    return v


def _key_file(text):
    load_keys(text)
    return text


def class_of(obis):
    """The interface class of an object the firmware serves (meter/dlms/cosem.py), None if unknown."""
    from meter.dlms.cosem import O_CLASS, O_OBIS, OBJECTS

    for o in OBJECTS:
        if o[O_OBIS] == obis:
            return o[O_CLASS]
    return None


def _session_options(args):
    """(auth options for Session, key entry or None); UsageError when keys are missing."""
    keys = load_keys(args.keys) if args.keys else {}
    entry = keys.get(args.meter)
    if args.auth == "none":
        return {}, entry
    if entry is None:
        raise UsageError("--keys FILE with an entry for meter %s is needed for --auth %s" % (args.meter, args.auth))
    if args.auth == "lls":
        if "lls" not in entry:
            raise UsageError("--keys: the entry of %s has no lls secret" % args.meter)
        return {"auth": "lls", "secret": entry["lls"].encode()}, entry
    if "ek" not in entry or "ak" not in entry:
        raise UsageError("--keys: the entry of %s needs ek and ak for --auth hls" % args.meter)
    return {"auth": "hls", "ek": bytes.fromhex(entry["ek"]), "ak": bytes.fromhex(entry["ak"]),
            "title": CLIENT_TITLE, "ic": entry.get("ic", 0)}, entry


@contextlib.contextmanager
def _concentrator(args, entry):
    """A concentrator on a real modem, or on the emulated demo feeder whose meter gets the
    suite 0 keys and LLS secret of its key entry provisioned before it boots."""
    from smitp.concentrator import Concentrator

    if args.port:
        from smitp.serial_modem import ModemPort, SerialModem

        modem = SerialModem(args.port)
        modem.open()
        try:
            modem.reset()
            yield Concentrator(ModemPort(modem))
        finally:
            modem.close()
        return
    from smitp import demo, topology
    from smitp.network import neighbourhood

    feeder = topology.demo_feeder()
    names = {n["aca"]: n["name"] for n in feeder["nodes"] if "aca" in n}
    for aca in [args.meter] + (args.via.split(",") if args.via else []):
        if aca not in names:
            raise UsageError("%s is not on the emulated demo feeder (%s); give --port for a real modem"
                             % (aca, ", ".join(names)))
    with tempfile.TemporaryDirectory(prefix="smitp-dlms-") as workdir:
        if entry is not None:
            provision_image("%s/%s.flash" % (workdir, names[args.meter]), entry)
        net, port = neighbourhood(feeder, workdir, boards=True)
        try:
            demo.wait_until_ready(net)
            yield Concentrator(port)
        finally:
            net.close()


def provision_image(image, entry):
    """The DLMS keys of a key entry into an emulated board's flash image (the firmware's own
    writer, meter.dlms.server.provision, run by MicroPython on the mounted image)."""
    from smitp import provision as P

    script = P.mount_script(image) + _WRITE_DLMS
    ek = entry.get("ek", "00" * 16)
    ak = entry.get("ak", "00" * 16)
    lls = entry.get("lls", "").encode().hex() or "-"
    bk = entry.get("bk", "-")  # the broadcast key (meter/dlms/broadcast.py), if any
    P._run("provisioning %s" % image, [P.micropython_path(), "-c", script], "%s %s %s %s\n" % (ek, ak, lls, bk), 30)


_WRITE_DLMS = """
EK, AK, LLS, BK = sys.stdin.readline().split()
from meter.dlms.server import provision
from meter.dlms import broadcast
from meter.storage import Store
store = Store("/flash")
ok = provision(store, bytes.fromhex(EK), bytes.fromhex(AK), None if LLS == "-" else bytes.fromhex(LLS))
ok = (BK == "-" or broadcast.provision(store, bytes.fromhex(BK))) and ok
print("provisioned" if ok else "flash refused the records")
"""


def _check(args):
    """The options each action needs; UsageError naming the missing one."""
    need = {"get": ("obis", "attr"), "set": ("obis", "attr"), "action": ("obis", "method"), "objects": (),
            "broadcast": ("keys",)}
    for name in need[args.action]:
        if getattr(args, name) is None:
            raise UsageError("--%s is needed for %s" % (name, args.action))
    if args.action == "broadcast":
        if (args.time is None) == (args.shift is None):
            raise UsageError("broadcast takes --time TIME or --shift SECONDS (one of them)")
        for name in ("obis", "attr", "method", "data"):
            if getattr(args, name) is not None:
                raise UsageError("--%s does not go with broadcast (it goes to every meter that hears the "
                                 "concentrator or the repeaters of --via, the clock only)" % name)
        return
    if args.shift is not None:
        raise UsageError("--shift goes with broadcast")
    if args.action == "set" and (args.data is None) == (args.time is None):
        raise UsageError("set takes the value as --data HEX or as --time TIME (one of them)")
    if args.action != "set" and args.time is not None:
        raise UsageError("--time goes with set")
    if args.action in ("get", "objects") and args.data is not None:
        raise UsageError("--data goes with set and action")


def run(args):
    """The `smitp dlms` command; returns the exit code."""
    from smitp.aca import parse_aca
    from smitp.dlms.cl import ClClient, plc_link
    from smitp.dlms.client import DlmsError, Session, date_time, date_time_data, decode_data

    _check(args)
    if args.action == "broadcast":
        return _broadcast(args)
    if args.action == "objects":
        args.obis, args.attr, cls = bytes((0, 0, 40, 0, 0, 255)), 2, 15
    else:
        cls = args.cls if args.cls is not None else class_of(args.obis)
    if cls is None:
        raise UsageError("--class is needed: %s is not an object this firmware is known to serve" % obis_text(args.obis))
    options, entry = _session_options(args)
    route = tuple(parse_aca(a) for a in args.via.split(",")) if args.via else ()
    report = {"meter": args.meter, "obis": obis_text(args.obis), "class": cls, "auth": args.auth}
    with _concentrator(args, entry) as conc:
        cl = ClClient(plc_link(conc, parse_aca(args.meter), route))
        s = Session(cl.exchange, **options)
        s.associate()
        try:
            if args.action in ("get", "objects"):
                raw = s.get(cls, args.obis, args.attr)
            elif args.action == "set":
                raw = None
                s.set(cls, args.obis, args.attr, args.data if args.data is not None else date_time_data(args.time))
            else:
                raw = s.action(cls, args.obis, args.method, args.data)
        finally:
            s.release()
            if args.port and args.keys and options.get("auth") == "hls":
                _save_ic(args.keys, args.meter, s.ic)
    if args.action == "objects":
        value, _ = decode_data(raw)
        if not isinstance(value, list):
            raise DlmsError("the object list is not an array")
        report["objects"] = [{"class": o[0], "version": o[1], "obis": obis_text(o[2])} for o in value]
        del report["obis"], report["class"]
        text = "\n".join("%-18s class %3d v%d" % (o["obis"], o["class"], o["version"]) for o in report["objects"])
    elif raw is None:
        report["attr" if args.action == "set" else "method"] = args.attr if args.action == "set" else args.method
        report["result"] = "success"
        text = "%s %s: %s done" % (args.meter, report["obis"], args.action)
    else:
        value, _ = decode_data(raw)
        t = date_time(value)
        if args.action == "get":
            report["attr"] = args.attr
        else:
            report["method"] = args.method
        report["data"] = raw.hex()
        report["value"] = t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else _jsonable(value)
        what = "attribute %d" % args.attr if args.action == "get" else "method %d returned" % args.method
        text = "%s %s class %d %s: %s" % (args.meter, report["obis"], cls, what, report["value"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text)
    return 0


def _broadcast(args):
    """`smitp dlms broadcast`: the clock of every meter that hears the concentrator (or, with --via,
    the last of its repeaters, each repeating it), set or shifted by a broadcast under the key
    entry's broadcast key (smitp.dlms.broadcast), then --meter's clock read back by a public GET
    along the same route."""
    from smitp.aca import parse_aca
    from smitp.dlms import broadcast as B
    from smitp.dlms.cl import ClClient, plc_link
    from smitp.dlms.client import Session, date_time, decode_data

    entry = load_keys(args.keys).get(args.meter)
    if entry is None or "bk" not in entry or "ak" not in entry:
        raise UsageError("--keys: the entry of %s needs bk (the broadcast key) and ak for broadcast" % args.meter)
    ic = entry.get("bic", 0) + 1
    if ic > 0xFFFFFFFF:
        raise UsageError("--keys: the broadcast counter of %s is used up" % args.meter)
    plain = B.set_clock(args.time) if args.time is not None else B.shift_time(args.shift)
    apdu = B.cipher(plain, ic, CLIENT_TITLE, bytes.fromhex(entry["bk"]), bytes.fromhex(entry["ak"]))
    route = tuple(parse_aca(a) for a in args.via.split(",")) if args.via else ()
    with _concentrator(args, entry) as conc:
        B.send(conc.port, apdu, xid=ic, entries=B.entries(conc, route))
        if args.port:
            _save_ic(args.keys, args.meter, ic, "bic")
        for _ in range(len(route) + 1):  # nothing answers; the repetitions, and the meters take it meanwhile
            if conc.port.recv(1.0) is None:
                break
        s = Session(ClClient(plc_link(conc, parse_aca(args.meter), route)).exchange)
        s.associate()
        try:
            raw = s.get(8, bytes((0, 0, 1, 0, 0, 255)), 2)
        finally:
            s.release()
    t = date_time(decode_data(raw)[0])
    report = {"meter": args.meter, "broadcast": "set clock" if args.time is not None else "shift_time",
              "via": args.via.split(",") if args.via else [], "ic": ic,
              "clock": t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else raw.hex()}
    if args.shift is not None:
        report["shift"] = args.shift
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("broadcast %s (counter %d); %s clock now %s" % (report["broadcast"], ic, args.meter, report["clock"]))
    return 0


def _jsonable(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _save_ic(path, aca, ic, name="ic"):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for k in data:
        if k.upper() == aca:
            data[k][name] = ic
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
