"""CRC-16/MODBUS bit by bit, as the serial-line spec describes it: the fakes' own, independent
of the firmware's table implementation (mbnode.crc), so that a device emulated here cannot share
a mistake with the code under test."""


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
