"""Shared by the DLMS peer tests: the demo feeder on a virtual clock with a DLMS meter (m3, behind
the repeater m2) whose clock the profile may set, and a transport through the project's
convergence layer client for the peers (dlms-cosem's transport protocol; Gurux's driver loop
uses .cl.exchange)."""

from meter import firmware_id
from meter.app.node import MeterNode
from meter.dlms.server import profile, provision
from meter.model.datamodel import DataModel
from meter.model.metering import Metering
from meter.storage import Store
from smitp import topology
from smitp.concentrator import Concentrator, parse_aca
from smitp.dlms.cl import ClClient, plc_link
from smitp.network import neighbourhood

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
LLS = b"12345678"
TITLE = bytes.fromhex("4D4D4D0000000001")
M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))


class ClTransport:
    """dlms-cosem's transport: each APDU through the project's convergence layer client."""

    client_logical_address = 16
    server_logical_address = 1
    io = None
    timeout = 10

    def __init__(self, cl):
        self.cl = cl
        self.sent = []

    def connect(self):
        pass

    def disconnect(self):
        pass

    def send_request(self, apdu):
        self.sent.append(bytes(apdu))
        return self.cl.exchange(apdu)


class Feeder:
    """The demo feeder on a virtual clock; m3 (behind the repeater m2) is a meter whose clock
    DLMS may set, with suite 0 keys and an LLS secret provisioned."""

    def __init__(self):
        self.net, port = neighbourhood(topology.demo_feeder(), boards=False)
        self.conc = Concentrator(port)
        self.offset = 1764676800 - int(self.net.clock.now())  # 2025-12-02 12:00 UTC
        store = Store()
        provision(store, EK, AK, LLS)
        self.model = DataModel("SN0E8903", M3, firmware_id("in-process"), store, self.now, self.set_now)
        Metering(self.model, store)
        self.node = MeterNode(M3, self.model, store=store, dlms=profile(self.model, store, M3))
        self.net.meters["m3"] = self.node
        self.ic = 0  # the client's invocation counter, across sessions

    def now(self):
        return int(self.net.clock.now()) + self.offset

    def set_now(self, t):
        self.offset = t - int(self.net.clock.now())

    def transport(self):
        return ClTransport(ClClient(plc_link(self.conc, M3, (M2,)), max_response=140))

    def client(self, auth="hls", ek=EK, ak=AK, max_pdu=1024):
        """A dlms-cosem client through the convergence layer (test_dlms_peer.py)."""
        from dlms_cosem.client import DlmsClient
        from dlms_cosem.security import (HighLevelSecurityGmacAuthentication, LowLevelSecurityAuthentication,
                                         NoSecurityAuthentication)

        if auth == "hls":
            c = DlmsClient(transport=self.transport(), authentication=HighLevelSecurityGmacAuthentication(),
                           encryption_key=ek, authentication_key=ak, client_system_title=TITLE,
                           client_initial_invocation_counter=self.ic, max_pdu_size=max_pdu)
        elif auth == "lls":
            c = DlmsClient(transport=self.transport(), authentication=LowLevelSecurityAuthentication(LLS),
                           max_pdu_size=max_pdu)
        else:
            c = DlmsClient(transport=self.transport(), authentication=NoSecurityAuthentication(),
                           max_pdu_size=max_pdu)
        return c

    def done(self, c):
        self.ic = c.client_invocation_counter

    def read(self, reg):
        return self.conc.read(M3, [reg], route=(M2,))[reg]


class BoardFeeder:
    """The demo feeder as emulated boards (the firmware on MicroPython, real time); m1 gets the
    suite 0 keys and the LLS secret (and a broadcast key bk) on its flash before it boots. close()
    when done."""

    def __init__(self, workdir, bk=None):
        from smitp import demo
        from smitp.dlms.command import provision_image

        entry = {"ek": EK.hex(), "ak": AK.hex(), "lls": LLS.decode()}
        if bk is not None:
            entry["bk"] = bk.hex()
        provision_image("%s/m1.flash" % workdir, entry)
        self.net, port = neighbourhood(topology.demo_feeder(), str(workdir), boards=True)
        self.port = port
        try:
            demo.wait_until_ready(self.net)
        except Exception:
            self.net.close()
            raise
        self.conc = Concentrator(port)
        self.ic = 0

    def transport(self):
        return ClTransport(ClClient(plc_link(self.conc, M1), max_response=140))

    def read(self, reg):
        return self.conc.read(M1, [reg])[reg]

    def close(self):
        self.net.close()
