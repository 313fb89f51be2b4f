"""The MQTT bridge when things go away: the device's last will when the device itself dies, and
a broker killed during traffic and restarted on the same port, while Modbus TCP and RTU keep
answering every poll.

The broker runs with persistence false: a retained message does not survive its restart, so
the last will is checked with the broker alive and the simulator killed (SIGKILL) instead.
Reconnect back-off: initial_s 1, max_s 2.
"""

import time

import pytest

from conftest import Sim, need
from mbnode.mqtt import refusals, textproto
from mbtest import pymodbus, unit
from mqtttest import Broker, Client, SilentServer, Topics, kill_sim, mqtt_config, need_paho, sim_alive

MAX_S = 2  # mqtt.reconnect.max_s of every simulator here
POINTS = [
    # Retained: after the broker's restart the device may publish it before this test's own
    # client has resubscribed; the retained copy still reaches it then.
    {"name": "beat", "table": "input", "address": 0x30, "retain": True},
    {"name": "tick", "table": "input", "address": 0x31, "on_change": False, "every_s": 1},
]

if pymodbus is not None:
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient, ModbusTcpClient


@pytest.fixture(autouse=True)
def _needs():
    need_paho()
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def start_sim(tmp_path, broker, topics, **sim_kw):
    # 256K: from source, compiling the bridge, telemetry and RTU modules needs more than the
    # 128K default (a device runs .mpy files).
    return Sim(tmp_path=tmp_path, config=mqtt_config(broker, topics, points=POINTS, keepalive=30), heap="256K",
               **sim_kw)


