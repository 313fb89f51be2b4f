"""Configuration validation (the same module the firmware runs)."""

import json
import os
import subprocess
import sys

import pytest

from mbnode import config


def test_defaults_fill_everything():
    cfg = config.validate({})
    assert cfg["unit_id"] == 1
    assert cfg["tcp"] == {"enabled": True, "host": "0.0.0.0", "port": 502, "max_clients": 4,
                          "idle_timeout": 0, "persistent": True, "when_full": "refuse", "allow": [],
                          "unit_255": True}
    assert cfg["channels"]["coils"] == [(0, 0x23F)]
    assert cfg["channels"]["holding_registers"] == [(0, 0x13F), (0x1000, 0x17FF)]


@pytest.mark.parametrize("rtu, stopbits", [
    ({}, 1), ({"parity": "O"}, 1), ({"parity": "N"}, 2), ({"parity": "N", "stopbits": 1}, 1),
    ({"parity": "E", "stopbits": 2}, 2),
])
def test_rtu_defaults_follow_the_serial_line_spec(rtu, stopbits):
    cfg = config.validate({"rtu": rtu})["rtu"]
    assert (cfg["baud"], cfg["stopbits"], cfg["enabled"], cfg["early_reply"]) == (19200, stopbits, False, False)


def test_ranges_accept_lists_and_hex_text():
    cfg = config.validate({"channels": {"coils": [[0, 7], "0x0040-0x004F"]}})
    assert cfg["channels"]["coils"] == [(0, 7), (0x40, 0x4F)]


