"""The poller and its alarms (mbnode.poller) end to end: the real firmware on the 32-bit unix
port polls servers that are not ours and acts on what it reads.

  * a pymodbus Modbus TCP server (tests/mqtttest.py PymodbusServer, unit 5): its holding
    registers are written by a pymodbus client with the bytes of every data type, computed here
    with struct (not with mbnode.datatypes); the poller's writes land in it and are read back;
  * a pymodbus RTU device on a socat pty pair (unit 17, holding registers 100..199);
  * a TCP server that never answers and a port that refuses, beside a live server;
  * a second simulator as the polled server (the whole chain on one machine, docs/master.md);
  * mosquitto and paho for the MQTT points and the alarms' messages.

Every wait is for a condition with a deadline; nothing sleeps for luck.
"""

import re
import struct
import time

import pytest

from conftest import Sim
from mbtest import ok, unit
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    PtyPair,
    PymodbusServer,
    RtuDevice,
    SilentServer,
    Topics,
    broker,
    free_port,
    needs_bridge_tools,
    sim_alive,
    start_device,
)

WAIT = 15.0
HEAP = "192K"  # the bridge and a poller of 19 requests (docs/benchmarks.md has the figures)


def wait_for(what, fn, timeout=WAIT, sim=None):
    """fn() until it returns something true; AssertionError naming `what` (and the last value)
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if sim is not None:
            sim_alive(sim)
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s (last %r)" % (what, timeout, v))
        time.sleep(0.05)


def io_values(sim, line):
    reply = sim.io_cmd(line)
    assert reply.startswith("ok"), (line, reply)
    return [int(v) for v in reply.split()[1:]]


def u32(fmt, value):
    """The 32-bit memory position(s) a value lands in, as `get mem` shows them (unsigned):
    integers sign-extended, float32 its bits, 64-bit types the lower 32 bits first."""
    be = struct.pack(">" + fmt, value)
    if len(be) == 8:
        return [struct.unpack(">I", be[4:])[0], struct.unpack(">I", be[:4])[0]]
    if fmt in "bhi":
        return [value & 0xFFFFFFFF]
    return [struct.unpack(">I", be.rjust(4, b"\0"))[0]]


def registers(fmt, value, byte_order="BE", word_order="BE"):
    """The registers a device holds value in: word_order BE = most significant word first,
    byte_order LE = each register's two bytes swapped."""
    be = struct.pack(">" + fmt, value)
    words = [be[i:i + 2] for i in range(0, len(be), 2)]
    if word_order == "LE":
        words.reverse()
    if byte_order == "LE":
        words = [w[::-1] for w in words]
    return [struct.unpack(">H", w)[0] for w in words]


# --- every data type, from pymodbus, into memory positions and registers -------------------------

# (request name, type, byte_order, word_order, struct format, value, memory position)
TYPED = [
    ("f32", "float32", "BE", "BE", "f", 2.5, 1),
    ("i16le", "int16", "LE", None, "h", -2, 2),
    ("u16", "uint16", "BE", None, "H", 65000, 3),
    ("i32cdab", "int32", "BE", "LE", "i", -100000, 4),
    ("u32le", "uint32", "LE", "LE", "I", 3000000000, 5),
    ("i64", "int64", "BE", "BE", "q", -5, 6),
    ("u64", "uint64", "BE", "BE", "Q", (1 << 40) + 7, 8),
    ("f64le", "float64", "LE", "LE", "d", -1.5, 10),
    ("f32dcba", "float32", "LE", "BE", "f", -0.75, 12),
]
BYTES_REG = 40  # pymodbus holding register with two bytes: 0xF6 0x05 (int8 -10, 5; uint8 246, 5)


