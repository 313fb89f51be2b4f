"""Retained memory: configured memory positions kept over a restart (docs/configuration.md,
"Retained memory"; docs/reliability.md, "Power loss").

At start-up (startup.build, after every other part) mbnode.retainboot, loaded for that alone, loads
the last intact save with mbnode.store and writes it into the memory registers, every output
subscriber told, before the first request is served; one line says which save it was. From
then on a DataModel subscriber sets a dirty flag when a write touches a retained position
(nothing else per write). A save starts when the flag is set and `every_s` has passed since the
last one began, or when save_now() asks (the settings block's "save" command, through
health.retain; the simulator's control channel `save`, through ACTIVE): the retained registers
are copied into a preallocated snapshot at once, then written with mbnode.store's steps (open,
header, 256 bytes of data at a time, close, rename), one step per loop tick. flush() saves at
once when the firmware stops the normal way (app.run).

On the RP2040 each flash erase or program runs with every interrupt off (rp2_flash.c), and the
UART's receive FIFO holds 32 characters meanwhile. So a step is taken only at a quiet moment of
every serial line, which each line tells through its busy():
  * a slave line (RtuLink): right after this device's reply left the wire (the link's
    after_reply: the master is reading it), or at a tick that finds the line idle (no frame in
    hand, nothing read) when no reply has gone out for a second;
  * a line in master mode (RtuMaster): no answer awaited. While a step waits, the master lines
    are held (hold: the transaction on the line ends as it would, no new one starts), so the
    wait they cause is at most the longest transaction on one of them: its timeout_ms, plus a
    frame's time when its answer is still arriving then. Held lines are let go after each step,
    and after _HOLD_MS of waiting idle for a slave line's quiet moment (then they run _HOLD_MS
    before they are held again), so a save never stops a master for longer.
Each completed save adds 1 to health.flash_writes.
(The file's layout: mbnode.retainboot.)
"""

import time

from mbnode import store
from mbnode.datamodel import HOLDING
from mbnode.fast import copy

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_IDLE_MS = const(1000)  # a serial line no reply went out on for this long may take a step at any idle tick
_RETRY_MS = const(20)  # how often a tick looks for a quiet moment while a save waits for one
_HOLD_MS = const(1000)  # master lines held idle this long for a slave line's quiet moment: let go as long


class Retained:
    """Made by mbnode.retainboot: lims, flat [lowest, highest, ...] holding register addresses
    of the retained ranges; copies, flat [offset in model.regs, bytes, ...] of the same; snap,
    the save's data with the ranges' header filled in up to `head`."""

    def __init__(self, model, cfg, health, links, masters, lims, copies, snap, head, generation):
        self.model = model
        self.health = health
        self.links = links  # the serial slave lines (RtuLink): steps wait for their quiet moments
        self.masters = masters  # the serial lines in master mode (RtuMaster): held while a step waits
        self.holding = False  # the master lines are held
        self.held_at = 0  # ticks_ms: since when they are held; let go: until when they run free
        self.path = cfg["file"]
        self.every = cfg["every_s"] * 1000
        self.lims = lims
        self.copies = copies
        self.snap = snap
        self.head = head
        self.dirty = False
        self.asked = False  # save_now() was called
        self.steps = None  # the save on its way (store.saving), or None
        self.generation = self.saved = generation  # of the last save begun / completed
        self.began = time.ticks_ms()
        self.replied = time.ticks_add(self.began, -_IDLE_MS)

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
        # ticks_diff below 0: `began` lies more than half the ticks period back (days): long ago.
        if self.asked:
            return True
        if not self.dirty:
            return False
        d = time.ticks_diff(now, self.began)
        return d < 0 or d >= self.every

    def _quiet(self, now):
        # A tick's own look: no reply of ours for _IDLE_MS, every line idle.
        d = time.ticks_diff(now, self.replied)
        if 0 <= d < _IDLE_MS:  # below 0: so long ago that ticks_diff wrapped
            return False
        return not _busy(self.links) and not _busy(self.masters)

    def _hold(self, now):
        # A step waits: the master lines start nothing new (unless they run free for a while).
        if self.holding or not self.masters or 0 < time.ticks_diff(self.held_at, now) <= _HOLD_MS:
            return  # (held_at: the end of their time running free, when it lies ahead)
        for m in self.masters:
            m.hold(True)
        self.holding = True
        self.held_at = now

    def _release(self, now, free):
        if not self.holding:
            return
        for m in self.masters:
            m.hold(False)
        self.holding = False
        self.held_at = time.ticks_add(now, free)  # not held again before then

    def _step(self, now):
        if self.steps is None:
            regs = self.model.regs
            copies = self.copies
            o = self.head
            for i in range(0, len(copies), 2):
                copy(self.snap, o, regs, copies[i], copies[i + 1])
                o += copies[i + 1]
            self.steps = store.saving(self.path, self.snap, self.generation + 1)
            self.generation += 1
            self.asked = self.dirty = False
            self.began = now
        try:
            next(self.steps)
            return
        except StopIteration:
            self.saved = self.generation
            self.health.flash_writes += 1
            self.health.fault &= ~2  # mbnode.health.FAULT_FLASH: this save went through
        except Exception as e:  # noqa: BLE001 - OSError (flash full), MemoryError: the device serves on
            print("mbnode: retain: saving %s failed (%r); the last save is kept" % (self.path, e))
            self.dirty = True  # tried again after every_s
            self.health.fault |= 2  # mbnode.health.FAULT_FLASH
        except KeyboardInterrupt:  # the stop came in the middle of a step: flush() saves anew
            self.steps = None
            self.dirty = True
            raise
        self.steps = None

    def flush(self):
        """The device stops (Ctrl-C; SIGTERM through `mbnode sim`): the save on its way is
        finished and whatever changed since is saved, at once."""
        for _ in range(2):  # a save that fails is tried once more, no more
            if self.steps is None and not self.dirty and not self.asked:
                return
            self._step(0)
            while self.steps is not None:
                self._step(0)

    def after_reply(self):
        """The slave line's call right after a reply left the wire: the moment for a step,
        unless a master line awaits an answer (then it is held, and a later moment taken)."""
        now = time.ticks_ms()
        self.replied = now
        if self.steps is not None or self._due(now):
            if _busy(self.masters):
                self._hold(now)
                return
            self._step(now)
            self._release(now, 0)

    # --- loop timer

    def due_in(self, now):
        if self.steps is None and not self._due(now):
            return self.every - time.ticks_diff(now, self.began) if self.dirty else -1
        # A step now, or a look for a quiet moment (an answer on a held line wakes the loop too).
        return _RETRY_MS if self.links or self.holding else 0

    def tick(self, now):
        if self.steps is None and not self._due(now):
            return
        if self._quiet(now):
            self._step(now)
            self._release(now, 0)
            return
        self._hold(now)
        if self.holding and time.ticks_diff(now, self.held_at) >= _HOLD_MS and not _busy(self.masters):
            self._release(now, _HOLD_MS)  # idle that long for a slave line's moment: they run a while


def _busy(lines):
    # Is any of these serial lines (RtuLink, RtuMaster) busy? Allocates nothing.
    for line in lines:
        if line.busy():
            return True
    return False


ACTIVE = None  # the one Retained (mbnode.retainboot sets it; the simulator's control channel asks it)
