"""The concentrator: master side of the data link and the plain application services.

It speaks through a port with `send(payload)`, `recv(timeout_s)` and `now()`:
a ConcentratorPort on the simulated medium, or a modem port on a real ST7580.
The frame codec is the firmware's own (meter.mac), so both sides share one
definition of the layout; independent checks of that layout live in the tests.
"""

import struct

from meter import attrs as A
from meter import mac
from meter import registers as R
from meter import security as sec
from meter import timers as T
from meter.errors import DecodeError, SmitpError
from smitp.aca import aca_text, parse_aca  # noqa: F401 (part of this module's interface)
from smitp import secure
from smitp.medium import PHY_OVERHEAD_BITS

# Master timing (project choice: the standard's timer formulas are not public).
# Airtime as the medium model computes it (4800 bit/s and its PHY overhead).
BITRATE = 4800
ELABORATION_S = T.ELABORATION_MS / 1000.0  # TEL: a node's time to answer or repeat
MARGIN_S = 0.5  # scheduling slack of emulated boards and host loops
RETRIES = 2
# Longest answers the table services ask for: RA7 (140 bytes) carries a full
# LLC data field, 128 bytes; authenticated answers keep 16 of them for the trailer and TMAC.
TABLE_ANSWER = mac.MAX_LLC_DATA
TABLE_ANSWER_AUTH = mac.MAX_LLC_DATA - sec.AUTH_OVERHEAD


class ConcentratorError(SmitpError):
    pass


class NoAnswer(ConcentratorError):
    pass


class Nack(ConcentratorError):
    def __init__(self, code, reg_id):
        super().__init__("NACK %d (%s) for register 0x%04X" % (code, A.NACK_NAMES.get(code, "?"), reg_id))
        self.code = code
        self.reg_id = reg_id


def response_timeout(repeaters, request_len, max_response):
    """Longest wait for an answer: each hop carries the request out and the answer back."""
    hops = repeaters + 1
    air = (PHY_OVERHEAD_BITS + 8 * request_len) / BITRATE + (PHY_OVERHEAD_BITS + 8 * (max_response + 30)) / BITRATE
    return hops * (air + 2 * ELABORATION_S) + MARGIN_S


def register_size(reg_id):
    row = R.lookup(reg_id)
    if row is None:
        raise ConcentratorError("register 0x%04X is not in the register table" % reg_id)
    return row[R.R_SIZE]