def typed_config(pym):
    reqs = []
    reg = 0
    layout = {}
    for name, t, bo, wo, fmt, value, mem in TYPED:
        regs = registers(fmt, value, bo, wo or "BE")
        r = {"name": name, "first": reg + 1, "count": len(regs), "type": t, "byte_order": bo, "memory": mem}
        if wo:
            r["word_order"] = wo
        reqs.append(r)
        layout[name] = (reg, regs)
        reg += len(regs)
    reqs += [
        {"name": "i8", "first": BYTES_REG + 1, "count": 1, "type": "int8", "memory": 20, "point": "bytes"},
        {"name": "u8", "first": BYTES_REG + 1, "count": 1, "type": "uint8", "memory": 22},
        {"name": "text", "first": BYTES_REG + 2, "count": 2, "type": "ascii", "memory": 24, "point": "text"},
        {"name": "hex", "first": BYTES_REG + 4, "count": 1, "type": "hex", "memory": 26, "point": "hex"},
        {"name": "flags", "first": BYTES_REG + 5, "count": 2, "type": "bool", "memory": 27},
        {"name": "coils", "function": 1, "first": 1, "count": 8, "memory": 30, "table": "coil", "address": 0x40},
        {"name": "inputs", "function": 2, "first": 1, "count": 8, "table": "discrete", "address": 0x40,
         "point": "inputs"},
        {"name": "iregs", "function": 4, "first": 1, "count": 4, "type": "uint16", "table": "input",
         "address": 0x40},
        {"name": "cdab_regs", "first": layout["i32cdab"][0] + 1, "count": 2, "type": "int32", "word_order": "LE",
         "table": "holding", "address": 0x60},
        {"name": "temp", "first": 1, "count": 2, "type": "float32", "point": "temp"},
    ]
    reqs[0]["point"] = "f32"
    server = {"name": "pym", "host": "127.0.0.1", "port": pym.port, "unit": 5, "period_ms": 100,
              "timeout_ms": 2000, "requests": reqs}
    return {"poller": {"enabled": True, "servers": [server]}}, layout


@pytest.fixture(scope="module")
def pym(needs_bridge_tools):
    s = PymodbusServer(unit=5)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def typed(tmp_path_factory, broker, pym):
    """pymodbus's registers written with every type; the simulator polling them, MQTT on."""
    config, layout = typed_config(pym)
    c = pym.client()
    try:
        for name, (reg, regs) in layout.items():
            ok(c.write_registers(reg, regs, **unit(5)))
        ok(c.write_registers(BYTES_REG, [0xF605, 0x4142, 0x4300, 0xBEEF, 0, 7], **unit(5)))
    finally:
        c.close()
    topics = Topics(root="poll-typed")
    dev = start_device(tmp_path_factory.mktemp("typed"), broker, topics, config=config, sim_kw={"heap": HEAP})
    yield dev
    dev.stop()


def test_ready_line_counts_the_servers(typed):
    assert "poller 1" in typed.sim.ready


def test_every_number_type_lands_in_memory_positions(typed):
    want = []
    for name, t, bo, wo, fmt, value, mem in TYPED:
        want += u32(fmt, value)
    first = TYPED[0][6]
    got = wait_for("the typed values in memory 1..13", lambda: (
        lambda v: v if v == want else None)(io_values(typed.sim, "get mem %d %d" % (first, len(want)))),
        sim=typed.sim)
    assert got == want


def test_8bit_text_hex_and_bool_land_in_memory(typed):
    want = [(-10) & 0xFFFFFFFF, 5, 246, 5, 0x4142, 0x4300, 0xBEEF, 0, 1]
    got = wait_for("int8, uint8, ascii, hex, bool in memory", lambda: (
        lambda v: v if v == want else None)(
        io_values(typed.sim, "get mem 20 4") + io_values(typed.sim, "get mem 24 4")[:3]
        + io_values(typed.sim, "get mem 27 2")), sim=typed.sim)
    assert got == want


def test_bits_land_in_coils_discrete_inputs_and_memory(typed):
    coils = [1 if b else 0 for b in PymodbusServer.COILS[:8]]
    discrete = [1 if b else 0 for b in PymodbusServer.DISCRETE[:8]]
    wait_for("coils in memory 30..37", lambda: io_values(typed.sim, "get mem 30 8") == coils, sim=typed.sim)
    assert io_values(typed.sim, "get do 64 8") == coils
    assert io_values(typed.sim, "get di 64 8") == discrete


def test_registers_land_in_input_and_holding_registers_in_standard_order(typed):
    wait_for("input registers 0x40..", lambda: io_values(typed.sim, "get ai 64 4") == PymodbusServer.INPUT[:4],
             sim=typed.sim)
    # int32 CDAB read, stored most significant word first (the word order undone).
    assert io_values(typed.sim, "get ao 96 2") == registers("i", -100000)


