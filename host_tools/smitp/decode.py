"""`smitp decode HEX`: a captured frame, layer by layer (PHY, MAC, LLC, AL).

Accepts an ST7580 local-port frame (PHY_Data request or indication), a Meters
and More Host Interface frame (smitp.hi_decode) or a bare MAC frame. Every problem is a DecodeError naming the field. Each line comes
with its named fields (for --json): decode_fields() gives (layer, text, fields),
by_layer() one object per layer.
"""

from typing import Any

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


def _line(layer, template, **fields):
    """One decoded line: its layer, its text (template % fields) and its fields."""
    return layer, template % fields, fields


def by_layer(lines):
    """[(layer, text, fields)] -> [{"layer": ..., "fields": {...}}], one object per layer in order."""
    out = []
    for layer, _text, fields in lines:
        if not out or out[-1]["layer"] != layer:
            out.append({"layer": layer, "fields": {}})
        out[-1]["fields"].update(fields)
    return out


def decode_phy(data):
    """ST7580 local frame -> (layer lines, MAC payload)."""
    stx, cmd, body = st7580.decode_frame(data)
    lines = [_line("PHY", "ST7580 local frame: STX %(stx)s, LEN %(length)d, CMD %(cmd)s %(command)s, "
                          "checksum %(checksum)s",
                   stx="0x%02X" % stx, length=len(body), cmd="0x%02X" % cmd,
                   command=COMMAND_NAMES.get(cmd, "unknown"), checksum="ok")]
    if cmd == st7580.CMD_PHY_DATA_IND:
        if len(body) < 4:
            raise DecodeError("PHY_Data.indication", "shorter than its 4-byte header")
        lines.append(_line("PHY", "indication: %(modulation)s, %(channel)s channel, PGA %(pga)d, SNR %(snr_db)d dB",
                           modulation=MODULATIONS[body[0] & 7], channel="high" if body[0] & 8 else "low",
                           pga=body[0] >> 4, snr_db=body[1] - 256 if body[1] > 127 else body[1]))
        return lines, body[4:]
    if cmd == st7580.CMD_PHY_DATA_REQ:
        if len(body) < 1:
            raise DecodeError("PHY_Data.request", "no options byte")
        opt = body[0]
        skip = 1 + (3 if opt & 1 else 0) + (1 if opt & 8 else 0)
        lines.append(_line("PHY", "request: options %(options)s, %(modulation)s, %(frequency)s frequency",
                           options="0x%02X" % opt, modulation=MODULATIONS[(opt >> 4) & 7],
                           frequency="high" if opt & 4 else "low"))
        return lines, body[skip:]
    raise DecodeError("CMD", "0x%02X carries no PLC frame" % cmd)


