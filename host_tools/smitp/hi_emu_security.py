"""The LMON-protected security a Meters and More modem runs itself (Microchip's
profile: keys in MIB 8, LMON in MIB 10, both lost at every reset), for the HI
emulator (smitp.hi_emu, security="modem").

The receive rules and the codec are the firmware's own (meter.app.auth.SecureLayer
over the modem's RAM), so the modem opens and seals exactly as a meter would,
except DATE-TIME, which the modem forces to 0 (as Microchip's does). The
host sees the plain request and answers it in clear. A request that needs the
host is opened twice: once to learn the plain request, after which the
modem's state is put back, and once more with the host's answer, for real.
Challenges, NACK-10, repeats answered from the cache and refusals the modem
makes alone never reach the host."""

from meter import attrs as A
from meter.app import security as S
from meter.app.auth import SecureLayer
from meter.app.lmon import KeyStore, LmonCounter, ResponseCache
from meter.app.services import Responder
from meter.storage import Store


class _Capture(Responder):
    """The host, as the first opening sees it: the plain request is kept."""

    def __init__(self):
        Responder.__init__(self)
        self.request = None

    def serves(self, _attr):
        return True  # the host decides (it NACKs what it does not serve)

    def handle(self, buf, off, n, room, grant):
        self.request = bytes(buf[off:off + n])
        return self.ack(False)


class _Replay(Responder):
    """The host, as the second opening sees it: its answer."""

    def __init__(self, answer):
        Responder.__init__(self)
        self.answer = bytes(answer)

    def serves(self, _attr):
        return True

    def handle(self, buf, off, n, room, grant):
        if len(self.answer) > room:
            return self.refuse(A.NACK_BAD_LENGTH)
        self.resp[0:len(self.answer)] = self.answer
        self.changed = self.answer[:1] == bytes((A.ACK_A,))
        return len(self.answer)


class _RamStore(Store):
    """The modem's RAM (meter.storage.Store without a path), with snapshots."""

    def snapshot(self):
        ram = self._ram
        assert ram is not None  # a store without a path keeps its records in RAM
        return dict(ram)

    def restore(self, snapshot):
        self._ram = dict(snapshot)


class ModemSecurity:
    def __init__(self):
        self.store = _RamStore()  # nothing survives a reset
        self.lmon_next = 0

    def _lmon(self):
        return LmonCounter(self.store, reserve=1)  # no reserve: the record is the value

    def set_keys(self, value):
        return KeyStore(self.store).provision(bytes(value[:16]), bytes(value[16:32]))

    def set_lmon(self, value):
        return self._lmon().set(int.from_bytes(bytes(value), "little"))

    def lmon(self):
        return self._lmon().value

    @staticmethod
    def handles(attr):
        return attr == A.CHL_REQ or S.is_authenticated(attr)

    def _layer(self, aca, app):
        return SecureLayer(aca, app, self._lmon(), KeyStore(self.store), ResponseCache(self.store), lambda: 0)

    def open(self, aca, lsdu, ecc, limit, now_ms):
        """-> ("host", plain request, context for seal()) when the host must
        answer, or ("modem", answer LSDU, its ECC) when the modem answers alone
        (an empty LSDU: no answer)."""
        before = self.store.snapshot()
        app = _Capture()
        layer = self._layer(aca, app)
        size, answer_ecc = layer.handle(bytearray(lsdu), 0, len(lsdu), ecc, limit, now_ms)
        if app.request is None:
            return "modem", bytes(layer.resp[:size]), answer_ecc
        self.lmon_next = self.lmon()  # what the request commits: reported to the host before it
        self.store.restore(before)  # the host's answer decides: open it again then
        return "host", app.request, (bytes(aca), bytes(lsdu), ecc, limit, now_ms)

    def seal(self, context, answer):
        """The host's plain answer to the request of context, sealed: (LSDU, ECC)."""
        aca, lsdu, ecc, limit, now_ms = context
        layer = self._layer(aca, _Replay(answer))
        size, answer_ecc = layer.handle(bytearray(lsdu), 0, len(lsdu), ecc, limit, now_ms)
        return bytes(layer.resp[:size]), answer_ecc
