# Application-layer security of Original-SMITP: the LMON-protected LSDU codec.
#
# Sans-io and stateless: LMON bookkeeping, persistence, duplicate detection and
# the NACK-10 decision belong to the caller. Layout (MAC-then-encrypt):
#
#   on air:   ATTR | clear | E( DATA | TRAILER(8) | TMAC(8) )
#   TRAILER:  DATE-TIME, or LMON for CHL.RESP and authenticated NACKs
#   TMAC:     8 bytes of AES-CMAC over the 16-byte block
#             ATTR | 3 ACA bytes | MON (8, big-endian) | CRC-32 (4, big-endian)
#   CRC-32:   ACA(6) | DATA | TRAILER                for ordinary messages
#             ACA(6) | N(16)                         for CHL.RESP (113)
#             ACA(6) | PAR1 | Etm*(8)                for NACK 245 / 239
#   E:        by ECC: none, AES-CTR (IV = ACA(6) | MON(8, BE) | counter(2))
#             or AES-ECB; key by ECC bit 2 (K1 write / K2 read).
#   clear:    nothing; the 2-byte T field of CHL.RESP; PAR1 of NACK 245/239.
#
# This layout is one vendor implementation's reading of the protocol (the
# standard's text is not public); the readings it does not settle are the
# constants in the next block, and nowhere else.

import struct

from meter import attrs as A
from meter.compat import const
from meter.crypto import Aes, cmac_span, crc32, ctr_xor, ecb_decrypt, ecb_encrypt
from meter.errors import DecodeError

# ---- Switchable readings (protocol reference 7.3-7.6; see docs/protocol.md) --
# CMAC block bytes 1..3 = aca6[_MAC_ACA_OFF:_MAC_ACA_OFF + 3], natural (AL)
# order. 0 = "first 3 bytes" (current vendor code); 3 would take the 3 least
# significant bytes that an older vendor comment names. [I]
_MAC_ACA_OFF = const(0)
# TMAC = CMAC[_TMAC_OFF:_TMAC_OFF + 8]; 0 = first 8 bytes, 8 = last 8. [I]
_TMAC_OFF = const(0)
# DATE-TIME / LMON trailer on air: little-endian uint64 ("<Q"); ">Q" = BE. [I]
_TRAILER_FMT = "<Q"
# CTR IV bytes 14..15: initial value of the counter, big-endian. [I]
_CTR_INIT = const(1)
# MON inside the CMAC block and the IV, CRC-32 inside the CMAC block. [C]
_MON_FMT = ">Q"
_CRC_FMT = ">I"

# ---- ECC nibble (LLC), reference 5.2 ----------------------------------------
ECC_NONE = const(0x0)  # no encryption (authenticated ATTRs still MAC with K2)
ECC_CTR_READ = const(0x1)
ECC_ECB_READ = const(0x2)
ECC_CTR_WRITE = const(0x5)
ECC_ECB_WRITE = const(0x6)
# CHL.RESP and the authenticated NACK always go ECB with the read key.
ECC_CHALLENGE = const(0x2)

MODE_NONE = const(0)  # ECC b1b0 other than 01 / 10
MODE_CTR = const(1)
MODE_ECB = const(2)
KEY_READ = const(0)  # ECC b2 = 0: K2
KEY_WRITE = const(1)  # ECC b2 = 1: K1
_ECC_KEY_BIT = const(0x4)

# ---- ATTR codes the codec treats specially, reference 6.2 -------------------
# (defined in meter/attrs.py; named here as the codec uses them)
ATTR_CHL_REQ = A.CHL_REQ  # not authenticated
ATTR_CHL_RESP = A.CHL_RESP
ATTR_NACK_B_AUTH = A.NACK_B_AUTH
ATTR_NACK_A_AUTH = A.NACK_A_AUTH
NACK_AUTH = A.NACK_AUTH  # NACK PAR1: authentication failure / LMON mismatch

TRAILER_LEN = const(8)
TMAC_LEN = const(8)
AUTH_OVERHEAD = const(16)  # TRAILER + TMAC
CHL_T_LEN = const(2)
CHL_N_LEN = const(16)
CHL_REQ_LEN = const(18)  # CHL.REQ DATA: 2 bytes + N
ETM_LEN = const(8)
LSDU_MAX = const(128)  # ATTR + 127 bytes of DATA

