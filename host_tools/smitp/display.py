"""`smitp display`: pictures of what an emulated meter's display shows.

The emulated board draws its LCD into a MicroPython framebuf and writes it to
a dump file after each change (boards/unix/board.py, EmulatedDisplay). This
module reads the dump and turns it into PNG pictures, and drives the meter the
way a person and a utility would: button presses through the board's control
pipe, display registers through PLC (authenticated writes with the write key).
Register layouts and display rules: docs/data-model.md, "Display management".
"""

import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meter.display import manager as D

from meter.display import screen as SC
from meter.model import registers as R
from meter import timers as T
from smitp.png import write_png

if TYPE_CHECKING:
    from smitp.concentrator import Concentrator
    from smitp.emulated_board import EmulatedBoard
    from smitp.network import Network

_HEAD = struct.Struct(">4sBHHIH")  # magic, format, width, height, sequence, text length
FMT_GS2_HMSB = 2
# LCD colours by pixel level: background, unlit segment, (unused), lit segment
PALETTE = [(206, 214, 180), (190, 199, 164), (120, 128, 108), (34, 40, 36)]
SCALE = 4
SHORT_PRESS_S = 0.15
LONG_PRESS_S = T.DISPLAY_LONG_PRESS_MS / 1000.0 + 0.5
METER_ACA = "A8040A1E8901"
PRIORITIES = {"info": D.PRIO_INFO, "high": D.PRIO_HIGH, "urgent": D.PRIO_URGENT}
# four pixels of a GS2_HMSB byte, the leftmost in the low bits
_GS2 = [bytes(((b >> s) & 3) for s in (0, 2, 4, 6)) for b in range(256)]


class DumpError(ValueError):
    pass


class Frame:
    """One picture of the display: pixel levels (0..3, one byte each) and the
    screen's character model as text."""

    def __init__(self, width, height, seq, pixels, text):
        self.width = width
        self.height = height
        self.seq = seq
        self.pixels = pixels
        self.text = text

    @property
    def fields(self):
        parts = self.text.split("|")
        if len(parts) != 7:
            raise DumpError("screen text %r" % self.text)
        names = ("mode", "show", "code", "value", "unit", "line")
        out: dict[str, Any] = dict(zip(names, parts[:6]))
        out["icons"] = [i for i in parts[6].split(",") if i]
        return out

    def png(self, path, scale=SCALE):
        return write_png(path, self.width, self.height, self.pixels, PALETTE, scale)

    def __repr__(self):
        return "Frame(%d, %r)" % (self.seq, self.text)


def parse_dump(raw):
    """A display dump of the emulated board -> Frame."""
    if len(raw) < _HEAD.size:
        raise DumpError("dump of %d bytes" % len(raw))
    magic, fmt, w, h, seq, tlen = _HEAD.unpack_from(raw)
    if magic != b"SMDP" or fmt != FMT_GS2_HMSB or w % 4:
        raise DumpError("not a display dump (magic %r, format %d, width %d)" % (magic, fmt, w))
    n = w * h // 4
    body = raw[_HEAD.size:_HEAD.size + n]
    if len(body) != n or len(raw) != _HEAD.size + n + tlen:
        raise DumpError("dump of %d bytes for %d x %d and %d bytes of text" % (len(raw), w, h, tlen))
    pixels = b"".join(_GS2[b] for b in body)
    return Frame(w, h, seq, pixels, raw[_HEAD.size + n:].decode("ascii", "replace"))


# ---- register values
def message_value(text, priority=D.PRIO_INFO, minutes=0):
    """Raw value of the utility message register (0x0D10)."""
    if not (text.isascii() and text.isprintable()):
        raise ValueError("a message is printable ASCII text")
    raw = text.encode("ascii")
    if len(raw) > D.MSG_TEXT_LEN:
        raise ValueError("a message holds at most %d characters" % D.MSG_TEXT_LEN)
    if not 0 <= minutes <= 0xFFFF:
        raise ValueError("duration: 0..65535 minutes")
    return bytes((priority, minutes >> 8, minutes & 0xFF)) + raw + bytes(D.MSG_TEXT_LEN - len(raw))


