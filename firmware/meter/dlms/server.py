# The xDLMS services of the DLMS/COSEM profile's server (EN 62056-5-3, CLC/TS
# 50568-8 4.5/4.6): GET (normal, with list, with block transfer), SET and ACTION
# (normal, with block transfer of the request), over the association of
# meter/dlms/assoc.py.
#
# A SET or ACTION in blocks gathers its Data in the buffer a GET in blocks
# sends from (Association.long): one long transfer at a time, and any other
# request ends the one in progress (project choice, docs/protocol.md).
#
# The handler of the convergence layer (meter/dlms/cl.py): a whole request
# APDU in, a whole response APDU out. Every refusal is an answer (AARE reject,
# exception-response, data-access-result or action-result), never an
# exception; a DecodeError from a malformed APDU becomes an exception-response.
from meter.compat import const
from meter.errors import DecodeError
from meter.dlms import acse as A
from meter.dlms import axdr as X
from meter.dlms import cosem as C
from meter.dlms.profile import Profiles
from meter.dlms.broadcast import Broadcast
from meter.dlms.assoc import (ASSOCIATED, CIPHER_OVERHEAD, CONF_ACTION, CONF_BLOCK_ACTION, CONF_BLOCK_GET,
                              CONF_BLOCK_SET, CONF_GET, CONF_LIST, CONF_SET, IDLE, LONG_MAX, OPERATION_NOT_POSSIBLE,
                              OTHER_REASON, PDU_TOO_LONG, PENDING, SERVICE_NOT_ALLOWED, SERVICE_NOT_SUPPORTED,
                              SERVICE_UNKNOWN, Association, Reject,
                              provision, random_bytes, system_title)  # noqa: F401 (provision: this module's interface)

GET_REQUEST = const(0xC0)
SET_REQUEST = const(0xC1)
ACTION_REQUEST = const(0xC3)
GET_RESPONSE = const(0xC4)
SET_RESPONSE = const(0xC5)
ACTION_RESPONSE = const(0xC7)
EXCEPTION_RESPONSE = const(0xD8)
LIST_MAX = const(16)  # attributes in one GET with list
# data-access-result and action-result of block transfers
LONG_SET_ABORTED = const(17)
NO_LONG_SET = const(18)
BLOCK_NUMBER_INVALID = const(19)
LONG_ACTION_ABORTED = const(15)
NO_LONG_ACTION = const(16)


