"""RTU core test data, shared by CPython (tests/test_rtu_core.py) and MicroPython (the unix port and
the emulated MCUs of tests/mcu): CRC-16/MODBUS values and request lengths.

The CRC is viper code on MicroPython (mbnode.crc), so running these cases on ARM and RISC-V proves
the native code gives the same answers as on x86. Expected values come from the Modbus over
Serial Line spec and are worked out by hand, never produced by the code under test.
"""

import binascii

from mbnode.crc import crc16
from mbnode.rtu import MORE, UNKNOWN, request_length

# (frame bytes as hex, CRC-16/MODBUS of them)
CRC_CASES = [
    ("11 03 006B 0003", 0x8776),  # Modbus over Serial Line V1.02, 6.2.2 example
    ("01 03 0000 000A", 0xCDC5),
    ("", 0xFFFF),
]

# (PDU as hex after the address byte, length of the whole request frame with address and CRC)
LENGTH_CASES = [
    ("01 0000 0001", 8), ("02", 8), ("03 0000 0001", 8), ("04", 8), ("05 0000 FF00", 8), ("06 0000 0001", 8),
    ("0F 0000 0010 02 FFFF", 11), ("10 0000 0002 04 00010002", 13), ("16 0000 FFFF 0000", 10),
    ("17 0000 0001 0000 0001 02 0001", 15), ("07", 4), ("0B", 4), ("0C", 4), ("11", 4), ("2B 0E 01 00", 7),
    ("08 000B 0000", 8), ("08 0001 FF00", 8),
]

# (bytes received so far as hex, what request_length says)
PARTIAL_CASES = [
    ("01", MORE),
    ("01 10 0000 00", MORE),  # FC16: byte count not in yet
    ("01 17 0000 0001 0000 00", MORE),
    ("01 08 00", MORE),
    ("01 08 0000 1234", UNKNOWN),  # FC08/00 echo: any data length
    ("01 41 0000", UNKNOWN),
]


def hx(text):
    return binascii.unhexlify(text.replace(" ", ""))


def frame(addr, pdu_hex):
    """A whole request frame: address, PDU, CRC low byte first."""
    body = bytearray([addr]) + hx(pdu_hex)
    c = crc16(body, 0, len(body))
    return bytes(body + bytearray([c & 0xFF, c >> 8]))


def run():
    """(number of checks, failure messages)."""
    fails = []
    checks = [0]

    def check(got, want, what):
        checks[0] += 1
        if got != want:
            fails.append("%s = %r, expected %r" % (what, got, want))

    for data, want in CRC_CASES:
        b = hx(data)
        check(crc16(b, 0, len(b)), want, "crc16(%s)" % data)
        check(crc16(b"\xAA\xBB" + b + b"\xCC", 2, len(b)), want, "crc16(%s) at offset 2" % data)
    f = frame(1, "03 0000 0001")
    check(f[-2:], hx("84 0A"), "CRC bytes of 01 03 0000 0001")
    check(crc16(f, 0, len(f)), 0, "CRC over a whole frame")
    for pdu, want in LENGTH_CASES:
        f = frame(1, pdu)
        check(request_length(f, 0, len(f)), want, "request_length(%s)" % pdu)
        check(request_length(b"\xee\xee" + f, 2, len(f)), want, "request_length(%s) at offset 2" % pdu)
    for data, want in PARTIAL_CASES:
        b = hx(data)
        check(request_length(b, 0, len(b)), want, "request_length(%s)" % data)
    return checks[0], fails


def main():
    checks, fails = run()
    for line in fails:
        print("FAIL", line)
    print("%d passed, %d failed" % (checks - len(fails), len(fails)))
    return len(fails)


if __name__ == "__main__":
    import sys

    sys.exit(1 if main() else 0)
