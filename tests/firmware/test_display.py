# The display manager on virtual time: scroll order and dwell, formats, the
# button (short and long press), modes and their timeouts, utility and
# special messages (priority, marquee, acknowledgement, expiry), alarms, and
# persistence across a restart. Registers are written through the application
# layer with the write key's rights, as an authenticated write would.
from meter import attrs as A
from meter.display import manager as D
from meter.display import screen as SC
from meter.model import registers as R
from meter import timers as T
from meter.app.services import Application
from meter.model.datamodel import DataModel
from meter.storage import Store

NOW = 1700000000  # 2023-11-14 22:13:20 UTC
LONG = T.DISPLAY_LONG_PRESS_MS


class Meter:
    """A data model, its application layer and a display on a virtual clock."""

    def __init__(self, store=None, wall=NOW):
        self.store = store or Store()
        self.wall0 = wall
        self.wall = [wall]
        self.model = DataModel("SN0042", b"\xa8\x04\x0a\x1e\x89\x01", "fw", self.store, lambda: self.wall[0])
        self.app = Application(self.model)
        self.disp = D.Display(self.model)
        self.t = 0
        self.changes = 0

    def write(self, reg, value, grant=R.ACC_WRITE_KEY):
        req = bytes((A.WRITE_REQ, reg >> 8, reg & 0xFF)) + bytes(value)
        n = self.app.handle(req, 0, len(req), 128, grant)
        return bytes(self.app.resp[:n])

    def at(self, t):
        """Poll at virtual time t (ms); the wall clock follows."""
        self.wall[0] = self.wall0 + t // 1000
        self.t = t
        if self.disp.poll(t):
            self.changes += 1
        return self.disp.screen

    def press(self, held=100):
        self.disp.button(True, self.t)
        if held >= LONG:  # held: the long press starts while the button is down
            self.at(self.t + held)
        self.t += held
        self.disp.button(False, self.t)
        return self.at(self.t)


def ids(*regs):
    out = b"".join(bytes((r >> 8, r & 0xFF)) for r in regs)
    return out + bytes(16 - len(out))


def message(text, prio=D.PRIO_INFO, minutes=0):
    raw = text.encode()
    return bytes((prio, minutes >> 8, minutes & 0xFF)) + raw + bytes(D.MSG_TEXT_LEN - len(raw))


def codes(m, times):
    return [m.at(t).code for t in times]


def state(m, reg=R.DISPLAY_MESSAGE_STATE):
    raw = m.model.get(reg)
    return raw[0], int.from_bytes(raw[1:5], "big")


# ---- normal mode

def test_default_scroll_order_and_dwell():
    m = Meter()
    assert m.at(0).code == "1.8.0" and m.disp.mode == SC.MODE_NORMAL
    assert codes(m, (4999, 5000, 9999, 10000, 14999, 15000, 20000)) == \
        ["1.8.0", "2.8.0", "2.8.0", "0.9.1", "0.9.1", "1.8.0", "2.8.0"]


def test_next_timeout_is_the_refresh_or_the_next_step():
    m = Meter()
    m.at(0)
    assert m.disp.next_timeout(0) == T.DISPLAY_REFRESH_MS
    m.at(4500)
    assert m.disp.next_timeout(4500) == 500
    m.at(5000)
    assert m.disp.next_timeout(5000) == T.DISPLAY_REFRESH_MS


def test_programmed_scroll_list_and_dwell():
    m = Meter()
    m.at(0)
    assert m.write(R.DISPLAY_SCROLL, ids(R.SERIAL, R.ACA, R.STATUS_WORD)) == bytes((A.ACK_A,))
    assert m.write(R.DISPLAY_TIMING, bytes((2, 0, 0, 0))) == bytes((A.ACK_A,))
    assert codes(m, (100, 2099, 2100, 4100, 6100)) == ["C.1.0", "C.1.0", "0.0.0", "F.F", "C.1.0"]
    assert m.model.get(R.DISPLAY_SCROLL) == ids(R.SERIAL, R.ACA, R.STATUS_WORD)


def test_plain_write_of_display_registers_is_refused():
    m = Meter()
    for reg, value in ((R.DISPLAY_SCROLL, ids(R.SERIAL)), (R.DISPLAY_MESSAGE, message("HI"))):
        ans = m.write(reg, value, grant=R.ACC_PLAIN)
        assert ans[0] == A.NACK_A and ans[1] == A.NACK_ACCESS_DENIED
        ans = m.write(reg, value, grant=R.ACC_READ_KEY)
        assert ans[0] == A.NACK_A and ans[1] == A.NACK_ACCESS_DENIED
    assert m.at(0).code == "1.8.0"


