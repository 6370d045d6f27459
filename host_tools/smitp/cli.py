"""The `smitp` command: concentrator, decoder and tools around the meter firmware.

Every option is checked by the parser, before anything boots or opens a port.
Exit codes: 0 done, 1 what we talked to failed (no answer, NACK, a board or a
tool), 2 bad input, 130 interrupted. An error is one line on stderr, and with
--json also {"error": "..."} on stdout.
"""

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
from typing import Any

from meter.errors import SmitpError
from smitp.errors import PeerError, UsageError

U32 = (1 << 32) - 1  # record numbers, seeds
U64 = (1 << 64) - 1  # MON, LMON


def progress_printer(label):
    """The callback progress(done, total, what) of the phase `label` of the
    running command: a bar on a terminal, heartbeat lines otherwise (smitp.progress)."""
    from smitp import progress

    return progress.current().reporter(label)


def _emit(args, report, text_fn):
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        text_fn(report)


# ---- option checks: argparse types, run while the command line is parsed
def _arg(fn):
    """An argparse type from fn(text) -> value: its ValueError or project error
    becomes the usage error, which argparse prefixes with the option's name."""
    @functools.wraps(fn)
    def check(text):
        try:
            return fn(text)
        except (SmitpError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return check


def _in_range(kind, lo, hi):
    @_arg
    def check(text):
        from smitp.values import parse_int, quoted

        try:
            value = parse_int(text) if kind is int else float(text)
        except ValueError:
            raise ValueError("%s is not a number" % quoted(text)) from None
        if not lo <= value <= hi:  # NaN fails too
            raise ValueError("%s is outside %s..%s" % (quoted(text), lo, hi))
        return value

    return check


def _number(p, flag, lo, hi, help_text, kind: type = int, **kw):
    """An option taking a number in lo..hi; --help states the range."""
    p.add_argument(flag, type=_in_range(kind, lo, hi), help="%s (%s..%s)" % (help_text, lo, hi), **kw)


@_arg
def _aca(text):
    """An ACA, 12 hex digits -> the same, upper case and without separators."""
    from smitp.aca import aca_text, parse_aca

    return aca_text(parse_aca(text))


@_arg
def _via(text):
    from meter.link import mac

    hops = [_aca(a) for a in text.split(",")]
    if len(hops) > mac.MAX_REPEATERS:
        raise ValueError("at most %d repeaters, not %d" % (mac.MAX_REPEATERS, len(hops)))
    return ",".join(hops)


@_arg
def _register(text):
    from smitp.values import parse_register

    parse_register(text)
    return text


@_arg
def _table(text):
    from meter.model import registers as R
    from smitp.values import parse_register

    table = parse_register(text)
    row = R.BY_ID[table]  # parse_register() takes registers of the table only
    if row[R.R_ENC] != R.ENC_TABLE:
        raise ValueError("0x%04X (%s) is not a table" % (table, row[R.R_NAME]))
    return text


@_arg
def _display_list(text):
    from smitp.display import list_value
    from smitp.values import parse_register

    list_value([parse_register(r) for r in text.split(",")])
    return text


@_arg
def _message(text):
    from smitp.display import message_value

    message_value(text)
    return text


@_arg
def _version(text):
    from meter import fwimage

    fwimage.version_number(text)  # MAJOR.MINOR.PATCH, 0..255 each
    return text


@_arg
def _when(text):
    """Seconds since 1970 from an integer or an ISO 8601 date-time (UTC unless it says)."""
    from smitp.values import parse_time

    return parse_time(text)


def _hex(n_min, n_max, secret=False):
    @_arg
    def check(text):
        from smitp.values import quoted

        shown = "the key" if secret else quoted(text)  # a key is never printed
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("%s is not hexadecimal" % shown) from None
        if not n_min <= len(raw) <= n_max:
            size = "%d" % n_min if n_min == n_max else "%d..%d" % (n_min, n_max)
            raise ValueError("%s is %d bytes, not %s" % (shown, len(raw), size))
        return text

    return check


@_arg
def _device_address(text):
    from meter.optical import iec62056 as I

    if len(text) > I.ADDRESS_LEN or not all(c.isascii() and (c.isalnum() or c == " ") for c in text):
        raise ValueError("an IEC 62056-21 device address is up to %d letters, digits or spaces" % I.ADDRESS_LEN)
    return text


def _named(text):
    """A path or a port: an empty one would quietly mean "none"."""
    if not text:
        raise ValueError("an empty name")
    return text


@_arg
def _key_file(text):
    from smitp.secure import KeyRing

    KeyRing.load(_named(text))
    return text


@_arg
def _device(text):
    """A serial port: a device that exists (names of mpremote's, such as 'auto' or 'a0', pass,
    and URLs of pyserial's such as rfc2217://localhost:4000, the persistent feeder's modem)."""
    import stat

    if "://" in _named(text):
        return text
    if "/" not in _named(text) and not os.path.exists(text):
        return text
    try:
        mode = os.stat(text).st_mode
    except OSError as e:
        raise ValueError("%s: %s" % (text, e.strerror)) from None
    if not stat.S_ISCHR(mode):
        raise ValueError("%s is not a serial device" % text)
    return text


def _try_write(folder):
    """OSError unless a file can be made in folder (permissions, read-only file systems)."""
    tempfile.TemporaryFile(dir=folder).close()


@_arg
def _output_file(text):
    """A file the command writes: a new one in a folder that exists, or a regular file it may replace."""
    try:
        if os.path.isdir(_named(text)) or (os.path.exists(text) and not os.path.isfile(text)):
            raise ValueError("%s is not a regular file" % text)
        if os.path.exists(text):
            open(text, "ab").close()  # appends nothing, truncates nothing
        else:
            _try_write(os.path.dirname(os.path.abspath(text)))
    except OSError as e:
        raise ValueError("%s: %s" % (text, e.strerror)) from None
    return text


@_arg
def _output_dir(text):
    """A folder the command writes into: it exists, or it can be made."""
    if os.path.exists(_named(text)) and not os.path.isdir(text):
        raise ValueError("%s is not a folder" % text)
    place = os.path.abspath(text)
    while not os.path.exists(place):
        place = os.path.dirname(place)
    try:
        if not os.path.isdir(place):
            raise ValueError("%s is not a folder" % place)
        _try_write(place)
    except OSError as e:
        raise ValueError("%s: %s" % (place, e.strerror)) from None
    return text


def _scheduler(text):
    from smitp.cluster import check_address

    return check_address(text)


@_arg
def _image_dir(text):
    from smitp.image import check_out_dir

    check_out_dir(_output_dir(text))
    return text


# ---- demo
def cmd_demo(args):
    from smitp import demo

    from smitp import progress

    if args.download:
        from smitp import download

        rep = download.demo(progress=progress_printer("download"))
        _emit(args, rep, download.print_demo)
        return 0 if len(rep["activated"]) == len(rep["firmware_before"]) else 1
    mcu = ()
    if args.mcu:
        from smitp import mcu_board

        mcu_board.image_path()  # built? (a one-line error saying how, else)
        mcu = demo.MCU_METERS
    progress.current().set_phase("starting the emulated boards")
    report = demo.run(progress=progress_printer("meters"), auth=args.auth, mcu=mcu, modem=args.modem)
    if not args.json:
        demo.print_table(report)
        return 0
    for m in report["meters"]:
        m.pop("shown", None)
    print(json.dumps(report, indent=2))
    return 0


# ---- read / write
def _load_keys(path):
    """The key file (checked when the options were parsed) -> (raw keys by ACA, KeyRing)."""
    from smitp.aca import aca_text, parse_aca
    from smitp.secure import KeyRing

    if not path:
        return None, None
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    ring = KeyRing.from_dict(data)
    raw = {aca_text(parse_aca(a)): (bytes.fromhex(e["k1"]), bytes.fromhex(e["k2"])) for a, e in data.items()}
    return raw, ring


def _check_entry(raw_keys, aca, option="--keys"):
    """An authenticated request to meter `aca` (None: known only later) needs its keys."""
    if raw_keys is None:
        raise ValueError("%s FILE is needed: the request is authenticated" % option)
    if aca is not None and aca not in raw_keys:
        raise ValueError("%s: the key file has no entry for meter %s" % (option, aca))


def _check_on_feeder(args):
    """Without --port the meters are the emulated demo feeder's."""
    from smitp import topology

    feeder = [n["aca"] for n in topology.demo_feeder()["nodes"] if "aca" in n]
    named = [("--meter", args.meter)] if args.meter else []  # (download --section: the key file's meters)
    for option, aca in named + [("--via", a) for a in (args.via or "").split(",") if a]:
        if aca not in feeder:
            raise ValueError("%s: %s is not on the emulated demo feeder (%s); give --port for a real modem"
                             % (option, aca, ", ".join(feeder)))


@contextlib.contextmanager
def _concentrator(args):
    """A concentrator on a real modem (--port), on the running feeder's modem (the default; smitp.feeder)
    or on a throwaway emulated demo feeder (--emulated; its meters get the keys of --keys provisioned
    first). Without --emulated the route comes from the routing table unless --via gives one."""
    from smitp.concentrator import Concentrator

    raw_keys, ring = _load_keys(args.keys)
    if args.auth:
        _check_entry(raw_keys, args.meter)
    if args.port and args.emulated:
        raise ValueError("give --port or --emulated, not both")
    if not args.emulated:
        from smitp import feeder

        port, args.table_route = feeder.modem_for(args.port, args.state, args.meter)
        from smitp.serial_modem import ModemPort

        modem = feeder.open_modem(port)
        try:
            modem.reset()
            yield Concentrator(ModemPort(modem), keyring=ring)
        finally:
            modem.close()
            if ring is not None:  # a real meter's LMON, highest MON sealed and pending request, for the next run
                ring.save(args.keys)
        return
    _check_on_feeder(args)
    from smitp import demo, topology
    from smitp.network import neighbourhood

    with tempfile.TemporaryDirectory(prefix="smitp-") as workdir:
        net, port = neighbourhood(topology.demo_feeder(), workdir, boards=True, keys=raw_keys)
        try:
            demo.wait_until_ready(net)
            yield Concentrator(port, keyring=ring)
        finally:
            net.close()


def _ecc(args, write):
    """ECC of an authenticated request (--encrypt), with the write key for
    writes and commands, the read key for reads."""
    from smitp.client import ecc_for

    return ecc_for(args.encrypt, write)


def _route(args):
    """--via, else the routing table's route (smitp discover fills it), else none: direct."""
    from smitp.concentrator import parse_aca

    return tuple(parse_aca(a) for a in args.via.split(",")) if args.via else getattr(args, "table_route", ())


def _registers_fit(regs, auth):
    """A READ.REQ of regs and its answer each fit one frame (LLC data)."""
    from meter.link import mac
    from meter.app import security as sec
    from smitp.client import register_size

    extra = sec.AUTH_OVERHEAD if auth else 0
    longest = max(1 + 2 * len(regs), 1 + sum(register_size(r) for r in regs)) + extra
    if longest > mac.MAX_LLC_DATA:
        raise ValueError("--register: %d registers do not fit one request and its answer (%d bytes, at most %d)"
                         % (len(regs), longest, mac.MAX_LLC_DATA))
    return regs


def _encode(register, value):
    """--value as the raw bytes of --register."""
    from smitp.values import encode_value, parse_register

    try:
        return encode_value(parse_register(register), value)
    except ValueError as e:
        raise ValueError("--value: %s" % e) from None


def register_line(reg, raw):
    """A register value as text: id, name, value with its unit."""
    from smitp.values import register_name, show_value

    return "0x%04X  %-32s %s" % (reg, register_name(reg), show_value(reg, raw))


def cmd_read(args):
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import parse_register, register_json

    aca = parse_aca(args.meter)
    regs = _registers_fit([parse_register(r) for r in args.register], args.auth)
    with _concentrator(args) as conc:
        values = conc.read(aca, regs, _route(args), auth=args.auth, ecc=_ecc(args, write=False))
    report = {"aca": aca_text(aca), "registers": [register_json(r, values[r]) for r in regs]}
    _emit(args, report, lambda rep: print("\n".join(register_line(r, values[r]) for r in regs)))
    return 0


def cmd_write(args):
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import parse_register, register_json

    aca = parse_aca(args.meter)
    reg = parse_register(args.register)
    raw = _encode(args.register, args.value)
    with _concentrator(args) as conc:
        conc.write(aca, {reg: raw}, _route(args), auth=args.auth, ecc=_ecc(args, write=True))
    _emit(args, {"aca": aca_text(aca), "register": register_json(reg, raw), "result": "ACK"},
          lambda rep: print("%s  written: ACK" % register_line(reg, raw)))
    return 0


# ---- readtab / command (table services)
def _field_mask(table, names):
    from smitp.values import layout_fields, quoted

    fields = [f[0] for f in layout_fields(table)]
    mask = 0
    for name in names.split(","):
        name = name.strip().replace("_", " ")
        if name not in fields:
            raise ValueError("--fields: table 0x%04X has no field %s (fields: %s)"
                             % (table, quoted(name), ", ".join(fields)))
        mask |= 1 << fields.index(name)
    return mask


def _table_request(args):
    """What readtab --table asks for: (table, mask, selective); checked before anything starts."""
    from smitp.values import parse_register

    table = parse_register(args.table)
    selective = (args.first, args.count, args.fields) != (None,) * 3
    if selective and (args.since is not None or args.until is not None):
        raise ValueError("--from/--to (BUFF_SELECT) and --first/--count/--fields (READTAB selective) do not mix")
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise ValueError("--to must come after --from")
    mask = _field_mask(table, args.fields) if args.fields is not None else 0
    return table, mask, selective


def cmd_readtab(args):
    import struct

    from meter.model import registers as R
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import decode_record, layout_fields, record_fields, register_json, show_record

    aca = parse_aca(args.meter)
    if args.table is None and (args.first, args.count, args.fields, args.since, args.until) != (None,) * 5:
        raise ValueError("--first, --count, --fields, --from and --to go with --table")
    table, mask, selective = _table_request(args) if args.table else (None, 0, False)
    report: dict[str, Any] = {"aca": aca_text(aca)}
    lines = []
    with _concentrator(args) as conc:
        ecc = _ecc(args, write=False) if args.auth else None
        if args.custom:
            values = conc.get_custom(aca, args.custom, _route(args), auth=args.auth, ecc=ecc)
            report["custom_table"] = args.custom
            report["registers"] = [register_json(r, raw) for r, raw in values]
            lines = [register_line(r, raw) for r, raw in values]
        elif args.spontaneous is not None:
            items, ack = conc.spontaneous(aca, args.spontaneous, _route(args), auth=args.auth, ecc=ecc)
            report["events"] = [_record_json(n, raw, decode_record(R.EVENT_LOG, raw, iso=True)) for n, raw in items]
            report["acknowledged"] = ack
            lines = ["#%-6d %s" % (n, show_record(R.EVENT_LOG, raw)) for n, raw in items]
            lines.append("acknowledged up to record %d" % ack)
        else:
            assert table is not None  # --table given
            report["table"] = {"id": "0x%04X" % table, "name": R.BY_ID[table][R.R_NAME]}
            if selective:
                count = args.count if args.count is not None else U32
                records = conc.read_records(aca, table, args.first or 0, count, mask, _route(args), auth=args.auth,
                                            ecc=ecc)
            else:
                records = conc.read_table(aca, table, args.since or 0, args.until or 0, _route(args), auth=args.auth,
                                          ecc=ecc, progress=progress_printer("readtab"))
            fields = layout_fields(table)
            report["records"] = []
            for n, raw in records:
                if mask:  # only the selected fields came: show them by name
                    fmt = ">" + "".join(c for i, c in enumerate(_fmt_chars(table)) if mask >> i & 1)
                    chosen = [f for i, f in enumerate(fields) if mask >> i & 1]
                    vals = struct.unpack(fmt, raw)
                    report["records"].append(_record_json(n, raw, record_fields(chosen, vals, iso=True)))
                    shown = record_fields(chosen, vals).items()
                    lines.append("#%-6d %s" % (n, ", ".join("%s %s" % kv for kv in shown)))
                else:
                    report["records"].append(_record_json(n, raw, decode_record(table, raw, iso=True)))
                    lines.append("#%-6d %s" % (n, show_record(table, raw)))
    _emit(args, report, lambda rep: print("\n".join(lines) if lines else "no records"))
    return 0


def _record_json(number, raw, values):
    """The JSON shape of a table record: its number, raw bytes and named fields."""
    return {"number": number, "raw": bytes(raw).hex().upper(), "values": values}


def _fmt_chars(table):
    from meter.model import registers as R

    out, n = [], ""
    for c in R.LAYOUTS[table][0][1:]:
        if c.isdigit():
            n += c
            continue
        out.extend(c * int(n or 1))
        n = ""
    return out


COMMAND_NAMES = ("close-billing", "open-cutoff", "close-cutoff", "reset-alarms", "sync-clock", "freeze",
                 "activate-contract")


def cmd_command(args):
    import struct
    import time

    from meter.app import tables as TB
    from smitp.concentrator import aca_text, parse_aca

    code = {"close-billing": TB.CMD_CLOSE_BILLING, "open-cutoff": TB.CMD_OPEN_CUTOFF,
            "close-cutoff": TB.CMD_CLOSE_CUTOFF, "reset-alarms": TB.CMD_RESET_ALARMS,
            "sync-clock": TB.CMD_SYNC_CLOCK, "freeze": TB.CMD_FREEZE,
            "activate-contract": TB.CMD_ACTIVATE_CONTRACT}[args.name]
    if args.time is not None and code != TB.CMD_SYNC_CLOCK:
        raise ValueError("--time goes with sync-clock")
    params = b""
    if code == TB.CMD_SYNC_CLOCK:
        params = struct.pack(">I", args.time if args.time is not None else int(time.time()))
    aca = parse_aca(args.meter)
    with _concentrator(args) as conc:
        conc.command(aca, code, params, _route(args), auth=args.auth, ecc=_ecc(args, write=True) if args.auth else None)
    _emit(args, {"aca": aca_text(aca), "command": args.name, "code": code, "parameters": params.hex().upper(),
                 "result": "ACK"}, lambda rep: print("%s: ACK" % args.name))
    return 0


# ---- decode
def cmd_decode(args):
    from smitp.decode import by_layer, decode_fields

    key = bytes.fromhex(args.key) if args.key else None
    lines = decode_fields(" ".join(args.hex), key, args.mon)
    _emit(args, by_layer(lines), lambda rep: print("\n".join("%-4s %s" % (layer, text) for layer, text, _ in lines)))
    return 0


# ---- keys
def cmd_keys(args):
    from smitp.concentrator import parse_aca
    from smitp.secure import KeyRing, generate_key_file

    if args.generate:
        generate_key_file(args.new_keys, args.meter)
        _emit(args, {"aca": args.meter, "generated": args.new_keys},
              lambda rep: print("meter %s: a fresh key pair in %s" % (args.meter, args.new_keys)))
        return 0
    if not args.keys:
        raise ValueError("--keys: give the meter's current key file (or --generate)")
    KeyRing.load(args.new_keys)
    new, _ring = _load_keys(args.new_keys)
    assert new is not None  # --new-keys is required
    if args.meter not in new:
        raise ValueError("--new-keys: the key file has no entry for meter %s" % args.meter)
    k1, k2 = new[args.meter]
    with _concentrator(args) as conc:
        outcome = conc.change_keys(parse_aca(args.meter), k1, k2, _route(args))
        assert conc.keyring is not None  # from --keys, checked above
        conc.keyring.save(args.keys, keys={args.meter: (k1, k2)}, counters=False)
    _emit(args, {"aca": args.meter, "result": outcome, "keys": args.keys},
          lambda rep: print("meter %s: %s; %s holds the new keys" % (args.meter, outcome, args.keys)))
    return 0


# ---- provision
def cmd_provision(args):
    from smitp import provision

    raw, _ring = _load_keys(args.keys)
    _check_entry(raw, args.meter)
    assert raw is not None  # _check_entry() refused a missing key file
    k1, k2 = raw[args.meter]
    if args.flash:
        provision.provision_image(args.flash, k1, k2, args.lmon)
    elif args.port:
        provision.provision_board(args.port, k1, k2, args.lmon)
    else:  # the running feeder's meter: its board stopped, provisioned, started again
        from smitp import feeder

        args.flash = feeder.provision(args.state, args.meter, k1, k2, args.lmon)
    where = args.flash or args.port
    _emit(args, {"aca": args.meter, "provisioned": where, "lmon": args.lmon},
          lambda rep: print("meter %s: keys%s written to %s" % (args.meter, "" if args.lmon is None else " and LMON",
                                                                 where)))
    return 0


# ---- sim
def cmd_sim(args):
    from smitp import sim

    if args.download is not None:
        from smitp import fleet_download

        rep = fleet_download.run(args.meters, args.download, seed=args.seed, progress=progress_printer("download"))
        _emit(args, rep, fleet_download.print_report)
        return 0 if rep["activated"] == rep["reachable"] else 1
    from smitp import progress

    report = sim.run(args.meters, seed=args.seed, boards=args.boards, fail_repeaters=args.fail_repeaters,
                     progress=progress.current().by_phase, engine=args.engine, scheduler=args.scheduler,
                     workers=args.workers)
    if args.svg or args.png:
        picture = sim.tree_scene(report, args.meters, args.seed)
        if args.svg:
            with open(args.svg, "w", encoding="utf-8") as f:
                f.write(picture.svg())
        if args.png:
            with open(args.png, "wb") as f:
                f.write(picture.png())
    report.pop("details")
    _emit(args, report, sim.print_report)
    return 0


# ---- display
def cmd_display(args):
    from smitp import display
    from smitp.values import parse_register

    if not args.emulated:
        raise ValueError("only --emulated is supported: a real board's display is in front of you")
    regs = lambda text: [parse_register(r) for r in text.split(",")] if text else None  # noqa: E731
    report = display.run(
        png=args.png, frames=args.frames, interval_s=args.interval, scale=args.scale, workdir=args.workdir,
        import_w=args.import_w, export_w=args.export_w, scroll=regs(args.scroll), alternate=regs(args.alternate),
        dwell=args.dwell, message=args.message, priority=args.priority, minutes=args.minutes,
        special=args.special, presses=args.press or (), mode=args.mode,
        progress=progress_printer("display") if args.frames > 1 else None)
    _emit(args, report, display.print_report)
    return 0


# ---- hhu
def _check_hhu(args):
    """What `smitp hhu` would find wrong only after booting the meter or signing on."""
    from smitp.values import parse_register

    action = args.action or "info"
    meter = args.aca if args.emulated else None  # a real meter tells its ACA after the sign-on
    if getattr(args, "auth", False) or action == "provision":  # provision goes with the current keys
        _check_entry(_load_keys(args.keys)[0], meter)
    if action == "read":
        _registers_fit([parse_register(r) for r in args.register], args.auth)
    elif action == "write":
        _encode(args.register, args.value)
    elif action == "provision" and (args.new_keys, args.max_baud, args.address) == (None,) * 3:
        raise ValueError("give --new-keys, --max-baud or --address: there is nothing to provision")
    elif action == "provision" and args.new_keys:
        _check_entry(_load_keys(args.new_keys)[0], meter, "--new-keys")


def cmd_hhu(args):
    from smitp import hhu

    _check_hhu(args)
    report, text = hhu.run_command(args, progress_printer("hhu"))
    _emit(args, report, text)
    return 0


def _check_hhu_options(parser):
    """Attach their checks to the options hhu.add_arguments declares (argparse keeps them in _actions)."""
    from meter.link import mac

    checks = {"port": _device, "aca": _aca, "keys": _key_file, "new_keys": _key_file, "register": _register,
              "address": _device_address, "data": _hex(0, mac.MAX_LLC_DATA - 1)}  # data: the APDU after the ATTR
    for action in parser._actions:
        if action.dest in checks and action.type is None:
            action.type = checks[action.dest]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _check_hhu_options(sub)


# ---- feeder / discover (smitp.feeder)
def cmd_feeder(args):
    from smitp import feeder

    report, text = feeder.run_command(args)
    _emit(args, report, text)
    return 0


def cmd_discover(args):
    from smitp import feeder

    report, text = feeder.run_discover(args, progress_printer("discover"))
    _emit(args, report, text)
    return 0


# ---- image / deploy
def cmd_image(args):
    from smitp.image import build_image

    if args.download:
        from smitp.download import build_command

        report = build_command(args)
        _emit(args, report, lambda rep: print("%s: download image %s, %d bytes, %d blocks of %d, sha256 %s, %s"
                                              % (args.board, rep["out"], rep["bytes"], rep["blocks"], rep["block"],
                                                 rep["sha256"], "sealed" if rep["sealed"] else "not sealed")))
        return 0

    paths = build_image(args.board, args.out)
    total = sum(p.stat().st_size for p in paths)
    _emit(args, {"board": args.board, "files": len(paths), "bytes": total},
          lambda rep: print("%s: %d files, %d bytes" % (args.board, len(paths), total)))
    return 0


def cmd_download(args):
    from smitp import download

    image = download.load_image(args.image)
    if args.section:
        args.meter = None
    with _concentrator(args) as conc:
        report = download.run_command(conc, image, args, progress_printer("download"))
    _emit(args, report, download.print_report)
    return 0 if len(report["activated"]) == len(report["meters"]) else 1


def cmd_deploy(args):
    from smitp.deploy import deploy

    steps = deploy(args.board, args.port)
    _emit(args, {"board": args.board, "port": args.port, "steps": len(steps)},
          lambda rep: print("%s on %s: deployed" % (args.board, args.port)))
    return 0


# ---- the parser
class CommandLineError(UsageError):
    """A bad command line, as the parser found it."""

    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, reported by main() like every other error
        raise CommandLineError(self.prog, message)


def build_parser():
    from meter.display import manager as D
    from meter.link import mac
    from smitp import deploy, image, sim

    from smitp import feeder

    def _where(sp, emulated=True):
        """Where the concentrator's modem is: --port, the running feeder (--state), or --emulated."""
        sp.add_argument("--port", type=_device, help="serial port of a real ST7580 modem, or a URL such as "
                                                     "rfc2217://localhost:N (default: the running feeder's modem)")
        feeder.add_state_option(sp)
        if emulated:
            sp.add_argument("--emulated", action="store_true", help="a throwaway emulated demo feeder, booted "
                                                                    "for this command only (nothing persists)")

    p = _Parser(prog="smitp", description=__doc__)
    p.add_argument("--version", action="store_true", help="print the version of the tools and of the firmware")
    sub = p.add_subparsers(dest="command")

    def add(name, fn, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--json", action="store_true", help="print JSON for scripts (errors too)")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("demo", cmd_demo, "read three emulated meters on a simulated feeder, one through a repeater")
    sp.add_argument("--auth", action="store_true",
                    help="provision keys, read authenticated and encrypted (AES-CTR), then attack every meter (docs/security.md, section 9)")
    sp.add_argument("--mcu", action="store_true",
                    help="run the repeater and the meter behind it on the emulated Cortex-M4 (QEMU; `make mcu` builds the image)")
    sp.add_argument("--modem", choices=("st7580", "hi", "mixed"), default="st7580",
                    help="the meters' modem: the ST7580, a Meters and More modem on the Host Interface (hi), "
                         "or every other meter on each (mixed)")
    sp.add_argument("--download", action="store_true",
                    help="software download on the demo feeder: a tampered and a wrongly sealed image refused, "
                         "a broken one rolled back, the new version activated on every meter")

    from smitp.client import ENCRYPT_CHOICES, ENCRYPT_HELP

    def add_meter_service(name, fn, help_text):
        """A service of one meter: where it is and how to reach it."""
        sp = add(name, fn, help_text)
        sp.add_argument("--meter", required=True, type=_aca, help="the meter's ACA, 12 hex digits")
        sp.add_argument("--via", type=_via, help="repeater ACAs, comma separated, nearest the concentrator first "
                                                 "(at most %d)" % mac.MAX_REPEATERS)
        _where(sp)
        sp.add_argument("--auth", action="store_true", help="authenticated service (needs --keys)")
        sp.add_argument("--keys", type=_key_file, help='key file: {"<ACA>": {"k1": "<hex>", "k2": "<hex>"}} '
                                                       "(on the feeder, default: the feeder's)")
        sp.add_argument("--encrypt", choices=ENCRYPT_CHOICES, default="auto", help=ENCRYPT_HELP)
        return sp

    add_meter_service("read", cmd_read, "read registers of a meter")
    add_meter_service("write", cmd_write, "write a register of a meter")
    sub.choices["read"].add_argument("--register", required=True, action="append", type=_register,
                                     help="register id (0x003F) or name; repeat for several")
    sub.choices["write"].add_argument("--register", required=True, type=_register, help="register id or name")
    sub.choices["write"].add_argument("--value", required=True, help="value: integer, text or hex")
    add_meter_service("readtab", cmd_readtab, "read a table of a meter (load profile, event log, "
                                              "billing data ...), a custom table or its spontaneous events")
    add_meter_service("command", cmd_command, "send a special command to a meter (COMMAND)")
    from smitp import bnode

    bnode.add_options(add_meter_service("bnode", bnode.cmd_bnode, bnode.HELP), _number, _arg)
    sp = sub.choices["readtab"]
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", type=_table, help="table register id or name (0x0200, 'load profile', event_log ...)")
    what.add_argument("--custom", type=int, choices=(1, 2, 3, 4), help="read custom table N (GETTAB)")
    what.add_argument("--spontaneous", type=_in_range(int, 0, U32), metavar="ACK", nargs="?", const=0,
                      help="drain the spontaneous events (DATASPONT) from record ACK on (0..%d)" % U32)
    sp.add_argument("--from", dest="since", metavar="TIME", type=_when,
                    help="records from this time (unix s or ISO 8601, UTC; 1970-01-01 .. 2106-02-07)")
    sp.add_argument("--to", dest="until", metavar="TIME", type=_when, help="... up to this time, excluded")
    _number(sp, "--first", 0, U32, "selective read from this record number")
    _number(sp, "--count", 1, U32, "selective read of this many records")
    sp.add_argument("--fields", help="selective read of these fields only, comma separated")
    sp = sub.choices["command"]
    sp.add_argument("name", choices=COMMAND_NAMES, help="the command")
    sp.add_argument("--time", type=_when,
                    help="sync-clock: the time to set (unix s or ISO 8601, 1970-01-01 .. 2106-02-07; default: now)")
    sp = add("decode", cmd_decode, "print a captured frame layer by layer")
    sp.add_argument("hex", nargs="+", help="the frame in hex (spaces allowed)")
    sp.add_argument("--key", type=_hex(16, 16, secret=True),
                    help="16-byte key in hex to decrypt and verify a protected frame (never printed)")
    _number(sp, "--mon", 0, U64, "the exchange's MON (the meter's LMON + 1 for a request)")
    sp = add("keys", cmd_keys, "change a meter's keys by the key change procedure (stage, then activate); "
                               "the --keys file then holds the new pair")
    sp.add_argument("--meter", required=True, type=_aca, help="the meter's ACA, 12 hex digits")
    sp.add_argument("--via", type=_via, help="repeater ACAs, comma separated, nearest the concentrator first")
    _where(sp)
    sp.add_argument("--keys", type=_key_file, help="key file with the meter's current keys; rewritten with the new")
    sp.add_argument("--new-keys", required=True, metavar="FILE", help="key file with the meter's new k1/k2")
    sp.add_argument("--generate", action="store_true",
                    help="only write a fresh random pair for the meter into --new-keys (a new file)")
    sp.set_defaults(auth=True)
    sp = add("provision", cmd_provision, "write a meter's keys (and LMON) into its non-volatile storage")
    sp.add_argument("--meter", required=True, type=_aca, help="the meter's ACA")
    sp.add_argument("--keys", required=True, type=_key_file, help="key file with an entry for the meter")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--flash", type=_output_file, help="flash image of an emulated board (made if missing)")
    where.add_argument("--port", type=_device, help="serial port of a real board (through mpremote)")
    feeder.add_state_option(where)
    _number(sp, "--lmon", 0, U64, "also set the meter's LMON")
    sp = add("sim", cmd_sim, "discover, register and read a simulated fleet of meters on a virtual clock")
    _number(sp, "--meters", 1, sim.CLUSTER_MAX_METERS, "fleet size, in sections of up to 500 meters "
            "(at most %d with the local engine)" % sim.MAX_METERS, default=100)
    _number(sp, "--seed", 0, U32, "topology and slot-choice seed", default=0)
    _number(sp, "--boards", 0, sim.BOARD_SECTION_MAX, "run this many meters as MicroPython emulated boards; "
            "the fleet then runs in real time, --meters at most %d" % sim.BOARD_SECTION_MAX, default=0)
    _number(sp, "--fail-repeaters", 0, sim.MAX_METERS, "after registration, power off R repeaters, at most "
            "--meters, and read every meter again", default=0, metavar="R")
    sp.add_argument("--svg", metavar="FILE", type=_output_file, help="draw the discovered tree into FILE")
    from meter import fwimage  # (the fleet campaign's module loads only when it runs)

    _number(sp, "--download", 1024, fwimage.MAX_BLOCKS * fwimage.MAX_BLOCK - fwimage.HEADER_LEN, "instead: a software-download campaign of an image of SIZE "
            "bytes over the fleet (broadcast, gap filling, activation), with random frame loss", metavar="SIZE")
    sp.add_argument("--png", metavar="FILE", type=_output_file, help="... and as a PNG picture into FILE")
    sp.add_argument("--engine", choices=sim.ENGINES, default="local",
                    help="local: worker processes of this machine (default); dask: a Dask distributed cluster")
    sp.add_argument("--scheduler", metavar="ADDRESS", type=_arg(_scheduler),
                    help="with --engine dask: the scheduler of a running cluster, tcp://HOST:PORT "
                         "(default: a local cluster on this machine)")
    _number(sp, "--workers", 1, 256, "worker processes of the local engine or local Dask cluster "
            "(default: one per core)")
    sp = add("display", cmd_display, "picture what an emulated meter's display shows (PNG)")
    sp.add_argument("--emulated", action="store_true", help="boot an emulated meter (the only source for now)")
    sp.add_argument("--png", metavar="FILE", type=_output_file,
                    help="write the picture there (with --frames N: FILE-01.png ...)")
    _number(sp, "--frames", 1, 1000, "a sequence of N pictures", default=1)
    _number(sp, "--interval", 0, 3600, "seconds between two pictures", kind=float, default=1.0, metavar="S")
    _number(sp, "--scale", 1, 16, "PNG pixels per display pixel", default=4)
    sp.add_argument("--workdir", type=_output_dir,
                    help="keep the meter's flash image (and so its settings) in this directory")
    _number(sp, "--import-w", 0, 100000, "simulated import power, W", default=1200)
    _number(sp, "--export-w", 0, 100000, "simulated export power, W", default=0)
    sp.add_argument("--scroll", metavar="REGS", type=_display_list,
                    help="scroll list: up to 8 register ids or names, comma separated")
    sp.add_argument("--alternate", metavar="REGS", type=_display_list, help="alternate list, likewise")
    _number(sp, "--dwell", 0, 255, "seconds each value of the scroll list shows (0: the default)", metavar="S")
    sp.add_argument("--message", metavar="TEXT", type=_message,
                    help="utility message, written over PLC with the write key (up to %d characters)"
                         % D.MSG_TEXT_LEN)
    sp.add_argument("--priority", choices=("info", "high", "urgent"), default="info", help="of the message")
    _number(sp, "--minutes", 0, 0xFFFF, "message duration (0: until acknowledged)", default=0)
    _number(sp, "--special", 0, 255, "special message code (docs/data-model.md)", metavar="CODE")
    sp.add_argument("--press", action="append", choices=("short", "long"), help="press the button; repeatable")
    sp.add_argument("--mode", choices=("normal", "alternate", "test"), help="set the display mode over PLC")
    sp = add("hhu", cmd_hhu, "hand-held unit: sign on through the optical port (IEC 62056-21), "
                             "mode C readout, mode F read / write / command / provision")
    from smitp.hhu import add_arguments as _hhu_arguments

    _hhu_arguments(sp)
    _check_hhu_options(sp)
    sp = add("dlms", cmd_dlms, "DLMS/COSEM profile: get or set an attribute of a COSEM object, invoke a method, "
                               "list the objects")
    from smitp.dlms.command import add_arguments as _dlms_arguments

    _dlms_arguments(sp, _aca, _via, _device, _arg)
    sp = add("feeder", cmd_feeder, "emulated meters on a simulated feeder that stay up in the background: "
                                   "up, status, down")
    feeder.add_arguments(sp)
    sp = add("discover", cmd_discover, "discover and register the meters of the feeder (or of --port) and "
                                       "keep their routes in the routing table")
    _where(sp, emulated=False)
    sp = add("image", cmd_image, "compile the firmware for a board with mpy-cross")
    sp.add_argument("--board", default="unix", choices=image.boards())
    sp.add_argument("--out", type=_image_dir, help="output directory (default build/<board>)")
    sp.add_argument("--download", action="store_true",
                    help="build the software-download image (one file: header, sealed, and the compiled modules)")
    sp.add_argument("--image-version", metavar="X.Y.Z", type=_version,
                    help="with --download: the image's firmware version (default: the tree's)")
    sp.add_argument("--keys", type=_key_file, help="with --download and --meter: seal for that meter's write key")
    sp.add_argument("--meter", type=_aca, help="with --download: the meter whose key seals it")
    sp.add_argument("--file", type=_output_file, help="with --download: the image file (default build/<board>.smfw)")
    sp = add("download", cmd_download, "software download: a firmware image to one meter or the whole section "
                                       "(broadcast, gap filling, verification, activation, confirmation)")
    sp.add_argument("--image", required=True, help="the image file (smitp image --download)")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--meter", type=_aca, help="the meter's ACA, 12 hex digits")
    who.add_argument("--section", action="store_true", help="every meter of the key file the line reaches")
    sp.add_argument("--via", type=_via, help="with --meter: repeater ACAs, comma separated, nearest first")
    sp.add_argument("--keys", required=True, type=_key_file, help="key file: the write key of every meter")
    sp.add_argument("--port", type=_device, help="serial port of a real ST7580 modem (default: the emulated demo feeder)")
    sp.add_argument("--at", type=_when, help="activation time (unix s or ISO 8601, UTC; default: at once)")
    sp.set_defaults(auth=True)
    sp = add("deploy", cmd_deploy, "copy the compiled firmware to a real board with mpremote")
    sp.add_argument("--board", default="nucleo_f401re_plm01a1", choices=deploy.targets())
    sp.add_argument("--port", required=True, type=_device, help="the board's serial port")
    return p


# ---- dlms
def cmd_dlms(args):
    from smitp.dlms.command import run

    return run(args)
def _feeder_keys(args):
    """On the running feeder (no --port, no --emulated) --keys defaults to the feeder's key file,
    which follows its meters' keys (smitp.feeder)."""
    if getattr(args, "keys", "") is None and not getattr(args, "port", None) and getattr(args, "emulated", None) is False:
        from smitp import feeder

        args.keys = feeder.keys_file(getattr(args, "state", None))


# ---- version
def version_line():
    """The host tools' package version and the firmware's version, on one line."""
    from importlib import metadata

    import meter

    try:
        tools = metadata.version("smitp-meter")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        tools = "unknown"
    return "smitp %s, firmware smitp-meter %s" % (tools, meter.VERSION)


# ---- errors
def _runtime_errors():
    """Failures of what a command talked to (exit 1), as opposed to bad input (exit 2)."""
    from smitp.demo import DemoError
    from smitp.deploy import DeployError
    from smitp.download import DownloadError
    from smitp.feeder import FeederError
    from smitp.emulated_board import BoardError
    from smitp.image import ImageError
    from smitp.provision import ProvisionError
    from smitp.serial_modem import ModemError

    return (PeerError, DemoError, DeployError, DownloadError, BoardError, ImageError, ProvisionError, ModemError,
            TimeoutError, FeederError)


def _one_line(text):
    """A message on one line: a board's log or a tool's report (a MicroPython traceback) folded in."""
    lines = [line.strip() for line in str(text).replace("Traceback (most recent call last):", "").splitlines()]
    return " ".join(line for line in lines if line and not line.startswith('File "'))


def _fail(prog, message, code, as_json):
    message = _one_line(message)
    print("%s: error: %s" % (prog, message), file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message}))
    return code


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv  # until the parser has understood the command line
    prog = "smitp"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        as_json = getattr(args, "json", False)
        if args.version:
            print(version_line())
            return 0
        if args.command is None:
            parser.print_usage(sys.stderr)
            raise CommandLineError(prog, "give a command ('smitp --help' says what each does, "
                                         "'smitp COMMAND --help' lists its options)")
        prog = "%s %s" % (parser.prog, args.command)
        _feeder_keys(args)
        from smitp import progress

        progress.start(prog)
        try:
            return args.fn(args)
        finally:
            progress.close_all()  # before any error line, so a bar never swallows it
    except CommandLineError as e:
        return _fail(e.prog, e, 2, as_json)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", 130, as_json)
    except BrokenPipeError:  # the reader of our output went away: nobody to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        if isinstance(e, _runtime_errors()):
            return _fail(prog, e, 1, as_json)
        if isinstance(e, (SmitpError, ValueError, OSError)):
            return _fail(prog, e, 2, as_json)
        raise


if __name__ == "__main__":
    sys.exit(main())
