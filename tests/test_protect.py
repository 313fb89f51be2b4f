"""Write protection (the "protect" section, mbnode.protect) on the running simulator, with
independent clients on every transport: pymodbus over Modbus TCP from the trusted address
127.0.0.1 and from 127.0.0.2 (the client socket bound there; Linux routes all of 127/8 locally),
mbpoll over TCP and RTU, pymodbus's serial client on the RTU pty, MQTT /set writes of points
and MQTT gateway requests with mosquitto and paho.

Every rule is tried at its edge and one past it; a refused write (exception 02) must leave the
channels as they were, which the simulator's control channel reads back; reads of protected
channels still work. One simulator (TCP + RTU + MQTT) for the module; a second one for
rtu_trusted/mqtt_trusted; a third with a pymodbus TCP server as an extension module, whose
outputs a refused write never reaches.
"""

import subprocess
from contextlib import contextmanager

import pytest

from conftest import need_tool
from mbtest import ModbusTcpClient, exception_code, ok, unit
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    Topics,
    broker,
    needs_bridge_tools,
    start_device,
)

PROTECT = {
    "read_only": {"coils": ["0x0008-0x000F"], "holding_registers": ["0x0010-0x0011", "0x1000-0x1003"]},
    "trusted_only": {"coils": ["0x0020-0x0027"], "holding_registers": ["0x0020-0x002F"]},
    "trusted_clients": ["127.0.0.1"],
}

POINTS = [
    {"name": "free_coil", "table": "coil", "address": 7},
    {"name": "ro_coil", "table": "coil", "address": 8},
    {"name": "tr_coil", "table": "coil", "address": 0x27},
    {"name": "after_coil", "table": "coil", "address": 0x28},
    {"name": "free_reg", "table": "holding", "address": 0x1F},
    {"name": "tr_reg", "table": "holding", "address": 0x20},
    {"name": "tr_last", "table": "holding", "address": 0x2F},
    {"name": "after_reg", "table": "holding", "address": 0x30},
    {"name": "span", "table": "holding", "address": 0x0F, "type": "uint32"},  # 0x0F free, 0x10 read-only
    {"name": "below", "table": "holding", "address": 0x0E, "type": "uint32"},  # 0x0E-0x0F
    {"name": "mem_ro", "table": "memory", "position": 2, "type": "memory32"},  # 0x1002-0x1003
    {"name": "mem_free", "table": "memory", "position": 3, "type": "memory32"},  # 0x1004-0x1005
]

E02 = "Modbus exception 2 (illegal data address)"


@pytest.fixture(scope="module")
def dev(tmp_path_factory, broker):
    d = start_device(tmp_path_factory.mktemp("protect"), broker, Topics(root="prot"),
                     sim_kw={"rtu": "pty", "heap": "256K"}, config={"protect": PROTECT}, points=POINTS)
    yield d
    d.stop()


@contextmanager
def tcp_client(sim, source="127.0.0.1"):
    c = ModbusTcpClient(sim.host, port=sim.port, timeout=3, retries=0, source_address=(source, 0))
    assert c.connect(), "pymodbus could not connect to %s:%d from %s" % (sim.host, sim.port, source)
    try:
        yield c
    finally:
        c.close()


@contextmanager
def rtu_client(sim):
    """pymodbus serial master on the simulator's pty (parity N: see tests/test_rtu_pymodbus.py)."""
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient

    c = ModbusSerialClient(port=sim.rtu_path, framer=FramerType.RTU, baudrate=19200, parity="N", stopbits=1,
                           timeout=1.0, retries=0)
    assert c.connect(), "pymodbus could not open %s" % sim.rtu_path
    try:
        yield c
    finally:
        c.close()


def refused(rr):
    assert exception_code(rr) == 2, rr


def test_ready_line_says_protect(dev):
    assert dev.sim.fields.get("protect") == "5", dev.sim.ready


# --- Modbus TCP ------------------------------------------------------------------------------------


