# Input generators, one per entry point: gen(rng) -> script bytes (script.py),
# rng an xrng.Rng.
# Frames carry valid CRCs and addresses unless a mutation says otherwise, so
# that inputs get past the decoders into the services behind them.
from meter import attrs as A
from meter.optical import iec62056 as I
from meter.link import llc
from meter.link import mac
from meter.optical import modef as F
from meter.link import netmgmt as NM
from meter.app import security as S
from meter.phy import st7580 as ST
from meter import timers as T
from meter.dlms import cl as CL
import apdus
import frames
import lsdu as L
from script import Script

AIR = mac.aca_to_air(L.ACA)
NEIGHBOURS = tuple(mac.aca_to_air(L.ACA[0:5] + bytes((b,))) for b in (0x02, 0x03, 0x77, 0xFE))
SCA = b"\x01\x00\x00\x02\x07\x03"  # a logical address, on-air order


def _addr(rng, me_pct=70):
    k = rng.below(100)
    if k < me_pct:
        return AIR
    if k < me_pct + 15:
        return mac.BROADCAST
    if k < me_pct + 21:
        return rng.pick(NEIGHBOURS)
    if k < me_pct + 25:
        return SCA if rng.chance(50) else rng.bytes(5) + b"\x03"  # SCA form: its own (once registered) or another
    return rng.bytes(6)


def plc(rng, data, dsap, ecc, me_pct=70, shape_pct=30, odd_pct=25, wreck_pct=0):
    """A PLC frame around LLC data: addresses, repeater lists with this meter
    in them (shape_pct), HOP positions up to and beyond the list, uplink
    copies, odd CTL and HOP bits (odd_pct), every discipline; wreck_pct: now
    and then a body mutation, a wrong LT or CRC."""
    addr = _addr(rng, me_pct)
    reps = 0
    if rng.chance(shape_pct):
        reps = rng.span(1, mac.MAX_REPEATERS)
    esz = mac.entry_len(addr)  # 2-byte SCA entries under an SCA-form address
    route = bytearray()
    for _ in range(reps):
        entry = rng.pick(NEIGHBOURS) if rng.chance(70) else rng.bytes(6)
        route.extend(entry[3:5] if esz == 2 and rng.chance(90) else entry[0:esz])
    odd = rng.chance(odd_pct)
    uplink = odd and rng.chance(25)
    pos = rng.below(16) if odd and rng.chance(75) else reps
    if reps and rng.chance(25):  # this meter as repeater i + 1, often its turn to repeat
        i = rng.below(reps)
        route[i * esz:i * esz + esz] = AIR if esz == 6 else SCA[3:5]
        if rng.chance(60):
            uplink = rng.chance(30)
            pos = i + 2 if uplink else i
    hop = (0x80 if uplink else 0) | pos
    if odd and rng.chance(10):
        hop |= 0x10 << rng.below(3)
    disc = mac.DISC_RA7 if rng.chance(40) else rng.below(16)
    ctl = (disc << 4) | (((reps - 1) << 1) if reps else 1)
    if odd and rng.chance(10):
        ctl = rng.below(256)
    control = llc.control(rng.chance(50)) if not odd or rng.chance(80) else rng.below(256)
    body = frames.plc_body(addr, ctl, route, hop, control, llc.lsap(dsap, ecc), data)
    lt = None
    if rng.chance(wreck_pct):
        k = rng.below(4)
        if k == 0:
            body = bytearray(L.mutate(rng, body, 1))
        elif k == 1:
            lt = rng.below(256)
        elif k == 2:
            f = frames.plc_finish(body)
            return L.mutate(rng, f)  # CRC broken or length off
        else:
            body.extend(rng.bytes(rng.span(100, 200)))  # longer than any frame
    return frames.plc_finish(body, lt)


def _nm_data(rng):
    k = rng.below(9)
    if k == 0:
        shift = rng.pick((0, 1, 2, 8, 16, 17, 0xFF))
        d = bytes((A.ADDRESS_REQ, rng.pick((0, 1, 2, 0xFF)), rng.number(1), rng.number(1), shift))
    elif k == 1:
        d = bytes((A.TCT_SET_REQ, rng.number(1)))
    elif k == 2:
        d = bytes((A.REQADDR_REQ, rng.below(3), rng.number(1), rng.number(1), rng.below(9)))
    elif k == 3:
        d = bytes((A.REGISTER_REQ,)) + (SCA if rng.chance(60) else rng.pick((mac.BROADCAST, rng.bytes(6))))
    elif k == 4:
        d = bytes((A.DEREGISTER_REQ,))
    elif k == 5:
        d = bytes((A.STATUS_REQ,))
    elif k == 6:
        d = bytes((A.PING_REQ,)) + rng.bytes(rng.pick((0, 1, 8, 15, 16, 17, rng.below(120))))
    elif k == 7:
        d = bytes((A.ADDRESS_RESP,)) + rng.bytes(NM.RECORD_LEN)
    else:
        d = bytes((rng.below(256),)) + rng.bytes(rng.below(20))
    if rng.chance(15):
        d = L.mutate(rng, d, 1)
    return d if d else b"\x00"


