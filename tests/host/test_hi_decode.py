"""`smitp decode` of Meters and More Host Interface frames, under both checksum rules."""

import json

import pytest

from smitp.cli import main
from smitp.decode import decode


def test_slave_data_indication_down_to_the_al():
    for hexa, rule in (("02 04 26 00 01 02 00 3F 9D 8A", "Microchip CRC-16"), ("02 04 26 00 01 02 00 3F 6C 00", "byte sum")):
        lines = decode(hexa)
        assert lines[0][0] == "HI" and rule in lines[0][1] and "Slave_Data.indication" in lines[0][1]
        assert lines[1] == ("HI", "protocol 0, ECC 0, ReqID 1")
        assert lines[2][0] == "AL" and "READ.REQ" in lines[2][1] and "0x003F" in lines[2][1]


def test_other_commands_and_the_json_form(capsys):
    assert "reset cause 3 (BIO_Reset)" in decode("02 00 3E 83 83 3E")[1][1]
    assert "error 0x03 (WPV" in decode("02 00 27 03 03 27")[1][1]
    assert "MIB 12 (internal timing)" in decode("02 09 0A 0C 14 00 E8 03 00 00 FA 00 01 35 C1")[1][1]
    assert "(repetition)" in decode("03 00 2C 55 55 2C")[0][1]
    assert main(["decode", "--json", "02 00 2C 55 81 00"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["layer"] == "HI" and out[0]["fields"]["checksum"] == "byte sum" and out[0]["fields"]["payload"] == "55"


@pytest.mark.parametrize("bad", ["02 04 26 00 01 02 00 3F 9D 8B", "02 01 26 00 00 26"])
def test_bad_frames_are_one_line_errors(bad, capsys):
    assert main(["decode", bad]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
