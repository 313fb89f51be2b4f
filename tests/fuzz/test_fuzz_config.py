"""Configuration validation under mutated configurations (CPython; the same source the boards run).

An independent reading of docs/configuration.md (the SPEC below, written out here, not taken from
mbnode.config) says which configurations are valid. Invariants:

- validate() accepts exactly the configurations the documentation allows: the right JSON type
  (true is not 1, 1.0 is not 1), the documented ranges, choices, texts, addresses and channel
  ranges, and the rules between keys;
- a refusal is a ConfigError of one short line that names a key the documentation refuses;
- an accepted configuration holds the given values, defaults elsewhere, and is a fixed point:
  validating its JSON again gives the same configuration;
- load() of any file (the JSON of a mutated configuration with an MQTT section, then bytes
  inserted, deleted or replaced, a byte order mark, the file cut short) gives a configuration
  or one `config: FILE...` line, never another exception.
"""

import copy
import json
import os
import re
import tempfile

from hypothesis import example, given
from hypothesis import strategies as st

import configfuzz
import fuzzing
from mbnode import config
from mbnode.config import ConfigError

PROPERTY = fuzzing.per_target(2)  # this target's properties share `make fuzz`'s inputs

BOARD_SCHEMA = {  # the unix board's section (boards/unix/board.py), as docs/simulator.md describes it
    "io": ("", "host_port", "empty allowed"),
    "rtu_device": ("/dev/ttyUSB0", "text", 200),
    "rtu_peer": ("", "text", 200),
    "rtu2_device": ("", "text", 200),
    "rtu2_peer": ("", "text", 200),
}

# ---- the documentation, written out independently -------------------------------------------

_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\Z")
_NUMBER = re.compile(r"\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*\Z")


def is_int(v, lo, hi):
    return type(v) is int and lo <= v <= hi


def is_bool(v):
    return type(v) is bool


def ipv4(v):
    m = type(v) is str and _IPV4.match(v)
    return bool(m) and all(int(g) <= 255 for g in m.groups())


def host(v):
    return ipv4(v) or v == "localhost"


def host_port(v):
    if v == "":
        return True
    if type(v) is not str or ":" not in v:
        return False
    h, p = v.rsplit(":", 1)
    return host(h) and re.fullmatch("[0-9]+", p) is not None and int(p) <= 65535


def text(n):
    return lambda v: type(v) is str and len(v) <= n and all(" " <= c <= "~" for c in v)


def choice(*options):
    return lambda v: any(type(v) is type(o) and v == o for o in options)


def number(s):
    m = _NUMBER.match(s)
    return None if not m else int(m.group(1), 16) if m.group(1)[:2] in ("0x", "0X") else int(m.group(1))


BITS = [(0, 0x23F)]
REGS = [(0, 0x13F), (0x1000, 0x17FF)]


def ranges(areas):
    def ok(v):
        if type(v) is not list:
            return False
        for item in v:
            if type(item) is list and len(item) == 2 and all(type(x) is int for x in item):
                first, last = item
            elif type(item) is str and item.count("-") == 1:
                first, last = (number(s) for s in item.split("-"))
                if first is None or last is None:
                    return False
            else:
                return False
            if not (first <= last and any(lo <= first and last <= hi for lo, hi in areas)):
                return False
        return True
    return ok


# docs/configuration.md: a serial line (rtu, rtu2); a name is 1..16 ASCII letters, digits, - or _.
LINE = {
    "enabled": is_bool, "mode": choice("slave", "master"), "name": lambda v: type(v) is str and bool(
        re.fullmatch("[A-Za-z0-9_-]{1,16}", v)), "baud": lambda v: is_int(v, 300, 4000000),
    "parity": choice("E", "N", "O"), "stopbits": lambda v: v is None or choice(1, 2)(v), "early_reply": is_bool,
}
LINE_DEFAULTS = {"rtu": {"enabled": False, "mode": "slave", "name": "rs485"},
                 "rtu2": {"enabled": False, "mode": "master", "name": "rs485-2"}}