def _address_resp(rng):
    """An uplink ADDRESS.RESP from a neighbour: what a REQADDR relay collects."""
    rec = bytes((A.ADDRESS_RESP,)) + mac.aca_to_air(rng.pick(NEIGHBOURS)) + rng.bytes(6)  # ACA, natural order
    if rng.chance(10):
        rec = L.mutate(rng, rec, 1)
    src = rng.pick(NEIGHBOURS)
    return frames.plc(src, b"", 0, True, 1, False, llc.lsap(llc.DSAP_NM, 0), rec or b"\x5b")


def _quality(rng, s):
    if rng.chance(30):
        s.quality(rng.number(1), rng.number(1), rng.number(1), rng.below(3))


def _wait(rng):
    return rng.pick((0, 1, 19, 20, 21, 250, 1000, NM.RELAY_WINDOW_MS, NM.RELAY_WINDOW_MS + 1, rng.below(20000),
                     rng.below(1 << 20)))


def gen_mac(rng):
    s = Script()
    if rng.chance(40):
        s.lmon(L.lmon_state(rng))
    _quality(rng, s)
    for _ in range(rng.span(1, 2)):
        k = rng.below(100)
        dsap = 0 if rng.chance(65) else rng.pick((llc.DSAP_NM, 1, 3, rng.below(16)))
        e = 0 if rng.chance(70) else rng.below(16)
        if k < 45:
            data = L.plain(rng)
        elif k < 60:
            data, e = L.sealed(rng, rng.below(1000))
        elif k < 70:
            data = _nm_data(rng)
        else:
            data = rng.bytes(rng.pick((0, 1, rng.below(129), rng.pick(L.LIMITS))))
        s.data(plc(rng, data, dsap, e, me_pct=60, shape_pct=50, wreck_pct=15))
        if rng.chance(10):
            s.wait(_wait(rng))
    return s.bytes()


def _sec(rng):
    s = Script()
    lmon = L.lmon_state(rng)
    s.lmon(lmon)
    if rng.chance(30):  # NACK-10 and CHL.RESP are rate-limited: let tokens come back
        s.wait(T.AUTH_NACK_REFILL_MS * rng.span(1, 4))
    if rng.chance(10):  # a whole key change: stage, then activate with the new keys
        for activate in (False, True):
            data, e = L.key_change(rng, L.mon_for(rng, lmon), activate=activate)
            s.data(plc(rng, data, llc.DSAP_APP, e, me_pct=90, shape_pct=10, odd_pct=2))
            lmon += 1
    for _ in range(1 if rng.chance(75) else rng.span(2, 3)):
        data, e = L.sealed(rng, lmon)
        frame = plc(rng, data, llc.DSAP_APP if rng.chance(92) else rng.below(16), e, me_pct=72, shape_pct=15,
                    odd_pct=4)
        s.data(frame)
        if rng.chance(15):
            s.data(frame)  # a repeat: the cached answer
        lmon = min(lmon + 1, L.LMON_MAX)
    return s.bytes()


gen_sec_keys = _sec
gen_sec_nokeys = _sec


def gen_app(rng):
    s = Script()
    lmon = rng.below(1000)
    s.lmon(lmon)
    for _ in range(rng.span(1, 3)):
        if rng.chance(60):
            data, e = L.plain(rng, mutate_pct=20), 0
        else:
            attr = rng.pick(L.SERVICES)
            data, e = L.sealed(rng, lmon, attr, lmon + 1 if rng.chance(95) else None)
            lmon += 1
        s.data(plc(rng, data, llc.DSAP_APP, e, me_pct=85, shape_pct=15, odd_pct=3))
    return s.bytes()


