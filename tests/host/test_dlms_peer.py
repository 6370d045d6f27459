"""An independent DLMS client, dlms-cosem (a test-only dependency), drives an in-process meter
over the project's convergence layer, the concentrator and the simulated PLC medium: it
associates (no security, LLS, HLS-GMAC with suite 0), GETs the clock and a register, SETs the
clock, runs the disconnect control; the negative cases get the right DLMS error and the meter
keeps serving. What it reads is what the Original-SMITP READ of the same register gives."""

import datetime
import logging

import pytest
import structlog
from dlms_cosem import cosem, dlms_data
from dlms_cosem import enumerations as E
from dlms_cosem import time as dtime
from dlms_cosem.client import DataResultError, HLSError
from dlms_cosem.cosem import Obis
from dlms_cosem.exceptions import DlmsClientException
from dlms_cosem.protocol import xdlms

from meter.dlms.cosem import OBJECTS
from meter.model.energy import I_IMP
from meter.model import registers as R
from dlmsfeeder import Feeder

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

CLOCK = cosem.CosemAttribute(E.CosemInterface.CLOCK, Obis(0, 0, 1, 0, 0), 2)
ENERGY = cosem.CosemAttribute(E.CosemInterface.REGISTER, Obis(1, 0, 1, 8, 0), 2)
DISCONNECT = cosem.CosemMethod(E.CosemInterface.DISCONNECT_CONTROL, Obis(0, 0, 96, 3, 10), 1)


@pytest.fixture
def feeder():
    return Feeder()


def u32(raw):
    assert raw[0] == 0x06 and len(raw) == 5, raw.hex()  # double-long-unsigned
    return int.from_bytes(raw[1:], "big")


def utc(raw):
    assert raw[:2] == b"\x09\x0c", raw.hex()  # an octet-string of 12 bytes: a date-time
    t = dtime.datetime_from_bytes(raw[2:])[0]
    return t if t.tzinfo is not None else t.replace(tzinfo=datetime.timezone.utc)  # deviation 0: UTC


def test_public_association_reads_the_clock_of_the_data_model(feeder):
    c = feeder.client(auth=None)
    with c.session():
        t = utc(c.get(CLOCK))
    t = int(t.timestamp())
    assert t == 1764676800 + (t - 1764676800) and 0 <= t - 1764676800 <= 5  # a few virtual seconds passed
    assert 0 <= int.from_bytes(feeder.read(R.CLOCK), "big") - t <= 5


def test_hls_gmac_suite0_get_register_set_clock_and_disconnect(feeder):
    feeder.model.owner(R.ENERGY_IMPORT).e[I_IMP] = 98765  # the energy engine's counter
    c = feeder.client()
    new = datetime.datetime(2026, 3, 1, 8, 30, 0, tzinfo=datetime.timezone.utc)
    with c.session():
        energy = u32(c.get(ENERGY))
        r = c.set(CLOCK, dlms_data.OctetStringData(dtime.datetime_to_bytes(new)).to_bytes())
        assert r.result == E.DataAccessResult.SUCCESS
        read_back = utc(c.get(CLOCK))
        c.action(DISCONNECT, dlms_data.IntegerData(0).to_bytes())
    feeder.done(c)
    # the same registers through the Original-SMITP READ
    assert energy == 98765 == int.from_bytes(feeder.read(R.ENERGY_IMPORT), "big")
    assert new <= read_back <= new + datetime.timedelta(seconds=5)
    assert abs(int.from_bytes(feeder.read(R.CLOCK), "big") - int(new.timestamp())) <= 5
    assert feeder.read(R.CUTOFF_STATE)[0] == 1  # open
    # every APDU after the AARQ went general-glo-ciphered
    assert all(a[0] == 0xDB for a in c.transport.sent[1:-1])


def test_lls_reader_reads_but_may_not_set(feeder):
    c = feeder.client(auth="lls")
    with c.session():
        assert u32(c.get(ENERGY)) == 0
        r = c.set(CLOCK, dlms_data.OctetStringData(dtime.datetime_to_bytes(datetime.datetime(
            2026, 3, 1, tzinfo=datetime.timezone.utc))).to_bytes())
        assert r.result == E.DataAccessResult.READ_WRITE_DENIED


def test_access_denied_to_the_public_client(feeder):
    c = feeder.client(auth=None)
    with c.session():
        with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
            c.get(ENERGY)
        assert utc(c.get(CLOCK)).year == 2025  # and it keeps serving


def test_block_transfer_of_the_object_list(feeder):
    c = feeder.client(max_pdu=128)
    with c.session():
        raw = c.get(cosem.CosemAttribute(E.CosemInterface.ASSOCIATION_LN, Obis(0, 0, 40, 0, 0), 2))
    feeder.done(c)
    assert raw[:2] == bytes((0x01, len(OBJECTS))) and len(raw) > 500  # array of every object
    assert c.transport.cl.stats["exchanges"] > 6  # GET, GET-next ... in blocks of 128 bytes