SPEC = {
    "unit_id": lambda v: is_int(v, 0, 247),
    "tcp": {
        "enabled": is_bool, "host": host, "port": lambda v: is_int(v, 0, 65535),
        "max_clients": lambda v: is_int(v, 1, 16), "idle_timeout": lambda v: is_int(v, 0, 86400),
        "persistent": is_bool, "when_full": choice("refuse", "close_idlest"),
        "allow": lambda v: type(v) is list and all(ipv4(a) for a in v), "unit_255": is_bool,
    },
    "rtu": LINE,
    "rtu2": LINE,
    "gateway": {
        "enabled": is_bool, "units": lambda v: type(v) is list and all(is_int(u, 1, 255) for u in v),
        "timeout_ms": lambda v: is_int(v, 10, 60000), "broadcast": is_bool,
        "line": lambda v: type(v) is str and len(v) <= 16,
    },
    "channels": {"coils": ranges(BITS), "discrete_inputs": ranges(BITS),
                 "holding_registers": ranges(REGS), "input_registers": ranges(REGS)},
    "identity": {k: text(100) for k in ("vendor_name", "product_code", "revision", "vendor_url", "product_name",
                                        "model_name", "user_application_name", "device_name")},
    "board": {"io": host_port, "rtu_device": text(200), "rtu_peer": text(200), "rtu2_device": text(200),
              "rtu2_peer": text(200)},
    # "Write protection": coils inside the coil map, holding registers anywhere 0x0000-0xFFFF.
    "protect": {
        "read_only": {"coils": ranges(BITS), "holding_registers": ranges([(0, 0xFFFF)])},
        "trusted_only": {"coils": ranges(BITS), "holding_registers": ranges([(0, 0xFFFF)])},
        "trusted_clients": lambda v: type(v) is list and all(ipv4(a) for a in v),
        "rtu_trusted": is_bool, "mqtt_trusted": is_bool,
    },
}


def shown(key):
    """A key as the messages name it: as it is when a plain name, else its JSON text: whole when
    that is at most 42 characters with its quotes, else the escapes that fit in 41 and '..."'."""
    if re.fullmatch("[A-Za-z0-9_]{1,40}", key):
        return key
    text = json.dumps(key)
    if len(text) <= 42:
        return text
    out = '"'
    for token in re.findall(r'\\u[0-9a-f]{4}|\\.|[^\\]', text[1:-1]):
        if len(out) + len(token) > 41:
            break
        out += token
    return out + '..."'


def refusals(given):
    """The keys the documentation refuses in `given` (a configuration without "mqtt"): a set of
    key paths as the error messages name them; empty when it is valid."""
    if type(given) is not dict:
        return {"(top level)"}
    bad = set()
    for key, v in given.items():
        rule = SPEC.get(key)
        if rule is None:
            bad.add(shown(key))
        else:
            _refused(rule, v, key, bad)
    unit = given.get("unit_id", 1)
    for key in ("rtu", "rtu2"):
        rtu = given.get(key, {})
        if type(rtu) is dict and rtu.get("enabled") is True and rtu.get("mode", LINE_DEFAULTS[key]["mode"]) == "slave" \
                and type(unit) is int and not 1 <= unit <= 247:
            bad.add("unit_id")  # 0 (any unit) is for Modbus TCP only: a refusal whatever else is wrong
    if bad:
        return bad
    return _across(given)


def _refused(rule, v, name, bad):
    """Adds to bad the keys under `name` that `rule` (a check, or an object of rules) refuses."""
    if type(rule) is not dict:
        if not rule(v):
            bad.add(name)
    elif type(v) is not dict:
        bad.add(name)
    else:
        for k, x in v.items():
            if k not in rule:
                bad.add(name + "." + shown(k))
            else:
                _refused(rule[k], x, name + "." + shown(k), bad)


