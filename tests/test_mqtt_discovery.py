"""Home Assistant MQTT discovery (mqtt.discovery, docs/mqtt.md "Home Assistant discovery") on the
running simulator, with mosquitto and paho-mqtt: every discovery payload checked as JSON against
the device-based discovery format (device block, origin, availability, one component per
message and the keys each component type needs), commands on discovered entities read back
through the I/O control channel and pymodbus, the re-publish on <prefix>/status "online", write
protection on a discovered switch, and nothing under the prefix with discovery off.

The expectations are written here from Home Assistant's documented format (abbreviated keys:
dev, ids, sw, o, cmps, p, uniq_id, stat_t, cmd_t, avty_t), not taken from mbnode.mqtt.discovery.
"""

import json
import re

import pytest

import mbnode
from mbtest import ok, pymodbus_client, unit
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    Broker, Client, Topics, broker, needs_bridge_tools, sim_alive, start_device, unique_id)

FIRMWARE_VERSION = mbnode.VERSION

# Each table once, the onboard AO (10 bits) and an extension AO, a float setpoint, a memory
# position, a text register and two names whose ids meet ("sp.x" and "sp_x").
POINTS = [
    {"name": "pump", "table": "coil", "address": 3},
    {"name": "locked", "table": "coil", "address": 4},
    {"name": "door", "table": "discrete", "address": 5},
    {"name": "level", "table": "input", "address": "0x0040", "type": "float32"},
    {"name": "raw", "table": "input", "address": 7},
    {"name": "ao2", "table": "holding", "address": 2},
    {"name": "sp.x", "table": "holding", "address": "0x0050", "type": "int32"},
    {"name": "sp_x", "table": "holding", "address": "0x0052"},
    {"name": "flow", "table": "holding", "address": "0x0054", "type": "float32"},
    {"name": "tag", "table": "holding", "address": "0x0060", "type": "ascii", "count": 2},
    {"name": "total", "table": "memory", "position": 5, "signed": True},
]
KIND = {"coil": "switch", "discrete": "binary_sensor", "input": "sensor", "holding": "number", "memory": "number"}
CLIENT_ID = "ha test.node"  # a space and a dot: both become "_" in ids
NODE = "ha_test_node"
HEAP = {"heap": "256K"}  # the bridge from source compiles at start (docs/simulator.md)
PROTECT = {"read_only": {"coils": ["0x0004-0x0004"]}}


def kind(point):
    return "sensor" if point.get("type") == "ascii" else KIND[point["table"]]


def collect(client, prefix, n):
    """The next n messages under <prefix>/device/, in arrival order."""
    return [client.wait(prefix + "/device/#") for _ in range(n)]


@pytest.fixture(scope="module")
def dev(tmp_path_factory, broker):
    topics = Topics(prefix="site", root="io-" + unique_id("d")[-8:])
    ha = Client(broker, subscribe=["homeassistant/#"])
    d = start_device(tmp_path_factory.mktemp("disc"), broker, topics, sim_kw=HEAP, points=POINTS, discovery=True,
                     discovery_channels=False, client_id=CLIENT_ID,
                     config={"protect": PROTECT, "identity": {"device_name": "Cabinet 3"}})
    d.ha = ha
    d.configs = collect(ha, "homeassistant", len(POINTS))
    yield d
    d.stop()
    ha.close()


def by_name(dev):
    out = {}
    for m in dev.configs:
        (comp,) = m.json()["cmps"].values()
        out[comp["name"]] = (m, comp)
    return out


