"""The TCP-to-RTU gateway's answers for what the bus cannot give (firmware/mbnode/tcpgateway.py)
on CPython: the real TcpSlave and TcpGateway on fake sockets, in front of a stand-in for the RTU
master whose every outcome the test decides. What end-to-end runs cannot make happen on demand:
a full queue (0x06), a line that has gone (0x0A), a malformed answer (0x0B), and a client that
leaves while its request waits. tests/test_tcp_gateway.py runs the real chain."""

import struct
import sys

import pytest

from conftest import ROOT
from mbnode import tcp
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from mbnode.tcpgateway import TcpGateway
from mbnode.transaction import BAD, FAILED, OK, SENT, TIMEOUT

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402
from tcpfakes import POLLIN, Clock, Listener, Peer  # noqa: E402


class FakeMaster:
    """The RTU master's API as the gateway uses it; the test ends each transaction."""

    def __init__(self):
        self.queue = []
        self.full = False
        self.closed = False
        self.cancelled = []

    def submit(self, txn):
        if self.full or self.closed:
            return False
        txn.busy = True
        self.queue.append((txn, bytes(txn.pdu[txn.off:txn.off + txn.n]), txn.unit))
        return True

    def cancel(self, txn):
        self.cancelled.append(txn)
        self.queue = [q for q in self.queue if q[0] is not txn]
        txn.busy = False

    def end(self, status, answer=b""):
        txn = self.queue.pop(0)[0]
        buf = bytearray(answer)
        txn.why = "CRC error" if status == BAD else None
        txn.finish(status, buf, 0, len(buf))


@pytest.fixture
def rig(monkeypatch):
    listener = Listener()
    clock = Clock(100000)
    monkeypatch.setattr(tcp, "socket", tcpfakes.socket_module(listener))
    monkeypatch.setattr(tcp, "time", clock)
    loop = tcpfakes.Loop()
    cfg = {"unit_255": True, "persistent": True, "idle_timeout": 0, "when_full": "refuse", "allow": [],
           "max_clients": 2, "host": "127.0.0.1", "port": 502}
    slave = tcp.TcpSlave(loop, Engine(DataModel(), DeviceIdentification({}, 1)), cfg, 1)
    master = FakeMaster()
    gw = TcpGateway(slave, master, {"timeout_ms": 300, "broadcast": True, "units": []})
    peer = Peer()
    listener.backlog.append(peer)
    slave.on_event(3, POLLIN)
    return slave, master, gw, loop, peer


def ask(rig, tid, unit, pdu):
    slave, _, _, loop, peer = rig
    peer.inbox += struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + bytes(pdu)
    while peer.inbox and loop.masks.get(peer.fd):
        loop.handlers[peer.fd].on_event(peer.fd, POLLIN)


def answer(peer):
    out, peer.out = peer.out, b""
    return out


def test_the_request_goes_to_the_master_and_its_answer_back_with_the_mbap_header(rig):
    slave, master, gw, loop, peer = rig
    ask(rig, 0x4242, 17, [3, 0, 100, 0, 1])
    assert master.queue[0][1:] == (bytes([3, 0, 100, 0, 1]), 17)
    assert loop.masks[peer.fd] == 0  # not read until answered
    ask(rig, 0x4243, 17, [3, 0, 101, 0, 1])  # waits in the socket meanwhile
    assert len(master.queue) == 1
    master.end(OK, bytes([3, 2, 0, 7]))
    assert answer(peer) == struct.pack(">HHHB", 0x4242, 0, 5, 17) + bytes([3, 2, 0, 7])
    assert loop.masks[peer.fd] == POLLIN
    loop.handlers[peer.fd].on_event(peer.fd, POLLIN)  # the second one is read now
    assert master.queue[0][1] == bytes([3, 0, 101, 0, 1])


@pytest.mark.parametrize("status, code", [(TIMEOUT, 0x0B), (BAD, 0x0B), (FAILED, 0x0A)])
def test_what_the_bus_did_not_give_is_an_exception(rig, status, code):
    slave, master, gw, loop, peer = rig
    ask(rig, 7, 17, [4, 0, 0, 0, 2])
    master.end(status)
    assert answer(peer) == struct.pack(">HHHB", 7, 0, 3, 17) + bytes([0x84, code])


def test_a_full_queue_is_exception_06_and_a_gone_line_0a(rig):
    slave, master, gw, loop, peer = rig
    master.full = True
    ask(rig, 8, 17, [3, 0, 0, 0, 1])
    assert answer(peer) == struct.pack(">HHHB", 8, 0, 3, 17) + bytes([0x83, 0x06])
    master.full, master.closed = False, True
    ask(rig, 9, 17, [3, 0, 0, 0, 1])
    assert answer(peer) == struct.pack(">HHHB", 9, 0, 3, 17) + bytes([0x83, 0x0A])
    assert (gw.busy, gw.unavailable) == (1, 1)


def test_own_unit_is_not_forwarded(rig):
    slave, master, gw, loop, peer = rig
    ask(rig, 1, 1, [3, 0, 0, 0, 1])
    assert master.queue == []
    assert answer(peer)[7:9] == bytes([3, 2])


def test_a_broadcast_is_forwarded_and_never_answered(rig):
    slave, master, gw, loop, peer = rig
    ask(rig, 1, 0, [6, 0, 4, 0, 9])
    assert master.queue[0][2] == 0
    master.end(SENT)
    assert answer(peer) == b"" and loop.masks[peer.fd] == POLLIN


def test_a_client_that_leaves_takes_its_request_out(rig):
    slave, master, gw, loop, peer = rig
    ask(rig, 1, 17, [3, 0, 0, 0, 1])
    txn = master.queue[0][0]
    peer.eof = True
    loop.handlers[peer.fd].on_event(peer.fd, 0x10)  # hang-up
    assert master.cancelled == [txn] and master.queue == []
    assert peer.closed
