"""The Pico board's RTU slave through the fake UART's model of the rp2 driver (tests/fakes:
bytes paced at the baud rate, receive interrupt at FIFO level 4 or 32 bit times of quiet,
any() empties the FIFO, flush() waits for the last stop bit): every function code at its
largest quantity and 100 write + read pairs with idle pauses, each request counted, no
retries. The onboard pin scan (a loop timer every 20 ms) runs meanwhile, as on the board.

    micropython uart_line.py BAUD      (MICROPYPATH=fakes:boards/pico:boards/common:firmware)

Prints one line per kind of request and a closing "N passed, M failed" line.
"""

import random
import struct
import sys
import time

import board
import machine
from mbnode import startup, config
from mbnode.crc import crc16

BAUD = int(sys.argv[1])


def frame(pdu):
    f = bytearray(b"\x01" + pdu)
    c = crc16(f, 0, len(f))
    return bytes(f + bytearray([c & 0xFF, c >> 8]))


WAITS = []  # reads that asked for more than any() said: the real driver would have waited


def exchange(loop, uart, req):
    """Feed req on the line and run the loop until the reply is out (at most 2 s): the reply
    frame, or b"" when none came."""
    del machine.LOG[:]
    uart.feed(frame(req))
    deadline = time.ticks_add(time.ticks_ms(), 2000)
    while ("flush",) not in machine.LOG and time.ticks_diff(deadline, time.ticks_ms()) > 0:
        loop.step(10)
    WAITS.extend(e for e in machine.LOG if e[0] == "read waits")
    writes = [e[1] for e in machine.LOG if e[0] == "write"]
    return writes[0] if writes else b""


def main():
    cfg = config.validate({
        "rtu": {"baud": BAUD, "parity": "E"},
        "channels": {"coils": ["0x0000-0x023F"], "discrete_inputs": ["0x0000-0x0003"],
                     "holding_registers": ["0x0000-0x0001", "0x1000-0x17FF"],
                     "input_registers": ["0x0000-0x0002"]},
    }, *board.config_rules())
    loop, _ = startup.build(cfg, board)
    uart = machine.UARTS[cfg["board"]["rtu_uart"]]
    random.seed(BAUD)
    rnd = random
    regs = [rnd.getrandbits(16) for _ in range(123)]
    bits = bytes(rnd.getrandbits(8) for _ in range(0x48))
    cases = [
        ("FC16 x123", struct.pack(">BHHB123H", 16, 0x1000, 123, 246, *regs), b"\x10\x10\x00\x00\x7b"),
        ("FC03 x125", struct.pack(">BHH", 3, 0x1000, 125),
         struct.pack(">BB123H", 3, 250, *regs) + b"\x00\x00\x00\x00"),
        ("FC15 x0x240", struct.pack(">BHHB", 15, 0, 0x240, 0x48) + bits, b"\x0f\x00\x00\x02\x40"),
        ("FC01 x0x240", struct.pack(">BHH", 1, 0, 0x240), b"\x01\x48" + bits),
    ]
    failed = 0
    for name, req, want in cases:
        got = exchange(loop, uart, req)
        ok = got == frame(want)
        failed += not ok
        print("%-22s %s" % (name, "answered" if ok else "FAILED: %s" % got[:12].hex()))
    lost = 0
    for i in range(100):
        time.sleep_ms(rnd.randrange(20))  # the line idles between a master's requests
        value = rnd.getrandbits(16)
        w = struct.pack(">BHH", 6, 0x1000 + i, value)
        r = struct.pack(">BHH", 3, 0x1000 + i, 1)
        lost += exchange(loop, uart, w) != frame(w)
        lost += exchange(loop, uart, r) != frame(struct.pack(">BBH", 3, 2, value))
    failed += lost > 0
    print("%-22s %d of 200 lost" % ("FC06 + FC03 pairs", lost))
    print("%-22s %d" % ("reads that would wait", len(WAITS)))
    failed += len(WAITS) > 0
    print("%d passed, %d failed" % (6 - failed, failed))
    return failed


sys.exit(1 if main() else 0)
