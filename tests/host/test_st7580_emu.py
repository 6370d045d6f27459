"""The firmware's ST7580 driver against the ST7580 emulator, in process, on a virtual clock;
the emulator's own link rules with raw bytes; SerialModem through a fake serial port and a pty."""

import os
import select
import threading
import time
import tty

import pytest

from linkclock import ClockedLink
from meter.phy import st7580 as S
from meter.phy.st7580 import EV_CONFIRM, EV_ERROR, EV_PHY_DATA, EV_RESET, EV_TIMEOUT
from smitp.serial_modem import ModemError, ModemPort, ModemTimeout, SerialModem
from smitp.st7580_emu import ST7580Emulator, frame


class Link(ClockedLink):
    """Driver and emulator back to back; the driver sees whole ms, the emulator float ms."""

    def __init__(self, drv=None, emu=None, power_on=True):
        self.t = 0.0
        self.drv = drv or S.ST7580()
        self.emu = emu or ST7580Emulator()
        self.treq = 1
        self.events = []
        self.on_air = []
        self.lose_to_modem = 0  # host -> modem writes to lose (e.g. an ACK)
        self.wire_to_modem = []
        if power_on:
            self.emu.power_on(self.t)

    def settle(self):
        for _ in range(1000):
            moved = False
            ms = int(self.t)
            self.drv.poll(ms)
            out = self.drv.data_to_send()
            if out:
                moved = True
                self.wire_to_modem.append(out)
                if self.lose_to_modem:
                    self.lose_to_modem -= 1
                else:
                    self.emu.from_host(out, self.t)
            if self.drv.treq != self.treq:  # after the write, as the driver requires
                self.treq = self.drv.treq
                self.emu.set_treq(self.treq, self.t)
                moved = True
            self.emu.poll(self.t)
            back = self.emu.to_host()
            if back:
                self.drv.receive(back, ms)
                moved = True
            while True:
                ev = self.drv.next_event()
                if ev is None:
                    break
                self.events.append(ev)
            p = self.emu.next_transmission()
            if p is not None:
                self.on_air.append(p)
                moved = True
            if not moved:
                return
        raise AssertionError("the link does not settle")


    def take(self):
        evs, self.events = self.events, []
        return evs


def booted(**drv_kwargs):
    link = Link(S.ST7580(**drv_kwargs))
    link.run(5)
    assert link.take() == [(EV_RESET, 0x3C)]
    link.drv.configure()
    link.run(100)
    assert link.take() == [(EV_CONFIRM, S.CMD_MIB_WRITE_REQ, b"")] * 2
    return link


def ask(link, cmd, data=b"", ms=200):
    assert link.drv.request(cmd, data)
    link.run(ms)
    return link.take()


# ---- boot and data, both directions
def test_boot_reset_indication_then_configuration():
    link = booted()
    emu = link.emu
    assert emu.mib[S.MIB_MODEM_CONFIG] == b"\x00"
    assert emu.mib[S.MIB_PHY_CONFIG] == S.PHY_CONFIG
    assert emu.stats["rx_frames"] == 2 and emu.stats["status"] == 2
    assert link.drv.idle and link.treq == 1
    # the status byte: PHY layer, bit 0 still set (MIB 02h, the SS key, is never written)
    assert link.drv.status == S.STATUS_CONFIG
    st = link.drv.stats
    assert (st["rx_bad"], st["retries"], st["timeouts"], st["rx_dup"]) == (0, 0, 0, 0)


def test_phy_data_host_to_line():
    link = booted()
    assert link.drv.phy_data(b"hello")
    link.run(20)
    assert link.on_air == [b"hello"] and link.take() == []
    assert link.emu._status_byte() & S.STATUS_TX
    # one request at a time: the next one waits for the PHY_Data confirm
    link.drv.request(S.CMD_PING_REQ, b"\x01")
    link.run(120)
    assert link.take() == [] and link.emu.stats["status"] == 3
    link.emu.transmit_done(link.t)
    link.run(100)
    assert link.take() == [
        (EV_CONFIRM, S.CMD_PHY_DATA_REQ, bytes([21 << 2, 21 << 2, 0, 0, 0])),
        (EV_CONFIRM, S.CMD_PING_REQ, b"\x01"),
    ]
    assert link.emu.mib[S.MIB_LAST_CNF] == bytes([0x54, 0x54, 0, 0, 0])
    assert link.emu.mib[S.MIB_PHY_COUNTERS][4:6] == b"\x00\x01"


