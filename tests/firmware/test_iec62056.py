# The optical port's IEC 62056-21 prologue and mode C readout on a virtual
# clock: request, identification after tr, option select, the switch, the
# readout and the way back to 300 Bd; garbage, breaks, parity errors, half
# sign-ons and timeouts; the lockout's growing delays.
from meter.optical import iec62056 as I
from meter.optical import readout as RO
from meter.model import registers as R
from meter import timers as T
from meter.model.datamodel import DataModel
from meter.optical.readout import civil, data_message, readout_lines
from meter.storage import Store
from fwtest import Rng

ACA = bytes.fromhex("A8040A1E8901")
NOW = 1783296000 + 13 * 3600 + 5 * 60 + 9  # 2026-07-06 13:05:09 UTC


def model():
    m = DataModel("SN-0001", ACA, "smitp-meter 0.1.0 test", Store(), lambda: NOW)
    m.set(R.ENERGY_IMPORT, 1234567, persist=False)
    m.set(R.ENERGY_EXPORT, 89, persist=False)
    return m


class Clock:
    """Drives a port on a virtual clock; collects what it sends, with the line
    settings in force at that moment."""

    def __init__(self, port):
        self.port = port
        self.t = 1000
        self.sent = []  # (baud, seven_e1, bytes)

    def _collect(self):
        out = self.port.data_to_send()
        if out:
            self.sent.append((self.port.baud, self.port.seven_e1, out))

    def feed(self, data):
        self.port.receive(data, self.t)
        self._collect()

    def run(self, ms):
        """Advance ms, waking the port at every timer it asks for."""
        end = self.t + ms
        while True:
            self.port.poll(self.t)
            self._collect()
            dt = self.port.next_timeout(self.t)
            if dt < 0 or self.t + max(dt, 1) > end:
                break
            self.t += max(dt, 1)
        self.t = end
        self.port.poll(self.t)
        self._collect()

    def text(self):
        return b"".join(s[2] for s in self.sent)


def port(**kw):
    m = model()
    return I.OpticalPort(lambda: readout_lines(m), **kw), m


def test_identification_message():
    assert I.identification(5, "SMITP0.1.0") == b"/XXx5\\FSMITP0.1.0\r\n"
    assert I.identification(3, "ABC", mode_f=False) == b"/XXx3ABC\r\n"
    assert I.identification(6, "x" * 20).endswith(b"x" * 16 + b"\r\n")


def test_bcc_parity_airtime():
    msg = b"\x01B0\x03"
    assert RO.bcc(msg, 1, 4) == 0x71  # the break message "SOH B 0 ETX q"
    assert [I.parity_even(c) for c in b"/?!"] == [1, 0, 0]
    assert I.airtime_ms(30, 300) == 1000 and I.airtime_ms(1, 9600) == 2


def test_civil_time():
    assert civil(0) == (1970, 1, 1, 0, 0, 0)
    assert civil(951782400) == (2000, 2, 29, 0, 0, 0)  # a leap day
    assert civil(NOW) == (2026, 7, 6, 13, 5, 9)
    assert civil(4107542399) == (2100, 2, 28, 23, 59, 59)


def test_readout_lines_and_data_message():
    m = model()
    lines = readout_lines(m).decode()
    assert lines.startswith("0.0.0(SN-0001)\r\n0.0.1(A8040A1E8901)\r\n0.2.0(")
    assert "0.9.1(13:05:09)\r\n0.9.2(26-07-06)\r\n" in lines
    assert "1.8.0(0001234.567*kWh)\r\n2.8.0(0000000.089*kWh)\r\n" in lines
    assert "F.F(0000000000000001)\r\n" in lines  # clock not set since power-up
    msg = data_message(b"1.8.0(1*kWh)\r\n")
    assert msg == b"\x021.8.0(1*kWh)\r\n!\r\n\x03" + bytes([RO.bcc(msg, 1, len(msg) - 1)])


def test_mode_c_readout_from_request_to_300_baud_again():
    p, m = port()
    c = Clock(p)
    c.feed(b"/?!\r\n")
    c.run(T.OPT_REACTION_MS - 1)
    assert c.sent == []  # not before tr
    c.run(1)
    assert c.sent == [(300, True, I.identification(mode_f=False))]  # no mode F session given
    c.run(200)
    c.feed(b"\x06050\r\n")  # ACK, normal protocol, 9600 Bd, data readout
    assert (p.baud, p.seven_e1, p.state) == (9600, True, I.SESSION)  # switched at once
    c.run(T.OPT_READOUT_MS - 1)
    assert len(c.sent) == 1
    c.run(1)
    baud, seven, msg = c.sent[1]
    assert (baud, seven) == (9600, True)
    assert msg == data_message(readout_lines(m))
    assert p.state == I.DRAIN and p.baud == 9600  # the message is still leaving
    c.run(I.airtime_ms(len(msg), 9600) + T.OPT_DRAIN_GUARD_MS)
    assert (p.state, p.baud, p.seven_e1) == (I.IDLE, 300, True)
    assert p.stats["sessions_c"] == 1


