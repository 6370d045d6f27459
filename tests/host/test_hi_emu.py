"""The meter on a Meters and More modem: the firmware's modem task with the HI
driver against the HI emulator (smitp.hi_emu), in process, on a virtual clock.
Boot and configuration, the emulator's own rules with raw bytes, the bytes on
air against the ST7580 path's, every fault kind, both checksum rules."""

import os

import pytest

from meter import attrs as A
from meter.link import mac
from meter.model import registers as R
from meter.phy import contract as phy
from smitp.concentrator import Concentrator
from smitp.hi_emu import CS_CRC, CS_SUM, FAULTS, HIEmulator, frame
from smitp.network import in_process_meter
from smitp.secure import KeyRing

from hi_harness import HiMeter

ACA = bytes.fromhex("A8040A1E8901")
OTHER = bytes.fromhex("A8040A1E8907")
KEYS = (bytes(range(16)), bytes(range(16, 32)))


def read_frame(dst=ACA, route=(), reg=R.STATUS_WORD):
    out = bytearray(mac.MAX_FRAME)
    rp = b"".join(mac.aca_to_air(r) for r in route)
    n = mac.encode(out, mac.aca_to_air(dst), rp, 3, False, 0, False, 0, 0, bytes((A.READ_REQ,)) + reg.to_bytes(2, "big"))
    return bytes(out[:n])


def relayed(payload):
    """payload as the next node on its path sends it on."""
    f = mac.Frame()
    mac.decode(f, payload, len(payload))
    out = bytearray(mac.MAX_FRAME)
    return bytes(out[:mac.relay(f, out)])


def booted(kind=CS_CRC, keys=None, **settings):
    m = HiMeter(ACA, keys, kind, **settings)
    m.run(200)
    assert m.port.ready
    return m


# ---- boot and configuration
@pytest.mark.parametrize("kind", [CS_CRC, CS_SUM])
def test_boot_and_configuration_sequence(kind):
    m = HiMeter(ACA, None, kind)
    wire = []
    orig = m.emu.from_host
    m.emu.from_host = lambda data, now: (wire.append(bytes(data)), orig(data, now))[1]
    m.run(200)
    assert m.port.ready
    mnf = b"SN1E8901" + bytes(8) + bytes(reversed(ACA))
    want = [b"\x06", frame(0x08, b"\x06" + mnf, kind), b"\x06"]  # ACK 3E; MIB 6; ACK of its confirm
    if kind == CS_SUM:  # the ST75MM profile: MAC configuration and HI timings too
        want += [frame(0x08, b"\x03\x01\x01", kind), b"\x06", frame(0x08, b"\x0e" + bytes((125, 255, 10)), kind),
                 b"\x06"]
    assert wire == want
    assert m.emu.mib[6] == mnf and m.emu.node is not None and m.emu.node.aca == ACA
    assert not m.emu.mask & (1 << 6)  # the SM shows the manufacturer data configured
    assert m.drv.stats["rx_bad"] == 0 and m.emu.stats["rx_bad"] == 0


def test_modem_reset_is_reported_and_the_modem_configured_again():
    m = booted()
    m.emu.inject("reset")
    m.run(200)
    assert m.emu.stats["resets"] == 2 and m.port.ready and m.emu.node is not None
    assert m.node.app.model.status & (1 << R.SW_MODEM_RESET)


def test_modem_that_stays_silent_gets_a_bio_reset():
    m = HiMeter(ACA)
    m.emu.set_resetn(0, 0.0)  # held in reset: no indication at boot
    m.emu.set_resetn(1, 0.0)
    m.emu._halt()
    m.emu._state, m.emu._deadline = "idle", None  # running, but its indication was lost
    m.run(3000)
    assert m.emu.stats["resets"] == 3  # power-on, RESETN, then the driver's BIO_Reset.request
    assert m.port.ready


