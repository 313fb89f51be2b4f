"""Proves the TCP-to-RTU gateway's request path allocation-free: run on the unix port.

The firmware's own loop, TCP slave, gateway and RTU master (on the pty handed over as fd:N)
serve a Modbus TCP client socket in the same process; this script is also the field device on
the pty's other end, reading each RTU request and writing its answer while the heap is locked
(micropython.heap_lock: any allocation raises MemoryError). Covers an answer, an exception
answer, an answer in two pieces, noise before the answer, no answer (exception 0x0B at the
timeout) and the request after it to another unit. One line per case, then
"N passed, M failed".
"""

import binascii
import socket
import sys
import termios
import time

import board
from heaplock import Report, locked
from mbnode import startup, config
from mbnode.crc import crc16

FD = int(sys.argv[1])
DEVICE = sys.argv[2]
PORT = int(sys.argv[3])
TIMEOUT_MS = 100


def rtu(hex_text):
    body = bytearray(binascii.unhexlify(hex_text.replace(" ", "")))
    c = crc16(body, 0, len(body))
    return bytes(body + bytearray([c & 0xFF, c >> 8]))


def mbap(unit, pdu_hex):
    pdu = binascii.unhexlify(pdu_hex.replace(" ", ""))
    return bytes([0, 9, 0, 0, (len(pdu) + 1) >> 8, (len(pdu) + 1) & 0xFF, unit]) + pdu


CASES = [
    # (name, TCP request, the device's answer in pieces (None: it stays silent),
    #  expected TCP answer length, expected first two PDU bytes)
    ("fc03 x125 answered", mbap(17, "03 0000 007D"), [rtu("11 03 FA" + "1234" * 125)], 259, b"\x03\xfa"),
    ("fc16 x123 answered", mbap(17, "10 0000 007B F6" + "0001" * 123), [rtu("11 10 0000 007B")], 12, b"\x10\x00"),
    ("exception answered", mbap(17, "03 0200 0001"), [rtu("11 83 02")], 9, b"\x83\x02"),
    ("answer in two pieces", mbap(17, "04 0000 0002"), [rtu("11 04 04 00010002")[:4], rtu("11 04 04 00010002")[4:]],
     13, b"\x04\x04"),
    ("noise before the answer", mbap(17, "03 0000 0001"), [b"\x00\xff" + rtu("11 03 02 0007")], 11, b"\x03\x02"),
    ("no answer: 0x0B", mbap(18, "03 0000 0001"), None, 9, b"\x83\x0b"),
    ("next unit after a timeout", mbap(19, "01 0000 0010"), [rtu("13 01 02 FFFF")], 11, b"\x01\x02"),
]


# The script's state is global: a closure over more than five variables allocates when called
# (MicroPython passes closed-over values with the arguments, on the heap beyond that).
loop = dev = client = None
heard = bytearray(300)
resp = bytearray(300)


def serve_case(req, answer):
    client.write(req)
    for _ in range(3):
        loop.step(5)  # the request read and forwarded
    dev.readinto(heard)  # the RTU frame (what it was is not the point here)
    if answer is None:
        for _ in range(40):
            loop.step(10)  # until the timeout (and the answer 0x0B) has passed
        return
    for piece in answer:  # pieces follow each other as on a line: the master looks in between
        dev.write(piece)
        loop.step(0)
    for _ in range(3):
        loop.step(5)


def collect():
    time.sleep_ms(5)
    client.setblocking(False)
    n = client.readinto(resp) or 0
    client.setblocking(True)
    return n


def main():
    global loop, dev, client
    cfg = config.validate({"tcp": {"host": "127.0.0.1", "port": PORT},
                           "rtu": {"enabled": True, "mode": "master", "baud": 115200},
                           "gateway": {"enabled": True, "timeout_ms": TIMEOUT_MS},
                           "board": {"rtu_device": "fd:%d" % FD}}, *board.config_rules())
    loop, ready = startup.build(cfg, board)
    dev = open(DEVICE, "r+b")
    termios.setraw(dev.fileno())
    attrs = termios.tcgetattr(dev.fileno())
    attrs[6][5] = 0
    attrs[6][6] = 0
    termios.tcsetattr(dev.fileno(), termios.TCSANOW, attrs)
    client = socket.socket()
    client.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    for _ in range(5):
        loop.step(50)  # accept the client
    report = Report(28)
    for name, req, answer, size, head in CASES:

        def serve():
            serve_case(req, answer)

        err, n = locked(serve, collect)
        ok = err is None and n == size and bytes(resp[7:9]) == head
        report.line(name, ok, err, n, resp[7:9])
    return report.finish()


sys.exit(1 if main() else 0)
