# The persistent feeder (python tests/bench/host_bench_feeder.py): wall time of `feeder up` (a new
# feeder: keys drawn and provisioned, three boards booted; then a resumed one), of `down`; through
# its RFC 2217 modem port: opening the port and resetting the modem, a READ of one register,
# direct and through one repeater (median and p95 of 20); `smitp read` as a command (a process,
# the port opened, the modem reset, one READ; median of 5); a mode C readout through an optical
# pty with the `iec62056-21` client. The feeder runs in a temporary state directory and is
# stopped at the end.
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iec62056_21.client import Iec6205621Client

from smitp import feeder
from smitp.concentrator import Concentrator, parse_aca
from smitp.serial_modem import ModemPort, SerialModem

M1, M2, M3 = (parse_aca(a) for a in ("A8040A1E8901", "A8040A1E8902", "A8040A1E8903"))
STATUS = 0x003F


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def spread(samples):
    s = sorted(samples)
    return "median %.0f ms, p95 %.0f ms (n=%d)" % (1000 * statistics.median(s), 1000 * s[int(0.95 * (len(s) - 1))],
                                                   len(s))


def main():
    with tempfile.TemporaryDirectory(prefix="smitp-bench-feeder-") as tmp:
        state = feeder.State(Path(tmp) / "state")
        try:
            t, st = timed(lambda: feeder.up(state, 3))
            print("feeder up, new (3 meters, keys provisioned):  %.2f s" % t)
            t, _ = timed(lambda: feeder.down(state))
            print("feeder down:                                  %.2f s" % t)
            t, st = timed(lambda: feeder.up(state))
            print("feeder up, resumed:                           %.2f s" % t)
            url = st["modem"]
            modem = SerialModem(url)
            t_open, _ = timed(modem.open)
            t_reset, _ = timed(modem.reset)
            print("RFC 2217 port opened: %.0f ms; modem reset (RESETN on DTR) and configured: %.0f ms"
                  % (1000 * t_open, 1000 * t_reset))
            try:
                conc = Concentrator(ModemPort(modem))
                direct = [timed(lambda: conc.read(M1, [STATUS]))[0] for _ in range(20)]
                via = [timed(lambda: conc.read(M3, [STATUS], (M2,)))[0] for _ in range(20)]
            finally:
                modem.close()
            print("READ status word, direct:          %s" % spread(direct))
            print("READ status word, via 1 repeater:  %s" % spread(via))
            cmd = [sys.executable, "-m", "smitp.cli", "read", "--state", str(state.dir), "--meter", "A8040A1E8901",
                   "--register", "status word"]
            runs = [timed(lambda: subprocess.run(cmd, capture_output=True, check=True))[0] for _ in range(5)]
            print("`smitp read` as a command:         %s" % spread(runs))

            def readout():
                client = Iec6205621Client.with_serial_transport(str(state.optical_link("A8040A1E8902")))
                client.connect()
                try:
                    return client.standard_readout()
                finally:
                    client.disconnect()

            t, answer = timed(readout)
            print("iec62056-21 mode C readout through the optical pty: %.2f s (%d values)" % (t, len(answer.data)))
        finally:
            if feeder.running(state):
                feeder.down(state)


if __name__ == "__main__":
    main()
