"""The persistent feeder's process: emulated boards on a simulated feeder, kept up in the background.

Started by `smitp feeder up` (smitp.feeder), which reads this process's first line on the
`--ready-fd` pipe: `ready <status JSON>` or `error <one line>`. It
- holds an exclusive lock on DIR/feeder.lock for its whole life (one feeder per state
  directory) and writes its pid into DIR/feeder.pid;
- runs the meters of DIR/topology.json as emulated boards (real MicroPython) whose flash
  images, logs and display dumps live in DIR, and links each meter's optical pty to
  DIR/optical-<ACA>;
- puts the concentrator's modem, an ST7580 emulator, on the same medium and serves its local
  port as an RFC 2217 server on 127.0.0.1 (pyserial's PortManager): RTS drives T_REQ and DTR
  RESETN, asserted = low, as on a USB-UART adapter (smitp.serial_modem); the line must be set to
  57600 8N1 like the real modem's, other settings garble (the bytes are dropped); one client at
  a time, like a serial port;
- answers requests on the unix socket DIR/control.sock (one JSON line each way): `status`,
  `provision` (stop the meter's board, write its keys into its flash image, start it again);
- stops on SIGTERM or SIGINT: every board stopped (its flash image stays), the port closed,
  pid file, socket and links removed, the lock released.
"""

import argparse
import fcntl
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from smitp import feeder as FS

MODEM_BAUD = 57600
CLIENT_WAIT_S = 120.0  # longest a client of the modem port waits for the one before it
STEP_S = 0.1  # longest the loop waits before looking at control requests and the stop flag
BOOT_TIMEOUT_S = 60.0


# ---- the modem's local port as a serial port with modem lines
class ModemLines:
    """What pyserial's RFC 2217 PortManager drives as its serial port: the line settings the
    client asks for, RTS and DTR as the modem's T_REQ and RESETN (asserted = low), writes
    towards the modem UART. Pin codes go on the pin pipe the network reads (b"T"/b"t":
    T_REQ high/low, b"R"/b"r": RESETN high/low), after the bytes written before them."""

    def __init__(self, uart, pins_w):
        self._uart = uart  # socket: our end of the modem UART
        self._pins_w = pins_w
        self.pending = bytearray()  # bytes from the client, not yet on the UART
        self.baudrate, self.bytesize, self.parity, self.stopbits = 9600, 8, "N", 1
        self.xonxoff = self.rtscts = self.break_condition = False
        self.cts = self.dsr = True  # what the modem side shows a client that asks
        self.ri = self.cd = False
        self._rts = self._dtr = False

    def line_ok(self):
        return (self.baudrate, self.bytesize, self.parity, self.stopbits) == (MODEM_BAUD, 8, "N", 1)

    def flush(self):
        if self.pending:
            if self.line_ok() and not self.break_condition:
                self._uart.sendall(bytes(self.pending))
            self.pending.clear()

    def _pin(self, code):
        self.flush()
        os.write(self._pins_w, code)

    @property
    def rts(self):
        return self._rts

    @rts.setter
    def rts(self, on):
        self._rts = bool(on)
        self._pin(b"t" if on else b"T")

    @property
    def dtr(self):
        return self._dtr

    @dtr.setter
    def dtr(self, on):
        self._dtr = bool(on)
        self._pin(b"r" if on else b"R")

    def reset_input_buffer(self):
        pass  # bytes from the modem go straight to the client: nothing held here

    def reset_output_buffer(self):
        self.pending.clear()


