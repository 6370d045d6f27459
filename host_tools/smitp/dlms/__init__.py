"""The concentrator's side of the DLMS/COSEM SMITP B-PSK profile: the convergence layer
client (cl), the xDLMS client (client) and the `smitp dlms` command (command)."""
