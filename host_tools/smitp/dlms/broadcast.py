"""DLMS broadcast, concentrator side: an unconfirmed SET of the clock or Clock shift_time for
every meter that hears it, general-glo-ciphered with the broadcast key (security control 0x70,
`cryptography`'s AES-GCM; the meter's side is meter/dlms/broadcast.py), in one CLPDU sent to the
MAC broadcast address, class S. Nothing answers a broadcast. Behind repeaters it goes as the
Original-SMITP broadcast does: the repeaters named by 2-byte SCA entries
(smitp.discovery.broadcast_entries), each repeating it down to the meters past it."""

from meter.dlms import cl as C
from meter.dlms.broadcast import SC_BROADCAST, SHIFT_MAX
from meter.link import mac
from meter.link.llc import DSAP_DLMS
from smitp.dlms.client import _length, date_time_data, gcm_seal

UNCONFIRMED = 0x81  # invoke-id-and-priority: invoke-id 1, unconfirmed, high priority
CLOCK = b"\x00\x08\x00\x00\x01\x00\x00\xff"  # class 8, 0.0.1.0.0.255


def set_clock(t):
    """Set-Request-Normal, unconfirmed: the clock to UTC seconds t."""
    return bytes((0xC1, 0x01, UNCONFIRMED)) + CLOCK + b"\x02\x00" + date_time_data(t)


def shift_time(seconds):
    """Action-Request-Normal, unconfirmed: Clock shift_time by `seconds` (-900..900)."""
    if not -SHIFT_MAX <= seconds <= SHIFT_MAX:
        raise ValueError("shift_time takes -%d..%d s, not %d" % (SHIFT_MAX, SHIFT_MAX, seconds))
    return bytes((0xC3, 0x01, UNCONFIRMED)) + CLOCK + b"\x06\x01\x10" + (seconds & 0xFFFF).to_bytes(2, "big")


def cipher(plain, ic, title, bk, ak):
    """general-glo-ciphering of `plain` with the broadcast key bk: DB | title | SC 0x70 | IC | ciphertext | tag."""
    if len(title) != 8 or len(bk) != 16 or len(ak) != 16 or not 0 <= ic <= 0xFFFFFFFF:
        raise ValueError("a system title of 8 bytes, keys of 16 and a 32-bit counter")
    icb = ic.to_bytes(4, "big")
    body = bytes((SC_BROADCAST,)) + icb + gcm_seal(bytes(bk), bytes(title) + icb, bytes((SC_BROADCAST,)) + bytes(ak),
                                                    bytes(plain))
    return b"\xdb\x08" + bytes(title) + _length(len(body)) + body


def clpdu(apdu, xid=0):
    """The broadcast CLPDU: the whole APDU in one DATA_LAST segment numbered 0."""
    if not 1 <= len(apdu) <= C.SEG_MAX:
        raise ValueError("a broadcast APDU is 1..%d bytes, not %d" % (C.SEG_MAX, len(apdu)))
    return bytes((C.DATA_LAST, xid & 0xFF, 0)) + bytes(apdu)


def frame(lsdu, entries=b""):
    """The PLC frame of a broadcast CLPDU: broadcast address, the repeaters' SCA entries
    (2 bytes each, nearest the concentrator first; none: the meters that hear the concentrator),
    class S, DSAP_DLMS, ECC 0."""
    if len(entries) % 2:
        raise ValueError("a broadcast's repeater entries are 2-byte SCA entries, not %d bytes" % len(entries))
    out = bytearray(mac.MAX_FRAME)
    n = mac.encode(out, mac.BROADCAST, bytes(entries), mac.DISC_S, False, 0, False, DSAP_DLMS, 0, bytes(lsdu))
    return bytes(out[:n])


def entries(conc, route):
    """The SCA entries of a broadcast along `route` (repeater ACAs, nearest first): from the
    concentrator's SCA book, else learnt by STATUS or given by REGISTER."""
    from smitp.discovery import broadcast_entries

    return broadcast_entries(conc.port, tuple(route), conc.book) if route else b""


def send(port, apdu, xid=0, entries=b""):
    """Broadcast the ciphered APDU through a concentrator's port (its .send(payload)), repeated
    by the repeaters `entries` name (see entries())."""
    port.send(frame(clpdu(apdu, xid), entries))
