"""The event loop: one select.poll over every socket and serial port the device serves.

Lighter than asyncio (no task objects, no stream buffers) and allocation-free per event:
`ipoll` reuses its result tuple, handlers are plain method calls, on_event(obj, events); what it
returns is ignored. The poll set must not change under a running ipoll: MicroPython's iterator
walks the set's hash table by position, and a register that fills the table rehashes it, after
which the round can hand out an object already served, with its old events, again
(tests/core/loop_changes.py). So add() and remove() note the change, and when a handler made one
(an accept, a close, directly or through whatever it called) the loop drops the rest of the
round and polls afresh: an object removed in a round is never served after its removal, and
what was ready and not served is reported again at once (poll is level-triggered).

Timers (add_timer) are objects with due_in(now) -> ms until their tick is needed (-1 = never)
and tick(now), called after every poll; with no timer due the loop blocks in poll, so an idle
slave uses no CPU. add_timer and remove_timer may be called from a handler or a tick: a removed
timer is not ticked again (one that a removal during the ticks skips is still due, and ticks on
the next step, at once). A handler that wants no events for a while (the RTU link while it
waits for bytes it knows are on their way) sets its object's event mask to 0 with modify()
rather than leaving and rejoining the poll set.

A handler that raises never makes the loop spin on the same event: the error is printed on one
line, the handler's on_error(obj) is called when it has one (a connection closes itself, the RTU
link drops the frame in hand), and an object still in the loop after that (or a timer) is
muted: taken out of the poll set (left out of the ticks) for 1 s, then served again as before
(mbnode/loopmute.py, loaded when a handler first raises: 2 KiB less at start-up).
Level-triggered poll would otherwise report the same readable socket at once, and a handler that
fails on it (MemoryError in a heap too small for the load) would fail again, thousands of times
a second, and starve everything else.
"""

import select
import time


class Loop:
    def __init__(self):
        self.poll = select.poll()
        self.handlers = {}
        self.masks = {}  # the events each object is polled for (kept while it is muted)
        self.timers = []
        self.running = True
        self.current = None  # the object or timer being served: whose handler raised
        self.muted = []  # [object or timer, ticks_ms until] after a handler raised
        self.changed = False  # add() or remove() ran since the last poll: its round is stale

    def add(self, obj, handler, events=select.POLLIN):
        self.poll.register(obj, events)
        self.handlers[obj] = handler
        self.masks[obj] = events
        self.changed = True

    def remove(self, obj):
        if not (self.muted and _mute().unmute(self, obj)):  # a muted object is out of the poll set
            self.poll.unregister(obj)
        del self.handlers[obj]
        del self.masks[obj]
        self.changed = True

    def modify(self, obj, events):
        """What obj is polled for from now on (0: nothing; a hang-up or error still reports).
        Safe inside a handler: the poll set keeps its members. Allocation-free as long as id(obj)
        is a small int: so on the boards; the unix port's tty port hands the loop its descriptor
        number for that reason."""
        self.masks[obj] = events
        if not self.muted or not _mute().is_muted(self, obj):
            self.poll.modify(obj, events)

    def add_timer(self, timer):
        self.timers.append(timer)

    def remove_timer(self, timer):
        self.timers.remove(timer)
        if self.muted:
            _mute().unmute(self, timer)

    def run(self):
        poll = self.poll
        handlers = self.handlers
        while self.running:
            try:
                while self.running:  # left only when a handler raised
                    if self.timers or self.muted:
                        self.step(-1)
                    else:  # the common case, without the timer bookkeeping of step()
                        self.changed = False
                        for obj, events in poll.ipoll(-1):
                            self.current = obj
                            handlers[obj].on_event(obj, events)
                            if self.changed:
                                break  # the poll set changed: a fresh poll
            except Exception as e:  # noqa: BLE001 - a field device keeps serving
                try:
                    _mute().failed(self, e)  # mbnode/loopmute.py, loaded on the first error
                except MemoryError:
                    # No room even for that: keep the object from spinning the loop, polled for
                    # nothing from now on (a hang-up still reports, and its handler closes it).
                    if self.current in self.handlers:
                        self.poll.modify(self.current, 0)

    def step(self, limit):
        """Wait for events (at most `limit` ms, -1 = until a timer is due) and serve them."""
        timers = self.timers
        handlers = self.handlers
        timeout = limit
        now = time.ticks_ms()
        self.current = None
        for t in timers:
            d = -1 if self.muted and _mute().is_muted(self, t) else t.due_in(now)
            if d >= 0 and (timeout < 0 or d < timeout):
                timeout = d
        for m in self.muted:
            d = max(0, time.ticks_diff(m[1], now))
            if timeout < 0 or d < timeout:
                timeout = d
        self.changed = False
        for obj, events in self.poll.ipoll(timeout):
            self.current = obj
            handlers[obj].on_event(obj, events)
            if self.changed:
                break  # the poll set changed: a fresh poll
        if timers or self.muted:
            now = time.ticks_ms()
            if self.muted:
                _mute().wake(self, now)
            for t in timers:
                if not self.muted or not _mute().is_muted(self, t):
                    self.current = t
                    t.tick(now)


def sooner(d, t):
    """A timer's due_in over several things: the wait d (ms; -1: nothing due yet) shortened to
    t, one more thing's wait (time.ticks_diff(due, now); one already due, t < 0, is 0).
    Allocates nothing."""
    if t < 0:
        t = 0
    return t if d < 0 or t < d else d


def _mute():
    # What to do after a handler raised (mbnode/loopmute.py): loaded when that first happens.
    from mbnode import loopmute

    return loopmute
