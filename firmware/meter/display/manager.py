# Display management (CLC/TS 50568-8 5.7.6 and 10.22): what the meter's
# display shows, decided from the display registers, the status word, the
# push-button and the time.
#
# Sans-io: the firmware's display task reports button level changes with
# button(pressed, now), calls poll(now) when next_timeout(now) says so, and
# hands `screen` to the board's display driver when poll() returns True.
# `now` is in milliseconds (ticks_ms on a board, any int clock in tests);
# message expiry uses the meter clock (register 0x0020, seconds since 1970)
# so that it survives a restart. Runs unchanged under CPython.
#
# What shows, highest rank first (the profile's rules are not public; these
# are project choices, docs/data-model.md "Display management"):
#   1. test mode            every segment on
#   2. urgent message       steady, until expiry or acknowledgement
#   3. alternate mode       the alternate list, one value per button press
#   4. high message         steady, instead of the scroll list
#   5. normal mode          the scroll cycle: [alarm screen] [info messages]
#                           then the scroll list, each for the dwell time
# Button: a short press acknowledges the message on screen, else enters
# alternate mode or steps to its next value; a long press enters or leaves
# test mode. Alternate and test mode fall back to normal mode by themselves.
from meter.model import registers as R
from meter import timers as T
from meter.compat import const, ticks_add, ticks_diff
from meter.model.engine import Engine
from meter.display.screen import (ICON_ALARM, ICON_ALTERNATE, ICON_CLOCK, ICON_MESSAGE, ICONS_ALL, LINE_CHARS, MODE_NAMES,
                          MODE_ALTERNATE, MODE_NORMAL, MODE_TEST, SHOW_ALARM, SHOW_MESSAGE, SHOW_TEST, Screen,
                          _text, format_value)

# message priorities (first byte of the utility message register)
PRIO_INFO = const(0)  # one dwell period in each scroll cycle
PRIO_HIGH = const(1)  # steady, instead of the scroll list
PRIO_URGENT = const(2)  # steady, also over alternate mode

# message states (first byte of the message state registers)
MSG_NONE = const(0)
MSG_SHOWING = const(1)  # time field: expiry (0: until acknowledged)
MSG_ACKED = const(2)  # time field: when the button acknowledged it
MSG_EXPIRED = const(3)  # time field: when its duration ran out
MSG_CLEARED = const(4)  # time field: when the utility cleared it
MSG_REFUSED = const(5)  # unknown special message code; time field: when
MSG_STATE_NAMES = ("none", "showing", "acknowledged", "expired", "cleared", "refused")

MSG_TEXT_LEN = const(32)  # text bytes of the utility message register
_MARQUEE_HOLD = const(3)  # marquee steps the text rests at its start and end

# ---- project choices, in one place (the identifiers shown: meter/display/screen.py) --
DEFAULT_SCROLL = (R.ENERGY_IMPORT, R.ENERGY_EXPORT, R.CLOCK)
DEFAULT_ALTERNATE = (R.ENERGY_IMPORT, R.ENERGY_EXPORT, R.CLOCK, R.SERIAL, R.ACA, R.STATUS_WORD)
# Status-word bits that raise the alarm screen and icon, with their text.
ALARMS = ((R.SW_STORAGE_FAULT, "STORAGE FAULT"),)
# Special messages: predefined texts the utility shows by code (register
# 0x0D12), each with its own priority.
SPECIAL = {
    1: (PRIO_URGENT, "POWER LIMIT EXCEEDED"),
    2: (PRIO_HIGH, "SUPPLY INTERRUPTION PLANNED"),
    3: (PRIO_HIGH, "CONTACT YOUR SUPPLIER"),
    4: (PRIO_INFO, "TARIFF CHANGE"),
    5: (PRIO_INFO, "METER REPLACEMENT PLANNED"),
}
_ALARM_CODE = "F.F"

_ITEM_ALARM = const(-1)  # cycle entries below zero are not registers
_ITEM_MESSAGE = const(-2)  # -2 - slot: the message of that slot


class _Message:
    """One message slot: its register, its state register and what it holds."""

    def __init__(self, reg, state_reg):
        self.reg = reg
        self.state_reg = state_reg
        self.state = MSG_NONE
        self.when = 0
        self.prio = PRIO_INFO
        self.text = ""
        self.seq = 0  # activation order: the newest wins a tie



def _be(raw, off, n):
    v = 0
    for i in range(off, off + n):
        v = (v << 8) | raw[i]
    return v