def test_phy_data_line_to_host():
    link = booted()
    link.emu.deliver(b"abc", snr=-3, now=link.t)
    link.emu.deliver(b"\x00" * 251, snr=30, now=link.t)
    link.run(50)
    assert link.take() == [(EV_PHY_DATA, b"abc", -3, 4), (EV_PHY_DATA, b"\x00" * 251, 30, 4)]
    assert link.emu.mib[S.MIB_LAST_IND] == bytes([0x1C, 30, 0, 0])
    with pytest.raises(ValueError):
        link.emu.deliver(bytes(252))


def test_indication_while_host_waits_for_status():
    link = booted()
    link.drv.request(S.CMD_PING_REQ, b"\x42")
    link.emu.deliver(b"xyz")  # queued before the status message: the modem is master
    link.run(100)
    assert link.take() == [(EV_PHY_DATA, b"xyz", 20, 4), (EV_CONFIRM, S.CMD_PING_REQ, b"\x42")]


# ---- commands as the emulator answers them
def test_emulator_command_answers():
    link = booted()
    assert ask(link, S.CMD_PING_REQ, b"\x01\x02\x03") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x01\x02\x03")]
    assert ask(link, S.CMD_MIB_READ_REQ, b"\x0a") == [(EV_CONFIRM, S.CMD_MIB_READ_REQ, bytes.fromhex("00420097"))]
    assert ask(link, S.CMD_MIB_READ_REQ, b"\x0b") == [(EV_ERROR, S.CMD_MIB_READ_REQ, S.ERR_WPV)]
    assert ask(link, S.CMD_MIB_READ_REQ, b"") == [(EV_ERROR, S.CMD_MIB_READ_REQ, S.ERR_WPL)]
    assert ask(link, S.CMD_MIB_WRITE_REQ, b"\x01\x00") == [(EV_ERROR, S.CMD_MIB_WRITE_REQ, S.ERR_WPL)]
    assert ask(link, S.CMD_MIB_WRITE_REQ, b"\x0a\x00\x00\x00\x00") == [(EV_ERROR, S.CMD_MIB_WRITE_REQ, S.ERR_WPV)]
    assert ask(link, S.CMD_MIB_WRITE_REQ, b"\x00\x03") == [(EV_ERROR, S.CMD_MIB_WRITE_REQ, S.ERR_WPV)]
    assert ask(link, S.CMD_MIB_ERASE_REQ, b"\x06") == [(EV_CONFIRM, S.CMD_MIB_ERASE_REQ, b"")]
    assert ask(link, S.CMD_MIB_ERASE_REQ, b"\x00") == [(EV_ERROR, S.CMD_MIB_ERASE_REQ, S.ERR_WPV)]
    assert ask(link, 0x77, b"\x01") == [(EV_ERROR, 0x77, S.ERR_SYNTAX)]
    assert link.emu.stats["syntax_errors"] == 1
    assert ask(link, S.CMD_SS_DATA_REQ, b"\x44\x04") == [(EV_ERROR, S.CMD_SS_DATA_REQ, S.ERR_GENERAL)]


