# Application LSDUs (ATTR | DATA) for the fuzzer: the DATA of every request
# ATTR in the layouts of meter/app/services.py and meter/app/tables.py, mostly well-formed,
# then mutated; authenticated variants sealed with the test keys by the
# firmware's own codec (meter/app/security.py) at a chosen MON.
from meter import attrs as A
from meter.app import keychange as KC
from meter.model import registers as R
from meter.app import security as S
from meter.app import tables as TB
from meter.app.lmon import LMON_MAX
import meterkit

ACA = meterkit.ACA
KEYS = S.Keys(meterkit.K1, meterkit.K2)
WRONG_KEYS = S.Keys(meterkit.K2, meterkit.K1)
NOW = meterkit.NEW_YEAR_2026  # the test meter's clock, near enough

IDS = tuple(row[R.R_ID] for row in R.TABLE)
TABLES = tuple(row[R.R_ID] for row in R.TABLE if row[R.R_ENC] == R.ENC_TABLE)
WRITABLE = tuple(row[R.R_ID] for row in R.TABLE if row[R.R_WRITE] != R.ACC_NONE and row[R.R_ENC] != R.ENC_TABLE)
WRITABLE_TABLES = tuple(row[R.R_ID] for row in R.TABLE if row[R.R_WRITE] != R.ACC_NONE
                        and row[R.R_ENC] == R.ENC_TABLE)
SERVICES = (A.READ_REQ, A.WRITE_REQ, A.READTAB_SEL_REQ, A.READTAB_REQ, A.WRITETAB_REQ, A.SETTAB_REQ,
            A.RESETTAB_REQ, A.COMMAND, A.DATASPONT, A.BUFF_SELECT_REQ, A.GETTAB_REQ, A.SETIC_REQ,
            A.WRITETABIC_REQ)
# answers and NACKs a meter never expects, sent to it anyway
ANSWERS = (A.READ_RESP, A.READTAB_SEL_RESP, A.READTAB_RESP, A.BUFF_SELECT_RESP, A.GETTAB_RESP, A.CHL_RESP,
           A.NACK_RESP, A.ACK_A, A.NACK_A, A.ACK_A_AUTH, A.NACK_A_AUTH, S.ATTR_NACK_B_AUTH, A.ACK_B, A.NACK_B,
           A.ACK_B_AUTH)
# lengths around the codec's and the disciplines' limits (LSDU bytes)
LIMITS = (0, 1, 2, 15, 16, 17, 18, 19, 20, 31, 32, 33, 40, 47, 48, 60, 63, 64, 80, 90, 95, 100, 111, 112,
          113, 120, 126, 127, 128, 129, 140)
# writes need ECB with the write key (meter/app/auth.py): it comes up most
ECCS = (S.ECC_ECB_WRITE, S.ECC_ECB_WRITE, S.ECC_ECB_WRITE, S.ECC_NONE, S.ECC_CTR_READ, S.ECC_ECB_READ,
        S.ECC_CTR_WRITE)


def _size(reg_id):
    row = R.BY_ID.get(reg_id)
    return row[R.R_SIZE] if row else 4


def reg_id(rng):
    k = rng.below(20)
    if k < 14:
        return rng.pick(IDS)
    if k < 17:
        return rng.pick(TABLES)
    return rng.number(2)


def _default(reg_id):
    d = R.DEFAULTS.get(reg_id)
    n = _size(reg_id)
    if d is None:
        return None
    if isinstance(d, int):
        return d.to_bytes(n, "big")
    if isinstance(d, str):
        return d.encode() + bytes(n - len(d))
    return d


def value(rng, reg_id):
    """A value for the register: its default, a time near now, or boundaries."""
    n = _size(reg_id)
    k = rng.below(10)
    d = _default(reg_id)
    if k < 3 and d is not None:
        return d[0:n]
    row = R.BY_ID.get(reg_id)
    if k < 5 and row is not None and row[R.R_ENC] == R.ENC_TIME:
        return (NOW + rng.span(-400000, 400000)).to_bytes(n, "big")
    if k < 8 or n > 8:
        return rng.bytes(n) if rng.chance(50) else bytes(rng.pick((0, 0xFF)) for _ in range(n))
    return rng.field(n)


