"""`smitp decode` of a Meters and More Host Interface frame (meter/phy/hi_codec.py):
the frame, the checksum rule it verifies under (Microchip CRC-16 or byte sum),
the command and its fields; a Slave_Data frame's LSDU down to the AL."""

from meter.errors import DecodeError
from meter.phy import hi_codec as H

COMMANDS = {
    0x08: "MIB_Write.request", 0x09: "MIB_Write.confirm", 0x0A: "MIB_Write.indication", 0x0B: "MIB_Write.error",
    0x0C: "MIB_Read.request", 0x0D: "MIB_Read.confirm", 0x0F: "MIB_Read.error",
    0x24: "Slave_Data.request", 0x25: "Slave_Data.confirm", 0x26: "Slave_Data.indication", 0x27: "Slave_Data.error",
    0x28: "Master_Data.request", 0x29: "Master_Data.confirm", 0x2A: "Master_Data.indication",
    0x2B: "Master_Data.error", 0x2C: "HI_Ping.request", 0x2D: "HI_Ping.confirm", 0x36: "HI_Error.indication",
    0x3C: "BIO_Reset.request", 0x3D: "BIO_Reset.confirm", 0x3E: "BIO_Reset.indication", 0x3F: "BIO_Reset.error",
}
MIBS = {3: "MAC configuration", 4: "firmware release", 6: "manufacturer data", 7: "logical address",
        8: "encryption keys", 9: "security flags", 10: "LMON", 12: "internal timing", 14: "HI timings (ST75MM)"}
ERRORS = {0x00: "transmission failed", 0x02: "WPL, wrong length", 0x03: "WPV, wrong value", 0x04: "busy",
          0xFF: "general error"}
RESET_CAUSES = ("hardware", "watchdog", "software", "BIO_Reset", "PLC ISR", "zero crossing", "FSM", "no ISR")


def looks_like_hi(data):
    """A whole HI frame by its length rule (LEN = payload - 1, 6 bytes around it)."""
    return len(data) >= 6 and data[0] in (H.STX, H.STX_REPEAT) and data[1] + 6 == len(data)


def decode_hi(data):
    """-> (lines, LSDU or None, its ECC): the HI layer's lines (layer, text,
    fields) and a Slave_Data frame's application data for the layers above."""
    rule = None
    for kind, name in ((H.CS_CRC, "Microchip CRC-16"), (H.CS_SUM, "byte sum")):
        try:
            fs, cmd, payload = H.decode_frame(data, kind)
            rule = name
            break
        except DecodeError as e:
            if e.field != "CS":
                raise
    if rule is None:
        raise DecodeError("CS", "verifies neither as a Microchip CRC-16 nor as a byte sum")
    command = COMMANDS.get(cmd, "unknown")
    fields = {"fs": "0x%02X" % fs, "repetition": fs == H.STX_REPEAT, "length": data[1], "cmd": "0x%02X" % cmd,
              "command": command, "checksum": rule}
    lines = [("HI", "M&M HI frame: FS %(fs)s%(rep)s, LEN %(length)d, CMD %(cmd)s %(command)s, checksum ok (%(checksum)s)"
              % dict(fields, rep=" (repetition)" if fields["repetition"] else ""), fields)]
    lsdu, ecc = None, 0
    if cmd in (H.CMD_SLAVE_IND, H.CMD_SLAVE_REQ, H.CMD_MASTER_REQ):
        if len(payload) < 3:
            raise DecodeError("payload", "%s without an LSDU" % command)
        proto, req_id = payload[0], payload[1]
        ecc = proto >> H.PROTO_ECC_SHIFT
        f = {"protocol": proto & H.PROTO_BASE_MASK, "ecc": ecc, "req_id": req_id}
        lines.append(("HI", "protocol %(protocol)d, ECC %(ecc)d, ReqID %(req_id)d" % f, f))
        lsdu = payload[2:]
    elif cmd in (H.CMD_MIB_WRITE_REQ, H.CMD_MIB_WRITE_IND, H.CMD_MIB_READ_REQ, H.CMD_MIB_WRITE_CNF):
        f = {"mib": payload[0], "mib_name": MIBS.get(payload[0], "reserved"),
             "value": "(secret)" if payload[0] == H.MIB_KEYS else payload[1:].hex().upper()}
        lines.append(("HI", "MIB %(mib)d (%(mib_name)s)" % f + (": %(value)s" % f if len(payload) > 1 else ""), f))
    elif cmd in (0x0B, 0x0F, 0x27, 0x2B, 0x3F):
        f = {"error": payload[0], "error_name": ERRORS.get(payload[0], "unknown")}
        lines.append(("HI", "error 0x%(error)02X (%(error_name)s)" % f, f))
    elif cmd == H.CMD_RESET_IND:
        f = {"cause": payload[0] & 0x7F, "cause_name": RESET_CAUSES[payload[0] & 7] if payload[0] & 0x7F < 8 else "?",
             "reconfigured": bool(payload[0] & 0x80)}
        lines.append(("HI", "reset cause %(cause)d (%(cause_name)s), reconfiguration flag %(reconfigured)s" % f, f))
    elif cmd == H.CMD_HI_ERROR:
        f = {"unknown_cmd": "0x%02X" % payload[0]}
        lines.append(("HI", "unknown command %(unknown_cmd)s" % f, f))
    else:
        f = {"payload": payload.hex().upper()}
        lines.append(("HI", "payload %(payload)s" % f, f))
    return lines, lsdu, ecc
