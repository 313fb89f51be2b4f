"""The router's custom register block (seeds/000; docs/register-map.md, "The custom register
block"): `custom_block.count` holding registers from register number `custom_block.first`
(address first - 1), kept in a file of 2 * count bytes in wire format, never in RAM.

An Engine register block (Engine.blocks): FC03 reads, FC06/16/22/23 writes reach it for the
addresses the map does not have. A read seeks and reads into a 250-byte buffer made at start-up
and copies into the response; a write seeks and writes the request's values in place, then
flushes (littlefs commits the file, POSIX fsyncs it) before the answer goes out, and adds 1 to
health.flash_writes. The file stays open from start-up on, so no request allocates.

Durability (docs/reliability.md, "Power loss"): an answered write is in the file. A write cut by
a power loss leaves, on littlefs (the boards), the file as it was at the last flush: littlefs
writes copy-on-write and commits at the flush, so the request's registers are all old or all
new. On POSIX a killed process cannot cut a write() that returned; a host losing power may lose
what its disk had not written back. At start-up a file missing or of the wrong size (a
different count, a creation cut short) is created anew with zeros, written beside it and
renamed over it, and one line says so.
"""

import os

from mbnode.datamodel import HOLDING
from mbnode.fast import copy
from mbnode.pdu import MAX_READ_REGS, SERVER_DEVICE_FAILURE


class CustomBlock:
    def __init__(self, f, first, count, health):
        self.f = f
        self.first = first  # address of the first register
        self.last = first + count - 1
        self.health = health
        self.buf = bytearray(2 * MAX_READ_REGS)

    def holds(self, table, first, count):
        return table == HOLDING and self.first <= first and first + count - 1 <= self.last

    def read(self, table, first, count, buf, off):
        f = self.f
        n = 2 * count
        f.seek(2 * (first - self.first))
        if f.readinto(self.buf, n) != n:
            return -SERVER_DEVICE_FAILURE
        copy(buf, off, self.buf, 0, n)
        return 0

    def write(self, first, count, src, so, source):
        f = self.f
        n = 2 * count
        f.seek(2 * (first - self.first))
        k = f.write(src, so, n)
        f.flush()
        self.health.flash_writes += 1
        return 0 if k == n else -SERVER_DEVICE_FAILURE


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def start(engine, cfg, health):
    """Open (or create) the block's file and add the block to the Engine; words for the ready
    line. A file that cannot be had is one line, and the block stays off (exception 02)."""
    blk = cfg["custom_block"]
    path = blk["file"]
    size = 2 * blk["count"]
    try:
        had = _size(path)
        if had != size:
            _create(path, size)
            print("mbnode: custom_block %s: %s; created with %d registers of 0"
                  % (path, "missing" if had < 0 else "%d bytes, not %d" % (had, size), blk["count"]))
        f = open(path, "r+b")
    except OSError as e:
        print("mbnode: custom_block %s: cannot create or open it (%s); the block is off" % (path, e))
        return []
    engine.blocks.append(CustomBlock(f, blk["first"] - 1, blk["count"], health))
    return ["custom_block", "%d+%d" % (blk["first"], blk["count"])]


def _create(path, size):
    # Zeros written beside the file and renamed over it: a cut leaves the old file or none.
    zeros = bytearray(256)
    with open(path + ".new", "wb") as f:
        left = size
        while left:
            k = f.write(zeros, 0, left if left < 256 else 256)
            if not k:
                raise OSError(28)  # ENOSPC
            left -= k
    os.rename(path + ".new", path)