def record(rng, table):
    """One record of a table: a default record (valid) or random bytes."""
    n = _size(table)
    d = _default(table)
    if d is not None and rng.chance(60):
        k = rng.below(len(d) // n)
        return d[k * n:(k + 1) * n]
    return rng.bytes(n)


def _u16(v):
    return (v & 0xFFFF).to_bytes(2, "big")


def _u32(v):
    return (v & 0xFFFFFFFF).to_bytes(4, "big")


def _time(rng):
    k = rng.below(4)
    if k == 0:
        return rng.field(4)
    return _u32(NOW + rng.span(-3 * 86400, 3 * 86400))


def data_for(rng, attr):
    """DATA (after the ATTR) of a well-formed request `attr`."""
    if attr == A.READ_REQ:
        k = 1 if rng.chance(50) else rng.pick((2, 3, 4, 8, 16, 40, 63, 64))
        return b"".join(_u16(reg_id(rng)) for _ in range(k))
    if attr == A.WRITE_REQ:
        out = b""
        for _ in range(1 if rng.chance(70) else rng.span(2, 4)):
            r = rng.pick(WRITABLE) if rng.chance(80) else reg_id(rng)
            out += _u16(r) + value(rng, r)
        return out
    if attr == A.READTAB_SEL_REQ:
        first = rng.below(400) if rng.chance(60) else rng.number(4)
        mask = 0 if rng.chance(50) else (1 << rng.below(9)) | rng.number(1) * rng.below(2)
        return _u16(rng.pick(TABLES)) + _u32(first) + bytes((rng.number(1), mask & 0xFF))
    if attr == A.READTAB_REQ:
        block = rng.below(40) if rng.chance(70) else rng.number(2)
        return _u16(rng.pick(TABLES) if rng.chance(90) else reg_id(rng)) + _u16(block)
    if attr == A.WRITETAB_REQ:
        t = rng.pick(WRITABLE_TABLES) if rng.chance(85) else rng.pick(TABLES)
        first = rng.below(30) if rng.chance(80) else rng.number(2)
        k = rng.span(1, max(1, 120 // _size(t)))
        if rng.chance(70):
            k = min(k, 3)
        return _u16(t) + _u16(first) + b"".join(record(rng, t) for _ in range(k))
    if attr == A.SETTAB_REQ:
        c = rng.span(1, 4) if rng.chance(85) else rng.pick((0, 5, 0xFF))
        k = rng.span(0, 17)
        return bytes((c,)) + b"".join(_u16(reg_id(rng)) for _ in range(k))
    if attr == A.RESETTAB_REQ:
        ids = []
        for _ in range(rng.span(1, 3)):
            ids.append(rng.pick(WRITABLE_TABLES + TABLES + WRITABLE) if rng.chance(80) else reg_id(rng))
        return b"".join(_u16(i) for i in ids)
    if attr == A.COMMAND:
        code = rng.span(0, 9)
        spec = TB.COMMANDS.get(code)
        n = spec[0] if spec is not None and rng.chance(85) else rng.below(6)
        params = _u32(NOW + rng.span(-100, 100)) if n == 4 and rng.chance(60) else rng.bytes(n)
        return bytes((code,)) + params
    if attr == A.DATASPONT:
        return _u32(rng.below(40) if rng.chance(70) else rng.number(4))
    if attr == A.BUFF_SELECT_REQ:
        t = rng.pick(TABLES) if rng.chance(90) else reg_id(rng)
        if rng.chance(30):
            return _u16(t) + bytes(8)
        return _u16(t) + _time(rng) + _time(rng)
    if attr == A.GETTAB_REQ:
        c = rng.span(1, 4) if rng.chance(85) else rng.pick((0, 5, 0xFF))
        return bytes((c, rng.below(17) if rng.chance(80) else rng.number(1)))
    if attr == A.SETIC_REQ:
        return rng.bytes(rng.pick((0, 1, 5, 99, 100, 101, rng.below(127))))
    if attr == A.WRITETABIC_REQ:
        return rng.bytes(rng.pick((0, 2, 3, 4, 100, 101, rng.below(127))))
    if attr == A.CHL_REQ:
        return rng.bytes(S.CHL_REQ_LEN)
    return rng.bytes(rng.pick((0, 1, 2, 4, 8, rng.below(40))))


def mutate(rng, b, keep=0):
    """1 to 3 mutations of b (the first `keep` bytes stay): truncation,
    extension, bit flips, boundary bytes and words, repeats, lengths at limits."""
    b = bytes(b)  # cut and spliced as bytes: a MicroPython bytearray has no del
    for _ in range(rng.span(1, 3)):
        n = len(b)
        k = rng.below(8)
        if k == 0:
            b = b[0:rng.span(keep, n) if n >= keep else n]
        elif k == 1:
            b += rng.bytes(rng.span(1, 16)) if rng.chance(60) else bytes((rng.pick((0, 0xFF)),)) * rng.span(1, 16)
        elif k == 6:
            want = rng.pick(LIMITS)
            b = b[0:max(want, keep)] if want < n else b + bytes(want - n)
        elif n <= keep:
            b += rng.bytes(1)
        elif k == 7:
            i = rng.span(keep, n - 1)
            b = b[0:i] + b[i + 1:]
        elif k == 5:
            i = rng.span(keep, n - 1)
            j = rng.span(i, n)
            b = b[0:j] + b[i:j] + b[j:]
        else:
            i = rng.span(keep, n - 1)
            m = bytearray(b)
            if k == 2:
                m[i] ^= 1 << rng.below(8)
            elif k == 3:
                m[i] = rng.pick((0, 1, 0x7F, 0x80, 0xFE, 0xFF))
            else:
                w = rng.pick((b"\x00\x00", b"\xff\xff", b"\x80\x00", b"\x7f\xff", b"\x00\x01"))
                m[i] = w[0]
                if i + 1 < n:
                    m[i + 1] = w[1]
            b = bytes(m)
    return b


def plain(rng, attr=None, mutate_pct=25):
    """A plain request LSDU; attr None: a service, now and then any ATTR."""
    if attr is None:
        attr = rng.pick(SERVICES) if rng.chance(85) else rng.below(256)
    data = data_for(rng, attr)
    if rng.chance(mutate_pct):
        data = mutate(rng, data)
    return bytes((attr,)) + data


def lmon_state(rng):
    """An LMON for the meter to be in before the input (script op L)."""
    k = rng.below(100)
    if k < 75:
        return rng.below(1000)
    if k < 83:
        return 0
    if k < 88:
        return LMON_MAX - rng.below(3)
    if k < 94:
        return (1 << rng.pick((31, 32, 63))) - 2 + rng.below(4)
    return rng.number(8)


def mon_for(rng, lmon):
    """The MON a request carries: LMON + 1 mostly, LMON +- k, anything."""
    k = rng.below(100)
    if k < 80:
        m = lmon + 1
    elif k < 85:
        m = lmon
    elif k < 90:
        m = lmon + 2 + rng.below(64)
    elif k < 95:
        m = lmon - 1 - rng.below(4)
    else:
        m = rng.number(8)
    return min(max(m, 0), LMON_MAX)


def ecc(rng):
    return rng.pick(ECCS) if rng.chance(85) else rng.below(16)


def ecb_ready(rng, data, e):
    # ECB carries whole blocks: pad as the firmware does (when it pads), or
    # cut/extend to a multiple of 16; now and then leave it as it is.
    if S.ecc_mode(e) != S.MODE_ECB or rng.chance(10):
        return data
    pad = getattr(S, "ecb_padded_len", None)
    if pad is not None and rng.chance(85):
        n = pad(len(data))
        return data + b"\x80" + bytes(n - len(data) - 1)
    return data + bytes(-len(data) % 16)


def seal(attr, data, mon, e, keys=KEYS, trailer=NOW, covered=None):
    """ATTR | DATA sealed with the firmware's codec, or None where it refuses."""
    n = 1 + len(data)
    buf = bytearray(n + S.AUTH_OVERHEAD)
    buf[0] = attr
    buf[1:n] = data
    try:
        end = S.seal_into(keys, ACA, buf, n, mon, e, trailer, covered)
    except ValueError:
        return None
    return bytes(buf[0:end])


def sealed(rng, lmon, attr=None, mon=None):
    """(LSDU, ECC) of an authenticated request to a meter at `lmon`: a service
    (attr None), the authenticated form of `attr` (a plain service ATTR), any
    ATTR of the authenticated range, an answer ATTR, a KEY_CHANGE, a CHL.REQ,
    or a plain ATTR only encrypted. mon: the MON to seal with (else chosen
    around lmon + 1)."""
    if mon is None:
        mon = mon_for(rng, lmon)
    e = ecc(rng)
    keys = KEYS if rng.chance(92) else WRONG_KEYS
    trailer = NOW + rng.below(1000) if rng.chance(85) else rng.number(8)
    k = 0 if attr is not None else rng.below(100)
    if k < 55:
        plain_attr = attr if attr is not None else rng.pick(SERVICES)
        a = plain_attr + 100
        data = data_for(rng, plain_attr)
    elif k < 72:
        a = rng.span(102, 246)
        data = rng.bytes(rng.pick((0, 1, 2, 3, 8, 16, rng.below(112))))
    elif k < 84:
        return _answer(rng, mon, keys), S.ECC_CHALLENGE if rng.chance(80) else e
    elif k < 88:
        return key_change(rng, mon, keys)
    elif k < 94:
        a = A.CHL_REQ
        data = rng.bytes(S.CHL_REQ_LEN if rng.chance(80) else rng.below(40))
        e = 0 if rng.chance(80) else e
    else:
        a = rng.pick((A.READ_REQ, A.WRITE_REQ, A.COMMAND, rng.below(102), rng.span(247, 255)))
        data = data_for(rng, a)
    if rng.chance(20):
        data = mutate(rng, data)
    if a == A.CHL_REQ:
        return bytes((a,)) + data, e
    data = ecb_ready(rng, data, e)
    lsdu = seal(a, data, mon, e, keys, trailer)
    if lsdu is None:  # the codec refuses (ECB size, too long): send what a careless sender would
        lsdu = seal(a, data, mon, e & ~3, keys, trailer)
        if lsdu is None:
            lsdu = bytes((a,)) + data + rng.bytes(S.AUTH_OVERHEAD)
    if rng.chance(8):
        lsdu = mutate(rng, lsdu, 1)
    return lsdu, e


def _answer(rng, mon, keys):
    # An answer LSDU in its sealed shape: CHL.RESP (113), authenticated NACK
    # (245, 239), authenticated ACK and READ answers.
    k = rng.below(5)
    if k == 0:
        return S.seal_challenge_resp(keys, ACA, mon, rng.bytes(S.CHL_N_LEN), rng.bytes(S.CHL_T_LEN))
    if k == 1:
        attr = rng.pick((S.ATTR_NACK_A_AUTH, S.ATTR_NACK_B_AUTH))
        return S.seal_auth_nack(keys, ACA, mon, rng.bytes(S.ETM_LEN), rng.number(1), attr)
    if k == 2:  # the same shapes, unsealed bytes of the length the codec checks
        return bytes((S.ATTR_CHL_RESP,)) + rng.bytes(2 + S.AUTH_OVERHEAD)
    if k == 3:
        return bytes((rng.pick((S.ATTR_NACK_A_AUTH, S.ATTR_NACK_B_AUTH)),)) + rng.bytes(1 + S.AUTH_OVERHEAD)
    attr = rng.pick(ANSWERS)
    lsdu = seal(attr, rng.bytes(rng.pick((0, 1, 4, 16))), mon, rng.pick(ECCS))
    return lsdu if lsdu is not None else bytes((attr,)) + rng.bytes(rng.below(40))


NEW_KEYS = (meterkit.K2, meterkit.K1)  # the pair a key change moves to (WRONG_KEYS)


def key_change(rng, mon, keys=KEYS, activate=None):
    """(LSDU, ECC) of a KEY_CHANGE (meter/app/keychange.py): stage the pair
    NEW_KEYS under the write key, or activate it sealed with the new keys."""
    if activate is None:
        activate = rng.chance(40)
    if activate:
        data = KC.activate_data(NEW_KEYS[0], NEW_KEYS[1])
        keys = WRONG_KEYS if rng.chance(85) else keys
    else:
        data = KC.stage_data(meterkit.K1, NEW_KEYS[0], NEW_KEYS[1])
    e = S.ECC_ECB_WRITE if rng.chance(85) else ecc(rng)
    if rng.chance(15):
        data = mutate(rng, data)
    data = ecb_ready(rng, data, e)
    lsdu = seal(KC.KEY_CHANGE + 100, data, mon, e, keys)
    return (lsdu if lsdu is not None else bytes((KC.KEY_CHANGE + 100,)) + data), e
