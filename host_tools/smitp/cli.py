"""The `smitp` command: concentrator, decoder and tools around the meter firmware."""

import argparse
import contextlib
import json
import sys
import tempfile

from meter.errors import SmitpError


def progress_printer(label):
    """A one-line progress bar on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done, total, what):
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write("\r%s [%s%s] %d/%d %s\x1b[K" % (label, "#" * filled, "." * (width - filled), done, total, what))
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _emit(args, report, text_fn):
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        text_fn(report)


# ---- demo
def cmd_demo(args):
    from smitp import demo

    report = demo.run(progress=progress_printer("reading meters"), auth=args.auth)
    if not args.json:
        demo.print_table(report)
        return 0
    for m in report["meters"]:
        m.pop("shown", None)
    print(json.dumps(report, indent=2))
    return 0


# ---- read / write
def _load_keys(path):
    """The key file: {"<ACA>": {"k1": hex, "k2": hex, "lmon": n}} -> (raw keys by ACA, KeyRing)."""
    from smitp.secure import KeyRing

    if not path:
        return None, None
    with open(path) as f:
        data = json.load(f)
    ring = KeyRing.from_dict(data)  # validates every entry, naming the meter, never a key
    raw = {a.upper(): (bytes.fromhex(e["k1"]), bytes.fromhex(e["k2"])) for a, e in data.items()}
    return raw, ring


@contextlib.contextmanager
def _concentrator(args):
    """A concentrator on a real modem (--port) or on the emulated demo feeder
    (whose meters get the keys of --keys provisioned first)."""
    from smitp.concentrator import Concentrator

    raw_keys, ring = _load_keys(getattr(args, "keys", None))
    if getattr(args, "auth", False) and ring is None:
        raise ValueError("--auth needs --keys FILE")
    if args.port:
        from smitp.serial_modem import SerialModem, ModemPort

        modem = SerialModem(args.port)
        modem.open()
        try:
            modem.reset()
            yield Concentrator(ModemPort(modem), keyring=ring)
        finally:
            modem.close()
        return
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
    """ECC of an authenticated request: AES-CTR or no encryption, with the
    write key for writes and the read key for reads."""
    from meter import security as sec

    mode = sec.MODE_CTR if args.encrypt == "ctr" else sec.MODE_NONE
    return sec.make_ecc(mode, sec.KEY_WRITE if write else sec.KEY_READ)


def _route(args):
    from smitp.concentrator import parse_aca

    return tuple(parse_aca(a) for a in args.via.split(",")) if args.via else ()


def cmd_read(args):
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import decode_value, parse_register, register_name, show_value

    aca = parse_aca(args.meter)
    regs = [parse_register(r) for r in args.register]
    with _concentrator(args) as conc:
        values = conc.read(aca, regs, _route(args), auth=args.auth, ecc=_ecc(args, write=False))
    report = {"aca": aca_text(aca), "registers": {
        "0x%04X" % r: {"name": register_name(r), "hex": values[r].hex().upper(), "value": decode_value(r, values[r])}
        for r in regs}}

    def text(rep):
        for r in regs:
            print("0x%04X  %-32s %s" % (r, register_name(r), show_value(r, values[r])))

    _emit(args, report, text)
    return 0


def cmd_write(args):
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import encode_value, parse_register

    aca = parse_aca(args.meter)
    reg = parse_register(args.register)
    raw = encode_value(reg, args.value)
    with _concentrator(args) as conc:
        conc.write(aca, {reg: raw}, _route(args), auth=args.auth, ecc=_ecc(args, write=True))
    _emit(args, {"aca": aca_text(aca), "register": "0x%04X" % reg, "written": raw.hex().upper(), "result": "ACK"},
          lambda rep: print("0x%04X written: ACK" % reg))
    return 0


# ---- readtab / command (table services)
def _when(text):
    """Seconds since 1970 from an integer or an ISO 8601 date-time (UTC unless it says)."""
    import datetime

    try:
        return int(text, 0)
    except ValueError:
        t = datetime.datetime.fromisoformat(text)
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        return int(t.timestamp())


def _field_mask(table, names):
    from smitp.values import layout_fields

    fields = [f[0] for f in layout_fields(table)]
    mask = 0
    for name in names.split(","):
        name = name.strip().replace("_", " ")
        if name not in fields:
            raise ValueError("table 0x%04X has no field %r (fields: %s)" % (table, name, ", ".join(fields)))
        mask |= 1 << fields.index(name)
    return mask


def cmd_readtab(args):
    import struct

    from meter import registers as R
    from smitp.concentrator import aca_text, parse_aca
    from smitp.values import decode_record, decode_value, layout_fields, parse_register, register_name, show_record, \
        show_value

    aca = parse_aca(args.meter)
    report = {"aca": aca_text(aca)}
    lines = []
    with _concentrator(args) as conc:
        ecc = _ecc(args, write=False) if args.auth else None
        if args.custom:
            values = conc.get_custom(aca, args.custom, _route(args), auth=args.auth, ecc=ecc)
            report["custom_table"] = args.custom
            report["registers"] = {"0x%04X" % r: {"name": register_name(r), "hex": raw.hex().upper(),
                                                  "value": decode_value(r, raw)} for r, raw in values}
            lines = ["0x%04X  %-32s %s" % (r, register_name(r), show_value(r, raw)) for r, raw in values]
        elif args.spontaneous is not None:
            items, ack = conc.spontaneous(aca, args.spontaneous, _route(args), auth=args.auth, ecc=ecc)
            report["events"] = [dict(number=n, hex=raw.hex().upper(), **decode_record(R.EVENT_LOG, raw))
                                for n, raw in items]
            report["acknowledged"] = ack
            lines = ["#%-6d %s" % (n, show_record(R.EVENT_LOG, raw)) for n, raw in items]
            lines.append("acknowledged up to record %d" % ack)
        else:
            if not args.table:
                raise ValueError("give --table, --custom N or --spontaneous")
            table = parse_register(args.table)
            row = R.lookup(table)
            if row is None or row[R.R_ENC] != R.ENC_TABLE:
                raise ValueError("0x%04X is not a table" % table)
            report["table"] = {"id": "0x%04X" % table, "name": row[R.R_NAME]}
            if args.first is not None or args.fields:
                mask = _field_mask(table, args.fields) if args.fields else 0
                first = args.first or 0
                count = args.count if args.count is not None else 0xFFFFFFFF
                records = conc.read_records(aca, table, first, count, mask, _route(args), auth=args.auth, ecc=ecc)
            else:
                mask = 0
                records = conc.read_table(aca, table, _when(args.since) if args.since else 0,
                                          _when(args.until) if args.until else 0, _route(args), auth=args.auth,
                                          ecc=ecc, progress=progress_printer("readtab"))
            fields = layout_fields(table)
            report["records"] = []
            for n, raw in records:
                if mask:  # only the selected fields came: show them by name
                    fmt = ">" + "".join(c for i, c in enumerate(_fmt_chars(table)) if mask >> i & 1)
                    chosen = [f for i, f in enumerate(fields) if mask >> i & 1]
                    vals = dict(zip((f[0] for f in chosen), struct.unpack(fmt, raw)))
                    report["records"].append({"number": n, "hex": raw.hex().upper(), "values": vals})
                    lines.append("#%-6d %s" % (n, ", ".join("%s %s" % kv for kv in vals.items())))
                else:
                    report["records"].append({"number": n, "hex": raw.hex().upper(),
                                              "values": decode_record(table, raw)})
                    lines.append("#%-6d %s" % (n, show_record(table, raw)))
    _emit(args, report, lambda rep: print("\n".join(lines) if lines else "no records"))
    return 0


def _fmt_chars(table):
    from meter import registers as R

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

    from meter import tables as TB
    from smitp.concentrator import aca_text, parse_aca

    code = {"close-billing": TB.CMD_CLOSE_BILLING, "open-cutoff": TB.CMD_OPEN_CUTOFF,
            "close-cutoff": TB.CMD_CLOSE_CUTOFF, "reset-alarms": TB.CMD_RESET_ALARMS,
            "sync-clock": TB.CMD_SYNC_CLOCK, "freeze": TB.CMD_FREEZE,
            "activate-contract": TB.CMD_ACTIVATE_CONTRACT}[args.name]
    params = b""
    if code == TB.CMD_SYNC_CLOCK:
        params = struct.pack(">I", _when(args.time) if args.time else int(time.time()))
    aca = parse_aca(args.meter)
    with _concentrator(args) as conc:
        conc.command(aca, code, params, _route(args), auth=args.auth, ecc=_ecc(args, write=True) if args.auth else None)
    _emit(args, {"aca": aca_text(aca), "command": args.name, "code": code, "parameters": params.hex().upper(),
                 "result": "ACK"}, lambda rep: print("%s: ACK" % args.name))
    return 0


# ---- decode
def cmd_decode(args):
    from smitp.decode import decode

    key = bytes.fromhex(args.key) if args.key else None
    lines = decode(" ".join(args.hex), key, args.mon)
    if args.json:
        print(json.dumps([{"layer": layer, "text": text} for layer, text in lines], indent=2))
    else:
        for layer, text in lines:
            print("%-4s %s" % (layer, text))
    return 0


# ---- provision
def cmd_provision(args):
    from smitp import provision
    from smitp.concentrator import aca_text, parse_aca

    raw, _ring = _load_keys(args.keys)
    aca = aca_text(parse_aca(args.meter))
    if aca not in raw:
        raise ValueError("the key file has no entry for meter %s" % aca)
    k1, k2 = raw[aca]
    if args.flash:
        provision.provision_image(args.flash, k1, k2, args.lmon)
        where = args.flash
    elif args.port:
        provision.provision_board(args.port, k1, k2, args.lmon)
        where = args.port
    else:
        raise ValueError("give --flash IMAGE (emulated board) or --port PORT (real board)")
    _emit(args, {"aca": aca, "provisioned": where, "lmon": args.lmon},
          lambda rep: print("meter %s: keys%s written to %s" % (aca, "" if args.lmon is None else " and LMON", where)))
    return 0


# ---- sim
def cmd_sim(args):
    from smitp import sim

    if args.meters < 1 or args.boards < 0 or args.fail_repeaters < 0:
        raise ValueError("--meters must be at least 1, --boards and --fail-repeaters not negative")
    report = sim.run(args.meters, seed=args.seed, boards=args.boards, fail_repeaters=args.fail_repeaters,
                     progress=progress_printer("sim"))
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(sim.tree_svg(report, args.meters, args.seed))
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
def cmd_hhu(args):
    from smitp import hhu

    report, text = hhu.run_command(args, progress_printer("hhu"))
    _emit(args, report, text)
    return 0


# ---- image / deploy
def cmd_image(args):
    from smitp.image import build_image

    paths = build_image(args.board, args.out)
    total = sum(p.stat().st_size for p in paths)
    _emit(args, {"board": args.board, "files": len(paths), "bytes": total},
          lambda rep: print("%s: %d files, %d bytes" % (args.board, len(paths), total)))
    return 0


def cmd_deploy(args):
    from smitp.deploy import deploy

    deploy(args.board, args.port)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="smitp", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--json", action="store_true", help="print JSON for scripts")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("demo", cmd_demo, "read three emulated meters on a simulated feeder, one through a repeater")
    sp.add_argument("--auth", action="store_true",
                    help="provision keys, read authenticated and encrypted (AES-CTR), then try five attacks")
    def add_meter_service(name, fn, help_text):
        """A service of one meter: where it is and how to reach it."""
        sp = add(name, fn, help_text)
        sp.add_argument("--meter", required=True, help="the meter's ACA, 12 hex digits")
        sp.add_argument("--via", help="repeater ACAs, comma separated, nearest the concentrator first")
        sp.add_argument("--port", help="serial port of a real ST7580 modem (default: the emulated demo feeder)")
        sp.add_argument("--auth", action="store_true", help="authenticated service (needs --keys)")
        sp.add_argument("--keys", help='key file: {"<ACA>": {"k1": "<hex>", "k2": "<hex>"}}')
        sp.add_argument("--encrypt", choices=("ctr", "none"), default="ctr",
                        help="with --auth: encrypt with AES-CTR (default) or only authenticate")
        return sp

    add_meter_service("read", cmd_read, "read registers of a meter")
    add_meter_service("write", cmd_write, "write a register of a meter")
    sub.choices["read"].add_argument("--register", required=True, action="append",
                                     help="register id (0x003F) or name; repeat for several")
    sub.choices["write"].add_argument("--register", required=True, help="register id or name")
    sub.choices["write"].add_argument("--value", required=True, help="value: integer, text or hex")
    add_meter_service("readtab", cmd_readtab, "read a table of a meter (load profile, event log, "
                                              "billing data ...), a custom table or its spontaneous events")
    add_meter_service("command", cmd_command, "send a special command to a meter (COMMAND)")
    sp = sub.choices["readtab"]
    sp.add_argument("--table", help="table register id or name (0x0200, 'load profile', event_log ...)")
    sp.add_argument("--from", dest="since", metavar="TIME", help="records from this time (unix s or ISO 8601, UTC)")
    sp.add_argument("--to", dest="until", metavar="TIME", help="... up to this time, excluded")
    sp.add_argument("--first", type=int, help="selective read from this record number")
    sp.add_argument("--count", type=int, help="selective read of this many records")
    sp.add_argument("--fields", help="selective read of these fields only, comma separated")
    sp.add_argument("--custom", type=int, choices=(1, 2, 3, 4), help="read custom table N (GETTAB)")
    sp.add_argument("--spontaneous", type=int, metavar="ACK", nargs="?", const=0,
                    help="drain the spontaneous events (DATASPONT) from record ACK on")
    sp = sub.choices["command"]
    sp.add_argument("name", choices=COMMAND_NAMES, help="the command")
    sp.add_argument("--time", help="sync-clock: the time to set (unix s or ISO 8601; default: now)")
    sp = add("decode", cmd_decode, "print a captured frame layer by layer")
    sp.add_argument("hex", nargs="+", help="the frame in hex (spaces allowed)")
    sp.add_argument("--key", help="16-byte key in hex to decrypt and verify a protected frame (never printed)")
    sp.add_argument("--mon", type=int, help="the exchange's MON (the meter's LMON + 1 for a request)")
    sp = add("provision", cmd_provision, "write a meter's keys (and LMON) into its non-volatile storage")
    sp.add_argument("--meter", required=True, help="the meter's ACA")
    sp.add_argument("--keys", required=True, help="key file with an entry for the meter")
    sp.add_argument("--flash", help="flash image of an emulated board")
    sp.add_argument("--port", help="serial port of a real board (through mpremote)")
    sp.add_argument("--lmon", type=int, help="also set the meter's LMON")
    sp = add("sim", cmd_sim, "discover, register and read a simulated fleet of meters on a virtual clock")
    sp.add_argument("--meters", type=int, default=100, help="fleet size (sections of up to 500 meters)")
    sp.add_argument("--seed", type=int, default=0, help="topology and slot-choice seed")
    sp.add_argument("--boards", type=int, default=0,
                    help="run this many meters as MicroPython emulated boards (their section runs in real time)")
    sp.add_argument("--fail-repeaters", type=int, default=0, metavar="R",
                    help="after registration, power off R repeaters and read every meter again")
    sp.add_argument("--svg", metavar="FILE", help="draw the discovered tree into FILE")
    sp = add("display", cmd_display, "picture what an emulated meter's display shows (PNG)")
    sp.add_argument("--emulated", action="store_true", help="boot an emulated meter (the only source for now)")
    sp.add_argument("--png", metavar="FILE", help="write the picture there (with --frames N: FILE-01.png ...)")
    sp.add_argument("--frames", type=int, default=1, help="a sequence of N pictures")
    sp.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between two pictures")
    sp.add_argument("--scale", type=int, default=4, help="PNG pixels per display pixel")
    sp.add_argument("--workdir", help="keep the meter's flash image (and so its settings) in this directory")
    sp.add_argument("--import-w", type=int, default=1200, help="simulated import power, W")
    sp.add_argument("--export-w", type=int, default=0, help="simulated export power, W")
    sp.add_argument("--scroll", metavar="REGS", help="scroll list: register ids or names, comma separated")
    sp.add_argument("--alternate", metavar="REGS", help="alternate list, likewise")
    sp.add_argument("--dwell", type=int, metavar="S", help="seconds each value of the scroll list shows")
    sp.add_argument("--message", metavar="TEXT", help="utility message, written over PLC with the write key")
    sp.add_argument("--priority", choices=("info", "high", "urgent"), default="info", help="of the message")
    sp.add_argument("--minutes", type=int, default=0, help="message duration (0: until acknowledged)")
    sp.add_argument("--special", type=int, metavar="CODE", help="special message code (docs/data-model.md)")
    sp.add_argument("--press", action="append", choices=("short", "long"), help="press the button; repeatable")
    sp.add_argument("--mode", choices=("normal", "alternate", "test"), help="set the display mode over PLC")
    sp = add("hhu", cmd_hhu, "hand-held unit: sign on through the optical port (IEC 62056-21), "
                             "mode C readout, mode F read / write / command / provision")
    from smitp.hhu import add_arguments as _hhu_arguments

    _hhu_arguments(sp)
    sp = add("image", cmd_image, "compile the firmware for a board with mpy-cross")
    sp.add_argument("--board", default="unix")
    sp.add_argument("--out", help="output directory (default build/<board>)")
    sp = add("deploy", cmd_deploy, "copy the compiled firmware to a real board with mpremote")
    sp.add_argument("--board", default="nucleo_f401re_plm01a1")
    sp.add_argument("--port", required=True)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (SmitpError, ValueError, OSError) as e:
        print("smitp %s: error: %s" % (args.command, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
