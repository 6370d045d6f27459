"""Hardware in the loop: the firmware's M&M Host Interface driver (meter/phy/hi.py),
run on this host, against a real Meters and More modem (Microchip PL460-EK with
the M&M modem application, docs/flashing.md) wired to a USB serial adapter: TXD,
RXD, GND, and RTS as T_REQ (active low). Skipped unless the port is given:

    .venv/bin/python -m pytest tests/host/test_real_hi_modem.py --hi-port /dev/ttyUSB1

It resets the modem (BIO_Reset), configures it, checks it with HI_Ping, and reads
the MIB objects the configuration wrote back.
"""

import time

import pytest

from meter.phy import contract as phy
from meter.phy import hi

ACA = bytes.fromhex("A8040A1E89F0")


@pytest.fixture
def modem(request):
    port = request.config.getoption("--hi-port")
    if not port:
        pytest.skip("no Meters and More modem attached: give --hi-port")
    import serial

    ser = serial.Serial(port, 57600, timeout=0)
    ser.rts = False  # T_REQ released (high)
    try:
        yield ser
    finally:
        ser.close()


def pump(ser, drv, seconds, until):
    """Run the driver on the serial port until until() or the time is up; the events seen."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until(seen):
        now = int(time.monotonic() * 1000) & 0x3FFFFFFF
        data = ser.read(512)
        if data:
            drv.receive(data, now)
        drv.poll(now)
        out = drv.data_to_send()
        if out:
            ser.write(out)
        ser.rts = drv.treq == 0
        k = drv.next_kind()
        while k:
            seen.append((k, drv.ev_cmd, drv.ev_code, bytes(drv.rx[0:drv.rx_len]) if drv.rx is not None else b""))
            k = drv.next_kind()
        time.sleep(0.002)
    return seen


def test_real_modem_resets_configures_and_answers_pings(modem):
    drv = hi.HostInterface(hi.MICROCHIP, hi.H.CS_CRC, ACA, "SMITP-HIL", managed=True, boot_ms=200, ping_ms=500)
    seen = pump(modem, drv, 10, lambda s: any(e[0] == phy.READY for e in s))
    assert any(e[0] == phy.RESET for e in seen), seen
    assert drv.ready, (seen, drv.stats)
    pump(modem, drv, 3, lambda s: drv.stats["pings"] >= 2)
    assert drv.stats["pings"] >= 2 and drv.stats["ping_failures"] == 0, drv.stats
    assert not drv.mib_mask & (1 << 6), "the status message still shows MIB 6 at its default"
    drv.managed = False  # the read's confirm comes out as an event
    drv.mib_read(6)
    seen = pump(modem, drv, 3, lambda s: any(e[0] == hi.EV_CONFIRM for e in s))
    value = [e[3] for e in seen if e[0] == hi.EV_CONFIRM][0]
    assert value[-6:] == bytes(reversed(ACA)), value.hex()  # as written, ACA little-endian
