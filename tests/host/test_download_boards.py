"""Software download on emulated boards (the MicroPython unix port).

The loader (boards/unix/main.py) against a slot whose firmware does not
import: the board starts the built-in firmware again, and the download area
says why. The whole demo (`smitp demo --download`: five campaigns over the
power line, real restarts) takes minutes: it runs with SMITP_SLOW_TESTS=1."""

import os
import struct
import subprocess

import pytest

from meter import fwimage as F
from meter import slots as S
from meter.model import registers as R
from smitp import topology
from smitp.concentrator import Concentrator
from smitp.emulated_board import EmulatedBoard, micropython_path
from smitp.image import compile_file
from smitp.medium import Medium
from smitp.network import Network
from smitp.provision import mount_script

ACA = "A8040A1E8901"
_WRITE = """
from meter.storage import Store
st = Store("/flash")
st.folder("s1")
st.folder("s1/meter")
with open(%(mpy)r, "rb") as f:
    st.put("s1/meter/__init__.mpy", f.read())
st.put("s1.ok", bytes.fromhex(%(header)r))
st.put("boot", bytes((1, 0, 1, 0)))
print("written")
"""


def _board_with_slot(tmp_path, serial, source, write=_WRITE):
    """An emulated board whose slot 1 holds `source` as its meter package, put on its flash by
    `write` (the boot record it leaves says how that slot stands)."""
    src = tmp_path / "slot.py"
    src.write_text(source)
    compile_file(src, tmp_path / "slot.mpy", "meter/__init__.py")
    header = F.Header(64, 0x000900, 100, bytes(32), bytes(16)).pack()
    board = EmulatedBoard("m1", ACA, serial, tmp_path)
    script = mount_script(board.flash) + write % {"mpy": str(tmp_path / "slot.mpy"), "header": header.hex()}
    r = subprocess.run([micropython_path(), "-c", script], capture_output=True, text=True, timeout=60)
    assert "written" in r.stdout, r.stdout + r.stderr
    return board


def _line_to(board):
    """The concentrator's line to the board alone: (network, concentrator port)."""
    topo = topology.load({"nodes": [{"name": "dcu", "role": "concentrator"}, {"name": "m1", "aca": ACA}],
                          "links": [{"a": "dcu", "b": "m1"}]})
    net = Network(Medium(bitrate=48000, topology=topo))
    port = net.add_concentrator("dcu")
    return net, port


def _download_area(port):
    """The board's download state and firmware slots, as registers 0x0C01 and 0x0C02 read."""
    got = Concentrator(port).read(bytes.fromhex(ACA), [R.DOWNLOAD_STATE, R.DOWNLOAD_VERSIONS])
    return struct.unpack(">BBHHBI", got[R.DOWNLOAD_STATE]), struct.unpack(">BBIII", got[R.DOWNLOAD_VERSIONS])


def test_loader_rolls_back_a_slot_that_does_not_import(tmp_path):
    board = _board_with_slot(tmp_path, "SNLOAD", 'raise RuntimeError("broken on purpose")\n')
    net, port = _line_to(board)
    try:
        net.add_board("m1", board)
        assert net.run_until(lambda: "modem configured" in board.log_text(), 40), board.log_text()
        log = board.log_text()
        assert "running slot 1 (on trial)" in log and "does not start" in log, log
        state, slots = _download_area(port)
        assert state[4] == S.FAIL_START and slots[0] == S.BUILTIN, (state, slots)
        assert board.reset_causes == ["other"]  # one restart: the failed start, then the built-in firmware
    finally:
        net.close()


@pytest.mark.skipif(not os.environ.get("SMITP_SLOW_TESTS"), reason="minutes of real time; set SMITP_SLOW_TESTS=1")
@pytest.mark.timeout(1800)
def test_demo_refuses_rolls_back_and_activates(tmp_path):
    from smitp import download

    rep = download.demo(workdir=str(tmp_path))
    assert len(rep["activated"]) == 3, rep
    assert all(" 0.2.0 " in fid for fid in rep["firmware_after"].values()), rep["firmware_after"]
    reasons = " ".join(rep["rolled_back"])
    assert "failed to start" in reasons and "did not report healthy" in reasons, rep["rolled_back"]
    refused = " ".join(rep["refused"])
    assert "NACK 5" in refused and "hash mismatch" in refused, rep["refused"]


def test_confirmed_slot_that_hangs_at_import_falls_back_to_the_builtin_firmware(tmp_path):
    """A confirmed slot (trial over) whose import hangs: the loader arms the watchdog for it,
    counts each start the watchdog ends, and after slots.MAX_STARTS boots the built-in one."""
    # confirmed, and already started MAX_STARTS - 1 times unhealthy: two hangs are left to see
    write = (_WRITE.replace("bytes((1, 0, 1, 0))", "bytes((1, 0, 0, 0))")
             .replace('print("written")', 'st.put("starts", bytes((1, %d)))\nprint("written")' % (S.MAX_STARTS - 1)))
    board = _board_with_slot(tmp_path, "SNHANG", "while True:\n    pass\n", write)
    net, port = _line_to(board)
    try:
        net.add_board("m1", board)  # power on: not counted; it hangs, the watchdog resets it (counted) ...
        assert net.run_until(lambda: "modem configured" in board.log_text(), 60), board.log_text()
        log = board.log_text()
        assert log.count("running slot 1") == 2, log
        assert board.reset_causes == ["watchdog", "watchdog"], (board.reset_causes, log)
        state, slots = _download_area(port)
        assert state[4] == S.FAIL_REPEATED and slots[0] == S.BUILTIN, (state, slots)
    finally:
        net.close()