# ---- the emulator's own rules, raw bytes
def raw_exchange(emu, data, t):
    emu.set_treq(0, t)
    emu.poll(t + 1)
    sm = emu.to_host()
    emu.set_treq(1, t + 1)
    emu.from_host(data, t + 2)
    emu.poll(t + 20)
    return sm, emu.to_host()


def configured_emu(kind=CS_CRC):
    emu = HIEmulator(kind)
    emu.power_on(0)
    emu.poll(0)
    assert emu.to_host() == frame(0x3E, b"\x80", kind)
    sm, out = raw_exchange(emu, frame(0x08, b"\x06" + bytes(16) + bytes(reversed(ACA)), kind), 10)
    assert sm == b"\x3f\x03\xd8\x10"  # the status right after boot
    assert out == b"\x06" + frame(0x09, b"\x06", kind)
    emu.from_host(b"\x06", 21)
    return emu


def test_emulator_rules():
    emu = configured_emu()
    # a 0x03 copy is executed again: the modem does not drop repeats
    _, out = raw_exchange(emu, frame(0x2C, b"\x55"), 100)
    emu.from_host(b"\x06", 121)
    _, out2 = raw_exchange(emu, frame(0x2C, b"\x55", fs=3), 200)
    assert out == out2 == b"\x06" + frame(0x2D, b"\x55")
    emu.from_host(b"\x06", 221)
    # unknown command: no ACK, HI_Error
    _, out = raw_exchange(emu, frame(0x48, b"\x00"), 300)
    assert out == frame(0x36, b"\x48")
    emu.from_host(b"\x06", 321)
    # BIO_Reset with LEN != 0: NAK, not a confirm
    _, out = raw_exchange(emu, frame(0x3C, b"\x00\x00"), 400)
    assert out == b"\x15"
    # MIB 8 cannot be read; MIB 4 cannot be written; a wrong size is WPL
    _, out = raw_exchange(emu, frame(0x0C, b"\x08"), 500)
    assert out == b"\x06" + frame(0x0F, b"\x03")
    emu.from_host(b"\x06", 521)
    _, out = raw_exchange(emu, frame(0x08, b"\x04" + bytes(8)), 600)
    assert out == b"\x06" + frame(0x0B, b"\x03")
    emu.from_host(b"\x06", 621)
    _, out = raw_exchange(emu, frame(0x08, b"\x0a" + bytes(7)), 700)
    assert out == b"\x06" + frame(0x0B, b"\x02")
    emu.from_host(b"\x06", 721)
    # no MIB survives a reset
    _, out = raw_exchange(emu, frame(0x3C, b"\x00"), 800)
    assert out == b"\x06" + frame(0x3D, b"\x00")
    emu.from_host(b"\x06", 821)
    emu.poll(830)
    assert emu.to_host() == frame(0x3E, b"\x83") and emu.mib[6] == bytes(22) and emu.node is None


def test_emulator_slave_data_rules():
    emu = configured_emu()
    emu.deliver(read_frame(), 20, 50)
    emu.poll(50)
    ind = emu.to_host()
    assert ind == frame(0x26, b"\x00\x01" + bytes((A.READ_REQ,)) + R.STATUS_WORD.to_bytes(2, "big"))
    emu.from_host(b"\x06", 51)
    for payload, err in ((b"\x00\x02\x03\x00", 3), (b"\x04\x01\x03\x00", 3), (b"\x00\x01", 2)):  # ReqID, DSAP 3, no ATTR
        _, out = raw_exchange(emu, frame(0x24, payload), 100)
        assert out == b"\x06" + frame(0x27, bytes((err,))), payload
        emu.from_host(b"\x06", 121)
    _, out = raw_exchange(emu, frame(0x24, b"\x00\x01" + bytes(128)), 200)  # LSDU of 128 bytes: dropped
    assert out == b"\x06" and emu.stats["answers_dropped"] == 1 and emu.next_transmission() is None
    _, out = raw_exchange(emu, frame(0x24, b"\x00\x01\x03\x00\x00"), 300)
    assert out == b"\x06"
    air = emu.next_transmission()
    assert air is not None
    f = mac.Frame()
    mac.decode(f, air, len(air))  # the answer went on air: from this meter, uplink, the host's LSDU
    assert f.uplink and mac.same_addr(air, f.addr, mac.aca_to_air(ACA)) and air[f.data:f.data + f.data_len] == b"\x03\x00\x00"
    emu.transmit_done(310)
    assert emu.to_host() == frame(0x25, b"\x00")