def test_emulator_phy_data_request_checks():
    link = booted()
    big = bytes([S.PHY_OPTIONS]) + bytes(251)
    assert ask(link, S.CMD_PHY_DATA_REQ, big) == [(EV_ERROR, S.CMD_PHY_DATA_REQ, S.ERR_WPL)]
    assert ask(link, S.CMD_PHY_DATA_REQ, b"\x44") == [(EV_ERROR, S.CMD_PHY_DATA_REQ, S.ERR_WPL)]
    assert ask(link, S.CMD_PHY_DATA_REQ, b"\x64x") == [(EV_ERROR, S.CMD_PHY_DATA_REQ, S.ERR_WPV)]
    # custom frequency (bit 0) written into MIB 01h (bit 1) as the high one (bit 2), gain byte (bit 3)
    opts = 0x40 | 0x08 | 0x04 | 0x02 | 0x01
    data = bytes([opts]) + (110000).to_bytes(3, "big") + b"\x10" + b"xy"
    assert ask(link, S.CMD_PHY_DATA_REQ, data) == []
    assert link.on_air == [b"xy"]
    assert link.emu.mib[S.MIB_PHY_CONFIG][0:3] == (110000).to_bytes(3, "big")
    # DL_Data takes the same path, with the DL payload limit
    link.emu.transmit_done(link.t)
    link.run(50)
    link.take()
    assert ask(link, S.CMD_DL_DATA_REQ, b"\x44" + bytes(243)) == [(EV_ERROR, S.CMD_DL_DATA_REQ, S.ERR_WPL)]


def test_emulator_bio_reset_request():
    link = booted()
    assert ask(link, S.CMD_RESET_REQ) == [
        (EV_CONFIRM, S.CMD_RESET_REQ, b"\x00"),
        (EV_RESET, 0x02 | 0x04 | 0x20),  # cause 2; MIB 02h never written
    ]
    assert link.emu.mib[S.MIB_MODEM_CONFIG] == b"\x00"  # restored after a BIO reset
    assert ask(link, S.CMD_RESET_REQ, b"\x00") == [(EV_ERROR, S.CMD_RESET_REQ, S.ERR_WPL)]


def test_emulator_timeouts_mib_changes_timing():
    link = booted()
    assert ask(link, S.CMD_MIB_WRITE_REQ, bytes([S.MIB_TIMEOUTS, 150, 30, 8])) == [
        (EV_CONFIRM, S.CMD_MIB_WRITE_REQ, b"")
    ]
    assert (link.emu.tsr_ms, link.emu.tack_ms, link.emu.tic_ms) == (150, 30, 8)
    assert ask(link, S.CMD_MIB_WRITE_REQ, bytes([S.MIB_TIMEOUTS, 0, 30, 8]))[0][2] == S.ERR_WPV


def test_dl_access_mode_indications_are_not_phy_data():
    link = booted()
    ask(link, S.CMD_MIB_WRITE_REQ, b"\x00\x11")
    assert (link.emu._status_byte() >> 3) & 3 == 1  # active layer: DL
    link.emu.deliver(b"dl")
    link.run(20)
    assert link.take() == [] and link.drv.stats["rx_unexpected"] == 1


def test_resetn_pulse_restores_factory_mibs():
    link = booted()
    link.emu.set_resetn(0, link.t)
    link.emu.deliver(b"lost")  # held in reset: nothing heard
    link.run(5)
    assert link.take() == []
    link.emu.set_resetn(1, link.t)
    link.run(5)
    assert link.take() == [(EV_RESET, 0x3C)]
    assert link.emu.mib[S.MIB_MODEM_CONFIG] == b"\x11"


# ---- fault injection and recovery
def test_fault_nak_once_recovers():
    link = booted()
    link.emu.inject("nak")
    assert ask(link, S.CMD_PING_REQ, b"\x01") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x01")]
    assert link.drv.stats["naks"] == 1 and link.drv.stats["retries"] == 1


def test_fault_nak_twice_times_out():
    link = booted()
    link.emu.inject("nak", 2)
    assert ask(link, S.CMD_PING_REQ, b"\x01") == [(EV_TIMEOUT, S.CMD_PING_REQ)]
    assert ask(link, S.CMD_PING_REQ, b"\x02") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x02")]


def test_fault_busy_backs_off():
    link = booted()
    link.emu.inject("busy", 3)
    assert ask(link, S.CMD_PING_REQ, b"\x01", ms=400) == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x01")]
    assert link.drv.stats["busy"] == 3 and link.emu.stats["busy"] == 3
    link = booted(busy_max=2)
    link.emu.inject("busy", 5)
    assert ask(link, S.CMD_PING_REQ, b"\x01", ms=400) == [(EV_ERROR, S.CMD_PING_REQ, S.ERR_BUSY)]


