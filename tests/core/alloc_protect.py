"""Proves write protection allocation-free on its request paths: run on the unix port.

The firmware (startup.build with a "protect" section, mbnode.protect's guard on the Engine) serves
a client connected from 127.0.0.1 (a trusted client) and one bound to 127.0.0.2 (not trusted)
in the same process, while micropython.heap_lock() makes any heap allocation raise MemoryError:
writes refused (exception 02) and writes let through, at the edges of the ranges, and a read of
a protected range. Then the Engine directly with the RTU and MQTT sources (what the RTU line and
the MQTT bridge pass). Prints one line per request and "N passed, M failed".
"""

import binascii
import socket
import sys

import board
from heaplock import Report, locked
from mbnode import startup, config, tcp
from mbnode.datamodel import DataModel
from parts import made

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5041

PROTECT = {
    "read_only": {"coils": ["0x0008-0x000F"], "holding_registers": ["0x0010-0x0011", "0x1000-0x1003"]},
    "trusted_only": {"coils": ["0x0020-0x0027"], "holding_registers": ["0x0020-0x002F"]},
    "trusted_clients": ["127.0.0.1"],
}

# (name, client: "trusted" / "other", request PDU, expected first two answer bytes)
TCP = [
    ("trusted fc05 trusted-only 0x0020", "trusted", "05 0020 FF00", b"\x05\x00"),
    ("trusted fc16 x16 trusted-only", "trusted", "10 0020 0010 20" + "0001" * 16, b"\x10\x00"),
    ("trusted fc05 read-only 0x0008", "trusted", "05 0008 FF00", b"\x85\x02"),
    ("trusted fc16 read-only 0x0011", "trusted", "10 0011 0001 02 0001", b"\x90\x02"),
    ("trusted fc23 write read-only", "trusted", "17 0000 0002 000F 0002 04 00010002", b"\x97\x02"),
    ("trusted fc22 trusted-only 0x002F", "trusted", "16 002F 00F2 0025", b"\x16\x00"),
    ("other fc05 trusted-only 0x0020", "other", "05 0020 FF00", b"\x85\x02"),
    ("other fc15 x9 into 0x0020", "other", "0F 0018 0009 02 FF01", b"\x8f\x02"),
    ("other fc15 x8 below 0x0020", "other", "0F 0018 0008 01 FF", b"\x0f\x00"),
    ("other fc06 trusted-only 0x002F", "other", "06 002F 0001", b"\x86\x02"),
    ("other fc06 0x0030", "other", "06 0030 0001", b"\x06\x00"),
    ("other fc16 memory 0x1002 x2", "other", "10 1002 0002 04 00010002", b"\x90\x02"),
    ("other fc16 memory 0x1004 x2", "other", "10 1004 0002 04 00010002", b"\x10\x10"),
    ("other fc03 read-only read", "other", "03 0010 0002", b"\x03\x04"),
]

# (name, source, request PDU, expected first two answer bytes): the Engine as the RTU line (1)
# and the MQTT bridge (3) call it.
ENGINE = [
    ("rtu fc05 trusted-only", 1, "05 0027 FF00", b"\x85\x02"),
    ("rtu fc05 0x0028", 1, "05 0028 FF00", b"\x05\x00"),
    ("rtu fc16 read-only", 1, "10 000F 0002 04 00010002", b"\x90\x02"),
    ("mqtt fc06 trusted-only", 3, "06 0020 0001", b"\x86\x02"),
    ("mqtt fc06 0x001F", 3, "06 001F 0001", b"\x06\x00"),
    ("mqtt fc15 read-only", 3, "0F 000F 0001 01 01", b"\x8f\x02"),
]


def frame(pdu_hex, unit=1):
    pdu = binascii.unhexlify(pdu_hex.replace(" ", ""))
    return bytes([0, 7, 0, 0, (len(pdu) + 1) >> 8, (len(pdu) + 1) & 0xFF, unit]) + pdu


def main():
    cfg = config.validate({"tcp": {"host": "127.0.0.1", "port": PORT}, "protect": PROTECT}, *board.config_rules())
    slaves = made(tcp, "TcpSlave")
    loop, ready = startup.build(cfg, board, DataModel())
    print(ready)
    engine = slaves[0].engine
    clients = {}
    for name, source in (("trusted", "127.0.0.1"), ("other", "127.0.0.2")):
        c = socket.socket()
        c.bind(socket.getaddrinfo(source, 0)[0][-1])
        c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
        clients[name] = c
        for _ in range(5):
            loop.step(50)  # accept the client
    report = Report(34)
    sources = sorted(conn.source for conn in slaves[0].conns if conn.sock is not None)
    report.check("sources at accept: TCP, TCP trusted", sources == [2, 4], sources)
    resp = bytearray(300)
    for name, who, pdu, head in TCP:
        c = clients[who]
        req = frame(pdu)

        def serve():
            c.write(req)
            loop.step(200)

        def collect():
            c.setblocking(False)
            n = c.readinto(resp) or 0
            c.setblocking(True)
            return n

        err, n = locked(serve, collect)
        report.line(name, err is None and bytes(resp[7:9]) == head, err, n, resp[7:9])
    for name, source, pdu, head in ENGINE:
        req = binascii.unhexlify(pdu.replace(" ", ""))
        out = [0]

        def serve():
            out[0] = engine.handle(req, 0, len(req), resp, 0, None, source)

        err, n = locked(serve, lambda: out[0])
        report.line(name, err is None and bytes(resp[:2]) == head, err, n, resp[:2])
    return report.finish()


sys.exit(1 if main() else 0)
