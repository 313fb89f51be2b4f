"""The event loop: one select.poll over every socket and serial port the device serves.

Lighter than asyncio (no task objects, no stream buffers) and allocation-free per event:
`ipoll` reuses its result tuple, handlers are plain method calls. A handler's on_event(obj,
events) returns True when it changed the poll set (accepted or closed something); iteration then
restarts with a fresh poll, because the set must not change under a running ipoll.

Timers (add_timer) are objects with due_in(now) -> ms until their tick is needed (-1 = never)
and tick(now), called after every poll; with no timer due the loop blocks in poll, so an idle
slave uses no CPU. A handler that wants no events for a while (the RTU link while it waits for
bytes it knows are on their way) sets its object's event mask to 0 with modify() rather than
leaving and rejoining the poll set.
"""

import select
import time


class Loop:
    def __init__(self):
        self.poll = select.poll()
        self.handlers = {}
        self.timers = []
        self.running = True

    def add(self, obj, handler, events=select.POLLIN):
        self.poll.register(obj, events)
        self.handlers[obj] = handler

    def remove(self, obj):
        self.poll.unregister(obj)
        del self.handlers[obj]

    def modify(self, obj, events):
        """What obj is polled for from now on (0: nothing; a hang-up or error still reports).
        Safe inside a handler: the poll set keeps its members. Allocation-free as long as id(obj)
        is a small int: so on the boards; the unix port's tty port hands the loop its descriptor
        number for that reason."""
        self.poll.modify(obj, events)

    def add_timer(self, timer):
        self.timers.append(timer)

    def remove_timer(self, timer):
        self.timers.remove(timer)

    def run(self):
        while self.running:
            try:
                self._serve()
            except Exception as e:  # noqa: BLE001 - a field device keeps serving
                print("mbnode: error in event handler:", repr(e))

    def _serve(self):
        poll = self.poll
        handlers = self.handlers
        while self.running:
            if self.timers:
                self.step(-1)
            else:  # the common case, without the timer bookkeeping of step()
                for obj, events in poll.ipoll(-1):
                    if handlers[obj].on_event(obj, events):
                        break

    def step(self, limit):
        """Wait for events (at most `limit` ms, -1 = until a timer is due) and serve them."""
        timers = self.timers
        handlers = self.handlers
        timeout = limit
        now = time.ticks_ms()
        for t in timers:
            d = t.due_in(now)
            if d >= 0 and (timeout < 0 or d < timeout):
                timeout = d
        for obj, events in self.poll.ipoll(timeout):
            if handlers[obj].on_event(obj, events):
                break
        if timers:
            now = time.ticks_ms()
            for t in timers:
                t.tick(now)
