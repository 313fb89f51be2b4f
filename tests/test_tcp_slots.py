"""Who gets a Modbus TCP slot when all are taken (firmware/mbnode/tcp.py), on CPython with fake
sockets and a loop that serves events in the order a test gives: the order in which MicroPython's
poll reports descriptors follows their numbers, so on a device either order happens.

A client that closes its connection and connects again at once has its old connection's end and
its new connection in the same poll round. Served listener first, the new connection used to be
judged while the old one still held its slot, every slot polling: refused (seen in the soak, and
in tests/test_soak.py's run whose clients reconnect after each loss). The listener now looks
again after the round."""

import sys
import types

import pytest

from conftest import ROOT
from mbnode import tcp
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402
from tcpfakes import POLLIN, Clock, Listener, Peer  # noqa: E402


class Loop(tcpfakes.Loop):
    def round(self, order, clock):
        """One poll round: the ready keys in `order` (those polled for POLLIN), then the ticks."""
        self.changed = False
        for key in order:
            if key in self.handlers and self.masks[key] & POLLIN:
                self.handlers[key].on_event(key, POLLIN)
                if self.changed:
                    break  # the poll set changed: a fresh poll
        for t in self.timers:
            t.tick(clock.now)


def _slave_on(monkeypatch, listener, max_clients, guard=None):
    """(slave, loop, clock): a TcpSlave refusing when full, accepting from the fake `listener`,
    on a fake clock; `guard`, when given, is the Engine's write guard."""
    clock = Clock(100000)
    monkeypatch.setattr(tcp, "socket", tcpfakes.socket_module(listener))
    monkeypatch.setattr(tcp, "time", clock)
    loop = Loop()
    cfg = {"unit_255": True, "persistent": True, "idle_timeout": 0, "when_full": "refuse", "allow": [],
           "max_clients": max_clients, "host": "127.0.0.1", "port": 502}
    engine = Engine(DataModel(), DeviceIdentification({}, 1))
    if guard is not None:
        engine.guard = guard
    return tcp.TcpSlave(loop, engine, cfg, 1), loop, clock


@pytest.fixture
def slave(monkeypatch):
    listener = Listener()
    s, loop, clock = _slave_on(monkeypatch, listener, 4)
    peers = []
    for _ in range(4):  # four pollers: each has sent requests 50 ms apart, the last just now
        p = Peer()
        listener.backlog.append(p)
        loop.round([3], clock)
        peers.append(p)
    for conn in s.conns:
        conn.gap, conn.last = 50, clock.now
    return types.SimpleNamespace(slave=s, loop=loop, listener=listener, clock=clock, peers=peers)


@pytest.mark.parametrize("listener_first", [True, False])
def test_a_client_that_reconnects_at_once_gets_its_slot_back(slave, listener_first):
    old = slave.peers[1]
    old.eof = True  # its client closed ...
    new = Peer()
    slave.listener.backlog.append(new)  # ... and connected again, all before the next poll
    order = [3, old.fd] if listener_first else [old.fd, 3]
    for _ in range(3):
        slave.loop.round(order, slave.clock)
    assert old.closed and not new.closed, "the reconnect was refused"
    assert new.fd in slave.loop.handlers
    assert sorted(c.sock.fd for c in slave.slave.conns) == sorted(
        [slave.peers[0].fd, new.fd, slave.peers[2].fd, slave.peers[3].fd])


def test_a_fifth_client_is_still_refused_when_every_slot_polls(slave):
    fifth = Peer()
    slave.listener.backlog.append(fifth)
    for _ in range(3):
        slave.loop.round([3], slave.clock)
    assert fifth.closed, "a new connection displaced a poller"
    assert not any(p.closed for p in slave.peers)
    assert slave.loop.masks[3] == POLLIN, "the listener is polled again"


def test_a_slot_takes_each_new_connections_source(monkeypatch):
    """A slot keeps the source the guard gave its connection at the accept (trusted or not) and
    the next connection in that slot gets its own: trusted, other, trusted again."""
    addresses = ["127.0.0.1", "127.0.0.2", "127.0.0.1"]

    class From(Listener):
        def accept(self):
            peer, _ = Listener.accept(self)
            return peer, (addresses.pop(0), 50000)

    listener = From()
    s, loop, clock = _slave_on(monkeypatch, listener, 1, types.SimpleNamespace(trusts=lambda ip: ip == "127.0.0.1"))
    seen = []
    for _ in addresses[:]:
        peer = Peer()
        listener.backlog.append(peer)
        loop.round([3], clock)
        seen.append(s.conns[0].source)
        peer.eof = True
        loop.round([peer.fd], clock)  # its client closes: the slot is free again
        assert s.conns[0].sock is None
    assert seen == [4, 2, 4]  # pdu.SOURCE_TCP_TRUSTED, SOURCE_TCP, SOURCE_TCP_TRUSTED
