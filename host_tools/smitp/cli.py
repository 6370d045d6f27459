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
    for name, fn, help_text in (("read", cmd_read, "read registers of a meter"),
                                ("write", cmd_write, "write a register of a meter")):
        sp = add(name, fn, help_text)
        sp.add_argument("--meter", required=True, help="the meter's ACA, 12 hex digits")
        sp.add_argument("--via", help="repeater ACAs, comma separated, nearest the concentrator first")
        sp.add_argument("--port", help="serial port of a real ST7580 modem (default: the emulated demo feeder)")
        sp.add_argument("--auth", action="store_true", help="authenticated service (needs --keys)")
        sp.add_argument("--keys", help='key file: {"<ACA>": {"k1": "<hex>", "k2": "<hex>"}}')
        sp.add_argument("--encrypt", choices=("ctr", "none"), default="ctr",
                        help="with --auth: encrypt with AES-CTR (default) or only authenticate")
    sub.choices["read"].add_argument("--register", required=True, action="append",
                                     help="register id (0x003F) or name; repeat for several")
    sub.choices["write"].add_argument("--register", required=True, help="register id or name")
    sub.choices["write"].add_argument("--value", required=True, help="value: integer, text or hex")
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
