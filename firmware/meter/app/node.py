# The meter as a node of the PLC data link: takes one received PHY payload,
# returns at most one PHY payload to transmit (a repeated frame or an answer).
# Sans-io: the same object serves the board firmware and in-process meters of
# host simulations.
#
# Receive path as a reject ladder, each reject counted: frame codec (length,
# CRC, fields) -> repeater duty -> destination -> LLC/application.
from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.diagnostics import Diagnostics
from meter.errors import DecodeError
from meter.link.llc import DSAP_APP, DSAP_DLMS, DSAP_NM
from meter.link.netmgmt import NetMgmt
from meter.app.services import Application
from meter.app.auth import grant_for
from meter.app.security import AUTH_OVERHEAD, MODE_ECB, ecc_mode
from meter.phy.contract import OPENED
from meter.app.bnode import BNodeRelay


def in_section(buf, off, sca):
    """Is the SCA-form address buf[off:off + 6] in sca's section (the
    broadcast's all-ones section is in every section)?"""
    if buf[off] == 0xFF and buf[off + 1] == 0xFF and buf[off + 2] == 0xFF:
        return True
    return buf[off] == sca[0] and buf[off + 1] == sca[1] and buf[off + 2] == sca[2]


class MeterNode:
    def __init__(self, aca, model, security=None, store=None, seed=0, bnode=None, dlms=None):
        """aca: 6 bytes, natural order; model: the DataModel; security: a
        SecureLayer over self.app (built by make_security), or None; store:
        keeps the network-management state (RAM if None); seed: RC slot choice;
        bnode: the local link to a B-Node (meter.link.bnodelink.ANodeLink), or None;
        dlms: the DLMS profile's convergence layer (meter.dlms.cl.ClServer), or None."""
        self.aca = bytes(aca)
        self.air = mac.aca_to_air(aca)
        self.app = Application(model)
        self.bnode = BNodeRelay(self.app, bnode)
        self.secure = security(self.app) if security else None
        self.dlms = dlms
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
        self._ans_addr = self.air  # the address an answer goes from: ACA, or the SCA it was addressed to
        # a request whose answer waits for the B-Node: the frame, its answer's address, authenticated?
        self._held = bytearray(mac.MAX_FRAME)
        self._held_frame = mac.Frame()
        self._held_addr = self.air
        self._held_secure = False
        self.ans_ecc = 0  # ECC of the answer on_lsdu gave

    def _my_repeater_position(self, f):
        """1-based position of this node in the repeater list, or 0. A 6-byte
        entry names it by ACA or by its whole SCA; a 2-byte entry (an
        SCA-addressed frame) by the sub-section and node of its SCA, in the
        section of the frame's ADDRESS (any section for the broadcast)."""
        buf = f.buf
        sca = self.nm.sca
        if f.rp_size == mac.ADDR_LEN:
            for i in range(f.repeaters):
                at = f.rp_addr(i)
                if mac.same_addr(buf, at, self.air) or (sca is not None and mac.same_addr(buf, at, sca)):
                    return i + 1
            return 0
        if sca is None or not in_section(buf, f.addr, sca):
            return 0
        for i in range(f.repeaters):
            at = f.rp_addr(i)
            if buf[at] == sca[3] and buf[at + 1] == sca[4]:
                return i + 1
        return 0

    def _every_copy(self, f):
        """A download block broadcast is kept from every copy of it, each hop's, not only
        the last one's (docs/protocol.md, "REPROG_BROADCAST copies"): a block is kept once,
        so one frame along a chain of repeaters feeds every meter that hears any of them."""
        return (not f.uplink and f.dsap == DSAP_APP and f.data_len > 0 and f.buf[f.data] == A.REPROG_BROADCAST
                and mac.same_addr(f.buf, f.addr, mac.BROADCAST))

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
        every = self._every_copy(f)
        if me:
            if every:  # a repeater keeps the block too, then passes it on
                self._serve(f, True, out)
            nxt = f.position - 1 if f.uplink else f.position + 1
            if nxt == me:
                st["repeated"] += 1
                return mac.relay(f, out)
            st["ignored"] += 1
            return 0
        if f.uplink and self.nm.collect(f):  # an answer to our own REQADDR broadcast
            return 0
        if f.uplink or (f.position != f.repeaters and not every):
            st["ignored"] += 1
            return 0
        broadcast = mac.same_addr(buf, f.addr, mac.BROADCAST)
        sca = self.nm.sca
        if broadcast or mac.same_addr(buf, f.addr, self.air):
            self._ans_addr = self.air
        elif sca is not None and mac.same_addr(buf, f.addr, sca):
            self._ans_addr = sca  # answered in the form it was addressed: the 2-byte route stays valid
        else:  # another meter's ACA or SCA
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
        dlms = self.dlms
        if f.dsap == DSAP_DLMS and dlms is not None:
            return self._serve_dlms(dlms, f, broadcast, out)
        if f.dsap != DSAP_APP or f.data_len < 1:
            st["ignored"] += 1
            return 0
        cls, max_resp, _slots = mac.DISCIPLINES[f.discipline]
        reply = not broadcast and cls != mac.CLASS_S
        limit = max_resp if reply else mac.MAX_LLC_DATA
        bn = self.bnode
        bn.accepting = reply and cls == mac.CLASS_RB  # the B-Node services: RB only, on the power line
        bn.now = self._now
        size = self._serve_lsdu(f.buf, f.data, f.data_len, f.ecc, limit, self._now)
        bn.accepting = False
        if self.app.deferred:
            self.app.deferred = False
            return self._hold(f)
        if not reply or size == 0:
            return 0
        st["served"] += 1
        return mac.answer(out, f, self._ans_addr, self._ans_ecc, self._ans_buf, size)

    def _serve_dlms(self, dlms, f, broadcast, out):
        # One CLPDU, unicast, request/respond, ECC 0 (xDLMS has its own security);
        # or a broadcast, class S: never answered (meter/dlms/broadcast.py).
        cls, max_resp, _slots = mac.DISCIPLINES[f.discipline]
        if broadcast and cls == mac.CLASS_S and f.ecc == 0:
            try:
                dlms.broadcast(f.buf, f.data, f.data_len)
            except Exception as e:  # noqa: BLE001 - the guard, as in on_phy
                return self._fault("dlms", e)
            return 0
        if broadcast or cls == mac.CLASS_S or f.ecc != 0:
            self.stats["ignored"] += 1
            return 0
        try:
            size = dlms.serve(f.buf, f.data, f.data_len, max_resp, self._now)
        except Exception as e:  # noqa: BLE001 - the guard, as in on_phy
            return self._fault("dlms", e)
        if size == 0:
            return 0
        self.stats["served"] += 1
        return mac.answer(out, f, self._ans_addr, 0, dlms.ans, size)

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

    def _hold(self, f):
        # The answer waits for the B-Node: keep the request frame to answer along later.
        n = f.length
        self._held[0:n] = memoryview(f.buf)[0:n]
        self._held_addr = self._ans_addr
        self._held_secure = self._ans_buf is not self.app.resp
        self.stats["held"] = self.stats.get("held", 0) + 1
        return 0

    def _answer_held(self, now_ms, out):
        size = self.bnode.finish(now_ms)
        if not size:
            return 0
        buf, ecc = self.app.resp, 0
        secure = self.secure
        if self._held_secure and secure is not None:
            size, ecc = secure.finish(size)
            buf = secure.resp
            if not size:
                return 0
        f = self._held_frame
        mac.decode(f, self._held, self._held[0] + 1 + mac.CRC_LEN)
        self.stats["served"] += 1
        return mac.answer(out, f, self._held_addr, ecc, buf, size)

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
        """Length of a delayed frame (RC slot answer, REQADDR, an answer that
        waited for the B-Node) due at now_ms, written in `out` (None:
        self.out); 0: none. Call until it returns 0."""
        out = self.out if out is None else out
        try:
            n = self._answer_held(now_ms, out)
        except Exception as e:  # noqa: BLE001 - the guard, as in on_phy
            n = self._fault("bnode", e)
        return n or self.nm.poll(now_ms, out)

    def next_timeout(self, now_ms):
        """Milliseconds until poll() has a frame (0: now), or -1 if none is pending."""
        t = self.nm.next_timeout(now_ms)
        u = self.bnode.next_timeout(now_ms)
        if u >= 0 and (t < 0 or u < t):
            return u
        return t
