"""The concentrator: master side of the data link, and the application services over it.

It speaks through a port with `send(payload)`, `recv(timeout_s)` and `now()`:
a ConcentratorPort on the simulated medium, or a modem port on a real ST7580.
The frame codec is the firmware's own (meter.link.mac), so both sides share one
definition of the layout; independent checks of that layout live in the tests.
Here: frames out, answers in, timeouts; what the requests and answers hold is
smitp.client's, the rules of authenticated ones smitp.secure's.
"""

from meter.link import mac
from meter.app import security as sec
from meter import timers as T
from meter.errors import DecodeError
from smitp import client, secure
from smitp.aca import aca_text, parse_aca  # noqa: F401 (part of this module's interface)
from smitp.client import register_size  # noqa: F401 (part of this module's interface)
from smitp.errors import Nack, NoAnswer, PeerError, UsageError  # noqa: F401 (part of this module's interface)
from smitp.medium import PHY_OVERHEAD_BITS
from smitp.scabook import ScaBook
from smitp.transport import Link, resend

# Master timing (project choice: the standard's timer formulas are not public).
# Airtime as the medium model computes it (4800 bit/s and its PHY overhead).
BITRATE = 4800
ELABORATION_S = T.ELABORATION_MS / 1000.0  # TEL: a node's time to answer or repeat
MARGIN_S = 0.5  # scheduling slack of emulated boards and host loops
RETRIES = 2
# What this concentrator talked to failed (the name its callers know).
ConcentratorError = PeerError


def response_timeout(repeaters, request_len, max_response):
    """Longest wait for an answer: each hop carries the request out and the answer back."""
    hops = repeaters + 1
    air = (PHY_OVERHEAD_BITS + 8 * request_len) / BITRATE + (PHY_OVERHEAD_BITS + 8 * (max_response + 30)) / BITRATE
    return hops * (air + 2 * ELABORATION_S) + MARGIN_S


