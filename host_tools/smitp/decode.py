"""`smitp decode HEX`: a captured frame, layer by layer (PHY, MAC, LLC, AL).

Accepts an ST7580 local-port frame (PHY_Data request or indication) or a bare
MAC frame. Every problem is a DecodeError naming the field.
"""

from meter import attrs as A
from meter.link import llc
from meter.link import mac
from meter.phy import st7580
from meter.app import security as sec
from meter.crypto import ecb_decrypt
from meter.errors import DecodeError
from smitp import client
from smitp.values import register_name

DSAP_NAMES = {llc.DSAP_APP: "application", llc.DSAP_NM: "network management",
              llc.DSAP_FMODE_1: "F mode", llc.DSAP_FMODE_3: "F mode"}
ECC_NAMES = {0: "no encryption", 1: "AES-CTR, read key", 2: "AES-ECB, read key",
             5: "AES-CTR, write key", 6: "AES-ECB, write key"}
CLASS_NAMES = ("S", "RA", "RB", "RC")
COMMAND_NAMES = {st7580.CMD_PHY_DATA_REQ: "PHY_Data.request", st7580.CMD_PHY_DATA_IND: "PHY_Data.indication",
                 st7580.CMD_PHY_DATA_CNF: "PHY_Data.confirm", st7580.CMD_RESET_IND: "BIO_Reset.indication",
                 st7580.CMD_MIB_WRITE_REQ: "MIB_Write.request", st7580.CMD_MIB_WRITE_CNF: "MIB_Write.confirm"}
MODULATIONS = ("B-PSK", "Q-PSK", "8-PSK", "B-FSK", "B-PSK coded", "Q-PSK coded", "reserved", "B-PSK coded PNA")


def parse_hex(text):
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise DecodeError("input", "not hexadecimal") from None


def _aca(buf, off):
    return bytes(reversed(buf[off:off + 6])).hex().upper()


def decode_phy(data):
    """ST7580 local frame -> (layer lines, MAC payload)."""
    stx, cmd, body = st7580.decode_frame(data)
    lines = [("PHY", "ST7580 local frame: STX 0x%02X, LEN %d, CMD 0x%02X %s, checksum ok"
              % (stx, len(body), cmd, COMMAND_NAMES.get(cmd, "unknown")))]
    if cmd == st7580.CMD_PHY_DATA_IND:
        if len(body) < 4:
            raise DecodeError("PHY_Data.indication", "shorter than its 4-byte header")
        snr = body[1] - 256 if body[1] > 127 else body[1]
        lines.append(("PHY", "indication: %s, %s channel, PGA %d, SNR %d dB"
                      % (MODULATIONS[body[0] & 7], "high" if body[0] & 8 else "low", body[0] >> 4, snr)))
        return lines, body[4:]
    if cmd == st7580.CMD_PHY_DATA_REQ:
        if len(body) < 1:
            raise DecodeError("PHY_Data.request", "no options byte")
        opt = body[0]
        skip = 1 + (3 if opt & 1 else 0) + (1 if opt & 8 else 0)
        lines.append(("PHY", "request: options 0x%02X, %s, %s frequency"
                      % (opt, MODULATIONS[(opt >> 4) & 7], "high" if opt & 4 else "low")))
        return lines, body[skip:]
    raise DecodeError("CMD", "0x%02X carries no PLC frame" % cmd)


def decode_mac(data, key=None, mon=None):
    f = mac.Frame()
    mac.decode(f, data, len(data))
    cls, max_resp, slots = mac.DISCIPLINES[f.discipline]
    disc = "%s%s" % (CLASS_NAMES[cls], "" if cls == mac.CLASS_S else f.discipline - (1, 1, 8, 11)[cls])
    answer = " (answer <= %d bytes%s)" % (max_resp, ", %d slots" % slots if slots else "") if max_resp else ""
    addr = "broadcast" if mac.same_addr(data, f.addr, mac.BROADCAST) else _aca(data, f.addr)
    lines = [
        ("MAC", "LT %d, ADDRESS %s, CTL 0x%02X: discipline %s%s, %d repeater(s)"
         % (data[0], addr, f.ctl, disc, answer, f.repeaters)),
    ]
    if f.repeaters:
        lines.append(("MAC", "RP: " + ", ".join(_aca(data, f.rp_addr(i)) for i in range(f.repeaters))))
    who = "concentrator" if f.position == 0 else ("meter" if f.position == f.repeaters + 1 else "repeater %d" % f.position)
    lines.append(("MAC", "HOP: %s, this copy sent by position %d (%s)" % ("uplink" if f.uplink else "downlink", f.position, who)))
    crc = int.from_bytes(data[-4:], "little")
    lines.append(("MAC", "CRC-32 0x%08X ok" % crc))
    lines.append(("LLC", "poll %d, DSAP %d (%s), ECC %d (%s)"
                  % (f.poll, f.dsap, DSAP_NAMES.get(f.dsap, "reserved"), f.ecc, ECC_NAMES.get(f.ecc, "reserved"))))
    apdu = bytes(data[f.data:f.data + f.data_len])
    aca = bytes(reversed(data[f.addr:f.addr + 6]))  # the meter's ACA, either direction
    if key is not None and (f.ecc or sec.is_authenticated(apdu[0])):
        lines.extend(open_al(apdu, f.ecc, aca, key, mon))
    else:
        lines.extend(decode_al(apdu, f.ecc))
    return lines


