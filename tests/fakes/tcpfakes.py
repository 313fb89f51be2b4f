"""What firmware/mbnode/tcp.py meets on a port, faked for CPython tests that drive the real
TcpSlave (tests/fuzz/test_fuzz_mbap.py, tests/test_tcp_slots.py, tests/test_tcp_gateway_rules.py):
a clock the test moves, a listening socket with a backlog, an accepted socket (Peer), a loop that
records poll masks, and the socket module to hand tcp.py (socket_module)."""

import types

POLLIN, POLLOUT = 1, 4


class Clock:
    """time.ticks_ms/ticks_diff on a clock the test moves."""

    def __init__(self, now=1000):
        self.now = now

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b


class Listener:
    """The listening socket: accept() hands out `backlog` in order, then EAGAIN."""

    def __init__(self):
        self.backlog = []

    def setsockopt(self, *args):
        pass

    def bind(self, addr):
        pass

    def listen(self, n):
        pass

    def setblocking(self, flag):
        pass

    def fileno(self):
        return 3

    def accept(self):
        if not self.backlog:
            raise OSError(11)  # EAGAIN
        return self.backlog.pop(0), ("127.0.0.1", 50000)

    def close(self):
        pass


class Peer:
    """An accepted socket: what the test puts in `inbox` is read, what the slave writes lands
    in `out`; `eof` once its client has closed."""

    fds = iter(range(100, 10000))

    def __init__(self):
        self.fd = next(Peer.fds)
        self.inbox = b""
        self.out = b""
        self.eof = False
        self.closed = False

    def fileno(self):
        return self.fd

    def setblocking(self, flag):
        pass

    def setsockopt(self, *args):
        pass

    def readinto(self, buf, n=None):
        if not self.inbox:
            return 0 if self.eof else None
        n = min(n or len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def write(self, buf, *args):
        n = args[-1] if args else len(buf)
        self.out += bytes(buf[:n])
        return n

    def close(self):
        self.closed = True


class Loop:
    """The loop's registration API, recording each key's poll mask; `changed` is set by add()
    and remove() as the real loop's is (a poll round stops there)."""

    def __init__(self):
        self.masks = {}
        self.handlers = {}
        self.timers = []
        self.changed = False

    def add(self, key, handler, events=POLLIN):
        self.masks[key] = events
        self.handlers[key] = handler
        self.changed = True

    def remove(self, key):
        del self.masks[key]
        del self.handlers[key]
        self.changed = True

    def modify(self, key, events):
        self.masks[key] = events

    def add_timer(self, timer):
        self.timers.append(timer)


def socket_module(listener):
    """A stand-in for tcp.py's `socket` whose socket() is `listener`."""
    return types.SimpleNamespace(AF_INET=2, SOCK_STREAM=1, SOL_SOCKET=1, SO_REUSEADDR=2,
                                 socket=lambda *a: listener, getaddrinfo=lambda h, p: [(2, 1, 6, "", (h, p))])