def unchecked(m):
    """Let every value through the display's write checks (as a data model
    that applies every write would): bad values then reach the manager."""
    m.disp.reg_check = lambda reg, raw: True


def test_value_checks():
    assert D.valid_mode(b"\x02") and not D.valid_mode(b"\x03")
    assert D.valid_list(ids(R.SERIAL, R.ENERGY_IMPORT)) and D.valid_list(ids())
    assert not D.valid_list(ids(R.LMON)) and not D.valid_list(ids(0x7777))
    assert not D.valid_list(ids(R.SERIAL, 0, R.ACA))  # nothing after the end
    assert D.valid_message(message("OK", D.PRIO_URGENT)) and D.valid_message(message(""))
    assert not D.valid_message(message("OK", 3)) and not D.valid_message(message("A\tB"))
    assert not D.valid_message(bytes(3) + b"A\0B" + bytes(29))
    assert D.valid_special(b"\x00\x00\x00") and D.valid_special(b"\x05\x00\x01")
    assert not D.valid_special(b"\x63\x00\x00")


def test_bad_values_are_refused_when_the_data_model_checks_writes():
    m = Meter()
    m.at(0)
    for reg, value in ((R.DISPLAY_SCROLL, ids(R.LMON)), (R.DISPLAY_MODE, b"\x07"),
                       (R.DISPLAY_MESSAGE, message("X", 9)), (R.DISPLAY_SPECIAL, b"\x63\x00\x00")):
        assert m.write(reg, value) == bytes((A.NACK_A, A.NACK_BAD_VALUE, reg >> 8, reg & 0xFF))
    assert m.at(10).code == "1.8.0" and state(m, R.DISPLAY_SPECIAL_STATE)[0] == D.MSG_NONE


def test_protected_and_unknown_registers_are_left_out_of_the_list():
    m = Meter()
    unchecked(m)
    m.write(R.DISPLAY_SCROLL, ids(R.LMON, 0x7777, R.ENERGY_EXPORT, R.SECURITY_COUNTERS))
    assert codes(m, (0, 5000, 10000)) == ["2.8.0"] * 3
    m.write(R.DISPLAY_SCROLL, ids(R.LMON))  # nothing left: the default list
    assert codes(m, (10001, 15001)) == ["1.8.0", "2.8.0"]


def test_values_as_a_meter_shows_them():
    m = Meter(wall=1751718896)  # 2025-07-05 12:34:56 UTC
    m.model.set(R.ENERGY_IMPORT, 1234567, persist=False)
    m.model.set(R.ENERGY_EXPORT, 5, persist=False)
    s = m.at(0)
    assert (s.code, s.value, s.unit, s.line) == ("1.8.0", "1234.567", "kWh", "ACTIVE IMPORT")
    s = m.at(5000)
    assert (s.code, s.value, s.unit) == ("2.8.0", "0.005", "kWh")
    s = m.at(10000)
    assert (s.code, s.value, s.line) == ("0.9.1", "12:35:06", "2025-07-05 UTC")
    m.write(R.DISPLAY_SCROLL, ids(R.SERIAL, R.ACA, R.STATUS_WORD, R.POINT_LABEL))
    assert m.at(10001).line == "SN0042"
    assert m.at(15001).line == "A8040A1E8901"
    assert m.at(20001).value == "00000001"  # clock not set
    s = m.at(25001)
    assert (s.code, s.line) == ("0013", "-")
    m.model.set(R.ENERGY_IMPORT, 123456789012, persist=False)
    screen = SC.Screen()
    SC.format_value(screen, R.ENERGY_IMPORT, 123456789012)
    assert (screen.value, screen.line, screen.unit) == ("", "123456789", "kWh")
    SC.format_value(screen, R.ENERGY_IMPORT, 12345678901)
    assert screen.value == "12345678"


def test_live_value_refreshes_every_second():
    m = Meter()
    m.at(0)
    m.model.set(R.ENERGY_IMPORT, 2000, persist=False)
    assert m.disp.next_timeout(0) == T.DISPLAY_REFRESH_MS
    assert m.disp.poll(1000) and m.disp.screen.value == "2.000"
    assert not m.disp.poll(2000)


# ---- button and modes

