"""Helpers for the pin-board scripts that run on the unix port with the fake machine/network
modules (tests/fakes): Modbus requests through the fake UART and over TCP, bounded waits on the
event loop, and the pass/fail report the pytest side reads."""

import socket
import struct
import time

import machine
from mbnode.crc import crc16

failures = []


def check(what, got, want):
    if got != want:
        failures.append("%s: got %r, want %r" % (what, got, want))


def report():
    for f in failures:
        print("FAIL", f)
    print("%d passed, %d failed" % (1 if not failures else 0, 1 if failures else 0))
    return 1 if failures else 0


def run_until(loop, done, limit_ms):
    """Step the loop until done() or limit_ms passed; returns done()."""
    start = time.ticks_ms()
    while not done():
        if time.ticks_diff(time.ticks_ms(), start) > limit_ms:
            return done()
        loop.step(20)
    return True


def rtu(loop, uart, pdu, unit=1):
    """One RTU request through the fake UART: the reply's PDU (CRC checked), or None."""
    frame = bytearray(bytes([unit]) + pdu)
    c = crc16(frame, 0, len(frame))
    frame += bytes([c & 0xFF, c >> 8])
    first = len(machine.LOG)
    uart.feed(frame)  # on the line at the baud rate, delivered in FIFO groups

    def written():
        return any(e[0] == "write" for e in machine.LOG[first:])

    if not run_until(loop, written, 2000):
        return None
    reply = [e[1] for e in machine.LOG[first:] if e[0] == "write"][0]
    check("reply CRC", crc16(reply, 0, len(reply)), 0)
    check("reply unit", reply[0], unit)
    return reply[1:-2]


class Tcp:
    """A Modbus TCP client socket to the firmware under test, served by stepping its loop."""

    def __init__(self, loop, port):
        self.loop = loop
        self.tid = 0
        self.s = socket.socket()
        self.s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.s.setblocking(False)

    def request(self, pdu):
        self.tid += 1
        self.s.write(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, 1) + pdu)
        got = []

        def answered():
            try:
                data = self.s.recv(300)
            except OSError:
                data = None
            if data:
                got.append(data)
            return bool(got)

        run_until(self.loop, answered, 2000)
        return got[0][7:] if got else None
