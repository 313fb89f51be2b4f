"""Proves the system registers' request paths allocation-free: run on the unix port (not CPython).

The firmware's own loop, TCP slave and engine serve reads of the status block (FC03 and FC04,
the whole block), reads and writes of the settings block (FC03, FC06, FC16, FC22, FC23: the
device name, the unit id, the clock) and their exceptions from a client socket in the same
process while micropython.heap_lock() makes any heap allocation raise MemoryError; then the
status block's once-a-second timer tick, under the lock too. Prints one line each and a closing
"N passed, M failed" line. The save and reboot commands are not here: a save writes a file.
"""

import binascii
import socket
import sys
import time

import board
from heaplock import Report, locked
from mbnode import startup, config, pdu
from parts import made

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5041

REQUESTS = [
    # (name, request PDU, expected response length, expected first two PDU bytes)
    ("fc04 status x80", "04 2000 0050", 7 + 2 + 160, b"\x04\xa0"),
    ("fc03 status x80", "03 2000 0050", 7 + 2 + 160, b"\x03\xa0"),
    ("fc04 status uptime x2", "04 2000 0002", 7 + 2 + 4, b"\x04\x04"),
    ("fc03 settings x26", "03 2100 001A", 7 + 2 + 52, b"\x03\x34"),
    ("fc06 settings name", "06 2100 4142", 12, b"\x06\x21"),
    ("fc16 settings name x16", "10 2100 0010 20" + "4142" * 16, 12, b"\x10\x21"),
    ("fc06 settings unit id", "06 2110 0001", 12, b"\x06\x21"),
    ("fc16 settings clock x2", "10 2116 0002 04 F100 6553", 12, b"\x10\x21"),
    ("fc22 settings parity", "16 2113 0000 0002", 14, b"\x16\x21"),
    ("fc23 r status w name", "17 2000 0050 2100 0001 02 4344", 7 + 2 + 160, b"\x17\xa0"),
    ("exception 02 past status", "04 204F 0002", 9, b"\x84\x02"),
    ("exception 02 write status", "06 2000 0001", 9, b"\x86\x02"),
    ("exception 03 bad parity", "06 2113 0003", 9, b"\x86\x03"),
]


def frame(pdu_hex, unit=1):
    p = binascii.unhexlify(pdu_hex.replace(" ", ""))
    return bytes([0, 7, 0, 0, (len(p) + 1) >> 8, (len(p) + 1) & 0xFF, unit]) + p


def main():
    cfg = config.validate({"tcp": {"host": "127.0.0.1", "port": PORT},
                           "system": {"settings": "/nonexistent/alloc-sysregs.bin"}}, *board.config_rules())
    engines = made(pdu, "Engine")
    loop, ready = startup.build(cfg, board)
    status = engines[0].blocks[0]
    c = socket.socket()
    c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    for _ in range(5):
        loop.step(50)  # accept the client
    resp = bytearray(300)
    report = Report(26)
    for name, p, size, head in REQUESTS:
        req = frame(p)

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
        ok = err is None and n == size and bytes(resp[7:9]) == head
        report.line(name, ok, err, n, resp[7:9])

    def tick():
        status.tick(time.ticks_add(status.last, 1000))

    err, _ = locked(tick, lambda: None)
    report.check("status timer tick", err is None and status.secs >= 2, err)
    return report.finish()


sys.exit(1 if main() else 0)
