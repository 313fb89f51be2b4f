"""Proves the TCP request path allocation-free: run on the unix port (not CPython).

The firmware's own loop, TCP slave and engine serve requests from a client socket in the same
process while micropython.heap_lock() makes any heap allocation raise MemoryError. Prints one
line per request kind and a closing "N passed, M failed" line.

Every write reaches two output subscribers (DataModel.subscribe), also under the lock.

Besides one request of each kind: a request arriving in pieces (the header and the body read
in parts), and answers the socket does not take at once (a client that pipelines requests and
reads late): the partial write that leaves the rest in the slot, and its POLLOUT resume.
"""

import binascii
import socket
import sys

import board
import micropython
from heaplock import Heard, Report, locked
from mbnode import startup, config, tcp
from mbnode.datamodel import HOLDING, DataModel
from parts import made

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
    cfg = config.validate({"tcp": {"host": "127.0.0.1", "port": PORT}}, *board.config_rules())
    slaves = made(tcp, "TcpSlave")
    model = DataModel()
    heard = (Heard(), Heard())
    for h in heard:
        model.subscribe(h.changed)
    loop, ready = startup.build(cfg, board, model)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, 8, 1024)  # SO_RCVBUF (Linux; the module lacks the name): a slow reader
    c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    for _ in range(5):
        loop.step(50)  # accept the client
    resp = bytearray(300)
    report = Report(26)
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
    writes = 2 * len([r for r in REQUESTS if r[1] and r[1][:2] in ("05", "06", "0F", "10", "16", "17")])
    # Each write ran twice (the warm-up, then locked); the last one was FC23's to 0x0040.
    heard_all = all(h.count == writes and h.last == [HOLDING, 0x40, 0x79] for h in heard)
    report.line("output subscribers x2", heard_all, "heard %d, %d" % (heard[0].count, heard[1].count), 0, b"")
    in_pieces(c, loop, resp, report)
    pipelined(c, loop, [conn for conn in slaves[0].conns if conn.sock is not None][0], report)
    return report.finish()


def in_pieces(c, loop, resp, report):
    """One request in three writes (3 header bytes, 5 more, the rest), served after each."""
    req = frame("03 0000 0002")
    pieces = (req[:3], req[3:8], req[8:])

    def serve():
        for piece in pieces:
            c.write(piece)
            loop.step(200)

    def collect():
        c.setblocking(False)
        n = c.readinto(resp) or 0
        c.setblocking(True)
        return n

    err, n = locked(serve, collect)
    report.line("fc03 in three pieces", err is None and n == 13, err, n, resp[7:9])


def pipelined(c, loop, conn, report):
    """COUNT requests for 125 registers written before any answer is read, into a 1 KB
    receive buffer: the slave's writes come up short, the rest of an answer waits in the slot
    and leaves on POLLOUT while the client reads. Run twice, the second time with the heap
    locked during every step of the loop."""
    count = 100
    req = bytearray(12 * count)
    for i in range(count):
        req[12 * i:12 * i + 12] = frame("03 0000 007D")
        req[12 * i] = i >> 8
        req[12 * i + 1] = i & 0xFF
    buf = bytearray(4096)
    got = bytearray()

    def drain():
        c.setblocking(False)
        while True:
            n = c.readinto(buf)
            if not n:
                break
            got.extend(buf[:n])
        c.setblocking(True)

    def step(lock):
        # One loop step, with the heap locked when `lock`; its MemoryError or None.
        if lock:
            micropython.heap_lock()
        try:
            loop.step(20)
        except MemoryError as e:
            return e
        finally:
            if lock:
                micropython.heap_unlock()
        return None

    def steps(lock, until):
        # Steps until until(), at most 400; the first MemoryError, or OSError if never reached.
        for _ in range(400):
            if until():
                return None
            e = step(lock)
            if e is not None:
                return e
        return None if until() else OSError("not reached in 400 steps")

    for lock in (False, True):
        got[:] = b""
        c.write(req)
        e_short = steps(lock, lambda: conn.out)  # an answer came up short
        drain()
        e_resume = steps(lock, lambda: not conn.out)  # ... and left on POLLOUT
        e_rest = None
        for _ in range(4000):  # the client reads, the slave answers, until every answer is in
            drain()
            if len(got) >= 259 * count or e_rest is not None:
                break
            e_rest = step(lock)
        if lock:
            whole = len(got) == 259 * count and all(
                got[259 * i] == i >> 8 and got[259 * i + 1] == i & 0xFF and got[259 * i + 7:259 * i + 9] == b"\x03\xfa"
                for i in range(count))
            report.line("answer comes up short", e_short is None, e_short, 259, b"\x03\xfa")
            report.line("the rest leaves on POLLOUT", e_resume is None, e_resume, 259, b"\x03\xfa")
            report.line("pipelined x%d answered" % count, e_rest is None and whole, e_rest, len(got), got[7:9])


sys.exit(1 if main() else 0)
