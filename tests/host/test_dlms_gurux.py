"""The second independent DLMS client, Gurux (gurux-dlms, GPLv2, a test-only dependency), drives
an in-process meter through the repeater over the project's convergence layer: HLS-GMAC with
suite 0 (its reply to HLS as a service-specific glo-action-request), GETs of the clock and a
register, with general-glo-ciphering and with service-specific glo-get-requests, SET of the
clock, the disconnect control ACTION, a GET with list, release; a wrong key is refused and the
meter keeps serving. Gurux's AES-GCM is its own pure-Python code: a third implementation beside the
firmware's and `cryptography`'s."""

import datetime

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXReplyData
from gurux_dlms.enums import Authentication, Conformance, InterfaceType, Security
from gurux_dlms.objects import GXDLMSClock, GXDLMSDisconnectControl, GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient

from meter.model import registers as R
from meter.model.energy import I_IMP
from dlmsfeeder import AK, EK, TITLE, Feeder


class Driver:
    """Gurux's request/reply loop over the convergence layer; records the APDU tags sent."""

    def __init__(self, feeder, ak=AK, general=True):
        self.cl = feeder.transport().cl
        c = GXDLMSSecureClient(True, 16, 1, Authentication.HIGH_GMAC, None, InterfaceType.PDU)
        c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        c.ciphering.systemTitle = TITLE
        c.ciphering.blockCipherKey = EK
        c.ciphering.authenticationKey = ak
        c.ciphering.invocationCounter = feeder.ic
        if not general:  # without general-protection Gurux ciphers each service on its own
            c.proposedConformance &= ~Conformance.GENERAL_PROTECTION
        self.c = c
        self.tags = []

    def run(self, requests):
        reply = GXReplyData()
        for data in requests:
            reply.clear()
            self._send(data, reply)
            while reply.isMoreData():
                self._send(self.c.receiverReady(reply), reply)
        return reply

    def _send(self, data, reply):
        data = bytes(data)
        self.tags.append(data[0])
        self.c.getData(GXByteBuffer(self.cl.exchange(data)), reply)

    def associate(self):
        self.c.parseAareResponse(self.run(self.c.aarqRequest()).data)
        self.c.parseApplicationAssociationResponse(self.run(self.c.getApplicationAssociationRequest()).data)

    def read(self, obj, attr):
        self.c.updateValue(obj, attr, self.run(self.c.read(obj, attr)).value)


@pytest.fixture
def feeder():
    return Feeder()


def test_gurux_hls_suite0_get_set_action(feeder):
    feeder.model.owner(R.ENERGY_IMPORT).e[I_IMP] = 4242
    d = Driver(feeder)
    d.associate()
    clock, reg = GXDLMSClock("0.0.1.0.0.255"), GXDLMSRegister("1.0.1.8.0.255")
    d.read(clock, 2)
    assert abs(clock.time.value.timestamp() - feeder.now()) <= 5
    d.read(reg, 3)
    d.read(reg, 2)
    assert reg.value == 4242 == int.from_bytes(feeder.read(R.ENERGY_IMPORT), "big") and reg.unit == 30
    both = [(GXDLMSClock("0.0.1.0.0.255"), 2), (GXDLMSRegister("1.0.1.8.0.255"), 2)]
    d.c.updateValues(both, d.run(d.c.readList(both)[0]).value)  # GET with list
    assert both[1][0].value == 4242 and abs(both[0][0].time.value.timestamp() - feeder.now()) <= 5
    clock.time = GXDateTime(datetime.datetime(2026, 3, 1, 8, 30, tzinfo=datetime.timezone.utc))
    d.run(d.c.write(clock, 2))
    assert abs(int.from_bytes(feeder.read(R.CLOCK), "big") - 1772353800) <= 5
    d.run(GXDLMSDisconnectControl("0.0.96.3.10.255").remoteDisconnect(d.c))
    assert feeder.read(R.CUTOFF_STATE)[0] == 1  # open
    d.run(d.c.releaseRequest())
    assert 0xCB in d.tags and 0xDB in d.tags  # its HLS reply service-specific, the rest general-glo


def test_gurux_service_specific_glo_get(feeder):
    d = Driver(feeder, general=False)
    d.associate()
    clock = GXDLMSClock("0.0.1.0.0.255")
    d.read(clock, 2)
    assert abs(clock.time.value.timestamp() - feeder.now()) <= 5
    assert 0xC8 in d.tags and 0xDB not in d.tags


def test_gurux_wrong_key_is_refused_and_the_meter_keeps_serving(feeder):
    d = Driver(feeder, ak=bytes(16))
    with pytest.raises(Exception, match="(?i)authentication"):
        d.associate()
    d = Driver(feeder)
    d.associate()
    d.read(GXDLMSClock("0.0.1.0.0.255"), 2)


def test_gurux_against_an_emulated_board(tmp_path):
    """Gurux against the firmware on MicroPython (an emulated board of the demo feeder)."""
    from dlmsfeeder import BoardFeeder

    feeder = BoardFeeder(tmp_path)
    try:
        d = Driver(feeder, general=False)
        d.associate()
        clock, reg = GXDLMSClock("0.0.1.0.0.255"), GXDLMSRegister("1.0.1.8.0.255")
        d.read(reg, 2)
        clock.time = GXDateTime(datetime.datetime(2026, 3, 1, 8, 30, tzinfo=datetime.timezone.utc))
        d.run(d.c.write(clock, 2))
        d.read(clock, 2)
        assert abs(clock.time.value.timestamp() - 1772353800) <= 10
        assert abs(reg.value - int.from_bytes(feeder.read(R.ENERGY_IMPORT), "big")) <= 5
        d.run(d.c.releaseRequest())
        assert 0xC8 in d.tags and 0xC9 in d.tags and 0xCB in d.tags
    finally:
        feeder.close()


def test_gurux_reads_the_load_profile_by_range(feeder):
    import struct

    from gurux_dlms.objects import GXDLMSProfileGeneric

    t0 = 1764633600  # 2025-12-02 00:00 UTC
    tb = feeder.model.tables[R.LOAD_PROFILE]
    for k in range(96):
        assert tb.append(struct.pack(">IBHHHH", t0 + 900 * k, 0, k, 2 * k, 0, 0))
    d = Driver(feeder)
    d.associate()
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    d.read(pg, 3)  # the capture objects, which Gurux needs to read rows
    assert len(pg.captureObjects) == 6
    a, b = (datetime.datetime.fromtimestamp(t0 + s, datetime.timezone.utc) for s in (3600, 7200))
    d.c.updateValue(pg, 2, d.run(d.c.readRowsByRange(pg, a, b)).value)
    assert [row[2:4] for row in pg.buffer] == [[k, 2 * k] for k in range(4, 9)]
    assert [row[0].value.timestamp() for row in pg.buffer] == [t0 + 900 * k for k in range(4, 9)]
