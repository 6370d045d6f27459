"""A real ST7580 on a serial port, driven by the firmware's own driver (meter.phy.st7580).

The concentrator (or any host tool) uses SerialModem to put PHY frames on the
power line through an ST7580, e.g. an X-NUCLEO-PLM01A1 behind a 3.3 V USB-UART
adapter. The link logic is the firmware's ST7580 class; this module only moves
bytes and pin levels and waits.

Wiring (adapter -> modem signal; on a Nucleo the same signals sit on PA10/PA9,
PA5 and PA8):

    adapter TXD -> modem RXD          adapter RXD <- modem TXD (needs its pull-up)
    adapter RTS -> modem T_REQ        adapter DTR -> modem RESETN
    GND         -- GND                logic levels 3.3 V (or 5 V with VDDIO = 5 V)

UART 57600 8N1 (BR0 = BR1 = high on the modem). USB-UART chips (FTDI, CP210x,
CH340) drive RTS# and DTR# low when the line is asserted, so by default
"T_REQ low" is `rts = True` and "RESETN low" is `dtr = True`
(`rts_active_low=True`, `dtr_active_low=True`). Behind an inverting buffer,
pass False. Opening a tty may glitch DTR/RTS; reset() afterwards puts the
modem into a known state anyway.

For tests, inject `serial` (any object with read(n), write(b), in_waiting,
timeout, close(), reset_input_buffer()), the pin setters `set_treq(level)` /
`set_resetn(level)`, `clock_ms()` (ticks-compatible ms) and `sleep(seconds)`.
"""

import time
from collections import deque
from typing import Any

from meter.phy import st7580 as S
from meter.compat import ticks_diff, ticks_ms
from meter.errors import SmitpError

POLL_S = 0.002  # serial read timeout: the longest the loop sleeps without looking at timers


class ModemError(SmitpError):
    """The modem refused a request (error frame) or the link failed."""

    def __init__(self, cmd, code, text=None):
        super().__init__(cmd, code)
        self.cmd = cmd
        self.code = code
        self.text = text or "request 0x%02X failed with error 0x%02X" % (cmd, code)

    def __str__(self):
        return self.text


class ModemTimeout(ModemError):
    def __init__(self, cmd, text=None):
        super().__init__(cmd, -1, text or "request 0x%02X: no answer from the modem" % cmd)


