"""The TCP master's rules (firmware/mbnode/tcpmaster.py) on CPython, with fake sockets whose
every event the test decides: which server gets which connection, that a dead server delays
only the requests queued to it, answers matched by transaction id, and how each transaction
ends. End to end, with real sockets and pymodbus servers, it runs in tests/test_mqtt_gateway.py.
"""

import errno
import struct
import sys
import types

import pytest

from conftest import ROOT
from mbnode import tcpmaster
from mbnode.transaction import BAD, FAILED, OK, REFUSED, TIMEOUT, UNREACHABLE, Transaction

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402

POLLIN, POLLOUT, POLLHUP = 1, 4, 0x10


class Sock:
    def __init__(self, net):
        self.net = net
        self.addr = None
        self.sent = []
        self.inbox = b""
        self.eof = False
        self.closed = False
        self.take = None  # bytes a write takes at most (None: all)

    def setblocking(self, flag):
        pass

    def connect(self, addr):
        self.addr = addr
        self.net.socks.append(self)
        if addr[0] in self.net.refuse_at_once:
            raise OSError(errno.ECONNREFUSED)
        raise OSError(errno.EINPROGRESS)

    def write(self, buf, n):
        k = n if self.take is None else min(n, self.take)
        self.sent.append(bytes(buf[:k]))
        return k

    def readinto(self, buf, n):
        if self.inbox:
            k = min(n, len(self.inbox))
            buf[:k] = self.inbox[:k]
            self.inbox = self.inbox[k:]
            return k
        return 0 if self.eof else None

    def read(self, n):
        raise OSError(errno.ECONNREFUSED)

    def close(self):
        self.closed = True


class Net:
    def __init__(self):
        self.socks = []
        self.refuse_at_once = set()

    def module(self):
        def getaddrinfo(host, port):
            if host.endswith(".invalid"):
                raise OSError(-2)
            return [(2, 1, 6, "", (host, port))]

        return types.SimpleNamespace(socket=lambda *a: Sock(self), getaddrinfo=getaddrinfo, SOCK_STREAM=1)

    def to(self, host):
        return [s for s in self.socks if s.addr[0] == host and not s.closed]


class Rig:
    def __init__(self, monkeypatch, links=2, queue=2, pending=2):
        self.clock = tcpfakes.Clock(100000)
        self.clock.ticks_add = lambda a, b: a + b
        self.net = Net()
        monkeypatch.setattr(tcpmaster, "time", self.clock)
        monkeypatch.setattr(tcpmaster, "socket", self.net.module())
        self.loop = tcpfakes.Loop()
        self.master = tcpmaster.TcpMaster(self.loop, links, queue, pending)
        self.ended = []

    def txn(self, host, tag, pdu=(3, 0, 0, 0, 1), unit=1, timeout_ms=1000, port=502):
        t = Transaction(self.done)
        t.host, t.port, t.unit, t.timeout_ms = host, port, unit, timeout_ms
        t.pdu[:len(pdu)] = bytes(pdu)
        t.n = len(pdu)
        t.user = tag
        return t

    def done(self, txn, status, buf, o, n):
        self.ended.append((txn.user, status, bytes(buf[o:o + n]) if status == OK else txn.why))

    def event(self, sock, events):
        self.loop.handlers[sock].on_event(sock, events)

    def connected(self, sock):
        self.event(sock, POLLOUT)

    def answer(self, sock, pdu, tid=None, unit=1):
        if tid is None:
            tid = struct.unpack(">H", sock.sent[-1][:2])[0]
        sock.inbox += struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + bytes(pdu)
        self.event(sock, POLLIN)

    def run_ms(self, ms):
        self.clock.now += ms
        self.master.tick(self.clock.now)


@pytest.fixture
def rig(monkeypatch):
    return Rig(monkeypatch)


def test_two_servers_at_once(rig):
    assert rig.master.submit(rig.txn("10.0.0.1", "a"))
    assert rig.master.submit(rig.txn("10.0.0.2", "b"))
    [a], [b] = rig.net.to("10.0.0.1"), rig.net.to("10.0.0.2")
    rig.connected(b)
    rig.answer(b, [3, 2, 0, 9])
    assert rig.ended == [("b", OK, bytes([3, 2, 0, 9]))]
    rig.connected(a)
    assert a.sent[0][6:] == bytes([1, 3, 0, 0, 0, 1])  # unit, then the PDU
    rig.answer(a, [3, 2, 0, 8])
    assert rig.ended[1] == ("a", OK, bytes([3, 2, 0, 8]))
    assert a.closed and b.closed  # pool links close when idle


def test_a_dead_server_delays_only_its_own_queue(rig):
    rig.master.submit(rig.txn("10.0.0.9", "dead1", timeout_ms=500))
    rig.master.submit(rig.txn("10.0.0.9", "dead2", timeout_ms=500))
    rig.master.submit(rig.txn("10.0.0.2", "live"))
    [live] = rig.net.to("10.0.0.2")
    rig.connected(live)
    rig.answer(live, [3, 2, 0, 1])
    assert rig.ended == [("live", OK, bytes([3, 2, 0, 1]))]
    rig.run_ms(500)
    assert rig.ended[1] == ("dead1", TIMEOUT, None)
    assert len(rig.net.to("10.0.0.9")) == 1  # the connect that timed out closed; dead2 connects anew
    rig.run_ms(500)
    assert rig.ended[2] == ("dead2", TIMEOUT, None)


