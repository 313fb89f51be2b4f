"""RTU core test data, shared by CPython (tests/test_rtu_core.py) and MicroPython (the unix port and
the emulated MCUs of tests/mcu): CRC-16/MODBUS values, request lengths and response lengths.

The CRC is viper code on MicroPython (mbnode.crc), so running these cases on ARM and RISC-V proves
the native code gives the same answers as on x86. Expected values come from the Modbus over
Serial Line spec and are worked out by hand, never produced by the code under test.
"""

import binascii

from mbnode.crc import crc16
from mbnode.rtu import MORE, UNKNOWN, request_length, response_length

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

# Responses: (PDU as hex after the address byte, length of the request answered (0: not given),
# length of the whole response frame with address and CRC, fewest bytes from which that length
# can be told). Every prefix shorter than that must give MORE. Worked out from the response
# tables of the Modbus Application Protocol V1.1b3 (section 6), most of them its examples.
DEVID_OBJECTS = "00 16" + "43" * 22 + "01 0D" + "50" * 13 + "02 05" + "56" * 5  # 6.21's example
RESPONSE_CASES = [
    ("83 02", 0, 5, 2),  # exception: function code + 0x80, exception code
    ("80 01", 0, 5, 2),  # the generic 0x80 some slaves send
    ("AB 01", 0, 5, 2),
    ("01 03 CD6B05", 0, 8, 3),  # byte count, then that many bytes
    ("02 03 ACDB35", 0, 8, 3),
    ("03 06 022B 0000 0064", 0, 11, 3),
    ("04 02 000A", 0, 7, 3),
    ("03 00", 0, 5, 3),
    ("05 00AC FF00", 0, 8, 2),
    ("06 0001 0003", 0, 8, 2),
    ("07 6D", 0, 5, 2),
    ("08 0000 A537", 8, 8, 4),  # return query data: the request echoed, as long as it was
    ("08 0000 0102030405", 11, 11, 4),
    ("08 0000", 6, 6, 4),
    ("08 0000 A537", 0, UNKNOWN, 4),  # without the request's length only silence ends it
    ("08 000B 0002", 0, 8, 4),  # the other sub-functions: sub-function and one word
    ("08 0001 FF00", 10, 8, 4),
    ("08 0100 0000", 0, 8, 4),
    ("0B 0000 0108", 0, 8, 2),
    ("0C 08 0000 0108 0121 2000", 0, 13, 3),
    ("0F 0013 000A", 0, 8, 2),
    ("10 0001 0002", 0, 8, 2),
    ("11 04 2A FF 4142", 0, 9, 3),
    ("14 0C 05 06 0DFE 0020 05 06 33CD 0040", 0, 17, 3),
    ("15 0D 06 0004 0007 0003 06AF 04BE 100D", 0, 18, 3),
    ("16 0004 00F2 0025", 0, 10, 2),
    ("17 0C 00FE 0ACD 0001 0003 000D 00FF", 0, 17, 3),
    ("18 0006 0002 01B8 1284", 0, 12, 4),  # 16-bit byte count
    ("2B 0E 01 01 00 00 03 " + DEVID_OBJECTS, 0, 56, 49),  # the last object's length is byte 48
    ("2B 0E 04 81 00 00 00", 0, 10, 8),  # no objects
    ("2B 0E 04 81 00 00 01 05 00", 0, 12, 10),  # one empty object
    ("2B 0D 00 00 00", 0, UNKNOWN, 3),  # MEI type 13 (CANopen): its length is not ours to tell
    ("41 0000", 0, UNKNOWN, 2),  # no such function code
    ("00 0000", 0, UNKNOWN, 2),
    ("09 0000", 0, UNKNOWN, 2),
]

# (response bytes received so far as hex, what response_length says): byte counts that promise
# more than a frame can hold are still told, the caller decides what to do with them.
RESPONSE_PARTIAL_CASES = [
    ("01 03 FF", 260),
    ("01 18 FFFF", 65541),
    ("01 2B 0E 01 01 00 00 01 00 FF", 267),  # the last object's header in: its value need not be
    ("01 2B 0E 01 01 00 00 02 00 FF" + "00" * 255 + "01", MORE),  # the second's length not yet in
    ("01 2B 0E 01 01 00 00 02 00 FF" + "00" * 255 + "01 00", 269),
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
    for pdu, req_len, length, needed in RESPONSE_CASES:
        f = frame(1, pdu)
        buf = bytearray(b"\xee" * 300)  # what lies beyond the bytes received must not count
        for n in range(len(f) + 1):
            if n:
                buf[1 + n] = f[n - 1]
            want = MORE if n < needed else length
            check(response_length(buf, 2, n, req_len), want, "response_length(%s, %d of %d bytes)" % (pdu, n, len(f)))
    for data, want in RESPONSE_PARTIAL_CASES:
        b = hx(data)
        check(response_length(b, 0, len(b)), want, "response_length(%s)" % data[:40])
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
