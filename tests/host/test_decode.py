"""`smitp decode`: layer by layer, and one clear line for bad input."""

import subprocess
import sys

import pytest

from meter import st7580
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