def _across(given):
    """The rules between sections (docs/configuration.md, docs/master.md), for a configuration
    whose every key is valid on its own."""
    bad = set()
    lines = {}
    for key in ("rtu", "rtu2"):
        line = dict(LINE_DEFAULTS[key], **given.get(key, {}))
        if line["enabled"] is True:
            lines[key] = line
    if "rtu" in lines and "rtu2" in lines:
        if lines["rtu"]["mode"] == lines["rtu2"]["mode"] == "slave":
            bad.add("rtu2.mode")  # one slave line
        if lines["rtu"]["name"] == lines["rtu2"]["name"]:
            bad.add("rtu2.name")
    gw = given.get("gateway", {})
    if gw.get("enabled") is True:
        tcp = given.get("tcp", {})
        masters = [line["name"] for line in lines.values() if line["mode"] == "master"]
        unit = given.get("unit_id", 1)
        own = [unit] + ([255] if tcp.get("unit_255", True) else [])
        units = gw.get("units", [])
        if tcp.get("enabled", True) is not True or (not gw.get("line") and not masters):
            bad.add("gateway.enabled")
        if gw.get("line") and gw["line"] not in masters:
            bad.add("gateway.line")
        if any(u in own for u in units) or (not units and unit == 0):
            bad.add("gateway.units")
    p = given.get("protect", {})
    if any(p.get("trusted_only", {}).values()) and not (
            p.get("trusted_clients") or p.get("rtu_trusted") is True or p.get("mqtt_trusted") is True):
        bad.add("protect.trusted_clients")  # trusted-only ranges that nobody could write
    return bad


# ---- the mutations ---------------------------------------------------------------------------

EDGES = [0, 1, 2, -1, 16, 17, 247, 248, 255, 256, 299, 300, 502, 65535, 65536, 86400, 86401, 4000000, 4000001,
         2 ** 31, 2 ** 64, True, False, None, 1.0, 0.0, 2.0, 1e300, "", "E", "e", "N", "O", "slave", "master",
         "refuse", "close_idlest", "0.0.0.0", "127.0.0.1", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.5",
         "localhost", "LOCALHOST", " 1.2.3.4", "01.002.3.4", "1.2.3.4444", "\u0661.1.1.1", "127.0.0.1:5021",
         "127.0.0.1:65536", "localhost:0", "127.0.0.1:", ":5020", "127.0.0.1:\u0665", "caf\u00e9", "tab\there",
         "~" * 100, "~" * 101, "x" * 201, [], [0], [[0, 15]], [[15, 0]], [[0, 0x23F]], [[0, 0x240]],
         [[0x1000, 0x17FF]], [[0x13F, 0x1000]], ["0x0000-0x003F"], ["0-63"], [" 0x10 - 0x1F "], ["0x10-"],
         ["1-2-3"], ["0b1-0b11"], ["+1-2"], ["1_0-20"], ["\u0661-2"], ["0x-1"], [[True, 5]], [[0, 1.0]], [[0, 1, 2]],
         ["127.0.0.1"], ["1.2.3.400"], [["127.0.0.1"]], {}, {"a": 1}, [[[]]], "rs485", "rs485-2", "a b",
         "x" * 16, "x" * 17, [1], [255], [0], [17, 18], [True], 10, 9, 60000, 60001,
         {"coils": [[0, 15]]}, {"coils": [[0, 0x240]]}, {"holding_registers": ["0x2100-0x2101", [0, 0xFFFF]]},
         {"holding_registers": [[0, 0x10000]]}, {"input_registers": []}, {"coils": []}]
KEYS = {section: list(rule) if type(rule) is dict else [] for section, rule in SPEC.items()}
UNKNOWN = ["colis", "Port", "tcp_port", "unitid", "x", "enabled2"]

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
VALUES = st.one_of(st.sampled_from(EDGES), st.sampled_from(EDGES), JSONISH).map(copy.deepcopy)  # never shared


