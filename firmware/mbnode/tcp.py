"""Modbus TCP slave: MBAP framing over non-blocking sockets on the shared event loop.

Memory is fixed at start-up: each connection slot owns a 260-byte buffer (the largest ADU), and a
request allocates nothing. The device's scratch buffer (mbnode.scratch) takes the bytes of a
frame begun, copied into the slot at once, and the answer, written by the Engine and sent in the
same call. A slot's buffer holds one thing at a time: the request being received, or the part
of an answer its socket did not take.

- A connection is read one frame at a time, the 6-byte MBAP header and then exactly the bytes
  it announces, and at most one frame is served per event, so several connections (and the RTU
  line) take turns: the longest a handler holds the loop is two reads, one request through the
  engine and one write. A protocol id other than 0 or a length field outside 2..254 closes the
  connection without a reply; a request for another unit id gets no reply.
- The answer leaves in one non-blocking write; the loop never waits for a peer. What the socket
  does not take is kept in the slot and sent on POLLOUT, and until it has left the connection
  is not read (back-pressure): requests a client sends meanwhile wait in its socket, in order,
  never dropped.
- Limits (2 s): an answer that has not left 2 s after it was made closes its
  connection, and so does a request whose bytes have not all arrived 2 s after its first byte.
- Full slots: a new connection takes the slot of the connection silent longest (silent: no
  complete request since) among those that are not polling: one that has sent no complete
  request yet, or one silent for at least twice the longest interval between its requests and
  at least 1 s. When every connection is polling, the listener looks again after the current
  poll round first (a client that closed and reconnected at once has its old connection's end
  in the same round, read after the new connection), and then `when_full` decides: "refuse"
  closes the new connection at once, "close_idlest" gives it the slot of the one silent longest
  anyway. `idle_timeout` (seconds, 0 = never) closes a connection silent that long.
- Socket options, where the port takes them: TCP_NODELAY (an answer leaves at once, not after
  the client's delayed ACK), keepalive (a vanished peer is closed after about 25 s without
  traffic: idle 10 s, then 3 probes 5 s apart); on the unix port a send buffer of a board's
  size (mbnode.tcpoptions, worked out once at start-up).
- Unit ids: `unit_id` (0 = any), and 255 (0xFF, the Modbus TCP implementation guide's id for a
  device addressed by its IP address) unless tcp.unit_255 is false. Answers echo the id.
  Requests for other ids get no reply, or, with the TCP-to-RTU gateway on, go out on the RTU
  line (mbnode.tcpgateway; the connection is not read until its answer has come).
- A write to extension modules' outputs is answered when the modules have answered (the Engine
  returns PENDING and calls the connection's finish later, mbnode.extension): meanwhile, as for
  the gateway, the connection is not read; closing it drops the answer, not the write.
"""

import socket
import sys
import time

from mbnode.fast import copy
from mbnode.scratch import SCRATCH

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ADU_MAX = const(260)  # 7-byte MBAP header + 253-byte PDU
_LIMIT_MS = const(2000)  # a request arriving or an answer leaving may take this long, no longer
_STALE_MS = const(1000)  # the least silence after which a connection that polled counts as stale
_POLLIN = const(1)
_POLLOUT = const(4)
_POLLERR_HUP = const(0x18)

# The unix port (the simulator): its socket module lacks TCP's constants, so the Linux numbers
# are used; and its poll is given descriptor numbers, because poll.modify() finds an object by
# id(), which on the 32-bit build (heap above 2 GB) is a new long int each time.
_UNIX = sys.platform in ("linux", "darwin")


def peer_ip(addr):
    """IPv4 text of an accept() address: a tuple on boards, raw sockaddr bytes on unix."""
    if isinstance(addr, tuple):
        return addr[0]
    return "%d.%d.%d.%d" % tuple(socket.sockaddr(addr)[1])