def test_fault_spontaneous_reset():
    link = booted()
    link.emu.inject("reset")
    link.run(10)
    # watchdog cause; MIB 00h/01h restored, MIB 02h still default
    assert link.take() == [(EV_RESET, 0x01 | 0x04 | 0x20)]
    assert link.emu.mib[S.MIB_PHY_CONFIG] == S.PHY_CONFIG
    # a reset during a transmission aborts the request in flight
    link.drv.phy_data(b"p")
    link.run(20)
    link.emu.inject("reset")
    link.run(10)
    assert link.take() == [(EV_ERROR, S.CMD_PHY_DATA_REQ, S.ERR_GENERAL), (EV_RESET, 0x25)]
    assert link.drv.idle
    assert ask(link, S.CMD_PING_REQ, b"\x03") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x03")]


@pytest.mark.parametrize("fault", ["bad_checksum", "truncate", "gap"])
def test_fault_on_indication_recovered_by_repeat(fault):
    link = booted()
    link.emu.inject(fault)
    link.emu.deliver(b"payload", now=link.t)
    link.run(200)
    assert link.take() == [(EV_PHY_DATA, b"payload", 20, 4)]
    assert link.emu.stats["tx_repeats"] == 1 and link.emu.stats["faults"] == 1
    # the tail of a gapped frame may hold a 0x02/0x03 byte: a second partial frame, dropped too
    assert link.drv.stats["rx_bad"] >= 1
    if fault == "bad_checksum":
        assert link.emu.stats["naks"] == 1  # NAKed at once, repeated after TACK
    assert ask(link, S.CMD_PING_REQ, b"\x01") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x01")]


@pytest.mark.parametrize("fault", ["bad_checksum", "truncate", "gap"])
def test_fault_on_confirm_recovered_by_repeat(fault):
    link = booted()
    link.emu.inject(fault)
    assert ask(link, S.CMD_PING_REQ, b"\x01") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x01")]
    assert link.emu.stats["tx_repeats"] == 1


@pytest.mark.parametrize("fault", ["bad_checksum", "truncate", "gap"])
def test_fault_twice_loses_confirm_then_timeout(fault):
    link = booted(confirm_ms=1000)
    link.emu.inject(fault, 2)
    link.drv.request(S.CMD_PING_REQ, b"\x01")
    link.run(900)
    assert link.take() == []
    link.run(200)
    assert link.take() == [(EV_TIMEOUT, S.CMD_PING_REQ)]
    assert ask(link, S.CMD_PING_REQ, b"\x02") == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x02")]


def test_lost_ack_repeat_is_deduplicated():
    link = booted()
    link.emu.deliver(b"once")
    link.lose_to_modem = 1  # the host's ACK never reaches the modem
    link.run(200)
    assert link.take() == [(EV_PHY_DATA, b"once", 20, 4)]
    assert link.drv.stats["rx_dup"] == 1
    assert link.emu.stats["tx_repeats"] == 1 and link.emu.stats["no_answer"] == 1


def test_lost_host_frame_restarts_sequence():
    link = booted()
    link.drv.request(S.CMD_PING_REQ, b"\x09")
    link.lose_to_modem = 1  # the frame after the status is lost on the wire
    link.run(400)
    assert link.take() == [(EV_CONFIRM, S.CMD_PING_REQ, b"\x09")]
    assert link.drv.stats["retries"] == 1
    # the modem answered the new T_REQ edge with a new status, without waiting out TSR
    assert link.emu.stats["status"] == 4 and link.emu.stats["tsr_expired"] == 0


# ---- the emulator's link rules, raw bytes
def drain(emu, t, until):
    """Run the emulator alone until time `until`; returns [(time, bytes)]."""
    out = []
    while True:
        emu.poll(t)
        b = emu.to_host()
        if b:
            out.append((t, b))
        nt = emu.next_timeout(t)
        if nt is None or t + nt > until:
            return out
        t = t + max(nt, 0.001)


def test_emulator_power_on_indication_repeated_once():
    emu = ST7580Emulator()
    emu.power_on(0)
    got = drain(emu, 0, 1000)
    ind = frame(0x3E, b"\x3c")
    assert got[0] == (0, ind)
    # nobody answers: one repeat with STX 0x03 after wire time + TACK, then silence
    assert got[1][1] == b"\x03" + ind[1:]
    assert abs(got[1][0] - (6 * 10000 / 57600 + 40)) < 1e-6
    assert len(got) == 2 and emu.stats["no_answer"] == 2