def test_lower_rate_accepted_higher_refused():
    p, _ = port()
    c = Clock(p)
    c.feed(b"/?!\r\n")
    c.run(300)
    c.feed(b"\x06030\r\n")  # 2400 Bd
    assert p.baud == 2400
    p2, _ = port()
    c2 = Clock(p2)
    c2.feed(b"/?!\r\n")
    c2.run(300)
    c2.feed(b"\x06060\r\n")  # 19200: more than offered
    assert p2.state == I.IDLE and p2.baud == 300 and p2.stats["refused"] == 1


def test_unsupported_modes_end_the_sign_on_silently():
    for option in (b"\x06051\r\n", b"\x06252\r\n", b"\x06F5F\r\n", b"\x06056\r\n"):
        p, _ = port()  # no mode F session factory: F is not offered either
        c = Clock(p)
        c.feed(b"/?!\r\n")
        c.run(300)
        c.feed(option)
        assert p.state == I.IDLE and p.baud == 300, option
        c.run(5000)
        assert len(c.sent) == 1


def test_device_address():
    p, _ = port(settings=I.Settings())
    p.settings.address = b"12345678"
    c = Clock(p)
    c.feed(b"/?87654321!\r\n")
    c.run(500)
    assert c.sent == [] and p.stats["refused"] == 1
    c.feed(b"/?12345678!\r\n")
    c.run(500)
    c.feed(b"/?!\r\n")  # no address: the optical head is point to point
    c.run(500)
    assert len(c.sent) == 2


def test_option_timeout_and_restart():
    p, _ = port()
    c = Clock(p)
    c.feed(b"/?!\r\n")
    c.run(T.OPT_REACTION_MS)
    ident_ms = I.airtime_ms(len(I.identification()), 300)
    c.run(ident_ms + T.OPT_OPTION_MS + 1)
    assert p.state == I.IDLE and p.stats["timeouts"] == 1
    c.feed(b"\x06050\r\n")  # too late: ignored
    assert p.state == I.IDLE
    c.feed(b"/?!\r\n")
    c.run(100)
    c.feed(b"/?!\r\n")  # a new request while waiting for the option select
    c.run(100)
    assert len(c.sent) == 3 and p.state == I.OPTION


def test_partial_message_dropped_after_ta():
    p, _ = port()
    c = Clock(p)
    c.feed(b"/?")
    c.run(T.OPT_INTERCHAR_MS + 1)
    c.feed(b"!\r\n")
    c.run(500)
    assert c.sent == [] and p.stats["timeouts"] == 1
    c.feed(b"/?")
    c.run(T.OPT_INTERCHAR_MS - 100)
    c.feed(b"!\r\n")  # slow but within ta
    c.run(500)
    assert len(c.sent) == 1


def test_parity_errors_breaks_and_garbage_never_stick():
    p, _ = port()
    c = Clock(p)
    c.feed(b"/?\xa1\r\n")  # "!" with its 8th bit set: a parity error
    c.feed(b"/?" + b"\x00" * 20 + b"!\r\n")  # a break in the middle
    c.feed(b"/" + b"?" * 40 + b"!\r\n")  # too long
    c.feed(b"/x!\r\n")
    c.run(500)
    assert c.sent == [] and p.state == I.IDLE and p.stats["errors"] == 4
    rng = Rng(7)
    for _ in range(50):
        c.feed(rng.bytes(rng.below(40)))
        c.run(rng.below(400))
    c.run(10000)
    c.sent = []
    if p.state != I.IDLE:  # random bytes may have made a valid sign-on: let it finish
        c.run(T.OPT_READOUT_MS + 2000)
    c.feed(b"/?!\r\n")
    c.run(300)
    assert c.sent and c.sent[-1][2] == I.identification(mode_f=False)


def test_lockout_doubles_and_resets():
    lk = I.Lockout(after=3, base_ms=1000, max_ms=5000)
    t = 0
    assert not lk.failed(t) and not lk.failed(t)
    assert lk.failed(t) and lk.last_ms == 1000 and lk.locked(999) and not lk.locked(1000)
    for expected in (2000, 4000, 5000, 5000):
        lk.failed(t)
        lk.failed(t)
        assert lk.failed(t) and lk.last_ms == expected
    lk.succeeded()
    lk.failed(t)
    lk.failed(t)
    assert lk.failed(t) and lk.last_ms == 1000
    assert lk.total_locks == 6 and lk.total_failures == 18


def test_settings_persist():
    store = Store()
    s = I.Settings(store)
    assert s.max_baud == I.DEFAULT_MAX_BAUD and s.address == b""
    s.max_baud = 3
    s.address = b"ABC"
    assert s.save()
    s2 = I.Settings(store)
    assert (s2.max_baud, s2.address) == (3, b"ABC")
    store.put("optical", b"\x09")  # damaged: defaults
    assert I.Settings(store).max_baud == I.DEFAULT_MAX_BAUD