_AES_LEN = const(16)
_ACA_LEN = const(6)


# ---- ECB padding (project choice, docs/protocol.md) ------------------------
# ECB encrypts whole 16-byte blocks and the public implementation sends no
# padding, so an ordinary message fits ECB only when its DATA is a multiple of
# 16 bytes. The meter requires ECB for requests with effect (docs/security.md),
# so in ECB the DATA of ordinary authenticated messages, both ways, is always
# padded: 0x80, then 0x00 up to a multiple of 16 (ISO/IEC 9797-1 method 2).
# The codec below stays the public one; callers pad before seal_into and
# unpad after open_into.
ECB_PAD = const(0x80)
ECB_PAD_MAX = const(16)


def ecb_padded_len(data_len):
    """Length of DATA once padded (always at least one byte longer)."""
    return (data_len // _AES_LEN + 1) * _AES_LEN


def ecb_pad(buf, n):
    """Pad the DATA of ATTR | DATA in buf[0:n] in place; return the new length."""
    end = 1 + ecb_padded_len(n - 1)
    buf[n] = ECB_PAD
    for i in range(n + 1, end):
        buf[i] = 0
    return end


def ecb_unpad(buf, end):
    """Length of ATTR | DATA once the padding of buf[0:end] is taken off;
    DecodeError("padding") when it is not 0x80 then zeros."""
    i = end - 1
    stop = end - ECB_PAD_MAX
    while i > 0 and i >= stop and buf[i] == 0:
        i -= 1
    if i < 1 or i < stop or buf[i] != ECB_PAD or (end - 1) % _AES_LEN:
        raise DecodeError("padding", "ECB DATA not padded with 80 00..")
    return i


class AuthError(DecodeError):
    """A protected LSDU failed to open, or no key for its ECC.

    field: "length" (too short / wrong shape), "tmac" (tag mismatch: bad key,
    wrong MON, or altered bytes) or "key" (key not provisioned).
    """


def ecc_mode(ecc):
    m = ecc & 3
    if m == MODE_CTR or m == MODE_ECB:
        return m
    return MODE_NONE


def ecc_key(ecc):
    return KEY_WRITE if ecc & _ECC_KEY_BIT else KEY_READ


def make_ecc(mode, key):
    return mode | (_ECC_KEY_BIT if key == KEY_WRITE else 0)


def is_authenticated(attr):
    return 102 <= attr < 247 and attr != ATTR_CHL_REQ


def auth_attr(plain):
    """ATTR of the authenticated variant: data services + 100, ACK/NACK - 10."""
    if plain >= 249 and plain <= 255 and plain & 1:
        return plain - 10
    if 2 <= plain < 90 and plain != 12 and plain != 13 or plain == A.REPROG_LOCAL or plain == A.REPROG_BROADCAST:
        return plain + 100  # REPROG's variants 200, 201: project choice (docs/protocol.md)
    raise ValueError("ATTR %d has no authenticated variant" % plain)


def plain_attr(attr):
    """Inverse of auth_attr."""
    if 239 <= attr <= 245 and attr & 1:
        return attr + 10
    if (102 <= attr < 190 and attr != ATTR_CHL_REQ and attr != ATTR_CHL_RESP
            or attr == A.REPROG_LOCAL + 100 or attr == A.REPROG_BROADCAST + 100):
        return attr - 100
    raise ValueError("ATTR %d is not an authenticated variant" % attr)


def _is_auth_nack(attr):
    return attr == ATTR_NACK_A_AUTH or attr == ATTR_NACK_B_AUTH


def _clear_len(attr):
    # Bytes after ATTR that stay in clear.
    if attr == ATTR_CHL_RESP:
        return CHL_T_LEN
    if _is_auth_nack(attr):
        return 1
    return 0


def _covered_len(attr):
    # Length of the CRC input that the LSDU does not carry (N or Etm*).
    if attr == ATTR_CHL_RESP:
        return CHL_N_LEN
    if _is_auth_nack(attr):
        return ETM_LEN
    return 0


class Keys:
    """A key pair: K1 = write key, K2 = read key, 16 bytes each or None when
    not provisioned. Holds them as Aes objects, plus the codec's scratch."""

    def __init__(self, k1=None, k2=None):
        self.write = None if k1 is None else Aes(k1)
        self.read = None if k2 is None else Aes(k2)
        self._blk = bytearray(_AES_LEN)  # CMAC input block
        self._iv = bytearray(_AES_LEN)  # CTR initial counter block

    def aes(self, ecc):
        """The Aes object ECC bit 2 selects; AuthError("key") if missing."""
        if ecc & _ECC_KEY_BIT:
            if self.write is None:
                raise AuthError("key", "K1 (write) not set")
            return self.write
        if self.read is None:
            raise AuthError("key", "K2 (read) not set")
        return self.read


def as_keys(keys):
    """A Keys object from a Keys object or a (k1, k2) pair (builds new Aes
    objects each call: keep a Keys object on hot paths)."""
    if isinstance(keys, Keys):
        return keys
    k1, k2 = keys
    return Keys(k1, k2)


def _check_mon(mon):
    if mon < 0 or mon >> 64:
        raise ValueError("MON out of uint64 range")


def cmac_block(attr, aca6, mon, crc, out=None):
    """The 16-byte CMAC input: ATTR | 3 ACA bytes | MON (BE) | CRC-32 (BE)."""
    if out is None:
        out = bytearray(_AES_LEN)
    out[0] = attr
    for j in range(3):
        out[1 + j] = aca6[_MAC_ACA_OFF + j]
    struct.pack_into(_MON_FMT, out, 4, mon)
    struct.pack_into(_CRC_FMT, out, 12, crc)
    return out


def ctr_iv(aca6, mon, out=None):
    """The CTR initial counter block: ACA(6) | MON(8, BE) | counter start(2)."""
    if out is None:
        out = bytearray(_AES_LEN)
    for j in range(_ACA_LEN):
        out[j] = aca6[j]
    struct.pack_into(_MON_FMT, out, 6, mon)
    struct.pack_into(">H", out, 14, _CTR_INIT)
    return out


def tmac(aes, block16):
    """The 8-byte TMAC of a CMAC input block, as new bytes."""
    mac = cmac_span(aes, block16, 0, _AES_LEN)
    return bytes(mac[_TMAC_OFF : _TMAC_OFF + TMAC_LEN])


def _tag(keys, aes, aca6, buf, tend, mon, covered):
    # CMAC of the block for the plaintext LSDU in buf (trailer ends at tend).
    # Returns the Aes scratch holding the full 16-byte CMAC.
    attr = buf[0]
    c = crc32(aca6)
    if attr == ATTR_CHL_RESP:
        c = crc32(covered, c)
    else:
        mv = memoryview(buf)
        if _is_auth_nack(attr):
            c = crc32(mv[1:2], c)
            c = crc32(covered, c)
        else:
            c = crc32(mv[1:tend], c)
    cmac_block(attr, aca6, mon, c, keys._blk)
    return cmac_span(aes, keys._blk, 0, _AES_LEN)


def _crypt(keys, aes, mode, aca6, mon, buf, start, end, encrypt):
    if mode == MODE_CTR:
        ctr_xor(aes, ctr_iv(aca6, mon, keys._iv), buf, start, end)
    elif mode == MODE_ECB:
        if encrypt:
            ecb_encrypt(aes, buf, start, end)
        else:
            ecb_decrypt(aes, buf, start, end)


def seal_into(keys, aca6, buf, n, mon, ecc, trailer=None, covered=None):
    """Protect in place the LSDU ATTR | DATA held in buf[0:n].

    Appends TRAILER and TMAC (buf needs n + 16 bytes) and encrypts per ECC;
    returns the new length. mon: the MON of the exchange (the meter's
    current LMON when it replies). trailer: DATE-TIME, or LMON for CHL.RESP
    and NACK-10 (int). covered: N for CHL.RESP, Etm* for NACK 245/239.
    A plain ATTR with ECC != 0 is only encrypted (no trailer, no TMAC).
    Raises ValueError on a call that cannot produce a valid LSDU.
    """
    if len(aca6) != _ACA_LEN:
        raise ValueError("ACA must be 6 bytes")
    attr = buf[0]
    mode = ecc_mode(ecc)
    if not is_authenticated(attr):
        if trailer is not None or covered is not None:
            raise ValueError("ATTR %d is not authenticated" % attr)
        if mode != MODE_NONE:
            if mode == MODE_ECB and (n - 1) % _AES_LEN:
                raise ValueError("ECB needs DATA of a multiple of 16 bytes")
            _check_mon(mon)
            _crypt(keys, keys.aes(ecc), mode, aca6, mon, buf, 1, n, True)
        return n
    clear = _clear_len(attr)
    if clear and n - 1 != clear:
        raise ValueError("ATTR %d carries %d clear byte(s) of DATA" % (attr, clear))
    cov = _covered_len(attr)
    if cov:
        if covered is None or len(covered) != cov:
            raise ValueError("ATTR %d needs %d covered bytes" % (attr, cov))
    elif covered is not None:
        raise ValueError("ATTR %d takes no covered bytes" % attr)
    if trailer is None:
        raise ValueError("authenticated ATTR needs a DATE-TIME or LMON")
    end = n + AUTH_OVERHEAD
    if end > LSDU_MAX or len(buf) < end:
        raise ValueError("LSDU of %d bytes does not fit" % end)
    if mode == MODE_ECB and (end - 1 - clear) % _AES_LEN:
        raise ValueError("ECB needs an encrypted region of a multiple of 16 bytes")
    _check_mon(mon)
    aes = keys.aes(ecc)
    struct.pack_into(_TRAILER_FMT, buf, n, trailer)
    mac = _tag(keys, aes, aca6, buf, n + TRAILER_LEN, mon, covered)
    t = n + TRAILER_LEN
    for j in range(TMAC_LEN):
        buf[t + j] = mac[_TMAC_OFF + j]
    _crypt(keys, aes, mode, aca6, mon, buf, 1 + clear, end, True)
    return end


def open_into(keys, aca6, buf, n, mon, ecc, covered=None):
    """Open in place the protected LSDU in buf[0:n]; decrypt, then verify.

    Returns (end, trailer): DATA is buf[1:end]; trailer is the DATE-TIME or
    LMON (int), or None for a plain ATTR (only decrypted). mon: the MON to
    verify with (a meter passes LMON + 1). mon=None takes MON from the
    LMON the frame carries; only for CHL.RESP and NACK 245/239 not in CTR.
    covered: N for CHL.RESP, Etm* for NACK 245/239 (the sender's own).
    On success buf holds the plaintext. On AuthError("tmac") buf is put back
    as received, so Etm* and duplicate checks still see the bytes on air.
    """
    if len(aca6) != _ACA_LEN:
        raise ValueError("ACA must be 6 bytes")
    if n < 1:
        raise DecodeError("ATTR", "empty LSDU")
    attr = buf[0]
    mode = ecc_mode(ecc)
    if not is_authenticated(attr):
        if mode != MODE_NONE:
            if mode == MODE_ECB and (n - 1) % _AES_LEN:
                raise DecodeError("length", "ECB DATA of %d bytes" % (n - 1))
            if mon is None:
                raise ValueError("decryption needs MON")
            _check_mon(mon)
            _crypt(keys, keys.aes(ecc), mode, aca6, mon, buf, 1, n, False)
        return n, None
    clear = _clear_len(attr)
    if clear:
        if n != 1 + clear + AUTH_OVERHEAD:
            need = 1 + clear + AUTH_OVERHEAD
            raise AuthError("length", "%d bytes, ATTR %d needs %d" % (n, attr, need))
    elif n < 1 + AUTH_OVERHEAD:
        raise AuthError("length", "%d bytes, no room for DATE-TIME and TMAC" % n)
    if mode == MODE_ECB and (n - 1 - clear) % _AES_LEN:
        raise AuthError("length", "ECB region of %d bytes" % (n - 1 - clear))
    cov = _covered_len(attr)
    if cov and (covered is None or len(covered) != cov):
        raise ValueError("ATTR %d needs %d covered bytes" % (attr, cov))
    if mon is None:
        if not cov or mode == MODE_CTR:
            raise ValueError("MON must be given for ATTR %d / ECC %d" % (attr, ecc))
    else:
        _check_mon(mon)
    aes = keys.aes(ecc)
    _crypt(keys, aes, mode, aca6, mon, buf, 1 + clear, n, False)
    trailer = struct.unpack_from(_TRAILER_FMT, buf, n - AUTH_OVERHEAD)[0]
    mac = _tag(keys, aes, aca6, buf, n - TMAC_LEN, trailer if mon is None else mon, covered)
    t = n - TMAC_LEN
    d = 0
    for j in range(TMAC_LEN):
        d |= mac[_TMAC_OFF + j] ^ buf[t + j]
    if d:
        _crypt(keys, aes, mode, aca6, mon, buf, 1 + clear, n, True)
        raise AuthError("tmac", "mismatch")
    return n - AUTH_OVERHEAD, trailer


def seal(keys, aca6, attr, apdu, mon, ecc, trailer=None, covered=None):
    """LSDU bytes on air for ATTR | apdu; see seal_into for the arguments."""
    keys = as_keys(keys)
    n = 1 + len(apdu)
    buf = bytearray(n + AUTH_OVERHEAD if is_authenticated(attr) else n)
    buf[0] = attr
    buf[1:n] = apdu
    seal_into(keys, aca6, buf, n, mon, ecc, trailer, covered)
    return bytes(buf)


def open_(keys, aca6, lsdu, mon, ecc, covered=None):
    """(DATA, trailer) of a received LSDU; see open_into. lsdu is not changed."""
    keys = as_keys(keys)
    buf = bytearray(lsdu)
    end, trailer = open_into(keys, aca6, buf, len(buf), mon, ecc, covered)
    return bytes(buf[1:end]), trailer


def seal_msg(keys, aca6, attr, apdu, mon, ecc, trailer):
    """seal() of an ordinary authenticated message, its DATA padded in ECB
    (the project's rule above): what a concentrator sends and a meter answers."""
    if ecc_mode(ecc) == MODE_ECB:
        apdu = bytes(apdu) + bytes((ECB_PAD,)) + bytes(ecb_padded_len(len(apdu)) - len(apdu) - 1)
    return seal(keys, aca6, attr, apdu, mon, ecc, trailer)


def open_msg(keys, aca6, lsdu, mon, ecc):
    """open_() of an ordinary authenticated message, ECB padding taken off."""
    data, trailer = open_(keys, aca6, lsdu, mon, ecc)
    if ecc_mode(ecc) == MODE_ECB:
        buf = bytes((lsdu[0],)) + data
        data = buf[1:ecb_unpad(buf, len(buf))]
    return data, trailer


def seal_challenge_resp(keys, aca6, lmon, challenge, t=b"\x00\x00"):
    """CHL.RESP (113): T in clear, then ECB/K2 over LMON | TMAC, MON = LMON,
    CRC over ACA | N. t: the 2-byte T field (its meaning is not public)."""
    return seal(keys, aca6, ATTR_CHL_RESP, t, lmon, ECC_CHALLENGE, lmon, challenge)


def seal_auth_nack(keys, aca6, lmon, etm, par1=NACK_AUTH, attr=ATTR_NACK_A_AUTH):
    """Authenticated NACK (245, or 239 for a B-Node): PAR1 in clear, then
    ECB/K2 over LMON | TMAC, MON = LMON, CRC over ACA | PAR1 | Etm*."""
    return seal(keys, aca6, attr, bytes((par1,)), lmon, ECC_CHALLENGE, lmon, etm)


def etm(lsdu):
    """Etm*: the last 8 bytes of a protected LSDU as on air (its TMAC field)."""
    if len(lsdu) < 1 + AUTH_OVERHEAD:
        raise AuthError("length", "%d bytes, no TMAC" % len(lsdu))
    return bytes(lsdu[len(lsdu) - TMAC_LEN :])


def challenge_of(chl_req_data):
    """N, the 16-byte random of a CHL.REQ (DATA = 2 bytes | N)."""
    if len(chl_req_data) != CHL_REQ_LEN:
        n = len(chl_req_data)
        raise DecodeError("length", "CHL.REQ DATA of %d bytes, need %d" % (n, CHL_REQ_LEN))
    return bytes(chl_req_data[CHL_T_LEN:])
