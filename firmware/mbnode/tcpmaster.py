"""The Modbus TCP master: non-blocking connections to other servers, one request at a time on
each, requests to different servers at the same time.

A TcpLink is one connection to one server with its own queue. The master's pool links serve
whoever submits a transaction to a host and port: a link already busy with that server takes
it in its queue; else a free link connects to the server; else it waits in the master's queue
until a link is free. A pool link closes when its queue is empty (a server's connection slots
are not held by a client that may never ask again). A user that talks to one server for good
(an MQTT gateway connection slot, a polled server) makes its own link with link(), which stays
open until closed.

Because each server has its own link, a server that does not answer delays only the requests
queued behind it to the same server. Nothing waits: connects are non-blocking (POLLOUT says when
they are done), answers are read as they come, and a request's timeout_ms (from the moment it
is started on its link, connect included) is a loop timer. One call may block: resolving a
host NAME (getaddrinfo); addresses in numbers never do. A request is written in one call; a
socket that does not take all of it (at most 260 bytes, on a connection with at most one
request outstanding) ends the transaction FAILED rather than holding it.

A transaction's buffer must hold a whole answer (260 bytes, transaction.ADU): the answer is
read into it once its request has gone. An answer is taken by its transaction id; answers with another id (late answers to requests
that timed out) are skipped. A malformed MBAP header closes the connection (BAD).
"""

import errno
import socket
import time

from mbnode.fast import copy
from mbnode.loop import sooner
from mbnode.scratch import SCRATCH
from mbnode.transaction import BAD, FAILED, OK, REFUSED, TIMEOUT, UNREACHABLE

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ADU = const(260)
_POLLIN = const(1)
_POLLOUT = const(4)
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN)


def why(e):
    """An OSError as a short word: its errno name, or its text."""
    code = e.args[0] if e.args else 0
    return errno.errorcode.get(code, str(code)) if type(code) is int else str(code)


