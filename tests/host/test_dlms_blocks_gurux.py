"""SET and ACTION with block transfer against gurux-dlms, the oracle: Gurux encodes the block
requests the firmware tests pin byte for byte (tests/firmware/test_dlms_blocks.py), its
translator reads the meter's answers as the services they are, and Gurux, its PDU size cut
down, associates (its reply to HLS: an ACTION in blocks) and SETs the clock in blocks through the
convergence layer, service-specific and general-glo ciphered, and the meter keeps serving."""

import datetime

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient, GXDLMSTranslator
from gurux_dlms.enums import Authentication, Conformance, DataType, InterfaceType
from gurux_dlms.objects import GXDLMSAssociationLogicalName, GXDLMSClock, GXDLMSDisconnectControl

from meter.model import registers as R
from dlmskit import F_STOC
from dlmsfeeder import Feeder
from test_dlms_blocks import ACTION_FIRST, ACTION_NEXT, SET_FIRST, SET_NEXT, SET_T
from test_dlms_gurux import Driver

CLOCK_AT = GXDateTime(datetime.datetime(2026, 3, 1, 8, 30, tzinfo=datetime.timezone.utc))
SMALL_PDU = 24  # Gurux cuts what does not fit into blocks of this PDU size


def _plain_client():
    c = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.PDU)
    c.settings.negotiatedConformance = (Conformance.GET | Conformance.SET | Conformance.ACTION
                                        | Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
                                        | Conformance.BLOCK_TRANSFER_WITH_ACTION)
    c.settings.maxPduSize = SMALL_PDU
    return c


def test_gurux_encodes_the_block_requests_the_firmware_tests_pin():
    c = _plain_client()
    clock = GXDLMSClock("0.0.1.0.0.255")
    clock.time = CLOCK_AT
    assert [bytes(m) for m in c.write(clock, 2)] == [SET_FIRST, SET_NEXT]
    assert int(CLOCK_AT.value.timestamp()) == SET_T
    reply = c.method(GXDLMSAssociationLogicalName("0.0.40.0.0.255"), 1, F_STOC, DataType.OCTET_STRING)
    assert [bytes(m) for m in reply] == [ACTION_FIRST, ACTION_NEXT]


@pytest.mark.parametrize("answer, service, lines", [
    ("C5 02 C1 00000001", "SetResponseDataBlock", ['BlockNumber Value="00000001"']),
    ("C5 03 C1 00 00000002", "SetResponseWithLastDataBlock", ['Result Value="Success"', 'Value="00000002"']),
    ("C5 03 C1 12 00000002", "SetResponseWithLastDataBlock", ['Result Value="NoLongSetOrWriteInProgress"']),
    ("C5 03 C1 13 00000003", "SetResponseWithLastDataBlock", ['Result Value="DataBlockNumberInvalid"']),
    ("C5 03 C1 11 00000005", "SetResponseWithLastDataBlock", ['Result Value="LongSetOrWriteAborted"']),
    ("C7 04 C1 00000001", "ActionResponseNextBlock", ['BlockNumber Value="00000001"']),
])
def test_gurux_reads_the_meter_block_answers(answer, service, lines):
    xml = GXDLMSTranslator().pduToXml(GXByteBuffer(bytes.fromhex(answer.replace(" ", ""))))
    assert "<%s>" % service in xml and all(s in xml for s in lines), xml


class Counting(Driver):
    """Gurux's loop, counting the APDUs of each run."""

    def run(self, requests):
        requests = list(requests)
        self.count = len(requests)
        return Driver.run(self, requests)


@pytest.mark.parametrize("general", [True, False])
def test_gurux_associates_sets_and_acts_in_blocks(general):
    feeder = Feeder()
    d = Counting(feeder, general=general)
    d.c.parseAareResponse(d.run(d.c.aarqRequest()).data)
    d.c.settings.maxPduSize = SMALL_PDU + 22  # and Gurux's room for the ciphering around each block
    d.c.parseApplicationAssociationResponse(d.run(d.c.getApplicationAssociationRequest()).data)
    assert d.count > 1  # the reply to HLS went in blocks
    clock = GXDLMSClock("0.0.1.0.0.255")
    clock.time = CLOCK_AT
    d.run(d.c.write(clock, 2))
    assert d.count > 1
    assert abs(int.from_bytes(feeder.read(R.CLOCK), "big") - SET_T) <= 5
    d.run(GXDLMSDisconnectControl("0.0.96.3.10.255").remoteDisconnect(d.c))  # short: one APDU
    assert feeder.read(R.CUTOFF_STATE)[0] == 1  # open
    d.c.settings.maxPduSize = 44
    d.read(clock, 2)  # the meter keeps serving, in one APDU again
    assert abs(clock.time.value.timestamp() - SET_T) <= 5
    d.run(d.c.releaseRequest())
    assert (0xDB in d.tags) == general and (0xC9 in d.tags) != general
