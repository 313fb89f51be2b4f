"""Proves the TCP request path allocation-free: run on the unix port (not CPython).

The firmware's own loop, TCP slave and engine serve requests from a client socket in the same
process while micropython.heap_lock() makes any heap allocation raise MemoryError. Prints one
line per request kind and a closing "N passed, M failed" line.
"""

import binascii
import socket
import sys

import board
from heaplock import Report, locked
from mbnode import app, config

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5040

REQUESTS = [
    # (name, request PDU, expected response length, expected first two PDU bytes)
    ("fc01 x576", "01 0000 0240", 81, b"\x01\x48"),
    ("fc02 x64", "02 0003 0040", 17, b"\x02\x08"),
    ("fc03 x125", "03 0000 007D", 259, b"\x03\xfa"),
    ("fc03 memory x125", "03 1000 007D", 259, b"\x03\xfa"),
    ("fc04 x125", "04 0040 007D", 259, b"\x04\xfa"),
    ("fc05", "05 0010 FF00", 12, b"\x05\x00"),
    ("fc06", "06 0010 0123", 12, b"\x06\x00"),
    ("fc15 x576", "0F 0000 0240 48" + "A5" * 72, 12, b"\x0f\x00"),
    ("fc16 x123", "10 0040 007B F6" + "1234" * 123, 12, b"\x10\x00"),
    ("fc22", "16 0041 00F2 0025", 14, b"\x16\x00"),
    ("fc23 r125 w121", "17 0000 007D 0040 0079 F2" + "0001" * 121, 259, b"\x17\xfa"),
    ("fc43 regular stream", "2B 0E 02 00", 7 + 7 + 8 + 7 + 7 + 21, b"\x2b\x0e"),
    ("fc43 one object", "2B 0E 04 01", 7 + 7 + 7, b"\x2b\x0e"),
    ("exception 02", "03 0140 0001", 9, b"\x83\x02"),
    ("exception 03", "03 0000 0000", 9, b"\x83\x03"),
    ("exception 01", "41 0000", 9, b"\xc1\x01"),
    ("wrong unit: no reply", None, 0, b""),
]


def frame(pdu_hex, unit=1):
    pdu = binascii.unhexlify(pdu_hex.replace(" ", ""))
    return bytes([0, 7, 0, 0, (len(pdu) + 1) >> 8, (len(pdu) + 1) & 0xFF, unit]) + pdu


def main():
    cfg = config.validate({"tcp": {"host": "127.0.0.1", "port": PORT}}, board.CONFIG_SCHEMA)
    loop, ready = app.build(cfg, board)
    c = socket.socket()
    c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    for _ in range(5):
        loop.step(50)  # accept the client
    resp = bytearray(300)
    report = Report(22)
    for name, pdu, size, head in REQUESTS:
        req = frame(pdu) if pdu else frame("03 0000 0001", unit=9)

        def serve():
            c.write(req)
            loop.step(200)

        def collect():
            c.setblocking(False)
            n = c.readinto(resp) or 0
            c.setblocking(True)
            return n

        err, n = locked(serve, collect)
        # A MemoryError inside the engine would come back as exception 04: check the answer.
        ok = err is None and n == size and (n == 0 or bytes(resp[7:9]) == head)
        report.line(name, ok, err, n, resp[7:9])
    return report.finish()


sys.exit(1 if main() else 0)
