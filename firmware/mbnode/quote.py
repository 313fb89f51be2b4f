"""What the configuration's error messages say about values, keys and a file too large for the
heap. Loaded only when a configuration is refused (mbnode.config), so a valid one's check spends
no RAM on it."""

import json


def quote(v, depth=3, room=60):
    """v as JSON text for a message, bounded: a text whose JSON is longer than `room` characters
    shows its beginning and "...", a list or object its first members up to about `room` characters and
    `depth` levels. A value may be 100,000 characters long or nested 800 deep; json.dumps of it
    would run out of memory or recursion depth."""
    t = type(v)
    if t is str:
        s = json.dumps(v[:room])
        if len(v) <= room and len(s) <= room + 2:
            return s
        # Cut, or long once escaped (a control character or a non-ASCII one becomes six):
        # at most `room` characters of the JSON text, never half an escape.
        i = 1
        while i < len(s) - 1:
            step = (6 if s[i + 1] == "u" else 2) if s[i] == "\\" else 1
            if i + step > room + 1:
                break
            i += step
        return s[:i] + '..."'
    if t is list or t is dict:
        if not v or not depth:
            return ("[%s]" if t is list else "{%s}") % ("..." if v else "")
        parts = []
        n = 0
        for x in v:
            if n >= room:
                parts.append("...")
                break
            s = quote(x, depth - 1, room) if t is list else quote(x, 0, room) + ": " + quote(v[x], depth - 1, room)
            parts.append(s)
            n += len(s) + 2
        return ("[%s]" if t is list else "{%s}") % ", ".join(parts)
    s = json.dumps(v)
    return s if len(s) <= room else s[:room] + "..."


_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def name(key):
    # A key of the file as a message shows it: as it is when it is a plain name, else quoted
    # (MicroPython's json makes numbers keys too: it reads {"a", 3: 1} without complaint).
    if type(key) is str and key and len(key) <= 40 and all(c in _PLAIN for c in key):
        return key
    return quote(key, 0, 40)


def too_large(path):
    """The error for a configuration that ran the heap out while it was read or checked."""
    import gc

    from mbnode.config import ConfigError

    gc.collect()
    free = " (%d bytes)" % gc.mem_free() if hasattr(gc, "mem_free") else ""  # MicroPython's
    return ConfigError("config: %s is too large for the free memory%s" % (path, free))