def special_value(code, minutes=0):
    """Raw value of the special message register (0x0D12)."""
    if not 0 <= code <= 255 or not 0 <= minutes <= 0xFFFF:
        raise ValueError("special message: code 0..255, duration 0..65535 minutes")
    return bytes((code, minutes >> 8, minutes & 0xFF))


def list_value(regs):
    """Raw value of a display list register (0x0D01, 0x0D02): up to 8 ids."""
    if len(regs) > 8:
        raise ValueError("a display list holds at most 8 registers")
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    return raw + bytes(16 - len(raw))


def timing_value(dwell=0, alternate=0, test=0):
    """Raw value of the display timing register (0x0D03); 0 keeps a default."""
    for v in (dwell, alternate, test):
        if not 0 <= v <= 255:
            raise ValueError("display times: 0..255 s")
    return bytes((dwell, alternate, test, 0))


def message_state(raw):
    """Raw message state (0x0D11, 0x0D13) -> {"state": name, "time": seconds}."""
    names = D.MSG_STATE_NAMES
    return {"state": names[raw[0]] if raw[0] < len(names) else raw[0], "time": int.from_bytes(raw[1:5], "big")}


def one_meter(aca=METER_ACA):
    """A concentrator and one meter on a short line."""
    return {"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": aca}],
            "links": [{"a": "dcu", "b": "m1", "attenuation_db": 40}]}


class EmulatedMeter:
    """One emulated board on a simulated line with a concentrator that holds
    its keys (provisioned at start): write display registers over PLC, press
    its button, take pictures of its display. A context manager."""

    def __init__(self, workdir=None, import_w=0, export_w=0, aca=METER_ACA):
        self.aca_text = aca
        self.workdir = workdir
        self.board_options = {"import_w": import_w, "export_w": export_w}
        self.net: Network | None = None
        self.conc: Concentrator | None = None
        self.board: EmulatedBoard | None = None
        self._tmp = None

    def __enter__(self):
        from smitp.concentrator import Concentrator, parse_aca
        from smitp.demo import wait_until_ready
        from smitp.network import neighbourhood
        from smitp.secure import KeyRing

        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="smitp-display-")
            self.workdir = self._tmp.name
        os.makedirs(self.workdir, exist_ok=True)
        k1, k2 = os.urandom(16), os.urandom(16)
        ring = KeyRing.from_dict({self.aca_text: {"k1": k1.hex(), "k2": k2.hex()}})
        self.aca = parse_aca(self.aca_text)
        try:
            self.net, port = neighbourhood(one_meter(self.aca_text), self.workdir, boards=True,
                                           keys={self.aca_text: (k1, k2)}, **self.board_options)
            self.board = self.net.boards["m1"].board
            wait_until_ready(self.net)
            self.conc = Concentrator(port, keyring=ring)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.net is not None:
            self.net.close()
            self.net = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _live(self):
        """(network, concentrator, board) inside the with block."""
        if self.net is None or self.conc is None or self.board is None:
            raise RuntimeError("the emulated meter runs inside its with block only")
        return self.net, self.conc, self.board

    # ---- the utility's side
    def write(self, values, auth=True):
        """WRITE.REQ of {reg: raw}; authenticated and encrypted with the write key unless auth is False."""
        self._live()[1].write(self.aca, values, auth=auth)

    def read(self, regs, auth=False):
        return self._live()[1].read(self.aca, list(regs), auth=auth)

    # ---- the customer's side
    def press(self, long=False):
        """Push the button and let it go after a short or a long press."""
        net, _, board = self._live()
        board.button(True)
        net.run_for(LONG_PRESS_S if long else SHORT_PRESS_S)
        board.button(False)

    def run_for(self, seconds):
        self._live()[0].run_for(seconds)

    def power_cycle(self):
        """Cut the supply and power the board up again over the same flash."""
        from smitp.demo import wait_until_ready

        net, _, board = self._live()
        slot = net.boards["m1"]
        boots = board.log_text().count("modem configured")
        board.power_cut()
        board.start()
        slot.emu.power_on(net.clock.now() * 1000)
        if not net.run_until(lambda: board.log_text().count("modem configured") > boots, 20):
            raise TimeoutError("the board did not come back:\n" + board.log_text()[-1000:])
        wait_until_ready(net)

    # ---- pictures
    def frame(self):
        """What the display shows now (its last dump), or None before the first."""
        raw = self._live()[2].display_dump()
        return parse_dump(raw) if raw else None

    def wait_frame(self, want=None, timeout_s=10.0):
        """The first frame for which want(frame.fields) holds (any frame if None)."""
        found = []

        def ready():
            f = self.frame()
            if f is not None and (want is None or want(f.fields)):
                found.append(f)
                return True
            return False

        if not self._live()[0].run_until(ready, timeout_s):
            f = self.frame()
            raise TimeoutError("the display did not show what was expected; it shows %r" % (f and f.text))
        return found[0]