def test_mqtt_points_publish_polled_values(typed):
    c = typed.client
    m = c.wait(typed.topic("f32"), lambda m: m.json()["value"] == 2.5)
    assert abs(m.json()["timestamp"] / 1000 - time.time()) < 600
    assert c.wait(typed.topic("bytes")).json()["value"] == [-10, 5]
    assert c.wait(typed.topic("text")).json()["value"] == "ABC"
    assert c.wait(typed.topic("hex")).json()["value"] == "BEEF"
    assert c.wait(typed.topic("inputs")).json()["value"] == [b for b in PymodbusServer.DISCRETE[:8]]


def test_a_point_is_published_again_only_when_its_value_changes(typed, pym):
    c = typed.client
    c.wait(typed.topic("temp"), lambda m: m.json()["value"] == 2.5)
    c.clear(typed.topic("temp"))
    c.absent(typed.topic("temp"), duration=1.0)  # ten polls, the same answer: nothing
    pc = pym.client()
    try:
        ok(pc.write_registers(0, registers("f", 7.25), **unit(5)))
        assert c.wait(typed.topic("temp")).json()["value"] == 7.25
        ok(pc.write_registers(0, registers("f", 2.5), **unit(5)))
    finally:
        pc.close()


# --- alarms: conditions, frequency, redundancy, actions ------------------------------------------

VALUE_REG = 50  # pymodbus holding register the alarms watch (int16)
TEXT_REG = 51  # ... and one read as ascii
WRITE_REG = 90  # where the write action lands
EVERY, QUIET = "every", "quiet"


def alarms_config(pym):
    src = {"name": "src", "host": "127.0.0.1", "port": pym.port, "unit": 5, "period_ms": 100, "timeout_ms": 2000,
           "requests": [{"name": "v", "first": VALUE_REG + 1, "type": "int16", "memory": 1},
                        {"name": "t", "first": TEXT_REG + 1, "count": 1, "type": "ascii"}]}
    alarms = []
    for cond, name in ((">", "gt"), ("<", "lt"), ("==", "eq"), ("!=", "ne"), ("<=", "le"), (">=", "ge")):
        alarms.append({"name": name, "server": "src", "request": "v", "condition": cond, "value": 10,
                       "frequency": "first", "mqtt": {"topic": "poll-alarms/first", "message": "%an %mv"}})
    alarms += [
        {"name": EVERY, "server": "src", "request": "v", "condition": "==", "value": 20,
         "mqtt": {"topic": "poll-alarms/every", "message": "%an %mv"}},
        {"name": QUIET, "server": "src", "request": "v", "condition": "==", "value": 30, "redundancy_s": 2,
         "mqtt": {"topic": "poll-alarms/quiet", "message": "%an %mv"}},
        {"name": "codes", "server": "src", "request": "v", "condition": "==", "value": 40, "frequency": "first",
         "mqtt": {"topic": "poll-alarms/codes",
                  "message": "v=%mv id=%mi ip=%ma name=%mn reg=%mr dev=%dn alarm=%an ut=%ut ts=%ts%n100%%"}},
        {"name": "act", "server": "src", "request": "v", "condition": "==", "value": 50, "frequency": "first",
         "write": {"server": "src", "function": 6, "first": WRITE_REG + 1, "values": [4242]},
         "output": {"table": "coil", "address": 9, "set": "on"}},
        {"name": "act2", "server": "src", "request": "v", "condition": "==", "value": 51, "frequency": "first",
         "write": {"server": "src", "function": 16, "first": WRITE_REG + 2, "type": "float32", "value": -2.5,
                   "word_order": "LE"},
         "output": {"table": "holding", "address": 0x20, "value": 777}},
        {"name": "act3", "server": "src", "request": "v", "condition": "==", "value": 52, "frequency": "first",
         "write": {"server": "src", "function": 15, "first": 17, "values": [1, 0, 1]},
         "output": {"table": "coil", "address": 9, "set": "invert"}},
        {"name": "text", "server": "src", "request": "t", "condition": "==", "value": "OK", "frequency": "first",
         "mqtt": {"topic": "poll-alarms/text", "message": "%mv"}},
    ]
    return {"identity": {"device_name": "plant-7"},
            "poller": {"enabled": True, "servers": [src], "alarms": alarms}}


