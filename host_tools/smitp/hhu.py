"""The hand-held unit: the other end of the meter's optical port.

It signs on with the IEC 62056-21 prologue, then either takes the mode C data
readout or switches to mode F and exchanges Original-SMITP application
messages (plain, or authenticated with the concentrator's key handling),
through a real optical probe or an emulated board's optical pty (pyserial in
both cases). The wire formats are the firmware's own (meter.optical.iec62056,
meter.optical.modef): one definition on both sides; the mode C readout is also
checked against an independent IEC 62056-21 client in the tests. What the
mode F requests and answers hold is smitp.client's, the rules of
authenticated ones smitp.secure's: here, bytes out, bytes in, timeouts.
"""

import contextlib
import os
import termios
import time

import serial

from meter import attrs as A
from meter.optical import iec62056 as I
from meter.optical import readout as RO
from meter.optical import modef as F
from meter.model import registers as R
from meter.app import security as sec
from meter import timers as T
from smitp import client, secure
from smitp.aca import aca_text
from smitp.errors import BadAnswer, Nack, NoAnswer, PeerError, UsageError  # noqa: F401 (Nack: part of the interface)
from smitp.transport import Link, resend

SIGN_ON_TIMEOUT_S = 2.0  # identification after the request (tr is at most 1.5 s)
READOUT_TIMEOUT_S = 3.0  # the data message starts within tr (1.5 s) of the option select
ANSWER_TIMEOUT_S = 2.0  # a mode F answer (the meter may write its flash first)
SWITCH_GUARD_S = 0.2  # after the option select, before the first mode F frame (IEC minimum tr)
RETRIES = 1  # a mode F request without answer is sent again, same bytes


def _is_pty(path):
    try:
        return 136 <= os.major(os.stat(path).st_rdev) <= 143  # Unix98 pty slaves
    except (OSError, ValueError):
        return False


class OpticalLine:
    """A serial port used as the optical head: rate and framing (7E1 / 8N1)
    set with pyserial. A pty cannot hold a framing (Linux forces 8N1 on it
    and refuses a change of framing alone), so on a pty framing changes that
    it refuses are skipped: the emulated board only sees the rate."""

    def __init__(self, path):
        self.path = path
        self.ser = None
        self.pty = _is_pty(path)
        self.baud = None
        self.seven_e1 = None

    def open(self):
        ser = serial.Serial()
        ser.port = self.path
        ser.baudrate = I.SIGN_ON_BAUD
        ser.timeout = 0.05
        ser.open()
        self.ser = ser
        self.set_line(I.SIGN_ON_BAUD, True)

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def _set(self, name, value):
        try:
            setattr(self.ser, name, value)
        except (OSError, termios.error, serial.SerialException):
            if not self.pty:
                raise

    def set_line(self, baud, seven_e1):
        self._set("baudrate", baud)  # first: on a pty only a change of rate is accepted
        self._set("bytesize", serial.SEVENBITS if seven_e1 else serial.EIGHTBITS)
        self._set("parity", serial.PARITY_EVEN if seven_e1 else serial.PARITY_NONE)
        self.baud, self.seven_e1 = baud, seven_e1

    def write(self, data):
        """Send and wait until the bytes are on the line: flush() waits for a
        real UART; a pty has no pacing, so the airtime is waited here too
        (a switch of rate must not overtake bytes still "on the wire")."""
        t0 = time.monotonic()
        ser = self._port()
        ser.write(data)
        ser.flush()
        left = I.airtime_ms(len(data), self.baud or I.SIGN_ON_BAUD) / 1000 - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)

    def read(self, n=256):
        data = self._port().read(n)
        if self.seven_e1:
            data = bytes(b & 0x7F for b in data)
        return data

    def discard_input(self):
        self._port().reset_input_buffer()

    def _port(self):
        if self.ser is None:
            raise RuntimeError("optical head %s is not open" % self.path)
        return self.ser