def frame_paths(png, frames):
    """out.png -> [out.png] for one frame, [out-01.png, out-02.png, ...] for more."""
    p = Path(png)
    if frames == 1:
        return [p]
    width = max(2, len(str(frames)))
    return [p.with_name("%s-%0*d%s" % (p.stem, width, i + 1, p.suffix or ".png")) for i in range(frames)]


def run(png=None, frames=1, interval_s=1.0, scale=SCALE, workdir=None, import_w=1200, export_w=0,
        scroll=None, alternate=None, dwell=None, message=None, priority="info", minutes=0, special=None,
        presses=(), mode=None, settle_s=0.5, progress=None):
    """Boot an emulated meter, apply the settings (over PLC, authenticated),
    press its button, then capture `frames` pictures `interval_s` apart.
    Returns {"frames": [...], "message": state, "special": state}."""
    if frames < 1:
        raise ValueError("--frames must be at least 1")
    values = {}
    if scroll is not None:
        values[R.DISPLAY_SCROLL] = list_value(scroll)
    if alternate is not None:
        values[R.DISPLAY_ALTERNATE] = list_value(alternate)
    if dwell is not None:
        values[R.DISPLAY_TIMING] = timing_value(dwell)
    if message is not None:
        values[R.DISPLAY_MESSAGE] = message_value(message, PRIORITIES[priority], minutes)
    if special is not None:
        values[R.DISPLAY_SPECIAL] = special_value(special, minutes)
    if mode is not None:
        values[R.DISPLAY_MODE] = bytes((SC.MODE_NAMES.index(mode),))
    paths = frame_paths(png, frames) if png else [None] * frames
    report: dict[str, Any] = {"frames": []}
    with EmulatedMeter(workdir, import_w, export_w) as meter:
        meter.wait_frame()
        if values:
            meter.write(values)
        for kind in presses:
            meter.press(long=kind == "long")
        meter.run_for(settle_s)
        for i, path in enumerate(paths):
            if progress:
                progress(i, frames, str(path or ""))
            if i:
                meter.run_for(interval_s)
            f = meter.frame()
            assert f is not None  # wait_frame() saw one
            entry = dict(f.fields, seq=f.seq)
            if path is not None:
                f.png(path, scale)
                entry["file"] = str(path)
            report["frames"].append(entry)
        states = meter.read([R.DISPLAY_MESSAGE_STATE, R.DISPLAY_SPECIAL_STATE])
        report["message"] = message_state(states[R.DISPLAY_MESSAGE_STATE])
        report["special"] = message_state(states[R.DISPLAY_SPECIAL_STATE])
    if progress:
        progress(frames, frames, "")
    return report


def print_report(report, out=None):
    import sys

    out = out or sys.stdout
    for f in report["frames"]:
        what = " ".join(x for x in (f["code"], f["value"], f["unit"]) if x)
        print("%-24s %-9s %-7s %-22s | %-16s | %s" % (f.get("file", "-"), f["mode"], f["show"], what, f["line"],
                                                     ",".join(f["icons"])), file=out)