@pytest.mark.parametrize("given, message", [
    ({"tcp": {"port": 70000}}, "config: tcp.port = 70000: allowed an integer 0..65535"),
    ({"unit_id": 248}, "config: unit_id = 248: allowed an integer 0..247"),
    ({"unit_id": True}, "config: unit_id = true: allowed an integer 0..247"),
    ({"colis": []}, "config: colis = []: unknown key; allowed keys: board, channels, custom_block, extension, failsafe, gateway, identity, io, mqtt, poller, protect, retain, rtu, rtu2, system, tcp, unit_id"),
    ({"tcp": {"prot": 1}}, "config: tcp.prot = 1: unknown key"),
    ({"tcp": {"when_full": "drop"}}, 'allowed one of "refuse", "close_idlest"'),
    ({"tcp": {"allow": ["10.0.0"]}}, "config: tcp.allow"),
    ({"channels": {"coils": [[0, 0x240]]}}, "inside 0x0000-0x023F"),
    ({"channels": {"holding_registers": [[0x0FFF, 0x1000]]}}, "inside 0x0000-0x013F, 0x1000-0x17FF"),
    ({"channels": {"input_registers": [[5, 4]]}}, "config: channels.input_registers"),
    ({"identity": {"vendor_name": "x" * 101}}, "at most 100 characters"),
    ({"tcp": []}, "config: tcp = []: allowed a JSON object"),
    ({"board": {"pin": 1}}, "config: board.pin = 1: unknown key"),
    ({"rtu": {"parity": "X"}}, 'config: rtu.parity = "X": allowed one of "E", "N", "O"'),
    ({"rtu": {"baud": 0}}, "config: rtu.baud = 0: allowed an integer 300..4000000"),
    ({"rtu": {"stopbits": 3}}, "config: rtu.stopbits = 3: allowed one of null, 1, 2"),
    ({"rtu": {"enabled": True}, "unit_id": 0}, "config: unit_id = 0: allowed 1..247 when rtu.enabled is true"),
    ({"rtu": {"mode": "slaves"}}, 'config: rtu.mode = "slaves": allowed one of "slave", "master"'),
])
def test_bad_values_name_key_value_and_what_is_allowed(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert message in str(e.value)


def test_load_reports_bad_json(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{unit_id: 1}")
    with pytest.raises(config.ConfigError, match="is not valid JSON"):
        config.load(str(p))
    p.write_text(json.dumps({"unit_id": 0}))
    assert config.load(str(p))["unit_id"] == 0


# --- the mqtt section ---------------------------------------------------------------------------

def test_mqtt_is_off_by_default_and_fully_defaulted():
    assert config.validate({})["mqtt"] == {"enabled": False}
    assert config.validate({"mqtt": {}})["mqtt"] == {
        "enabled": False, "host": "127.0.0.1", "port": 1883, "client_id": "", "user": "", "password": "",
        "keepalive": 30, "clean_session": True, "qos": 0,
        "tls": {"enabled": False, "ca": "", "cert": "", "key": "", "insecure": False},
        "prefix": "", "request_topic": "request", "response_topic": "response", "root": "mbnode",
        "retain": False, "reconnect": {"initial_s": 1, "max_s": 30, "factor": 2}, "queue": 8, "parallel": 4, "max_message": 1536,
        "serial_devices": ["rs485"], "points": [], "discovery": False, "discovery_channels": True,
        "discovery_prefix": "homeassistant",
    }


def test_mqtt_schema_is_not_loaded_without_an_mqtt_section():
    """Without an "mqtt" section nothing of mbnode.mqtt is imported; with one, its checks are
    (mbnode.mqtt.config, and pointsconfig with points, which takes the types from
    mbnode.datatypes) but never the bridge's own modules, the points' runtime included."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys; from mbnode import config; config.validate({'rtu': {'enabled': True}}); "
            "print(sorted(m for m in sys.modules if m.startswith('mbnode.mqtt'))); "
            "config.validate({'mqtt': {}}); print(sorted(m for m in sys.modules if m.startswith('mbnode.mqtt'))); "
            "config.validate({'mqtt': {'points': [{'name': 'p', 'table': 'coil', 'address': 0}]}}); "
            "print(sorted(m for m in sys.modules if m.startswith('mbnode.mqtt')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "firmware", capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.splitlines() == [
        "[]", "['mbnode.mqtt', 'mbnode.mqtt.config']",
        "['mbnode.mqtt', 'mbnode.mqtt.config', 'mbnode.mqtt.pointsconfig']"], out.stderr


def test_mqtt_port_0_follows_tls():
    tls = {"enabled": True, "ca": "/ca.pem"}
    assert config.validate({"mqtt": {"tls": tls}})["mqtt"]["port"] == 8883
    assert config.validate({"mqtt": {"port": 0}})["mqtt"]["port"] == 1883
    assert config.validate({"mqtt": {"port": 1884, "tls": tls}})["mqtt"]["port"] == 1884


def test_mqtt_full_configuration_is_accepted_and_stable():
    given = {"mqtt": {
        "enabled": True, "host": "broker.example.com", "client_id": "node-7", "user": "u", "password": "p",
        "qos": 1, "tls": {"enabled": True, "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"},
        "prefix": "site/7", "root": "plant/line1", "serial_devices": ["rs485", "bus-2"],
        "points": [
            {"name": "temp", "table": "input", "address": 0, "type": "int16", "deadband": 0.5},
            {"name": "flow", "table": "holding", "address": "0x0040", "type": "float32", "word_order": "LE",
             "every_s": 10, "retain": True},
            {"name": "total", "table": "memory", "position": 1, "signed": True, "on_change": False, "every_s": 60},
            {"name": "run", "table": "coil", "address": 0},
            {"name": "tag", "table": "holding", "address": 0x1000, "type": "ascii", "count": 4},
        ],
    }}
    cfg = config.validate(given)
    assert cfg["mqtt"]["points"][1] == {
        "name": "flow", "table": "holding", "type": "float32", "address": 0x40, "byte_order": "BE",
        "word_order": "LE", "on_change": True, "deadband": 0, "every_s": 10, "retain": True}
    again = config.validate(json.loads(json.dumps({"mqtt": cfg["mqtt"]})))
    assert again["mqtt"] == cfg["mqtt"]


def test_mqtt_password_is_never_shown():
    with pytest.raises(config.ConfigError) as e:
        config.validate({"mqtt": {"user": "u", "password": "s3cr\u00e9t"}})
    assert str(e.value) == ("config: mqtt.password = (not shown): allowed printable ASCII text of at "
                            "most 100 characters")


POINT = {"name": "p", "table": "holding", "address": 64}


def with_point(**kw):
    d = dict(POINT)
    d.update(kw)
    return {"mqtt": {"points": [d]}}


@pytest.mark.parametrize("given, message", [
    ({"mqtt": {"qos": 2}}, "config: mqtt.qos = 2: allowed 0 or 1 (umqtt.simple cannot do QoS 2)"),
    ({"mqtt": {"qos": True}}, "config: mqtt.qos = true: allowed 0 or 1 (umqtt.simple cannot do QoS 2)"),
    ({"mqtt": {"port": 65536}}, "config: mqtt.port = 65536: allowed an integer 0..65535"),
    ({"mqtt": {"host": "bad host"}},
     'config: mqtt.host = "bad host": allowed an IPv4 address or a hostname such as "broker.example.com"'),
    ({"mqtt": {"host": "-x.example"}},
     'config: mqtt.host = "-x.example": allowed an IPv4 address or a hostname such as "broker.example.com"'),
    ({"mqtt": {"keepalive": -1}}, "config: mqtt.keepalive = -1: allowed an integer 0..65535"),
    ({"mqtt": {"request_topic": "a/+/b"}},
     'config: mqtt.request_topic = "a/+/b": allowed an MQTT topic of printable ASCII without spaces, "+" '
     'or "#", empty levels or a leading "$", at most 100 characters'),
    ({"mqtt": {"response_topic": ""}}, 'config: mqtt.response_topic = "": allowed an MQTT topic'),
    ({"mqtt": {"root": "a//b"}}, 'config: mqtt.root = "a//b": allowed an MQTT topic'),
    ({"mqtt": {"root": "$SYS/x"}}, 'config: mqtt.root = "$SYS/x": allowed an MQTT topic'),
    ({"mqtt": {"prefix": "site/"}},
     'config: mqtt.prefix = "site/": allowed an MQTT topic of printable ASCII without spaces, "+" or "#", '
     'empty levels or a leading "$", at most 100 characters or "" (none)'),
    ({"mqtt": {"queue": 0}}, "config: mqtt.queue = 0: allowed an integer 1..32"),
    ({"mqtt": {"max_message": 127}}, "config: mqtt.max_message = 127: allowed an integer 128..8192"),
    ({"mqtt": {"max_message": 65536}}, "config: mqtt.max_message = 65536: allowed an integer 128..8192"),
    ({"mqtt": {"max_message": "4K"}}, "config: mqtt.max_message = \"4K\": allowed an integer 128..8192"),
    ({"mqtt": {"serial_devices": ["rs485", "rs485"]}},
     'config: mqtt.serial_devices = ["rs485", "rs485"]: allowed a list of at most 8 different names of 1..32 '
     'printable characters without spaces'),
    ({"mqtt": {"serial_devices": ["rs 485"]}}, "config: mqtt.serial_devices = [\"rs 485\"]: allowed a list"),
    ({"mqtt": {"reconnect": {"factor": 0}}}, "config: mqtt.reconnect.factor = 0: allowed an integer 1..10"),
    ({"mqtt": {"reconnect": {"initial_s": 60, "max_s": 10}}},
     "config: mqtt.reconnect.max_s = 10: allowed 60..3600 (at least reconnect.initial_s)"),
    ({"mqtt": {"tls": {"cert": "/c.pem"}}},
     'config: mqtt.tls.key = "": allowed a file name when tls.cert is set (a client certificate needs its key)'),
    ({"mqtt": {"tls": {"key": "/k.pem"}}},
     'config: mqtt.tls.cert = "": allowed a file name when tls.key is set (a client certificate needs its key)'),
    ({"mqtt": {"password": "p"}},
     'config: mqtt.user = "": allowed a user name when mqtt.password is set (MQTT sends no password without a '
     'user name)'),
    ({"mqtt": {"tls": {"insecure": "yes"}}}, 'config: mqtt.tls.insecure = "yes": allowed true or false'),
    ({"mqtt": {"tls": {"enabled": True}}},
     'config: mqtt.tls.ca = "": allowed a CA file name when tls.insecure is false (the broker\'s certificate is '
     'checked against it)'),
    ({"mqtt": {"brokr": "x"}}, 'config: mqtt.brokr = "x": unknown key'),
    ({"mqtt": {"discovery": 1}}, "config: mqtt.discovery = 1: allowed true or false"),
    ({"mqtt": {"discovery": True, "discovery_channels": False}},
     "config: mqtt.discovery = true: allowed only with mqtt.points or onboard channels and mqtt.discovery_channels "
     "(the points are what Home Assistant is told about)"),
    ({"mqtt": {"discovery_channels": 0}}, "config: mqtt.discovery_channels = 0: allowed true or false"),
    ({"mqtt": {"discovery_prefix": ""}}, 'config: mqtt.discovery_prefix = "": allowed an MQTT topic'),
    ({"mqtt": {"discovery_prefix": "ha/#"}}, 'config: mqtt.discovery_prefix = "ha/#": allowed an MQTT topic'),
    ({"mqtt": {"points": {}}}, "config: mqtt.points = {}: allowed a list of at most 64 point objects"),
    ({"mqtt": {"points": [POINT] * 65}}, "allowed a list of at most 64 point objects"),
    ({"mqtt": {"points": [5]}}, "config: mqtt.points[0] = 5: allowed a JSON object"),
    ({"mqtt": {"points": [POINT, POINT]}}, 'config: mqtt.points[1].name = "p": allowed a name no other point uses'),
    (with_point(name="a/b"),
     'config: mqtt.points[0].name = "a/b": allowed 1..32 letters, digits, "_", "-" or "." ("status" is reserved)'),
    (with_point(name="status"), 'config: mqtt.points[0].name = "status": allowed 1..32 letters'),
    (with_point(name=None), "config: mqtt.points[0].name = null: allowed 1..32 letters"),
    (with_point(table="holdings"),
     'config: mqtt.points[0].table = "holdings": allowed one of "coil", "discrete", "input", "holding", "memory"'),
    (with_point(address=0x140), "config: mqtt.points[0].address = 320: allowed 0x0000-0x013F or 0x1000-0x17FF"),
    (with_point(address=0x17FE, type="float64"),
     "config: mqtt.points[0].address = 6142: allowed 0x0000-0x013C or 0x1000-0x17FC (float64 takes 4 registers)"),
    (with_point(address="0x40x"), 'config: mqtt.points[0].address = "0x40x": allowed 0x0000-0x013F or 0x1000-0x17FF'),
    (with_point(table="coil", address=0x240), "config: mqtt.points[0].address = 576: allowed 0x0000-0x023F"),
    (with_point(table="coil", type="int16"), 'config: mqtt.points[0].type = "int16": allowed one of "bool" for a coil'),
    (with_point(type="bool"), 'config: mqtt.points[0].type = "bool": allowed one of "int16", "uint16", "int32", '
                              '"uint32", "float32", "int64", "uint64", "float64", "memory32", "ascii" for holding '
                              'registers'),
    (with_point(type="int32BE"), 'config: mqtt.points[0].type = "int32BE": allowed one of "int16"'),
    (with_point(type="int32", byte_order="big"), 'config: mqtt.points[0].byte_order = "big": allowed "BE" or "LE"'),
    (with_point(type="int16", word_order="LE"),
     'config: mqtt.points[0].word_order = "LE": allowed only for 32- and 64-bit number types'),
    (with_point(type="ascii"), "config: mqtt.points[0].count = null: allowed an integer 1..125 (registers of 2 "
                               "characters)"),
    (with_point(type="ascii", count=126), "config: mqtt.points[0].count = 126: allowed an integer 1..125"),
    (with_point(count=2), 'config: mqtt.points[0].count = 2: allowed only for type "ascii"'),
    (with_point(signed=True), 'config: mqtt.points[0].signed = true: allowed only for type "memory32"'),
    (with_point(deadband=-1), "config: mqtt.points[0].deadband = -1: allowed a number >= 0"),
    (with_point(deadband="1"), 'config: mqtt.points[0].deadband = "1": allowed a number >= 0'),
    (with_point(table="coil", address=0, deadband=1),
     "config: mqtt.points[0].deadband = 1: allowed only for number types"),
    (with_point(every_s=-1), "config: mqtt.points[0].every_s = -1: allowed an integer 0..86400 (seconds; 0 = off)"),
    (with_point(on_change=False),
     "config: mqtt.points[0].on_change = false: allowed true when every_s is 0 (a point needs a publish policy)"),
    (with_point(retain="yes"), 'config: mqtt.points[0].retain = "yes": allowed null (mqtt.retain), true or false'),
    (with_point(adress=1), "config: mqtt.points[0].adress = 1: unknown key; allowed keys: address, byte_order"),
    ({"mqtt": {"points": [{"name": "m", "table": "memory", "position": 1025}]}},
     "config: mqtt.points[0].position = 1025: allowed an integer 1..1024"),
    ({"mqtt": {"points": [{"name": "m", "table": "memory", "address": 0x1000}]}},
     'config: mqtt.points[0].address = 4096: allowed only for tables other than "memory" (use position)'),
    ({"mqtt": {"points": [{"name": "m", "table": "memory", "position": 1, "type": "float32"}]}},
     'config: mqtt.points[0].type = "float32": allowed one of "memory32" for a memory position'),
    (with_point(position=1), 'config: mqtt.points[0].position = 1: allowed only for table "memory"'),
    ({"channels": {"holding_registers": [[0, 0x3F]]}, "mqtt": {"points": [POINT]}},
     "config: mqtt.points[0].address = 64: allowed a channel present in channels.holding_registers "
     "(0x0040-0x0040 is not)"),
    ({"channels": {"holding_registers": [[0, 0x41]]}, "mqtt": {"points": [dict(POINT, type="float64")]}},
     "config: mqtt.points[0].address = 64: allowed a channel present in channels.holding_registers "
     "(0x0040-0x0043 is not)"),
    ({"channels": {"holding_registers": [[0, 0x13F]]}, "mqtt": {"points": [{"name": "m", "table": "memory",
                                                                            "position": 2}]}},
     "config: mqtt.points[0].position = 2: allowed a channel present in channels.holding_registers "
     "(0x1002-0x1003 is not)"),
])
def test_mqtt_bad_values(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert message in str(e.value)


def test_points_are_normalised_and_check_again_unchanged():
    cfg = config.validate({"mqtt": {"points": [
        {"name": "t", "table": "holding", "address": "0x1000", "type": "int32"},
        {"name": "m", "table": "memory", "position": 9},
        {"name": "c", "table": "coil", "address": 0, "retain": True},
        {"name": "s", "table": "input", "address": 0x13E, "type": "ascii", "count": 2},
        {"name": "w", "table": "input", "address": 5, "type": "int16", "byte_order": "LE"},
    ]}})
    t, m, c, s, w = cfg["mqtt"]["points"]
    assert t == {"name": "t", "table": "holding", "type": "int32", "address": 0x1000, "byte_order": "BE",
                 "word_order": "BE", "on_change": True, "deadband": 0, "every_s": 0, "retain": None}
    assert m == {"name": "m", "table": "memory", "type": "memory32", "position": 9, "signed": False,
                 "on_change": True, "deadband": 0, "every_s": 0, "retain": None}
    assert c == {"name": "c", "table": "coil", "type": "bool", "address": 0, "on_change": True,
                 "every_s": 0, "retain": True}
    assert s == {"name": "s", "table": "input", "type": "ascii", "count": 2, "address": 0x13E,
                 "on_change": True, "every_s": 0, "retain": None}
    assert w["byte_order"] == "LE" and "word_order" not in w
    assert config.validate(json.loads(json.dumps({"mqtt": cfg["mqtt"]})))["mqtt"] == cfg["mqtt"]


def test_master_mode_frees_the_unit_id_rule():
    # The port is no slave then: unit_id (0 = any) only concerns Modbus TCP and the local answers.
    cfg = config.validate({"unit_id": 0, "rtu": {"enabled": True, "mode": "master"}, "mqtt": {"enabled": True}})
    assert cfg["rtu"]["mode"] == "master" and cfg["unit_id"] == 0


# --- a board's default configuration as the base -----------------------------------------------

def test_a_board_base_is_overridden_key_by_key():
    base = {"rtu": {"enabled": True}, "tcp": {"enabled": False}, "identity": {"model_name": "X"}}
    cfg = config.validate({"rtu": {"baud": 9600}, "identity": {"vendor_name": "me"}}, None, base)
    assert (cfg["rtu"]["enabled"], cfg["rtu"]["baud"], cfg["tcp"]["enabled"]) == (True, 9600, False)
    assert (cfg["identity"]["model_name"], cfg["identity"]["vendor_name"]) == ("X", "me")
    assert config.validate({"rtu": {"enabled": False}}, None, base)["rtu"]["enabled"] is False
    # The base counts for cross-key rules too: unit 0 with the board's RTU on.
    with pytest.raises(config.ConfigError, match="unit_id = 0: allowed 1..247 when rtu.enabled is true"):
        config.validate({"unit_id": 0}, None, base)


def test_a_board_check_has_the_last_word():
    def check(cfg):
        return "config: board says no" if cfg["unit_id"] == 7 else None

    assert config.validate({"unit_id": 6}, None, None, check)["unit_id"] == 6
    with pytest.raises(config.ConfigError, match="^config: board says no$"):
        config.validate({"unit_id": 7}, None, None, check)


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match="^config: .*nothere.json not found$"):
        config.load(str(tmp_path / "nothere.json"))


@pytest.mark.parametrize("text", ['{"unit_id": 7,', '{"unit_id": 7, "rtu": {"baud": 9600}',
                                  '{"identity": {"device_name": "a } ] b"'])
def test_a_file_cut_short_is_refused_on_micropython_too(tmp_path, text):
    """MicroPython's json loads '{"unit_id": 7,' as {"unit_id": 7}: a config.json written half-way
    (power lost) must not pass for a shorter configuration, on the board as on CPython."""
    from conftest import ROOT, micropython_or_fail

    f = tmp_path / "config.json"
    f.write_text(text)
    want = "config: %s is not valid JSON: it ends before its last closing bracket" % f
    with pytest.raises(config.ConfigError) as e:
        config.load(str(f))
    assert str(e.value) == want
    script = "from mbnode import config\ntry:\n    config.load(%r)\nexcept config.ConfigError as e:\n    print(e)\n" % str(f)
    r = subprocess.run([micropython_or_fail(32), "-c", script], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, MICROPYPATH=str(ROOT / "firmware")))
    assert r.stdout.strip() == want, r.stdout + r.stderr


def test_brackets_inside_strings_do_not_count(tmp_path):
    f = tmp_path / "config.json"
    f.write_text('{"identity": {"device_name": "pump {7} \\" ]"}}')
    assert config.load(str(f))["identity"]["device_name"] == 'pump {7} " ]'


# --- the protect section (write protection, mbnode.protectconfig) --------------------------------

def test_protect_is_absent_without_its_section_and_its_module_not_loaded():
    code = ("import sys; from mbnode import config; c = config.validate({}); "
            "print(c.get('protect'), 'mbnode.protectconfig' in sys.modules, 'mbnode.protect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(os.path.dirname(__file__), "..", "firmware"),
                         capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "None False False"


def test_protect_defaults_and_ranges():
    cfg = config.validate({"protect": {}})["protect"]
    assert cfg == {"read_only": {"coils": [], "holding_registers": []},
                   "trusted_only": {"coils": [], "holding_registers": []},
                   "trusted_clients": [], "rtu_trusted": False, "mqtt_trusted": False}
    given = {"read_only": {"coils": ["0x0000-0x023F"], "holding_registers": [[0x1000, 0x17FF], "0x2100-0x2100"]},
             "trusted_only": {"holding_registers": ["0-63", [0xFFFF, 0xFFFF]]},
             "trusted_clients": ["192.168.1.10"], "mqtt_trusted": True}
    cfg = config.validate({"protect": given})["protect"]
    assert cfg["read_only"] == {"coils": [[0, 0x23F]], "holding_registers": [[0x1000, 0x17FF], [0x2100, 0x2100]]}
    assert cfg["trusted_only"] == {"coils": [], "holding_registers": [[0, 63], [0xFFFF, 0xFFFF]]}
    assert config.validate({"protect": cfg})["protect"] == cfg  # a checked section checks again unchanged


@pytest.mark.parametrize("given, message", [
    ({"protect": []}, "config: protect = []: allowed a JSON object"),
    ({"protect": {"read_only": {"coils": [[0, 0x240]]}}},
     'config: protect.read_only.coils = [[0, 576]]: allowed a list of [first, last] or "0xFIRST-0xLAST" ranges '
     'inside 0x0000-0x023F'),
    ({"protect": {"read_only": {"holding_registers": [[0, 0x10000]]}}}, "inside 0x0000-0xFFFF"),
    ({"protect": {"read_only": {"holding_registers": ["0x20-0x1F"]}}}, "config: protect.read_only.holding_registers"),
    ({"protect": {"read_only": {"holding_registers": ["0b1-0b11"]}}}, "config: protect.read_only.holding_registers"),
    ({"protect": {"read_only": {"holding_registers": [[0, True]]}}}, "config: protect.read_only.holding_registers"),
    ({"protect": {"read_only": {"holding_registers": "0-1"}}}, "config: protect.read_only.holding_registers = \"0-1\""),
    ({"protect": {"read_only": {"input_registers": []}}},
     "config: protect.read_only.input_registers = []: unknown key; allowed keys: coils, holding_registers"),
    ({"protect": {"trusted_clients": ["10.0.0"]}}, "config: protect.trusted_clients = [\"10.0.0\"]"),
    ({"protect": {"rtu_trusted": 1}}, "config: protect.rtu_trusted = 1: allowed true or false"),
    ({"protect": {"trusted_only": {"coils": [[0, 1]]}}},
     "config: protect.trusted_clients = []: nobody could write protect.trusted_only; allowed at least one IPv4 "
     "address, or rtu_trusted or mqtt_trusted true (or use read_only)"),
])
def test_protect_refusals(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert message in str(e.value)


@pytest.mark.parametrize("trust", [{"trusted_clients": ["10.0.0.1"]}, {"rtu_trusted": True}, {"mqtt_trusted": True}])
def test_protect_trusted_only_needs_someone_trusted(trust):
    p = dict({"trusted_only": {"coils": [[0, 1]]}}, **trust)
    assert config.validate({"protect": p})["protect"]["trusted_only"]["coils"] == [[0, 1]]
