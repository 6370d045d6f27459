# smitp-meter firmware: sans-io protocol layers for the SMITP B-PSK PLC profile.
VERSION = "0.1.0"
