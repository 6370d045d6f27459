# State checks after a run of inputs: the meter still does its job. Each
# returns a list of problems (empty: fine).
#   - a plain READ of the serial number and the ACA gives the right answer
#   - an authenticated READ at LMON + 1 is accepted and its answer opens
#   - the store is intact: a meter rebooted from a copy of it has the same
#     keys, an LMON not below the live one and no LMON fault, answers both
#     READs, and every record of every table reads back whole
#   - the shared buffers kept their size (also checked after each input)
from meter import attrs as A
from meter.optical import iec62056 as I
from meter.link import llc
from meter.link import mac
from meter.optical import modef as F
from meter.model import registers as R
from meter.app import security as S
from meter.phy import st7580 as ST
from meter import timers as T
from meter.compat import ticks_add
from meter.app.lmon import LMON_MAX
import frames
import lsdu as L
import targets

SERIAL = b"SN-SIM" + bytes(10)
READ_IDS = b"\x00\x10\x00\x11"  # SERIAL, ACA (meter/model/registers.py)
EXPECT = bytes((A.READ_RESP,)) + SERIAL + L.ACA
AIR = mac.aca_to_air(L.ACA)


def _frame(data, e=0):
    return frames.plc(AIR, b"", mac.DISC_RA7, False, 0, False, llc.lsap(llc.DSAP_APP, e), data)


def _answer(node, n):
    f = mac.Frame()
    mac.decode(f, node.out, n)
    return bytes(node.out[f.data:f.data + f.data_len]), f.ecc


def plain_read(t):
    req = _frame(bytes((A.READ_REQ,)) + READ_IDS)
    n = t.node.on_phy(req, len(req), t.now, None)
    if not n:
        return ["plain READ of serial and ACA: no answer"]
    data, _e = _answer(t.node, n)
    if data != EXPECT:
        return ["plain READ of serial and ACA: %s" % data.hex()]
    return []


def auth_read(t):
    s = t.secure
    if s is None or not t.keyed:
        return []
    keys = s.keystore.keys()
    if keys is None:
        return ["keys lost"]
    mon = s.lmon.value
    if mon >= LMON_MAX:
        return []  # used up: nothing can be accepted any more, by design
    e = S.ECC_CTR_READ
    req = _frame(L.seal(A.READ_REQ + 100, READ_IDS, mon + 1, e, keys), e)
    n = t.node.on_phy(req, len(req), t.now, None)
    if not n:
        return ["authenticated READ at LMON %d + 1: no answer" % mon]
    data, ecc = _answer(t.node, n)
    if data[0] != A.READ_RESP + 100:
        return ["authenticated READ at LMON %d + 1: %s" % (mon, data.hex())]
    try:
        plain, _when = S.open_(keys, L.ACA, data, mon + 1, ecc)
    except Exception as ex:
        return ["authenticated READ answer does not open: %s" % ex]
    if plain != EXPECT[1:]:
        return ["authenticated READ answer: %s" % plain.hex()]
    if s.lmon.value != mon + 1:
        return ["authenticated READ left LMON at %d, not %d" % (s.lmon.value, mon + 1)]
    return []


def sizes(t):
    now = t.sizes()
    return [] if now == t.base else ["buffer sizes %s, were %s" % (now, t.base)]


def _tables(model):
    out = []
    for reg in sorted(model.tables):
        tb = model.tables[reg]
        size = R.BY_ID[reg][R.R_SIZE]
        buf = bytearray(size)
        if tb.end < tb.first:
            out.append("table 0x%04x: end %d before first %d" % (reg, tb.end, tb.first))
            continue
        for n in range(tb.first, tb.end):
            tb.read_into(n, buf, 0)
            if len(buf) != size:
                out.append("table 0x%04x record %d reads %d bytes, not %d" % (reg, n, len(buf), size))
                break
    return out


def store(t):
    live = t.secure
    b = targets.Node(t.keyed, targets.copy_store(t.sim.store), t.sim.now())
    out = []
    if live is not None:
        lm = b.secure.lmon
        if lm.fault:
            out.append("rebooted LMON in fault")
        elif lm.value < live.lmon.value:
            out.append("rebooted LMON %d below the live %d" % (lm.value, live.lmon.value))
        k0, k1 = live.keystore.keys(), b.secure.keystore.keys()
        if (k0 is None) != (k1 is None) or k0 is not None and (
                k0.write._key != k1.write._key or k0.read._key != k1.read._key):
            out.append("rebooted keys differ from the live ones")
    out += ["rebooted: " + p for p in plain_read(b) + auth_read(b)]
    out += _tables(b.sim.model) + _tables(t.sim.model)
    return out


def node(t):
    return _each(t, (sizes, plain_read, auth_read, store))


