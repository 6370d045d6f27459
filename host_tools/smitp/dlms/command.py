"""`smitp dlms get`: read an attribute of a COSEM object of a meter over the DLMS/COSEM profile
(convergence layer on DSAP 4, xDLMS, suite 0 with --auth hls), on the emulated demo feeder or
through a real ST7580 modem (--port).

Key file (--keys): {"<ACA>": {"ek": "<32 hex>", "ak": "<32 hex>", "lls": "<secret>", "ic": N}};
ek/ak for --auth hls, lls for --auth lls; "ic" is the client's next invocation counter, written
back after a run against a real meter (an emulated feeder starts afresh each run).
"""

import contextlib
import json
import tempfile

from smitp.errors import UsageError

ACTIONS = ("get",)
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
        for k in ("ek", "ak"):
            if k in e:
                try:
                    if len(bytes.fromhex(e[k])) != 16:
                        raise ValueError
                except (TypeError, ValueError):
                    raise ValueError("%s: %s of %s is not 16 bytes in hex" % (path, k, aca)) from None
        if "lls" in e and (not isinstance(e["lls"], str) or not 1 <= len(e["lls"].encode()) <= 16):
            raise ValueError("%s: lls of %s is not a text of 1 to 16 bytes" % (path, aca))
        if "ic" in e and (not isinstance(e["ic"], int) or not 0 <= e["ic"] < 1 << 32):
            raise ValueError("%s: ic of %s is not 0..2^32-1" % (path, aca))
        out[aca.upper()] = e
    return out


def add_arguments(sp, aca_type, via_type, device_type, arg):
    sp.add_argument("action", choices=ACTIONS, help="get: read one attribute")
    sp.add_argument("--meter", required=True, type=aca_type, help="the meter's ACA, 12 hex digits")
    sp.add_argument("--via", type=via_type, help="repeater ACAs, comma separated, nearest the concentrator first")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--emulated", action="store_true", help="the emulated demo feeder (the default)")
    where.add_argument("--port", type=device_type, help="serial port of a real ST7580 modem")
    sp.add_argument("--obis", required=True, type=arg(parse_obis), help="the object's OBIS code, A.B.C.D.E.F")
    sp.add_argument("--attr", required=True, type=arg(_attr), help="attribute index, 1..127")
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

    script = _WRITE_DLMS % {"board_dir": str(P.BOARD_MAIN.parent), "image": str(image),
                            "firmware": str(P.BOARD_MAIN.parents[2] / "firmware")}
    ek = entry.get("ek", "00" * 16)
    ak = entry.get("ak", "00" * 16)
    lls = entry.get("lls", "").encode().hex() or "-"
    P._run("provisioning %s" % image, [P.micropython_path(), "-c", script], "%s %s %s\n" % (ek, ak, lls), 30)


_WRITE_DLMS = """
import sys, vfs
sys.path.append(%(board_dir)r)
sys.path.append(%(firmware)r)
from board import FileFlash
flash = FileFlash(%(image)r)
try:
    fs = vfs.VfsLfs2(flash)
except OSError:
    vfs.VfsLfs2.mkfs(flash)
    fs = vfs.VfsLfs2(flash)
vfs.mount(fs, "/flash")
EK, AK, LLS = sys.stdin.readline().split()
from meter.dlms.server import provision
from meter.storage import Store
ok = provision(Store("/flash"), bytes.fromhex(EK), bytes.fromhex(AK), None if LLS == "-" else bytes.fromhex(LLS))
print("provisioned" if ok else "flash refused the records")
"""


def run(args):
    """The `smitp dlms` command; returns the exit code."""
    from smitp.aca import parse_aca
    from smitp.dlms.cl import ClClient, plc_link
    from smitp.dlms.client import Session, date_time, decode_data

    cls = args.cls if args.cls is not None else class_of(args.obis)
    if cls is None:
        raise UsageError("--class is needed: %s is not an object this firmware is known to serve" % obis_text(args.obis))
    options, entry = _session_options(args)
    route = tuple(parse_aca(a) for a in args.via.split(",")) if args.via else ()
    with _concentrator(args, entry) as conc:
        cl = ClClient(plc_link(conc, parse_aca(args.meter), route))
        s = Session(cl.exchange, **options)
        s.associate()
        try:
            raw = s.get(cls, args.obis, args.attr)
        finally:
            s.release()
            if args.port and args.keys and options.get("auth") == "hls":
                _save_ic(args.keys, args.meter, s.ic)
    value, _ = decode_data(raw)
    t = date_time(value)
    report = {"meter": args.meter, "obis": obis_text(args.obis), "class": cls, "attr": args.attr,
              "auth": args.auth, "data": raw.hex(),
              "value": t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else _jsonable(value)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("%s %s class %d attribute %d: %s" % (args.meter, report["obis"], cls, args.attr, report["value"]))
    return 0


def _jsonable(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _save_ic(path, aca, ic):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for k in data:
        if k.upper() == aca:
            data[k]["ic"] = ic
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