def test_emulator_nak_then_repeat_after_tack():
    emu = ST7580Emulator()
    emu.power_on(0)
    emu.poll(0)
    ind = emu.to_host()
    emu.from_host(b"\x15", 5)
    assert emu.to_host() == b""
    got = drain(emu, 5, 45.5)
    assert got == [(45, b"\x03" + ind[1:])]
    emu.from_host(b"\x15", 46)  # the answer to the repeat counts as positive
    assert drain(emu, 46, 1000) == [] and emu.stats["naks"] == 2


def test_emulator_handshake_tsr_and_tic():
    emu = ST7580Emulator(status_delay_ms=0.2)
    emu.power_on(0)
    emu.poll(0)
    emu.to_host()
    emu.from_host(b"\x06", 1)
    emu.set_treq(0, 10)
    assert emu.to_host() == b""  # status after status_delay_ms
    emu.poll(10.2)
    assert emu.to_host() == bytes([0x3F, 0x01 | (1 << 3)])  # defaults: bit 0, DL layer
    # nothing within TSR: the attempt is ignored
    emu.poll(10.2 + 2 * 10000 / 57600 + 200)
    assert emu.stats["tsr_expired"] == 1
    emu.from_host(frame(0x2C, b"\x01"), 300)  # a frame without handshake is ignored
    assert emu.to_host() == b"" and emu.stats["rx_ignored"] == 6
    # new T_REQ edge, frame with a gap longer than TIC: dropped, no answer
    emu.set_treq(1, 400)
    emu.set_treq(0, 401)
    emu.poll(402)
    assert emu.to_host()[0] == 0x3F
    f = frame(0x2C, b"\x01\x02")
    emu.from_host(f[:3], 403)
    emu.from_host(f[3:], 414)
    assert emu.to_host() == b"" and emu.stats["rx_dropped"] == 1
    # the same frame in one piece is ACKed and answered
    emu.set_treq(1, 420)
    emu.set_treq(0, 421)
    emu.poll(422)
    emu.to_host()
    emu.from_host(f, 423)
    emu.set_treq(1, 423)
    assert emu.to_host() == b"\x06" + frame(0x2D, b"\x01\x02")


def test_emulator_new_treq_edge_restarts_handshake():
    emu = ST7580Emulator()
    emu.power_on(0)
    emu.poll(0)
    emu.to_host()
    emu.from_host(b"\x06", 1)
    emu.set_treq(0, 10)
    emu.poll(11)
    assert emu.to_host()[0] == 0x3F
    emu.set_treq(1, 20)  # no frame: the host gave up
    emu.set_treq(0, 60)
    emu.poll(61)
    assert emu.to_host()[0] == 0x3F and emu.stats["status"] == 2


def test_emulator_bad_checksum_from_host_is_naked():
    emu = ST7580Emulator()
    emu.power_on(0)
    emu.poll(0)
    emu.to_host()
    emu.from_host(b"\x06", 1)
    emu.set_treq(0, 2)
    emu.poll(3)
    emu.to_host()
    bad = bytearray(frame(0x2C, b"\x01"))
    bad[-1] ^= 1
    emu.from_host(bytes(bad), 4)
    assert emu.to_host() == b"\x15" and emu.stats["rx_bad"] == 1


def test_emulator_second_transmission_refused_busy():
    emu = ST7580Emulator()
    emu.power_on(0)
    emu.poll(0)
    emu.to_host()
    emu.from_host(b"\x06", 1)
    t = 10
    answers = []
    for payload in (b"a", b"b"):
        emu.set_treq(0, t)
        emu.poll(t + 1)
        answers.append(emu.to_host())
        emu.from_host(frame(0x24, b"\x44" + payload), t + 2)
        emu.set_treq(1, t + 2)
        answers.append(emu.to_host())
        t += 10
    assert answers[0] == bytes([0x3F, 0x01 | (1 << 3)])
    assert answers[1] == b"\x06"
    # a host that ignores the busy status: TX bit set, the frame is refused with error Busy
    assert answers[2] == bytes([0x3F, 0x01 | 0x02 | (1 << 3)])
    assert answers[3] == b"\x06" + frame(0x27, b"\x04")
    assert emu.stats["busy"] == 1
    assert emu.next_transmission() == b"a" and emu.next_transmission() is None
    with pytest.raises(ValueError):
        emu.inject("smoke")


