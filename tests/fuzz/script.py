# One fuzz input: a short script of operations in one byte string, so that
# the corpus (hex) replays it exactly and the generators never look at the
# meter's state. Operations:
#   L mon(8)            state of the meter: the test keys in force, LMON = mon
#   Q sig snr imp ph    link quality of the next frames (meter.link.netmgmt Q_*)
#   F len(2) bytes      bytes arrive on the entry point's port
#   T ms(4)             time passes; the timers run
#   R kind(1)           the host side queues a request (ST7580 driver)
# Numbers are big-endian.
OP_LMON = 0x4C
OP_QUALITY = 0x51
OP_DATA = 0x46
OP_WAIT = 0x54
OP_REQUEST = 0x52
_UNKNOWN = 0xFF


class Script:
    def __init__(self):
        self.buf = bytearray()

    def lmon(self, mon):
        self.buf.append(OP_LMON)
        self.buf.extend(mon.to_bytes(8, "big"))
        return self

    def quality(self, sig, snr, imp, phase):
        """Bytes as the modem might report them; 0xFF: not given."""
        self.buf.append(OP_QUALITY)
        self.buf.extend(bytes((sig, snr, imp, phase)))
        return self

    def data(self, b):
        self.buf.append(OP_DATA)
        self.buf.extend(len(b).to_bytes(2, "big"))
        self.buf.extend(b)
        return self

    def wait(self, ms):
        self.buf.append(OP_WAIT)
        self.buf.extend(ms.to_bytes(4, "big"))
        return self

    def request(self, kind):
        self.buf.append(OP_REQUEST)
        self.buf.append(kind & 0xFF)
        return self

    def bytes(self):
        return bytes(self.buf)


def _quality(b):
    # SIG dBuV (byte - 20: also below zero), SNR dB signed, impedance ohm, phase
    def v(x, f):
        return None if x == _UNKNOWN else f(x)

    phase = None if b[3] > 1 else bool(b[3])
    return [v(b[0], lambda x: x - 20), v(b[1], lambda x: x - 256 if x > 127 else x), v(b[2], lambda x: x / 2), phase]


def _next(blob, p):
    # (op, argument, position after it) of the operation at blob[p]
    n = len(blob)
    op = blob[p]
    p += 1
    if op == OP_LMON:
        size = 8
    elif op == OP_QUALITY:
        size = 4
    elif op == OP_DATA:
        if p + 2 > n:
            raise ValueError("script cut in a length")
        size = (blob[p] << 8) | blob[p + 1]
        p += 2
    elif op == OP_WAIT:
        size = 4
    elif op == OP_REQUEST:
        size = 1
    else:
        raise ValueError("unknown script operation 0x%02x" % op)
    if p + size > n:
        raise ValueError("script cut in an operation")
    arg = blob[p:p + size]
    if op == OP_LMON or op == OP_WAIT or op == OP_REQUEST:
        arg = int.from_bytes(arg, "big")
    elif op == OP_QUALITY:
        arg = _quality(arg)
    return op, arg, p + size


def ops(blob):
    """(op, argument) pairs of a script; ValueError if it is cut short."""
    p = 0
    while p < len(blob):
        op, arg, p = _next(blob, p)
        yield op, arg


def split(blob):
    """The operations of a script, each as its own bytes (to drop some)."""
    out = []
    p = 0
    while p < len(blob):
        q = _next(blob, p)[2]
        out.append(bytes(blob[p:q]))
        p = q
    return out
