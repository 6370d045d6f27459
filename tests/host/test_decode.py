"""`smitp decode`: layer by layer, and one clear line for bad input."""

import subprocess
import sys

import pytest

from meter.phy import st7580
from meter.errors import DecodeError
from smitp.cli import main
from smitp.decode import decode

READ_VIA_M2 = "1303891e0a04a83002891e0a04a800000002003fc01b3bee"
ANSWER = "1903891e0a04a80002891e0a04a8820000030000000000000000c4804583"


def test_mac_frame_layers():
    lines = decode(READ_VIA_M2)
    layers = [layer for layer, _ in lines]
    assert layers[0] == "MAC" and "LLC" in layers and layers[-1] == "AL"
    text = "\n".join(t for _, t in lines)
    assert "ADDRESS A8040A1E8903" in text and "RP: A8040A1E8902" in text
    assert "discipline RA2 (answer <= 40 bytes)" in text
    assert "READ.REQ: 0x003F (status word)" in text


def test_phy_indication_wrapping_a_frame():
    frame = st7580.encode_frame(st7580.CMD_PHY_DATA_IND, bytes.fromhex("1c1900") + b"\x00" + bytes.fromhex(ANSWER))
    lines = decode(frame.hex())
    assert lines[0][0] == "PHY" and "PHY_Data.indication" in lines[0][1]
    assert "SNR 25 dB" in lines[1][1]
    assert "uplink" in "\n".join(t for _, t in lines)


@pytest.mark.parametrize("bad,field", [
    ("zz", "input"),
    (READ_VIA_M2[:-2] + "00", "CRC"),
    (READ_VIA_M2[:20], "LT"),
    ("02025004ab0102", "CS"),
])
def test_bad_input_names_the_field(bad, field):
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.field == field


def test_cli_one_line_error_no_traceback():
    r = subprocess.run([sys.executable, "-m", "smitp.cli", "decode", READ_VIA_M2[:-2] + "00"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "smitp decode: error: CRC: frame CRC-32 mismatch"
    assert "Traceback" not in r.stderr


def test_cli_json(capsys):
    assert main(["decode", "--json", ANSWER]) == 0
    out = capsys.readouterr().out
    assert '"layer": "AL"' in out and "READ.RESP" in out


# Reference vector V1 (computed from one vendor's reading, not official):
# READ.REQ AUTH of 0x003F, CTR with K2 = AA55.., ACA A8040A1E8984, MON 1, in a frame.
V1_FRAME = "1d84891e0a04a831000001667fd351742c7a4f2827dcf3f6a47559d82ed83bf4175b"
K2 = "aa55" * 8


def test_decode_with_key_opens_and_verifies(capsys):
    assert main(["decode", V1_FRAME, "--key", K2, "--mon", "1"]) == 0
    out = capsys.readouterr().out
    assert "READ.REQ AUTH: MON 1, DATE-TIME 1727740800, TMAC verified" in out
    assert "0x003F (status word)" in out
    assert K2 not in out.lower()


def test_decode_with_wrong_mon_or_key_is_one_line(capsys):
    assert main(["decode", V1_FRAME, "--key", K2, "--mon", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("smitp decode: error: TMAC: does not verify")
    assert main(["decode", V1_FRAME, "--key", "00" * 16, "--mon", "1"]) == 2


def test_decode_without_key_keeps_the_payload_closed():
    text = "\n".join(t for _, t in decode(V1_FRAME))
    assert "READ.REQ AUTH, 18 bytes protected" in text and "0x003F" not in text


def test_provisioned_image_boots_with_its_keys_and_lmon(tmp_path, capsys):
    from meter.model import registers as R
    from smitp import topology
    from smitp.concentrator import Concentrator, parse_aca
    from smitp.demo import wait_until_ready
    from smitp.network import neighbourhood
    from smitp.secure import KeyRing

    entry = {"k1": "11" * 16, "k2": "22" * 16}
    keys = tmp_path / "keys.json"
    keys.write_text('{"A8040A1E8901": {"k1": "%(k1)s", "k2": "%(k2)s"}}' % entry)
    assert main(["provision", "--meter", "A8040A1E8901", "--keys", str(keys),
                 "--flash", str(tmp_path / "m1.flash"), "--lmon", "7"]) == 0
    assert "11" * 16 not in capsys.readouterr().out
    net, port = neighbourhood(topology.demo_feeder(), tmp_path, boards=True)  # m1 boots from that image
    try:
        wait_until_ready(net)
        conc = Concentrator(port, keyring=KeyRing.from_dict({"A8040A1E8901": entry}))
        v = conc.read(parse_aca("A8040A1E8901"), [R.LMON], auth=True)
        assert int.from_bytes(v[R.LMON], "big") == 8  # after one NACK-10 resynchronisation
        assert conc.stats["resyncs"] == 1
    finally:
        net.close()


def test_read_auth_cli_on_the_emulated_feeder(tmp_path, capsys):
    keys = tmp_path / "keys.json"
    keys.write_text('{"A8040A1E8901": {"k1": "%s", "k2": "%s"}}' % ("11" * 16, "22" * 16))
    assert main(["read", "--meter", "A8040A1E8901", "--register", "last message order number",
                 "--auth", "--keys", str(keys), "--json", "--emulated"]) == 0
    out = capsys.readouterr().out
    assert '"value": 1' in out and "11" * 16 not in out