def gen_nm(rng):
    s = Script()
    _quality(rng, s)
    for _ in range(rng.span(1, 5)):
        k = rng.below(100)
        if k < 65:
            s.data(plc(rng, _nm_data(rng), llc.DSAP_NM, rng.below(16) if rng.chance(10) else 0, me_pct=55,
                       shape_pct=25, wreck_pct=3))
        elif k < 85:
            s.data(_address_resp(rng))
        else:
            s.wait(_wait(rng))
        if rng.chance(10):
            _quality(rng, s)
    if rng.chance(50):
        s.wait(_wait(rng))
    return s.bytes()


# ---- ST7580 local port

_CONFIRMS = (ST.CMD_MIB_WRITE_CNF, ST.CMD_MIB_READ_CNF, ST.CMD_MIB_ERASE_CNF, ST.CMD_PING_CNF, ST.CMD_PHY_DATA_CNF,
             ST.CMD_DL_DATA_CNF, ST.CMD_SS_DATA_CNF, ST.CMD_RESET_CNF)
_ERRORS = (ST.CMD_MIB_WRITE_ERR, ST.CMD_MIB_READ_ERR, ST.CMD_MIB_ERASE_ERR, ST.CMD_PHY_DATA_ERR,
           ST.CMD_DL_DATA_ERR, ST.CMD_SS_DATA_ERR, ST.CMD_RESET_ERR)


def _indication(rng):
    # PHY_Data.indication: 4 header bytes (modulation, SNR, ..) | PHY payload
    k = rng.below(10)
    if k < 6:
        payload = plc(rng, L.plain(rng, A.READ_REQ if rng.chance(50) else None, 10), 0, 0, me_pct=80, shape_pct=10,
                      odd_pct=5)
    elif k < 8:
        payload = plc(rng, _nm_data(rng), llc.DSAP_NM, 0, me_pct=60)
    else:
        payload = rng.bytes(rng.below(252))
    head = bytes((rng.below(256) if rng.chance(20) else ST.MOD_BPSK_CODED, rng.below(256), 0, 0))
    return (head + payload)[0:ST.MAX_DATA] if rng.chance(95) else head[0:rng.below(4)]


def _local_message(rng, last):
    k = rng.below(100)
    if k < 30:
        return frames.local(ST.CMD_PHY_DATA_IND, _indication(rng))
    if k < 37:
        return frames.local(ST.CMD_RESET_IND, bytes((rng.pick((0, 1, 2, ST.RESET_NEEDS_CONFIG, rng.below(256))),))
                            if rng.chance(90) else b"")
    if k < 47:
        return frames.local(rng.pick(_CONFIRMS), rng.bytes(rng.pick((0, 1, 2, 14, rng.below(30)))))
    if k < 52:
        return frames.local(rng.pick(_ERRORS), bytes((rng.pick((ST.ERR_WPL, ST.ERR_WPV, ST.ERR_BUSY, ST.ERR_GENERAL)),))
                            if rng.chance(85) else b"")
    if k < 55:
        about = rng.pick((ST.CMD_PHY_DATA_REQ, ST.CMD_MIB_WRITE_REQ, rng.below(256)))
        return frames.local(ST.CMD_SYNTAX_ERR, bytes((about,)) if rng.chance(70) else b"")
    if k < 67:
        return bytes((ST.STATUS_MSG, rng.pick((0, ST.STATUS_TX, ST.STATUS_RX, ST.STATUS_BUSY, 0x18, rng.below(256)))))
    if k < 78:
        return bytes((rng.pick((ST.ACK, ST.NAK)),))
    if k < 83 and last:
        return bytes((ST.STX_REPEAT,)) + last[1:]
    if k < 88:
        return frames.local(rng.below(256), rng.bytes(rng.below(20)), rng.pick((ST.STX, ST.STX_REPEAT)),
                            None, rng.pick((1, -1, 0x100)))
    if k < 92:
        d = rng.bytes(rng.below(20))
        return frames.local(rng.below(256), d, ST.STX, len(d) + rng.span(1, 255))
    return rng.bytes(rng.span(1, 8))


def _handshake(s, confirm):
    # the modem plays along with one request: T_REQ seen after the gap, status
    # free, ACK of the frame, then its confirm
    s.wait(11)
    s.data(bytes((ST.STATUS_MSG, 0)))
    s.data(bytes((ST.ACK,)))
    s.data(frames.local(confirm, b"\x00" if confirm == ST.CMD_PHY_DATA_CNF else b""))