class _Conn:
    # Class defaults, an attribute of the slot's own only when set (fewer members per slot):
    fwd = None  # its transaction, when the TCP-to-RTU gateway is on (mbnode.tcpgateway)
    source = 2  # pdu.SOURCE_TCP, or SOURCE_TCP_TRUSTED (the guard trusts its address: at the accept)

    def __init__(self, server):
        self.server = server
        self.sock = None  # the loop polls TcpSlave._key(sock): the socket, or its descriptor number
        self.rx = bytearray(_ADU_MAX)
        self.fill = 0  # bytes of the request in rx
        self.out = 0  # bytes of an answer at the front of rx waiting for the socket (0: reading)
        self.t0 = 0  # ticks_ms of the request's first byte, or of the waiting answer
        self.last = 0  # ticks_ms of the last complete request, or of the accept
        self.gap = -1  # longest interval between its requests, ms; -1: none complete yet

    def on_event(self, key, events):
        server = self.server
        if events & _POLLERR_HUP:
            server.close(self)
            return
        if self.out:
            self._send_rest()
            return
        sock = self.sock
        rx = self.rx
        scratch = SCRATCH
        fill = self.fill
        try:
            if fill < 6:  # the MBAP header
                if fill == 0:
                    n = sock.readinto(rx, 6)
                else:
                    n = sock.readinto(scratch, 6 - fill)
                    if n:
                        copy(rx, fill, scratch, 0, n)
                if n is None:
                    return
                if n == 0:
                    server.close(self)
                    return
                if fill == 0:
                    self.t0 = time.ticks_ms()
                fill += n
                if fill < 6:
                    self.fill = fill
                    return
                length = (rx[4] << 8) | rx[5]
                if rx[2] or rx[3] or length < 2 or length > 254:
                    server.close(self)
                    return
            end = 6 + ((rx[4] << 8) | rx[5])
            n = sock.readinto(scratch, end - fill)
            if n:
                copy(rx, fill, scratch, 0, n)
        except OSError:
            server.close(self)
            return
        if n is None:
            self.fill = fill
            return
        if n == 0:
            server.close(self)
            return
        fill += n
        if fill < end:
            self.fill = fill
            return
        self.fill = 0
        server.answer(self, end - 6)

    def on_error(self, key):
        # The loop's call after on_event raised (MemoryError, say): this connection ends.
        self.server.close(self)

    def finish(self, status, buf, o, n):
        # The Engine's later answer (pdu.PENDING: a write to extension modules) in buf[o:o+n].
        server = self.server
        server.poll_for(self, _POLLIN)
        copy(server.tx, 7, buf, o, n)
        server.reply(self, n)

    def _send_rest(self):
        server = self.server
        rx = self.rx
        try:
            n = self.sock.write(rx, self.out)
        except OSError:
            server.close(self)
            return
        if n:
            self.out -= n
            copy(rx, 0, rx, n, self.out)  # what is still to send, to the front
        if self.out:
            return
        if not server.persistent:
            server.close(self)
            return
        server.poll_for(self, _POLLIN)

    def due(self, now, idle_ms):
        """ms until this connection must be closed (0: now), or -1 (no limit running)."""
        d = -1
        if self.out or self.fill:
            d = max(0, _LIMIT_MS - time.ticks_diff(now, self.t0))
        if idle_ms:
            i = max(0, idle_ms - time.ticks_diff(now, self.last))
            if d < 0 or i < d:
                d = i
        return d


