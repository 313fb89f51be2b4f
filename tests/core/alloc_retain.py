"""Proves retained memory and the custom register block allocation-free on the request path:
run on the unix port (not CPython), argument: a directory for the files.

The firmware's own engine, data model, CustomBlock (mbnode.customblock) and Retained
(mbnode.retain) are built by startup.build from a configuration with both sections; each case
hands one request PDU to Engine.handle under micropython.heap_lock() (after a warm-up
unlocked): reads and writes of the custom block with FC03/06/16/22/23 (seek, readinto into the
block's buffer, write in place, flush), writes of retained and other memory positions (the
subscriber's dirty flag), and the retain timer's tick and the RTU link's after_reply call when
no save is due, and when one is due while a master line is busy (the line held, no step).
One line per case, then "N passed, M failed".
"""

import sys

import board
from heaplock import Report, locked
from mbnode import startup, config, retain
from mbnode.datamodel import DataModel

DIR = sys.argv[1]

CONFIG = {
    "tcp": {"enabled": False},
    "retain": {"positions": [[1, 8], [100, 120]], "file": DIR + "/ret.dat", "every_s": 3600},
    "custom_block": {"file": DIR + "/blk.dat", "first": 2001, "count": 200},
}


class MasterLine:
    """A serial line in master mode as mbnode.retain sees it (RtuMaster's busy and hold), busy."""

    held = False

    def busy(self):
        return True

    def hold(self, on):
        self.held = on


def u16(v):
    return bytes((v >> 8, v & 0xFF))


def main():
    cfg = config.validate(CONFIG, *board.config_rules())
    model = DataModel()
    from mbnode import pdu

    engines = []
    real = pdu.Engine

    class Kept(real):
        def __init__(self, *a):
            real.__init__(self, *a)
            engines.append(self)

    pdu.Engine = Kept
    startup.build(cfg, board, model)
    engine = engines[0]
    r = retain.ACTIVE
    resp = bytearray(260)
    report = Report(52)
    first = 2000  # address of the block's first register
    cases = [
        ("FC16 custom block, 10 registers", b"\x10" + u16(first + 5) + u16(10) + b"\x14" + bytes(range(20)), 5),
        ("FC03 custom block, 125 registers", b"\x03" + u16(first + 75) + u16(125), 252),
        ("FC03 custom block, 1 register (last)", b"\x03" + u16(first + 199) + u16(1), 4),
        ("FC06 custom block", b"\x06" + u16(first) + u16(0x1234), 5),
        ("FC22 custom block", b"\x16" + u16(first) + u16(0x00FF) + u16(0x5500), 7),
        ("FC23 custom block", b"\x17" + u16(first) + u16(4) + u16(first + 2) + u16(2) + b"\x04" + u16(7) + u16(8), 10),
        ("FC16 retained memory (dirty flag)", b"\x10" + u16(0x1000) + u16(2) + b"\x04" + u16(1) + u16(2), 5),
        ("FC16 memory not retained", b"\x10" + u16(0x1100) + u16(2) + b"\x04" + u16(1) + u16(2), 5),
    ]
    for name, req, want in cases:
        n = [0]

        def serve():
            n[0] = engine.handle(req, 0, len(req), resp, 0)

        def collect():
            return n[0]

        err, got = locked(serve, collect)
        ok = err is None and got == want and resp[0] == req[0]
        if "memory" in name:  # the dirty flag: set by a retained position only
            ok = ok and r.dirty == ("not retained" not in name)
            r.dirty = False
        report.line(name, ok, err, got, resp[:4])
    # Between saves: the timer's tick and the link's call after a reply (nothing due).
    r.dirty = False
    r.began = r.replied = 0
    for name, fn in (("retain tick, no save due", lambda: r.tick(1)),
                     ("retain after_reply, no save due", r.after_reply)):
        err, got = locked(fn, lambda: r.steps)
        report.check(name, got is None, err)
    # A save due while a serial line in master mode awaits an answer: the tick and the slave
    # line's after_reply hold the master lines (hold(True)) and take no step; nothing allocated.
    line = MasterLine()
    r.masters = [line]
    r.asked = True
    for name, fn in (("retain tick, save due, master line busy: held", lambda: r.tick(5)),
                     ("retain after_reply, save due, master line busy: held", r.after_reply)):
        r.holding = False
        r.held_at = 0
        line.held = False
        err, got = locked(fn, lambda: (r.steps, line.held))
        report.check(name, got == (None, True), err)
    r.masters = []
    r.asked = r.holding = False
    with open(DIR + "/blk.dat", "rb") as f:
        data = f.read()
    report.check("custom block file holds the writes", data[:2] == b"\x55\x34" and data[4:8] == u16(7) + u16(8)
                 and data[10:30] == bytes(range(20)), None)
    sys.exit(report.finish())


main()