class Concentrator:
    def __init__(self, port, retries=RETRIES, keyring=None):
        self.port = port
        self.retries = retries
        self._out = bytearray(mac.MAX_FRAME)
        self._frame = mac.Frame()
        self.keyring = keyring
        self.answer_ecc = 0
        self.last_request_lsdu = None  # the last protected request and its answer, as on the line
        self.last_answer = None
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "frames_heard": 0, "bad_frames": 0}

    def request(self, aca, data, route=(), max_response=mac.DISCIPLINES[mac.DISC_RA7][1], ecc=0, tries=None,
                accept=None):
        """Send LLC data to the meter `aca` through `route` (repeater ACAs, nearest first);
        return the answer's LLC data (its ECC in self.answer_ecc). Sends the same bytes
        `tries` times at most (default: 1 + retries) while the line stays silent; raises NoAnswer.
        accept(LLC data, ECC): is this answer ours? (else a late one to something else: dropped)"""
        disc = mac.discipline_for(max_response)
        air = mac.aca_to_air(aca)
        rp = b"".join(mac.aca_to_air(r) for r in route)
        n = mac.encode(self._out, air, rp, disc, False, 0, False, 0, ecc, bytes(data))
        frame = bytes(self._out[:n])
        timeout = response_timeout(len(route), n, max_response)
        self.stats["requests"] += 1
        for attempt in range(self.retries + 1 if tries is None else tries):
            if attempt:
                self.stats["retries"] += 1
            self.port.send(frame)
            answer = self._wait_answer(air, len(route), timeout, accept)
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
            raise ConcentratorError("no keys for meter %s" % aca_text(aca))
        return self.keyring[aca]

    def _secure(self, aca, route, run):
        # run(meter, link) under the rules of smitp.secure.
        return secure.counted(self.stats, self._meter(aca), run, _PlcLink(self, aca, route))

    def secure_request(self, aca, attr, apdu, route=(), max_response=0, ecc=sec.ECC_CTR_READ):
        """The authenticated variant of ATTR with APDU under the rules of smitp.secure (a request
        left unsettled goes first; one with effect never runs twice); returns the answer's
        (plain ATTR, DATA), verified. max_response: the longest plain answer."""
        return self._secure(aca, route, lambda m, link: secure.exchange(m, link, attr, apdu, ecc, max_response))

    def challenge(self, aca, route=()):
        """CHL.REQ / CHL.RESP: the meter's LMON, verified and adopted."""
        return self._secure(aca, route, secure.sync)

    def change_keys(self, aca, k1, k2, route=()):
        """The key change procedure (smitp.secure.change_keys); afterwards the key ring's session
        uses the new pair. Returns how it went (a short text)."""
        return self._secure(aca, route, lambda m, link: secure.change_keys(m, link, k1, k2))

    def read(self, aca, reg_ids, route=(), auth=False, ecc=sec.ECC_CTR_READ):
        """READ.REQ of one or more registers (authenticated with `auth`);
        returns {reg_id: raw bytes}."""
        sizes = [register_size(r) for r in reg_ids]
        apdu = b"".join(r.to_bytes(2, "big") for r in reg_ids)
        if auth:
            attr, data = self.secure_request(aca, A.READ_REQ, apdu, route, 1 + sum(sizes), ecc)
            ans = bytes([attr]) + data
        else:
            ans = self.request(aca, bytes([A.READ_REQ]) + apdu, route, max_response=1 + sum(sizes))
        _raise_nack(ans)
        if ans[0] != A.READ_RESP or len(ans) != 1 + sum(sizes):
            raise ConcentratorError("unexpected answer %s" % ans.hex())
        out, pos = {}, 1
        for r, size in zip(reg_ids, sizes):
            out[r] = ans[pos:pos + size]
            pos += size
        return out

    def write(self, aca, values, route=(), auth=False, ecc=sec.ECC_ECB_WRITE):
        """WRITE.REQ of {reg_id: raw bytes} (authenticated with `auth`: by default AES-ECB with
        the write key, the only way the meter's policy lets a write through); returns on ACK,
        raises Nack."""
        body = b""
        for r, raw in values.items():
            if len(raw) != register_size(r):
                raise ConcentratorError("register 0x%04X takes %d bytes, got %d" % (r, register_size(r), len(raw)))
            body += r.to_bytes(2, "big") + bytes(raw)
        if auth:
            attr, data = self.secure_request(aca, A.WRITE_REQ, body, route, 4, ecc)
            ans = bytes([attr]) + data
        else:
            ans = self.request(aca, bytes([A.WRITE_REQ]) + body, route, max_response=4)
        _raise_nack(ans)
        if ans[:1] != bytes([A.ACK_A]):
            raise ConcentratorError("unexpected answer %s" % ans.hex())


    # ---- table services (layouts: meter/tables.py, docs/protocol.md)
    def service(self, aca, attr, data, route=(), auth=False, ecc=None, write=False):
        """One exchange of a table service: the answer's LLC data, ATTR first
        (the plain ATTR when authenticated). Raises Nack on a refusal. With
        `auth` the request goes with the write key and ECB (`write`) or the
        read key and CTR, unless `ecc` says otherwise."""
        if auth:
            attr_back, body = self.secure_request(aca, attr, data, route, TABLE_ANSWER_AUTH, _ecc(ecc, write))
            ans = bytes([attr_back]) + body
        else:
            ans = self.request(aca, bytes([attr]) + bytes(data), route, max_response=TABLE_ANSWER)
        _raise_nack(ans)
        return ans

    def _ack(self, ans):
        if ans[:1] != bytes([A.ACK_A]):
            raise ConcentratorError("unexpected answer %s" % ans.hex())

    def select(self, aca, table, t0=0, t1=0, route=(), auth=False, ecc=None):
        """BUFF_SELECT: the records of `table` with time in [t0, t1) (0, 0: all).
        Returns (first record number, records, records per block)."""
        ans = self.service(aca, A.BUFF_SELECT_REQ, struct.pack(">HII", table, t0, t1), route, auth, ecc)
        if ans[0] != A.BUFF_SELECT_RESP or len(ans) != 10:
            raise ConcentratorError("unexpected answer %s" % ans.hex())
        _t, first, count, per = struct.unpack_from(">HIHB", ans, 1)
        return first, count, per

    def read_table(self, aca, table, t0=0, t1=0, route=(), auth=False, ecc=None, progress=None):
        """Every record of `table` (or those of [t0, t1)): BUFF_SELECT, then READTAB
        blocks until the meter says no more. Returns [(record number, raw record)]."""
        first, count, per = self.select(aca, table, t0, t1, route, auth, ecc)
        size = register_size(table)
        out, block = [], 0
        while True:
            if progress:
                progress(len(out), count, "block %d" % block)
            ans = self.service(aca, A.READTAB_REQ, struct.pack(">HH", table, block), route, auth, ecc)
            if ans[0] != A.READTAB_RESP or struct.unpack_from(">HH", ans, 1) != (table, block):
                raise ConcentratorError("unexpected answer %s" % ans.hex())
            k = ans[5] & 0x7F
            base = first + block * per + (per - k if k < per and ans[5] & 0x80 else 0)
            for i in range(k):
                out.append((base + i, ans[6 + i * size:6 + (i + 1) * size]))
            if not ans[5] & 0x80:
                break
            block += 1
        if progress:
            progress(len(out), len(out), "")
        return out

    def read_records(self, aca, table, first, count, mask=0, route=(), auth=False, ecc=None):
        """READTAB selective: records `first`.. (`count` of them, fields of `mask`,
        0 = all), in as many requests as the answers need. Returns [(number, raw)]."""
        out = []
        while count > 0:
            ans = self.service(aca, A.READTAB_SEL_REQ, struct.pack(">HIBB", table, first, min(count, 255), mask),
                               route, auth, ecc)
            if ans[0] != A.READTAB_SEL_RESP:
                raise ConcentratorError("unexpected answer %s" % ans.hex())
            got_first, k = struct.unpack_from(">IB", ans, 3)
            if k == 0:
                break
            size = (len(ans) - 8) // k
            out.extend((got_first + i, ans[8 + i * size:8 + (i + 1) * size]) for i in range(k))
            count -= k + (got_first - first)
            first = got_first + k
        return out

    def get_custom(self, aca, number, route=(), auth=False, ecc=None):
        """GETTAB of custom table `number` (1-4): [(register id, raw value)] in its order."""
        ids = self.read(aca, [R.CUSTOM_TABLE_1 + number - 1], route, auth=auth,
                        ecc=ecc if ecc is not None else sec.ECC_CTR_READ)[R.CUSTOM_TABLE_1 + number - 1]
        ids = list(struct.unpack(">16H", ids))
        ids = ids[:ids.index(0)] if 0 in ids else ids  # the list ends at the first 0000
        out, entry = [], 0
        while True:
            ans = self.service(aca, A.GETTAB_REQ, bytes((number, entry)), route, auth, ecc)
            if ans[0] != A.GETTAB_RESP:
                raise ConcentratorError("unexpected answer %s" % ans.hex())
            pos = 4
            for reg in ids[entry:entry + (ans[3] & 0x7F)]:
                size = register_size(reg)
                out.append((reg, ans[pos:pos + size]))
                pos += size
            entry += ans[3] & 0x7F
            if not ans[3] & 0x80:
                return out

    def set_custom(self, aca, number, reg_ids, route=(), auth=False, ecc=None):
        """SETTAB: custom table `number` (1-4) lists reg_ids (at most 16; none clears it)."""
        body = bytes((number,)) + b"".join(struct.pack(">H", r) for r in reg_ids)
        self._ack(self.service(aca, A.SETTAB_REQ, body, route, auth, ecc, write=True))

    def write_table(self, aca, table, first, records, route=(), auth=False, ecc=None):
        """WRITETAB: whole records from record `first` on, in as many messages as they need."""
        size = register_size(table)
        room = (secure.max_data(_ecc(ecc, True)) if auth else TABLE_ANSWER - 1) - 4
        per = room // size
        if len(records) % size:
            raise ConcentratorError("records of table 0x%04X are %d bytes" % (table, size))
        for i in range(0, len(records), per * size):
            chunk = records[i:i + per * size]
            head = struct.pack(">HH", table, first + i // size)
            self._ack(self.service(aca, A.WRITETAB_REQ, head + chunk, route, auth, ecc, write=True))

    def reset_tables(self, aca, reg_ids, route=(), auth=False, ecc=None):
        """RESETTAB: tables and settings back to their defaults (logs emptied)."""
        body = b"".join(struct.pack(">H", r) for r in reg_ids)
        self._ack(self.service(aca, A.RESETTAB_REQ, body, route, auth, ecc, write=True))

    def command(self, aca, code, params=b"", route=(), auth=False, ecc=None):
        """COMMAND `code` (meter.tables.CMD_*) with its parameters; returns on ACK."""
        self._ack(self.service(aca, A.COMMAND, bytes((code,)) + bytes(params), route, auth, ecc, write=True))

    def dataspont(self, aca, acknowledged=0, route=(), auth=False, ecc=None):
        """DATASPONT: spontaneous events at or after record `acknowledged` (which
        also tells the meter everything below it arrived). Returns ([(number,
        raw event record)], more)."""
        ans = self.service(aca, A.DATASPONT, struct.pack(">I", acknowledged), route, auth, ecc)
        if ans[0] != A.DATASPONT:
            raise ConcentratorError("unexpected answer %s" % ans.hex())
        k = ans[1] & 0x7F
        size = register_size(R.EVENT_LOG)
        items = [(struct.unpack_from(">I", ans, 2 + i * (4 + size))[0],
                  ans[6 + i * (4 + size):6 + i * (4 + size) + size]) for i in range(k)]
        return items, bool(ans[1] & 0x80)

    def spontaneous(self, aca, acknowledged=0, route=(), auth=False, ecc=None):
        """Drain the meter's spontaneous events from `acknowledged` on; returns
        ([(number, raw)], the acknowledgement to give next time)."""
        out = []
        while True:
            items, more = self.dataspont(aca, acknowledged, route, auth, ecc)
            out.extend(items)
            if items:
                acknowledged = items[-1][0] + 1
            if not more:
                self.dataspont(aca, acknowledged, route, auth, ecc)  # acknowledge the last ones
                return out, acknowledged


class _PlcLink(secure.Link):
    """smitp.secure's transport to one meter through one route; keeps the last protected
    request and its answer as they went on the line."""

    NoAnswer = NoAnswer

    def __init__(self, conc, aca, route):
        self.conc, self.aca, self.route = conc, aca, route

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        c = self.conc
        if lsdu[0] != A.CHL_REQ:
            c.last_request_lsdu = lsdu
        data = c.request(self.aca, lsdu, self.route, answer_len, ecc, tries, accept)
        if lsdu[0] != A.CHL_REQ:
            c.last_answer = data
        return c.answer_ecc, data

    def pause(self, seconds):
        self.conc.pause(seconds)


def _ecc(ecc, write):
    """The ECC of an authenticated service: as given, else ECB with the write key for one with
    effect (the meter refuses it otherwise), CTR with the read key for a read."""
    return ecc if ecc is not None else secure.ecc_for("auto", write)


def _raise_nack(ans):
    if ans and ans[0] == A.NACK_A:
        code = ans[1] if len(ans) > 1 else 0
        reg = int.from_bytes(ans[2:4], "big") if len(ans) >= 4 else 0
        raise Nack(code, reg)