def attr_name(attr):
    if attr in A.NAMES:
        return A.NAMES[attr]
    if sec.is_authenticated(attr):
        return "%s AUTH" % A.NAMES.get(sec.plain_attr(attr), "unknown")
    return "unknown"


def decode_al(apdu, ecc=0):
    attr = apdu[0]
    name = attr_name(attr)
    body = apdu[1:]
    if ecc:
        return [("AL", "ATTR %d %s, %d bytes protected (give the keys to open them)" % (attr, name, len(body)))]
    if attr == A.READ_REQ:
        what = ", ".join("0x%04X (%s)" % (r, register_name(r)) for r in client.read_ids(body))
        return [("AL", "ATTR %d %s: %s" % (attr, name, what))]
    if attr == A.NACK_A:
        code, item = client.nack_fields(apdu)
        reg = "" if item is None else " for register 0x%04X" % item
        return [("AL", "ATTR %d %s: code %d (%s)%s" % (attr, name, code, A.NACK_NAMES.get(code, "?"), reg))]
    return [("AL", "ATTR %d %s%s" % (attr, name, ": " + body.hex().upper() if body else ""))]


def open_al(lsdu, ecc, aca, key, mon):
    """Decrypt and verify a protected LSDU with the given key (used as K1 and K2
    alike). CHL.RESP and authenticated NACKs carry their LMON; their TMAC covers
    the request's N or Etm*, which this frame does not hold, so it is only
    decrypted. Other messages are verified with the exchange's MON (--mon)."""
    attr = lsdu[0]
    keys = sec.Keys(key, key)
    if attr == sec.ATTR_CHL_RESP or attr in client.AUTH_NACKS:
        clear = 3 if attr == sec.ATTR_CHL_RESP else 2
        body = bytearray(lsdu[clear:])
        if len(body) != sec.AUTH_OVERHEAD:
            raise DecodeError("length", "ATTR %d needs %d protected bytes" % (attr, sec.AUTH_OVERHEAD))
        ecb_decrypt(keys.aes(ecc), body, 0, len(body))
        what = "T %s" % lsdu[1:3].hex() if attr == sec.ATTR_CHL_RESP else "PAR1 %d" % lsdu[1]
        return [("AL", "ATTR %d %s: %s, LMON %d (decrypted; its TMAC covers the request's %s)"
                 % (attr, A.NAMES.get(attr, "?"), what, int.from_bytes(body[:8], "little"),
                    "N" if attr == sec.ATTR_CHL_RESP else "Etm*"))]
    if mon is None:
        raise DecodeError("MON", "give --mon: ATTR %d is verified with the exchange's MON" % attr)
    try:
        data, trailer = sec.open_(keys, aca, lsdu, mon, ecc)
    except sec.AuthError as e:
        raise DecodeError("TMAC", "does not verify with this key and MON %d (%s)" % (mon, e.why)) from None
    plain = sec.plain_attr(attr)
    head = ("AL", "ATTR %d %s: MON %d, DATE-TIME %d, TMAC verified" % (attr, attr_name(attr), mon, trailer))
    return [head] + decode_al(bytes([plain]) + data)


def decode(text, key=None, mon=None):
    """Hex text -> list of (layer, line). key: 16 bytes to open protected frames."""
    data = parse_hex(text)
    if not data:
        raise DecodeError("input", "empty")
    if key is not None and len(key) != 16:
        raise DecodeError("key", "must be 16 bytes")
    if data[0] in (0x02, 0x03) and len(data) >= 5 and data[1] + 5 == len(data):
        lines, payload = decode_phy(data)
        return lines + decode_mac(payload, key, mon)
    return decode_mac(data, key, mon)