def _ids(raw):
    """Register ids of a list register (2 bytes each, 0 ends) the display may show."""
    out = []
    for i in range(0, len(raw) - 1, 2):
        reg = (raw[i] << 8) | raw[i + 1]
        if reg == 0:
            break
        row = R.BY_ID.get(reg)
        if row is not None and row[R.R_READ] == R.ACC_PLAIN:  # never a protected value
            out.append(reg)
    return out


# ---- value checks: a write that fails one is refused (NACK A-Node, bad value)
def valid_mode(raw):
    return raw[0] < len(MODE_NAMES)


def valid_list(raw):
    """Register ids, then zeros: each one in the table and readable without a key."""
    end = False
    for i in range(0, len(raw) - 1, 2):
        reg = (raw[i] << 8) | raw[i + 1]
        if reg == 0:
            end = True
        elif end:
            return False
        else:
            row = R.BY_ID.get(reg)
            if row is None or row[R.R_READ] != R.ACC_PLAIN:
                return False
    return True


def valid_message(raw):
    """Priority 0..2, then printable ASCII text padded with zeros."""
    if raw[0] > PRIO_URGENT:
        return False
    end = False
    for i in range(3, len(raw)):
        b = raw[i]
        if b == 0:
            end = True
        elif end or not 32 <= b < 127:
            return False
    return True


def valid_special(raw):
    return raw[0] == 0 or raw[0] in SPECIAL


CHECKS = {R.DISPLAY_MODE: valid_mode, R.DISPLAY_SCROLL: valid_list, R.DISPLAY_ALTERNATE: valid_list,
          R.DISPLAY_MESSAGE: valid_message, R.DISPLAY_SPECIAL: valid_special}