def decode_mac(data, key=None, mon=None):
    f = mac.Frame()
    mac.decode(f, data, len(data))
    cls, max_resp, slots = mac.DISCIPLINES[f.discipline]
    disc = "%s%s" % (CLASS_NAMES[cls], "" if cls == mac.CLASS_S else f.discipline - (1, 1, 8, 11)[cls])
    answer = " (answer <= %d bytes%s)" % (max_resp, ", %d slots" % slots if slots else "") if max_resp else ""
    addr = "broadcast" if mac.same_addr(data, f.addr, mac.BROADCAST) else _aca(data, f.addr)
    head: dict[str, Any] = dict(lt=data[0], address=addr, ctl="0x%02X" % f.ctl, discipline=disc, max_response=max_resp or None,
                slots=slots or None, repeaters=f.repeaters)
    lines = [("MAC", "LT %(lt)d, ADDRESS %(address)s, CTL %(ctl)s: discipline %(discipline)s%(answer)s, "
                     "%(repeaters)d repeater(s)" % dict(head, answer=answer), head)]
    if f.repeaters:
        route = [_aca(data, f.rp_addr(i)) for i in range(f.repeaters)]
        lines.append(("MAC", "RP: " + ", ".join(route), {"route": route}))
    who = "concentrator" if f.position == 0 else ("meter" if f.position == f.repeaters + 1 else "repeater %d" % f.position)
    lines.append(_line("MAC", "HOP: %(direction)s, this copy sent by position %(position)d (%(sender)s)",
                       direction="uplink" if f.uplink else "downlink", position=f.position, sender=who))
    lines.append(_line("MAC", "CRC-32 %(crc)s %(crc_check)s", crc="0x%08X" % int.from_bytes(data[-4:], "little"),
                       crc_check="ok"))
    lines.append(_line("LLC", "poll %(poll)d, DSAP %(dsap)d (%(dsap_name)s), ECC %(ecc)d (%(ecc_name)s)",
                       poll=int(f.poll), dsap=f.dsap, dsap_name=DSAP_NAMES.get(f.dsap, "reserved"), ecc=f.ecc,
                       ecc_name=ECC_NAMES.get(f.ecc, "reserved")))
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
        return [_line("AL", "ATTR %(attr)d %(name)s, %(protected_bytes)d bytes protected (give the keys to open them)",
                      attr=attr, name=name, protected_bytes=len(body))]
    if attr == A.READ_REQ:
        regs = [{"id": "0x%04X" % r, "name": register_name(r)} for r in client.read_ids(body)]
        what = ", ".join("%(id)s (%(name)s)" % r for r in regs)
        return [("AL", "ATTR %d %s: %s" % (attr, name, what), {"attr": attr, "name": name, "registers": regs})]
    if attr == A.NACK_A:
        code, item = client.nack_fields(apdu)
        fields = {"attr": attr, "name": name, "code": code, "code_name": A.NACK_NAMES.get(code, "?"),
                  "register": None if item is None else "0x%04X" % item}
        reg = "" if item is None else " for register %s" % fields["register"]
        return [("AL", "ATTR %(attr)d %(name)s: code %(code)d (%(code_name)s)" % fields + reg, fields)]
    fields = {"attr": attr, "name": name, "data": body.hex().upper()}
    return [("AL", "ATTR %d %s%s" % (attr, name, ": " + fields["data"] if body else ""), fields)]


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
        chl = attr == sec.ATTR_CHL_RESP
        fields = {"attr": attr, "name": A.NAMES.get(attr, "?"), "lmon": int.from_bytes(body[:8], "little"),
                  "tmac": "not verified", "tmac_covers": "N" if chl else "Etm*"}
        fields.update({"t": lsdu[1:3].hex()} if chl else {"par1": lsdu[1]})
        what = "T %(t)s" % fields if chl else "PAR1 %(par1)d" % fields
        return [("AL", "ATTR %(attr)d %(name)s: " % fields + what + ", LMON %(lmon)d (decrypted; its TMAC covers "
                 "the request's %(tmac_covers)s)" % fields, fields)]
    if mon is None:
        raise DecodeError("MON", "give --mon: ATTR %d is verified with the exchange's MON" % attr)
    try:
        data, trailer = sec.open_(keys, aca, lsdu, mon, ecc)
    except sec.AuthError as e:
        raise DecodeError("TMAC", "does not verify with this key and MON %d (%s)" % (mon, e.why)) from None
    plain = sec.plain_attr(attr)
    head = _line("AL", "ATTR %(protected_attr)d %(protected_name)s: MON %(mon)d, DATE-TIME %(date_time)d, "
                       "TMAC %(tmac)s", protected_attr=attr, protected_name=attr_name(attr), mon=mon,
                 date_time=trailer, tmac="verified")
    return [head] + decode_al(bytes([plain]) + data)


def decode(text, key=None, mon=None):
    """Hex text -> list of (layer, line). key: 16 bytes to open protected frames."""
    return [(layer, line) for layer, line, _fields in decode_fields(text, key, mon)]


def decode_fields(text, key=None, mon=None):
    """Hex text -> list of (layer, line, {field: value})."""
    data = parse_hex(text)
    if not data:
        raise DecodeError("input", "empty")
    if key is not None and len(key) != 16:
        raise DecodeError("key", "must be 16 bytes")
    from smitp.hi_decode import decode_hi, looks_like_hi

    if looks_like_hi(data):
        lines, lsdu, ecc = decode_hi(data)
        return lines + (decode_al(lsdu, ecc) if lsdu else [])
    if data[0] in (0x02, 0x03) and len(data) >= 5 and data[1] + 5 == len(data):
        lines, payload = decode_phy(data)
        return lines + decode_mac(payload, key, mon)
    return decode_mac(data, key, mon)
