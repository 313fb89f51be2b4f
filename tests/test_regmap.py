"""The register map as data (`mbnode map`) and its exports (`mbnode export`), issue 13 section 1.

The map is checked against docs/register-map.md (its tables parsed here), against the
configuration it came from, and against the running firmware: every read the Node-RED flow
makes is answered by `mbnode sim`, and Home Assistant entries read with pymodbus exactly as
exported (address, input_type, data_type, swap) give the values set through the simulator's
control channel and `mbnode mem`. Each export is loaded with a parser of its own format (PyYAML,
json, csv); the Home Assistant YAML is checked against a schema written from the keys the
modbus integration documents.
"""

import csv
import io
import json
import re
import struct

import pytest
import yaml  # PyYAML: a test dependency (pyproject.toml)

import mbnode
from conftest import ROOT, need
from mbtest import cli, pymodbus, pymodbus_client, unit

DOC = (ROOT / "docs" / "register-map.md").read_text()


def run_json(*args):
    r = cli("map", "--json", *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


def rich_config(tmp_path, **more):
    """A configuration with every part the map describes (no broker needed: mqtt is off, its
    points still name their values)."""
    cfg = {
        "system": {"settings": str(tmp_path / "settings.bin"), "reboot": False},
        "mqtt": {"enabled": False, "points": [
            {"name": "flow", "table": "memory", "position": 5, "signed": True},
            {"name": "tempf", "table": "holding", "address": "0x1010", "type": "float32", "word_order": "LE"},
            {"name": "pump", "table": "coil", "address": 2},
            {"name": "level", "table": "input", "address": 7},
            {"name": "count", "table": "memory", "position": 20}]},
        "retain": {"positions": [[5, 6]], "file": str(tmp_path / "retain.dat")},
        "custom_block": {"file": str(tmp_path / "regfile.dat"), "first": 1025, "count": 200},
        "protect": {"read_only": {"coils": [[10, 11]], "holding_registers": [[0x1120, 0x1121]]},
                    "trusted_only": {"holding_registers": ["0x2100-0x2119"]}, "trusted_clients": ["127.0.0.1"]},
        "failsafe": {"timeout_ms": 3600000},
    }
    cfg.update(more)
    return cfg


def write_config(tmp_path, cfg, name="config.json"):
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def ranges(m, table):
    return [(r["first"], r["last"], r["kind"]) for r in m["tables"][table]]


def value(m, name):
    found = [v for v in m["values"] if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


# --- docs/register-map.md agrees with the map -------------------------------------------------


def md_tables(text):
    """Every markdown table of `text` as (heading, [row cells]) (header and rule rows dropped)."""
    out = []
    heading = None
    rows = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if rows is None:
                rows = []
                out.append((heading, rows))
                continue  # the header
            if all(set(c) <= set("-: ") for c in cells):
                continue
            rows.append(cells)
        else:
            rows = None
    return out


def table_after(heading):
    found = [rows for h, rows in md_tables(DOC) if h == heading]
    assert found, "docs/register-map.md has no table under %r" % heading
    return found[0]


def hex_range(cell):
    m = re.match(r"^0x([0-9A-F]{4})-0x([0-9A-F]{4})$", cell)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def test_channel_map_table_agrees_with_the_map(tmp_path):
    """The first table of docs/register-map.md: per table, its address ranges and function codes
    are the simulator's present ranges (with the system section) and the map's function codes."""
    m = run_json("--config", write_config(tmp_path, {"system": {"settings": str(tmp_path / "s.bin")}}))
    rows = table_after("Register map and exception rules")
    names = {"coils (DO)": "coils", "discrete inputs (DI)": "discrete_inputs",
             "holding registers": "holding_registers", "input registers": "input_registers"}
    doc = {}
    current = None
    for table, fcs, addresses, what in rows:
        if table:
            current = names.get(table)
            if current:
                doc[current] = {"fcs": sorted(int(f) for f in re.findall(r"\b(\d\d)\b", fcs)), "ranges": []}
        r = hex_range(addresses)
        if current and r:
            doc[current]["ranges"].append(r)
    assert set(doc) == set(names.values())
    for table, d in doc.items():
        got = [(r["first"], r["last"]) for r in m["tables"][table]]
        assert got == d["ranges"], table
        fcs = set()
        for r in m["tables"][table]:
            fcs.update(r["read"] + r["write"])
        assert sorted(fcs) == d["fcs"], table


def test_memory_layout_sentence_agrees_with_the_map():
    m = run_json()
    text = DOC.split("## Memory registers", 1)[1].split("##", 1)[0]
    assert "Position 1 = 0x%04X/0x%04X" % (m["memory"]["first_register"], m["memory"]["first_register"] + 1) in text
    last = m["memory"]["first_register"] + 2 * m["memory"]["positions"] - 2
    assert "position %d = 0x%04X/0x%04X" % (m["memory"]["positions"], last, last + 1) in text
    assert m["memory"]["word_order"] == "LE" and "lower half first" in text


@pytest.mark.parametrize("block,heading", [("status", "System status: FC03 and FC04, read-only"),
                                           ("settings", "Settings: FC03 read; FC06, FC16, FC22, FC23 write")])
def test_system_tables_agree_with_the_map(tmp_path, block, heading):
    """Every row of the status and settings tables (address, registers) is a field of the map's
    block, in order, the reserved gaps included, and they cover the block exactly."""
    m = run_json("--config", write_config(tmp_path, {"system": {"settings": str(tmp_path / "s.bin")}}))
    fields = m["system"][block]["fields"]
    rows = table_after(heading)
    doc = [(int(r[0], 16), int(r[1])) for r in rows]
    assert doc == [(f["address"], f["registers"]) for f in fields]
    assert doc[0][0] == m["system"][block]["first"]
    assert doc[-1][0] + doc[-1][1] - 1 == m["system"][block]["last"]
    for (address, regs), f in zip(doc, fields):  # 32-bit rows say so, text rows are 16 registers
        assert (f["type"] in ("uint32", "int32")) == (regs == 2), f


def test_quantity_table_agrees_with_the_limits():
    m = run_json()
    rows = {r[0]: r[1] for r in table_after("Quantities and values")}
    assert rows["01, 02"] == "1..0x%04X" % m["limits"]["read_bits"]
    assert rows["03, 04"] == "1..0x%04X" % m["limits"]["read_registers"]
    assert rows["16"] == "1..0x%04X" % m["limits"]["write_registers"]


# --- the map itself ---------------------------------------------------------------------------


def test_map_of_a_rich_configuration(tmp_path):
    m = run_json("--config", write_config(tmp_path, rich_config(tmp_path)))
    assert m["mbnode"] == mbnode.VERSION and m["board"] == "unix" and m["unit_id"] == 1
    assert m["transports"]["tcp"] == {"enabled": True, "host": "127.0.0.1", "port": 5020, "unit_255": True}
    hold = ranges(m, "holding_registers")
    assert (0x0400, 0x0400 + 199, "custom_block") in hold
    assert (0x2000, 0x204F, "system_status") in hold and (0x2100, 0x2119, "settings") in hold
    assert (0x2000, 0x204F, "system_status") in ranges(m, "input_registers")
    assert (0x2100, 0x2119, "settings") not in ranges(m, "input_registers")
    status = next(r for r in m["tables"]["holding_registers"] if r["kind"] == "system_status")
    assert status["access"] == "read" and status["write"] == [] and status["read"] == [3]
    custom = next(r for r in m["tables"]["holding_registers"] if r["kind"] == "custom_block")
    assert custom["read"] == [3] and custom["write"] == [6, 16, 22, 23]
    # Named memory positions: the points, lower half first, retained where retain says.
    flow = value(m, "flow")
    assert flow["table"] == "holding_registers" and flow["address"] == 0x1008 and flow["type"] == "int32"
    assert flow["word_order"] == "LE" and flow["position"] == 5 and flow["retained"] is True
    assert value(m, "count")["type"] == "uint32" and "retained" not in value(m, "count")
    assert value(m, "tempf")["type"] == "float32" and value(m, "tempf")["position"] == 9
    # A point on one channel names that channel (DO2 is "pump"); AI7 is "level".
    assert value(m, "pump")["address"] == 2 and not [v for v in m["values"] if v["name"] == "DO2"]
    assert value(m, "level")["table"] == "input_registers"
    # Write protection: read-only coils are read-only values; ranges say which part is protected.
    assert value(m, "DO10")["access"] == "read" and value(m, "DO10")["protected"] == "read_only"
    assert value(m, "DO9")["access"] == "read-write"
    coils = m["tables"]["coils"][0]
    assert coils["protected"] == [{"first": 10, "last": 11, "rule": "read_only"}]
    settings = next(r for r in m["tables"]["holding_registers"] if r["kind"] == "settings")
    assert settings["protected"] == [{"first": 0x2100, "last": 0x2119, "rule": "trusted_only"}]
    assert m["protect"]["trusted_clients"] == ["127.0.0.1"] and m["protect"]["refused_with"] == 2
    # The reboot switch is off: its register says writes are refused.
    reboot = next(f for f in m["system"]["settings"]["fields"] if f["name"] == "reboot")
    assert reboot["writable"] is False
    assert m["failsafe"]["timeout_ms"] == 3600000
    assert m["memory"]["retained"] == [[5, 6]]
    # The system status figures are values (FC04), 32-bit ones lower half first.
    up = value(m, "uptime")
    assert (up["table"], up["address"], up["type"], up["word_order"]) == ("input_registers", 0x2000, "uint32", "LE")
    assert value(m, "firmware_version")["count"] == 16


def test_map_of_extension_modules_and_the_poller(tmp_path):
    cfg = {
        "extension": {"modules": [{"tcp": "127.0.0.1:1502", "unit": 3, "di": 8, "ao": 4, "ao_address": 100},
                                  {"tcp": "127.0.0.1:1503", "di": 16, "do": 8}], "status_position": 901},
        "poller": {"servers": [{"name": "meter", "host": "127.0.0.1", "port": 1504, "requests": [
            {"name": "power", "function": 3, "first": 1, "count": 4, "type": "float32", "memory": 100},
            {"name": "energy", "function": 3, "first": 11, "count": 8, "type": "uint64", "memory": 110},
            {"name": "alarm", "function": 2, "first": 1, "count": 2, "table": "discrete", "address": "0x0030"}]}]},
    }
    m = run_json("--config", write_config(tmp_path, cfg))
    di = m["tables"]["discrete_inputs"]
    assert [(r["first"], r["last"], r.get("module")) for r in di] == [(0, 63, None), (64, 71, 0), (72, 87, 1)]
    assert [(r["first"], r["last"], r.get("module")) for r in m["tables"]["coils"]] == [(0, 63, None), (64, 71, 1)]
    ao = [r for r in m["tables"]["holding_registers"] if r.get("module") == 0]
    assert [(r["first"], r["last"]) for r in ao] == [(64, 67)] and "AO 100-103 of unit 3" in ao[0]["what"]
    assert not [r for r in m["tables"]["input_registers"] if r["kind"] == "extension"]
    assert value(m, "ext0_ao2")["address"] == 66 and value(m, "ext1_di15")["address"] == 87
    # Module k's status: positions 901 + 2k, four 16-bit registers.
    assert value(m, "ext1_state")["address"] == 0x1000 + 2 * (903 - 1)
    assert value(m, "ext1_failed")["address"] == 0x1000 + 2 * (903 - 1) + 3
    assert m["extension"]["modules"][1]["status_positions"] == [903, 904]
    # The poller: float32 values in one position each, 64-bit ones in two, bits into the map.
    assert value(m, "meter_power_0")["position"] == 100 and value(m, "meter_power_1")["type"] == "float32"
    assert value(m, "meter_energy_1")["position"] == 112 and value(m, "meter_energy_1")["count"] == 4
    assert value(m, "meter_alarm_1")["table"] == "discrete_inputs" and value(m, "meter_alarm_1")["address"] == 0x31
    assert not [v for v in m["values"] if v["name"] == "DI49"]  # the poller names that channel


def test_map_of_a_pico_and_the_readable_table():
    m = run_json("--board", "pico")
    assert m["transports"]["rtu"] == {"enabled": True, "line": "rtu", "baud": 19200, "parity": "E", "stopbits": 1,
                                      "bytesize": 8}
    assert m["transports"]["tcp"]["enabled"] is False
    assert ranges(m, "coils") == [(0, 7, "onboard")]
    assert [v["name"] for v in m["values"] if v["table"] == "input_registers"] == ["AI0", "AI1", "AI2"]
    r = cli("map", "--board", "pico")
    assert r.returncode == 0 and r.stderr == ""
    assert "coils              0x0000-0x0007      8  read-write  01        05,15" in r.stdout


def test_map_refusals_are_one_line(tmp_path):
    r = cli("map", "--board", "nosuch")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    bad = write_config(tmp_path, {"unit_id": 999})
    r = cli("map", "--config", bad)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "config: %s: unit_id = 999: allowed an integer 0..247" % bad]
    r = cli("export", "--format", "ha", "--interval", "0")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "mbnode export: argument --interval: 0: allowed whole seconds 1..86400 (see mbnode export -h)"]


