"""Extension modules written through from MQTT: the gateway's requests to the device's own
address (seeds/000's format 0) and a telemetry point's /set, both answered when the module has
answered; exception 0x0B (text "Modbus exception 11 ...") when it is offline. mosquitto, the real
firmware on the unix port, a pymodbus TCP server as the module, paho as the MQTT client.
"""

import json
import time

import pytest

from mbnode.mqtt import textproto
from mbtest import ok, pymodbus_client, unit
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    broker,
    needs_bridge_tools,
    PymodbusServer,
    Topics,
    start_device,
)
from test_extension_unix import OFFLINE, ONLINE, tcp_module, wait_state


@pytest.fixture
def setup(tmp_path, broker):
    server = PymodbusServer(unit=5)
    dev = None
    try:
        dev = start_device(tmp_path, broker, Topics(root="ext%d" % server.port),
                           config={"extension": {"modules": [tcp_module(server.port)]}},
                           points=[{"name": "valve", "table": "holding", "address": 0x41},
                                   {"name": "pump", "table": "coil", "address": 0x42}], qos=0,
                           sim_kw={"mpy": True})  # as on a device: from source it needs more than 128K
        with pymodbus_client(dev.sim) as c:
            wait_state(c, 0, ONLINE)
        yield dev, server
    finally:
        if dev is not None:
            dev.stop()
        server.stop()


def holding(server, first, count):
    c = server.client()
    try:
        return ok(c.read_holding_registers(first, count=count, **unit(5))).registers
    finally:
        c.close()


def set_point(dev, name, payload):
    dev.client.clear(dev.topic(name, "res"))
    dev.client.publish(dev.topic(name, "set"), payload)
    res = dev.client.wait(dev.topic(name, "res"), timeout=10).json()
    assert abs(res["timestamp"] - 1000 * time.time()) < 120000, res
    return res


def test_gateway_writes_to_the_own_address_are_answered_when_the_module_has_them(setup):
    dev, server = setup
    # Register numbers are 1-based: 65 is address 0x40, the module's holding register 10.
    assert dev.request(dev.local("6 65 1234", "101")) == "101 OK"
    assert holding(server, 10, 1) == [1234]
    assert dev.request(dev.local("16 66 3 7,8,9", "102")) == "102 OK"
    assert holding(server, 11, 3) == [7, 8, 9]
    assert dev.request(dev.local("5 65 1", "103")) == "103 OK"
    c = server.client()
    try:
        assert ok(c.read_coils(0, count=1, **unit(5))).bits[0] is True
    finally:
        c.close()
    assert dev.request(dev.local("3 65 4", "104")) == "104 OK 1234 7 8 9"
    assert dev.request(dev.local("4 65 2", "105")) == "105 OK 700 701"


def test_a_set_is_answered_when_the_module_has_it(setup):
    dev, server = setup
    res = set_point(dev, "valve", "4321")
    assert res == {"timestamp": res["timestamp"], "ok": True}
    assert holding(server, 11, 1) == [4321]
    m = dev.client.wait(dev.topic("valve"), lambda m: json.loads(m.text)["value"] == 4321, timeout=10)
    assert m is not None
    assert set_point(dev, "pump", "true")["ok"] is True
    c = server.client()
    try:
        assert ok(c.read_coils(2, count=1, **unit(5))).bits[0] is True
    finally:
        c.close()


def test_an_offline_module_is_exception_11_for_both(setup):
    dev, server = setup
    server.stop()
    with pymodbus_client(dev.sim) as c:
        wait_state(c, 0, OFFLINE)
    text = textproto.exception_text(0x0B)
    assert text.startswith("Modbus exception 11")
    assert dev.request(dev.local("6 65 1", "202")) == "202 ERROR: " + text
    assert dev.request(dev.local("4 65 1", "203")) == "203 ERROR: " + text
    res = set_point(dev, "valve", "5")
    assert res["ok"] is False and res["error"] == text