def _modem_session(rng, s):
    """A modem that restarts, is configured (two MIB writes), then hands the
    meter a frame and confirms its answer: the driver's whole happy path."""
    s.data(frames.local(ST.CMD_RESET_IND, bytes((ST.RESET_NEEDS_CONFIG,))))
    _handshake(s, ST.CMD_MIB_WRITE_CNF)
    _handshake(s, ST.CMD_MIB_WRITE_CNF)
    req = plc(rng, L.plain(rng, A.READ_REQ, 10), 0, 0, me_pct=90, shape_pct=20, odd_pct=0)
    s.data(frames.local(ST.CMD_PHY_DATA_IND, bytes((ST.MOD_BPSK_CODED, 20, 0, 0)) + req))
    _handshake(s, ST.CMD_PHY_DATA_CNF)


def gen_st7580(rng):
    """A byte stream from the modem, cut in chunks at random places, with time
    passing between them (sometimes longer than TIC) and host requests; now
    and then first a modem that plays along."""
    s = Script()
    if rng.chance(25):
        _modem_session(rng, s)
    stream = bytearray()
    last = None
    for _ in range(rng.span(1, 6)):
        m = _local_message(rng, last)
        if m[0] == ST.STX:
            last = m
        stream.extend(m)
    p = 0
    while p < len(stream):
        k = rng.below(100)
        if k < 10:
            s.request(rng.below(256))
        elif k < 35:
            s.wait(rng.pick((0, 1, 5, 10, 11, 40, 41, 200, 201, 4001, rng.below(5000))))
        n = len(stream) - p if rng.chance(50) else rng.span(1, len(stream) - p)
        s.data(stream[p:p + n])
        p += n
    if rng.chance(60):
        s.wait(rng.pick((11, 250, 4100, rng.below(10000))))
    return s.bytes()


# ---- optical port: IEC 62056-21 sign-on, mode C, mode F

def _mode_f_frame(rng, lmon):
    k = rng.below(100)
    ctl = 0 if rng.chance(90) else rng.pick((F.CTL_METER, rng.below(256)))
    if k < 65:
        dsap = llc.DSAP_FMODE_1
        if rng.chance(55):
            data, e = L.plain(rng), 0
        else:
            data, e = L.sealed(rng, lmon)
    elif k < 90:
        dsap = llc.DSAP_FMODE_3
        data, e = _local_config(rng, lmon)
    else:
        dsap = rng.below(16)
        data, e = L.plain(rng), rng.below(16)
    if rng.chance(5):
        return frames.mode_f(ctl, llc.lsap(dsap, e), data, rng.below(256), rng.pick((0, 1)))
    if rng.chance(3):
        return frames.mode_f(ctl, llc.lsap(dsap, e), data, None, 1)
    return frames.mode_f(ctl, llc.lsap(dsap, e), data)


def _local_config(rng, lmon):
    # READ / WRITE of the local provisioning items (meter/optical/modef.py LocalConfig)
    items = (0x0001, F.ITEM_OPT_BAUD, F.ITEM_OPT_ADDRESS)  # 0x0001: the keys, before the key-change procedure
    item = rng.pick(items) if rng.chance(90) else rng.number(2)
    if rng.chance(40):
        data = item.to_bytes(2, "big")
        attr = A.READ_REQ
    else:
        attr = A.WRITE_REQ
        if item == 0x0001:
            v = rng.bytes(32)
        elif item == F.ITEM_OPT_BAUD:
            v = bytes((rng.pick((0, 5, 6, 7, 0xFF)),))
        else:
            v = rng.pick((b"METER-7", b"", b"/?!", rng.bytes(16)))
            v = (v + bytes(16))[0:16]
        data = item.to_bytes(2, "big") + v
    if rng.chance(15):
        data = L.mutate(rng, data)
    if rng.chance(20):
        return bytes((attr,)) + data, 0
    mon = L.mon_for(rng, lmon)
    e = rng.pick((S.ECC_CTR_WRITE, S.ECC_ECB_WRITE, S.ECC_CTR_READ, S.ECC_NONE))
    data = L.ecb_ready(rng, data, e)
    lsdu = L.seal(attr + 100, data, mon, e)
    if lsdu is None:
        lsdu = bytes((attr + 100,)) + data + rng.bytes(S.AUTH_OVERHEAD)
    return lsdu, e


def _chunks(rng, s, stream, gaps):
    p = 0
    while p < len(stream):
        n = len(stream) - p if rng.chance(60) else rng.span(1, len(stream) - p)
        s.data(stream[p:p + n])
        p += n
        if rng.chance(15):
            s.wait(rng.pick(gaps))


