"""A write to extension modules' outputs that ends inside the Engine's call (firmware/mbnode/
extension.py): the master refuses it at once (its queue is full: submit returns False) or ends
it at once (a connect that fails at once: finish inside submit). Such a write is answered at
once by the Engine, with the exception its end gives (06, 0x0B), and the transport's waiter is
never called: the Engine's contract (mbnode.pdu) is that a waiter hears only of a request the
Engine answered PENDING, and each transport counts on it (the MQTT relay frees its job, the TCP
slave reads the connection again, the RTU link sends the late answer).

On CPython: the real Extension, Engine, TcpSlave (fake sockets), RtuServer and MQTT Relay; the
master is the test's (tests/test_extension_rules.py's), refusing or failing as each case asks.
"""

import struct
import sys

import pytest

from conftest import ROOT
from mbnode import tcp
from mbnode.diag import LineDiagnostics
from mbnode.masters import Masters
from mbnode.mqtt import textproto
from mbnode.mqtt.relay import Relay
from mbnode.rtu import RtuServer
from mbnode.transaction import UNREACHABLE
from test_extension_rules import Loop, Waiter, World

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402
from modbus_crc import crc16  # noqa: E402
from tcpfakes import POLLIN, Clock, Listener, Peer  # noqa: E402

WRITE = "0600400007"  # FC06 to holding 0x40: the module's first AO


def refuse(w):
    w.line.refuse = True  # submit returns False: the queue is full


def fail_at_once(w):
    def submit(txn):  # a master whose connect fails inside submit (e.g. ENETUNREACH at once)
        txn.busy = True
        txn.why = "network unreachable"
        txn.finish(UNREACHABLE)
        return True

    w.line.submit = submit


ENDS = [(refuse, "8606"), (fail_at_once, "860b")]
IDS = ["queue-full", "connect-fails-at-once"]


def module_online(monkeypatch):
    """Module 4 on the serial line: one AO at the map's 0x40, one DI; online."""
    w = World(monkeypatch, [{"unit": 4, "ao": 1, "di": 1}], writes=2)
    w.tick()
    w.answer("1000000001")
    w.answer("020101")
    assert w.ext.offline == 0 and w.line.queue == []
    return w


@pytest.mark.parametrize("end, answer", ENDS, ids=IDS)
def test_the_engine_answers_it_at_once_and_the_waiter_hears_nothing(monkeypatch, end, answer):
    w = module_online(monkeypatch)
    end(w)
    waiter = Waiter()
    resp = bytearray(260)
    n = w.engine.handle(bytearray.fromhex(WRITE) + bytearray(8), 0, 5, resp, 0, waiter, 2)  # pdu.SOURCE_TCP
    assert bytes(resp[:n]).hex() == answer
    assert waiter.answers == []
    assert (w.engine.requests_lo, w.engine.exceptions_lo) == (1, 1)  # counted once, not again as late
    assert all(not job.busy for job in w.ext.jobs)
    assert w.request("0300400001")[1] == "03020000"  # the map keeps what the module has


@pytest.mark.parametrize("end, answer", ENDS, ids=IDS)
def test_the_tcp_slave_answers_and_reads_the_connection_again(monkeypatch, end, answer):
    w = module_online(monkeypatch)
    monkeypatch.setattr(tcp, "socket", tcpfakes.socket_module(Listener()))
    monkeypatch.setattr(tcp, "time", Clock(100000))
    loop = tcpfakes.Loop()
    cfg = {"unit_255": True, "persistent": True, "idle_timeout": 0, "when_full": "refuse", "allow": [],
           "max_clients": 1, "host": "127.0.0.1", "port": 502}
    slave = tcp.TcpSlave(loop, w.engine, cfg, 1)
    peer = Peer()
    slave.sock.backlog.append(peer)
    slave.on_event(3, POLLIN)
    end(w)
    pdu = bytes.fromhex(WRITE)
    peer.inbox = struct.pack(">HHHB", 0x1234, 0, len(pdu) + 1, 1) + pdu
    loop.handlers[peer.fd].on_event(peer.fd, POLLIN)
    assert peer.out == struct.pack(">HHHB", 0x1234, 0, 3, 1) + bytes.fromhex(answer)
    assert loop.masks[peer.fd] == POLLIN  # read again: the next request is served
    peer.out = b""
    pdu = bytes.fromhex("0300400001")
    peer.inbox = struct.pack(">HHHB", 0x1235, 0, len(pdu) + 1, 1) + pdu
    loop.handlers[peer.fd].on_event(peer.fd, POLLIN)
    assert peer.out == struct.pack(">HHHB", 0x1235, 0, 5, 1) + bytes.fromhex("03020000")


class Link:
    """The RTU link as the server sees it: a late answer would come to finish()."""

    def __init__(self):
        self.late = []

    def finish(self, status, buf, o, n):
        self.late.append(bytes(buf[o:o + n]).hex())


def frame(hex_text):
    body = bytes.fromhex(hex_text)
    c = crc16(body)
    return bytearray(body + bytes((c & 0xFF, c >> 8)))


@pytest.mark.parametrize("end, answer", ENDS, ids=IDS)
def test_the_rtu_slave_replies_at_once(monkeypatch, end, answer):
    w = module_online(monkeypatch)
    server = RtuServer(w.engine, LineDiagnostics(), 1)
    server.waiter = link = Link()
    end(w)
    tx = bytearray(256)
    n = server.serve(frame("01" + WRITE), 0, 8, tx)
    assert bytes(tx[:n]) == bytes(frame("01" + answer))
    assert server.waiting == 0 and link.late == []


@pytest.mark.parametrize("end, answer", ENDS, ids=IDS)
def test_the_mqtt_relay_answers_at_once_and_keeps_its_jobs(monkeypatch, end, answer):
    w = module_online(monkeypatch)
    late = []
    relay = Relay(w.engine, 1, (["127.0.0.1"], 502, []), Masters(Loop()), None, late.append, 2)
    end(w)
    req = textproto.parse(b"0 5 0 127.0.0.1 502 1 1 6 65 7", [])
    assert relay.is_remote(req)  # it needs a job: the bridge waits for one when none is free
    assert relay.start(req) == textproto.error(req, textproto.exception_text(int(answer[2:], 16)))
    assert late == [] and len(relay.jobs.free) == 2 and not relay.busy  # the jobs (made: a job may wait) all free
    assert relay.start(textproto.parse(b"0 6 0 127.0.0.1 502 1 1 3 65 1", [])) == "6 OK 0"