@st.composite
def configurations(draw):
    """A configuration of the documented shape with a few keys set to edge or random values,
    sometimes an unknown key or a section that is not an object."""
    cfg = {}
    for _ in range(draw(st.integers(1, 6))):
        section = draw(st.sampled_from(sorted(SPEC) + ["?"]))
        if section == "?":
            cfg[draw(st.sampled_from(UNKNOWN))] = draw(VALUES)
            continue
        if not KEYS[section]:
            cfg[section] = draw(VALUES)
            continue
        what = draw(st.integers(0, 20))
        if what == 0:
            cfg[section] = draw(VALUES)  # a section that may not be an object
            continue
        part = cfg.setdefault(section, {})
        if type(part) is not dict:
            continue
        key = draw(st.sampled_from(KEYS[section])) if what > 1 else draw(st.sampled_from(UNKNOWN))
        part[key] = draw(VALUES)
    return cfg


LONGEST = 700  # characters of a message besides the file name: the value and keys are quoted
# bounded (mbnode/quote.py: 60 characters of JSON text per text, 3 levels), the allowed keys of
# the largest section (mqtt) take 230


def one_line(message, path=""):
    return message.startswith("config: ") and "\n" not in message and len(message) - len(path) <= LONGEST


# What the long pass found (docs/reliability.md), kept as fixed examples.
@example({"rtu": {"stopbits": 1.0}})
@example({"rtu": {"stopbits": True}})
@example({"channels": {"coils": ["0b1-0b11"]}})
@example({"channels": {"coils": ["1_0-20"]}})
@example({"channels": {"coils": ["+1-2"]}})
@example({"tcp": {"host": "\u0661.1.1.1"}})
@example({"board": {"io": "127.0.0.1:\u0665"}})
@example({"rtu": {"enabled": True}, "board": 0, "unit_id": 0})  # two refusals: either may be named
# The rules between sections since the serial lines and the TCP-to-RTU gateway (issue 11).
@example({"gateway": {"enabled": True}})
@example({"gateway": {"enabled": True}, "rtu": {"enabled": True, "mode": "master"}})
@example({"gateway": {"enabled": True, "units": [1]}, "rtu": {"enabled": True, "mode": "master"}})
@example({"gateway": {"enabled": True, "units": [255]}, "rtu2": {"enabled": True}, "tcp": {"unit_255": False}})
@example({"gateway": {"enabled": True, "line": "x"}, "rtu2": {"enabled": True}})
@example({"gateway": {"enabled": True, "line": "rs485-2"}, "rtu2": {"enabled": True}, "tcp": {"enabled": False}})
@example({"gateway": {"enabled": True}, "rtu2": {"enabled": True}, "unit_id": 0})
@example({"rtu": {"enabled": True}, "rtu2": {"enabled": True, "mode": "slave"}})
@example({"rtu": {"enabled": True, "name": "a"}, "rtu2": {"enabled": True, "name": "a"}})
@example({"rtu2": {"enabled": True, "mode": "slave"}, "unit_id": 0})
# Write protection (issue 12): the ranges' limits, and trusted-only ranges nobody could write.
@example({"protect": {"read_only": {"coils": [[0, 0x23F]], "holding_registers": [[0, 0xFFFF]]}}})
@example({"protect": {"read_only": {"coils": [[0, 0x240]]}}})
@example({"protect": {"read_only": {"holding_registers": [[0xFFFF, 0x10000]]}}})
@example({"protect": {"trusted_only": {"coils": [[0, 15]]}}})
@example({"protect": {"trusted_only": {"coils": [[0, 15]]}, "trusted_clients": []}})
@example({"protect": {"trusted_only": {"holding_registers": ["0x2100-0x2101"]}, "rtu_trusted": True}})
@example({"protect": {"trusted_only": {"holding_registers": [[0, 0]]}, "mqtt_trusted": True}})
@example({"protect": {"trusted_only": {"coils": []}, "read_only": {"input_registers": []}}})
@PROPERTY
@given(configurations())
def test_validate_accepts_exactly_what_the_documentation_allows(given):
    bad = refusals(given)
    try:
        cfg = config.validate(given, BOARD_SCHEMA)
    except ConfigError as e:
        message = str(e)
        assert bad, "refused a valid configuration %r: %s" % (given, message)
        assert one_line(message), message
        assert any(message.startswith("config: %s = " % k) for k in bad), "%s: refused keys %s" % (
            message, sorted(bad))
        return
    assert not bad, "accepted %r, invalid at %s" % (given, sorted(bad))
    for section, part in given.items():
        if type(part) is dict:
            for key, v in part.items():
                if section == "rtu" and key == "stopbits" and v is None:
                    assert cfg["rtu"]["stopbits"] == (2 if cfg["rtu"]["parity"] == "N" else 1)
                elif section == "channels":
                    assert len(cfg[section][key]) == len(v)
                elif section == "protect" and key in ("read_only", "trusted_only"):
                    assert all(len(cfg[section][key][t]) == len(r) for t, r in v.items())
                else:
                    assert cfg[section][key] == v and type(cfg[section][key]) is type(v)
        elif section != "channels":
            assert cfg[section] == part
    # (The result's "mqtt": {"enabled": false} brings in the whole MQTT section's defaults.)
    again = config.validate(json.loads(json.dumps(cfg)), BOARD_SCHEMA)
    assert again.pop("mqtt")["enabled"] is cfg.pop("mqtt")["enabled"] is False
    assert json.loads(json.dumps(again)) == json.loads(json.dumps(cfg))


