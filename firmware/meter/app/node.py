# The meter as a node of the PLC data link: takes one received PHY payload,
# returns at most one PHY payload to transmit (a repeated frame or an answer).
# Sans-io: the same object serves the board firmware and in-process meters of
# host simulations.
#
# Receive path as a reject ladder, each reject counted: frame codec (length,
# CRC, fields) -> repeater duty -> destination -> LLC/application.
from meter.link import mac
from meter.model import registers as R
from meter.diagnostics import Diagnostics
from meter.errors import DecodeError
from meter.link.llc import DSAP_APP, DSAP_NM
from meter.link.netmgmt import NetMgmt
from meter.app.services import Application
from meter.app.auth import grant_for
from meter.app.security import AUTH_OVERHEAD, MODE_ECB, ecc_mode
from meter.phy.contract import OPENED


class MeterNode:
    def __init__(self, aca, model, security=None, store=None, seed=0):
        """aca: 6 bytes, natural order; model: the DataModel; security: a
        SecureLayer over self.app (built by make_security), or None; store:
        keeps the network-management state (RAM if None); seed: RC slot choice."""
        self.aca = bytes(aca)
        self.air = mac.aca_to_air(aca)
        self.app = Application(model)
        self.secure = security(self.app) if security else None
        self.frame = mac.Frame()
        self.out = bytearray(mac.MAX_FRAME)
        self.outv = memoryview(self.out)
        self.stats = {"rx": 0, "bad": 0, "repeated": 0, "served": 0, "ignored": 0, "faults": 0, "last_error": ""}
        self.diag = Diagnostics(store)
        model.provide(R.DIAGNOSTICS, self.diag.value)
        self.nm = NetMgmt(self.aca, self.air, store, seed, self.stats)
        self._now = 0  # ms (ticks) and link quality of the frame being handled
        self._quality = None
        self._ans_ecc = 0  # ECC and buffer of the last answer of _serve_lsdu
        self._ans_buf = self.app.resp
        self.ans_ecc = 0  # ECC of the answer on_lsdu gave

    def _my_repeater_position(self, f):
        """1-based position of this node in the repeater list, or 0."""
        buf = f.buf
        for i in range(f.repeaters):
            if mac.same_addr(buf, f.rp_addr(i), self.air):
                return i + 1
        return 0

    def _fault(self, where, exc):
        # The guard around every frame: a fault costs this frame, never the meter.
        self.stats["faults"] += 1
        self.stats["last_error"] = where
        self.diag.fault(where, exc)
        return 0

    def on_phy(self, buf, n, now_ms=0, quality=None, out=None):
        """Handle buf[0:n] received at now_ms (ticks); return the length of the
        frame to send now, written in `out` (a modem driver's tx_space(); None:
        self.out), 0: none. quality: the modem's link figures for this frame
        (meter.phy.contract Q_*), or None. Never raises; allocates nothing for a plain
        request or a frame to repeat."""
        try:
            return self._on_phy(buf, n, now_ms, quality, self.out if out is None else out)
        except Exception as e:  # noqa: BLE001 - the guard: count, log, drop the frame
            return self._fault("frame", e)

    def _on_phy(self, buf, n, now_ms, quality, out):
        self._now = now_ms
        self._quality = quality
        st = self.stats
        st["rx"] += 1
        f = self.frame
        try:
            mac.decode(f, buf, n)
        except DecodeError as e:
            st["bad"] += 1
            st["last_error"] = e.field
            return 0
        me = self._my_repeater_position(f)
        if me:
            nxt = f.position - 1 if f.uplink else f.position + 1
            if nxt == me:
                st["repeated"] += 1
                return mac.relay(f, out)
            st["ignored"] += 1
            return 0
        if f.uplink and self.nm.collect(f):  # an answer to our own REQADDR broadcast
            return 0
        if f.uplink or f.position != f.repeaters:
            st["ignored"] += 1
            return 0
        broadcast = mac.same_addr(buf, f.addr, mac.BROADCAST)
        if not broadcast and not mac.same_addr(buf, f.addr, self.air):
            st["ignored"] += 1
            return 0
        return self._serve(f, broadcast, out)

    def _serve(self, f, broadcast, out):
        st = self.stats
        if f.dsap == DSAP_NM and f.data_len >= 1:
            n = self.nm.serve(f, broadcast, self._now, self._quality, out)
            if n:
                st["served"] += 1
            return n
        if f.dsap != DSAP_APP or f.data_len < 1:
            st["ignored"] += 1
            return 0
        cls, max_resp, _slots = mac.DISCIPLINES[f.discipline]
        reply = not broadcast and cls != mac.CLASS_S
        limit = max_resp if reply else mac.MAX_LLC_DATA
        size = self._serve_lsdu(f.buf, f.data, f.data_len, f.ecc, limit, self._now)
        if not reply or size == 0:
            return 0
        st["served"] += 1
        return mac.answer(out, f, self.air, self._ans_ecc, self._ans_buf, size)

    def serve_lsdu(self, buf, off, n, ecc, limit, now_ms=None):
        """Serve one application LSDU buf[off:off+n] that came with `ecc`, from
        any port (PLC, optical mode F): the same services, keys and LMON rules.
        Returns (answer length, answer ECC, buffer holding the answer); the
        buffer is reused by the next call. Never raises: a fault gives no answer."""
        size = self._serve_lsdu(buf, off, n, ecc, limit, now_ms)
        return size, self._ans_ecc, self._ans_buf

    def _serve_lsdu(self, buf, off, n, ecc, limit, now_ms):
        # serve_lsdu without the tuple: the answer's ECC and buffer in _ans_ecc, _ans_buf
        self._ans_ecc = ecc
        self._ans_buf = self.app.resp
        try:
            if self.secure is not None and self.secure.handles(buf[off]):
                size, self._ans_ecc = self.secure.handle(buf, off, n, ecc, limit, now_ms)
                self._ans_buf = self.secure.resp
                return size
            if ecc == 0:
                return self.app.handle(buf, off, n, limit)
            # A plain ATTR sent encrypted is not decrypted: NACK 6 in clear,
            # ECC 0 (docs/protocol.md, "Plain ATTRs with ECC other than 0").
            self._ans_ecc = 0
            return self.app.refuse()
        except Exception as e:  # noqa: BLE001 - the guard, as in on_phy
            self._ans_ecc = 0
            self._ans_buf = self.app.resp
            return self._fault("service", e)

    def on_lsdu(self, buf, n, ecc, limit, now_ms, out):
        """An application LSDU buf[0:n] handed over by a modem that runs the
        data link itself (meter.phy.contract LSDU): its answer copied into
        `out` (at most `limit` bytes); returns its length, its ECC in
        self.ans_ecc; 0: no answer. Never raises; allocates nothing."""
        self.stats["rx"] += 1
        if out is None:
            out = self.out
        if len(out) < limit:
            limit = len(out)
        if ecc & OPENED:  # opened by the modem: in clear, with the rights of its key
            size = self._serve_opened(buf, n, ecc & 0x0F, limit)
        else:
            size = self._serve_lsdu(buf, 0, n, ecc, limit, now_ms)
        self.ans_ecc = self._ans_ecc
        src = self._ans_buf
        for i in range(size):
            out[i] = src[i]
        if size:
            self.stats["served"] += 1
        return size

    def _serve_opened(self, buf, n, ecc, limit):
        self._ans_ecc = 0
        self._ans_buf = self.app.resp
        room = limit - AUTH_OVERHEAD
        if ecc_mode(ecc) == MODE_ECB:
            room = (room - 1) // 16 * 16  # the answer, padded by the modem, still fits
        try:
            return self.app.handle(buf, 0, n, room, grant_for(ecc))
        except Exception as e:  # noqa: BLE001 - the guard, as in on_phy
            return self._fault("service", e)

    def poll(self, now_ms, out=None):
        """Length of a delayed frame (RC slot answer, REQADDR) due at now_ms,
        written in `out` (None: self.out); 0: none. Call until it returns 0."""
        return self.nm.poll(now_ms, self.out if out is None else out)

    def next_timeout(self, now_ms):
        """Milliseconds until poll() has a frame (0: now), or -1 if none is pending."""
        return self.nm.next_timeout(now_ms)