class Identification:
    def __init__(self, raw):
        text = raw.decode("ascii", "replace").strip()
        if len(text) < 5 or text[0] != "/":
            raise BadAnswer("not an identification message: %r" % raw)
        self.raw = raw
        self.manufacturer = text[1:4]
        self.baud_char = text[4]
        rest = text[5:]
        self.mode_f = rest.startswith("\\" + I.MODE_F_MARK)
        self.text = rest[2:] if rest.startswith("\\") else rest
        z = ord(self.baud_char) - ord("0")
        self.max_baud = z if 0 <= z < len(I.BAUDS) else None

    def as_dict(self):
        return {"manufacturer": self.manufacturer, "identification": self.text,
                "max_baud": I.BAUDS[self.max_baud] if self.max_baud is not None else None, "mode_f": self.mode_f}


class HandHeldUnit:
    """Sign on, then readout (mode C) or requests (mode F) on an OpticalLine.

    keyring: a smitp.secure.KeyRing for authenticated requests; progress:
    callable(done, total, what) for long exchanges.
    """

    def __init__(self, line, keyring=None, progress=None):
        self.line = line
        self.keyring = keyring
        self.progress = progress
        self.ident = None
        self.mode = None
        self.aca = None
        self._synced = False
        self._reader = F.FrameReader()
        self._out = bytearray(F.MAX_FRAME)
        self.stats = {"frames": 0, "retries": 0, "resyncs": 0}

    # ---- prologue
    def _read_until(self, first, last, timeout, extra=0):
        """Bytes from `first` up to and including `last` (and `extra` more), or None."""
        buf = bytearray()
        end = time.monotonic() + timeout
        want = None
        while time.monotonic() < end:
            chunk = self.line.read(256)
            for b in chunk:
                if not buf and b != first:
                    continue
                buf.append(b)
                if want is None and b == last:
                    want = len(buf) + extra
                if want is not None and len(buf) >= want:
                    return bytes(buf)
        return None

    def _step(self, done, total, what):
        if self.progress:
            self.progress(done, total, what)

    def sign_on(self, mode="F", baud=None):
        """Request, identification, option select, switch; returns the Identification."""
        line = self.line
        line.set_line(I.SIGN_ON_BAUD, True)
        line.discard_input()
        self._step(0, 3, "request")
        line.write(b"/?!\r\n")
        raw = self._read_until(0x2F, I.LF, SIGN_ON_TIMEOUT_S)
        if raw is None:
            raise NoAnswer("no identification from the optical port (locked after failed authentications, "
                           "another rate, or nothing there)")
        ident = Identification(raw)
        self.ident = ident
        if ident.max_baud is None:
            raise PeerError("the meter offers no rate change (mode A/B identification %r)" % raw)
        z = ident.max_baud if baud is None else min(baud, ident.max_baud)
        self._step(1, 3, "identification %s" % ident.text)
        if mode == "F":
            if not ident.mode_f:
                raise PeerError("the meter does not offer mode F")
            line.write(bytes((I.ACK, I.MODE_F_PROTOCOL, 0x30 + z, I.MODE_F_MODE, I.CR, I.LF)))
            line.set_line(I.BAUDS[z], False)
            time.sleep(SWITCH_GUARD_S)
        else:
            line.write(bytes((I.ACK, 0x30, 0x30 + z, 0x30, I.CR, I.LF)))
            line.set_line(I.BAUDS[z], True)
        self.mode = mode
        self._synced = False
        self._reader = F.FrameReader()
        self._step(2, 3, "mode %s at %d Bd" % (mode, I.BAUDS[z]))
        return ident

    def sign_off(self):
        """End a mode F session with the break message; the meter returns to 300 Bd."""
        if self.mode == "F":
            self.line.write(F.BREAK)
            time.sleep(I.airtime_ms(len(F.BREAK), self.line.baud) / 1000 + 0.05)
        self.mode = None
        self.line.set_line(I.SIGN_ON_BAUD, True)

    # ---- mode C
    def readout(self, baud=None):
        """Mode C data readout: (Identification, [(address, value, unit)], raw message)."""
        ident = self.sign_on("C", baud)
        msg = self._read_until(RO.STX, RO.ETX, READOUT_TIMEOUT_S + I.airtime_ms(2048, self.line.baud) / 1000, 1)
        if msg is not None and self.line.pty:  # no pacing on a pty: the meter's UART is still sending
            time.sleep((I.airtime_ms(len(msg), self.line.baud) + 2 * T.OPT_DRAIN_GUARD_MS) / 1000)
        self.mode = None
        self.line.set_line(I.SIGN_ON_BAUD, True)
        if msg is None:
            raise NoAnswer("no data message after the option select")
        if RO.bcc(msg, 1, len(msg) - 1) != msg[-1]:
            raise BadAnswer("data message with a bad BCC")
        self._step(3, 3, "readout")
        values = []
        body = msg[1:-2].decode("ascii", "replace")
        for text in body.split("\r\n"):
            if not text or text == "!":
                continue
            while "(" in text:
                address, _, rest = text.partition("(")
                inner, _, text = rest.partition(")")
                value, _, unit = inner.partition("*")
                values.append((address, value, unit or None))
        return ident, values, msg

    # ---- mode F
    def exchange(self, dsap, ecc, lsdu, tries=None, accept=None):
        """One mode F request; returns the answer's (ECC, LLC data). Sends the same
        bytes `tries` times at most (default: 1 + RETRIES) while nothing comes.
        accept(LLC data, ECC): is this answer ours? (else a late one: dropped)"""
        n = F.encode(self._out, dsap, ecc, lsdu, from_meter=False)
        frame = bytes(self._out[:n])
        answer = resend(lambda: self.line.write(frame), lambda: self._answer(dsap, accept),
                        RETRIES + 1 if tries is None else tries, self.stats)
        if answer is None:
            raise NoAnswer("no mode F answer (the session may have ended or the port locked)")
        self.stats["frames"] += 1
        return answer

    def _answer(self, dsap, accept=None):
        r = self._reader
        end = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < end:
            chunk = self.line.read(256)
            i = 0
            while i < len(chunk):
                i += r.feed(chunk[i:], 0)
                f = r.next_frame()
                while f is not None:
                    if f[2] & F.CTL_METER and f[3] >> 4 == dsap:
                        got = (f[3] & 0x0F, bytes(f[4:4 + f[1] - 2]))
                        if accept is None or accept(got[1], got[0]):
                            return got
                    f = r.next_frame()
        return None

    def meter_aca(self):
        if self.aca is None:
            self.aca = self._call(client.read([R.ACA]))[R.ACA]
        return self.aca

    def _security(self, dsap=1):
        """The meter's session and a link on `dsap`, under the rules of smitp.secure."""
        if self.keyring is None:
            raise UsageError("authenticated requests need --keys FILE")
        aca = self.meter_aca()
        if aca not in self.keyring:
            raise UsageError("the key file has no entry for meter %s" % aca_text(aca))
        meter = self.keyring[aca]
        if not self._synced:  # learn the LMON without a failed attempt: the lockout counts those
            _OpticalLink(self, 1).secured(meter, secure.sync)
            self._synced = True
        return meter, _OpticalLink(self, dsap)

    def _call(self, op, auth=False, ecc=None, dsap=1):
        # op (a smitp.client request or procedure) on `dsap`, plain or authenticated
        meter, link = self._security(dsap) if auth else (None, _OpticalLink(self, dsap))
        return link.call(op, meter, ecc)

    def change_keys(self, k1, k2):
        """The key change procedure (smitp.secure.change_keys) through the application DSAP;
        afterwards the session uses the new pair. Returns how it went (a short text)."""
        meter, link = self._security(1)
        return link.secured(meter, secure.change_keys, k1, k2)

    def read(self, regs, auth=False, ecc=sec.ECC_CTR_READ, dsap=1, sizes=None):
        """READ.REQ of registers (mode F), one request per register, with
        progress; returns {id: raw bytes}. sizes: theirs (items of DSAP 0x03)."""
        out = {}
        for i, r in enumerate(regs):
            self._step(i, len(regs), "register 0x%04X" % r)
            out.update(self._call(client.read([r], None if sizes is None else [sizes[i]]), auth, ecc, dsap))
        self._step(len(regs), len(regs), "done")
        return out

    def write(self, values, auth=False, ecc=sec.ECC_ECB_WRITE, dsap=1):
        """WRITE.REQ of {id: raw bytes} (registers; on DSAP 0x03 its items); returns on ACK,
        raises Nack. Authenticated: AES-ECB with the write key by default, the only way the
        meter's policy lets it through."""
        self._call(client.write(values, sized=dsap == 1), auth, ecc, dsap)

    def command(self, apdu, auth=False, ecc=sec.ECC_ECB_WRITE):
        """COMMAND (ATTR 18) with the APDU given; returns the answer's LLC data."""
        return self._call(client.service(A.COMMAND, apdu), auth, ecc)

    def provision(self, k1=None, k2=None, max_baud=None, address=None):
        """Local provisioning: new keys by the key change procedure (as over the PLC), the
        optical parameters in one write-key request on DSAP 0x03 (AES-ECB). Returns how the
        key change went, or None."""
        values = {}
        if max_baud is not None:
            values[F.ITEM_OPT_BAUD] = bytes((max_baud,))
        if address is not None:
            raw = address.encode("ascii")
            if len(raw) > 16:
                raise UsageError("the device address has at most 16 characters")
            values[F.ITEM_OPT_ADDRESS] = raw + bytes(16 - len(raw))
        if not values and k1 is None:
            raise UsageError("nothing to provision")
        if values:
            self.write(values, auth=True, dsap=3)
        return None if k1 is None else self.change_keys(k1, k2)