@pytest.fixture(scope="module")
def alarmed(tmp_path_factory, broker, pym):
    c = pym.client()
    try:
        ok(c.write_register(VALUE_REG, 0, **unit(5)))
        ok(c.write_register(TEXT_REG, 0x2D2D, **unit(5)))  # "--"
    finally:
        c.close()
    topics = Topics(root="poll-alarms")
    dev = start_device(tmp_path_factory.mktemp("alarms"), broker, topics, config=alarms_config(pym),
                       sim_kw={"heap": HEAP})
    dev.pym = pym.client()
    yield dev
    dev.pym.close()
    dev.stop()


def set_value(dev, v):
    ok(dev.pym.write_register(VALUE_REG, v & 0xFFFF, **unit(5)))
    wait_for("the polled value %d in memory 1" % v, lambda: io_values(dev.sim, "get mem 1") == [v & 0xFFFFFFFF],
             sim=dev.sim)


def drain(dev, topic, quiet=0.5):
    """Take every message on topic until none came for `quiet` seconds (those already on their
    way when the value changed)."""
    while True:
        try:
            dev.client.wait(topic, timeout=quiet)
        except AssertionError:
            return


def fired(dev, topic, duration=1.0):
    """Names of the alarms whose messages come on topic within `duration` after the last."""
    out = []
    while True:
        try:
            m = dev.client.wait(topic, timeout=duration)
        except AssertionError:
            return sorted(out)
        out.append(m.text.split()[0])


def test_every_condition_with_first_trigger_frequency(alarmed):
    """Threshold 10, frequency "first": an alarm acts when its condition becomes true, once."""
    c = alarmed.client
    first = alarmed.topics.root + "/first"
    set_value(alarmed, 0)
    drain(alarmed, first)
    for v, acting in ((10, ["eq", "ge"]), (15, ["gt", "ne"]), (5, ["le", "lt"]), (5, []), (-3, []), (10, ["eq", "ge"])):
        set_value(alarmed, v)
        # At the first answer with v the acting alarms send one message each; polls go on every
        # 100 ms, and nothing more may come.
        got = fired(alarmed, first)
        assert got == sorted(acting), "value %d: %r acted, expected %r" % (v, got, acting)


def test_every_trigger_acts_on_each_answer_while_met(alarmed):
    c = alarmed.client
    topic = alarmed.topics.root + "/every"
    set_value(alarmed, 0)
    drain(alarmed, topic)
    set_value(alarmed, 20)
    for _ in range(5):  # one per poll (period 100 ms)
        assert c.wait(topic).text == "every 20"
    set_value(alarmed, 21)
    drain(alarmed, topic)
    c.absent(topic, duration=1.0)


def test_redundancy_period_keeps_an_alarm_quiet(alarmed):
    """Every trigger, redundancy_s 2: at 10 polls a second, one action per 2 s at most."""
    c = alarmed.client
    topic = alarmed.topics.root + "/quiet"
    set_value(alarmed, 0)
    c.clear(topic)
    set_value(alarmed, 30)
    first = c.wait(topic)
    second = c.wait(topic, timeout=WAIT)
    # Without the period there would have been ~20 messages in between; the broker may delay
    # the first a little, hence the margin below 2 s.
    assert second.time - first.time > 1.5
    set_value(alarmed, 0)
    c.clear(topic)


def test_mqtt_message_codes(alarmed):
    c = alarmed.client
    topic = alarmed.topics.root + "/codes"
    set_value(alarmed, 0)
    c.clear(topic)
    set_value(alarmed, 40)
    text = c.wait(topic).text
    m = re.fullmatch(r"v=40 id=5 ip=127\.0\.0\.1 name=src reg=%d dev=plant-7 alarm=codes ut=(\d+) "
                     r"ts=(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\n100%%" % (VALUE_REG + 1), text)
    assert m, text
    assert abs(int(m.group(1)) - time.time()) < 600


