"""The "poller" section's checks (mbnode.pollconfig through mbnode.config, on CPython): defaults,
a checked section checks again unchanged, and one-line refusals naming the key, the value and
what is allowed."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from mbnode import config, pollbuild


def server(**kw):
    d = {"name": "s", "host": "127.0.0.1", "requests": [{"name": "r", "first": 1, "memory": 1}]}
    d.update(kw)
    return d


def section(servers=None, alarms=None, **kw):
    return {"poller": dict({"enabled": True, "servers": servers if servers is not None else [server()],
                            "alarms": alarms or []}, **kw)}


ALARM = {"server": "s", "request": "r", "value": 5, "output": {"address": 3}}
EXT = {"rtu": {"enabled": True, "mode": "master"}, "extension": {"modules": [{"unit": 2, "di": 4, "do": 4, "ai": 4}]}}


def test_defaults():
    cfg = config.validate(section())
    assert cfg["poller"]["servers"] == [{
        "name": "s", "enabled": True, "host": "127.0.0.1", "port": 502, "unit": 1, "timeout_ms": 5000,
        "period_ms": 1000, "delay_ms": 0, "always_reconnect": False, "reset_after": 1,
        "requests": [{"name": "r", "enabled": True, "function": 3, "type": "int16", "first": 1, "count": 1,
                      "byte_order": "BE", "memory": 1}]}]
    cfg = config.validate(section(alarms=[ALARM]))
    assert cfg["poller"]["alarms"] == [{
        "enabled": True, "server": "s", "request": "r", "index": 0, "condition": ">", "value": 5,
        "frequency": "every", "redundancy_s": 0, "output": {"table": "coil", "address": 3, "set": "on"}}]


def test_without_the_section_it_is_off_and_its_module_not_loaded():
    code = ("import sys; from mbnode import config; c = config.validate({}); "
            "print(c.get('poller'), 'mbnode.pollconfig' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "firmware", capture_output=True, text=True,
                         check=True).stdout
    assert out.split("\n")[0] == "None False"


FULL = {
    "rtu": {"enabled": True, "mode": "master"},
    "mqtt": {"enabled": True, "points": [{"name": "p1", "table": "holding", "address": 0}]},
    "poller": {"enabled": True, "servers": [
        server(name="tcp", port=1502, unit=0, timeout_ms=100, period_ms=10, delay_ms=999, always_reconnect=True,
               reset_after=0, requests=[
                   {"name": "a", "function": 4, "first": 65535, "count": 2, "type": "uint32",
                    "byte_order": "LE", "word_order": "LE", "table": "input", "address": "0x0040", "point": "a"},
                   {"name": "b", "function": 2, "first": 1, "count": 576, "table": "discrete", "address": 0,
                    "enabled": False},
                   {"name": "c", "first": 10, "count": 4, "type": "int8", "memory": 1017, "point": "c", "every_s": 60},
                   {"name": "d", "first": 10, "count": 125, "type": "ascii", "memory": 1},
                   {"name": "e", "first": 10, "count": 4, "type": "hex"},
                   {"name": "f", "first": 10, "count": 8, "type": "float64", "memory": 200}]),
        {"name": "line", "line": "rs485", "unit": 247, "requests": []}],
        "alarms": [
            {"name": "x", "server": "tcp", "request": "c", "index": 7, "condition": "<=", "value": -128,
             "frequency": "first", "redundancy_s": 86400,
             "write": {"server": "line", "function": 15, "first": 65536, "values": [1]},
             "output": {"table": "holding", "address": 0x40, "value": 65535},
             "mqtt": {"topic": "a/b", "message": "%mv%mi%ma%mn%mr%ut%ts%dn%an%n%%", "retain": True}},
            {"server": "tcp", "request": "d", "condition": "!=", "value": "text"},
            {"server": "tcp", "request": "e", "condition": "==", "value": "00ff00ff00ff00ff",
             "write": {"server": "tcp", "function": 16, "first": 1, "type": "float32", "value": 1e38,
                       "word_order": "LE"}},
        ]},
}
FULL["poller"]["alarms"][1]["output"] = {"address": 0x23F, "set": "invert"}


def test_a_checked_section_checks_again_unchanged():
    cfg = config.validate(json.loads(json.dumps(FULL)))
    again = config.validate(json.loads(json.dumps({k: cfg[k] for k in ("rtu", "mqtt", "poller")})))
    assert json.dumps(again["poller"], sort_keys=True) == json.dumps(cfg["poller"], sort_keys=True)
    assert cfg["poller"]["alarms"][2]["value"] == "00FF00FF00FF00FF"
    # RTU queue room: the RTU server's poll and the write an alarm makes to it.
    assert pollbuild.line_slots(cfg["poller"], "rs485") == 2
    assert pollbuild.line_slots(cfg["poller"], "rs485-2") == 0


@pytest.mark.parametrize("given, message", [
    (section(servers=[{"name": "s"}]),
     'poller.servers[0] = {"name": "s"}: allowed a server with either "host" (Modbus TCP) or "line" (Modbus RTU)'),
    (section(servers=[server(name="bad name")]),
     'poller.servers[0].name = "bad name": allowed 1..32 letters, digits, "_", "-" or "."'),
    (section(servers=[server(), server()]), 'poller.servers[1].name = "s": allowed a name no other server uses'),
    (section(servers=[server(hostt=1)]), "poller.servers[0].hostt = 1: unknown key; allowed keys: always_reconnect"),
    (section(servers=[server(unit=256)]), "poller.servers[0].unit = 256: allowed an integer 0..255"),
    (section(servers=[server(period_ms=5)]), "poller.servers[0].period_ms = 5: allowed an integer 10..86400000"),
    (section(servers=[server(delay_ms=1000)]), "poller.servers[0].delay_ms = 1000: allowed an integer 0..999"),
    (section(servers=[server(reset_after=11)]),
     "poller.servers[0].reset_after = 11: allowed an integer 0..10 (0: never)"),
    (section(servers=[{"name": "s", "line": "rs485"}]),
     'poller.servers[0].line = "rs485": no serial line in master mode has that name; allowed none: enable a line '
     '(rtu or rtu2) in master mode'),
    (dict(section(servers=[{"name": "s", "line": "bus2"}]), rtu={"enabled": True, "mode": "master"}),
     'poller.servers[0].line = "bus2": no serial line in master mode has that name; allowed "rs485"'),
    (dict(section(servers=[{"name": "s", "line": "rs485", "delay_ms": 5}]), rtu={"enabled": True, "mode": "master"}),
     'poller.servers[0].delay_ms = 5: allowed only for Modbus TCP servers (with "host")'),
    (dict(section(servers=[{"name": "s", "line": 5}]), rtu={"enabled": True, "mode": "master"}),
     'poller.servers[0].line = 5: allowed the name of a serial line in master mode (rtu.name or rtu2.name)'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "function": 5}])]),
     "poller.servers[0].requests[0].function = 5: allowed an integer 1..4"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "function": 1, "type": "int16"}])]),
     'poller.servers[0].requests[0].type = "int16": allowed "bool" for functions 1 and 2'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "type": "memory32"}])]),
     'poller.servers[0].requests[0].type = "memory32": allowed one of "int16"'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "count": 126}])]),
     "poller.servers[0].requests[0].count = 126: allowed an integer 1..125"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "function": 1, "count": 2001}])]),
     "poller.servers[0].requests[0].count = 2001: allowed an integer 1..2000"),
    (section(servers=[server(requests=[{"name": "r", "first": 65536, "count": 2}])]),
     "poller.servers[0].requests[0].count = 2: allowed at most 1 from register number 65536"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "count": 6, "type": "int64"}])]),
     "poller.servers[0].requests[0].count = 6: allowed a multiple of 4 (int64 takes 4 registers)"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "type": "uint16", "word_order": "LE"}])]),
     'poller.servers[0].requests[0].word_order = "LE": allowed only for 32- and 64-bit number types'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "type": "int8", "byte_order": "LE"}])]),
     'poller.servers[0].requests[0].byte_order = "LE": allowed only for 16-, 32- and 64-bit number types'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "count": 4, "type": "int8", "memory": 1018}])]),
     "poller.servers[0].requests[0].memory = 1018: allowed 1..1017 (the values take 8 positions)"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "function": 3, "table": "coil", "address": 0}])]),
     'poller.servers[0].requests[0].table = "coil": allowed one of "holding", "input"'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "count": 2, "table": "input", "address": 0x13F}])]),
     "poller.servers[0].requests[0].address = 319: allowed 0x0000-0x013E or 0x1000-0x17FE (2 registers)"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "function": 1, "count": 577, "table": "coil",
                                        "address": 0}])]),
     "poller.servers[0].requests[0].address = 0: allowed no address: 577 bits do not fit in table coil"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "every_s": 5}])]),
     'poller.servers[0].requests[0].every_s = 5: allowed only with "point"'),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "point": "p"}])]),
     'poller.servers[0].requests[0].point = "p": allowed only with mqtt.enabled true'),
    (dict(section(servers=[server(requests=[{"name": "r", "first": 1, "point": "p1"}])]),
          mqtt={"enabled": True, "points": [{"name": "p1", "table": "coil", "address": 0}]}),
     'poller.servers[0].requests[0].point = "p1": allowed a name no other point (poller or mqtt.points) uses'),
    (section(servers=[server(requests=[{"name": "r", "first": 1}, {"name": "r", "first": 2}])]),
     'poller.servers[0].requests[1].name = "r": allowed a name no other request of this server uses'),
    (dict(section(), channels={"holding_registers": [[0, 0x13F]]}),
     "poller.servers[0].requests[0].memory = 1: allowed positions present in channels.holding_registers"),
    (section(servers=[server(requests=[{"name": "r%d" % i, "first": 1, "memory": 1} for i in range(17)]),
                      server(name="t", requests=[{"name": "r%d" % i, "first": 1, "memory": 1} for i in range(16)])]),
     "poller.servers: 33 requests: allowed at most 32 over every server"),
    (section(alarms=[dict(ALARM, server="x")]), 'poller.alarms[0].server = "x": allowed the name of a server'),
    (section(alarms=[dict(ALARM, request="x")]), 'poller.alarms[0].request = "x": allowed the name of one of server s'),
    (section(alarms=[dict(ALARM, index=1)]), "poller.alarms[0].index = 1: allowed 0..0 (request r reads 1 value)"),
    (section(alarms=[dict(ALARM, condition="=>")]), 'poller.alarms[0].condition = "=>": allowed one of ">", "<", "=="'),
    (section(alarms=[dict(ALARM, value=1.5)]), "poller.alarms[0].value = 1.5: allowed an integer -32768..32767"),
    (section(alarms=[dict(ALARM, frequency="once")]), 'poller.alarms[0].frequency = "once": allowed one of "every", "first"'),
    (section(alarms=[dict(ALARM, redundancy_s=86401)]), "poller.alarms[0].redundancy_s = 86401: allowed an integer 0..86400"),
    (section(alarms=[{"server": "s", "request": "r", "value": 1}]),
     'allowed an alarm with at least one action: "write", "output" or "mqtt"'),
    (section(alarms=[{"server": "s", "request": "r", "output": {"address": 3}}]),
     "poller.alarms[0].value = null: allowed the value to compare with"),
    (section(alarms=[dict(ALARM, output={"address": 3, "value": 1})]),
     'poller.alarms[0].output.value = 1: allowed only for table "holding"'),
    (section(alarms=[dict(ALARM, output={"table": "holding", "address": 3, "value": 1024})]),
     "poller.alarms[0].output.value = 1024: allowed 0..1023 for onboard AO"),
    (dict(section(alarms=[ALARM]), channels={"coils": [[0, 2]]}),
     "poller.alarms[0].output.address = 3: allowed a channel present in channels.coils"),
    (section(alarms=[dict(ALARM, write={"server": "s", "function": 3, "first": 1, "values": [1]})]),
     "poller.alarms[0].write.function = 3: allowed one of 5, 6, 15, 16"),
    (section(alarms=[dict(ALARM, write={"server": "s", "function": 16, "first": 1, "values": [65536]})]),
     "poller.alarms[0].write.values = [65536]: allowed a list of 1..123 register values 0..65535 for function 16"),
    (section(alarms=[dict(ALARM, write={"server": "s", "function": 6, "first": 1, "type": "float32", "value": 1})]),
     'poller.alarms[0].write.type = "float32": allowed "int16" or "uint16" with function 6'),
    (section(alarms=[dict(ALARM, write={"server": "s", "function": 16, "first": 1, "type": "int16", "value": 1e9})]),
     "poller.alarms[0].write.value = 1000000000.0: allowed an integer -32768..32767"),
    (section(alarms=[dict(ALARM, write={"server": "s", "function": 16, "first": 65536, "values": [1, 2]})]),
     "poller.alarms[0].write.first = 65536: allowed at most 65535 for 2 values"),
    (section(alarms=[dict(ALARM, write={"server": "x", "function": 5, "first": 1, "values": [1]})]),
     'poller.alarms[0].write.server = "x": allowed the name of a server in poller.servers'),
    (section(servers=[server(), server(name="off", enabled=False)],
             alarms=[dict(ALARM, write={"server": "off", "function": 5, "first": 1, "values": [1]})]),
     'poller.alarms[0].write.server = "off": allowed an enabled server'),
    (section(alarms=[dict(ALARM, mqtt={"topic": "a/#"})]), 'poller.alarms[0].mqtt.topic = "a/#": allowed an MQTT topic'),
    (dict(section(alarms=[dict(ALARM, mqtt={"topic": "a", "message": "%x"})]), mqtt={"enabled": True}),
     'poller.alarms[0].mqtt.message = "%x": allowed %-codes: %mv, %mi, %ma, %mn, %mr, %ut, %ts, %dn, %an, %n, %%'),
    (section(alarms=[dict(ALARM, mqtt={"topic": "a"})]),
     "poller.alarms[0].mqtt: allowed only with mqtt.enabled true (the bridge publishes it)"),
    (section(servers=[server(requests=[{"name": "r", "first": 1, "type": "ascii", "count": 2}])],
             alarms=[dict(ALARM, condition=">", value="ab")]),
     'poller.alarms[0].condition = ">": allowed "==" or "!=" for ascii values'),
    ({"poller": {"enabled": True, "servers": [], "alarm": []}}, "poller.alarm = []: unknown key; allowed keys: alarms"),
    # The extension ranges belong to the extension modules when there are any (their polls and
    # writes fill them): a poller destination there would fight them.
    (dict(section(servers=[server(requests=[{"name": "r", "function": 4, "first": 1, "table": "input",
                                             "address": 0x40}])]), **EXT),
     "poller.servers[0].requests[0].address = 64: channels 0x0040-0x013F of channels.input_registers are "
     "extension modules'"),
    (dict(section(alarms=[dict(ALARM, output={"address": 0x41})]), **EXT),
     "poller.alarms[0].output.address = 65: channels 0x0040-0x023F of channels.coils are extension modules'"),
])
def test_refusals_name_key_value_and_what_is_allowed(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    text = str(e.value)
    assert text.startswith("config: ") and "\n" not in text
    assert message in text, text
