"""Retained memory: configured memory positions kept over a restart (docs/configuration.md,
"Retained memory"; docs/reliability.md, "Power loss").

At start-up (app.build, after every other part) the last intact save is loaded with mbnode.store
and written into the memory registers, every output subscriber told, before the first request
is served; one line says which save it was. From then on a DataModel subscriber sets a dirty
flag when a write touches a retained position (nothing else per write). A save starts when the
flag is set and `every_s` has passed since the last one began, or when save_now() asks (the
settings block's "save" command, the simulator's control channel `save`): the retained
registers are copied into a preallocated snapshot at once, then written with mbnode.store's
steps (open, header, 256 bytes of data at a time, close, rename), one step per loop tick.

On the RP2040 each flash erase or program runs with every interrupt off (rp2_flash.c), and the
UART's receive FIFO holds 32 characters meanwhile. So with a serial slave line a step is taken
only at a quiet moment: right after this device's reply left the wire (the link's after_reply:
the master is reading it), or at a tick that finds the line idle (no frame in hand, nothing
read) when no reply has gone out for a second. Each completed save adds 1 to
health.flash_writes.

File: mbnode.store's header, then the ranges (count, then first and last position of each, 16
bits little-endian), then each range's registers in wire format (lower half first, as in the
map). Ranges saved under another configuration are restored where they still are retained.
"""

import time

from mbnode import store
from mbnode.datamodel import HOLDING, MEM_BASE
from mbnode.fast import copy

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_IDLE_MS = const(1000)  # a serial line no reply went out on for this long may take a step at any idle tick
_RETRY_MS = const(20)  # how often a tick looks for a quiet moment while a save waits for one


def _regs(first, last):
    """Holding register addresses of memory positions first..last: (lowest, highest)."""
    return MEM_BASE + 2 * (first - 1), MEM_BASE + 2 * last - 1


class Retained:
    def __init__(self, model, cfg, health, links):
        self.model = model
        self.health = health
        self.links = links  # the serial slave lines (RtuLink): steps wait for their quiet moments
        self.path = cfg["file"]
        self.every = cfg["every_s"] * 1000
        self.ranges = [tuple(r) for r in cfg["positions"]]
        lims = []
        size = 2 + 4 * len(self.ranges)
        for first, last in self.ranges:
            lo, hi = _regs(first, last)
            lims.append(lo)
            lims.append(hi)
            size += 4 * (last - first + 1)
        self.lims = lims  # flat [lowest, highest, ...] register addresses of the ranges
        self.snap = bytearray(size)
        self._put(0, len(self.ranges))
        o = 2
        for first, last in self.ranges:
            self._put(o, first)
            self._put(o + 2, last)
            o += 4
        self.head = o  # where the registers start in snap
        self.dirty = False
        self.asked = False  # save_now() was called
        self.steps = None  # the save on its way (store.saving), or None
        self.generation = 0  # of the last save begun
        self.saved = 0  # of the last save completed
        self.began = time.ticks_ms()
        self.replied = time.ticks_add(self.began, -_IDLE_MS)

    def _put(self, o, v):
        self.snap[o] = v & 0xFF
        self.snap[o + 1] = v >> 8

    # --- start-up

    def restore(self):
        """Load the newest intact save into memory; returns the one log line."""
        got = store.load(self.path)
        self.generation = self.saved = got.generation
        data = got.data
        if data is not None:
            model = self.model
            n = data[0] | (data[1] << 8)
            o = 2 + 4 * n
            for i in range(n):
                first = data[2 + 4 * i] | (data[3 + 4 * i] << 8)
                last = data[4 + 4 * i] | (data[5 + 4 * i] << 8)
                for lo, hi in self.ranges:  # the part still retained
                    a = first if first > lo else lo
                    b = last if last < hi else hi
                    if a <= b and o + 4 * (last - first + 1) <= len(data):
                        r = _regs(a, b)[0]
                        copy(model.regs, model.reg_offset(HOLDING, r), data, o + 4 * (a - first), 4 * (b - a + 1))
                        model.outputs_written(HOLDING, r, 2 * (b - a + 1))
                o += 4 * (last - first + 1)
        return "mbnode: retain " + got.describe()

    # --- following writes (a DataModel subscriber: no allocation)

    def written(self, table, first, count):
        if table != HOLDING or self.dirty:
            return
        last = first + count - 1
        lims = self.lims
        i = 0
        n = len(lims)
        while i < n:
            if first <= lims[i + 1] and lims[i] <= last:
                self.dirty = True
                return
            i += 2

    # --- saving

    def save_now(self):
        """Save at the next quiet moment whether or not a retained position changed (the
        settings block's "save" command). Returns the generation that will hold every write
        made so far; self.saved reaches it when that save is complete."""
        self.asked = True
        return self.generation + (1 if self.steps is None else 2)

    def _due(self, now):
        return self.asked or self.dirty and time.ticks_diff(now, self.began) >= self.every

    def _quiet(self, now):
        # A tick's own look: every slave line idle and no reply of ours for _IDLE_MS.
        for link in self.links:
            if link.waiting or link.fill or time.ticks_diff(now, self.replied) < _IDLE_MS:
                return False
        return True

    def _step(self, now):
        if self.steps is None:
            self.asked = self.dirty = False
            self.began = now
            self.generation += 1
            model = self.model
            snap = self.snap
            o = self.head
            for first, last in self.ranges:
                n = 4 * (last - first + 1)
                copy(snap, o, model.regs, model.reg_offset(HOLDING, _regs(first, last)[0]), n)
                o += n
            self.steps = store.saving(self.path, snap, self.generation)
        try:
            next(self.steps)
            return
        except StopIteration:
            self.saved = self.generation
            self.health.flash_writes += 1
        except OSError as e:
            print("mbnode: retain: saving %s failed (%s); the last save is kept" % (self.path, e))
            self.dirty = True  # tried again after every_s
        self.steps = None

    def after_reply(self):
        """The slave line's call right after a reply left the wire: the moment for a step."""
        now = time.ticks_ms()
        self.replied = now
        if self.steps is not None or self._due(now):
            self._step(now)

    # --- loop timer

    def due_in(self, now):
        if self.steps is None:
            if self.asked:
                return 0 if not self.links else _RETRY_MS
            if not self.dirty:
                return -1
            d = time.ticks_diff(time.ticks_add(self.began, self.every), now)
            if d > 0:
                return d
        return 0 if not self.links else _RETRY_MS

    def tick(self, now):
        if self.steps is not None or self._due(now):
            if self._quiet(now):
                self._step(now)
        elif not self.dirty and time.ticks_diff(now, self.began) > self.every:
            self.began = time.ticks_add(now, -self.every)  # never so old that ticks_diff wraps


ACTIVE = None  # the one Retained (the simulator's control channel asks it)


def start(loop, model, cfg, health, links):
    """Retained memory restored (one log line printed) and followed from now on."""
    global ACTIVE
    r = ACTIVE = Retained(model, cfg["retain"], health, links)
    print(r.restore())
    model.subscribe(r.written)
    loop.add_timer(r)
    for link in links:
        link.after_reply = r.after_reply
    return r
