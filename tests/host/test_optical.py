"""Integration: the optical port of an emulated board (real MicroPython) through
its pty, with real rate changes (termios on the pty, read by the board):
a stock IEC 62056-21 client (the `iec62056-21` package) takes the mode C
readout; the hand-held unit signs on to mode F, reads and writes (plain and
authenticated), provisions locally, and meets the timeouts and the lockout;
PLC service goes on meanwhile."""

import json
import os
import random
import termios
import threading
import time

import pytest
import serial
from iec62056_21.client import Iec6205621Client

from meter import attrs as A
from meter.optical import iec62056 as I
from meter.optical import modef as F
from meter.model import registers as R
from meter.app import security as sec
from meter import timers as T
from smitp import hhu, topology
from smitp.cli import main
from smitp.concentrator import Concentrator, parse_aca
from smitp.demo import wait_until_ready
from smitp.network import neighbourhood
from smitp.secure import KeyRing

ACA = "A8040A1E8901"
K1 = bytes(range(16))
K2 = bytes.fromhex("AA55" * 8)


def keyring(k1=K1, k2=K2):
    ring = KeyRing()
    ring.add(ACA, k1, k2)
    return ring


@pytest.fixture
def board(tmp_path):
    with hhu.emulated_meter(tmp_path, ACA, serial="OPT-0001", keys=(K1, K2)) as b:
        yield b


@pytest.fixture
def unit(board):
    with hhu.open_line(board.optical_path) as line:
        yield hhu.HandHeldUnit(line, keyring())


def wait_log(board, text, timeout=5.0):
    end = time.monotonic() + timeout
    while text not in board.log_text():
        assert time.monotonic() < end, board.log_text()
        time.sleep(0.02)


def test_stock_iec62056_21_client_takes_the_mode_c_readout(board):
    client = Iec6205621Client.with_serial_transport(board.optical_path)
    client.connect()  # 300 Bd 7E1; the package switches by reopening the port at the new rate
    try:
        answer = client.standard_readout()
    finally:
        client.disconnect()
    assert client.manufacturer_id == "XXx" and client.switchover_baudrate == 9600
    assert client.identification == I.MODE_F_MARK + "SMITP0.1.0"  # the package keeps the "\F" mark's letter
    values = {d.address: (d.value, d.unit) for d in answer.data}
    assert values["0.0.0"] == ("OPT-0001", None)
    assert values["0.0.1"] == (ACA, None)
    assert values["1.8.0"][1] == "kWh" and float(values["1.8.0"][0]) >= 0
    assert values["F.F"][0].endswith("1")  # clock not set since power-up
    assert termios.tcgetattr(board.optical_fd)[5] == termios.B9600  # the rate really changed on the line
    wait_log(board, "optical mode C at 9600 Bd")
    wait_log(board, "session ended: readout")


def test_mode_c_at_a_lower_rate_and_back_to_300(unit, board):
    ident, values, msg = unit.readout(I.BAUDS.index(2400))
    assert ident.mode_f and ident.max_baud == 5
    assert ("0.0.0", "OPT-0001", None) in values
    wait_log(board, "optical mode C at 2400 Bd")
    ident, values, _msg = unit.readout()  # the port is back at 300 Bd for the next sign-on
    assert ("0.0.1", ACA, None) in values


def test_mode_f_plain_and_authenticated_services(unit, board):
    unit.sign_on("F")
    wait_log(board, "optical mode F at 9600 Bd")
    got = unit.read([R.STATUS_WORD, R.SERIAL, R.ACA])
    assert got[R.SERIAL].rstrip(b"\0") == b"OPT-0001" and got[R.ACA] == bytes.fromhex(ACA)
    label = b"OPTICAL".ljust(16, b"\0")
    unit.write({R.POINT_LABEL: label})
    assert unit.read([R.POINT_LABEL])[R.POINT_LABEL] == label
    clock = (1750000000).to_bytes(4, "big")
    with pytest.raises(hhu.Nack) as e:  # plain: the clock needs the write key
        unit.write({R.CLOCK: clock})
    assert e.value.code == A.NACK_ACCESS_DENIED
    with pytest.raises(hhu.Nack):  # read key: never writes
        unit.write({R.CLOCK: clock}, auth=True, ecc=sec.ECC_CTR_READ)
    unit.write({R.CLOCK: clock}, auth=True)
    assert abs(int.from_bytes(unit.read([R.CLOCK])[R.CLOCK], "big") - 1750000000) < 5
    lmon = int.from_bytes(unit.read([R.LMON], auth=True)[R.LMON], "big")
    assert lmon == 3 and unit.stats["resyncs"] == 0  # the challenge gave the LMON: no failed attempt
    assert unit.keyring[ACA].lmon == 3
    unit.sign_off()
    wait_log(board, "session ended: break")


