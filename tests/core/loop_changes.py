"""The poll set changing under a running poll round (firmware/mbnode/loop.py): run on the unix
port with real sockets on 127.0.0.1. Prints one line per check and "N passed, M failed".

Handlers return nothing. In each case N connections are readable in the same round. The first
handler the loop calls closes every second one of the others (they leave the loop) and opens
more fresh connections than it closed (so the poll's table grows and MicroPython rehashes it
under the round); the fresh ones have nothing to read, except one that is sent a byte. Then:
  - the round ends with that handler: the loop polls afresh (through Loop.step, one step calls
    exactly one handler);
  - a closed connection's handler is never called after its removal, and no handler is called
    without an event (each read finds data);
  - every connection that stayed, and the fresh one with a byte, is served exactly once after.
The cases: Loop.step (a timer present) and Loop.run (the path without timers); the removal made
by the handler or several calls below it (a registry closing what a part asks it to); the loop
keyed by descriptor numbers (as the firmware on the unix port) or by the sockets themselves.
"""

import select
import socket
import sys
import time

from mbnode.loop import Loop

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5060
N = 8  # connections readable in the same round
MORE = 6  # fresh connections beyond those closed

counts = [0, 0]  # passed, failed


def check(what, ok, detail=""):
    print("%s %s %s" % ("ok  " if ok else "FAIL", what, detail))
    counts[0 if ok else 1] += 1


class Registry:
    """What a firmware part would be: it owns the connections and closes the ones it is told
    to, so a removal can happen several calls below the handler."""

    def __init__(self, loop, listener, by_fd):
        self.loop = loop
        self.listener = listener
        self.by_fd = by_fd
        self.conns = []
        self.calls = []  # (step, connection id, what the call found) of every handler call
        self.step = 0
        self.next_id = 0
        self.on_data = None  # called with the connection after a read that found data

    def key(self, s):
        return s.fileno() if self.by_fd else s

    def open(self, send=b""):
        c = socket.socket()
        c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
        s, _ = self.listener.accept()
        s.setblocking(False)
        if send:
            c.send(send)
        conn = Conn(self, s, c, self.next_id)
        self.next_id += 1
        self.conns.append(conn)
        self.loop.add(self.key(s), conn)
        return conn

    def close(self, conn):
        self.loop.remove(self.key(conn.s))
        conn.s.close()
        conn.c.close()
        conn.removed = True
        self.conns.remove(conn)


class Conn:
    def __init__(self, registry, s, c, ident):
        self.registry = registry
        self.s = s
        self.c = c
        self.id = ident
        self.removed = False
        self.got = 0

    def ask_to_close(self):
        self.registry.close(self)

    def on_event(self, key, events):
        r = self.registry
        if self.removed:
            r.calls.append((r.step, self.id, "removed"))
            return
        try:
            data = self.s.recv(64)
        except OSError:
            data = None
        if not data:
            r.calls.append((r.step, self.id, "nothing to read"))
            return
        r.calls.append((r.step, self.id, "read"))
        self.got += len(data)
        r.on_data(self)


class Idle:
    """A timer that is never due: with it the loop serves through step()."""

    def due_in(self, now):
        return -1

    def tick(self, now):
        pass


def all_readable(registry, limit_ms=2000):
    # Bytes sent on loopback are there at once; wait (bounded) until every connection shows them.
    p = select.poll()
    for c in registry.conns:
        p.register(c.s, select.POLLIN)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
        if len(p.poll(50)) == len(registry.conns):
            return True
    return False


def case(name, by_fd, chain, use_run):
    loop = Loop()
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    lst.listen(N + MORE + 4)
    registry = Registry(loop, lst, by_fd)
    for _ in range(N):
        registry.open(b"x")
    first = []
    closed = []
    fresh = []
    stayed = []

    def served(conn):
        if not first:  # the first handler of the round changes the poll set
            first.append(conn)
            others = [c for c in registry.conns if c is not conn]
            for c in others[::2]:
                closed.append(c)
                if chain:
                    c.ask_to_close()
                else:
                    registry.close(c)
            stayed.extend(others[1::2])
            fresh.extend(registry.open() for _ in range(len(closed) + MORE))
            fresh[0].c.send(b"y")
        if all(c.got for c in stayed) and fresh[0].got:
            loop.running = False

    registry.on_data = served
    check("%s: all %d connections readable before the round" % (name, N), all_readable(registry))
    registry.step = 1
    if use_run:
        loop.run()  # until everything is served (the pytest side bounds the time)
    else:
        loop.add_timer(Idle())
        loop.step(1000)
        check("%s: the step that changed the poll set called one handler" % name,
              len([c for c in registry.calls if c[0] == 1]) == 1, registry.calls)
        for k in range(2, 100):  # the rest, one fresh poll after another
            if not loop.running:
                break
            registry.step = k
            loop.step(200)
    reads = [c[1] for c in registry.calls if c[2] == "read"]
    want = [c.id for c in first + stayed + fresh[:1]]
    check("%s: what stayed and the fresh connection with a byte served once each" % name,
          sorted(reads) == sorted(want), (reads, want))
    check("%s: no closed connection's handler called, none without an event" % name,
          not [c for c in registry.calls if c[2] != "read"], [c for c in registry.calls if c[2] != "read"])
    for c in list(registry.conns):
        registry.close(c)
    lst.close()


def main():
    for by_fd in (True, False):
        for chain in (False, True):
            for use_run in (False, True):
                name = "%s, %s, %s" % ("keys: descriptors" if by_fd else "keys: sockets",
                                       "closed down a chain" if chain else "closed by the handler",
                                       "run()" if use_run else "step()")
                try:
                    case(name, by_fd, chain, use_run)
                except Exception as e:  # noqa: BLE001 - a crash is a failed case, reported
                    check("%s: no crash" % name, False, repr(e))
    print("%d passed, %d failed" % (counts[0], counts[1]))


main()