class _OpticalLink(Link):
    """The transport: mode F frames on one DSAP."""

    def __init__(self, unit, dsap):
        super().__init__(unit.stats)
        self.unit, self.dsap = unit, dsap

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        return self.unit.exchange(self.dsap, ecc, lsdu, tries, accept)


@contextlib.contextmanager
def open_line(path):
    line = OpticalLine(path)
    line.open()
    try:
        yield line
    finally:
        line.close()


EMULATED_ACA = "A8040A1E8901"


@contextlib.contextmanager
def emulated_meter(workdir, aca=EMULATED_ACA, serial="EMU-0001", keys=None, boot_timeout=15.0):
    """An emulated board (real MicroPython) whose optical port is ready; keys
    (k1, k2) are provisioned into its flash first. Yields the EmulatedBoard."""
    from smitp.emulated_board import BoardError, EmulatedBoard
    from smitp.provision import provision_image

    board = EmulatedBoard("hhu-meter", aca, serial, workdir)
    if keys is not None:
        provision_image(board.flash, keys[0], keys[1])
    board.start()
    try:
        end = time.monotonic() + boot_timeout
        while "optical ready" not in board.log_text():
            if not board.alive() or time.monotonic() > end:
                raise BoardError("the emulated board did not start: %s" % board.log_text()[-300:])
            time.sleep(0.05)
        yield board
    finally:
        board.stop()


