# What every modem driver of meter/phy/contract.py keeps alike, allocation-free once
# built: the transmit slots, the bytes due on the UART and the event ring.
# A driver (meter/phy/st7580.py) subclasses DriverBase and adds its framing and
# link rules.
from meter.phy import contract as phy


class DriverBase:
    """Transmit slots: a ring of whole-frame buffers, `queue` waiting plus
    the one in flight, which keeps its buffer until its request ends. Each
    request is written once into its slot (a PHY frame in place, through
    tx_space) and goes to the UART from there.

    Events: a ring of parallel lists (kind, two ints, data); the data stays in
    the receive buffer it came in, named by its index in `gens`, the
    receiver's list of buffer generations. An event whose buffer changed
    generation before next_kind() took it is dropped and counted as lost.
    The subclass sets the event's fields in _fields()."""

    def __init__(self, queue, events, frame_size, payload_at, payload_len, gens, out_size=64):
        slots = queue + 1
        self._tx = [bytearray(frame_size) for _ in range(slots)]
        self._txv = tuple(memoryview(b) for b in self._tx)
        self._txp = tuple(memoryview(b)[payload_at:payload_at + payload_len] for b in self._tx)
        self._tn = [0] * slots  # frame length
        self._qc = [0] * slots  # command
        self._qk = [0] * slots  # tag the driver gave the request
        self._queue = queue
        self._qh = 0
        self._qn = 0  # waiting, the request in flight not counted
        self._fs = -1  # slot of the request in flight
        self._due = -1  # slot whose frame the next to_send() gives
        self._tag = 0
        self._out = bytearray(out_size)  # single bytes due (acknowledgements)
        self._out_mv = memoryview(self._out)
        self._out_n = 0
        self._gens = gens
        self._ev = [0] * events  # kind
        self._ea = [0] * events
        self._eb = [0] * events
        self._ei = [-1] * events  # receive buffer holding the data, -1: none
        self._eg = [0] * events  # its generation when queued
        self._el = [0] * events  # data length
        self._eh = 0
        self._en = 0
        # the contract's fields (meter.phy.contract)
        self.out = self._out_mv
        self.treq = 1
        self.ready = False
        self.rx = None
        self.rx_len = 0
        self.quality = phy.new_quality()
        self.ev_cmd = 0
        self.ev_code = 0
        self.stats = {
            "overflow": 0,  # requests refused (queue full), bytes or frames due but not taken
            "lost": 0,  # events dropped (event queue full, buffer reused)
        }

    # ---- transmit slots
    def tx_space(self):
        i = self._tail()
        return None if i < 0 else self._txp[i]

    def _tail(self):
        # Never the slot in flight: the ring has one slot more than the queue.
        if self._qn >= self._queue:
            return -1
        return (self._qh + self._qn) % len(self._tx)

    def _slot(self):
        i = self._tail()
        if i < 0:
            self.stats["overflow"] += 1
        return i

    def _commit(self, i, cmd, n):
        self._tn[i] = n
        self._qc[i] = cmd
        self._qk[i] = self._tag
        self._qn += 1

    def _pop(self):
        """Put the oldest waiting request in flight; its slot index."""
        i = self._qh
        self._fs = i
        self._qh = (i + 1) % len(self._tx)
        self._qn -= 1
        return i

    def _end(self):
        """The request in flight ended; its slot's tag."""
        fs = self._fs
        if self._due == fs:  # never written: no use any more
            self._due = -1
        self._fs = -1
        return self._qk[fs]

    def answer(self, n, ecc=0):
        """Answer an LSDU event (meter.phy.contract); a driver whose modem
        leaves the data link to the firmware has none to answer."""
        self.stats["overflow"] += 1
        return False

    # ---- bytes for the UART
    def _send_byte(self, b):
        n = self._out_n
        if n < len(self._out):
            self._out[n] = b
            self._out_n = n + 1
        else:
            self.stats["overflow"] += 1

    def _write_frame(self):
        """The frame in flight is due; its length."""
        if self._due >= 0:  # the caller did not take the last one: it is lost
            self.stats["overflow"] += 1
        self._due = self._fs
        return self._tn[self._fs]

    def to_send(self):
        """Count of bytes to write to the UART now from `out` (single bytes
        first, then a frame); call again until 0."""
        n = self._out_n
        if n:
            self._out_n = 0
            self.out = self._out_mv
            return n
        i = self._due
        if i < 0:
            return 0
        self._due = -1
        self.out = self._txv[i]
        return self._tn[i]

    def data_to_send(self):
        """Host form of to_send(): every byte due now as one bytes object, or None."""
        out = b""
        n = self.to_send()
        while n:
            out += bytes(self.out[0:n])
            n = self.to_send()
        return out or None

    # ---- events
    def _event(self, kind, a, b, buf=-1, n=0):
        size = len(self._ev)
        if self._en == size:
            self.stats["lost"] += 1
            return
        i = (self._eh + self._en) % size
        self._ev[i] = kind
        self._ea[i] = a
        self._eb[i] = b
        self._ei[i] = buf
        if buf >= 0:
            self._eg[i] = self._gens[buf]
        self._el[i] = n
        self._en += 1

    def next_kind(self):
        size = len(self._ev)
        while self._en:
            i = self._eh
            self._eh = (i + 1) % size
            self._en -= 1
            b = self._ei[i]
            if b >= 0 and self._gens[b] != self._eg[i]:
                self.stats["lost"] += 1  # its frame was overwritten before it was taken
                continue
            kind = self._ev[i]
            self.rx_len = self._el[i]
            self._fields(kind, self._ea[i], self._eb[i], b)
            return kind
        return phy.NONE

    def _fields(self, kind, a, b, buf):
        raise NotImplementedError
