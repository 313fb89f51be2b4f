"""`mbnode monitor`'s framer and pairing: host CPU time per byte of line traffic, beside the time
a byte takes on the wire (`.cache/venv/bin/python bench/monitor.py`, a second).

Traffic: 200 transactions of FC03 reading 125 registers (an 8-byte request, a 255-byte response),
and 20000 random bytes (what a monitor at the wrong baud rate hears), fed in reads of 8 bytes (a
UART FIFO, the line emulator) and 64 bytes (a USB adapter's packet). No serial port: the figure
is the monitor's own cost. Reads merge when the monitor falls behind (it reads what is waiting),
so the 64-byte figure is the one that matters on a saturated line.
"""

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "host")]

from mbnode.crc import crc16  # noqa: E402
from mbnode_host.busframes import Framer  # noqa: E402
from mbnode_host.monitor import Setting  # noqa: E402
from mbnode_host.transactions import Pairer  # noqa: E402

LINE = Setting(115200, "E", 1)


def adu(unit, pdu):
    body = bytes((unit,)) + bytes(pdu)
    c = crc16(body, 0, len(body))
    return body + bytes((c & 0xFF, c >> 8))


def run(stream, chunk):
    """(us of CPU per byte, records)."""
    framer, pairer = Framer(LINE.wire, LINE.t35 + 0.020, 0.1), Pairer(1.0)
    t_line, records = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(stream), chunk):
        t_line += LINE.wire(chunk)
        for ev in framer.feed(stream[i:i + chunk], t_line):
            records += len(pairer.event(ev))
    for ev in framer.flush():
        records += len(pairer.event(ev))
    return (time.perf_counter() - t0) / len(stream) * 1e6, records


def main():
    random.seed(1)
    clean = (adu(1, bytes((3, 0, 0, 0, 125))) + adu(1, bytes((3, 250)) + os.urandom(250))) * 200
    junk = bytes(random.randrange(256) for _ in range(20000))
    print("wire: %.1f us per byte at %s" % (LINE.wire(1) * 1e6, LINE.label))
    for name, stream in (("FC03 x 125 registers, 200 transactions", clean), ("random bytes", junk)):
        for chunk in (8, 64):
            us, records = run(stream, chunk)
            print("%-40s %2d-byte reads: %6.1f us per byte, %d records" % (name, chunk, us, records))


if __name__ == "__main__":
    main()
