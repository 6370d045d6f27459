# smitp-meter firmware: sans-io protocol layers for the SMITP B-PSK PLC profile.
import sys

VERSION = "0.1.0"


def firmware_id(board_name):
    """Firmware identification: project, version, runtime and board."""
    v = sys.implementation.version
    return "smitp-meter %s %s %d.%d.%d %s" % (VERSION, sys.implementation.name, v[0], v[1], v[2], board_name)