class _Connection:
    """The client socket as PortManager writes to it: from two threads, so under a lock."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data):
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass


class ModemBridge:
    """The concentrator's modem as the network sees a board (uart_fd, pins_fd) and as a client
    sees an RFC 2217 serial port."""

    def __init__(self, name, port=0):
        self.name = name
        self.aca = ""
        self._net_uart, self._uart = socket.socketpair()
        self._net_uart.setblocking(False)
        self.uart_fd = self._net_uart.fileno()
        self.pins_fd, self._pins_w = os.pipe()
        os.set_blocking(self.pins_fd, False)
        self.listener = _listen(port)
        self.port = self.listener.getsockname()[1]
        self._client = None  # (_Connection, ModemLines) of the client being served
        self._lock = threading.Lock()
        self._one_client = threading.Lock()  # held while a client is served: the others wait their turn
        self._stopping = False
        self.clients = 0

    @property
    def url(self):
        return "rfc2217://127.0.0.1:%d" % self.port

    def start(self):
        for target in (self._accept_loop, self._modem_to_client):
            threading.Thread(target=target, name="modem %s" % target.__name__, daemon=True).start()

    def alive(self):
        return not self._stopping

    def log_text(self):
        return ""

    def stop(self):
        self._stopping = True
        for s in (self.listener, self._uart, self._net_uart):
            try:
                s.close()
            except OSError:
                pass

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="modem client", daemon=True).start()

    def _serve(self, sock):
        """One client, when the one before has closed the port (a client that waits longer than
        CLIENT_WAIT_S is let go: its open() fails)."""
        if not self._one_client.acquire(timeout=CLIENT_WAIT_S):
            sock.close()
            return
        try:
            self._serve_one(sock)
        finally:
            self._one_client.release()

    def _serve_one(self, sock):
        from serial.rfc2217 import PortManager

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock)
        lines = ModemLines(self._uart, self._pins_w)
        with self._lock:
            self._client = (conn, lines)
            self.clients += 1
        try:
            manager = PortManager(cast(Any, lines), cast(Any, conn))  # duck-typed: a serial port, a socket
            while True:
                data = sock.recv(4096)
                if not data:
                    break
                for byte in manager.filter(data):
                    lines.pending += byte
                lines.flush()
        except OSError:
            pass
        finally:
            with self._lock:
                self._client = None
            sock.close()
            if not self._stopping:
                lines.rts = lines.dtr = False  # a closed adapter leaves both lines idle (high)

    def _modem_to_client(self):
        from serial.rfc2217 import IAC

        while not self._stopping:
            try:
                data = self._uart.recv(4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                client = self._client
            # nobody listening, or at another rate: the bytes are lost, as on a real UART
            if client is not None and client[1].line_ok():
                client[0].write(data.replace(IAC, IAC + IAC))


def _listen(port):
    """A TCP listener on the loopback: on `port` if it is free (the port of the last run), else
    on one the system picks."""
    for p in ((port, 0) if port else (0,)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last run's connections may linger
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            s.close()
            continue
        s.listen(4)
        return s
    raise OSError("no free TCP port on 127.0.0.1")


# ---- the feeder
class Feeder:
    def __init__(self, state):
        self.state = state
        self.topology = FS.load_topology(state)
        self.net = None
        self.bridge = None
        self.requests = queue.Queue()
        self.stopping = threading.Event()
        self.started = time.time()

    def meters(self):
        return [n for n in self.topology["nodes"] if n["role"] == "meter"]

    def start(self, previous_port=0):
        from smitp.emulated_board import EmulatedBoard
        from smitp.medium import Medium
        from smitp.network import Network, RealClock, serial_for

        self.net = Network(Medium(topology=self.topology), RealClock())
        marks = {}
        for node in self.topology["nodes"]:
            if node["role"] == "concentrator":
                self.bridge = ModemBridge(node["name"], previous_port)
                self.net.add_board(node["name"], self.bridge)
            else:
                board = EmulatedBoard(node["name"], node["aca"], serial_for(node["aca"]), self.state.dir)
                marks[node["name"]] = _log_size(board)
                self.net.add_board(node["name"], board)
                self._link_optical(board)
        self._wait_ready(marks)

    def _wait_ready(self, marks, timeout_s=BOOT_TIMEOUT_S):
        """Every board of `marks` (name -> its log's size before it started) says, in this run's
        part of its log, that its modem is configured and its optical port ready."""
        net = self.net
        assert net is not None

        def ready():
            for name, mark in marks.items():
                board = net.boards[name].board
                if not board.alive():
                    raise FS.FeederError("meter %s stopped: %s" % (name, board.log_text()[mark:][-300:]))
                text = board.log_text()[mark:]
                if "modem configured" not in text or "optical ready" not in text:
                    return False
            return True

        if not net.run_until(ready, timeout_s):
            raise FS.FeederError("the meters were not ready after %.0f s" % timeout_s)

    def _link_optical(self, board):
        link = self.state.optical_link(board.aca)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(board.optical_path)

    def status(self):
        assert self.net is not None and self.bridge is not None
        routes = FS.load_routes(self.state)
        meters = []
        for node in self.meters():
            board = self.net.boards[node["name"]].board
            meters.append({
                "name": node["name"], "aca": node["aca"], "alive": board.alive(),
                "optical": str(self.state.optical_link(node["aca"])), "optical_pty": board.optical_path,
                "flash": str(board.flash), "route": routes.get(node["aca"]),
            })
        return {"state": str(self.state.dir), "pid": os.getpid(), "since": FS.iso(self.started),
                "modem": self.bridge.url, "modem_clients": self.bridge.clients, "meters": meters,
                "keys": str(self.state.keys), "routes": routes}

    def provision(self, aca, k1, k2, lmon=None):
        """The meter's board stopped, its keys (and LMON) written into its flash image, started
        again; the feeder's key file follows."""
        from smitp.provision import provision_image

        assert self.net is not None
        name = next((n["name"] for n in self.meters() if n["aca"] == aca), None)
        if name is None:
            raise FS.FeederError("meter %s is not on this feeder" % aca)
        slot = self.net.boards[name]
        slot.board.stop()
        try:
            provision_image(slot.board.flash, bytes.fromhex(k1), bytes.fromhex(k2), lmon)
        finally:
            mark = _log_size(slot.board)
            slot.board.start()
            slot.emu.power_on(self.net.clock.now() * 1000.0)
            self._link_optical(slot.board)
            self._wait_ready({name: mark})
        FS.save_key(self.state, aca, k1, k2)
        return {"aca": aca, "provisioned": str(slot.board.flash)}

    def serve(self):
        """The loop: the network, control requests between its steps, until asked to stop."""
        assert self.net is not None
        while not self.stopping.is_set():
            self.net.step(STEP_S)
            while True:
                try:
                    request, reply = self.requests.get_nowait()
                except queue.Empty:
                    break
                reply(self._handle(request))

    def _handle(self, request):
        try:
            op = request.get("op")
            if op == "status":
                return {"ok": True, "status": self.status()}
            if op == "provision":
                return {"ok": True, "result": self.provision(request["aca"], request["k1"], request["k2"],
                                                             request.get("lmon"))}
            return {"ok": False, "error": "unknown request %r" % (op,)}
        except Exception as e:  # a request's failure is the requester's, never the feeder's
            return {"ok": False, "error": "%s" % e}

    def close(self):
        if self.net is not None:
            self.net.close()
        for node in self.meters():
            link = self.state.optical_link(node["aca"])
            if link.is_symlink():
                link.unlink()


def leftover_boards(state):
    """Pids of board processes on this state directory's flash images: left by a feeder that was
    killed (its boards outlive it). Only called with the lock held, when no feeder owns them."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path("/proc/%s/cmdline" % entry).read_bytes().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == b"--flash" and Path(os.fsdecode(argv[i + 1])).parent == state.dir:
                pids.append(int(entry))
    return pids


def _end_leftovers(state):
    """Kill the boards a killed feeder left (two processes on one flash image would ruin it)."""
    pids = leftover_boards(state)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    end = time.monotonic() + 5.0
    while leftover_boards(state) and time.monotonic() < end:
        time.sleep(0.05)
    if pids:
        print("%s ended %d boards left by a feeder that did not stop: %s"
              % (FS.iso(time.time()), len(pids), " ".join(map(str, pids))), flush=True)


def _log_size(board):
    try:
        return len(board.log_text())
    except OSError:
        return 0


def _control_server(feeder):
    """Accept control requests on DIR/control.sock; the feeder's loop answers them."""
    path = feeder.state.control
    if path.exists() or path.is_symlink():
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket can provision keys: its user's only
    try:
        srv.bind(str(path))
    finally:
        os.umask(old)
    srv.listen(8)

    def serve_one(conn):
        with conn:
            conn.settimeout(10.0)
            try:
                line = conn.makefile("rb").readline(1 << 16)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError):
                return
            done = threading.Event()
            box = []

            def reply(answer):
                box.append(answer)
                done.set()

            feeder.requests.put((request, reply))
            if done.wait(120.0):
                try:
                    conn.sendall((json.dumps(box[0]) + "\n").encode())
                except OSError:
                    pass

    def accept_loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, name="control", daemon=True).start()
    return srv


