"""CRC-16/MODBUS for RTU frames, allocation-free: a viper loop over a 512-byte table built at
import (bench/crc.py measures it against bitwise loops). Its own module so a slave without RTU
does not carry the table. On CPython the same source runs as plain Python (see mbnode.fast).
"""

try:
    import micropython
except ImportError:  # CPython
    from mbnode.fast import micropython, ptr8


def _crc_table():
    # CRC-16/MODBUS (reflected poly 0xA001) of each byte value, as 256 little-endian words.
    t = bytearray(512)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t[2 * i] = c & 0xFF
        t[2 * i + 1] = c >> 8
    return t


_CRC = _crc_table()


@micropython.viper
def crc16(buf, start: int, n: int) -> int:
    # CRC-16/MODBUS (init 0xFFFF) of buf[start:start+n]; on the wire the low byte goes first.
    b = ptr8(buf)
    t = ptr8(_CRC)
    crc = 0xFFFF
    i = start
    end = start + n
    while i < end:
        k = ((crc ^ b[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ (t[k] | (t[k + 1] << 8))
        i += 1
    return crc