def gen_modef(rng):
    """Mode F frames to a session that has signed on (the session restarts when one ends)."""
    s = Script()
    lmon = rng.below(1000)
    s.lmon(lmon)
    stream = bytearray()
    for _ in range(rng.span(1, 3)):
        k = rng.below(100)
        if k < 85:
            stream.extend(_mode_f_frame(rng, lmon))
            lmon += 1
        elif k < 90:
            stream.extend(F.BREAK)
        elif k < 95:
            stream.extend(rng.bytes(rng.span(1, 12)))
        else:
            stream.extend(bytes((F.SOF,)) + rng.bytes(rng.below(8)))
    _chunks(rng, s, stream, (1, 199, 201, 4999, 5001, rng.below(8000)))
    return s.bytes()


def _sign_on(rng):
    k = rng.below(10)
    if k < 6:
        return b"/?!\r\n"
    if k < 8:
        addr = rng.pick((b"METER-7", b"", rng.bytes(rng.below(20))))
        return b"/?" + addr + b"!\r\n"
    return L.mutate(rng, b"/?!\r\n")


def _option(rng):
    v = rng.pick((b"F", b"F", b"F", b"0", b"0", b"1", bytes((rng.below(256),))))
    y = v if rng.chance(85) else rng.pick((b"0", b"F", b"1"))
    z = rng.pick((b"0", b"3", b"4", b"5", b"5", b"6", b"9", bytes((rng.below(256),))))
    m = b"\x06" + v + z + y + b"\r\n"
    return m if rng.chance(90) else L.mutate(rng, m)


def gen_optical(rng):
    """A sign-on with its timings, an option select, then mode F frames, a
    break, noise, parity errors (8th bit) and gaps."""
    s = Script()
    lmon = rng.below(1000)
    s.lmon(lmon)
    for _ in range(rng.span(1, 2)):
        _chunks(rng, s, _sign_on(rng), (1, 1501, 10))
        s.wait(rng.pick((I.airtime_ms(5, 300) + 50, 51, 49, 1000, 1600, rng.below(3000))))
        if rng.chance(85):
            _chunks(rng, s, _option(rng), (1, 1501))
        for _ in range(rng.below(4)):
            k = rng.below(100)
            if k < 70:
                m = _mode_f_frame(rng, lmon)
                lmon += 1
            elif k < 80:
                m = F.BREAK
            elif k < 90:
                m = bytes(rng.below(256) | (0x80 if rng.chance(50) else 0) for _ in range(rng.span(1, 8)))
            else:
                m = b"\x00"
            _chunks(rng, s, m, (1, 201, 1300, 5001))
        if rng.chance(50):
            s.wait(rng.pick((20, 1200, 1300, 5001, 6000, rng.below(1 << 22))))
    return s.bytes()


def gen_dlms(rng):
    """A DLMS session (apdus.py) in CLPDUs on DSAP_DLMS; broadcasts to all, class S."""
    s = Script()
    s.lmon(0)  # the target's counter floors back below apdus.IC_BASE
    xid = rng.below(256)
    dlms = llc.lsap(llc.DSAP_DLMS, 0)
    for apdu, to_all in apdus.session(rng):
        xid = (xid + 1) & 0xFF
        if to_all:
            clpdu = bytes((CL.DATA_LAST, xid, 0)) + apdu[0:CL.SEG_MAX]
            s.data(frames.plc(mac.BROADCAST, b"", mac.DISC_S, False, 0, False, dlms, clpdu))
            continue
        for clpdu in apdus.clpdus(rng, apdu, xid):
            if rng.chance(92):
                s.data(frames.plc(AIR, b"", mac.DISC_RA7, False, 0, False, dlms, clpdu))
            else:
                s.data(plc(rng, clpdu, llc.DSAP_DLMS, 0, me_pct=80, shape_pct=10, odd_pct=10, wreck_pct=10))
        if rng.chance(5):
            s.wait(rng.pick((1000, CL.TIMEOUT_MS + 1)))
    return s.bytes()


GENERATORS = {
    "mac": gen_mac,
    "sec_keys": gen_sec_keys,
    "sec_nokeys": gen_sec_nokeys,
    "app": gen_app,
    "nm": gen_nm,
    "st7580": gen_st7580,
    "optical": gen_optical,
    "modef": gen_modef,
    "dlms": gen_dlms,
}
# the order runs go in (a MicroPython dict keeps none)
ENTRIES = ("mac", "sec_keys", "sec_nokeys", "app", "nm", "st7580", "optical", "modef", "dlms")