_AARQ = (b"\x60\x1d\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01"  # the Green Book's public AARQ
         b"\xbe\x10\x04\x0e\x01\x00\x00\x00\x06\x5f\x1f\x04\x00\x00\x7e\x1f\x04\xb0")
_GET_CLOCK = b"\xc0\x01\xc1\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00"


def dlms_get(t):
    """A public association and a GET of the clock through the convergence layer."""
    from meter.dlms import cl as CL

    out = []
    for xid, apdu, want in ((0xE1, _AARQ, b"\xa2\x03\x02\x01\x00"), (0xE2, _GET_CLOCK, b"\xc4\x01\xc1\x00\x09\x0c")):
        clpdu = bytes((CL.DATA_LAST, xid, 0)) + apdu
        req = frames.plc(AIR, b"", mac.DISC_RA7, False, 0, False, llc.lsap(llc.DSAP_DLMS, 0), clpdu)
        n = t.node.on_phy(req, len(req), t.now, None)
        if not n:
            out.append("DLMS %s: no answer" % apdu[:3].hex())
            break
        data, _e = _answer(t.node, n)
        if data[0:3] != bytes((CL.DATA_LAST, xid, 0)) or want not in data:
            out.append("DLMS %s: %s" % (apdu[:3].hex(), data.hex()))
            break
    return out


def dlms(t):
    return _each(t, (sizes, plain_read, auth_read, store, dlms_get))


def _each(t, checks):
    out = []
    for c in checks:
        try:
            out += c(t)
        except Exception as e:
            out.append("%s raised %s: %s" % (c.__name__, type(e).__name__, e))
    return out


def modem(t):
    """Back to idle (or as idle as the modem's silence allows), then a
    PHY_Data.indication after a TIC gap is acknowledged and reaches the node."""
    d, port = t.drv, t.port
    for _ in range(400):
        w = d.next_timeout(t.now)
        if w < 0:
            break
        t.now = ticks_add(t.now, w + 1)
        port.step(0, t.now)
    t.now = ticks_add(t.now, 100)
    port.step(0, t.now)
    st = t.meter.node.stats
    rx, served = st["rx"], st["served"]
    req = _frame(bytes((A.READ_REQ,)) + READ_IDS)
    ind = frames.local(ST.CMD_PHY_DATA_IND, b"\x04\x14\x00\x00" + req)
    t.wrote = bytearray()
    port.buf[0:len(ind)] = ind
    port.step(len(ind), t.now)
    out = []
    if t.wrote[0:1] != bytes((ST.ACK,)):
        out.append("PHY_Data.indication not acknowledged: %s" % bytes(t.wrote).hex())
    if st["rx"] != rx + 1 or st["served"] != served + 1:
        out.append("PHY_Data.indication not served by the node")
    return out + _each(t, (sizes,)) + node(t.meter)


def _mode_f_read(session, now):
    session.receive(frames.mode_f(0, llc.lsap(llc.DSAP_FMODE_1, 0), bytes((A.READ_REQ,)) + READ_IDS), now)
    out = session.data_to_send()
    want = frames.mode_f(F.CTL_METER, llc.lsap(llc.DSAP_FMODE_1, 0), EXPECT)
    return [] if out == want else ["mode F READ of serial and ACA: %s" % (out.hex() if out else None)]


def modef(t):
    t._start()
    return _mode_f_read(t.session, t.now) + _each(t, (sizes,)) + node(t.meter)


def optical(t):
    """Back at 300 Bd idle (sessions and locks end), then a sign-on is answered."""
    port = t.port
    out = []
    for _ in range(40):
        if port.state == I.IDLE:
            break
        w = port.next_timeout(t.now)
        if w < 0 and port.state != I.SESSION:
            out.append("optical port stuck in %s" % I.STATE_NAMES[port.state])
            break
        t.now = ticks_add(t.now, max(w, T.OPT_F_IDLE_MS) + 1)
        port.poll(t.now)
        port.data_to_send()
    if port.state == I.IDLE:
        port.receive(b"/?!\r\n", t.now)
        t.now = ticks_add(t.now, T.OPT_REACTION_MS)
        port.poll(t.now)
        ident = port.data_to_send()
        if not ident or not ident.startswith(b"/" + I.MANUFACTURER.encode()):
            out.append("sign-on not answered: %s" % ident)
    elif not out:
        out.append("optical port not back to idle: %s" % I.STATE_NAMES[port.state])
    return out + _each(t, (sizes,)) + node(t.meter)


CHECKS = {
    "st7580": modem,
    "optical": optical,
    "modef": modef,
    "dlms": dlms,
}


def run(name, t):
    """The state checks of entry `name` on target t."""
    fn = CHECKS.get(name, node)
    try:
        return fn(t)
    except Exception as e:
        return ["state checks raised %s: %s" % (type(e).__name__, e)]