# --- exports: parsed with their own format's parser, checked against the map -------------------

# Home Assistant's modbus schema (its SENSOR_SCHEMA and friends, recent versions): data_type and
# swap as it allows them (swap has no "none": leave it out), slave or device_address.
HA_TYPES = ("int16", "int32", "int64", "uint16", "uint32", "uint64", "float16", "float32", "float64", "string",
            "custom")
HA_COMMON = {"name", "address", "slave", "device_address", "scan_interval", "unique_id", "device_class"}
HA_PLATFORMS = {
    "binary_sensors": HA_COMMON | {"input_type", "slave_count", "virtual_count"},
    "sensors": HA_COMMON | {"input_type", "data_type", "count", "swap", "scale", "offset", "precision",
                            "unit_of_measurement", "state_class", "structure", "slave_count", "virtual_count",
                            "min_value", "max_value", "nan_value", "zero_suppress"},
    "switches": HA_COMMON | {"write_type", "command_on", "command_off", "verify"},
}
HA_INPUT_TYPES = {"binary_sensors": ("coil", "discrete_input", "holding", "input"), "sensors": ("holding", "input")}
HA_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}


def check_ha_schema(doc):
    """Home Assistant's modbus: block as its documentation describes it: hubs of type tcp (host,
    port) or serial (baudrate, bytesize, method, parity, port, stopbits); entities with a name
    (unique per platform), an address 0..65535, slave 0..255, and the allowed values of
    input_type, data_type, swap and write_type. Returns the entities per platform."""
    assert set(doc) == {"modbus"} and type(doc["modbus"]) is list and doc["modbus"]
    out = {}
    for hub in doc["modbus"]:
        assert hub["type"] in ("tcp", "udp", "rtuovertcp", "serial")
        if hub["type"] == "serial":
            assert hub["method"] in ("rtu", "ascii") and hub["bytesize"] in (5, 6, 7, 8)
            assert hub["parity"] in ("E", "O", "N") and hub["stopbits"] in (1, 2)
            assert type(hub["baudrate"]) is int and hub["baudrate"] > 0 and type(hub["port"]) is str
        else:
            assert type(hub["host"]) is str and hub["host"] and type(hub["port"]) is int and 0 < hub["port"] < 65536
        unknown = set(hub) - {"name", "type", "host", "port", "baudrate", "bytesize", "method", "parity", "stopbits",
                              "timeout", "delay", "message_wait_milliseconds", "retries", "close_comm_on_error"} \
            - set(HA_PLATFORMS)
        assert not unknown, unknown
        ids = set()
        for platform, keys in HA_PLATFORMS.items():
            names = set()
            for e in hub.get(platform, []):
                assert not set(e) - keys, (platform, set(e) - keys)
                assert type(e["name"]) is str and e["name"] and e["name"] not in names, e
                names.add(e["name"])
                assert e.get("unique_id") not in ids
                ids.add(e.get("unique_id"))
                assert type(e["address"]) is int and 0 <= e["address"] <= 0xFFFF
                assert not ("slave" in e and "device_address" in e)  # one or the other
                assert type(e.get("slave", 0)) is int and 0 <= e.get("slave", 0) <= 255
                assert type(e.get("scan_interval", 10)) is int and e.get("scan_interval", 10) >= 0
                if platform in HA_INPUT_TYPES:
                    assert e.get("input_type", HA_INPUT_TYPES[platform][0]) in HA_INPUT_TYPES[platform]
                if platform == "sensors":
                    t = e.get("data_type", "int16")
                    assert t in HA_TYPES
                    swap = e.get("swap")
                    assert swap in (None, "byte", "word", "word_byte")
                    if swap in ("word", "word_byte"):
                        assert HA_WIDTH.get(t, 0) > 1, e  # a word swap needs more than one register
                    if t == "string":
                        assert type(e["count"]) is int and e["count"] > 0
                    last = e["address"] + (e["count"] if t == "string" else HA_WIDTH[t]) - 1
                    assert last <= 0xFFFF
                if platform == "switches":
                    assert e.get("write_type", "holding") in ("holding", "coil", "holdings", "coils")
                    assert e.get("verify") is None or type(e["verify"]) is dict
                out.setdefault(platform, []).append(e)
    return out


