"""The MQTT gateway's TCP master and the relay's jobs are made at the gateway's first remote
request, not at start-up (mbnode.masters.Masters.tcp, mbnode.mqtt.relay.Relay._jobs: mbnode.mqtt.jobs), on CPython
with the TCP master's sockets faked.

A device whose gateway only answers requests to itself never makes them. When the heap has no
room for them at the first remote request, that request is answered with one line (the bridge's
"out of memory for this request") and nothing is left half made: no job is made or taken and the
next request makes what is missing and keeps it; the jobs are made all at once, never per request. End to end (real sockets, pymodbus servers) the remote
requests run in tests/test_mqtt_gateway.py.
"""

import errno
import sys
import types

import pytest

from conftest import ROOT
from mbnode import tcpmaster
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.masters import Masters
from mbnode.mqtt import jobs as jobs_module
from mbnode.mqtt import textproto
from mbnode.mqtt.bridge import Bridge
from mbnode.mqtt.relay import Relay
from mbnode.pdu import Engine

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402

OWN = (["127.0.0.1", "localhost"], 502, [])  # this device's Modbus TCP slave
JOBS = 2


class Sock:
    """A connection that is still being made when the test looks (connect: EINPROGRESS)."""

    def __init__(self, made):
        self.made = made

    def setblocking(self, flag):
        pass

    def connect(self, addr):
        self.made.append(addr)
        raise OSError(errno.EINPROGRESS)

    def close(self):
        pass


class Rig:
    def __init__(self, monkeypatch, fail_first=0):
        self.connects = []
        self.built = 0
        fake_socket = types.SimpleNamespace(socket=lambda *a: Sock(self.connects), SOCK_STREAM=1,
                                            getaddrinfo=lambda host, port: [(2, 1, 6, "", (host, port))])
        monkeypatch.setattr(tcpmaster, "socket", fake_socket)
        clock = tcpfakes.Clock(100000)
        clock.ticks_add = lambda a, b: a + b
        monkeypatch.setattr(tcpmaster, "time", clock)
        real = tcpmaster.TcpMaster
        left = [fail_first]

        def make(*args):
            if left[0]:
                left[0] -= 1
                raise MemoryError("memory allocation failed")  # as MicroPython's, at the first object
            self.built += 1
            return real(*args)

        monkeypatch.setattr(tcpmaster, "TcpMaster", make)
        self.loop = tcpfakes.Loop()
        self.masters = Masters(self.loop)
        self.replies = []  # lines of remote requests that ended later (finish)
        self.relay = Relay(Engine(DataModel(), DeviceIdentification({}, 1)), 1, OWN, self.masters, None,
                           self.replies.append, JOBS)
        # The bridge's request loop (Bridge._pass) on the relay, with only what it uses: a queue
        # of payloads, a connection, the checked section's serial device ids and publish.
        self.published = []
        self.bridge = types.SimpleNamespace(queue=[], client=object(), m={"serial_devices": []}, relay=self.relay,
                                            t_response=b"response",
                                            publish=lambda topic, payload: self.published.append(payload.decode()))

    def request(self, payload):
        """Run one request through the bridge's loop: its reply line, or None (it is in flight)."""
        before = len(self.published)
        self.bridge.queue.append(payload.encode())
        Bridge._pass(self.bridge)
        assert self.bridge.queue == []
        new = self.published[before:]
        assert len(new) <= 1
        return new[0] if new else None


def test_requests_to_the_device_itself_never_make_the_tcp_master(monkeypatch):
    rig = Rig(monkeypatch)
    line = rig.request("0 7 0 127.0.0.1 502 1 1 3 1 2")
    assert line == "7 OK 0 0"
    assert rig.request("2 8 3 2") == "8 OK 0"  # the status of a slot never opened
    assert rig.request("2 9 3 1") == "9 OK"  # closing it
    assert rig.masters._tcp is None and rig.built == 0
    assert rig.relay.jobs is None and not rig.relay.busy  # no job made either