def main(argv=None):
    p = argparse.ArgumentParser(prog="smitp-feeder")
    p.add_argument("--state", required=True)
    p.add_argument("--meters", type=int)
    p.add_argument("--ready-fd", type=int)
    p.add_argument("--detach", action="store_true", help="fork: the caller's child returns at once")
    args = p.parse_args(argv)
    if args.detach and os.fork():
        os._exit(0)  # the grandchild, in the session the caller gave it, is the feeder
    ready = os.fdopen(args.ready_fd, "w") if args.ready_fd is not None else sys.stdout
    state = FS.State(Path(args.state))
    lock = open(state.lock, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _say(ready, "error a feeder already runs on %s (pid %s)" % (state.dir, FS.read_pid(state) or "?"))
        return 1
    os.chdir(state.dir)
    feeder = None
    srv = None
    try:
        _end_leftovers(state)
        FS.create(state, args.meters)
        state.pid.write_text("%d\n" % os.getpid())
        feeder = Feeder(state)
        signal.signal(signal.SIGTERM, lambda *_: feeder.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: feeder.stopping.set())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        feeder.start(FS.last_port(state))
        FS.save_port(state, feeder.bridge.port if feeder.bridge else 0)
        srv = _control_server(feeder)
        print("%s feeder up: %d meters, modem on %s" % (FS.iso(time.time()), len(feeder.meters()),
                                                        feeder.status()["modem"]), flush=True)
        _say(ready, "ready " + json.dumps(feeder.status()))
        feeder.serve()
        print("%s feeder down" % FS.iso(time.time()), flush=True)
        return 0
    except Exception as e:
        _say(ready, "error %s" % FS.one_line(e))
        print("%s feeder failed: %s" % (FS.iso(time.time()), e), flush=True)
        return 1
    finally:
        if srv is not None:
            srv.close()
        if feeder is not None:
            feeder.close()
        for path in (state.control, state.pid):
            if path.exists():
                path.unlink()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _say(ready, line):
    """The first (and only) line for the starter; the pipe is closed after it."""
    if ready.closed:
        return
    try:
        ready.write(line + "\n")
        ready.flush()
        if ready is not sys.stdout:
            ready.close()
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
