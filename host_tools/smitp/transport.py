"""A transport to one meter as the application layer uses it: the concentrator's PLC port and the
hand-held unit's optical port each implement Link.exchange (their bytes, their timeouts); what
goes over it, the requests of smitp.client plain or under smitp.secure's rules, is run here.
"""

import time

from meter.app import security as sec
from smitp import client, secure
from smitp.errors import NoAnswer


def resend(send, wait, tries, stats):
    """send(), then wait() -> the answer or None (nothing came), `tries` times at most; returns the
    answer or None. The same bytes again only: a meter repeats its answer to a repeat."""
    for attempt in range(tries):
        if attempt:
            stats["retries"] += 1
        send()
        answer = wait()
        if answer is not None:
            return answer
    return None


def _plain(lsdu, ecc):
    """A plain request's answer is plain: an authenticated one that comes meanwhile answers an
    earlier request (late, on a slow line) and is not this one's."""
    return ecc == 0 and not sec.is_authenticated(lsdu[0])


class Link:
    """A transport to one meter. exchange(lsdu, ecc, answer_len, tries=None, accept=None) ->
    (answer ECC, answer LSDU): sends the same bytes `tries` times at most (None: its default)
    while no answer comes that accept(LSDU, ECC) takes (others are late answers to something
    else, dropped), then raises NoAnswer; pause(s) lets s seconds pass. stats: the shell's
    counters ("resyncs": the NACK-10s authenticated requests met)."""

    NoAnswer = NoAnswer

    def __init__(self, stats):
        self.stats = stats

    def exchange(self, lsdu, ecc, answer_len, tries=None, accept=None):
        raise NotImplementedError

    def pause(self, seconds):
        time.sleep(seconds)

    def call(self, op, meter=None, ecc=None):
        """The result of op, a smitp.client Request or procedure: plain, or with the session `meter`
        authenticated with `ecc` (None: each request's default)."""
        if meter is None:
            return client.run(op, lambda req: self.exchange(req.lsdu, 0, req.answer_max(False), accept=_plain)[1])
        return client.run(op, lambda req: self._sealed(meter, req, ecc))

    def secured(self, meter, rule, *args):
        """rule(meter, self, *args), one of smitp.secure's (exchange, sync, change_keys)."""
        return secure.counted(self.stats, meter, rule, self, *args)

    def _sealed(self, meter, req, ecc):
        attr, data = self.secured(meter, secure.exchange, req.attr, req.data, req.ecc(ecc), req.answer_max(True))
        return bytes((attr,)) + data
