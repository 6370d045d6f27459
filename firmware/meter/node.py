# The meter as a node of the PLC data link: takes one received PHY payload,
# returns at most one PHY payload to transmit (a repeated frame or an answer).
# Sans-io: the same object serves the board firmware and in-process meters of
# host simulations.
#
# Receive path as a reject ladder, each reject counted: frame codec (length,
# CRC, fields) -> repeater duty -> destination -> LLC/application.
from meter import mac
from meter.errors import DecodeError
from meter.llc import DSAP_APP
from meter.app import Application


class MeterNode:
    def __init__(self, aca, model, security=None):
        """aca: 6 bytes, natural order; model: the DataModel; security: a
        SecureLayer over self.app (built by make_security), or None."""
        self.aca = bytes(aca)
        self.air = mac.aca_to_air(aca)
        self.app = Application(model)
        self.secure = security(self.app) if security else None
        self.frame = mac.Frame()
        self.out = bytearray(mac.MAX_FRAME)
        self.outv = memoryview(self.out)
        self.stats = {"rx": 0, "bad": 0, "repeated": 0, "served": 0, "ignored": 0, "last_error": ""}

    def _my_repeater_position(self, f):
        """1-based position of this node in the repeater list, or 0."""
        buf = f.buf
        for i in range(f.repeaters):
            if mac.same_addr(buf, f.rp_addr(i), self.air):
                return i + 1
        return 0

    def on_phy(self, buf, n):
        """Handle buf[0:n]; return the length of the frame to send in self.out (0: none)."""
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
                return mac.relay(f, self.out)
            st["ignored"] += 1
            return 0
        if f.uplink or f.position != f.repeaters:
            st["ignored"] += 1
            return 0
        broadcast = mac.same_addr(buf, f.addr, mac.BROADCAST)
        if not broadcast and not mac.same_addr(buf, f.addr, self.air):
            st["ignored"] += 1
            return 0
        return self._serve(f, broadcast)

    def _serve(self, f, broadcast):
        st = self.stats
        if f.dsap != DSAP_APP or f.data_len < 1:
            st["ignored"] += 1
            return 0
        cls, max_resp, _slots = mac.DISCIPLINES[f.discipline]
        reply = not broadcast and cls != mac.CLASS_S
        limit = max_resp if reply else mac.MAX_LLC_DATA
        ecc = f.ecc
        if self.secure is not None and self.secure.handles(f.buf[f.data]):
            size, ecc = self.secure.handle(f.buf, f.data, f.data_len, ecc, limit)
            answer = self.secure.resp
        else:
            size = self.app.handle(f.buf, f.data, f.data_len, limit) if ecc == 0 else self.app.refuse()
            answer = self.app.resp
        if not reply or size == 0:
            return 0
        st["served"] += 1
        reps = f.repeaters
        # The answer goes back along the same repeaters; it is class S.
        route = memoryview(f.buf)[f.rp:f.rp + reps * mac.ADDR_LEN]
        return mac.encode(
            self.out, self.air, route, mac.DISC_S, True, reps + 1, False, f.dsap, ecc,
            memoryview(answer)[0:size],
        )