def test_every_payload_is_a_valid_device_discovery_message(dev):
    names = [p["name"] for p in POINTS]
    seen_topics, seen_uids = set(), set()
    for m in dev.configs:
        match = re.fullmatch(r"homeassistant/device/([A-Za-z0-9_-]+)/config", m.topic)
        assert match, m.topic
        assert match.group(1).startswith(NODE + "_"), m.topic
        seen_topics.add(m.topic)
        body = json.loads(m.payload)  # valid JSON
        assert set(body) == {"dev", "o", "avty_t", "qos", "cmps"}, body
        d = body["dev"]
        assert d["ids"] == [NODE]
        assert d["name"] == "Cabinet 3"
        assert d["sw"] == FIRMWARE_VERSION
        assert d["mf"] == "mbnode" and d["mdl"] == "mbnode Modbus slave" and d["mdl_id"] == "MBN-1"
        assert "cns" not in d  # the simulator's board has no MAC
        assert body["o"] == {"name": "mbnode", "sw": FIRMWARE_VERSION}
        assert body["avty_t"] == dev.topics.status  # the bridge's online / last will offline
        assert body["qos"] == 0
        assert len(body["cmps"]) == 1
        (cid, c), = body["cmps"].items()
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cid), cid
        assert match.group(1) == NODE + "_" + cid
        assert c["uniq_id"] == NODE + "_" + cid
        seen_uids.add(c["uniq_id"])
        point = POINTS[names.index(c["name"])]
        assert c["p"] == kind(point), (point, c)
        assert c["stat_t"] == dev.topics.point(point["name"])
        assert "{{" in c["val_tpl"] and "value_json.value" in c["val_tpl"]
        required = {"switch": {"cmd_t", "pl_on", "pl_off", "stat_on", "stat_off"},
                    "binary_sensor": {"pl_on", "pl_off"}, "sensor": set(),
                    "number": {"cmd_t", "min", "max", "step", "mode"}}[c["p"]]
        assert required <= set(c), (required - set(c), c)
        allowed = required | {"p", "name", "uniq_id", "stat_t", "val_tpl", "stat_cla"}
        assert set(c) <= allowed, set(c) - allowed
        if "cmd_t" in c:
            assert c["cmd_t"] == c["stat_t"] + "/set"  # the points' /set: the same write path
        if c["p"] == "number":
            assert c["min"] < c["max"] and c["step"] > 0
    assert len(seen_topics) == len(POINTS) and len(seen_uids) == len(POINTS)
    ids = {c["name"]: cid for m in dev.configs for cid, c in m.json()["cmps"].items()}
    assert ids["sp.x"] != ids["sp_x"] and {ids["sp.x"], ids["sp_x"]} == {"sp_x", "sp_x_"}


def test_the_messages_are_retained(dev, broker):
    """A subscriber that comes later (Home Assistant started after the device) gets each one
    from the broker, flagged retained."""
    late = Client(broker, subscribe=["homeassistant/#"])
    try:
        kept = collect(late, "homeassistant", len(POINTS))
        assert all(m.retain for m in kept), kept
        assert sorted((m.topic, m.payload) for m in kept) == sorted((m.topic, m.payload) for m in dev.configs)
    finally:
        late.close()


def test_number_ranges_follow_the_types_and_the_onboard_ao(dev):
    comps = {name: c for name, (_, c) in by_name(dev).items()}
    assert (comps["ao2"]["min"], comps["ao2"]["max"], comps["ao2"]["step"]) == (0, 1023, 1)
    assert (comps["sp.x"]["min"], comps["sp.x"]["max"]) == (-2 ** 31, 2 ** 31 - 1)
    assert (comps["sp_x"]["min"], comps["sp_x"]["max"]) == (0, 65535)
    assert (comps["total"]["min"], comps["total"]["max"]) == (-2 ** 31, 2 ** 31 - 1)
    assert comps["flow"]["step"] < 1 and comps["flow"]["max"] == pytest.approx(3.4028235e38)
    assert comps["level"]["stat_cla"] == "measurement" and "stat_cla" not in comps["tag"]


def test_states_follow_the_discovery(dev):
    """After the last discovery message every point's state is published once more, for an
    entity that subscribed after the connect's own publish."""
    for p in POINTS:
        m = dev.client.wait(dev.topics.point(p["name"]), lambda m: m.time > dev.configs[-1].time)
        assert "value" in m.json()


