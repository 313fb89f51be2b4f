"""Saved state that survives a power cut: every file is written whole or not at all.

`save(path, data)` writes `path + ".new"` (a header, then the data), then renames it over `path`.
The header holds a magic, a generation number (one more than the last save's), the data's
length and its CRC-16, so a file cut short or damaged is recognised, never used:

    b"MBS1" | generation (4 bytes LE) | length (4 bytes LE) | CRC-16/MODBUS of the data (2 bytes LE)

`load(path)` reads both `path` and `path + ".new"` and returns the valid one with the higher
generation. A cut between the write and the rename leaves a complete `.new` (the new state) or a
partial one (ignored: the old state); a file truncated or damaged by anything else is ignored
too. The one-line `describe()` of what was loaded is for the boot log.

On littlefs (rp2, esp32) and POSIX, rename replaces the old file in one step. Where the
filesystem refuses to rename over an existing file (FAT), the old file is removed first: a cut
between the two leaves only the complete `.new`, which `load` takes.

Used by the settings (mbnode.settings) and retained memory (mbnode.retain); nothing here runs on
the request path. Core: runs on CPython too.
"""

import os
import sys

from mbnode.crc import crc16

MAGIC = b"MBS1"
HEADER = 14


def _u32(b, o):
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)


def _put32(b, o, v):
    b[o] = v & 0xFF
    b[o + 1] = (v >> 8) & 0xFF
    b[o + 2] = (v >> 16) & 0xFF
    b[o + 3] = (v >> 24) & 0xFF


def read_one(path):
    """(generation, data) of the file at `path` when it is complete and intact, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER)
            if len(head) != HEADER or head[:4] != MAGIC:
                return None
            n = _u32(head, 8)
            data = f.read(n + 1)  # one byte more: a file longer than its header says is damaged too
    except OSError:
        return None
    if len(data) != n or crc16(data, 0, n) != head[12] | (head[13] << 8):
        return None
    return _u32(head, 4), data


class Loaded:
    """What load() found: data (bytes or None), generation, and which file it came from."""

    def __init__(self, path, data, generation, which):
        self.path = path
        self.data = data
        self.generation = generation
        self.which = which  # "saved", "new" (a save cut before its rename), or None

    def describe(self):
        """One line for the boot log: which state the device starts with."""
        if self.data is None:
            return "%s: no intact saved state, starting from the configuration" % self.path
        if self.which == "new":
            return "%s: restored save %d (its rename was cut short; the newer state)" % (self.path, self.generation)
        return "%s: restored save %d" % (self.path, self.generation)


def load(path):
    """The newest intact state saved at `path` (see the module docstring)."""
    old = read_one(path)
    new = read_one(path + ".new")
    if new is not None and (old is None or new[0] > old[0]):
        return Loaded(path, new[1], new[0], "new")
    if old is not None:
        return Loaded(path, old[1], old[0], "saved")
    return Loaded(path, None, 0, None)


def save(path, data, generation):
    """Write `data` (bytes-like) as save number `generation` (one more than the last) so that a
    cut at any moment leaves the old or the new state loadable. Raises OSError when the
    filesystem refuses (full, read-only): the old state is then still there."""
    for _ in saving(path, data, generation, len(data) or 1):
        pass


hook = None  # tests on the unix board only: hook(step) at each step of a save (boards/unix)


def saving(path, data, generation, chunk=256):
    """save() one step at a time: a generator that writes at most `chunk` bytes of data (or
    opens, closes, renames) per step, for a caller that spaces the steps out (mbnode.retain: a
    flash write on the RP2040 stops interrupts). Each step is named for the test hook:
    "opened" (.new created, empty), "header", "data" (after each chunk but the last: the
    write cut in the middle), "closed" (.new complete, not yet renamed), "renamed"."""
    head = bytearray(HEADER)
    head[:4] = MAGIC
    _put32(head, 4, generation)
    n = len(data)
    _put32(head, 8, n)
    c = crc16(data, 0, n)
    head[12] = c & 0xFF
    head[13] = c >> 8
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        yield _step("opened")
        f.write(head)
        yield _step("header")
        o = 0
        while o < n:
            k = n - o if n - o < chunk else chunk
            f.write(data, o, k) if _OFFSET_WRITE else f.write(memoryview(data)[o:o + k])
            o += k
            if o < n:
                yield _step("data")
    yield _step("closed")
    try:
        os.rename(tmp, path)
    except OSError:
        # A filesystem that does not rename over a file (FAT): load() takes .new meanwhile.
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
    _step("renamed")


def _step(name):
    if hook is not None:
        hook(name)
    return name


# MicroPython's stream write(buf, off, n) writes a part without a memoryview; CPython's cannot.
_OFFSET_WRITE = sys.implementation.name == "micropython"