def test_tcp_trusted_client_read_only_coils(dev):
    dev.io("set do 0 " + " ".join(["0"] * 0x30))
    with tcp_client(dev.sim) as c:
        ok(c.write_coil(7, True, **unit()))
        refused(c.write_coil(8, True, **unit()))
        refused(c.write_coil(15, True, **unit()))
        ok(c.write_coil(16, True, **unit()))
        refused(c.write_coils(0, [True] * 9, **unit()))  # 0..8: one read-only coil refuses it whole
        refused(c.write_coils(15, [True, True], **unit()))
        assert dev.io("get do 0 17") == [0] * 7 + [1] + [0] * 8 + [1]
        ok(c.write_coils(0, [True] * 8, **unit()))
        ok(c.write_coils(0x20, [True] * 8, **unit()))  # trusted-only: this client is trusted
        assert dev.io("get do 0 0x28") == [1] * 8 + [0] * 8 + [1] + [0] * 15 + [1] * 8
        dev.io("set do 8 1 0 1")  # the field side is not protected; Modbus reads protected coils
        assert ok(c.read_coils(8, count=3, **unit())).bits[:3] == [True, False, True]


def test_tcp_trusted_client_holding_and_memory(dev):
    dev.io("set ao 0x0E 0 0 0 0 0")
    with tcp_client(dev.sim) as c:
        ok(c.write_register(0x0F, 5, **unit()))
        refused(c.write_register(0x10, 5, **unit()))
        refused(c.write_register(0x11, 5, **unit()))
        ok(c.write_register(0x12, 6, **unit()))
        ok(c.write_registers(0x0E, [1, 2], **unit()))
        refused(c.write_registers(0x0E, [7, 8, 9], **unit()))
        refused(c.mask_write_register(address=0x11, and_mask=0, or_mask=1, **unit()))
        refused(c.readwrite_registers(read_address=0x0E, read_count=2, write_address=0x11, values=[1], **unit()))
        assert dev.io("get ao 0x0E 5") == [1, 2, 0, 0, 6]
        rr = ok(c.readwrite_registers(read_address=0x0E, read_count=5, write_address=0x12, values=[9], **unit()))
        assert rr.registers == [1, 2, 0, 0, 9]
        ok(c.write_registers(0x20, list(range(1, 17)), **unit()))  # trusted-only, all 16
        assert dev.io("get ao 0x20 16") == list(range(1, 17))
        dev.io("set mem 2 0x11112222")
        refused(c.write_registers(0x1002, [1, 2], **unit()))
        refused(c.write_registers(0x1003, [1, 2], **unit()))
        ok(c.write_registers(0x1004, [3, 4], **unit()))
        assert dev.io("get mem 2 2") == [0x11112222, 0x00040003]
        assert ok(c.read_holding_registers(0x1002, count=2, **unit())).registers == [0x2222, 0x1111]
        assert ok(c.read_input_registers(0x1002, count=2, **unit())).registers == [0x2222, 0x1111]


def test_tcp_other_address_trusted_only_ranges(dev):
    """A client from 127.0.0.2 is not in trusted_clients: the trusted-only ranges are read-only
    for it, the ranges beside them are not."""
    dev.io("set do 0x18 " + " ".join(["0"] * 0x18))
    dev.io("set ao 0x1E " + " ".join(["0"] * 0x14))
    with tcp_client(dev.sim, "127.0.0.2") as c:
        ok(c.write_coil(0x1F, True, **unit()))
        refused(c.write_coil(0x20, True, **unit()))
        refused(c.write_coil(0x27, True, **unit()))
        ok(c.write_coil(0x28, True, **unit()))
        refused(c.write_coils(0x18, [True] * 9, **unit()))
        ok(c.write_coils(0x18, [True] * 8, **unit()))
        refused(c.write_coil(8, True, **unit()))  # read-only for everybody
        assert dev.io("get do 0x18 0x11") == [1] * 8 + [0] * 8 + [1]
        ok(c.write_register(0x1F, 1, **unit()))
        refused(c.write_register(0x20, 1, **unit()))
        refused(c.write_register(0x2F, 1, **unit()))
        ok(c.write_register(0x30, 1, **unit()))
        ok(c.write_registers(0x1E, [5, 6], **unit()))
        refused(c.write_registers(0x1E, [5, 6, 7], **unit()))
        refused(c.write_registers(0x2F, [5, 6], **unit()))
        refused(c.mask_write_register(address=0x20, and_mask=0, or_mask=1, **unit()))
        refused(c.readwrite_registers(read_address=0x20, read_count=1, write_address=0x2F, values=[1], **unit()))
        assert dev.io("get ao 0x1E 0x13") == [5, 6] + [0] * 16 + [1]
        dev.io("set ao 0x20 77")
        assert ok(c.read_holding_registers(0x20, count=2, **unit())).registers == [77, 0]
    # The trusted address still writes there.
    with tcp_client(dev.sim) as c:
        ok(c.write_register(0x2F, 3, **unit()))
    assert dev.io("get ao 0x2F") == [3]