def test_local_provisioning_of_keys_and_optical_parameters_survives_a_power_cut(unit, board):
    unit.sign_on("F")
    new_k1, new_k2 = os.urandom(16), os.urandom(16)
    with pytest.raises(hhu.Nack):  # DSAP 0x03 answers nothing plain
        unit.write({F.ITEM_OPT_BAUD: b"\x03"}, dsap=3)
    assert unit.provision(new_k1, new_k2, max_baud=3, address="OPT1") == "activated"  # the key change procedure
    assert unit.read([R.KEY_CHANGES])[R.KEY_CHANGES] == b"\x00\x01"
    assert unit.read([R.LMON], auth=True)[R.LMON]  # the session uses the new pair at once
    unit.sign_off()
    board.power_cut()
    board.start()
    wait_log(board, "optical ready")
    line2 = hhu.OpticalLine(board.optical_path)
    line2.open()
    try:
        u = hhu.HandHeldUnit(line2, keyring(new_k1, new_k2))
        ident = u.sign_on("F")
        assert ident.max_baud == 3  # 2400 Bd offered now
        assert u.read([R.LMON], auth=True)[R.LMON]
        u.sign_off()
        line2.write(b"/?OTHER!\r\n")  # another device address: silence
        time.sleep(0.3)
        assert line2.read(100) == b""
        line2.write(b"/?OPT1!\r\n")
        time.sleep(0.3)
        assert line2.read(100).startswith(b"/XXx3")
    finally:
        line2.close()


def _quiet(line, seconds):
    time.sleep(seconds)
    return line.read(4096)


def test_wrong_rate_garbage_breaks_and_half_sign_ons_never_stick(unit, board):
    line = unit.line
    line.set_line(9600, True)  # the wrong rate: the board reads the pty's termios
    line.write(b"/?!\r\n")
    assert _quiet(line, 0.4) == b""
    line.set_line(300, True)
    rng = random.Random(6)
    line.write(bytes(rng.randrange(256) for _ in range(20)))  # garbage and parity errors (paced: 0.7 s)
    line.write(b"\0" * 6)  # a break: NUL characters with framing errors
    line.write(b"/?")  # half a request, then silence longer than ta
    time.sleep(T.OPT_INTERCHAR_MS / 1000 + 0.2)
    line.discard_input()
    line.write(b"!\r\n")
    assert _quiet(line, 0.3) == b""
    line.write(b"/?!\r\n")  # a request, then no option select: the port gives up
    assert _quiet(line, 0.8).startswith(b"/XXx5")
    time.sleep(T.OPT_OPTION_MS / 1000 + 0.5)
    line.write(b"\x06050\r\n")
    assert _quiet(line, T.OPT_READOUT_MS / 1000 + 0.5) == b""  # too late: no readout
    unit.sign_on("F")  # mode F, then garbage frames and silence: the session times out
    line.write(bytes(rng.randrange(256) for _ in range(300)))
    assert unit.read([R.STATUS_WORD])  # after a gap the reader is in step again
    time.sleep(T.OPT_F_IDLE_MS / 1000 + 0.3)
    wait_log(board, "session ended: idle")
    ident, values, _msg = unit.readout()  # back at 300 Bd 7E1
    assert values
    assert board.alive()


def test_failed_authentications_lock_the_port_for_a_while(unit, board):
    unit.sign_on("F")
    meter, _link = unit._security()  # challenge: the LMON is known, nothing failed yet
    for _ in range(T.OPT_LOCK_AFTER):
        lsdu = bytearray(sec.seal(sec.Keys(K1, K2), bytes.fromhex(ACA), A.READ_REQ + 100, R.SERIAL.to_bytes(2, "big"),
                                  meter.cmon, sec.ECC_CTR_READ, 0))
        lsdu[-1] ^= 0x01  # a forged TMAC
        _ecc, ans = unit.exchange(1, sec.ECC_CTR_READ, bytes(lsdu))
        assert ans[0] == sec.ATTR_NACK_A_AUTH and ans[1] == sec.NACK_AUTH
    locked_at = time.monotonic()
    wait_log(board, "locked for %d ms" % T.OPT_LOCK_BASE_MS)
    unit.mode = None
    with pytest.raises(hhu.NoAnswer):  # silent, whatever comes
        unit.sign_on("F")
    time.sleep(max(0.0, locked_at + T.OPT_LOCK_BASE_MS / 1000 + 0.3 - time.monotonic()))
    unit.sign_on("F")
    unit._synced = False
    assert unit.read([R.SERIAL], auth=True)[R.SERIAL].startswith(b"OPT-0001")  # and the count starts again
    unit.sign_off()