def export(*args):
    r = cli("export", *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


def test_home_assistant_yaml(tmp_path):
    conf = write_config(tmp_path, rich_config(tmp_path))
    m = run_json("--config", conf)
    doc = yaml.safe_load(export("--format", "ha", "--config", conf, "--interval", "5"))
    ents = check_ha_schema(doc)
    hub = doc["modbus"][0]
    assert (hub["type"], hub["host"], hub["port"]) == ("tcp", "127.0.0.1", 5020)
    by = {e["name"]: (p, e) for p, es in ents.items() for e in es}
    # Every named value is there once, where the map says, with the map's type.
    assert len(by) == len(m["values"]) - 0
    for v in m["values"]:
        platform, e = by["mbnode " + v["name"]]
        assert e["address"] == v["address"] and e["slave"] == 1 and e["scan_interval"] == 5
        if v["table"] == "discrete_inputs":
            assert (platform, e["input_type"]) == ("binary_sensors", "discrete_input")
        elif v["table"] == "coils":
            assert (platform, e.get("write_type"), e.get("input_type")) == (
                ("switches", "coil", None) if v["access"] == "read-write" else ("binary_sensors", None, "coil"))
        else:
            assert platform == "sensors"
            assert e["input_type"] == {"input_registers": "input", "holding_registers": "holding"}[v["table"]]
            assert e["data_type"] == ("string" if v["type"] == "ascii" else v["type"])
            assert e.get("swap") == ("word" if v.get("word_order") == "LE" else None)
    assert by["mbnode flow"][1]["data_type"] == "int32" and by["mbnode flow"][1]["swap"] == "word"
    assert by["mbnode flow"][1]["address"] == 0x1008
    assert by["mbnode DO10"][0] == "binary_sensors"  # read-only: no switch
    # A board on RS-485 only: a serial hub with the line's settings.
    doc = yaml.safe_load(export("--format", "ha", "--board", "pico", "--serial", "/dev/ttyUSB3"))
    check_ha_schema(doc)
    hub = doc["modbus"][0]
    assert {k: hub[k] for k in ("type", "port", "baudrate", "parity", "stopbits", "bytesize", "method")} == {
        "type": "serial", "port": "/dev/ttyUSB3", "baudrate": 19200, "parity": "E", "stopbits": 1, "bytesize": 8,
        "method": "rtu"}


def test_the_ha_schema_check_refuses_what_home_assistant_refuses():
    """The schema check above is no rubber stamp."""
    good = {"modbus": [{"name": "h", "type": "tcp", "host": "h", "port": 502,
                        "sensors": [{"name": "a", "address": 1, "data_type": "int32", "swap": "word"}]}]}
    check_ha_schema(good)
    for change in ({"swap": "words"}, {"swap": "none"}, {"data_type": "int8"}, {"input_type": "coil"},
                   {"address": 70000}, {"device_address": 1, "slave": 1},
                   {"slave": 256}, {"data_type": "int16", "swap": "word"}, {"colour": 1}):
        bad = json.loads(json.dumps(good))
        bad["modbus"][0]["sensors"][0].update(change)
        with pytest.raises(AssertionError):
            check_ha_schema(bad)
    bad = json.loads(json.dumps(good))
    bad["modbus"][0]["sensors"].append(dict(bad["modbus"][0]["sensors"][0], unique_id="x"))
    with pytest.raises(AssertionError):
        check_ha_schema(bad)  # the same name twice


ESPHOME_VALUE_TYPES = ("U_WORD", "S_WORD", "U_DWORD", "S_DWORD", "U_DWORD_R", "S_DWORD_R", "U_QWORD", "S_QWORD",
                       "U_QWORD_R", "S_QWORD_R", "FP32", "FP32_R")


def test_esphome_yaml(tmp_path):
    conf = write_config(tmp_path, rich_config(tmp_path, rtu={"enabled": True, "baud": 38400, "parity": "N"},
                                              board={"rtu_device": "/dev/null"}))
    m = run_json("--config", conf)
    doc = yaml.safe_load(export("--format", "esphome", "--config", conf))
    assert doc["uart"][0]["baud_rate"] == 38400 and doc["uart"][0]["parity"] == "NONE"
    assert doc["uart"][0]["stop_bits"] == 2 and doc["uart"][0]["data_bits"] == 8
    assert doc["modbus"][0]["uart_id"] == doc["uart"][0]["id"]
    ctrl = doc["modbus_controller"][0]
    assert ctrl["address"] == 1 and ctrl["modbus_id"] == doc["modbus"][0]["id"]
    kinds = {"binary_sensor": ("discrete_input", "coil"), "switch": ("coil",), "sensor": ("read", "holding"),
             "number": (None,), "text_sensor": ("read", "holding")}
    seen = {}
    for key, allowed in kinds.items():
        for e in doc.get(key, []):
            assert e["platform"] == "modbus_controller" and e["modbus_controller_id"] == ctrl["id"]
            assert e.get("register_type") in allowed
            if key in ("sensor", "number"):
                assert e["value_type"] in ESPHOME_VALUE_TYPES
            assert e["name"] not in seen
            seen[e["name"]] = (key, e)
    for v in m["values"]:
        key, e = seen["mbnode " + v["name"]]
        if v["type"] == "ascii":
            assert (key, e["register_count"], e["response_size"], e["raw_encode"]) == (
                "text_sensor", v["count"], 2 * v["count"], "ANSI")
            continue
        assert e["address"] == v["address"]
        if v.get("word_order") == "LE":
            assert e["value_type"].endswith("_R")
    assert seen["mbnode flow"][0] == "number" and seen["mbnode flow"][1]["value_type"] == "S_DWORD_R"
    assert seen["mbnode tempf"][1]["value_type"] == "FP32_R"
    assert seen["mbnode AO3"][1]["max_value"] == 1023
    assert seen["mbnode uptime"] == ("sensor", seen["mbnode uptime"][1])
    assert seen["mbnode uptime"][1]["register_type"] == "read" and seen["mbnode uptime"][1]["value_type"] == "U_DWORD_R"
    assert seen["mbnode DI4"][1]["register_type"] == "discrete_input"


def present(m, table, first, n):
    return any(r["first"] <= first and first + n - 1 <= r["last"] for r in m["tables"][table])


NR_TABLE = {"Coil": "coils", "Input": "discrete_inputs", "HoldingRegister": "holding_registers",
            "InputRegister": "input_registers"}


def test_node_red_flow_reads_are_answered_by_the_simulator(tmp_path, start_sim):
    """Every modbus-read node of the flow lies in one present range, within the device's limits,
    together they cover the map; and each read, made with pymodbus as the node would, is answered."""
    need("pymodbus", pymodbus)
    cfg = rich_config(tmp_path)
    conf = write_config(tmp_path, cfg)
    m = run_json("--config", conf)
    sim = start_sim(config=cfg, heap="256K")
    flow = json.loads(export("--format", "nodered", "--config", conf, "--host", "%s:%d" % (sim.host, sim.port)))
    client = [n for n in flow if n["type"] == "modbus-client"]
    assert len(client) == 1 and client[0]["tcpHost"] == sim.host and client[0]["tcpPort"] == str(sim.port)
    reads = [n for n in flow if n["type"] == "modbus-read"]
    covered = set()
    with pymodbus_client(sim) as c:
        for n in reads:
            assert n["server"] == client[0]["id"] and n["z"] == flow[0]["id"]
            table = NR_TABLE[n["dataType"]]
            first, q = int(n["adr"]), int(n["quantity"])
            assert q <= (m["limits"]["read_bits"] if table in ("coils", "discrete_inputs") else
                         m["limits"]["read_registers"])
            assert present(m, table, first, q), n["name"]
            covered.update((table, a) for a in range(first, first + q))
            fn = {"coils": c.read_coils, "discrete_inputs": c.read_discrete_inputs,
                  "holding_registers": c.read_holding_registers, "input_registers": c.read_input_registers}[table]
            rr = fn(first, count=q, **unit())
            assert not rr.isError(), (n["name"], rr)
    for table, rs in m["tables"].items():
        for r in rs:
            if r.get("same_as") or (table == "holding_registers" and r["kind"] == "system_status"):
                continue
            assert all((table, a) in covered for a in range(r["first"], r["last"] + 1)), (table, r["what"])
    writes = {n["name"]: n for n in flow if n["type"] == "modbus-write"}
    assert writes["flow"]["dataType"] == "MHoldingRegisters" and writes["flow"]["quantity"] == "2"
    assert writes["pump"]["dataType"] == "Coil" and writes["pump"]["adr"] == "2"
    assert "DO10" not in writes  # read-only


def test_csv(tmp_path):
    conf = write_config(tmp_path, rich_config(tmp_path))
    m = run_json("--config", conf)
    rows = list(csv.DictReader(io.StringIO(export("--format", "csv", "--config", conf))))
    assert [r["name"] for r in rows] == [v["name"] for v in m["values"]]
    for r, v in zip(rows, m["values"]):
        assert int(r["address"]) == v["address"] and int(r["address_hex"], 16) == v["address"]
        assert int(r["register_number"]) == v["address"] + 1 and int(r["count"]) == v["count"]
        assert r["type"] == v["type"] and r["access"] == v["access"] and r["table"] == v["table"]
    flow = next(r for r in rows if r["name"] == "flow")
    assert (flow["word_order"], flow["position"], flow["read_fc"], flow["write_fc"]) == ("LE", "5", "3", "16")


# --- end to end: exported entries read from the running firmware --------------------------------


def ha_read(c, e):
    """Read Home Assistant entity e with pymodbus as the modbus integration does: its
    input_type's function at e's address, count from data_type, swap applied, then unpacked."""
    if "write_type" in e or e.get("input_type") in ("coil", "discrete_input"):
        fn = c.read_coils if e.get("write_type", e.get("input_type")) == "coil" else c.read_discrete_inputs
        rr = fn(e["address"], count=1, **unit(e["slave"]))
        assert not rr.isError(), rr
        return rr.bits[0]
    t = e.get("data_type", "int16")
    n = e["count"] if t == "string" else HA_WIDTH[t]
    fn = c.read_input_registers if e.get("input_type") == "input" else c.read_holding_registers
    rr = fn(e["address"], count=n, **unit(e["slave"]))
    assert not rr.isError(), rr
    regs = list(rr.registers)
    swap = e.get("swap", "none")
    if swap in ("word", "word_byte"):
        regs.reverse()
    if swap in ("byte", "word_byte"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    raw = b"".join(struct.pack(">H", r) for r in regs)
    if t == "string":
        return raw.rstrip(b"\0").decode()
    return struct.unpack(">" + {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}[t], raw)[0]


def test_exported_entries_read_back_what_the_simulator_holds(tmp_path, start_sim):
    need("pymodbus", pymodbus)
    cfg = rich_config(tmp_path)
    sim = start_sim(config=cfg, heap="256K")
    conf = write_config(tmp_path, cfg)
    doc = yaml.safe_load(export("--format", "ha", "--config", conf, "--host", "%s:%d" % (sim.host, sim.port)))
    ents = {e["name"][len("mbnode "):]: e for es in check_ha_schema(doc).values() for e in es}
    # Values set through the control channel and written with mbnode mem.
    assert sim.io_cmd("set di 3 1") == "ok"
    assert sim.io_cmd("set ai 7 777") == "ok"
    assert sim.io_cmd("set ai 5 40000") == "ok"
    for position, v in ((5, "-123456"), (20, "3000000000"), (9, str(struct.unpack(">I", struct.pack(">f", 2.5))[0]))):
        r = cli("mem", "--tcp", "%s:%d" % (sim.host, sim.port), "set", position, v)
        assert r.returncode == 0, r.stderr
    with pymodbus_client(sim) as c:
        assert ha_read(c, ents["DI3"]) is True
        assert ha_read(c, ents["DI2"]) is False
        assert ha_read(c, ents["level"]) == 777
        assert ha_read(c, ents["AI5"]) == 40000
        assert ha_read(c, ents["flow"]) == -123456
        assert ha_read(c, ents["count"]) == 3000000000
        assert ha_read(c, ents["tempf"]) == 2.5
        assert ha_read(c, ents["firmware_version"]) == mbnode.VERSION
        assert ha_read(c, ents["temperature"]) == -32768  # the simulator has no sensor (0x8000)
        assert ha_read(c, ents["uptime"]) < 3600
        # A switch turned on with FC05 reads back on through the control channel too.
        c.write_coil(ents["pump"]["address"], True, **unit())
        assert ha_read(c, ents["pump"]) is True
    assert sim.io_cmd("get do 2") == "ok 1"
    r = cli("mem", "--tcp", "%s:%d" % (sim.host, sim.port), "get", 5, "--signed")
    assert r.stdout.strip() == "-123456"


def test_io_counters_are_named_values():
    """The io section (DI modes with a memory position) is read as data: a configuration that has
    one (checked by its own module, mbnode.ioconfig) names those positions. Built directly from a
    checked configuration with the section's checked form laid in."""
    from mbnode_host import regmap

    cfg = regmap.load(None, "unix")
    cfg["io"] = {"scan_ms": 20, "di": [{"channel": 3, "mode": "counter", "position": 40},
                                       {"channel": 4, "mode": "level", "position": 0}], "ai": [], "do": [], "ao": []}
    m = regmap.build(cfg)
    v = value(m, "DI3_counter")
    assert (v["table"], v["address"], v["type"], v["word_order"], v["position"]) == (
        "holding_registers", 0x1000 + 2 * 39, "uint32", "LE", 40)
    assert not [x for x in m["values"] if x["name"].startswith("DI4_")]


def test_export_out_file(tmp_path):
    out = tmp_path / "map.csv"
    r = cli("export", "--format", "csv", "--board", "pico", "--out", out)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert out.read_text() == export("--format", "csv", "--board", "pico")
    r = cli("export", "--format", "csv", "--out", tmp_path / "no" / "such" / "dir.csv")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "mbnode export: cannot write --out %s: No such file or directory" % (tmp_path / "no" / "such" / "dir.csv")]


def esphome_read(c, e, table_of):
    """Read ESPHome entity e as modbus_controller documents it: register_type read (FC04) or
    holding (FC03), registers by value_type, *_R low word first; text_sensor bytes as text."""
    fn = c.read_input_registers if table_of(e) == "read" else c.read_holding_registers
    if "register_count" in e:
        rr = fn(e["address"], count=e["register_count"], **unit())
        assert not rr.isError(), rr
        raw = b"".join(struct.pack(">H", r) for r in rr.registers)[:e["response_size"]]
        return bytes(b for b in raw if b >= 0x20).decode()  # raw_encode ANSI: bytes below 0x20 dropped
    vt = e["value_type"]
    n = {"U_WORD": 1, "S_WORD": 1}.get(vt, 2)
    rr = fn(e["address"], count=n, **unit())
    assert not rr.isError(), rr
    regs = list(rr.registers)
    if vt.endswith("_R"):
        regs.reverse()
    raw = b"".join(struct.pack(">H", r) for r in regs)
    fmt = {"U_WORD": "H", "S_WORD": "h", "U_DWORD": "I", "S_DWORD": "i", "FP32": "f"}[vt.replace("_R", "")]
    return struct.unpack(">" + fmt, raw)[0]


def test_esphome_and_node_red_entries_against_the_simulator(tmp_path, start_sim):
    """ESPHome's entities read as it reads them, and a Node-RED write node's request (FC16,
    quantity 2, lower half first) as node-red-contrib-modbus sends it, against the firmware."""
    need("pymodbus", pymodbus)
    cfg = rich_config(tmp_path)
    sim = start_sim(config=cfg, heap="256K")
    conf = write_config(tmp_path, cfg)
    doc = yaml.safe_load(export("--format", "esphome", "--config", conf))
    ents = {e["name"][len("mbnode "):]: e for key in ("sensor", "number", "text_sensor") for e in doc.get(key, [])}
    flow = json.loads(export("--format", "nodered", "--config", conf, "--host", "%s:%d" % (sim.host, sim.port)))
    writes = {n["name"]: n for n in flow if n["type"] == "modbus-write"}
    assert sim.io_cmd("set ai 7 4321") == "ok"
    tcp = "%s:%d" % (sim.host, sim.port)
    for position, v in ((5, "-7"), (20, "4000000000"), (9, str(struct.unpack(">I", struct.pack(">f", -0.75))[0]))):
        assert cli("mem", "--tcp", tcp, "set", position, v).returncode == 0

    def table_of(e):
        return e.get("register_type", "holding")

    with pymodbus_client(sim) as c:
        assert esphome_read(c, ents["level"], table_of) == 4321
        assert esphome_read(c, ents["flow"], table_of) == -7
        assert esphome_read(c, ents["count"], table_of) == 4000000000
        assert esphome_read(c, ents["tempf"], table_of) == -0.75
        assert esphome_read(c, ents["firmware_version"], table_of) == mbnode.VERSION
        # Node-RED's write node for "flow": its dataType, address and quantity as exported.
        w = writes["flow"]
        assert w["dataType"] == "MHoldingRegisters"
        value = -1000000 & 0xFFFFFFFF
        rr = c.write_registers(int(w["adr"]), [value & 0xFFFF, value >> 16][:int(w["quantity"])], **unit())
        assert not rr.isError(), rr
    r = cli("mem", "--tcp", tcp, "get", 5, "--signed")
    assert r.returncode == 0 and r.stdout.strip() == "-1000000"


def test_every_range_ends_where_the_firmware_says(tmp_path, start_sim):
    """The map's ranges are exact: the first and last address of each answer, the address just
    before and just after each (when no other range has it) is exception 02 from the firmware."""
    need("pymodbus", pymodbus)
    cfg = rich_config(tmp_path)
    m = run_json("--config", write_config(tmp_path, cfg))
    sim = start_sim(config=cfg, heap="256K")
    with pymodbus_client(sim) as c:
        fns = {"coils": c.read_coils, "discrete_inputs": c.read_discrete_inputs,
               "holding_registers": c.read_holding_registers, "input_registers": c.read_input_registers}
        for table, rs in m["tables"].items():
            for r in rs:
                for a in (r["first"], r["last"]):
                    assert not fns[table](a, count=1, **unit()).isError(), (table, hex(a))
                for a in (r["first"] - 1, r["last"] + 1):
                    if 0 <= a <= 0xFFFF and not present(m, table, a, 1):
                        rr = fns[table](a, count=1, **unit())
                        assert rr.isError() and rr.exception_code == 2, (table, hex(a), rr)