def test_a_late_answer_is_skipped_by_its_transaction_id(rig):
    rig.master.pool[0].reset_after = 3  # keep the connection through a timeout
    rig.master.submit(rig.txn("10.0.0.1", "first", timeout_ms=100))
    rig.master.submit(rig.txn("10.0.0.1", "second"))
    [s] = rig.net.to("10.0.0.1")
    rig.connected(s)
    old_tid = struct.unpack(">H", s.sent[0][:2])[0]
    rig.run_ms(100)
    assert rig.ended == [("first", TIMEOUT, None)]
    assert len(s.sent) == 2  # the second went out on the same connection
    s.inbox += struct.pack(">HHHB", old_tid, 0, 5, 1) + bytes([3, 2, 0, 66])  # the late one
    rig.answer(s, [3, 2, 0, 77])
    assert rig.ended[1] == ("second", OK, bytes([3, 2, 0, 77]))


def test_more_servers_than_links_wait_for_a_free_link(rig):
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert rig.master.submit(rig.txn(host, host))
    assert rig.net.to("10.0.0.3") == []  # two links, both busy: it waits
    assert rig.master.waiting == 1
    [a] = rig.net.to("10.0.0.1")
    rig.connected(a)
    rig.answer(a, [3, 2, 0, 1])
    [c] = rig.net.to("10.0.0.3")  # the freed link took it
    rig.connected(c)
    rig.answer(c, [3, 2, 0, 3])
    assert [e[0] for e in rig.ended] == ["10.0.0.1", "10.0.0.3"]


def test_queues_have_bounds(rig):
    assert rig.master.submit(rig.txn("10.0.0.1", 1))  # on the wire
    assert rig.master.submit(rig.txn("10.0.0.1", 2))  # its link's queue holds 2
    assert rig.master.submit(rig.txn("10.0.0.1", 3))
    assert not rig.master.submit(rig.txn("10.0.0.1", 4))
    assert rig.master.submit(rig.txn("10.0.0.2", 5))
    assert rig.master.submit(rig.txn("10.0.0.3", 6))  # waiting for a link (2)
    assert rig.master.submit(rig.txn("10.0.0.4", 7))
    assert not rig.master.submit(rig.txn("10.0.0.5", 8))


@pytest.mark.parametrize("how, status, why", [
    ("refused at once", REFUSED, None),
    ("refused later", REFUSED, None),
    ("no such name", UNREACHABLE, "cannot resolve"),
    ("closed before the answer", FAILED, "connection closed by 10.0.0.1:502 before the response"),
    ("malformed header", BAD, "malformed Modbus TCP response from 10.0.0.1:502"),
    ("send buffer full", FAILED, "cannot send to 10.0.0.1:502: send buffer full"),
])
def test_how_a_transaction_can_fail(rig, how, status, why):
    host = "x.invalid" if how == "no such name" else "10.0.0.1"
    if how == "refused at once":
        rig.net.refuse_at_once.add(host)
    rig.master.submit(rig.txn(host, "t"))
    if how == "refused later":
        rig.event(rig.net.to(host)[0], POLLHUP)
    elif how == "closed before the answer":
        s = rig.net.to(host)[0]
        rig.connected(s)
        s.eof = True
        rig.event(s, POLLIN)
    elif how == "malformed header":
        s = rig.net.to(host)[0]
        rig.connected(s)
        s.inbox = struct.pack(">HHHB", 1, 7, 3, 1) + b"\x03\x00"
        rig.event(s, POLLIN)
    elif how == "send buffer full":
        s = rig.net.to(host)[0]
        s.take = 5
        rig.connected(s)
    [(tag, got, text)] = rig.ended
    assert got == status
    assert text == why or (why and text.startswith(why))
    assert all(s.closed for s in rig.net.socks)


def test_a_link_of_ones_own_stays_open_and_connects_only_on_request(rig):
    link = rig.master.link()
    link.target("10.0.0.7", 1502)
    opener = rig.txn("10.0.0.7", "open", pdu=(), port=1502)
    assert link.submit(opener)
    [s] = rig.net.to("10.0.0.7")
    assert s.addr == ("10.0.0.7", 1502)
    rig.connected(s)
    assert rig.ended == [("open", OK, b"")] and link.is_open
    assert link.submit(rig.txn("10.0.0.7", "read", port=1502))
    rig.answer(s, [3, 2, 0, 5])
    assert rig.ended[1] == ("read", OK, bytes([3, 2, 0, 5]))
    assert link.is_open and not s.closed  # kept
    link.close()
    assert s.closed and not link.is_open


def test_cancel_takes_a_waiting_transaction_out(rig):
    a, b = rig.txn("10.0.0.1", "a"), rig.txn("10.0.0.1", "b")
    rig.master.submit(a)
    rig.master.submit(b)
    assert rig.master.cancel(b) and not b.busy
    [s] = rig.net.to("10.0.0.1")
    rig.connected(s)
    rig.answer(s, [3, 2, 0, 1])
    assert [e[0] for e in rig.ended] == ["a"]
    assert len(s.sent) == 1