def mbpoll(sim, *args, rtu=False):
    exe = need_tool("mbpoll")
    if rtu:
        argv = [exe, "-m", "rtu", "-b", "19200", "-P", "even", "-s", "1"]
        target = sim.rtu_path
    else:
        argv = [exe, "-m", "tcp", "-p", str(sim.port)]
        target = sim.host
    opts = [str(a) for a in args if not isinstance(a, list)]
    vals = [a for a in args if isinstance(a, list)]
    argv += ["-a", "1", "-0", "-1", "-o", "2"] + opts + [target]
    if vals:
        argv += ["--"] + [str(v) for v in vals[0]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def mbpoll_refused(r):
    assert r.returncode != 0 and "illegal data address" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def mbpoll_ok(r):
    assert r.returncode == 0, r.stdout + r.stderr


def test_mbpoll_over_tcp_from_the_trusted_address(dev):
    dev.io("set do 7 0 0")
    dev.io("set ao 0x0F 0 0 0")
    mbpoll_refused(mbpoll(dev.sim, "-t", "0", "-r", 8, [1]))
    mbpoll_ok(mbpoll(dev.sim, "-t", "0", "-r", 7, [1]))
    assert dev.io("get do 7 2") == [1, 0]
    mbpoll_refused(mbpoll(dev.sim, "-t", "4", "-r", 0x0F, [3, 4]))
    mbpoll_ok(mbpoll(dev.sim, "-t", "4", "-r", 0x0F, [3]))
    assert dev.io("get ao 0x0F 2") == [3, 0]
    mbpoll_ok(mbpoll(dev.sim, "-t", "4", "-r", 0x2E, [1, 2]))  # trusted-only: 127.0.0.1 is trusted
    assert dev.io("get ao 0x2E 2") == [1, 2]
    r = mbpoll(dev.sim, "-t", "4", "-r", 0x10, "-c", 2)
    mbpoll_ok(r)
    assert "[16]:" in r.stdout and "[17]:" in r.stdout, r.stdout


def test_mbpoll_over_rtu_cannot_write_trusted_only(dev):
    dev.io("set ao 0x2F 0 0")
    mbpoll_refused(mbpoll(dev.sim, "-t", "4", "-r", 0x2F, [1], rtu=True))
    mbpoll_refused(mbpoll(dev.sim, "-t", "4", "-r", 0x2F, [1, 2], rtu=True))
    mbpoll_ok(mbpoll(dev.sim, "-t", "4", "-r", 0x30, [2], rtu=True))
    assert dev.io("get ao 0x2F 2") == [0, 2]


# --- Modbus RTU --------------------------------------------------------------------------------


def test_rtu_pymodbus_edges(dev):
    dev.io("set do 0x1F " + " ".join(["0"] * 10))
    dev.io("set ao 0x11 0 0")
    with rtu_client(dev.sim) as c:
        ok(c.write_coil(0x1F, True, **unit()))
        refused(c.write_coil(0x20, True, **unit()))
        refused(c.write_coil(0x27, True, **unit()))
        ok(c.write_coil(0x28, True, **unit()))
        refused(c.write_coil(0x0F, True, **unit()))
        refused(c.write_coils(0x1F, [True, True], **unit()))
        refused(c.write_register(0x11, 1, **unit()))
        ok(c.write_register(0x12, 1, **unit()))
        refused(c.write_registers(0x11, [1, 1], **unit()))
        assert dev.io("get do 0x1F 10") == [1] + [0] * 8 + [1]
        assert dev.io("get ao 0x11 2") == [0, 1]
        assert ok(c.read_holding_registers(0x10, count=3, **unit())).registers[2] == 1


def test_rtu_raw_frames_and_broadcast(dev):
    """The bytes on the line (address, 86 02, CRC) and a broadcast: a protected write is not
    executed, the one beside it is (neither is answered)."""
    from rtutest import RtuPort, adu

    dev.io("set ao 0x1F 0 0")
    with RtuPort(dev.sim.rtu_path) as port:
        assert port.request(bytes.fromhex("0600200001")) == bytes.fromhex("8602")
        assert port.request(bytes.fromhex("06001F0001")) == bytes.fromhex("06001F0001")
        port.send_unanswered(adu(0, bytes.fromhex("0600200007")))
        port.send_unanswered(adu(0, bytes.fromhex("06001F0007")))
        assert port.request(bytes.fromhex("03001F0002")) == bytes.fromhex("0304" "0007" "0000")
    assert dev.io("get ao 0x1F 2") == [7, 0]


# --- MQTT --------------------------------------------------------------------------------------


def set_point(dev, name, value):
    """Publish value on <point>/set; the /res message as a dict."""
    dev.client.clear(dev.topic(name, "res"))
    dev.client.publish(dev.topic(name, "set"), str(value))
    return dev.client.wait(dev.topic(name, "res")).json()


def test_mqtt_set_obeys_the_same_rules(dev):
    dev.io("set do 7 0 0")
    dev.io("set do 0x27 0 0")
    dev.io("set ao 0x0E 0 0 0")
    dev.io("set ao 0x1F 0 0")
    dev.io("set ao 0x2F 0 0")
    dev.io("set mem 2 5 6")
    for name, value in (("free_coil", "true"), ("after_coil", "true"), ("free_reg", 11), ("after_reg", 12),
                        ("below", 0x00010002), ("mem_free", 99)):
        assert set_point(dev, name, value).get("ok") is True, name
    for name, value in (("ro_coil", "true"), ("tr_coil", "true"), ("tr_reg", 13), ("tr_last", 14),
                        ("span", 0x00030004), ("mem_ro", 98)):
        res = set_point(dev, name, value)
        assert res.get("ok") is False and res.get("error") == E02, (name, res)
    assert dev.io("get do 7 2") == [1, 0]
    assert dev.io("get do 0x27 2") == [0, 1]
    assert dev.io("get ao 0x0E 3") == [1, 2, 0]
    assert dev.io("get ao 0x1F 2") == [11, 0]
    assert dev.io("get ao 0x2F 2") == [0, 12]
    assert dev.io("get mem 2 2") == [5, 99]


def test_mqtt_gateway_local_writes_obey_the_same_rules(dev):
    """The MQTT gateway's requests to this device go through the Engine as MQTT (register
    numbers in the request are addresses + 1)."""
    dev.io("set do 7 0 0")
    dev.io("set ao 0x1E 0 0 0")
    assert dev.request(dev.local("5 8 1", "501")) == "501 OK"  # coil 0x0007
    assert dev.request(dev.local("5 9 1", "502")) == "502 ERROR: " + E02  # coil 0x0008: read-only
    assert dev.request(dev.local("15 8 2 0,1", "503")) == "503 ERROR: " + E02  # 0x0007-0x0008
    assert dev.request(dev.local("6 32 1", "504")) == "504 OK"  # holding 0x001F
    assert dev.request(dev.local("6 33 1", "505")) == "505 ERROR: " + E02  # 0x0020: trusted-only
    assert dev.request(dev.local("16 32 2 4,4", "506")) == "506 ERROR: " + E02  # 0x001F-0x0020
    assert dev.request(dev.local("16 31 2 4,4", "507")) == "507 OK"  # 0x001E-0x001F
    assert dev.request(dev.local("3 17 2", "508")) == "508 OK 0 0"  # reads 0x0010-0x0011
    assert dev.io("get do 7 2") == [1, 0]
    assert dev.io("get ao 0x1E 3") == [4, 4, 0]


# --- rtu_trusted and mqtt_trusted ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trusting(tmp_path_factory, broker):
    cfg = {"protect": dict(PROTECT, trusted_clients=[], rtu_trusted=True, mqtt_trusted=True)}
    d = start_device(tmp_path_factory.mktemp("trusting"), broker, Topics(root="trusting"),
                     sim_kw={"rtu": "pty", "heap": "256K"}, config=cfg, points=POINTS)
    yield d
    d.stop()


def test_rtu_and_mqtt_trusted_write_trusted_only_not_read_only(trusting):
    d = trusting
    d.io("set ao 0x20 0")
    d.io("set do 0x27 0")
    with rtu_client(d.sim) as c:
        ok(c.write_register(0x20, 1, **unit()))
        refused(c.write_register(0x11, 1, **unit()))
    assert set_point(d, "tr_coil", "true").get("ok") is True
    res = set_point(d, "ro_coil", "true")
    assert res.get("ok") is False and res.get("error") == E02, res
    with tcp_client(d.sim) as c:  # no trusted clients: 127.0.0.1 may not
        refused(c.write_register(0x21, 1, **unit()))
    assert d.io("get ao 0x20 2") == [1, 0]
    assert d.io("get do 0x27") == [1]


# --- extension modules' outputs ------------------------------------------------------------------


def test_extension_module_outputs_are_protected_before_they_go_out(tmp_path):
    """A pymodbus TCP server is an extension module (DO 0x0040-0x0047 = its coils 0-7, AO
    0x0040-0x0043 = its holding registers 10-13): a refused write never reaches it (read back
    from the server directly), a permitted one does."""
    import time

    from conftest import Sim
    from mqtttest import PymodbusServer

    server = PymodbusServer(unit=5)
    module = {"unit": 5, "tcp": "127.0.0.1:%d" % server.port, "do": 8, "ao": 4, "ao_address": 10}
    protect = {"read_only": {"coils": ["0x0040-0x0041"]}, "trusted_only": {"holding_registers": ["0x0042-0x0043"]},
               "trusted_clients": ["127.0.0.1"]}
    sim = Sim(tmp_path=tmp_path, config={"extension": {"modules": [module]}, "protect": protect})
    direct = server.client()
    try:
        with tcp_client(sim, "127.0.0.2") as c:
            deadline = time.monotonic() + 10
            while ok(c.read_holding_registers(0x1780, count=1, **unit())).registers[0] != 1:  # online
                assert time.monotonic() < deadline, "the module never came online"
                time.sleep(0.02)
            refused(c.write_coil(0x41, True, **unit()))
            refused(c.write_coils(0x41, [True, True], **unit()))
            ok(c.write_coil(0x42, True, **unit()))
            refused(c.write_register(0x42, 1, **unit()))
            refused(c.write_registers(0x41, [1, 2], **unit()))
            ok(c.write_register(0x41, 2, **unit()))
        with tcp_client(sim) as c:
            refused(c.write_coil(0x40, True, **unit()))
            ok(c.write_registers(0x42, [77, 78], **unit()))
        # Coming online the module got the map's outputs (0); the refused writes never reached it.
        assert ok(direct.read_coils(0, count=3, **unit(5))).bits[:3] == [False, False, True]
        assert ok(direct.read_holding_registers(10, count=4, **unit(5))).registers == [0, 2, 77, 78]
    finally:
        direct.close()
        sim.stop()
        server.stop()