def test_wrong_key_is_refused_and_the_meter_keeps_serving(feeder):
    c = feeder.client(ak=bytes(16))
    with pytest.raises(DlmsClientException, match="REJECTED_PERMANENT"):
        c.associate()
    c = feeder.client(ek=bytes(16))
    with pytest.raises(DlmsClientException, match="REJECTED_PERMANENT"):
        c.associate()
    c = feeder.client()
    with c.session():
        assert utc(c.get(CLOCK)).year == 2025


def test_replayed_and_tampered_apdus_get_exception_responses(feeder):
    c = feeder.client()
    t = c.transport
    with c.session():
        c.get(CLOCK)
        recorded = t.sent[-1]
        replay = xdlms.ExceptionResponse.from_bytes(t.cl.exchange(recorded))
        assert replay.service_error == E.ServiceException.INVOCATION_COUNTER_ERROR
        assert replay.invocation_counter_data == int.from_bytes(recorded[12:16], "big") + 1
        tampered = bytearray(recorded)
        tampered[-1] ^= 0x01
        tampered[12:16] = (c.client_invocation_counter + 5).to_bytes(4, "big")
        bad = xdlms.ExceptionResponse.from_bytes(t.cl.exchange(bytes(tampered)))
        assert bad.service_error == E.ServiceException.DECIPHERING_ERROR
        assert utc(c.get(CLOCK)).year == 2025  # the association is still there
    feeder.done(c)


def test_hls_with_a_wrong_challenge_answer_fails(feeder):
    c = feeder.client()
    c.dlms_connection.authentication.hls_generate_reply_data = lambda conn: b"\x10" + bytes(16)
    with pytest.raises(HLSError):
        c.associate()
    feeder.done(c)
    c = feeder.client()
    with c.session():
        assert utc(c.get(CLOCK)).year == 2025


def test_dlms_cosem_against_an_emulated_board(tmp_path):
    """The same client against the firmware on MicroPython (an emulated board of the demo feeder)."""
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.security import HighLevelSecurityGmacAuthentication

    from dlmsfeeder import AK, EK, TITLE, BoardFeeder

    feeder = BoardFeeder(tmp_path)
    try:
        c = DlmsClient(transport=feeder.transport(), authentication=HighLevelSecurityGmacAuthentication(),
                       encryption_key=EK, authentication_key=AK, client_system_title=TITLE, max_pdu_size=512)
        new = datetime.datetime(2026, 3, 1, 8, 30, 0, tzinfo=datetime.timezone.utc)
        with c.session():
            energy = u32(c.get(ENERGY))
            assert c.set(CLOCK, dlms_data.OctetStringData(dtime.datetime_to_bytes(new)).to_bytes()).result == \
                E.DataAccessResult.SUCCESS
            read_back = utc(c.get(CLOCK))
            raw = c.get(cosem.CosemAttribute(E.CosemInterface.ASSOCIATION_LN, Obis(0, 0, 40, 0, 0), 2))
        assert new <= read_back <= new + datetime.timedelta(seconds=10)
        assert abs(int.from_bytes(feeder.read(R.CLOCK), "big") - int(new.timestamp())) <= 10
        assert abs(energy - int.from_bytes(feeder.read(R.ENERGY_IMPORT), "big")) <= 5  # the board meters on
        assert raw[:2] == bytes((0x01, len(OBJECTS)))
    finally:
        feeder.close()


def test_load_profile_by_range(feeder):
    import struct

    from dlms_cosem.cosem.capture_object import CaptureObject
    from dlms_cosem.cosem.selective_access import RangeDescriptor
    from dlms_cosem.utils import parse_as_dlms_data

    t0 = 1764633600  # 2025-12-02 00:00 UTC
    tb = feeder.model.tables[R.LOAD_PROFILE]
    for k in range(96):  # a day of quarter hours
        assert tb.append(struct.pack(">IBHHHH", t0 + 900 * k, 0, k, 2 * k, 0, 0))
    c = feeder.client(max_pdu=256)
    when = [datetime.datetime.fromtimestamp(t0 + s, datetime.timezone.utc) for s in (3600, 7200)]
    with c.session():
        raw = c.get(cosem.CosemAttribute(E.CosemInterface.PROFILE_GENERIC, Obis(1, 0, 99, 1, 0), 2),
                    access_descriptor=RangeDescriptor(CaptureObject(CLOCK),
                                                      when[0], when[1]))
    feeder.done(c)
    rows = parse_as_dlms_data(raw)
    assert len(rows) == 5  # 01:00, 01:15, 01:30, 01:45, 02:00: both ends included
    for k, row in zip(range(4, 9), rows):
        assert dtime.datetime_from_bytes(row[0])[0].replace(tzinfo=datetime.timezone.utc) == \
            datetime.datetime.fromtimestamp(t0 + 900 * k, datetime.timezone.utc)
        assert row[2:4] == [k, 2 * k]
    assert c.transport.cl.stats["exchanges"] >= 4  # the buffer came in blocks