def test_switch_command_turns_the_output_on_and_off(dev):
    m, c = by_name(dev)["pump"]
    dev.ha.publish(c["cmd_t"], c["pl_on"])
    assert json.loads(dev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
    assert dev.io("get do 3") == [1]
    with pymodbus_client(dev.sim) as mb:
        rr = mb.read_coils(3, count=1, **unit(1))
        ok(rr)
        assert rr.bits[0] is True
    # The state topic says so in the form the template reads as the state_on value.
    state = dev.client.wait(c["stat_t"], lambda m: m.json()["value"] is True)
    assert state.json()["value"] is True
    dev.ha.publish(c["cmd_t"], c["pl_off"])
    assert json.loads(dev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
    assert dev.io("get do 3") == [0]


def test_number_command_writes_the_ao(dev):
    for name, addr, text, regs in (("ao2", 2, "700", [700]), ("sp.x", 0x50, "-2", [0xFFFF, 0xFFFE])):
        _, c = by_name(dev)[name]
        dev.ha.publish(c["cmd_t"], text)
        assert json.loads(dev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
        assert dev.io("get ao %d %d" % (addr, len(regs))) == regs
        with pymodbus_client(dev.sim) as mb:
            rr = mb.read_holding_registers(addr, count=len(regs), **unit(1))
            ok(rr)
            assert rr.registers == regs
    # Above the onboard AO's 10 bits: refused by the Engine, as for Modbus.
    _, c = by_name(dev)["ao2"]
    dev.ha.publish(c["cmd_t"], "1024")
    res = json.loads(dev.client.wait(c["cmd_t"][:-4] + "/res").payload)
    assert res["ok"] is False and "exception 3" in res["error"]
    assert dev.io("get ao 2") == [700]


def test_write_protection_applies_to_a_discovered_switch(dev):
    _, c = by_name(dev)["locked"]
    dev.ha.publish(c["cmd_t"], c["pl_on"])
    res = json.loads(dev.client.wait(c["cmd_t"][:-4] + "/res").payload)
    assert res == {"timestamp": res["timestamp"], "ok": False, "error": "Modbus exception 2 (illegal data address)"}
    assert dev.io("get do 4") == [0]


def test_home_assistant_online_gets_every_message_again(dev):
    sim_alive(dev.sim)
    dev.ha.clear()
    dev.ha.publish("homeassistant/status", "offline")  # not a birth: nothing
    dev.ha.publish("homeassistant/status", "online")
    again = collect(dev.ha, "homeassistant", len(POINTS))
    assert sorted((m.topic, m.payload) for m in again) == sorted((m.topic, m.payload) for m in dev.configs)
    # nothing more than one message per point
    dev.ha.absent("homeassistant/device/#", duration=1.0)


def test_discovery_off_publishes_nothing_under_the_prefix(tmp_path):
    b = Broker(tmp_path).start()
    try:
        ha = Client(b, subscribe=["homeassistant/#"])
        topics = Topics(root="off")
        d = start_device(tmp_path, b, topics, sim_kw=HEAP, points=POINTS[:3], client_id=CLIENT_ID)
        try:
            for p in POINTS[:3]:
                d.client.wait(topics.point(p["name"]))
            # A write's answer: the device has run many loop turns since it connected.
            d.client.publish(topics.point("pump", "set"), "true")
            d.client.wait(topics.point("pump", "res"))
            ha.publish("homeassistant/status", "online")
            ha.absent("homeassistant/device/#", duration=1.0)
            assert not ha.pending("homeassistant/+/+/config") and not ha.pending("homeassistant/+/+/+/config")
        finally:
            d.stop()
            ha.close()
    finally:
        b.stop()


def test_custom_prefix(tmp_path, broker):
    topics = Topics(root="cp-" + unique_id("c")[-8:])
    ha = Client(broker, subscribe=["ha-test/#"])
    d = start_device(tmp_path, broker, topics, sim_kw=HEAP, points=POINTS[:2], discovery=True,
                     discovery_channels=False, discovery_prefix="ha-test", client_id=unique_id("cp"))
    try:
        got = collect(ha, "ha-test", 2)
        assert all(m.topic.startswith("ha-test/device/") for m in got), got
        late = Client(broker, subscribe=["ha-test/#"])
        try:
            assert all(m.retain for m in collect(late, "ha-test", 2))
        finally:
            late.close()
        ha.clear()
        ha.publish("ha-test/status", "online")
        assert len(collect(ha, "ha-test", 2)) == 2
    finally:
        d.stop()
        ha.close()


def test_discovery_needs_points(tmp_path):
    from mbtest import cli

    path = tmp_path / "c.json"
    for mqtt in ({"discovery_channels": False}, {}):
        channels = {} if mqtt else {name: [] for name in ("coils", "discrete_inputs", "input_registers")}
        channels["holding_registers"] = ["0x0040-0x0041"]  # no onboard channel
        path.write_text(json.dumps({"mqtt": dict(mqtt, enabled=True, discovery=True), "channels": channels}))
        r = cli("sim", "--config", path)
        assert r.returncode == 2
        assert r.stderr.strip() == (
            "config: %s: mqtt.discovery = true: allowed only with mqtt.points or onboard channels and "
            "mqtt.discovery_channels (the points are what Home Assistant is told about)" % path)


# A Pico's default channels (docs/boards.md)
PICO_CHANNELS = {"coils": ["0x0000-0x0007"], "discrete_inputs": ["0x0000-0x0003"],
                 "input_registers": ["0x0000-0x0002"], "holding_registers": ["0x0000-0x0001", "0x1000-0x17FF"]}
# The bench's eight points on a Pico's channels, with the extension registers they read.
PICO_AND_POINTS8 = dict(PICO_CHANNELS, input_registers=["0x0000-0x0002", "0x0010-0x0010", "0x0050-0x0051"],
                        holding_registers=["0x0000-0x0001", "0x0040-0x0043", "0x0070-0x0073", "0x1000-0x17FF"])


@pytest.mark.parametrize("channels", [False, True], ids=["points", "points+pico-channels"])
def test_at_the_bridges_specified_heap_as_on_a_board(tmp_path, broker, channels):
    """The firmware as a board runs it (mbnode and umqtt.simple as .mpy, 32-bit) at the heap the
    bridge is specified for (docs/mqtt.md, "RAM": 124 KiB) with the bench's eight points and
    discovery on: every message, a command on the discovered switch, Home Assistant's
    birth twice, one connection and no MemoryError in the log. channels: with a Pico's onboard
    channels as 15 implicit points beside them (do5 and di3 are points, ai16 is not onboard)."""
    from conftest import ROOT
    from mqtttest import BoardSim, board_build

    points8 = json.loads((ROOT / "bench" / "points8.json").read_text())
    n = len(points8) + (15 if channels else 0)
    dirs = board_build(tmp_path / "board")
    prefix = "ha-" + unique_id("b")[-8:]
    topics = Topics(root="b8")
    ha = Client(broker, subscribe=[prefix + "/#"])
    d = start_device(tmp_path, broker, topics, points=points8, discovery=True, discovery_prefix=prefix,
                     discovery_channels=channels, config={"channels": PICO_AND_POINTS8} if channels else None,
                     client_id=unique_id("b8"), make_sim=lambda cfg: BoardSim(dirs, tmp_path, cfg, "124K"))
    try:
        first = collect(ha, prefix, n)
        assert len({m.topic for m in first}) == n
        (c,) = [c for m in first for c in m.json()["cmps"].values() if c["name"] == "do5"]
        for _ in range(2):
            ha.clear()
            ha.publish(prefix + "/status", "online")
            assert sorted(m.payload for m in collect(ha, prefix, n)) == sorted(m.payload for m in first)
        ha.publish(c["cmd_t"], c["pl_on"])
        assert json.loads(d.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
        assert d.io("get do 5") == [1]
    finally:
        d.sim.stop()
        log = d.sim.proc.stdout.read() + d.sim.proc.stderr.read()
        d.client.close()
        ha.close()
    assert log.count("mqtt: connected") == 1 and "reconnecting" not in log, log
    assert "MemoryError" not in log and "out of memory" not in log, log


def test_a_board_with_a_mac_names_it_as_a_connection():
    """The simulator's board has no MAC; a pin board with Wi-Fi gives bridge.start its
    board.mac() ("AA:BB:..."). The messages then carry it as a connection, in lower case
    (CPython, mbnode.mqtt.discovery with stand-ins for the loop, the bridge and telemetry)."""
    from mbnode.mqtt import discovery, points, pointsconfig

    class Stub:
        pass

    loop, bridge, tel = Stub(), Stub(), Stub()
    loop.timers = []
    loop.add_timer = loop.timers.append
    bridge.m, bridge.qos, bridge.greet, bridge.subs = {"client_id": "esp-1"}, 1, [], []
    bridge.status_topic = lambda: b"io/status"
    bridge.room = lambda n: None
    bridge.listen = lambda topic, fn: bridge.subs.append(topic)
    tel.points = [points.Point(pointsconfig.check({"name": "x", "table": "coil", "address": 0}))]
    tel.topic = lambda i: b"io/x"
    identity = {"device_name": "", "vendor_name": "ACME", "product_name": "", "product_code": ""}
    d = discovery.Discovery(loop, bridge, tel, "ha", identity, "A4:CF:12:00:9B:01")
    body = json.loads(bytes(d.buf[:d.message(0)]))
    assert len(d.buf) == d.message(0)  # the buffer is the longest message's size
    assert body["dev"] == {"ids": ["esp-1"], "name": "esp-1", "sw": FIRMWARE_VERSION, "mf": "ACME",
                           "cns": [["mac", "a4:cf:12:00:9b:01"]]}
    assert body["qos"] == 1 and body["avty_t"] == "io/status"
    assert bridge.subs == [b"ha/status"] and loop.timers == [d] and bridge.greet == [d.connected]


def test_beside_failsafe_every_part_greets_each_connect(tmp_path, broker):
    """Discovery is loaded at the first connect, from the bridge's list of parts greeted after
    each connect, which it changes while that list is being run: fail-safe's state (greeted
    after it) still comes, at the first connect and after a broker restart, and so do the
    discovery messages."""
    b = Broker(tmp_path).start()
    try:
        topics = Topics(root="fsd")
        ha = Client(b, subscribe=["homeassistant/#"], reconnect=(1, 1))
        d = start_device(tmp_path, b, topics, sim_kw=HEAP, points=POINTS[:2], discovery=True,
                         discovery_channels=False, client_id=unique_id("fsd"),
                         config={"failsafe": {"enabled": True, "timeout_ms": 3600000}})
        try:
            for _ in range(2):
                assert d.client.wait(topics.root + "/failsafe").payload == b"0"
                assert len(collect(ha, "homeassistant", 2)) == 2
                b.restart()  # retained messages gone (no persistence): both parts publish again
                d.client.wait_resubscribed()
                ha.wait_resubscribed()
                d.client.wait_online()
        finally:
            d.stop()
            ha.close()
    finally:
        b.stop()


# --- the onboard channels as implicit points (mqtt.discovery_channels, docs/mqtt.md) ----------

# A configured point on DO 3 and one on AI 1: those channels are announced once, as the points.
CH_POINTS = [{"name": "pump", "table": "coil", "address": 3}, {"name": "level", "table": "input", "address": 1}]
CH_EXPECTED = dict([("do%d" % a, "switch") for a in range(8) if a != 3]
                   + [("di%d" % a, "binary_sensor") for a in range(4)]
                   + [("ai0", "sensor"), ("ai2", "sensor"), ("ao0", "number"), ("ao1", "number"),
                      ("pump", "switch"), ("level", "sensor")])


def components(configs):
    return {c["name"]: c for m in configs for c in m.json()["cmps"].values()}


@pytest.fixture(scope="module")
def chdev(tmp_path_factory, broker):
    topics = Topics(root="ch-" + unique_id("h")[-8:])
    prefix = "hach-" + unique_id("p")[-6:]
    ha = Client(broker, subscribe=[prefix + "/#"])
    d = start_device(tmp_path_factory.mktemp("chan"), broker, topics, sim_kw=HEAP, points=CH_POINTS, discovery=True,
                     discovery_prefix=prefix, client_id=unique_id("ch"),
                     config={"channels": PICO_CHANNELS, "protect": {"read_only": {"coils": ["0x0006-0x0006"]}}})
    d.ha = ha
    d.configs = collect(ha, prefix, len(CH_EXPECTED))
    d.prefix = prefix
    yield d
    d.stop()
    ha.close()


def test_the_pico_channels_are_announced_with_their_components(chdev):
    comps = components(chdev.configs)
    assert {n: c["p"] for n, c in comps.items()} == CH_EXPECTED
    assert len({m.topic for m in chdev.configs}) == len(CH_EXPECTED)
    for n, c in comps.items():
        assert c["stat_t"] == chdev.topics.point(n)
    assert (comps["ao0"]["min"], comps["ao0"]["max"], comps["ao0"]["step"]) == (0, 1023, 1)
    assert comps["do0"]["cmd_t"] == chdev.topics.point("do0", "set")
    assert comps["ai0"]["stat_cla"] == "measurement"
    # nothing more: no channel twice, none outside the present ones
    chdev.ha.absent(chdev.prefix + "/device/#", duration=0.5)
    # every implicit point publishes its state like a configured one
    for n in CH_EXPECTED:
        assert "value" in chdev.client.wait(chdev.topics.point(n)).json()


def test_a_switch_command_on_a_do_channel_turns_the_coil_on(chdev):
    c = components(chdev.configs)["do5"]
    chdev.ha.publish(c["cmd_t"], c["pl_on"])
    assert json.loads(chdev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
    assert chdev.io("get do 5") == [1]
    with pymodbus_client(chdev.sim) as mb:
        rr = mb.read_coils(5, count=1, **unit(1))
        ok(rr)
        assert rr.bits[0] is True
    chdev.client.wait(c["stat_t"], lambda m: m.json()["value"] is True)
    # write protection applies to a channel as to any point
    c = components(chdev.configs)["do6"]
    chdev.ha.publish(c["cmd_t"], c["pl_on"])
    res = json.loads(chdev.client.wait(c["cmd_t"][:-4] + "/res").payload)
    assert res["ok"] is False and "exception 2" in res["error"]
    assert chdev.io("get do 6") == [0]


def test_an_ao_number_writes_the_register(chdev):
    c = components(chdev.configs)["ao1"]
    chdev.ha.publish(c["cmd_t"], "512")
    assert json.loads(chdev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is True
    assert chdev.io("get ao 1") == [512]
    with pymodbus_client(chdev.sim) as mb:
        rr = mb.read_holding_registers(1, count=1, **unit(1))
        ok(rr)
        assert rr.registers == [512]
    chdev.ha.publish(c["cmd_t"], "1024")  # above the onboard AO's 10 bits
    assert json.loads(chdev.client.wait(c["cmd_t"][:-4] + "/res").payload)["ok"] is False
    assert chdev.io("get ao 1") == [512]


def test_a_di_channel_follows_the_input(chdev):
    c = components(chdev.configs)["di2"]
    chdev.io("set di 2 1")
    assert chdev.client.wait(c["stat_t"], lambda m: m.json()["value"] is True).json()["value"] is True


def test_the_simulators_whole_map_is_capped(tmp_path, broker):
    """The simulator's defaults make all 4 x 64 onboard channels present: 32 implicit points,
    the first eight of each kind, and the start-up says how many were left out."""
    topics = Topics(root="cap-" + unique_id("c")[-8:])
    prefix = "hacap-" + unique_id("p")[-6:]
    ha = Client(broker, subscribe=[prefix + "/#"])
    d = start_device(tmp_path, broker, topics, sim_kw=HEAP, discovery=True, discovery_prefix=prefix,
                     client_id=unique_id("cap"))
    try:
        comps = components(collect(ha, prefix, 32))
        assert sorted(comps) == sorted("%s%d" % (k, a) for k in ("do", "di", "ai", "ao") for a in range(8))
        ha.absent(prefix + "/device/#", duration=0.5)
    finally:
        d.stop()
        ha.close()
    assert [line for line in d.sim.early if line.startswith(
        "mqtt: discovery: 224 onboard channels left out (at most 32 implicit points")], d.sim.early


def test_discovery_channels_false_announces_the_points_only(tmp_path, broker):
    topics = Topics(root="np-" + unique_id("n")[-8:])
    prefix = "hanp-" + unique_id("p")[-6:]
    ha = Client(broker, subscribe=[prefix + "/#"])
    d = start_device(tmp_path, broker, topics, sim_kw=HEAP, points=CH_POINTS, discovery=True,
                     discovery_channels=False, discovery_prefix=prefix, client_id=unique_id("np"),
                     config={"channels": PICO_CHANNELS})
    try:
        assert sorted(components(collect(ha, prefix, 2))) == ["level", "pump"]
        d.client.wait(topics.point("pump"))
        ha.absent(prefix + "/device/#", duration=0.5)
        assert not d.client.pending(topics.point("do0"))
    finally:
        d.stop()
        ha.close()


def test_channels_skip_what_points_read_and_take_the_kinds_in_turn():
    """discoverystart.channels (CPython): a point covering two AO registers, a point named like
    a channel elsewhere, the cap of 32 and the 64 points in all."""
    from mbnode.config import validate
    from mbnode.mqtt.discoverystart import channels

    pts = [{"name": "sp", "table": "holding", "address": 0, "type": "int32"},
           {"name": "do1", "table": "coil", "address": "0x0040"}]
    cfg = validate({"mqtt": {"points": pts, "discovery": True},
                    "channels": {"coils": ["0x0000-0x0041"], "discrete_inputs": [],
                                 "input_registers": ["0x0040-0x0040"], "holding_registers": ["0x0000-0x0002"]}})
    made, left = channels(cfg["mqtt"]["points"], cfg["channels"])
    assert [d["name"] for d in made[:3]] == ["do0", "ao2", "do2"]
    assert made[1] == {"name": "ao2", "table": "holding", "address": 2}
    assert len(made) == 32 and left == 32 and made[-1]["name"] == "do31"
    many = [dict(d, name="p%d" % i) for i, d in enumerate(cfg["mqtt"]["points"] * 31)]
    made, left = channels(many, cfg["channels"])
    assert [d["name"] for d in made] == ["do0", "ao2"]  # 62 points: room for 2