def test_text_alarm_compares_ascii(alarmed):
    c = alarmed.client
    topic = alarmed.topics.root + "/text"
    c.clear(topic)
    ok(alarmed.pym.write_register(TEXT_REG, 0x4F4B, **unit(5)))  # "OK"
    assert c.wait(topic).text == "OK"
    ok(alarmed.pym.write_register(TEXT_REG, 0x2D2D, **unit(5)))


def test_actions_write_to_the_server_and_set_local_outputs(alarmed):
    pc = alarmed.pym
    ok(pc.write_register(WRITE_REG, 0, **unit(5)))
    ok(pc.write_coils(16, [False] * 3, **unit(5)))
    set_value(alarmed, 0)
    assert io_values(alarmed.sim, "get do 9") == [0]
    set_value(alarmed, 50)  # FC06 4242 to register 90, coil 9 on
    wait_for("the write seen by pymodbus", lambda: ok(pc.read_holding_registers(WRITE_REG, count=1, **unit(5)))
             .registers == [4242], sim=alarmed.sim)
    wait_for("coil 9 on", lambda: io_values(alarmed.sim, "get do 9") == [1], sim=alarmed.sim)
    set_value(alarmed, 51)  # FC16 float32 -2.5 word-swapped to 91..92, AO 0x20 = 777
    want = registers("f", -2.5, "BE", "LE")
    wait_for("the float written", lambda: ok(pc.read_holding_registers(WRITE_REG + 1, count=2, **unit(5)))
             .registers == want, sim=alarmed.sim)
    wait_for("AO 0x20 = 777", lambda: io_values(alarmed.sim, "get ao 32") == [777], sim=alarmed.sim)
    set_value(alarmed, 52)  # FC15 coils 16..18 = 1 0 1; coil 9 inverted (off)
    wait_for("the coils written", lambda: ok(pc.read_coils(16, count=3, **unit(5))).bits[:3] == [True, False, True],
             sim=alarmed.sim)
    wait_for("coil 9 inverted", lambda: io_values(alarmed.sim, "get do 9") == [0], sim=alarmed.sim)


# --- a dead server delays nobody else ------------------------------------------------------------

def test_a_dead_server_never_delays_another(tmp_path, pym, needs_bridge_tools):
    """A server that accepts and never answers (timeout 30 s) and a port that refuses, polled
    beside a live one every 100 ms: each change on the live one lands (within 15 s) long before
    the silent one's timeout has passed once."""
    silent = SilentServer()
    try:
        cfg = {"poller": {"enabled": True, "servers": [
            {"name": "silent", "host": "127.0.0.1", "port": silent.port, "period_ms": 100, "timeout_ms": 30000,
             "requests": [{"name": "x", "first": 1, "count": 10, "memory": 100}]},
            {"name": "refusing", "host": "127.0.0.1", "port": free_port(), "period_ms": 100, "timeout_ms": 5000,
             "requests": [{"name": "x", "first": 1, "memory": 200}]},
            {"name": "live", "host": "127.0.0.1", "port": pym.port, "unit": 5, "period_ms": 100, "timeout_ms": 5000,
             "requests": [{"name": "x", "first": 61, "type": "uint16", "memory": 1}]}]}}
        sim = Sim(tmp_path=tmp_path, config=cfg, heap=HEAP)
        try:
            silent.wait_accepted(1)
            c = pym.client()
            try:
                for v in (111, 222, 333, 444):
                    ok(c.write_register(60, v, **unit(5)))
                    wait_for("value %d from the live server" % v, lambda: io_values(sim, "get mem 1") == [v],
                             sim=sim)
            finally:
                c.close()
            assert silent.accepted == 1  # one connection, one request waiting: not retried
        finally:
            sim.stop()
        out = sim.proc.stdout.read()
        assert "poller: server refusing: connection refused" in out
    finally:
        silent.stop()


# --- RTU: a pymodbus device on a pty ------------------------------------------------------------