def test_short_presses_step_through_the_alternate_list():
    m = Meter()
    m.at(0)
    s = m.press()
    assert m.disp.mode == SC.MODE_ALTERNATE and s.icons & SC.ICON_ALTERNATE and s.code == "1.8.0"
    got = [m.press().code for _ in range(6)]
    assert got == ["2.8.0", "0.9.1", "C.1.0", "0.0.0", "F.F", "1.8.0"]
    assert m.model.get(R.DISPLAY_MODE) == SC.MODE_ALTERNATE
    # no automatic scroll in alternate mode
    assert m.at(m.t + 20000).code == "1.8.0"


def test_alternate_mode_times_out_to_normal():
    m = Meter()
    m.write(R.DISPLAY_ALTERNATE, ids(R.SERIAL, R.ACA))
    m.at(0)
    m.press()
    m.press()
    pressed = m.t
    assert m.at(pressed + T.DISPLAY_ALT_TIMEOUT_S * 1000 - 1).code == "0.0.0"
    s = m.at(pressed + T.DISPLAY_ALT_TIMEOUT_S * 1000)
    assert m.disp.mode == SC.MODE_NORMAL and s.code == "1.8.0" and not s.icons & SC.ICON_ALTERNATE


def test_long_press_enters_test_mode_while_held_and_it_ends_by_itself():
    m = Meter()
    m.at(1000)
    m.disp.button(True, 1000)
    assert m.disp.next_timeout(1000) == min(T.DISPLAY_REFRESH_MS, LONG)
    m.at(2000)
    assert m.disp.next_timeout(2000) == LONG - 1000
    assert m.at(2999).show == SC.SHOW_VALUE
    s = m.at(3000)  # still held: test mode starts at the threshold
    assert m.disp.mode == SC.MODE_TEST and s.show == SC.SHOW_TEST and s.icons == SC.ICONS_ALL
    m.disp.button(False, 5000)  # the release of a long press does nothing more
    assert m.at(5000).show == SC.SHOW_TEST
    assert m.at(3000 + T.DISPLAY_TEST_S * 1000 - 1).show == SC.SHOW_TEST
    assert m.at(3000 + T.DISPLAY_TEST_S * 1000).show == SC.SHOW_VALUE
    assert m.disp.mode == SC.MODE_NORMAL


def test_test_mode_left_by_a_press_and_release_after_long_hold_counts_as_long():
    m = Meter()
    m.at(0)
    m.disp.button(True, 100)
    m.disp.button(False, 100 + LONG)  # no poll in between: decided at release
    assert m.at(100 + LONG).show == SC.SHOW_TEST
    assert m.press().show == SC.SHOW_VALUE and m.disp.mode == SC.MODE_NORMAL
    m.press(held=LONG)
    assert m.disp.mode == SC.MODE_TEST
    m.press(held=LONG)
    assert m.disp.mode == SC.MODE_NORMAL


def test_mode_register_starts_test_mode_and_ignores_bad_values():
    m = Meter()
    unchecked(m)
    m.at(0)
    m.write(R.DISPLAY_MODE, b"\x02")
    assert m.at(10).show == SC.SHOW_TEST and m.model.get(R.DISPLAY_MODE) == 2
    m.write(R.DISPLAY_MODE, b"\x07")
    assert m.at(20).show == SC.SHOW_TEST and m.model.get(R.DISPLAY_MODE) == 2
    m.write(R.DISPLAY_MODE, b"\x01")
    assert m.at(30).icons & SC.ICON_ALTERNATE
    m.write(R.DISPLAY_MODE, b"\x00")
    assert m.at(40).code == "1.8.0" and m.disp.mode == SC.MODE_NORMAL


def test_register_write_notifies_the_display_task():
    m = Meter()
    woken = []
    m.disp.notify = lambda: woken.append(1)
    m.write(R.DISPLAY_TIMING, bytes((1, 0, 0, 0)))
    m.write(R.POINT_LABEL, b"X" * 16)
    assert woken == [1]


# ---- messages

def test_info_message_takes_one_dwell_in_each_cycle():
    m = Meter()
    m.at(0)
    m.write(R.DISPLAY_MESSAGE, message("READ THE BILL"))
    assert state(m) == (D.MSG_SHOWING, 0)
    s = m.at(100)  # a new message shows at once
    assert s.show == SC.SHOW_MESSAGE and s.line == "READ THE BILL" and s.icons & SC.ICON_MESSAGE
    assert [m.at(t).show for t in (5100, 10100, 15100, 20100)] == [SC.SHOW_VALUE] * 3 + [SC.SHOW_MESSAGE]
    assert m.at(25100).code == "1.8.0" and m.at(25100).icons & SC.ICON_MESSAGE