class Display(Engine):
    """The display manager of one meter, over its DataModel; the owner of
    the display registers."""

    def __init__(self, model):
        Engine.__init__(self, model)
        self.screen = Screen()
        self.mode = MODE_NORMAL
        self.notify = None  # called (no argument) when a register write changed what to show
        self._msgs = (_Message(R.DISPLAY_MESSAGE, R.DISPLAY_MESSAGE_STATE),
                      _Message(R.DISPLAY_SPECIAL, R.DISPLAY_SPECIAL_STATE))
        self._seq = 0
        for m in self._msgs:
            self._load(m)
        self._read_settings()  # sets _scroll and _alternate
        self._down = False
        self._down_at = 0
        self._long_done = False
        self._pending_mode = -1
        self._restart = True  # rebuild the scroll cycle at the next poll
        self._started = False
        self._cycle = []
        self._index = 0
        self._alt_index = 0
        self._step_at = None  # next scroll step (ticks) while the cycle shows
        self._refresh_at = 0
        self._mode_end = None  # alternate inactivity or test end
        self._mq_step = 0  # marquee position of a long message
        self._mq_at = None
        self._shown_msg = None  # the _Message on screen, if any
        self._alarm = 0
        model.set(R.DISPLAY_MODE, MODE_NORMAL, persist=False)
        model.register("display", self)

    # ---- registers
    def reg_check(self, reg, raw):
        # Bad values are refused; the manager copes with them anyway
        # (unknown ids left out, modes and codes ignored).
        fn = CHECKS.get(reg)
        return fn is None or fn(raw)

    def _read_settings(self):
        m = self.model
        self._scroll = _ids(m.get(R.DISPLAY_SCROLL)) or list(DEFAULT_SCROLL)
        self._alternate = _ids(m.get(R.DISPLAY_ALTERNATE)) or list(DEFAULT_ALTERNATE)
        t = m.get(R.DISPLAY_TIMING)
        self.dwell_ms = 1000 * (t[0] or T.DISPLAY_DWELL_S)
        self.alt_timeout_ms = 1000 * (t[1] or T.DISPLAY_ALT_TIMEOUT_S)
        self.test_ms = 1000 * (t[2] or T.DISPLAY_TEST_S)

    def _load(self, m):
        st = self.model.get(m.state_reg)
        m.state = st[0]
        m.when = _be(st, 1, 4)
        if m.state == MSG_SHOWING:
            if not self._decode(m):
                m.state = MSG_NONE
            self._seq += 1
            m.seq = self._seq

    def _decode(self, m):
        """Priority and text of the slot's register; False if it holds no message."""
        raw = self.model.get(m.reg)
        if m.reg == R.DISPLAY_MESSAGE:
            m.prio = min(raw[0], PRIO_URGENT)
            m.text = _text(raw[3:])
            return bool(m.text)
        special = SPECIAL.get(raw[0])
        if special is None:
            return False
        m.prio, m.text = special
        return True

    def _save_state(self, m):
        w = m.when
        self.model.set(m.state_reg, bytes((m.state, (w >> 24) & 0xFF, (w >> 16) & 0xFF, (w >> 8) & 0xFF, w & 0xFF)))

    def _set_state(self, m, state, when):
        m.state = state
        m.when = when
        self._save_state(m)
        self._restart = True

    def written(self, reg):
        """A display register was written (over PLC or through the optical port)."""
        if reg == R.DISPLAY_MODE:
            self._pending_mode = self.model.get(R.DISPLAY_MODE)
        elif reg == R.DISPLAY_MESSAGE or reg == R.DISPLAY_SPECIAL:
            # Handled before the answer goes out: the state is on flash when the ACK is.
            m = self._msgs[0] if reg == R.DISPLAY_MESSAGE else self._msgs[1]
            raw = self.model.get(reg)
            now = self._wall()
            if self._decode(m):
                dur = _be(raw, 1, 2)
                self._seq += 1
                m.seq = self._seq
                self._set_state(m, MSG_SHOWING, now + 60 * dur if dur else 0)
            else:
                refused = m.reg == R.DISPLAY_SPECIAL and raw[0] != 0
                self._set_state(m, MSG_REFUSED if refused else MSG_CLEARED, now)
        else:
            self._read_settings()
        self._restart = True
        if self.notify is not None:
            self.notify()

    def _wall(self):
        return self.model.get(R.CLOCK)

    # ---- input
    def button(self, pressed, now):
        """The push-button went down (pressed) or up at `now`."""
        if pressed and not self._down:
            self._down = True
            self._down_at = now
            self._long_done = False
        elif not pressed and self._down:
            self._down = False
            if not self._long_done:
                if ticks_diff(now, self._down_at) >= T.DISPLAY_LONG_PRESS_MS:
                    self._long_press(now)
                else:
                    self._short_press(now)

    def _short_press(self, now):
        if self.mode == MODE_TEST:
            self._set_mode(MODE_NORMAL, now)
        elif self._shown_msg is not None:
            self._set_state(self._shown_msg, MSG_ACKED, self._wall())
        elif self.mode == MODE_NORMAL:
            self._set_mode(MODE_ALTERNATE, now)
        else:
            self._alt_index = (self._alt_index + 1) % len(self._alternate)
            self._mode_end = ticks_add(now, self.alt_timeout_ms)

    def _long_press(self, now):
        self._long_done = True
        self._set_mode(MODE_NORMAL if self.mode == MODE_TEST else MODE_TEST, now)

    def _set_mode(self, mode, now):
        self.mode = mode
        self.model.set(R.DISPLAY_MODE, mode, persist=False)
        self._alt_index = 0
        if mode == MODE_ALTERNATE:
            self._mode_end = ticks_add(now, self.alt_timeout_ms)
        elif mode == MODE_TEST:
            self._mode_end = ticks_add(now, self.test_ms)
        else:
            self._mode_end = None
            self._restart = True

    # ---- time
    def _due(self, t, now):
        return t is not None and ticks_diff(now, t) >= 0

    def next_timeout(self, now):
        """Milliseconds until poll() has something to do (0: now)."""
        best = ticks_diff(self._refresh_at, now)
        for t in (self._step_at, self._mq_at, self._mode_end):
            if t is not None:
                best = min(best, ticks_diff(t, now))
        if self._down and not self._long_done:
            best = min(best, ticks_diff(ticks_add(self._down_at, T.DISPLAY_LONG_PRESS_MS), now))
        return max(0, best)

    def poll(self, now):
        """Advance to `now`; return True if the screen changed since the last poll."""
        if self._pending_mode >= 0:
            if self._pending_mode < len(MODE_NAMES):
                self._set_mode(self._pending_mode, now)
            else:
                self.model.set(R.DISPLAY_MODE, self.mode, persist=False)
            self._pending_mode = -1
        if self._down and not self._long_done and ticks_diff(now, self._down_at) >= T.DISPLAY_LONG_PRESS_MS:
            self._long_press(now)
        if self._due(self._mode_end, now):
            self._set_mode(MODE_NORMAL, now)
        wall = self._wall()
        for m in self._msgs:
            if m.state == MSG_SHOWING and m.when and wall >= m.when:
                self._set_state(m, MSG_EXPIRED, wall)
        status = self.model.get(R.STATUS_WORD)
        alarm = 0
        for bit, _name in ALARMS:
            alarm |= status & (1 << bit)
        if alarm != self._alarm:
            self._alarm = alarm
            self._restart = True
        if self._restart or not self._started:
            self._started = True
            self._restart = False
            self._start_cycle(now)
        elif self._due(self._step_at, now):
            self._index += 1
            if self._index >= len(self._cycle):
                self._start_cycle(now)
            else:
                self._step_at = ticks_add(now, self._dwell(self._cycle[self._index]))
                self._mq_step = 0
        if self._due(self._mq_at, now):
            self._mq_step += 1
        self._refresh_at = ticks_add(now, T.DISPLAY_REFRESH_MS)
        before = self.screen.key()
        self._compose(now, status)
        return self.screen.key() != before

    def _start_cycle(self, now):
        cyc = []
        if self._alarm:
            cyc.append(_ITEM_ALARM)
        for i in range(len(self._msgs)):
            m = self._msgs[i]
            if m.state == MSG_SHOWING and m.prio == PRIO_INFO:
                cyc.append(_ITEM_MESSAGE - i)
        cyc.extend(self._scroll)
        self._cycle = cyc
        self._index = 0
        self._mq_step = 0
        self._step_at = ticks_add(now, self._dwell(cyc[0]))

    def _dwell(self, item):
        if item > _ITEM_MESSAGE:
            return self.dwell_ms
        # a long message stays until its marquee has run through once
        over = len(self._msgs[_ITEM_MESSAGE - item].text) - LINE_CHARS
        return max(self.dwell_ms, self._marquee_steps(over) * T.DISPLAY_MARQUEE_MS) if over > 0 else self.dwell_ms

    @staticmethod
    def _marquee_steps(over):
        return over + 2 * _MARQUEE_HOLD

    # ---- what shows
    def _top(self, min_prio):
        best = None
        for m in self._msgs:
            if m.state == MSG_SHOWING and m.prio >= min_prio:
                if best is None or m.prio > best.prio or (m.prio == best.prio and m.seq > best.seq):
                    best = m
        return best

    def _compose(self, now, status):
        s = self.screen
        s.mode = self.mode
        icons = 0
        if self._alarm:
            icons |= ICON_ALARM
        if self._top(PRIO_INFO) is not None:
            icons |= ICON_MESSAGE
        if status & (1 << R.SW_CLOCK_UNSET):
            icons |= ICON_CLOCK
        prev = self._shown_msg
        self._shown_msg = None
        cycling = False
        if self.mode == MODE_TEST:
            s._set(SHOW_TEST, "", "", "", "")
            icons = ICONS_ALL
        else:
            msg = self._top(PRIO_URGENT)
            if msg is None and self.mode == MODE_ALTERNATE:
                icons |= ICON_ALTERNATE
                self._show_value(self._alternate[self._alt_index % len(self._alternate)])
            else:
                if msg is None:
                    msg = self._top(PRIO_HIGH)
                if msg is None:
                    cycling = True
                    item = self._cycle[self._index]
                    if item == _ITEM_ALARM:
                        self._show_alarm()
                    elif item <= _ITEM_MESSAGE:
                        msg = self._msgs[_ITEM_MESSAGE - item]
                    else:
                        self._show_value(item)
                if msg is not None:
                    self._show_message(msg, prev, now)
        if not cycling:
            self._step_at = None  # leaving a steady screen restarts the cycle
        elif self._step_at is None:
            self._step_at = ticks_add(now, self._dwell(self._cycle[self._index]))
        if self._shown_msg is None:
            self._mq_at = None
        s.icons = icons

    def _show_value(self, reg):
        format_value(self.screen, reg, self.model.get(reg))

    def _show_alarm(self):
        a = self._alarm
        text = "ALARM"
        for bit, name in ALARMS:
            if a & (1 << bit):
                text = name
                break
        self.screen._set(SHOW_ALARM, text, _ALARM_CODE, "%08X" % (a & 0xFFFFFFFF), "")

    def _show_message(self, m, prev, now):
        if prev is not m:
            self._mq_step = 0
            self._mq_at = None
        self._shown_msg = m
        over = len(m.text) - LINE_CHARS
        if over > 0:
            pos = self._mq_step % (self._marquee_steps(over) + 1)
            off = min(max(pos - _MARQUEE_HOLD, 0), over)
            line = m.text[off:off + LINE_CHARS]
            if self._mq_at is None or ticks_diff(now, self._mq_at) >= 0:
                self._mq_at = ticks_add(now, T.DISPLAY_MARQUEE_MS)
        else:
            line = m.text
            self._mq_at = None
        self.screen._set(SHOW_MESSAGE, line, "", "", "")