def _place(cfg, path, value):
    part = cfg
    for key in path[:-1]:
        if type(part) is list:
            key = key % len(part) if part and type(key) is int else None
        if key is None or (type(part) is dict and key not in part) or type(part) not in (dict, list):
            return
        part = part[key]
    if type(part) is dict:
        part[path[-1]] = value
    elif type(part) is list and part:
        part[path[-1] % len(part) if type(path[-1]) is int else 0] = value


PATHS = [("unit_id",), ("tcp",), ("tcp", "port"), ("tcp", "allow"), ("rtu", "stopbits"), ("rtu", "mode"),
         ("rtu", "enabled"), ("channels", "coils"), ("identity", "vendor_name"), ("board", "io"), ("mqtt",),
         ("mqtt", "enabled"), ("mqtt", "host"), ("mqtt", "port"), ("mqtt", "qos"), ("mqtt", "root"),
         ("mqtt", "serial_devices"), ("mqtt", "reconnect"), ("mqtt", "reconnect", "max_s"), ("mqtt", "points"),
         ("mqtt", "points", 0), ("mqtt", "points", 0, "type"), ("mqtt", "points", 0, "address"),
         ("mqtt", "points", 1, "table"), ("mqtt", "points", 0, "deadband"), ("mqtt", "points", 0, "name"),
         ("mqtt", "tls"), ("mqtt", "tls", "enabled"), ("mqtt", "password"), ("mqtt", "max_message")]


@st.composite
def files(draw):
    cfg = json.loads(json.dumps(configfuzz.SEED))
    if draw(st.booleans()):
        cfg["mqtt"]["enabled"] = True
    for _ in range(draw(st.integers(0, 3))):
        _place(cfg, draw(st.sampled_from(PATHS)), draw(VALUES))
    data = bytearray(json.dumps(cfg, indent=draw(st.sampled_from([None, 1]))).encode())
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["insert", "delete", "replace", "cut", "bom"]))
        if what == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif what == "delete":
            del data[at:at + draw(st.integers(1, 4))]
        elif what == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif what == "cut":
            del data[at:]
        elif what == "bom":
            data[0:0] = b"\xef\xbb\xbf"
    return bytes(data)


PATH = os.path.join(tempfile.mkdtemp(prefix="mbnode-fuzz-"), "config.json")


@PROPERTY
@given(files())
def test_load_gives_a_configuration_or_one_line_naming_the_file(data):
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        cfg = config.load(PATH, BOARD_SCHEMA)
    except ConfigError as e:
        message = str(e)
        assert one_line(message, PATH) and message.startswith("config: " + PATH), message
        return
    assert type(cfg) is dict and set(cfg) >= {"unit_id", "tcp", "rtu", "channels", "identity", "board", "mqtt"}