# ---- SerialModem
class Bench:
    """An emulated modem behind a fake serial port, on a virtual clock.
    Transmissions end after `air_ms` (a stand-in for the medium)."""

    def __init__(self, air_ms=10.0):
        self.t = 0.0
        self.emu = ST7580Emulator()
        self.emu.power_on(0)
        self.rx = bytearray()
        self.on_air = []
        self.air_ms = air_ms
        self.air_end = None
        self.pins = []

    def collect(self):
        self.emu.poll(self.t)
        self.rx += self.emu.to_host()
        p = self.emu.next_transmission()
        if p is not None:
            self.on_air.append(p)
            self.air_end = self.t + self.air_ms
        if self.air_end is not None and self.t >= self.air_end:
            self.air_end = None
            self.emu.transmit_done(self.t)
            self.rx += self.emu.to_host()

    def advance(self, ms):
        end = self.t + ms
        while True:
            self.collect()
            times = [end]
            nt = self.emu.next_timeout(self.t)
            if nt is not None:
                times.append(self.t + max(nt, 0.001))
            if self.air_end is not None:
                times.append(self.air_end)
            t = min(times)
            if t >= end:
                break
            self.t = t
        self.t = end
        self.collect()

    def set_treq(self, level):
        self.pins.append(("T", level))
        self.emu.set_treq(level, self.t)

    def set_resetn(self, level):
        self.pins.append(("R", level))
        self.emu.set_resetn(level, self.t)


class FakeSerial:
    def __init__(self, bench):
        self.bench = bench
        self.timeout = 0.002
        self.rts = None
        self.dtr = None
        self.written = []

    @property
    def in_waiting(self):
        return len(self.bench.rx)

    def read(self, n=1):
        if not self.bench.rx:
            self.bench.advance(self.timeout * 1000)
        out = bytes(self.bench.rx[:n])
        del self.bench.rx[:n]
        return out

    def write(self, data):
        self.written.append(bytes(data))
        self.bench.emu.from_host(data, self.bench.t)
        self.bench.collect()
        return len(data)

    def reset_input_buffer(self):
        self.bench.rx.clear()

    def close(self):
        pass


def bench_modem(**kw):
    bench = Bench()
    modem = SerialModem(
        serial=FakeSerial(bench),
        set_treq=bench.set_treq,
        set_resetn=bench.set_resetn,
        clock_ms=lambda: int(bench.t),
        sleep=lambda s: bench.advance(s * 1000),
        **kw,
    )
    modem.open()
    return bench, modem


def test_serial_modem_reset_configures():
    bench, modem = bench_modem()
    assert modem.reset() == 0x3C
    assert bench.pins[:4] == [("T", 1), ("R", 1), ("T", 1), ("R", 0)]
    assert ("R", 1) in bench.pins[4:]
    assert bench.emu.mib[S.MIB_MODEM_CONFIG] == b"\x00"
    assert bench.emu.mib[S.MIB_PHY_CONFIG] == S.PHY_CONFIG
    assert modem.resets == 1 and modem.drv.idle


def test_serial_modem_send_and_receive():
    bench, modem = bench_modem()
    modem.reset()
    assert modem.send_phy(b"hello", timeout_s=2) == bytes([0x54, 0x54, 0, 0, 0])
    assert bench.on_air == [b"hello"]
    bench.emu.deliver(b"answer", snr=7, now=bench.t)
    assert modem.receive_phy(1.0) == (b"answer", 7)
    t0 = bench.t
    assert modem.receive_phy(0.1) is None
    assert 100 <= bench.t - t0 <= 110
    with pytest.raises(ValueError):
        modem.send_phy(bytes(251))