class Poller:
    """Modbus TCP (pymodbus) and, when the simulator serves it, Modbus RTU (pymodbus serial
    client, parity N: see tests/test_rtu_pymodbus.py) polled every ~100 ms; every poll must
    answer with the expected register value."""

    def __init__(self, sim, address, value):
        self.sim = sim
        self.address = address
        self.value = value
        self.tcp = ModbusTcpClient(sim.host, port=sim.port, timeout=2.0, retries=0)
        assert self.tcp.connect()
        self.rtu = None
        if sim.rtu_path:
            self.rtu = ModbusSerialClient(port=sim.rtu_path, framer=FramerType.RTU, baudrate=19200, parity="N",
                                          stopbits=1, timeout=2.0, retries=0)
            assert self.rtu.connect(), "pymodbus could not open %s" % sim.rtu_path
        self.polls = {"tcp": [], "rtu": []}

    def poll_once(self):
        for kind, c in (("tcp", self.tcp), ("rtu", self.rtu)):
            if c is None:
                continue
            t0 = time.monotonic()
            rr = c.read_holding_registers(self.address, count=1, **unit())
            self.polls[kind].append(time.monotonic() - t0)
            assert not rr.isError() and rr.registers == [self.value], \
                "%s poll %d during the broker outage: %s" % (kind, len(self.polls[kind]), rr)

    def poll_for(self, seconds, until=None):
        """Poll every ~100 ms for `seconds`, or until until() is true (then returns True)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll_once()
            if until is not None and until():
                return True
            time.sleep(0.1)
        return False

    def check(self):
        for kind, times in self.polls.items():
            if kind == "rtu" and self.rtu is None:
                continue
            assert times, "no %s poll was made" % kind
            assert max(times) < 1.0, "a %s poll took %.2f s: %r" % (kind, max(times), times)

    def close(self):
        self.tcp.close()
        if self.rtu is not None:
            self.rtu.close()


def test_last_will_on_abrupt_device_loss(tmp_path, broker):
    broker.start()
    topics = Topics(root="lwt-site")
    client = Client(broker, subscribe=[topics.status], topics=topics)
    sim = start_sim(tmp_path, broker, topics)
    try:
        client.wait_online()
        kill_sim(sim)  # no DISCONNECT: the broker publishes the will
        m = client.wait(topics.status, lambda m: m.payload == b"offline")
        assert m.qos == 0
        late = Client(broker, subscribe=[topics.status])
        try:
            m = late.wait(topics.status)
            assert (m.payload, m.retain) == (b"offline", True), "the will must be retained: %r" % m
        finally:
            late.close()
    finally:
        sim.stop()
        client.close()


def test_broker_killed_and_restarted(tmp_path, broker):
    broker.start()
    topics = Topics(root="bl-site")
    client = Client(broker, subscribe=[topics.response, topics.root + "/#"], topics=topics)
    sim = start_sim(tmp_path, broker, topics, rtu="pty")
    silent = SilentServer()
    poller = None
    try:
        client.wait_online()
        sim.io_cmd("set ao 0x40 1717")
        sim.io_cmd("set ai 0x30 1")
        client.wait(topics.point("beat"), lambda m: m.json()["value"] == 1)
        assert client.request("0 1 0 127.0.0.1 %d 5 1 3 65 1" % sim.port) == "1 OK 1717"
        poller = Poller(sim, 0x40, 1717)
        poller.poll_once()

        # Traffic when the broker dies: a remote request in flight (its reply comes while the
        # broker is gone), a local one queued behind it, the every_s point publishing.
        client.send("0 2 0 127.0.0.1 %d 2 1 3 1 1" % silent.port)
        silent.wait_accepted(1)
        client.send("0 3 0 127.0.0.1 %d 5 1 3 65 1" % sim.port)
        broker.kill()
        t_kill = time.monotonic()

        sim.io_cmd("set ai 0x30 2")  # changes while the broker is away
        poller.poll_for(4.0)  # longer than max_s: the device retries and is refused meanwhile
        sim_alive(sim)
        client.clear()

        broker.start()
        t_restart = time.monotonic()
        online = poller.poll_for(MAX_S + 5, until=lambda: bool(
            [m for m in client.pending(topics.status) if m.payload == b"online"]))
        assert online, "no \"online\" within %d s of the broker's restart (reconnect max_s %d)" % (MAX_S + 5, MAX_S)
        m = client.wait(topics.status, lambda m: m.payload == b"online", timeout=1)
        took = m.time - t_restart
        assert took <= MAX_S + 3, "online again %.1f s after the restart (max_s %d)" % (took, MAX_S)
        poller.check()
        client.wait_resubscribed()

        # Resubscribed: the gateway answers again, /set works again, points are republished.
        assert client.request("0 4 0 127.0.0.1 %d 5 1 3 65 1" % sim.port) == "4 OK 1717"
        assert client.wait(topics.point("beat"), lambda m: m.json()["value"] == 2).json()["value"] == 2
        client.wait(topics.point("tick"), timeout=3)
        sim.io_cmd("set ai 0x30 3")
        assert client.wait(topics.point("beat"), lambda m: m.json()["value"] == 3).json()["value"] == 3
        payload = "0 5 0 127.0.0.1 %d 1 1 3 1 1" % silent.port
        assert client.request(payload) == refusals.timeout(textproto.parse(payload))
        poller.poll_once()
        assert time.monotonic() - t_kill < 40
    finally:
        if poller is not None:
            poller.close()
        silent.stop()
        sim.stop()
        client.close()


def test_broker_absent_at_start(tmp_path, broker):
    """The device starts while no broker listens: it serves Modbus at once and connects when
    the broker comes, within the back-off's cap."""
    topics = Topics(root="late-broker")
    sim = start_sim(tmp_path, broker, topics)
    client = None
    poller = None
    try:
        sim.io_cmd("set ao 0x41 99")
        poller = Poller(sim, 0x41, 99)
        poller.poll_for(3.0)
        sim_alive(sim)
        broker.start()
        t_start = time.monotonic()
        client = Client(broker, subscribe=[topics.response, topics.root + "/#"], topics=topics)
        m = client.wait_online(timeout=MAX_S + 6)
        assert m.time - t_start <= MAX_S + 3
        poller.check()
        assert client.request("0 7 0 127.0.0.1 %d 5 1 3 66 1" % sim.port) == "7 OK 99"
        client.wait(topics.point("beat"), timeout=3)
    finally:
        if poller is not None:
            poller.close()
        if client is not None:
            client.close()
        sim.stop()