def test_plc_service_continues_while_the_optical_port_is_busy(tmp_path):
    net, port = neighbourhood(topology.demo_feeder(), tmp_path, boards=True)
    try:
        wait_until_ready(net)
        conc = Concentrator(port)
        m1 = parse_aca("A8040A1E8901")
        path = net.boards["m1"].board.optical_path
        done, errors = [], []
        rng = random.Random(2)

        def abuse():
            try:
                with hhu.open_line(path) as line:
                    u = hhu.HandHeldUnit(line)
                    for _ in range(3):
                        line.write(bytes(rng.randrange(256) for _ in range(20)))
                        u.sign_on("F")
                        for _ in range(5):
                            done.append(u.read([R.STATUS_WORD, R.ENERGY_IMPORT]))
                        u.sign_off()
            except Exception as e:  # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=abuse)
        t.start()
        reads = 0
        while t.is_alive() or reads < 3:
            assert conc.read(m1, [R.STATUS_WORD, R.SERIAL])[R.SERIAL]
            reads += 1
        t.join()
        assert not errors, errors
        assert len(done) == 15 and reads >= 3
    finally:
        net.close()


def test_cli_hhu_emulated(tmp_path, capsys):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({ACA: {"k1": K1.hex(), "k2": K2.hex()}}))
    assert main(["hhu", "readout", "--emulated", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["identification"]["mode_f"] and {"address": "0.0.1", "value": ACA, "unit": None} in rep["values"]
    assert main(["hhu", "--emulated", "--keys", str(keys), "--json", "read", "--register", "0x0015",
                 "--register", "status word", "--auth"]) == 0
    rep = json.loads(capsys.readouterr().out)
    regs = {r["id"]: r for r in rep["registers"]}
    assert rep["aca"] == ACA and regs["0x0015"]["value"] >= 1 and isinstance(regs["0x003F"]["value"], list)
    assert main(["hhu", "--emulated", "write", "--register", "clock", "--value", "1"]) == 1
    assert "NACK 2 (access denied)" in capsys.readouterr().err
    new = tmp_path / "new.json"
    new.write_text(json.dumps({ACA: {"k1": bytes(range(32, 48)).hex(), "k2": bytes(range(48, 64)).hex()}}))
    assert main(["hhu", "--emulated", "--keys", str(keys), "--json", "provision", "--new-keys", str(new)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["provisioned"] == ["keys"] and rep["key_change"] == "activated"
    assert json.loads(keys.read_text())[ACA]["k1"] == bytes(range(32, 48)).hex()  # the key file follows
    assert main(["hhu", "--emulated", "--baud", "4800"]) == 0
    assert "0x0011  absolute communication address   A8040A1E8901" in capsys.readouterr().out
    assert main(["hhu", "readout"]) == 1  # neither a probe nor --emulated: the running feeder, and none runs
    assert "no feeder runs in" in capsys.readouterr().err


def test_nucleo_board_optical_uart(monkeypatch, tmp_path):
    from test_board_nucleo import _load

    mod = _load(monkeypatch, tmp_path, True)
    calls = []

    class FakeUart:
        def __init__(self, *a, **kw):
            calls.append(("new", a, kw))

        def init(self, *a, **kw):
            calls.append(("init", a, kw))

    mod.machine.UART = FakeUart
    b = mod.Board()
    assert b.optical_uart() is b.optical_uart()
    assert calls[0][1] == (6, 300) and calls[0][2]["bits"] == 7 and calls[0][2]["parity"] == 0
    b.set_optical_line(9600, False)
    assert calls[1][1] == (9600,) and calls[1][2]["bits"] == 8 and calls[1][2]["parity"] is None
    assert calls[1][2]["timeout"] == 0
    assert (b.pins()["optical_tx"], b.pins()["optical_rx"]) == ("PC6", "PC7")