def test_serial_modem_errors():
    bench, modem = bench_modem()
    modem.reset()
    with pytest.raises(ModemError) as e:
        modem.command(S.CMD_MIB_WRITE_REQ, b"\x03\x00")
    assert e.value.code == S.ERR_WPV and e.value.cmd == S.CMD_MIB_WRITE_REQ
    bench.emu.inject("nak", 2)
    with pytest.raises(ModemTimeout):
        modem.send_phy(b"x")
    assert modem.command(S.CMD_PING_REQ, b"\x01") == b"\x01"


def test_serial_modem_reset_without_modem_times_out():
    bench, modem = bench_modem(boot_timeout_s=0.5)
    bench.emu._powered = False  # no power: RESETN does nothing
    with pytest.raises(ModemTimeout):
        modem.reset()


def test_serial_modem_reconfigures_after_power_loss():
    bench, modem = bench_modem()
    modem.reset()
    bench.emu.power_on(bench.t)  # power glitch: factory MIBs, indication 0x3C
    assert modem.receive_phy(0.3) is None
    assert modem.resets == 2 and modem.last_reset == 0x3C
    assert bench.emu.mib[S.MIB_MODEM_CONFIG] == b"\x00" and modem.config_errors == 0
    assert modem.send_phy(b"again") == bytes([0x54, 0x54, 0, 0, 0])


def test_serial_modem_default_pins_use_rts_and_dtr():
    bench = Bench()
    ser = FakeSerial(bench)
    modem = SerialModem(serial=ser, clock_ms=lambda: int(bench.t), sleep=lambda s: bench.advance(s * 1000))
    modem.open()
    assert (ser.rts, ser.dtr) == (False, False)  # active-low adapter lines: both pins high
    modem._set_treq(0)
    modem._set_resetn(0)
    assert (ser.rts, ser.dtr) == (True, True)
    ser2 = FakeSerial(bench)
    SerialModem(serial=ser2, rts_active_low=False, dtr_active_low=False).open()
    assert (ser2.rts, ser2.dtr) == (True, True)


def test_modem_port_for_the_concentrator():
    bench, modem = bench_modem()
    modem.reset()
    port = ModemPort(modem)
    port.send(b"req")
    assert bench.on_air == [b"req"]
    bench.emu.deliver(b"resp", now=bench.t)
    assert port.recv(0.5) == b"resp"
    assert port.recv(0.01) is None
    assert port.now() >= 0


def test_serial_modem_over_a_pty():
    """pyserial on a pty slave; the emulator serves the master from a thread in real time."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    emu = ST7580Emulator()
    lock = threading.Lock()
    stop = threading.Event()
    on_air = []

    def now():
        return time.monotonic() * 1000.0

    def serve():
        air_end = None
        while not stop.is_set():
            with lock:
                t = now()
                if air_end is not None and t >= air_end:
                    air_end = None
                    emu.transmit_done(t)
                emu.poll(t)
                out = emu.to_host()
                p = emu.next_transmission()
                if p is not None:
                    on_air.append(p)
                    air_end = t + 20.0
                nt = emu.next_timeout(t)
            if out:
                os.write(master, out)
            wait = 0.005 if nt is None else min(0.005, nt / 1000.0)
            r, _, _ = select.select([master], [], [], wait)
            if r:
                data = os.read(master, 4096)
                with lock:
                    emu.from_host(data, now())

    def pin(setter):
        def set_level(level):
            with lock:
                setter(level, now())

        return set_level

    with lock:
        emu.power_on(now())
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    modem = SerialModem(path, set_treq=pin(emu.set_treq), set_resetn=pin(emu.set_resetn))
    try:
        modem.open()
        assert modem.reset() == 0x3C
        assert modem.send_phy(b"over a pty", timeout_s=2) == bytes([0x54, 0x54, 0, 0, 0])
        assert on_air == [b"over a pty"]
        with lock:
            emu.deliver(b"heard", snr=12)
        assert modem.receive_phy(2.0) == (b"heard", 12)
        assert modem.stats["timeouts"] == 0
    finally:
        modem.close()
        stop.set()
        th.join(2)
        os.close(master)
        os.close(slave)