class Concentrator:
    def __init__(self, port, retries=RETRIES, keyring=None, book=None):
        """book: the SCAs registration gave (smitp.scabook); meters in it are
        addressed by SCA where that saves airtime."""
        self.port = port
        self.book = book if book is not None else ScaBook()
        self.retries = retries
        self._out = bytearray(mac.MAX_FRAME)
        self._frame = mac.Frame()
        self.keyring = keyring
        self.answer_ecc = 0
        self.last_request_lsdu = None  # the last protected request and its answer, as on the line
        self.last_answer = None
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "frames_heard": 0, "bad_frames": 0}

    def request(self, aca, data, route=(), max_response=mac.DISCIPLINES[mac.DISC_RA7][1], ecc=0, tries=None,
                accept=None, dsap=0):
        """Send LLC data to the meter `aca` through `route` (repeater ACAs, nearest first);
        return the answer's LLC data (its ECC in self.answer_ecc). Sends the same bytes
        `tries` times at most (default: 1 + retries) while the line stays silent; raises NoAnswer.
        accept(LLC data, ECC): is this answer ours? (else a late one to something else: dropped);
        dsap: the LLC DSAP (0: the application, meter.link.llc.DSAP_DLMS: the DLMS profile)"""
        bnode = dsap == 0 and client.is_bnode(data[0])  # RB: the meter answers once its B-Node has
        disc = mac.discipline_for(max_response, mac.CLASS_RB if bnode else mac.CLASS_RA)
        air, rp = self.book.addresses(aca, route)  # the answer comes from the address asked
        n = mac.encode(self._out, air, rp, disc, False, 0, False, dsap, ecc, bytes(data))
        frame = bytes(self._out[:n])
        timeout = response_timeout(len(route), n, max_response) + (T.BNODE_TIMEOUT_MS / 1000.0 if bnode else 0)
        slack = getattr(self.port, "slack_s", None)  # boards slower than the wall clock (smitp.network)
        timeout += slack() if slack is not None else 0.0
        self.stats["requests"] += 1
        answer = resend(lambda: self.port.send(frame), lambda: self._wait_answer(air, len(route), timeout, accept),
                        self.retries + 1 if tries is None else tries, self.stats)
        if answer is not None:
            return answer
        self.stats["timeouts"] += 1
        raise NoAnswer("no answer from %s via [%s]" % (aca_text(aca), ", ".join(aca_text(r) for r in route)))

    def _wait_answer(self, air, repeaters, timeout, accept=None):
        port, f = self.port, self._frame
        end = port.now() + timeout
        while True:
            left = end - port.now()
            if left <= 0:
                return None
            payload = port.recv(left)
            if payload is None:
                return None
            self.stats["frames_heard"] += 1
            try:
                mac.decode(f, payload, len(payload))
            except DecodeError:
                self.stats["bad_frames"] += 1
                continue
            # The answer: uplink, from the meter, sent by the node next to us.
            if f.uplink and f.position == 1 and f.repeaters == repeaters and mac.same_addr(payload, f.addr, air):
                data = bytes(payload[f.data:f.data + f.data_len])
                if accept is not None and not accept(data, f.ecc):
                    self.stats["late_answers"] = self.stats.get("late_answers", 0) + 1
                    continue
                self.answer_ecc = f.ecc
                return data

    def pause(self, seconds):
        """Let `seconds` of the port's time pass, dropping what is heard (a back-off)."""
        end = self.port.now() + seconds
        while self.port.now() < end:
            self.port.recv(end - self.port.now())

    def _meter(self, aca):
        if self.keyring is None or aca not in self.keyring:
            raise UsageError("no keys for meter %s" % aca_text(aca))
        return self.keyring[aca]

    def _call(self, aca, route, op, auth, ecc=None):
        # op (a smitp.client request or procedure) to meter `aca`, plain or authenticated
        return _PlcLink(self, aca, route).call(op, self._meter(aca) if auth else None, ecc)

    def _secured(self, aca, route, rule, *args):
        return _PlcLink(self, aca, route).secured(self._meter(aca), rule, *args)

    def secure_request(self, aca, attr, apdu, route=(), max_response=0, ecc=sec.ECC_CTR_READ):
        """The authenticated variant of ATTR with APDU under the rules of smitp.secure (a request
        left unsettled goes first; one with effect never runs twice); returns the answer's
        (plain ATTR, DATA), verified. max_response: the longest plain answer."""
        return self._secured(aca, route, secure.exchange, attr, apdu, ecc, max_response)

    def challenge(self, aca, route=()):
        """CHL.REQ / CHL.RESP: the meter's LMON, verified and adopted."""
        return self._secured(aca, route, secure.sync)

    def change_keys(self, aca, k1, k2, route=()):
        """The key change procedure (smitp.secure.change_keys); afterwards the key ring's session
        uses the new pair. Returns how it went (a short text)."""
        return self._secured(aca, route, secure.change_keys, k1, k2)

    # ---- the services (smitp.client): auth with the keys of self.keyring, ecc None: the default
    def read(self, aca, reg_ids, route=(), auth=False, ecc=sec.ECC_CTR_READ):
        """READ.REQ of one or more registers; returns {reg_id: raw bytes}."""
        return self._call(aca, route, client.read(reg_ids), auth, ecc)

    def write(self, aca, values, route=(), auth=False, ecc=sec.ECC_ECB_WRITE):
        """WRITE.REQ of {reg_id: raw bytes} (authenticated: by default AES-ECB with the write key,
        the only way the meter's policy lets a write through); returns on ACK, raises Nack."""
        self._call(aca, route, client.write(values), auth, ecc)

    def service(self, aca, attr, data, route=(), auth=False, ecc=None):
        """Any service: the answer's LLC data, ATTR first (the plain ATTR when authenticated).
        Raises Nack on a refusal."""
        return self._call(aca, route, client.service(attr, data), auth, ecc)

    def select(self, aca, table, t0=0, t1=0, route=(), auth=False, ecc=None):
        """BUFF_SELECT: (first record number, records, records per block) of [t0, t1) (0, 0: all)."""
        return self._call(aca, route, client.select(table, t0, t1), auth, ecc)

    def read_table(self, aca, table, t0=0, t1=0, route=(), auth=False, ecc=None, progress=None):
        """Every record of `table` (or those of [t0, t1)): [(record number, raw record)]."""
        return self._call(aca, route, client.read_table(table, t0, t1, progress), auth, ecc)

    def read_records(self, aca, table, first, count, mask=0, route=(), auth=False, ecc=None):
        """READTAB selective: records `first`.. (`count` of them, fields of `mask`, 0 = all):
        [(number, raw)]."""
        return self._call(aca, route, client.read_records(table, first, count, mask), auth, ecc)

    def get_custom(self, aca, number, route=(), auth=False, ecc=None):
        """GETTAB of custom table `number` (1-4): [(register id, raw value)] in its order."""
        return self._call(aca, route, client.get_custom(number), auth, ecc)

    def set_custom(self, aca, number, reg_ids, route=(), auth=False, ecc=None):
        """SETTAB: custom table `number` (1-4) lists reg_ids (at most 16; none clears it)."""
        self._call(aca, route, client.set_custom(number, reg_ids), auth, ecc)

    def write_table(self, aca, table, first, records, route=(), auth=False, ecc=None):
        """WRITETAB: whole records from record `first` on, in as many messages as they need."""
        self._call(aca, route, client.write_table(table, first, records, auth, ecc), auth, ecc)

    def reset_tables(self, aca, reg_ids, route=(), auth=False, ecc=None):
        """RESETTAB: tables and settings back to their defaults (logs emptied)."""
        self._call(aca, route, client.reset_tables(reg_ids), auth, ecc)

    def command(self, aca, code, params=b"", route=(), auth=False, ecc=None):
        """COMMAND `code` (meter.app.tables.CMD_*) with its parameters; returns on ACK."""
        self._call(aca, route, client.command(code, params), auth, ecc)

    def dataspont(self, aca, acknowledged=0, route=(), auth=False, ecc=None):
        """DATASPONT: ([(number, raw event record)], more) from record `acknowledged` on."""
        return self._call(aca, route, client.dataspont(acknowledged), auth, ecc)

    def spontaneous(self, aca, acknowledged=0, route=(), auth=False, ecc=None):
        """Drain the meter's spontaneous events from `acknowledged` on; returns
        ([(number, raw)], the acknowledgement to give next time)."""
        return self._call(aca, route, client.spontaneous(acknowledged), auth, ecc)


    def bnode_update(self, aca, data, table=None, first=0, route=(), auth=False, ecc=None):
        """SETIC (or WRITETABIC of B-Node table `table` from entry `first`): the meter passes data
        to its B-Node; returns the B-Node's reply on ACK B-Node, raises BNodeNack / Nack."""
        return self._call(aca, route, client.bnode_update(data, table, first), auth, ecc)


class _PlcLink(Link):
    """The transport to one meter through one route; keeps the last protected request and its
    answer as they went on the line."""

    def __init__(self, conc, aca, route):
        super().__init__(conc.stats)
        self.conc, self.aca, self.route = conc, aca, route

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        c = self.conc
        protected = sec.is_authenticated(lsdu[0])
        if protected:
            c.last_request_lsdu = lsdu
        data = c.request(self.aca, lsdu, self.route, answer_len, ecc, tries, accept)
        if protected:
            c.last_answer = data
        return c.answer_ecc, data

    def pause(self, seconds):
        self.conc.pause(seconds)
