"""What the alloc_*.py probes share: serving under micropython.heap_lock() and the report."""

import binascii
import micropython


def locked(serve, collect, send=None):
    """send() (if given), serve() and collect() once as a warm-up (first use may build lazily
    allocated internals), then again with the heap locked during serve() only. Returns (the
    MemoryError of the locked serve() or None, what its collect() returned)."""
    for lock in (False, True):
        if send is not None:
            send()
        if lock:
            micropython.heap_lock()
        try:
            serve()
            err = None
        except MemoryError as e:
            err = e
        finally:
            if lock:
                micropython.heap_unlock()
        got = collect()
    return err, got


class Heard:
    """An output subscriber (DataModel.subscribe) that allocates nothing: counts the changes it
    is told of and keeps the last one."""

    def __init__(self):
        self.count = 0
        self.last = [None, None, None]

    def changed(self, table, first, count):
        self.count += 1
        last = self.last
        last[0] = table
        last[1] = first
        last[2] = count


class Report:
    """One line per request kind, then "N passed, M failed"; finish() returns M."""

    def __init__(self, width):
        self.width = width
        self.passed = self.failed = 0

    def line(self, name, ok, err, n, head):
        print("%-*s %s (%d bytes answered, %s)" % (
            self.width, name, "no allocation" if ok else "ALLOCATES or wrong answer %r" % err, n,
            binascii.hexlify(head).decode() if n else "-"))
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def check(self, name, ok, err):
        """A line for what is not a request on the line (a function called under the lock)."""
        print("%-*s %s" % (self.width, name, "no allocation" if ok else "ALLOCATES or wrong %r" % err))
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return self.failed