def test_high_message_stays_and_a_short_press_acknowledges_it():
    m = Meter()
    m.at(0)
    m.write(R.DISPLAY_MESSAGE, message("CALL 0800 123", D.PRIO_HIGH))
    assert [m.at(t).show for t in (10, 5010, 60010)] == [SC.SHOW_MESSAGE] * 3
    wall = m.wall[0]
    s = m.press()
    assert s.show == SC.SHOW_VALUE and s.code == "1.8.0" and not s.icons & SC.ICON_MESSAGE
    assert m.disp.mode == SC.MODE_NORMAL  # the press acknowledged, it did not switch modes
    assert state(m) == (D.MSG_ACKED, wall)
    assert m.model.get(R.DISPLAY_MESSAGE)[3:16] == b"CALL 0800 123"  # what was written stays readable


def test_message_expires_after_its_duration():
    m = Meter()
    m.at(0)
    m.write(R.DISPLAY_MESSAGE, message("OUTAGE 14H", D.PRIO_HIGH, minutes=2))
    assert state(m) == (D.MSG_SHOWING, NOW + 120)
    assert m.at(119000).show == SC.SHOW_MESSAGE
    s = m.at(120000)
    assert s.show == SC.SHOW_VALUE and state(m) == (D.MSG_EXPIRED, NOW + 120)


def test_priorities_urgent_over_alternate_over_high_over_the_cycle():
    m = Meter()
    m.at(0)
    m.write(R.DISPLAY_MESSAGE, message("HIGH ONE", D.PRIO_HIGH))
    assert m.at(10).line == "HIGH ONE"
    m.write(R.DISPLAY_MODE, b"\x01")
    s = m.at(20)
    assert s.show == SC.SHOW_VALUE and s.icons & SC.ICON_ALTERNATE and s.icons & SC.ICON_MESSAGE
    m.write(R.DISPLAY_SPECIAL, b"\x01\x00\x00")  # POWER LIMIT EXCEEDED: urgent
    s = m.at(30)
    assert s.show == SC.SHOW_MESSAGE and s.line == "POWER LIMIT EXCE"
    m.press()  # acknowledges the urgent one on screen
    assert state(m, R.DISPLAY_SPECIAL_STATE)[0] == D.MSG_ACKED
    assert m.at(m.t + 10).show == SC.SHOW_VALUE  # back in alternate mode
    m.write(R.DISPLAY_MODE, b"\x02")
    assert m.at(m.t + 20).show == SC.SHOW_TEST  # test mode over everything
    m.write(R.DISPLAY_MODE, b"\x00")
    assert m.at(m.t + 30).line == "HIGH ONE"


def test_newest_message_wins_a_tie_and_the_other_shows_after_it():
    m = Meter()
    m.at(0)
    m.write(R.DISPLAY_MESSAGE, message("FIRST", D.PRIO_HIGH))
    m.write(R.DISPLAY_SPECIAL, b"\x03\x00\x00")  # CONTACT YOUR SUPPLIER, high
    assert m.at(10).line == "CONTACT YOUR SUP"
    m.press()
    assert m.at(m.t).line == "FIRST"


def test_special_message_codes():
    m = Meter()
    unchecked(m)
    m.at(0)
    m.write(R.DISPLAY_SPECIAL, b"\x63\x00\x05")  # unknown code: recorded as refused
    assert state(m, R.DISPLAY_SPECIAL_STATE) == (D.MSG_REFUSED, NOW)
    assert m.at(10).show == SC.SHOW_VALUE
    m.write(R.DISPLAY_SPECIAL, b"\x04\x00\x01")  # TARIFF CHANGE, info, one minute
    assert state(m, R.DISPLAY_SPECIAL_STATE) == (D.MSG_SHOWING, NOW + 60)
    assert m.at(20).line == "TARIFF CHANGE"
    m.write(R.DISPLAY_SPECIAL, b"\x00\x00\x00")
    assert state(m, R.DISPLAY_SPECIAL_STATE)[0] == D.MSG_CLEARED
    assert m.at(30).show == SC.SHOW_VALUE and not m.at(30).icons & SC.ICON_MESSAGE


def test_empty_text_clears_the_utility_message():
    m = Meter()
    m.write(R.DISPLAY_MESSAGE, message("X", D.PRIO_URGENT))
    assert m.at(0).show == SC.SHOW_MESSAGE
    m.write(R.DISPLAY_MESSAGE, message("", D.PRIO_URGENT))
    assert state(m)[0] == D.MSG_CLEARED and m.at(10).show == SC.SHOW_VALUE