def test_the_first_remote_request_makes_the_tcp_master_and_it_is_kept(monkeypatch):
    rig = Rig(monkeypatch)
    assert rig.request("0 1 0 192.0.2.7 502 1 5 3 1 1") is None  # in flight
    master = rig.masters._tcp
    assert master is not None and rig.built == 1
    jobs = list(rig.relay.jobs.free)
    assert len(jobs) == JOBS - 1  # every job made at once, one of them taken
    assert rig.connects == [("192.0.2.7", 502)]
    assert rig.request("0 2 0 192.0.2.8 502 1 5 3 1 1") is None
    assert rig.masters._tcp is master and rig.built == 1
    assert rig.connects == [("192.0.2.7", 502), ("192.0.2.8", 502)]
    assert rig.loop.timers.count(master) == 1
    assert rig.relay.jobs.free == [] and rig.relay.busy and jobs[0] not in rig.relay.jobs.free
    assert rig.relay.is_remote(textproto.parse(b"0 3 0 192.0.2.9 502 1 5 3 1 1", []))  # so it waits


@pytest.mark.parametrize("payload", ["0 11 0 192.0.2.7 502 1 5 3 1 1", "2 11 4 0 0 192.0.2.7 502 1"],
                         ids=["format0", "format2-open"])
def test_no_room_for_the_tcp_master_costs_one_line_and_the_next_request_makes_it(monkeypatch, payload):
    rig = Rig(monkeypatch, fail_first=1)
    line = rig.request(payload)
    assert line == textproto.error(textproto.cookie_of(payload.encode()), "out of memory for this request")
    assert line == "11 ERROR: out of memory for this request"
    assert rig.masters._tcp is None and rig.built == 0
    assert rig.loop.timers == []  # nothing half made joined the loop
    jobs = rig.relay.jobs  # a format-2 OPEN makes the jobs first (its slot's last target is theirs)
    assert not rig.relay.busy and (jobs is None or len(jobs.free) == JOBS)  # no job taken
    assert rig.replies == []
    assert rig.request(payload.replace(" 11 ", " 12 ", 1)) is None  # made now, and in flight
    assert rig.masters._tcp is not None and rig.built == 1
    assert rig.connects == [("192.0.2.7", 502)]
    assert len(rig.relay.jobs.free) == JOBS - 1


def test_no_room_for_the_jobs_costs_one_line_and_the_next_request_makes_them(monkeypatch):
    rig = Rig(monkeypatch)
    made = []

    def transaction(done):
        if len(made) == 1 and not rig.published:  # the second job of the first attempt
            made.append(None)
            raise MemoryError("memory allocation failed")
        txn = real(done)
        made.append(txn)
        return txn

    real = jobs_module.Transaction
    monkeypatch.setattr(jobs_module, "Transaction", transaction)
    line = rig.request("0 21 0 192.0.2.7 502 1 5 3 1 1")
    assert line == "21 ERROR: out of memory for this request"
    assert rig.relay.jobs is None and not rig.relay.busy  # the one made is not kept half a set
    assert rig.connects == [] and rig.replies == []
    assert rig.request("0 22 0 192.0.2.7 502 1 5 3 1 1") is None  # made now, all at once, and in flight
    assert len(made) == 2 + JOBS and len(rig.relay.jobs.free) == JOBS - 1
    assert rig.connects == [("192.0.2.7", 502)]


def test_without_masters_the_relay_makes_them_at_the_first_remote_request(monkeypatch):
    # startup.build hands the gateway no Masters when nothing else needed one (no master line,
    # extension or poller): its own requests, format 1 included, never make them.
    rig = Rig(monkeypatch)
    rig.relay.masters = None
    rig.relay.loop = rig.loop
    rig.bridge.m["serial_devices"] = ["rs485"]
    assert rig.request("0 1 0 127.0.0.1 502 1 1 3 1 1") == "1 OK 0"
    assert rig.request("1 2 rs485 1 1 3 1 1") == "2 OK 0"  # no master line: answered locally
    assert rig.request("2 3 0 2") == "3 OK 0"
    assert rig.relay.masters is None and rig.built == 0
    assert rig.request("0 4 0 192.0.2.7 502 1 5 3 1 1") is None  # in flight
    masters = rig.relay.masters
    assert masters is not None and masters.loop is rig.loop and masters.lines == {}
    assert masters._tcp is not None and rig.built == 1
    assert rig.connects == [("192.0.2.7", 502)]
    assert rig.request("2 5 1 0 0 192.0.2.8 502 1") is None  # a format-2 open: the same masters
    assert rig.relay.masters is masters and rig.built == 1