class TcpLink:
    def __init__(self, master, queue, keep):
        self.master = master
        self.keep = keep  # stays open while idle (a user's own link); pool links close
        self.host = None
        self.port = 0
        self.sock = None
        self.connecting = False
        self.queue = [None] * queue
        self.head = 0
        self.count = 0
        self.cur = None
        self.deadline = 0
        self.tid = 0
        self.fill = 0  # bytes of the answer in the transaction's own buffer (see _received)
        self.timeouts = 0  # in a row, on this connection
        self.reset_after = 1  # timeouts in a row after which the connection is closed and made anew

    @property
    def is_open(self):
        return self.sock is not None and not self.connecting

    @property
    def idle(self):
        return self.cur is None and not self.count

    def target(self, host, port):
        """Point an idle link at another server (its connection, if any, is closed)."""
        if host != self.host or port != self.port:
            self.close()
            self.host = host
            self.port = port

    def submit(self, txn):
        """Queue txn for this link's server; False when its queue is full."""
        if self.count == len(self.queue) or txn.busy:
            return False
        q = self.queue
        q[(self.head + self.count) % len(q)] = txn
        self.count += 1
        txn.busy = True
        if self.cur is None:
            self._start()
        return True

    def close(self):
        if self.sock is not None:
            self.master.loop.remove(self.sock)
            self.sock.close()
            self.sock = None
        self.connecting = False
        self.fill = 0

    # --- one transaction

    def _start(self):
        while self.cur is None and self.count:
            q = self.queue
            txn = q[self.head]
            q[self.head] = None
            self.head = (self.head + 1) % len(q)
            self.count -= 1
            self.cur = txn
            self.deadline = time.ticks_add(time.ticks_ms(), txn.timeout_ms)
            if self.sock is None:
                self._connect()
            elif not self.connecting:
                self._send()

    def _connect(self):
        txn = self.cur
        try:
            ai = socket.getaddrinfo(self.host, self.port)[0]
        except OSError as e:
            txn.why = "cannot resolve %s (%s)" % (self.host, why(e))
            self._finish(UNREACHABLE)
            return
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.args[0] not in _IN_PROGRESS:
                s.close()
                self._failed_connect(e)
                return
        self.sock = s
        self.connecting = True
        self.fill = 0
        self.master.loop.add(s, self, _POLLOUT)

    def _failed_connect(self, e):
        txn = self.cur
        if e.args and e.args[0] == errno.ECONNREFUSED:
            self._finish(REFUSED)
        else:
            txn.why = why(e)
            self._finish(UNREACHABLE)

    def _send(self):
        txn = self.cur
        n = txn.n
        if n == 0:  # connect only (an MQTT slot's OPEN)
            self._finish(OK)
            return
        tx = self.master.tx
        self.tid = (self.tid + 1) & 0xFFFF
        tx[0] = self.tid >> 8
        tx[1] = self.tid & 0xFF
        tx[2] = tx[3] = 0
        tx[4] = (n + 1) >> 8
        tx[5] = (n + 1) & 0xFF
        tx[6] = txn.unit
        copy(tx, 7, txn.pdu, txn.off, n)
        self.fill = 0
        try:
            sent = self.sock.write(tx, n + 7) or 0
            reason = "send buffer full"
        except OSError as e:
            sent = -1
            reason = why(e)
        if sent != n + 7:
            self.close()
            txn.why = "cannot send to %s: %s" % (self.where(), reason)
            self._finish(FAILED)

    def where(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def _finish(self, status, o=0, n=0):
        txn = self.cur
        self.cur = None
        if status == TIMEOUT:
            self.timeouts += 1
            if self.connecting or self.timeouts >= self.reset_after:
                self.close()
        elif status == OK:
            self.timeouts = 0
        self.master.count(status)
        if txn is not None:
            txn.finish(status, txn.pdu, o, n)
        if self.cur is None:
            if self.count:
                self._start()
            else:
                self.master.idle(self)

    # --- the loop's handler for the socket

    def on_event(self, sock, events):
        if self.connecting:
            self.connecting = False
            if events & 0x18:  # POLLERR | POLLHUP: the connect failed; reading tells why
                try:
                    sock.read(1)
                    e = OSError(errno.ECONNREFUSED)
                except OSError as x:
                    e = x
                self.close()
                if self.cur is not None:
                    self._failed_connect(e)
                return
            self.master.loop.modify(sock, _POLLIN)
            if self.cur is not None:
                self._send()
            return
        scratch = SCRATCH  # the device's (mbnode.scratch): copied into the transaction at once
        try:
            k = sock.readinto(scratch, _ADU - self.fill)
        except OSError:
            k = 0
        if k is None:
            return
        if not k:
            self.close()
            if self.cur is not None:
                self.cur.why = "connection closed by %s before the response" % self.where()
                self._finish(FAILED)
            return
        if self.cur is None:
            return  # an answer nobody waits for any more: dropped
        copy(self.cur.pdu, self.fill, scratch, 0, k)
        self.fill += k
        self._received()

    def _received(self):
        # The answer is read into the transaction's own buffer: its request went out of the
        # master's tx in one write, so the buffer is free, and a link owns no 260 bytes of its own.
        rx = self.cur.pdu
        while self.fill >= 7 and self.cur is not None:
            length = (rx[4] << 8) | rx[5]
            if rx[2] or rx[3] or length < 2 or length > 254:
                self.close()
                self.cur.why = "malformed Modbus TCP response from %s" % self.where()
                self._finish(BAD)
                return
            end = 6 + length
            if self.fill < end:
                return
            if ((rx[0] << 8) | rx[1]) == self.tid:
                self.fill = 0  # one request at a time: nothing can follow its answer
                self._finish(OK, 7, length - 1)
                return
            # An answer to an earlier request that timed out on this link: skipped.
            self.fill -= end
            copy(rx, 0, rx, end, self.fill)

    def on_error(self, sock):
        # The loop's call after on_event raised: this connection is in an unknown state.
        self.close()
        if self.cur is not None:
            self.cur.why = "internal error on the connection to %s" % self.where()
            self._finish(FAILED)

    # --- the master's timer

    def expired(self, now):
        if self.cur is not None and time.ticks_diff(now, self.deadline) >= 0:
            self._finish(TIMEOUT)


class TcpMaster:
    def __init__(self, loop, links=4, queue=4, pending=8):
        """links: the pool's connections (servers served at the same time); queue: requests
        waiting on each; pending: requests waiting for a free link."""
        self.loop = loop
        self.tx = bytearray(_ADU)
        self.pool = [TcpLink(self, queue, False) for _ in range(links)]
        self.links = list(self.pool)  # every link the timer serves
        self.pending = [None] * pending
        self.waiting = 0
        # Counters (docs/master.md).
        self.answers = self.timeouts = self.failures = 0
        loop.add_timer(self)

    def link(self, queue=4):
        """A link of the caller's own: it stays open between requests until closed."""
        link = TcpLink(self, queue, True)
        self.links.append(link)
        return link

    def submit(self, txn):
        """Send txn to txn.host:txn.port on a pool link; False when nothing can take it."""
        if txn.busy:
            return False
        host = txn.host
        port = txn.port
        free = None
        for link in self.pool:
            if link.host == host and link.port == port and (link.sock is not None or not link.idle):
                return link.submit(txn)
            if free is None and link.idle and link.sock is None:
                free = link
        if free is not None:
            free.target(host, port)
            return free.submit(txn)
        if self.waiting == len(self.pending):
            return False
        self.pending[self.waiting] = txn
        self.waiting += 1
        txn.busy = True
        return True

    def cancel(self, txn):
        """Drop txn if it has not started (queued on a link or waiting for one)."""
        for i in range(self.waiting):
            if self.pending[i] is txn:
                self._take(i)
                txn.busy = False
                return True
        for link in self.links:
            q = link.queue
            size = len(q)
            for i in range(link.count):
                if q[(link.head + i) % size] is txn:
                    for j in range(i, link.count - 1):
                        q[(link.head + j) % size] = q[(link.head + j + 1) % size]
                    link.count -= 1
                    q[(link.head + link.count) % size] = None
                    txn.busy = False
                    return True
        return False

    def _take(self, i):
        txn = self.pending[i]
        for j in range(i, self.waiting - 1):
            self.pending[j] = self.pending[j + 1]
        self.waiting -= 1
        self.pending[self.waiting] = None
        return txn

    def idle(self, link):
        """link has nothing more to do: a pool link takes waiting requests (its own server's
        first) or closes."""
        if link.keep:
            return
        if self.waiting:
            i = 0
            for k in range(self.waiting):
                t = self.pending[k]
                if t.host == link.host and t.port == link.port:
                    i = k
                    break
            first = self.pending[i]
            link.target(first.host, first.port)
            k = 0
            q = link.queue
            while k < self.waiting and link.count < len(q):
                t = self.pending[k]
                if t.host == link.host and t.port == link.port:
                    q[(link.head + link.count) % len(q)] = self._take(k)
                    link.count += 1
                else:
                    k += 1
            link._start()
            return
        link.close()

    def count(self, status):
        if status == OK:
            self.answers += 1
        elif status == TIMEOUT:
            self.timeouts += 1
        else:
            self.failures += 1

    # --- loop timer: the requests' timeouts

    def due_in(self, now):
        d = -1
        for link in self.links:
            if link.cur is not None:
                d = sooner(d, time.ticks_diff(link.deadline, now))
        return d

    def tick(self, now):
        for link in self.links:
            link.expired(now)
