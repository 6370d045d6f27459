# Addressing and network management of the DLMS profile (CLC/TS 50568-8
# 4.7-4.8, project choices in docs/protocol.md): one MAC address (the ACA,
# or the SCA network management gave) reaches the meter's network
# management (DSAP 2) and its DLMS server (DSAP 4) alike; a DLMS meter
# registered by REGISTER answers its DLMS exchanges from its SCA, through
# 2-byte SCA repeater entries too, and forgets the SCA on DEREGISTER.
from meter import attrs as A
from meter.app.node import MeterNode
from meter.dlms.cl import DATA_LAST, ClServer
from meter.link import mac
from meter.link.llc import DSAP_DLMS, DSAP_NM
from fwtest import unhex
from dlmskit import Meter, aarq

ACA = unhex("A8040A1E8903")
SCA = unhex("010000 01 03 03")  # section 1, sub-section 1, node 3 (on air)
REPEATER_ACA = unhex("A8040A1E8902")
REPEATER_SCA = unhex("010000 01 02 03")
GET_CLOCK = unhex("C0 01 C1 0008 0000010000FF 02 00")
RA7 = mac.DISC_RA7


def _dlms_node(aca=ACA):
    m = Meter()
    s = m.server
    return MeterNode(aca, m.model, store=m.store, dlms=ClServer(s.handle, server=s, on_broadcast=s.broadcast.serve))


def _frame(addr, dsap, data, rp=b""):
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, addr, rp, RA7, False, 0, False, dsap, 0, data)
    return bytes(out[:n])


def _step(node, b):
    n = node.on_phy(b, len(b), 0, None)
    if not n:
        return None, None
    f = mac.Frame()
    out = bytes(node.out[:n])
    mac.decode(f, out, n)
    return f, out[f.data:f.data + f.data_len]


def _exchange(node, addr, apdu, xid, rp=b""):
    f, data = _step(node, _frame(addr, DSAP_DLMS, bytes((DATA_LAST, xid, 0)) + apdu, rp))
    return f, (data[3:] if data is not None and data[0] == DATA_LAST else data)


def test_network_management_and_dlms_share_the_meter_address():
    node = _dlms_node()
    air = mac.aca_to_air(ACA)
    f, data = _step(node, _frame(air, DSAP_NM, bytes((A.STATUS_REQ,))))
    assert data[0] == A.STATUS_RESP and data[1] & 1 == 0  # not registered yet
    assert _exchange(node, SCA, aarq(), 1) == (None, None)  # no SCA yet: not this meter
    f, data = _step(node, _frame(air, DSAP_NM, bytes((A.REGISTER_REQ,)) + SCA))
    assert data[0:2] == b"\x51\x00"  # RegisterReport: accepted
    f, aare = _exchange(node, SCA, aarq(), 2)
    assert aare[0] == 0x61 and bytes(f.buf[f.addr:f.addr + 6]) == SCA  # answered from its SCA
    f, ans = _exchange(node, SCA, GET_CLOCK, 3)
    assert ans[:4] == unhex("C4 01 C1 00")
    f, data = _step(node, _frame(SCA, DSAP_NM, bytes((A.PING_REQ,)) + b"dlms"))
    assert data[0] == A.PING_RESP and data.endswith(b"dlms")
    f, ans = _exchange(node, air, GET_CLOCK, 4)  # by ACA still
    assert ans[:4] == unhex("C4 01 C1 00") and bytes(f.buf[f.addr:f.addr + 6]) == air
    _step(node, _frame(SCA, DSAP_NM, bytes((A.DEREGISTER_REQ,))))
    assert _exchange(node, SCA, GET_CLOCK, 5) == (None, None)


def test_dlms_through_a_repeater_named_by_its_sca():
    repeater = MeterNode(REPEATER_ACA, Meter().model)
    meter = _dlms_node()
    for node, aca, sca in ((repeater, REPEATER_ACA, REPEATER_SCA), (meter, ACA, SCA)):
        _f, data = _step(node, _frame(mac.aca_to_air(aca), DSAP_NM, bytes((A.REGISTER_REQ,)) + sca))
        assert data[0:2] == b"\x51\x00"
    req = _frame(SCA, DSAP_DLMS, bytes((DATA_LAST, 9, 0)) + aarq(), rp=REPEATER_SCA[3:5])
    n = repeater.on_phy(req, len(req), 0, None)
    assert n  # relayed
    relayed = bytes(repeater.out[:n])
    n = meter.on_phy(relayed, len(relayed), 0, None)
    f = mac.Frame()
    mac.decode(f, bytes(meter.out[:n]), n)
    assert f.uplink and f.buf[f.data + 3] == 0x61  # the AARE, on its way back through the repeater