class SerialModem:
    def __init__(self, port=None, baudrate=57600, serial=None, set_treq=None, set_resetn=None,
                 rts_active_low=True, dtr_active_low=True, clock_ms=None, sleep=None,
                 reset_ms=20, boot_timeout_s=4.0, auto_config=True, rx_queue=64, **driver_kwargs):
        self.port = port
        self.baudrate = baudrate
        self._serial = serial
        self._own_serial = serial is None
        self._set_treq = set_treq
        self._set_resetn = set_resetn
        self._rts_low = rts_active_low
        self._dtr_low = dtr_active_low
        self._clock = clock_ms or ticks_ms
        self._sleep = sleep or time.sleep
        self.reset_ms = reset_ms
        self.boot_timeout_s = boot_timeout_s
        self.auto_config = auto_config
        self._drv_kwargs: dict[str, Any] = dict(driver_kwargs, baud=baudrate)
        self.drv = S.ST7580(**self._drv_kwargs)
        self._treq = 1
        self._rx = deque(maxlen=rx_queue)  # (payload, snr) heard, not yet taken
        self._expect = deque()  # owner of each queued request, in order: "user" or "config"
        self._answers = deque()  # finished user requests: events
        self.last_reset = None  # ResetData byte of the last BIO_ResetIndication
        self.resets = 0
        self.config_errors = 0

    # ---- port
    def open(self):
        if self._serial is None:
            import serial as pyserial

            # serial_for_url: a device path, or a URL such as rfc2217://host:port (a modem behind a
            # network serial server, the persistent feeder's modem)
            ser = pyserial.serial_for_url(self.port, do_not_open=True)
            ser.baudrate = self.baudrate
            ser.timeout = POLL_S
            # idle levels before the port opens: T_REQ high, RESETN high
            ser.rts = not self._rts_low
            ser.dtr = not self._dtr_low
            ser.open()
            self._serial = ser
        elif getattr(self._serial, "timeout", 0) is None:
            self._serial.timeout = POLL_S  # reads must return to run the timers
        if self._set_treq is None:
            self._set_treq = self._rts_setter(self._serial)
        if self._set_resetn is None:
            self._set_resetn = self._dtr_setter(self._serial)
        self._set_treq(1)
        self._set_resetn(1)
        self._treq = 1
        return self

    def close(self):
        if self._serial is not None and self._own_serial:
            self._serial.close()
            self._serial = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def _rts_setter(self, ser):
        low = self._rts_low

        def set_treq(level):
            ser.rts = (not level) if low else bool(level)

        return set_treq

    def _dtr_setter(self, ser):
        low = self._dtr_low

        def set_resetn(level):
            ser.dtr = (not level) if low else bool(level)

        return set_resetn

    @property
    def stats(self):
        return self.drv.stats

    # ---- operations
    def reset(self):
        """Pulse RESETN, wait for BIO_ResetIndication, write the boot configuration.
        Returns the ResetData byte. Raises ModemTimeout or ModemError."""
        set_treq, set_resetn = self._pins()
        self.drv = S.ST7580(**self._drv_kwargs)
        self._expect.clear()
        self._answers.clear()
        self._treq = 1
        set_treq(1)
        set_resetn(0)
        self._sleep(self.reset_ms / 1000.0)
        flush = getattr(self._serial, "reset_input_buffer", None)
        if flush is not None:
            flush()
        seen = self.resets
        set_resetn(1)
        if not self._run(lambda: self.resets != seen, self.boot_timeout_s):
            raise ModemTimeout(S.CMD_RESET_IND, "no BIO_ResetIndication within %.1f s" % self.boot_timeout_s)
        cause = self.last_reset
        assert cause is not None  # set with the reset count
        if not (self.auto_config and cause & S.RESET_NEEDS_CONFIG):
            self._configure()  # not queued automatically: always configure after reset()
        errors = self.config_errors
        confirm_s = self._drv_kwargs.get("confirm_ms", 4000) / 1000.0
        if not self._run(lambda: not self._expect, 2 * confirm_s + 1.0):
            raise ModemTimeout(S.CMD_MIB_WRITE_REQ, "modem configuration did not finish")
        if self.config_errors != errors:
            raise ModemError(S.CMD_MIB_WRITE_REQ, S.ERR_GENERAL, "modem refused its configuration")
        return cause

    def command(self, cmd, data=b"", timeout_s=5.0):
        """One local-port request; returns the confirm's data bytes.
        Raises ModemError (error frame), ModemTimeout (no answer)."""
        if not self.drv.request(cmd, bytes(data)):
            raise ModemError(cmd, S.ERR_BUSY, "request queue full")
        self._expect.append("user")
        return self._wait_answer(cmd, timeout_s)

    def send_phy(self, payload, timeout_s=5.0):
        """Put one PHY frame on the line; returns the 5-byte PHY_Data.confirm data."""
        payload = bytes(payload)
        if len(payload) > S.PHY_MAX_PAYLOAD:
            raise ValueError("%d payload bytes, at most %d" % (len(payload), S.PHY_MAX_PAYLOAD))
        return self.command(S.CMD_PHY_DATA_REQ, bytes((S.PHY_OPTIONS,)) + payload, timeout_s)

    def receive_phy(self, timeout_s):
        """The next PHY frame heard as (payload, snr), or None after timeout_s."""
        self._run(lambda: self._rx, timeout_s)
        return self._rx.popleft() if self._rx else None

    # ---- loop
    def _configure(self):
        if self.drv.configure():
            self._expect.append("config")
            self._expect.append("config")

    def _wait_answer(self, cmd, timeout_s):
        if not self._run(lambda: self._answers, timeout_s):
            raise ModemTimeout(cmd, "request 0x%02X: no result within %.1f s" % (cmd, timeout_s))
        ev = self._answers.popleft()
        if ev[0] == S.EV_CONFIRM:
            return ev[2]
        if ev[0] == S.EV_ERROR:
            raise ModemError(ev[1], ev[2])
        raise ModemTimeout(ev[1])

    def _now(self):
        return self._clock()

    def _port(self):
        if self._serial is None:
            raise RuntimeError("modem port %s is not open" % self.port)
        return self._serial

    def _pins(self):
        """(set_treq, set_resetn), which open() provides."""
        if self._set_treq is None or self._set_resetn is None:
            raise RuntimeError("modem port %s is not open" % self.port)
        return self._set_treq, self._set_resetn

    def _run(self, done, timeout_s):
        """Serve the link until done() is true or timeout_s passed; returns done()."""
        drv = self.drv
        start = self._now()
        limit = int(timeout_s * 1000)
        while True:
            self._flush()
            if done():
                return True
            now = self._now()
            if ticks_diff(now, start) >= limit:
                return bool(done())
            ser = self._port()
            data = ser.read(ser.in_waiting or 1)
            now = self._now()
            if data:
                drv.receive(data, now)
            drv.poll(now)
            self._events()

    def _flush(self):
        out = self.drv.data_to_send()
        if out:
            self._port().write(out)
        if self.drv.treq != self._treq:
            self._treq = self.drv.treq
            self._pins()[0](self._treq)

    def _events(self):
        while True:
            ev = self.drv.next_event()
            if ev is None:
                return
            kind = ev[0]
            if kind == S.EV_PHY_DATA:
                self._rx.append((ev[1], ev[2]))
            elif kind == S.EV_RESET:
                self.resets += 1
                self.last_reset = ev[1]
                if self.auto_config and ev[1] & S.RESET_NEEDS_CONFIG:
                    self._configure()
            else:  # the answer to the oldest queued request
                owner = self._expect.popleft() if self._expect else "user"
                if owner == "config":
                    if kind != S.EV_CONFIRM:
                        self.config_errors += 1
                else:
                    self._answers.append(ev)


class ModemPort:
    """Concentrator port on a SerialModem: send(payload), recv(timeout_s), now()."""

    def __init__(self, modem, send_timeout_s=5.0, clock=time.monotonic):
        self.modem = modem
        self.send_timeout_s = send_timeout_s
        self._clock = clock
        self._t0 = clock()

    def now(self):
        return self._clock() - self._t0

    def send(self, payload):
        self.modem.send_phy(payload, self.send_timeout_s)

    def recv(self, timeout_s):
        got = self.modem.receive_phy(timeout_s)
        return None if got is None else got[0]
