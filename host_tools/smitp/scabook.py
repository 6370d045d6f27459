"""The concentrator's logical addresses: which meter holds which SCA, and the
form a frame to a meter takes.

An SCA-addressed frame carries 2-byte repeater entries (sub-section | node)
instead of 6-byte ACAs (docs/protocol.md, "MAC frame"); the destination
address is 6 bytes either way. So a meter is addressed by its SCA when its
route has repeaters and every one of them, and the meter, holds an SCA of
one section: 4 bytes saved per repeater, in the request and the answer, on
every hop. A direct meter keeps its ACA (nothing to save). An SCA is known to
one meter only: a second meter reported with it is a collision, and neither
is addressed by it until registration settles it.
"""

from meter.link import mac
from meter.link.netmgmt import valid_sca
from smitp.aca import aca_text
from smitp.errors import PeerError


class ScaCollision(PeerError):
    """Two meters reported holding one SCA."""


class ScaBook:
    def __init__(self):
        self.by_aca = {}  # ACA (natural order) -> SCA (6 bytes, on air)
        self.by_sca = {}  # SCA -> ACA
        self.doubtful = set()  # SCAs more than one meter claimed

    def learn(self, aca, sca):
        """Meter `aca` holds `sca` (a REGISTER.RESP said so); raises ScaCollision
        (and stops using that SCA) if another meter holds it."""
        sca = bytes(sca)
        if len(sca) != mac.ADDR_LEN or not valid_sca(sca, 0):
            raise PeerError("meter %s: %s is not a valid SCA" % (aca_text(aca), sca.hex()))
        other = self.by_sca.get(sca)
        if other is not None and other != aca:
            self.forget(other)
            self.doubtful.add(sca)
            raise ScaCollision("SCA %s claimed by %s and %s: both addressed by ACA"
                               % (sca.hex(), aca_text(other), aca_text(aca)))
        self.forget(aca)
        if sca in self.doubtful:
            return
        self.by_aca[aca] = sca
        self.by_sca[sca] = aca

    def forget(self, aca):
        sca = self.by_aca.pop(aca, None)
        if sca is not None:
            self.by_sca.pop(sca, None)

    def addresses(self, aca, route):
        """(ADDRESS, RP bytes) of a frame to `aca` through `route` (repeater ACAs,
        nearest first): by SCA where it saves airtime, else by ACA."""
        sca = self.by_aca.get(aca)
        if sca is not None and route:
            entries = []
            for r in route:
                rs = self.by_aca.get(r)
                if rs is None or rs[0:3] != sca[0:3]:
                    break
                entries.append(rs[3:5])
            else:
                return sca, b"".join(entries)
        return mac.aca_to_air(aca), b"".join(mac.aca_to_air(r) for r in route)


def frame_len(data_len, repeaters, by_sca):
    """Bytes of a MAC frame with data_len bytes of LLC data."""
    entry = mac.SCA_ENTRY_LEN if by_sca else mac.ADDR_LEN
    return mac.HEADER_LEN + entry * repeaters + data_len + mac.CRC_LEN


def read_cost(repeaters, reg_ids):
    """What one READ of reg_ids costs a meter behind `repeaters` repeaters in a
    chain, addressed by ACA and by SCA after registration, measured on the
    simulated medium: {"aca"|"sca": {"bytes", "airtime_s", "frames"}}."""
    from smitp import topology
    from smitp.concentrator import Concentrator
    from smitp.discovery import Discovery
    from smitp.network import neighbourhood

    names = ["dcu"] + ["m%d" % i for i in range(1, repeaters + 2)]
    nodes = [{"name": "dcu", "role": "concentrator"}]
    nodes += [{"name": n, "aca": "A8040A1E89%02X" % i} for i, n in enumerate(names) if i]
    links = [{"a": a, "b": b, "attenuation_db": 40} for a, b in zip(names, names[1:])]
    net, port = neighbourhood(topology.load({"nodes": nodes, "links": links}), boards=False)
    try:
        disc = Discovery(port)
        disc.discover()
        disc.register_all()
        far = max(disc.meters.values(), key=lambda m: m.level)
        out = {}
        for form, book in (("aca", ScaBook()), ("sca", disc.book)):
            conc = Concentrator(port, book=book)
            net.medium.reset_stats()
            conc.read(far.aca, list(reg_ids), far.route)
            st = net.medium.stats
            out[form] = {"bytes": st["bytes"], "airtime_s": st["airtime_s"], "frames": st["frames"]}
        out["route"] = len(far.route)
        return out
    finally:
        net.close()
