"""mbnode: a Modbus RTU/TCP slave for MicroPython boards.

The modules that do not touch sockets or hardware (datamodel, pdu, devid, config, memory, fast)
are the protocol core: they run unchanged on MicroPython and CPython.
"""

VERSION = "0.1.0"