# ---- on air: the same bytes as the ST7580 path
class TwinPort:
    """The concentrator's port to two meters with the same identity: one served
    by the firmware's own data link (the ST7580 path: MeterNode.on_phy), one on
    the HI modem. Each request goes to both, through the repeater when routed;
    the answers must be equal, byte for byte."""

    def __init__(self, hi_meter, keys=None):
        self.hi = hi_meter
        self.st = in_process_meter(ACA, "SN1E8901", hi_meter.clock, keys)
        self.inbox = []
        self.pairs = []

    def now(self):
        return self.hi.t / 1000.0

    def send(self, payload):
        f = mac.Frame()
        mac.decode(f, payload, len(payload))
        hops = f.repeaters
        for _ in range(hops):
            payload = relayed(payload)
        n = self.st.on_phy(payload, len(payload), int(self.hi.t))
        st = bytes(self.st.out[:n]) if n else None
        air = self.hi.request(payload)
        self.pairs.append((payload, st, air))
        if st is not None:
            for _ in range(hops):
                st = relayed(st)
            self.inbox.append(st)

    def recv(self, timeout_s):
        return self.inbox.pop(0) if self.inbox else None


@pytest.mark.parametrize("kind", [CS_CRC, CS_SUM])
def test_bytes_on_air_identical_plain_authenticated_and_through_a_repeater(kind):
    m = booted(kind, KEYS)
    port = TwinPort(m, KEYS)
    keyring = KeyRing.from_dict({ACA.hex().upper(): {"k1": KEYS[0].hex(), "k2": KEYS[1].hex()}})
    conc = Concentrator(port, retries=0, keyring=keyring)
    regs = [R.STATUS_WORD, R.SERIAL, R.ENERGY_IMPORT]
    plain = conc.read(ACA, regs)
    auth = conc.read(ACA, regs + [R.LMON], auth=True)
    routed = conc.read(ACA, regs, route=(OTHER,))
    assert plain[R.SERIAL].rstrip(b"\x00").endswith(b"1E8901")
    assert auth[R.SERIAL] == plain[R.SERIAL] == routed[R.SERIAL]
    assert len(port.pairs) == 3  # plain, authenticated, routed: one exchange each
    for request, st, air in port.pairs:
        assert st is not None and air == [st], (request.hex(), st, air)
    assert m.drv.stats["answers"] == len(port.pairs)


def test_hi_meter_repeats_as_the_st7580_path_does():
    m = booted()
    st = in_process_meter(ACA, "SN1E8901", m.clock)
    to_other = read_frame(OTHER, route=(ACA,))  # this meter is the repeater
    n = st.on_phy(to_other, len(to_other))
    assert n and m.request(to_other) == [bytes(st.out[:n])]
    assert m.drv.stats["requests"] == 0  # the modem repeats on its own: the host never sees it


# ---- faults: each kind recovered, no request lost
CAMPAIGN_ROUNDS = 4


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_kind_recovered_without_losing_a_request(fault):
    m = booted(sm_ms=200, tack_ms=100, confirm_ms=500)
    m.emu.tack_ms = 100
    answered = 0
    for i in range(CAMPAIGN_ROUNDS):
        m.emu.inject(fault)
        if fault == "reset":
            m.run(300)  # the modem comes back and is configured again before the request
        air = m.request(read_frame(), ms=1500)
        answered += len(air) == 1
    assert answered == CAMPAIGN_ROUNDS, (fault, m.drv.stats, m.emu.stats)
    assert m.emu.stats["faults"] == CAMPAIGN_ROUNDS, m.emu.stats
    # and the driver still serves after the campaign
    assert len(m.request(read_frame(), ms=1500)) == 1 and m.port.ready