class TcpSlave:
    # Answers: the device's scratch buffer (mbnode.scratch), sent or copied into the slot in the
    # call that writes them (reply); the TCP-to-RTU gateway writes its answers here too.
    tx = SCRATCH
    forward = None  # mbnode.tcpgateway.TcpGateway, when requests are forwarded (it sets itself)
    # What every accepted connection is set to, (level, option, value) after one another: the
    # options the port has (mbnode.tcpoptions, start-up only), set when a TcpSlave is made.
    options = ()

    def __init__(self, loop, engine, cfg, unit_id):
        self.loop = loop
        self.engine = engine
        self.unit_id = unit_id
        self.unit_255 = cfg["unit_255"]
        self.persistent = cfg["persistent"]
        self.idle_ms = cfg["idle_timeout"] * 1000
        self.replace_idlest = cfg["when_full"] == "close_idlest"
        self.allow = tuple(cfg["allow"])  # the addresses allowed (none: every client); () is no object
        max_clients = cfg["max_clients"]
        self.conns = [_Conn(self) for _ in range(max_clients)]
        self.deferred = 0  # 1: full at a new connection, listener out of the poll until tick; 2: looked again
        self.address = (cfg["host"], cfg["port"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(cfg["host"], cfg["port"])[0][-1])
        s.listen(max_clients)
        s.setblocking(False)
        self.sock = s  # what the loop polls: _key(sock)
        from mbnode.tcpoptions import options

        TcpSlave.options = options(_UNIX)
        loop.add(self._key(s), self)
        loop.add_timer(self)

    @staticmethod
    def _key(sock):
        return sock.fileno() if _UNIX else sock

    def on_event(self, key, events):
        # The listening socket is readable: accept one connection.
        now = time.ticks_ms()
        if self.deferred == 0 and self._choose(now, False) is None:
            # Every slot holds a polling connection. One of them may have just closed (a client
            # that reconnects at once): its end is in this poll round too, after ours. Look
            # again after the round (tick); then the slot rules decide.
            self.deferred = 1
            self.loop.modify(key, 0)  # the listener's
            return
        self.deferred = 0
        try:
            c, addr = self.sock.accept()
        except OSError:
            return
        if self.allow and peer_ip(addr) not in self.allow:
            c.close()
            return
        # pdu.SOURCE_TCP_TRUSTED (4) for a client whose address the guard trusts, else SOURCE_TCP (2)
        guard = self.engine.guard
        source = 4 if guard is not None and guard.trusts(peer_ip(addr)) else 2
        slot = self._slot(now)
        if slot is None:
            c.close()
            return
        c.setblocking(False)
        options = self.options
        i = 0
        while i < len(options):
            try:
                c.setsockopt(options[i], options[i + 1], options[i + 2])
            except OSError:
                pass  # the port refuses it: serve without
            i += 3
        slot.sock = c
        key = self._key(c)
        slot.fill = slot.out = 0
        slot.last = now
        slot.gap = -1
        if slot.source != source:
            slot.source = source
        self.loop.add(key, slot)

    def _slot(self, now):
        """A free slot, or the slot given up for a new connection (closed), or None."""
        slot = self._choose(now, False)
        if slot is None and self.replace_idlest:
            slot = self._choose(now, True)
        if slot is not None:
            self.close(slot)
        return slot

    def _choose(self, now, idlest_too):
        """A free slot, or the connection to give up for a new one: the one silent longest
        among those not polling (or among all, idlest_too); None when there is none."""
        stale = idlest = None
        stale_quiet = idlest_quiet = -1
        for conn in self.conns:
            if conn.sock is None:
                return conn
            quiet = time.ticks_diff(now, conn.last)
            if quiet > idlest_quiet:
                idlest, idlest_quiet = conn, quiet
            if (conn.gap < 0 or (quiet >= _STALE_MS and quiet >= 2 * conn.gap)) and quiet > stale_quiet:
                stale, stale_quiet = conn, quiet
        return idlest if idlest_too else stale

    def answer(self, conn, length):
        """Serve the request in conn.rx[0:6 + length]."""
        now = time.ticks_ms()
        gap = time.ticks_diff(now, conn.last)
        if gap > conn.gap:
            conn.gap = gap
        conn.last = now
        rx = conn.rx
        unit = rx[6]
        own = not self.unit_id or unit == self.unit_id or (unit == 255 and self.unit_255)
        if self.forward is not None and self.forward.takes(unit, own):
            self.forward.start(conn, length)  # mbnode.tcpgateway: on the RTU line
            return
        if not own:
            return
        n = self.engine.handle(rx, 7, length - 1, self.tx, 7, conn, conn.source)
        if n == 0:  # PENDING: a write to extension modules, answered through conn.finish
            self.poll_for(conn, 0)  # not read until answered (a hang-up still reports)
            return
        self.reply(conn, n)

    def reply(self, conn, n):
        """Send the answer PDU in tx[7:7+n] to conn's request (whose MBAP header is still in
        conn.rx)."""
        rx = conn.rx
        tx = self.tx
        tx[0] = rx[0]
        tx[1] = rx[1]
        tx[2] = 0
        tx[3] = 0
        tx[4] = (n + 1) >> 8
        tx[5] = (n + 1) & 0xFF
        tx[6] = rx[6]
        n += 7
        try:
            sent = conn.sock.write(tx, n)
        except OSError:
            self.close(conn)
            return
        if sent is None:
            sent = 0
        if sent < n:
            # The rest waits in the slot (its request is used up) until the socket takes it.
            copy(rx, 0, tx, sent, n - sent)
            conn.out = n - sent
            conn.t0 = time.ticks_ms()
            self.poll_for(conn, _POLLOUT)
        elif not self.persistent:
            self.close(conn)

    def poll_for(self, conn, events):
        """What conn's socket is polled for from now on (the loop's modify)."""
        self.loop.modify(self._key(conn.sock), events)

    def close(self, conn):
        sock = conn.sock
        if sock is not None:
            if self.forward is not None:
                self.forward.cancel(conn)
            self.engine.forget(conn)
            self.loop.remove(self._key(sock))
            sock.close()
            conn.sock = None
            conn.fill = conn.out = 0

    def clients(self):
        """The connections served now (the status registers' TCP clients)."""
        n = 0
        for conn in self.conns:
            if conn.sock is not None:
                n += 1
        return n

    def due_in(self, now):
        if self.deferred == 1:
            return 0  # the listener's second look, right after this poll round
        due = -1
        for conn in self.conns:
            if conn.sock is not None:
                d = conn.due(now, self.idle_ms)
                if d >= 0 and (due < 0 or d < due):
                    due = d
        return due

    def tick(self, now):
        if self.deferred == 1:
            self.deferred = 2  # the next accept is the second look: the slot rules decide
            self.loop.modify(self._key(self.sock), _POLLIN)
        for conn in self.conns:
            if conn.sock is not None and conn.due(now, self.idle_ms) == 0:
                self.close(conn)