# ---- the `smitp hhu` command
INFO_REGISTERS = (R.SERIAL, R.ACA, R.FIRMWARE_ID, R.STATUS_WORD, R.CLOCK, R.ENERGY_IMPORT, R.ENERGY_EXPORT)


def add_arguments(sp):
    """Options and actions of `smitp hhu` (the caller added --json)."""
    import argparse

    def connection(p, defaults):
        d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
        p.add_argument("--port", default=d(None), help="serial port of an IEC 62056-21 optical probe")
        p.add_argument("--emulated", action="store_true", default=d(False),
                       help="boot a throwaway emulated meter (real MicroPython) and use its optical port")
        p.add_argument("--state", metavar="DIR", default=d(None),
                       help="the running feeder's state directory (the default place: smitp feeder)")
        p.add_argument("--aca", default=d(EMULATED_ACA),
                       help="the meter: of the running feeder (default), or of the one --emulated boots")
        p.add_argument("--keys", default=d(None), help='key file {"<ACA>": {"k1": "<hex>", "k2": "<hex>"}}; '
                       "with --emulated the meter gets these keys")
        p.add_argument("--baud", type=int, choices=I.BAUDS, default=d(None),
                       help="rate after the sign-on (default: the highest the meter offers)")
        if not defaults:
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")

    connection(sp, True)
    common = argparse.ArgumentParser(add_help=False)
    connection(common, False)
    sub = sp.add_subparsers(dest="action", metavar="ACTION")

    def action(name, help_text):
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    action("info", "sign on in mode F and read the meter's identity and energy registers (the default)")
    action("readout", "mode C data readout (IEC 62056-21, OBIS-named values)")
    for name, help_text in (("read", "read registers in mode F"), ("write", "write a register in mode F")):
        p = action(name, help_text)
        p.add_argument("--register", required=True, action="append" if name == "read" else None,
                       help="register id (0x003F) or name" + ("; repeat for several" if name == "read" else ""))
        p.add_argument("--auth", action="store_true", help="authenticated service (needs --keys)")
    p = action("command", "send a COMMAND (ATTR 18) in mode F")
    p.add_argument("--data", default="", help="the command's APDU after the ATTR, in hex")
    p.add_argument("--auth", action="store_true", help="authenticated, with the write key (needs --keys)")
    for name in ("read", "write", "command"):
        sub.choices[name].add_argument("--encrypt", choices=client.ENCRYPT_CHOICES, default="auto",
                                       help=client.ENCRYPT_HELP)
    sub.choices["write"].add_argument("--value", required=True, help="value: integer, text or hex")
    p = action("provision", "local provisioning in mode F: new keys (the key change procedure) and optical "
                            "port parameters, authenticated with the current keys of --keys")
    p.add_argument("--new-keys", help="key file with the meter's new k1/k2; once the meter uses them they "
                                      "replace the meter's entry in the --keys file")
    p.add_argument("--max-baud", type=int, choices=I.BAUDS, help="highest rate the identification offers")
    p.add_argument("--address", help="IEC 62056-21 device address (empty: none)")