def test_lost_host_ack_gets_the_indication_again_and_it_is_dropped_as_a_repeat():
    m = booted(tack_ms=100)
    m.emu.tack_ms = 100
    orig = m.emu.from_host
    lost = []

    def lose_first_ack(data, now):
        if data == b"\x06" and not lost and m.emu._cur is not None and m.emu._cur[0] == 0x26:
            lost.append(now)
            return None
        return orig(data, now)

    m.emu.from_host = lose_first_ack
    air = m.request(read_frame(), ms=1500)
    assert lost and len(air) == 1
    assert m.drv.stats["rx_dup"] == 1 and m.drv.stats["requests"] == 1  # served once


def test_random_bytes_from_the_modem_cost_no_request():
    m = booted()
    rng = os.urandom
    for i in range(30):
        m._step(rng(1 + i % 40))
    m.run(100)
    m.emu.inject("reset")  # whatever state the junk left: a reset brings it back
    m.run(300)
    assert len(m.request(read_frame(), ms=1500)) == 1


# ---- the other split: the modem runs the LMON-protected security
class HiPort:
    """The concentrator's port to one meter on the HI modem."""

    def __init__(self, hi_meter):
        self.hi = hi_meter
        self.inbox = []
        self.sent = []

    def now(self):
        return self.hi.t / 1000.0

    def send(self, payload):
        self.sent.append(bytes(payload))
        self.inbox += self.hi.request(payload)

    def recv(self, timeout_s):
        return self.inbox.pop(0) if self.inbox else None


def modem_secured():
    from meter.app.modemkeys import ModemSecrets

    m = HiMeter(ACA, KEYS, CS_CRC, emu=HIEmulator(CS_CRC, security="modem"), modem_security=True)
    sec = m.node.secure
    m.drv.use_keeper(ModemSecrets(sec.keystore, sec.lmon))  # as meter.runtime.firmware.main does
    m.run(300)
    assert m.port.ready
    return m


def test_modem_runs_the_security_the_firmware_keeps_keys_and_lmon():
    m = modem_secured()
    assert m.emu.sec.lmon() == 0 and m.emu.mib[10] == bytes(8)
    keyring = KeyRing.from_dict({ACA.hex().upper(): {"k1": KEYS[0].hex(), "k2": KEYS[1].hex()}})
    port = HiPort(m)
    conc = Concentrator(port, retries=1, keyring=keyring)
    plain = conc.read(ACA, [R.SERIAL])
    auth = conc.read(ACA, [R.SERIAL, R.STATUS_WORD], auth=True)
    assert auth[R.SERIAL] == plain[R.SERIAL]
    conc.read(ACA, [R.STATUS_WORD], auth=True)
    lmon = m.emu.sec.lmon()
    assert lmon >= 2
    assert m.node.secure.lmon.value == lmon  # every LMON the modem reported is in the firmware's store
    assert m.drv.keeper.reported >= 2 and m.drv.keeper.refused == 0
    # the host saw the requests in clear: ECC 0 in the protocol byte, plain ATTRs
    assert m.node.secure.stats["accepted"] == 0 and m.drv.stats["requests"] >= 3
    # the modem resets: it gets the keys and the LMON back, so an old request stays refused
    replayed = port.sent[-1]  # the last authenticated request, already accepted
    m.emu.inject("reset")
    m.run(300)
    assert m.port.ready and m.emu.sec.lmon() == lmon and m.emu.mib[10] == lmon.to_bytes(8, "little")
    air = m.request(replayed)
    f = mac.Frame()
    mac.decode(f, air[0], len(air[0]))
    assert air[0][f.data] == 245  # NACK-10 from the modem itself: the replay does not pass
    assert conc.read(ACA, [R.STATUS_WORD], auth=True)  # the concentrator resynchronises and reads on
    assert m.node.secure.lmon.value == m.emu.sec.lmon() > lmon
