"""The watchdog. The emulated board is reset like hardware when its firmware
stops feeding the watchdog or ends (smitp.emulated_board); the firmware keeps
feeding it. The Nucleo board's watchdog, reset cause and main.py against a
fake `machine` module."""

import importlib.util
import os
import signal
import sys
import time
import types

import pytest
from tools import ROOT

from meter import timers as T
from smitp.emulated_board import EmulatedBoard
from smitp.network import Network

TEST_MAIN = os.path.join(ROOT, "tests", "host", "mp_watchdog_main.py")  # the serial number picks the fault
ACA = "A8040A1E8901"


def _until(predicate, timeout_s):
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def test_board(tmp_path):
    made = []

    def make(fault):
        board = EmulatedBoard("m1", ACA, fault, tmp_path, main=TEST_MAIN)
        made.append(board)
        board.start()
        return board

    yield make
    for board in made:
        board.stop()


def test_a_board_that_stops_feeding_is_reset_by_its_watchdog(test_board):
    board = test_board("hang")
    wiring = (board.uart_fd, board.pins_fd, board.control_fd, board.optical_path)
    assert _until(lambda: board.resets, 5), board.log_text()
    assert board.reset_causes == ["watchdog"]
    log = board.log_text()
    assert log.index("feeding stopped") < log.index("harness: reset (watchdog): no watchdog feed for 500 ms")
    assert _until(lambda: "started after watchdog" in board.log_text(), 5), board.log_text()
    assert (board.uart_fd, board.pins_fd, board.control_fd, board.optical_path) == wiring  # a reset, not a new board
    with pytest.raises(BlockingIOError):
        os.read(board.pins_fd, 16)  # the watchdog's messages are not pin levels
    time.sleep(0.8)  # the watchdog is off after the reset until the firmware arms it again
    assert board.resets == 1 and board.alive()


def test_a_board_whose_firmware_ends_is_reset(test_board):
    board = test_board("raise")
    assert _until(lambda: "started after other" in board.log_text(), 5), board.log_text()
    assert board.resets == 1 and board.reset_causes == ["other"]
    log = board.log_text()
    assert "failing on purpose" in log and "harness: reset (other): the firmware ended, exit status 1" in log


def test_power_cut_and_stop_are_no_resets(test_board):
    board = test_board("hang")
    assert _until(lambda: board.watchdog_ms == 500, 5), board.log_text()
    board.power_cut()
    time.sleep(0.8)  # longer than the timeout: nobody restarts a board without power
    assert not board.alive() and board.resets == 0
    board.start()
    assert _until(lambda: board.log_text().count("started after power") == 2, 5), board.log_text()
    board.stop()
    assert board.resets == 0 and not board.alive()


def test_the_firmware_feeds_its_watchdog_and_a_hung_board_comes_back(tmp_path):
    net = Network()
    net.medium.add_node("m1")
    board = EmulatedBoard("m1", ACA, "SNWDT", tmp_path)
    net.add_board("m1", board)
    try:
        assert net.run_until(lambda: "modem configured" in board.log_text(), 20), board.log_text()
        assert board.watchdog_ms == T.WATCHDOG_MS
        net.run_for(T.WATCHDOG_MS / 1000.0 + 1)
        assert board.resets == 0 and board.feeds > 0, board.log_text()[-2000:]
        board.proc.send_signal(signal.SIGSTOP)  # hung: no task runs, nothing feeds
        assert net.run_until(lambda: board.resets, T.WATCHDOG_MS / 1000.0 + 2), board.log_text()[-2000:]
        assert board.reset_causes == ["watchdog"]
        # over the same UART and pins: the firmware resets the modem and configures it again
        assert net.run_until(lambda: board.log_text().count("modem configured") == 2, 20), board.log_text()[-2000:]
        assert "started after a watchdog reset" in board.log_text()  # the firmware counts it (diagnostics)
    finally:
        net.close()


# ---- the Nucleo board, no hardware


class FakeWDT:
    def __init__(self, timeout):
        self.timeout = timeout

    def feed(self):
        pass


def _machine(**consts):
    m = types.SimpleNamespace(WDT=FakeWDT, Pin=lambda *a, **kw: None, RTC=lambda: None, cause=0, resets=0, **consts)
    m.Pin.OUT = 1
    m.reset_cause = lambda: m.cause
    m.reset = lambda: setattr(m, "resets", m.resets + 1)
    return m


def _nucleo_board(monkeypatch, machine):
    monkeypatch.setitem(sys.modules, "machine", machine)
    spec = importlib.util.spec_from_file_location("board", f"{ROOT}/boards/nucleo_f401re_plm01a1/board.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Board()


def test_nucleo_watchdog_and_reset_cause(monkeypatch):
    stm32 = dict(SOFT_RESET=0, PWRON_RESET=1, HARD_RESET=2, WDT_RESET=3, DEEPSLEEP_RESET=4)  # the stm32 port's values
    machine = _machine(**stm32)
    board = _nucleo_board(monkeypatch, machine)
    assert board.watchdog(T.WATCHDOG_MS).timeout == T.WATCHDOG_MS
    assert board.watchdog(60000).timeout == 32000  # the IWDG cannot wait longer
    causes = {}
    for name, value in stm32.items():
        machine.cause = value
        causes[name] = board.reset_cause()
    assert causes == dict(SOFT_RESET="soft", PWRON_RESET="power", HARD_RESET="other", WDT_RESET="watchdog",
                          DEEPSLEEP_RESET="other")
    machine = _machine(PWRON_RESET=1)  # a port without the other constants
    machine.cause = 3
    assert _nucleo_board(monkeypatch, machine).reset_cause() == "other"


@pytest.mark.parametrize("ending", ["returns", ValueError("broken"), SystemExit("modem UART closed"),
                                    KeyboardInterrupt()])
def test_nucleo_main_resets_the_board_whatever_ends_the_firmware(monkeypatch, capsys, ending):
    machine = _machine()

    def run(board):
        if ending != "returns":
            raise ending

    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "board", types.SimpleNamespace(Board=lambda: None))
    monkeypatch.setitem(sys.modules, "meter.runtime.firmware", types.SimpleNamespace(run=run))
    monkeypatch.setitem(sys.modules, "time", types.SimpleNamespace(sleep_ms=lambda ms: None))
    path = f"{ROOT}/boards/nucleo_f401re_plm01a1/main.py"
    code = compile(open(path).read(), path, "exec")
    if isinstance(ending, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C leaves the developer at the REPL
            exec(code, {"__name__": "__main__"})
        assert machine.resets == 0
        return
    exec(code, {"__name__": "__main__"})
    assert machine.resets == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "resetting" in out and ("returned" if ending == "returns" else repr(ending)) in out