def test_long_message_scrolls_through_the_line():
    m = Meter()
    text = "PLANNED WORKS ON YOUR LINE"  # 26 characters, 10 more than the line
    m.write(R.DISPLAY_MESSAGE, message(text, D.PRIO_HIGH))
    step = T.DISPLAY_MARQUEE_MS
    lines = [m.at(i * step).line for i in range(18)]
    assert lines[0] == text[:16] and lines[3] == text[:16]
    assert lines[4] == text[1:17] and lines[13] == text[10:26]
    assert lines[16] == text[10:26] and lines[17] == text[:16]
    assert m.disp.next_timeout(17 * step) == step


def test_long_info_message_dwells_until_its_marquee_ran_through():
    m = Meter()
    text = "PLANNED WORKS ON YOUR LINE"
    m.write(R.DISPLAY_MESSAGE, message(text))
    step = T.DISPLAY_MARQUEE_MS
    dwell = max(T.DISPLAY_DWELL_S * 1000, (10 + 6) * step)
    t = 0
    while t < dwell:
        assert m.at(t).show == SC.SHOW_MESSAGE, t
        t += step
    assert m.at(dwell).code == "1.8.0"


# ---- alarms

def test_alarm_screen_opens_the_cycle_with_its_icon():
    m = Meter()
    m.at(0)
    m.model.status |= 1 << R.SW_STORAGE_FAULT
    s = m.at(1000)
    assert (s.show, s.code, s.value, s.line) == (SC.SHOW_ALARM, "F.F", "00000002", "STORAGE FAULT")
    assert s.icons & SC.ICON_ALARM and s.icons & SC.ICON_CLOCK
    assert codes(m, (6000, 11000, 16000, 21000)) == ["1.8.0", "2.8.0", "0.9.1", "F.F"]
    m.model.status &= ~(1 << R.SW_STORAGE_FAULT)
    s = m.at(22000)
    assert s.code == "1.8.0" and not s.icons & SC.ICON_ALARM


def test_clock_icon_goes_when_the_clock_is_set():
    m = Meter()
    assert m.at(0).icons & SC.ICON_CLOCK
    m.write(R.CLOCK, (NOW + 5).to_bytes(4, "big"))
    assert not m.at(1000).icons & SC.ICON_CLOCK


# ---- persistence

def test_settings_and_messages_survive_a_restart():
    m = Meter()
    m.write(R.DISPLAY_SCROLL, ids(R.SERIAL, R.ENERGY_EXPORT))
    m.write(R.DISPLAY_TIMING, bytes((3, 7, 4, 0)))
    m.write(R.DISPLAY_MESSAGE, message("STILL HERE", D.PRIO_HIGH, minutes=10))
    m.write(R.DISPLAY_SPECIAL, b"\x04\x00\x00")
    m.at(0)
    m2 = Meter(m.store, wall=NOW + 60)  # power cut, back a minute later
    assert m2.disp.dwell_ms == 3000 and m2.disp.alt_timeout_ms == 7000 and m2.disp.test_ms == 4000
    assert m2.at(0).line == "STILL HERE"
    m2.press()
    m3 = Meter(m.store, wall=NOW + 120)
    assert state(m3)[0] == D.MSG_ACKED
    assert codes(m3, (0, 3000, 6000, 9000)) == ["", "C.1.0", "2.8.0", ""]  # the info special message, then the list
    assert m3.at(9000).line == "TARIFF CHANGE"


def test_a_message_that_expired_while_the_meter_was_off_does_not_show():
    m = Meter()
    m.write(R.DISPLAY_MESSAGE, message("SHORT", D.PRIO_URGENT, minutes=1))
    m2 = Meter(m.store, wall=NOW + 3600)
    assert m2.at(0).show == SC.SHOW_VALUE
    assert state(m2) == (D.MSG_EXPIRED, NOW + 3600)
    m3 = Meter(m.store, wall=NOW + 7200)
    assert state(m3) == (D.MSG_EXPIRED, NOW + 3600) and m3.at(0).show == SC.SHOW_VALUE


def test_screen_text_names_everything():
    m = Meter()
    m.write(R.DISPLAY_MESSAGE, message("HELLO", D.PRIO_HIGH))
    assert m.at(0).text() == "normal|message||||HELLO|message,clock"
    m.press(held=LONG)
    assert m.at(m.t).text() == "test|test|||||alarm,message,alternate,clock"