def test_rtu_device_polled_and_written_beside_a_silent_unit(tmp_path):
    pair = PtyPair(tmp_path)
    dev = sim = None
    try:
        dev = RtuDevice(pair.b, unit=17, baud=19200, parity="N", stopbits=2)
        cfg = {"rtu": {"enabled": True, "mode": "master", "baud": 19200, "parity": "N", "stopbits": 2},
               "poller": {"enabled": True, "servers": [
                   {"name": "io17", "line": "rs485", "unit": 17, "period_ms": 100, "timeout_ms": 500, "requests": [
                       {"name": "regs", "first": 101, "count": 4, "type": "uint16", "memory": 1},
                       {"name": "pair", "first": 111, "count": 2, "type": "uint32", "memory": 5},
                       {"name": "back", "first": 151, "type": "uint16", "memory": 10}]},
                   {"name": "gone", "line": "rs485", "unit": 18, "period_ms": 100, "timeout_ms": 200, "requests": [
                       {"name": "x", "first": 101, "memory": 20}]}],
                   "alarms": [{"name": "w", "server": "io17", "request": "regs", "index": 2, "condition": "==",
                               "value": 1102, "frequency": "first",
                               "write": {"server": "io17", "function": 6, "first": 151, "values": [4242]}}]}}
        sim = Sim(tmp_path=tmp_path, config=cfg, rtu=pair.a, parity="N", stopbits=2, heap=HEAP)
        wait_for("registers 100..103 of unit 17", lambda: io_values(sim, "get mem 1 4") == [1100, 1101, 1102, 1103],
                 sim=sim)
        wait_for("registers 110..111 as uint32", lambda: io_values(sim, "get mem 5") == [(1110 << 16) | 1111],
                 sim=sim)
        wait_for("the alarm's write read back", lambda: io_values(sim, "get mem 10") == [4242], sim=sim)
    finally:
        if sim is not None:
            sim.stop()
        if dev is not None:
            dev.stop()
        pair.stop()
    out = sim.proc.stdout.read()
    assert "poller: server gone: no answer within 200 ms" in out


# --- one simulator polling another --------------------------------------------------------------

def test_one_simulator_polls_another(tmp_path):
    """The docs/master.md example: simulator A is the field device, B polls it every 200 ms
    into memory and writes back to A's coil when A's value passes 100."""
    a = Sim(tmp_path=tmp_path)
    try:
        cfg = {"poller": {"enabled": True, "servers": [
            {"name": "a", "host": a.host, "port": a.port, "unit": 1, "period_ms": 200, "timeout_ms": 1000,
             "requests": [{"name": "level", "function": 3, "first": 17, "count": 1, "type": "uint16", "memory": 1},
                          {"name": "inputs", "function": 2, "first": 1, "count": 4, "table": "discrete",
                           "address": 0x40}]}],
            "alarms": [{"name": "high", "server": "a", "request": "level", "condition": ">", "value": 100,
                        "frequency": "first",
                        "write": {"server": "a", "function": 5, "first": 8, "values": [1]},
                        "output": {"table": "coil", "address": 3, "set": "on"}}]}}
        b = Sim(tmp_path=tmp_path, config=cfg, heap=HEAP)
        try:
            assert "poller 1" in b.ready
            assert a.io_cmd("set di 0 1 0 1 1") == "ok"
            assert a.io_cmd("set ao 16 42") == "ok"
            wait_for("A's AO 16 in B's memory 1", lambda: io_values(b, "get mem 1") == [42], sim=b)
            wait_for("A's inputs in B's discrete inputs", lambda: io_values(b, "get di 64 4") == [1, 0, 1, 1], sim=b)
            assert io_values(a, "get do 7") == [0]
            assert a.io_cmd("set ao 16 150") == "ok"
            wait_for("B's write to A's coil 7", lambda: io_values(a, "get do 7") == [1], sim=b)
            assert io_values(b, "get do 3") == [1]
        finally:
            b.stop()
    finally:
        a.stop()


def test_configuration_errors_are_one_line(tmp_path):
    from mbtest import cli

    bad = tmp_path / "bad.json"
    bad.write_text('{"poller": {"enabled": true, "servers": [{"name": "x", "host": "127.0.0.1", '
                   '"requests": [{"name": "r", "first": 1, "type": "float32", "count": 3}]}]}}')
    r = cli("sim", "--config", bad, "--tcp", "127.0.0.1:0")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "config: %s: poller.servers[0].requests[0].count = 3: allowed a multiple of 2 (float32 takes 2 registers)"
        % bad]

