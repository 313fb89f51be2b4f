"""A handler that raises never makes the event loop spin (firmware/mbnode/loop.py): run on the
unix port, with real sockets on 127.0.0.1. Prints one line per case and "N passed, M failed".

Level-triggered poll reports a readable socket again at once; a handler that fails on it every
time (MemoryError in a heap too small for the load) used to be called thousands of times a
second while everything else starved. Now the loop calls the handler's on_error and mutes what
is left for 1 s: in 2.5 s such a handler runs at most a few times, and the others are served.
"""

import socket
import sys
import time

from mbnode.loop import Loop

RUN_MS = 2500
WRITES = 20  # one byte every 100 ms to the well-behaved connection


PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5050  # a free port (the test gives one)


def pair(port=PORT):
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    lst.listen(1)
    c = socket.socket()
    c.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s, _ = lst.accept()
    lst.close()
    s.setblocking(False)
    return s, c


class Failing:
    """Raises on every event; its socket stays readable (the data is never read)."""

    def __init__(self):
        self.calls = 0

    def on_event(self, sock, events):
        self.calls += 1
        raise MemoryError("handler test")


class Closing(Failing):
    """Raises too, but has on_error: it closes its connection."""

    def __init__(self, loop):
        Failing.__init__(self)
        self.loop = loop
        self.closed = 0

    def on_error(self, sock):
        self.closed += 1
        self.loop.remove(sock)
        sock.close()


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.got = 0

    def on_event(self, sock, events):
        data = sock.recv(64)
        self.got += len(data or b"")


class Writer:
    """A timer: one byte to the reader's peer every 100 ms, then stops the loop at RUN_MS."""

    def __init__(self, loop, peer):
        self.loop = loop
        self.peer = peer
        self.t0 = time.ticks_ms()
        self.sent = 0

    def due_in(self, now):
        if self.sent < WRITES:
            return max(0, 100 * self.sent - time.ticks_diff(now, self.t0))
        return max(0, RUN_MS - time.ticks_diff(now, self.t0))

    def tick(self, now):
        elapsed = time.ticks_diff(now, self.t0)
        if self.sent < WRITES and elapsed >= 100 * self.sent:
            self.peer.send(b"x")
            self.sent += 1
        elif self.sent >= WRITES and elapsed >= RUN_MS:
            self.loop.running = False


class FailingTimer:
    def __init__(self):
        self.calls = 0

    def due_in(self, now):
        return 0  # always due: without muting, every step would tick it

    def tick(self, now):
        self.calls += 1
        raise ValueError("timer test")


def main():
    passed = failed = 0
    loop = Loop()
    bad_s, bad_c = pair()
    bad_c.send(b"never read")
    bad = Failing()
    loop.add(bad_s, bad)
    closing_s, closing_c = pair()
    closing_c.send(b"never read either")
    closing = Closing(loop)
    loop.add(closing_s, closing)
    good_s, good_c = pair()
    reader = Reader(good_s)
    loop.add(good_s, reader)
    writer = Writer(loop, good_c)
    loop.add_timer(writer)
    bad_timer = FailingTimer()
    loop.add_timer(bad_timer)
    t0 = time.ticks_ms()
    loop.run()  # until the writer stops it
    for _ in range(5):  # what is still in flight
        loop.running = True
        loop.step(20)
    took = time.ticks_diff(time.ticks_ms(), t0)
    checks = [
        ("a handler that always raises ran at most once a second", bad.calls <= 2 + took // 1000, bad.calls),
        ("it is served again after its mute", bad.calls >= 2, bad.calls),
        ("on_error closed the connection, once", closing.calls == 1 and closing.closed == 1, closing.calls),
        ("a timer that always raises ticked at most once a second", bad_timer.calls <= 2 + took // 1000,
         bad_timer.calls),
        ("the other connection got every byte", reader.got == WRITES, reader.got),
    ]
    for name, ok, detail in checks:
        print("%s %s (%s; %d ms)" % ("ok  " if ok else "FAIL", name, detail, took))
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))


main()