class XdlmsServer(Association):
    def __init__(self, model, store, title, random=random_bytes):
        Association.__init__(self, model, store, title, random)
        self.profiles = Profiles(model, self.objects)
        self.broadcast = Broadcast(self)
        self._stream = None  # what a GET in blocks streams from (a profile's buffer, the object list), or None
        self._in_obj = self._in_sel = self._in_len = self._in_block = 0  # the SET or ACTION in blocks

    def load_keys(self):
        Association.load_keys(self)
        if hasattr(self, "broadcast"):  # not yet when Association.__init__ loads them
            self.broadcast.load_key()

    # ---- the convergence layer's handler
    def handle(self, req, n, resp):
        """Serve the request APDU req[0:n]; write the response APDU into resp; return its length."""
        w = self.w_resp.reset(resp)
        try:
            if n < 1:
                raise DecodeError("APDU", "empty")
            tag = req[0]
            if tag == A.AARQ:
                return self._associate(req, n, w)
            if tag == A.RLRQ:
                self._release()
                A.rlre(w)
                return w.n
            if self.state == IDLE:
                raise Reject(SERVICE_NOT_ALLOWED, OPERATION_NOT_POSSIBLE)
            if not self.ciphered:
                return self._serve(req, 0, n, w)
            start, end = self._decipher(req, n)
            pw = self.w_work.reset(self.work)
            self._serve(req, start, end, pw)
            return self._encipher(self.work, pw.n, w, tag)
        except Reject as e:
            return self._exception(w, e.state, e.service, e.ic)
        except DecodeError:
            return self._exception(w, SERVICE_UNKNOWN, OTHER_REASON)

    def _exception(self, w, state, service, ic=-1):
        self.stats["exceptions"] += 1
        w.n = 0
        w.byte(EXCEPTION_RESPONSE)
        w.byte(state)
        w.byte(service)
        if ic >= 0:
            w.uint(ic, 4)
        return w.n

    # ---- xDLMS services
    def _serve(self, req, off, end, w):
        if end - off < 3:
            raise DecodeError("xDLMS", "truncated")
        tag = req[off]
        kind = req[off + 1]
        invoke = req[off + 2]
        if self._in and not (tag == self._in and kind == (3 if tag == SET_REQUEST else 6)):
            self._in = 0  # another request ends a SET or ACTION in blocks
        if tag == GET_REQUEST and kind == 1:
            return self._get(req, off + 3, end, invoke, w)
        if tag == GET_REQUEST and kind == 2:
            return self._get_next(req, off + 3, end, invoke, w)
        if tag == GET_REQUEST and kind == 3 and self.conformance & CONF_LIST:
            return self._get_list(req, off + 3, end, invoke, w)
        if tag == SET_REQUEST and kind == 1:
            return self._set(req, off + 3, end, invoke, w)
        if tag == ACTION_REQUEST and kind == 1:
            return self._action(req, off + 3, end, invoke, w)
        if tag == SET_REQUEST and (kind == 2 or kind == 3) and self.conformance & CONF_BLOCK_SET:
            return self._set_block(req, off + 3, end, invoke, w, kind == 2)
        if tag == ACTION_REQUEST and (kind == 4 or kind == 6) and self.conformance & CONF_BLOCK_ACTION:
            return self._action_block(req, off + 3, end, invoke, w, kind == 4)
        if tag == ACTION_REQUEST and kind == 2:  # next-pblock: no long action result is ever sent
            return self._action_result(w, invoke, NO_LONG_ACTION)
        raise Reject(SERVICE_UNKNOWN, SERVICE_NOT_SUPPORTED)

    def _target(self, req, off, end):
        # class (2) | OBIS (6) | attribute or method (1): (index or -1/-2, attribute)
        if off + 9 > end:
            raise DecodeError("descriptor", "truncated")
        return C.find(X.uint(req, off, 2), req, off + 2), req[off + 8]

    def _head(self, w, tag, kind, invoke):
        w.byte(tag)
        w.byte(kind)
        w.byte(invoke)

    def _descriptor(self, req, off, end):
        """An attribute descriptor with its access selection at req[off]:
        (object index or -1/-2, attribute, offset of the selector or 0, offset after)."""
        i, attr = self._target(req, off, end)
        if off + 10 > end:
            raise DecodeError("GET", "access selection")
        at = off + 10
        sel = 0
        if req[off + 9]:  # selector (1) and its parameters (Data)
            sel = at
            at = X.skip(req, at + 1, end)
        return i, attr, sel, at

    def _may_get(self, i, attr, sel):
        if self.conformance & CONF_GET == 0:
            return C.DENIED
        if i < 0:
            return C.UNDEFINED if i == -1 else C.CLASS_INCONSISTENT
        if sel and (C.OBJECTS[i][C.O_CLASS] != C.PROFILE_GENERIC or attr != 2):
            return C.OTHER  # selective access: only of a profile's buffer
        if self.state == PENDING or not C.may_read(C.OBJECTS[i], attr, self.level):
            return C.DENIED
        return C.OK

    def _get(self, req, off, end, invoke, w):
        i, attr, sel, at = self._descriptor(req, off, end)
        self._long_len = 0
        self._stream = None
        dar = self._may_get(i, attr, sel)
        lw = self.w_long.reset(self.long)
        cls = C.OBJECTS[i][C.O_CLASS] if i >= 0 else 0
        if dar == C.OK and cls == C.PROFILE_GENERIC and attr == 2:
            n = self.profiles.select(C.OBJECTS[i][C.O_OBIS], req, sel if sel else at, at)
            if n >= 0:
                return self._answer_long(1, invoke, n, True, w, self.profiles)
            dar = -n
        elif dar == C.OK and cls == C.ASSOCIATION_LN and attr == 2:
            return self._answer_long(1, invoke, self.objlist.select(self.level), True, w, self.objlist)
        elif dar == C.OK:
            dar = self.objects.get(i, attr, lw)
        if dar != C.OK:
            self._head(w, GET_RESPONSE, 1, invoke)
            w.byte(1)
            w.byte(dar)
            return w.n
        return self._answer_long(1, invoke, lw.n, True, w)

    def _get_list(self, req, off, end, invoke, w):
        # GET-Request-With-List: count | descriptors; the answer: count | Get-Data-Results
        self._long_len = 0
        count, at = X.get_len(req, off, end)
        if count < 1 or count > LIST_MAX:
            raise DecodeError("GET with list", "%d attributes" % count)
        lw = self.w_long.reset(self.long)
        lw.length(count)
        for _ in range(count):
            i, attr, sel, at = self._descriptor(req, at, end)
            dar = self._may_get(i, attr, sel)
            if dar == C.OK and sel:
                dar = C.OTHER  # a selection inside a list: not offered
            mark = lw.n
            lw.byte(0)
            if dar == C.OK:
                dar = self.objects.get(i, attr, lw)
            if dar != C.OK:
                lw.n = mark
                lw.byte(1)
                lw.byte(dar)
        if at != end:
            raise DecodeError("GET with list", "trailing bytes")
        return self._answer_long(3, invoke, lw.n, False, w)

    def _answer_long(self, kind, invoke, n, data_choice, w, stream=None):
        """The GET answer of kind `kind` holding self.long[0:n] (a Data after
        the choice byte 0 for a normal GET; the results of a list) or the
        first n bytes stream.emit makes (a profile buffer or the object list
        selected); or its first block when it does not fit the client's PDU."""
        room = self.max_pdu - 4 - (CIPHER_OVERHEAD if self.ciphered else 0)
        if n <= room:
            self._head(w, GET_RESPONSE, kind, invoke)
            if data_choice:
                w.byte(0)
            if stream is not None:
                stream.emit(w, 0, n)
            else:
                w.raw(self.long, 0, n)
            return w.n
        self._stream = stream
        if self.conformance & CONF_BLOCK_GET == 0:
            raise Reject(SERVICE_NOT_ALLOWED, PDU_TOO_LONG)
        self._long_len = n
        self._block_size = self.max_pdu - 12 - (CIPHER_OVERHEAD if self.ciphered else 0)
        self._invoke = invoke
        return self._send_block(1, w)

    def _send_block(self, number, w):
        # GetResponseWithDatablock: last | block-number | raw-data
        start = (number - 1) * self._block_size
        size = min(self._block_size, self._long_len - start)
        last = start + size >= self._long_len
        self._head(w, GET_RESPONSE, 2, self._invoke)
        w.byte(1 if last else 0)
        w.uint(number, 4)
        w.byte(0)
        w.length(size)
        if self._stream is not None:
            self._stream.emit(w, start, size)
        else:
            w.raw(self.long, start, start + size)
        self._block = number
        if last:
            self._long_len = 0
        return w.n

    def _get_next(self, req, off, end, invoke, w):
        if off + 4 > end:
            raise DecodeError("GET next", "truncated")
        number = X.uint(req, off, 4)
        if self._long_len == 0 or number != self._block:
            dar = 16 if self._long_len == 0 else 15  # no-long-get-in-progress / long-get-aborted
            self._long_len = 0
            self._head(w, GET_RESPONSE, 2, invoke)
            w.byte(1)
            w.uint(number, 4)
            w.byte(1)
            w.byte(dar)
            return w.n
        return self._send_block(number + 1, w)

    def _set(self, req, off, end, invoke, w):
        i, attr = self._target(req, off, end)
        if off + 10 > end:
            raise DecodeError("SET", "access selection")
        res = self._may_set(i, attr, req[off + 9])
        if res == C.OK:
            X.skip(req, off + 10, end)
            res = self.objects.set(i, attr, req, off + 10, end)
        self._head(w, SET_RESPONSE, 1, invoke)
        w.byte(res)
        return w.n

    def _may_set(self, i, attr, selection):
        if self.conformance & CONF_SET == 0 or self.state == PENDING:
            return C.DENIED
        if i < 0:
            return C.UNDEFINED if i == -1 else C.CLASS_INCONSISTENT
        if selection:
            return C.OTHER
        return C.OK if C.may_write(C.OBJECTS[i], attr, self.level) else C.DENIED

    # ---- SET and ACTION with block transfer of the request
    def _datablock(self, req, off, end):
        # DataBlock-SA: last-block (1) | block-number (4) | raw-data (octet string, to the end)
        if off + 6 > end:
            raise DecodeError("data block", "truncated")
        size, at = X.get_len(req, off + 5, end)
        if at + size != end:
            raise DecodeError("data block", "raw-data length")
        return req[off] != 0, X.uint(req, off + 1, 4), at, size

    def _gather(self, first, i, sel, req, at, size, number):
        """Take one block of a SET (sel: the attribute) or ACTION (sel: the
        method) into self.long: -1 when taken (the Data so far is
        self.long[0:self._in_len]), else the result that ends the transfer."""
        if first:
            if number != 1:
                return BLOCK_NUMBER_INVALID
            self._long_len = 0  # a GET in blocks is over: its buffer takes this Data
            self._in_obj = i
            self._in_sel = sel
            self._in_len = 0
        elif number != self._in_block + 1:
            return BLOCK_NUMBER_INVALID
        if self._in_len + size > LONG_MAX:
            return LONG_SET_ABORTED
        lw = self.w_long.reset(self.long)
        lw.n = self._in_len
        lw.raw(req, at, at + size)
        self._in_len = lw.n
        self._in_block = number
        return -1

    def _whole(self):
        # the gathered bytes are one Data and nothing after it
        try:
            return X.skip(self.long, 0, self._in_len) == self._in_len
        except DecodeError:
            return False

    def _set_block(self, req, off, end, invoke, w, first):
        i = attr = sel = 0
        if first:  # the attribute descriptor, an access selection, the first block
            i, attr = self._target(req, off, end)
            if off + 10 > end:
                raise DecodeError("SET", "access selection")
            sel = req[off + 9]
            off += 10
        last, number, at, size = self._datablock(req, off, end)
        if first:
            res = self._may_set(i, attr, sel)
            if res != C.OK:
                return self._set_last(w, invoke, res, number)
            self._in = SET_REQUEST
        elif self._in != SET_REQUEST:
            return self._set_last(w, invoke, NO_LONG_SET, number)
        res = self._gather(first, i, attr, req, at, size, number)
        if res < 0 and not last:
            self._head(w, SET_RESPONSE, 2, invoke)  # Set-Response-Datablock: send the next
            w.uint(number, 4)
            return w.n
        if res < 0:  # the whole Data: access was checked on the first block
            res = self.objects.set(self._in_obj, self._in_sel, self.long, 0, self._in_len) if self._whole() \
                else C.TYPE_UNMATCHED
        return self._set_last(w, invoke, res, number)

    def _set_last(self, w, invoke, res, number):
        self._in = 0
        self._head(w, SET_RESPONSE, 3, invoke)  # Set-Response-Last-Datablock
        w.byte(res)
        w.uint(number, 4)
        return w.n

    def _action_block(self, req, off, end, invoke, w, first):
        i = method = 0
        if first:  # the method descriptor and the first block (no parameters flag)
            i, method = self._target(req, off, end)
            off += 9
        last, number, at, size = self._datablock(req, off, end)
        if first:
            res = self._may_invoke(i, method)
            if res != C.OK:
                return self._action_result(w, invoke, res)
            self._in = ACTION_REQUEST
        elif self._in != ACTION_REQUEST:
            return self._action_result(w, invoke, NO_LONG_ACTION)
        res = self._gather(first, i, method, req, at, size, number)
        if res < 0 and not last:
            self._head(w, ACTION_RESPONSE, 4, invoke)  # Action-Response-Next-Pblock: send the next
            w.uint(number, 4)
            return w.n
        self._in = 0
        if res >= 0:
            return self._action_result(w, invoke, LONG_ACTION_ABORTED)
        i = self._in_obj
        method = self._in_sel
        if not self._whole():
            return self._action_result(w, invoke, C.TYPE_UNMATCHED)
        if C.OBJECTS[i][C.O_CLASS] == C.ASSOCIATION_LN and method == 1:
            return self._reply_to_hls(self.long, 0, self._in_len, invoke, w)
        return self._action_result(w, invoke, self.objects.action(i, method, self.long, 0, self._in_len))

    def _may_invoke(self, i, method):
        if self.conformance & CONF_ACTION == 0:
            return C.DENIED
        if i < 0:
            return C.UNDEFINED if i == -1 else C.CLASS_INCONSISTENT
        if C.OBJECTS[i][C.O_CLASS] == C.ASSOCIATION_LN and method == 1:
            return C.OK  # the reply to HLS: _reply_to_hls checks the state
        if self.state == PENDING or not C.may_invoke(C.OBJECTS[i], method, self.level):
            return C.DENIED
        return C.OK

    def _action_result(self, w, invoke, res):
        self._head(w, ACTION_RESPONSE, 1, invoke)
        w.byte(res)
        w.byte(0)  # no return parameters
        return w.n

    def _action(self, req, off, end, invoke, w):
        i, method = self._target(req, off, end)
        has_data = off + 9 < end and req[off + 9] == 1
        data = off + 10
        if has_data:
            X.skip(req, data, end)
        res = self._may_invoke(i, method)
        if res == C.OK and C.OBJECTS[i][C.O_CLASS] == C.ASSOCIATION_LN and method == 1:
            return self._reply_to_hls(req, data if has_data else end, end, invoke, w)
        if res == C.OK:
            res = self.objects.action(i, method, req, data if has_data else end, end)
        return self._action_result(w, invoke, res)

    def _reply_to_hls(self, req, off, end, invoke, w):
        self._head(w, ACTION_RESPONSE, 1, invoke)
        if self.state != PENDING:
            w.byte(C.DENIED)
            w.byte(0)
            return w.n
        at = w.n
        w.byte(C.OK)
        w.byte(1)  # return parameters: Get-Data-Result, data
        w.byte(0)
        if off < end and self._hls_reply(req, off, end, w):
            self.state = ASSOCIATED
            self.level = C.MANAGER
            return w.n
        self._release()
        self.ciphered = True  # this answer still goes ciphered; the association is gone
        w.n = at
        w.byte(C.OTHER)
        w.byte(0)
        return w.n


def profile(model, store, aca, random=random_bytes):
    """The DLMS profile of a meter: its convergence layer (MeterNode(dlms=...))
    over its xDLMS server (the layer's .server)."""
    from meter.dlms.cl import ClServer

    server = XdlmsServer(model, store, system_title(aca), random)
    return ClServer(server.handle, server=server, on_broadcast=server.broadcast.serve)
