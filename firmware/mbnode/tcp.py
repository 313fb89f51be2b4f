"""Modbus TCP slave: MBAP framing over non-blocking sockets on the shared event loop.

Each connection slot owns a 260-byte receive buffer (the largest ADU); one transmit buffer and
one scratch buffer are shared, so memory is fixed at start-up and a request allocates nothing:
readinto() fills the slot buffer, the PDU engine answers into the transmit buffer, and the
response leaves in one write(). A frame may arrive in pieces or several in one segment; bytes
of a following frame are moved to the front of the slot buffer.

A response that does not fit the socket's send buffer gets a 0.2 s blocking window to
leave, after which the peer is dropped. A protocol id other than 0 or a length field outside 2..254 closes that connection without a
reply. Requests for another unit id get no reply. When every slot is busy a new connection is
either refused (accepted and closed at once) or replaces the connection silent for longest
("when_full"). A connection silent for idle_timeout seconds is closed (0 = never).
"""

import socket
import time

from mbnode.fast import copy

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ADU_MAX = const(260)  # 7-byte MBAP header + 253-byte PDU
_SEND_WAIT_S = 0.2


def peer_ip(addr):
    """IPv4 text of an accept() address: a tuple on boards, raw sockaddr bytes on unix."""
    if isinstance(addr, tuple):
        return addr[0]
    return "%d.%d.%d.%d" % tuple(socket.sockaddr(addr)[1])


class _Conn:
    def __init__(self, server):
        self.server = server
        self.sock = None
        self.rx = bytearray(_ADU_MAX)
        self.fill = 0
        self.last = 0

    def on_event(self, sock, events):
        server = self.server
        if events & 0x18:  # POLLHUP | POLLERR
            return server.close(self)
        fill = self.fill
        try:
            if fill == 0:
                n = sock.readinto(self.rx)
            else:
                n = sock.readinto(server.scratch, _ADU_MAX - fill)
                if n:
                    copy(self.rx, fill, server.scratch, 0, n)
        except OSError:
            return server.close(self)
        if n is None:
            return False
        if n == 0:
            return server.close(self)
        fill += n
        self.last = time.ticks_ms()
        rx = self.rx
        o = 0
        while fill - o >= 6:
            length = (rx[o + 4] << 8) | rx[o + 5]
            if rx[o + 2] or rx[o + 3] or length < 2 or length > 254:
                return server.close(self)
            end = o + 6 + length
            if end > fill:
                break
            if not server.answer(self, sock, o, length):
                return True
            o = end
        if o:
            fill -= o
            copy(rx, 0, rx, o, fill)
        self.fill = fill
        return False


class TcpSlave:
    def __init__(self, loop, engine, cfg, unit_id):
        self.loop = loop
        self.engine = engine
        self.unit_id = unit_id
        self.persistent = cfg["persistent"]
        self.idle_ms = cfg["idle_timeout"] * 1000
        self.replace_idlest = cfg["when_full"] == "close_idlest"
        self.allow = cfg["allow"]
        self.tx = bytearray(_ADU_MAX)
        self.scratch = bytearray(_ADU_MAX)
        self.conns = [_Conn(self) for _ in range(cfg["max_clients"])]
        self.address = (cfg["host"], cfg["port"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(cfg["host"], cfg["port"])[0][-1])
        s.listen(cfg["max_clients"])
        s.setblocking(False)
        self.sock = s
        loop.add(s, self)
        if self.idle_ms:
            loop.add_timer(self)

    def on_event(self, sock, events):
        # The listening socket is readable: accept one connection.
        try:
            c, addr = sock.accept()
        except OSError:
            return False
        if self.allow and peer_ip(addr) not in self.allow:
            c.close()
            return False
        slot = None
        idlest = None
        for conn in self.conns:
            if conn.sock is None:
                slot = conn
                break
            if idlest is None or time.ticks_diff(conn.last, idlest.last) < 0:
                idlest = conn
        if slot is None:
            if not self.replace_idlest:
                c.close()
                return False
            self.close(idlest)
            slot = idlest
        c.setblocking(False)
        nodelay = getattr(socket, "TCP_NODELAY", None)
        if nodelay is not None:
            c.setsockopt(socket.IPPROTO_TCP, nodelay, 1)
        slot.sock = c
        slot.fill = 0
        slot.last = time.ticks_ms()
        self.loop.add(c, slot)
        return True

    def answer(self, conn, sock, o, length):
        """Serve the frame at conn.rx[o:]; False when the connection was closed."""
        rx = conn.rx
        unit = rx[o + 6]
        if self.unit_id and unit != self.unit_id:
            return True
        tx = self.tx
        n = self.engine.handle(rx, o + 7, length - 1, tx, 7)
        tx[0] = rx[o]
        tx[1] = rx[o + 1]
        tx[2] = 0
        tx[3] = 0
        tx[4] = (n + 1) >> 8
        tx[5] = (n + 1) & 0xFF
        tx[6] = unit
        try:
            sent = sock.write(tx, n + 7) or 0
            if sent < n + 7:
                # Send buffer full (small on lwIP): give the peer a short blocking window to
                # take the rest. One that still does not read is dropped rather than queued
                # for, since there is no memory for a backlog; the others wait at most this.
                sock.settimeout(_SEND_WAIT_S)
                try:
                    sent += sock.write(tx, sent, n + 7 - sent) or 0
                finally:
                    sock.setblocking(False)
        except OSError:
            sent = -1
        if sent != n + 7 or not self.persistent:
            self.close(conn)
            return False
        return True

    def close(self, conn):
        sock = conn.sock
        if sock is not None:
            self.loop.remove(sock)
            sock.close()
            conn.sock = None
            conn.fill = 0
        return True

    def due_in(self, now):
        due = -1
        for conn in self.conns:
            if conn.sock is not None:
                d = self.idle_ms - time.ticks_diff(now, conn.last)
                if d < 0:
                    d = 0
                if due < 0 or d < due:
                    due = d
        return due

    def tick(self, now):
        for conn in self.conns:
            if conn.sock is not None and time.ticks_diff(now, conn.last) >= self.idle_ms:
                self.close(conn)

    def shutdown(self):
        for conn in self.conns:
            self.close(conn)
        self.loop.remove(self.sock)
        self.sock.close()