def _ring(path):
    import json

    from smitp.aca import parse_aca

    if not path:
        return None, None
    ring = secure.KeyRing.load(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return ring, {aca_text(parse_aca(a)): (bytes.fromhex(e["k1"]), bytes.fromhex(e["k2"])) for a, e in data.items()}


@contextlib.contextmanager
def _line_for(args, raw_keys):
    import tempfile

    if args.port and args.emulated:
        raise ValueError("give --port PATH or --emulated, not both")
    if args.port:
        with open_line(args.port) as line:
            yield line
        return
    if not args.emulated:  # the running feeder's meter, through its optical pty
        from smitp import feeder

        with open_line(feeder.optical_port(args.state, args.aca.upper())) as line:
            yield line
        return
    keys = (raw_keys or {}).get(args.aca.upper())
    with tempfile.TemporaryDirectory(prefix="smitp-hhu-") as workdir:
        with emulated_meter(workdir, args.aca, keys=keys) as board:
            with open_line(board.optical_path) as line:
                yield line


def _registers(values):
    from smitp.values import register_json

    return [register_json(r, v) for r, v in values.items()]


def _print_registers(values, header=None):
    from smitp.values import register_name, show_value

    if header is not None:
        print(header)
    for r, v in values.items():
        print("0x%04X  %-32s %s" % (r, register_name(r), show_value(r, v)))


def run_command(args, progress=None):
    """Run `smitp hhu`; returns (report for --json, function printing it as text). With a meter
    that stays (--port, the feeder's) the LMON state goes back into the --keys file, whatever happened."""
    ring, raw_keys = _ring(args.keys)
    try:
        return _run(args, progress, ring, raw_keys)
    finally:
        if not args.emulated and ring is not None:
            ring.save(args.keys)


def _run(args, progress, ring, raw_keys):
    from smitp.values import encode_value, parse_register, register_json

    action = args.action or "info"
    z = None if args.baud is None else I.BAUDS.index(args.baud)
    ecc_of = lambda write: client.ecc_for(getattr(args, "encrypt", "auto"), write)  # noqa: E731
    with _line_for(args, raw_keys) as line:
        unit = HandHeldUnit(line, ring, progress)
        if action == "readout":
            ident, values, _msg = unit.readout(z)
            report = {"identification": ident.as_dict(),
                      "values": [{"address": a, "value": v, "unit": u} for a, v, u in values]}

            def text(rep):
                print("%s %s (%s)" % (ident.manufacturer, ident.text, "mode F offered" if ident.mode_f else "mode C"))
                for a, v, u in values:
                    print("%-8s %s%s" % (a, v, " " + u if u else ""))

            return report, text
        ident = unit.sign_on("F", z)
        try:
            report = {"identification": ident.as_dict(), "aca": aca_text(unit.meter_aca())}
            if action == "info":
                values = unit.read(INFO_REGISTERS)
                report["registers"] = _registers(values)
                text = lambda rep: _print_registers(  # noqa: E731
                    values, "%s %s, ACA %s" % (ident.manufacturer, ident.text, rep["aca"]))
            elif action == "read":
                regs = [parse_register(r) for r in args.register]
                values = unit.read(regs, auth=args.auth, ecc=ecc_of(False))
                report["registers"] = _registers(values)
                text = lambda rep: _print_registers(values)  # noqa: E731
            elif action == "write":
                reg = parse_register(args.register)
                raw = encode_value(reg, args.value)
                unit.write({reg: raw}, auth=args.auth, ecc=ecc_of(True))
                report.update({"register": register_json(reg, raw), "result": "ACK"})
                text = lambda rep: print("0x%04X written: ACK" % reg)  # noqa: E731
            elif action == "command":
                ans = unit.command(bytes.fromhex(args.data), auth=args.auth, ecc=ecc_of(True))
                report.update({"answer": ans.hex().upper(), "attr": A.NAMES.get(ans[0], str(ans[0]))})
                text = lambda rep: print("answer %s: %s" % (rep["attr"], rep["answer"]))  # noqa: E731
            else:  # provision
                k1 = k2 = None
                if args.new_keys:
                    _new_ring, new_raw = _ring(args.new_keys)
                    assert new_raw is not None  # a path was given
                    entry = new_raw.get(report["aca"])
                    if entry is None:
                        raise ValueError("the new key file has no entry for meter %s" % report["aca"])
                    k1, k2 = entry
                max_baud = None if args.max_baud is None else I.BAUDS.index(args.max_baud)
                outcome = unit.provision(k1, k2, max_baud, args.address)
                if k1 is not None:  # the meter uses the new pair: so does the key file
                    ring.save(args.keys, keys={report["aca"]: (k1, k2)}, counters=False)
                    report["key_change"] = outcome
                done = (["keys"] if k1 else []) + (["max_baud"] if max_baud is not None else []) + (
                    ["address"] if args.address is not None else [])
                report["provisioned"] = done
                text = lambda rep: print("meter %s: %s provisioned" % (rep["aca"], ", ".join(done)))  # noqa
            return report, text
        finally:
            unit.sign_off()
