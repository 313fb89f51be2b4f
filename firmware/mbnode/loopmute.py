"""The event loop's answer to a handler or timer that raised (mbnode/loop.py): loaded only when
that first happens, so a device that never sees one spends no RAM on it.

The error is printed on one line; the handler's on_error(obj) is called when it has one (a
connection closes itself, the RTU link drops the frame in hand); an object still in the loop
after that, or a timer, is muted: taken out of the poll set (left out of the ticks) for 1 s,
then served again as before. loop.muted holds [object or timer, ticks_ms until]."""

import time

_MUTE_MS = 1000


def failed(loop, e):
    obj = loop.current
    loop.current = None
    print("mbnode: error in event handler:", repr(e))
    if obj is None:
        return
    handler = loop.handlers[obj] if obj in loop.handlers else obj  # a poll object's, or a timer
    if hasattr(handler, "on_error"):
        try:
            handler.on_error(obj)  # e.g. a connection closes: then it is gone from the loop
        except Exception as e2:  # noqa: BLE001 - muting it is still the answer
            print("mbnode: error in event handler:", repr(e2))
    if obj in loop.handlers or obj in loop.timers:
        if not unmute(loop, obj) and obj in loop.handlers:
            loop.poll.unregister(obj)  # not modify(obj, 0): a hang-up would still report
        loop.muted.append([obj, time.ticks_add(time.ticks_ms(), _MUTE_MS)])


def is_muted(loop, obj):
    for m in loop.muted:
        if m[0] == obj:
            return True
    return False


def unmute(loop, obj):
    """Forget obj's muting; True if it was muted (it is then out of the poll set)."""
    for m in loop.muted:
        if m[0] == obj:
            loop.muted.remove(m)
            return True
    return False


def wake(loop, now):
    """Serve again what has been muted long enough (one per call: the list changes)."""
    for m in loop.muted:
        if time.ticks_diff(now, m[1]) >= 0:
            loop.muted.remove(m)
            obj = m[0]
            if obj in loop.handlers:
                loop.poll.register(obj, loop.masks[obj])
            return
