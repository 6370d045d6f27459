# AES-GCM-128 of DLMS suite 0 (meter/dlms/gcm.py) against published vectors:
# NIST GCM test case 3/4 (McGrew-Viega, "The Galois/Counter Mode of Operation",
# 128-bit key), and the Green Book example (EK 000102..0F, AK D0..DF, system
# title 4D4D4D0000BC614E, IC 01234567), whose APDUs the DLMS peers reproduce.
from meter.dlms.gcm import Gcm
from fwtest import unhex

EK = unhex("000102030405060708090A0B0C0D0E0F")
AK = unhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
IV = unhex("4D4D4D0000BC614E01234567")
GET_CLOCK = unhex("C0010000080000010000FF0200")


def test_mcgrew_viega_case_4_with_aad():
    key = unhex("feffe9928665731c6d6a8f9467308308")
    iv = unhex("cafebabefacedbaddecaf888")
    pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
               "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
    aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    buf = bytearray(pt)
    tag = bytearray(12)
    Gcm(key).seal(iv, (aad,), buf, 0, len(buf), tag)
    assert bytes(buf) == unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                               "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091")
    assert bytes(tag) == unhex("5bc94fbc3221a5db94fae95ae7121a47")[:12]
    assert Gcm(key).open(iv, (aad,), buf, 0, len(buf), tag)
    assert bytes(buf) == pt


def test_green_book_auth_and_encryption():
    buf = bytearray(GET_CLOCK)
    tag = bytearray(12)
    Gcm(EK).seal(IV, (b"\x30", AK), buf, 0, len(buf), tag)
    assert bytes(buf) == unhex("411312FF935A47566827C467BC")
    assert bytes(tag) == unhex("7D825C3BE4A77C3FCC056B6B")


def test_green_book_authentication_only():
    tag = bytearray(12)
    Gcm(EK).seal(IV, (b"\x10", AK, GET_CLOCK), b"", 0, 0, tag)
    assert bytes(tag) == unhex("06725D910F9221D263877516")


def test_green_book_hls_gmac():
    # f(StoC) by the client (title 4D4D4D0000000001, IC 1), f(CtoS) by the meter
    tag = bytearray(12)
    Gcm(EK).seal(unhex("4D4D4D000000000100000001"), (b"\x10", AK, b"P6wRJ21F"), b"", 0, 0, tag)
    assert bytes(tag) == unhex("1A52FE7DD3E72748973C1E28")
    Gcm(EK).seal(IV, (b"\x10", AK, b"K56iVagY"), b"", 0, 0, tag)
    assert bytes(tag) == unhex("FE1466AFB3DBCD4F9389E2B7")


def test_tampered_tag_or_text_is_refused_and_left_untouched():
    g = Gcm(EK)
    ct = unhex("411312FF935A47566827C467BC")
    tag = unhex("7D825C3BE4A77C3FCC056B6B")
    for k in range(len(ct)):
        buf = bytearray(ct)
        buf[k] ^= 1
        assert not g.open(IV, (b"\x30", AK), buf, 0, len(buf), tag)
        assert buf[k] == ct[k] ^ 1
    bad = bytearray(tag)
    bad[11] ^= 0x80
    buf = bytearray(ct)
    assert not g.open(IV, (b"\x30", AK), buf, 0, len(buf), bad) and bytes(buf) == ct
    assert not g.open(IV, (b"\x10", AK), buf, 0, len(buf), tag)  # other AAD
    assert g.open(IV, (b"\x30", AK), buf, 0, len(buf), tag) and bytes(buf) == GET_CLOCK


def test_in_place_span_of_a_larger_buffer():
    buf = bytearray(b"\xaa" * 3 + GET_CLOCK + b"\xbb" * 2)
    tag = bytearray(20)
    Gcm(EK).seal(IV, (b"\x30", AK), buf, 3, 3 + len(GET_CLOCK), tag, 5)
    assert bytes(buf) == b"\xaa" * 3 + unhex("411312FF935A47566827C467BC") + b"\xbb" * 2
    assert bytes(tag[5:17]) == unhex("7D825C3BE4A77C3FCC056B6B")
