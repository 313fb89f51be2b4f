"""Proves the RTU request path allocation-free: run on the unix port (not CPython).

The firmware's own loop, RTU link (on the pty the test hands over as fd:N), diagnostics and
engine serve requests written by a client on the pty's other end, in the same process, while
micropython.heap_lock() makes any heap allocation raise MemoryError. Covers the length-known path,
a request that arrives in pieces (the link waits on its loop timer for the bytes still due), the
silence path (unknown length, garbage in front of a frame, a frame cut short) and the no-reply
paths; then rtu.response_length, which a master calls on every byte it reads, over every
response of tests/core/rtu_cases.py and each of their prefixes.
Prints one line per request and a closing "N passed, M failed" line.
"""

import binascii
import sys
import termios
import time

import board
import rtu_cases
from heaplock import Report, locked
from mbnode import startup, config
from mbnode.crc import crc16
from mbnode.rtu import response_length

FD = int(sys.argv[1])
CLIENT = sys.argv[2]


def frame(pdu_hex, unit=1):
    body = bytearray(binascii.unhexlify(pdu_hex.replace(" ", "")))
    body = bytearray([unit]) + body
    c = crc16(body, 0, len(body))
    return bytes(body + bytearray([c & 0xFF, c >> 8]))


REQUESTS = [
    # (name, request frame, expected reply length, expected first two PDU bytes)
    ("fc03 x125", frame("03 0000 007D"), 255, b"\x03\xfa"),
    ("fc04 memory x125", frame("04 1000 007D"), 255, b"\x04\xfa"),
    ("fc01 x576", frame("01 0000 0240"), 77, b"\x01\x48"),
    ("fc15 x576", frame("0F 0000 0240 48" + "A5" * 72), 8, b"\x0f\x00"),
    ("fc16 x123", frame("10 0040 007B F6" + "1234" * 123), 8, b"\x10\x00"),
    ("fc23 r125 w121", frame("17 0000 007D 0040 0079 F2" + "0001" * 121), 255, b"\x17\xfa"),
    ("fc43 regular stream", frame("2B 0E 02 00"), 3 + 7 + 8 + 7 + 7 + 21, b"\x2b\x0e"),
    ("fc07", frame("07"), 5, b"\x07\x00"),
    ("fc08/0B bus messages", frame("08 000B 0000"), 8, b"\x08\x00"),
    ("fc08/00 echo (silence)", frame("08 0000 1234 5678"), 10, b"\x08\x00"),
    ("fc11", frame("0B"), 8, b"\x0b\x00"),
    # 11 requests before it, each sent twice, 2 events each; then the warm-up FC12's 2 + its 1
    ("fc12 event log", frame("0C"), 5 + 6 + 47, b"\x0c\x35"),
    ("fc17", frame("11"), 5 + 2 + 6, b"\x11\x08"),
    ("exception 02", frame("03 0140 0001"), 5, b"\x83\x02"),
    ("unknown fc -> 01 (silence)", frame("41 0000"), 5, b"\xc1\x01"),
    ("noise then frame (silence)", b"\x55\xaa\x13" + frame("03 0000 0001"), 7, b"\x03\x02"),
    ("bad CRC: no reply", frame("03 0000 0001")[:-1] + b"\x00", 0, b""),
    ("other unit: no reply", frame("03 0000 0001", unit=9), 0, b""),
    ("broadcast write: no reply", frame("06 0010 0001", unit=0), 0, b""),
]

# (name, first piece, the rest written while the locked loop waits for it, reply length, head)
PIECES = [
    ("fc16 x123 in two pieces", frame("10 0040 007B F6" + "4321" * 123)[:100],
     frame("10 0040 007B F6" + "4321" * 123)[100:], 8, b"\x10\x00"),
    ("fc03 byte by byte", frame("03 0000 0001")[:1], frame("03 0000 0001")[1:], 7, b"\x03\x02"),
    ("cut short: no reply", frame("10 0040 0002 04 00010002")[:9], b"", 0, b""),
]


def main():
    cfg = config.validate({"tcp": {"enabled": False}, "rtu": {"enabled": True, "baud": 115200},
                           "identity": {"device_name": "mbnode"},
                           "board": {"rtu_device": "fd:%d" % FD}}, *board.config_rules())
    loop, ready = startup.build(cfg, board)
    client = open(CLIENT, "r+b")
    termios.setraw(client.fileno())
    attrs = termios.tcgetattr(client.fileno())
    attrs[6][5] = 0
    attrs[6][6] = 0
    termios.tcsetattr(client.fileno(), termios.TCSANOW, attrs)
    resp = bytearray(300)
    report = Report(28)
    for name, req, size, head in REQUESTS:

        def send():
            client.write(req)
            time.sleep_ms(2)

        def serve():
            for _ in range(4):
                loop.step(10)

        def collect():
            time.sleep_ms(5)
            return client.readinto(resp) or 0

        err, n = locked(serve, collect, send)
        ok = err is None and n == size and (n == 0 or (bytes(resp[1:3]) == head and crc16(resp, 0, n) == 0))
        report.line(name, ok, err, n, resp[1:3])
    for name, first, rest, size, head in PIECES:

        def send():
            client.write(first)

        def serve():
            loop.step(10)  # reads the first piece, sets the timer for the rest
            client.write(rest)
            for _ in range(6):
                loop.step(10)

        def collect():
            time.sleep_ms(5)
            return client.readinto(resp) or 0

        err, n = locked(serve, collect, send)
        ok = err is None and n == size and (n == 0 or (bytes(resp[1:3]) == head and crc16(resp, 0, n) == 0))
        report.line(name, ok, err, n, resp[1:3])
    cases = [(bytearray(rtu_cases.frame(1, pdu)), req_len, length)
             for pdu, req_len, length, _ in rtu_cases.RESPONSE_CASES]
    told = [0]

    def lengths():
        k = 0
        for f, req_len, length in cases:
            for n in range(len(f) + 1):
                response_length(f, 0, n, req_len)
            k += response_length(f, 0, len(f), req_len) == length
        told[0] = k

    err, _ = locked(lengths, lambda: None)
    report.check("response_length, %d frames" % len(cases), err is None and told[0] == len(cases), err)
    return report.finish()


sys.exit(1 if main() else 0)
