"""Hardware in the loop: the concentrator on a real ST7580 modem reads a real
meter running this firmware. Skipped unless both options are given:

    .venv/bin/python -m pytest tests/host/test_real_board.py --modem-port /dev/ttyUSB0 --meter-aca A8040A1E8901
"""

import pytest

from meter.model import registers as R


@pytest.fixture
def real(request):
    port = request.config.getoption("--modem-port")
    aca = request.config.getoption("--meter-aca")
    if not port or not aca:
        pytest.skip("no real board: give --modem-port and --meter-aca")
    from smitp.concentrator import Concentrator, parse_aca
    from smitp.serial_modem import ModemPort, SerialModem

    modem = SerialModem(port)
    modem.open()
    try:
        modem.reset()
        yield Concentrator(ModemPort(modem)), parse_aca(aca)
    finally:
        modem.close()


def test_real_meter_answers_status_word_and_firmware_id(real):
    conc, aca = real
    values = conc.read(aca, [R.STATUS_WORD, R.FIRMWARE_ID])
    assert len(values[R.STATUS_WORD]) == 8
    assert values[R.FIRMWARE_ID].startswith(b"smitp-meter ")
