"""Configuration: one JSON object, checked completely at start-up.

Every key has a default; an unknown key or a bad value raises ConfigError naming the key, the
value and what is allowed. The board adds its own keys under "board" (board.CONFIG_SCHEMA), so
the core never needs to know which pins or networks a board has.
"""

import json

from mbnode import VERSION
from mbnode.datamodel import MAP, TABLE_NAMES


class ConfigError(ValueError):
    pass


def _fail(key, value, allowed):
    raise ConfigError("config: %s = %s: %s" % (key, json.dumps(value), allowed))


def integer(lo, hi):
    def check(key, v):
        if type(v) is not int or not lo <= v <= hi:
            _fail(key, v, "allowed an integer %d..%d" % (lo, hi))
        return v
    return check


def boolean(key, v):
    if v is not True and v is not False:
        _fail(key, v, "allowed true or false")
    return v


def text(maxlen):
    def check(key, v):
        if type(v) is not str or len(v) > maxlen or any(not 32 <= ord(c) < 127 for c in v):
            _fail(key, v, "allowed printable ASCII text of at most %d characters" % maxlen)
        return v
    return check


def choice(*options):
    def check(key, v):
        if v not in options:
            _fail(key, v, "allowed one of " + ", ".join(json.dumps(o) for o in options))
        return v
    return check


def _ipv4(s):
    parts = s.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def ipv4_list(key, v):
    if type(v) is not list or not all(type(a) is str and _ipv4(a) for a in v):
        _fail(key, v, "allowed a list of IPv4 addresses such as [\"192.168.1.10\"]")
    return v


def host(key, v):
    if type(v) is not str or not (_ipv4(v) or v == "localhost"):
        _fail(key, v, "allowed an IPv4 address such as \"0.0.0.0\"")
    return v


def _parse_range(item):
    # [first, last] with integers, or "first-last" with decimal or 0x hex numbers.
    if type(item) is list and len(item) == 2 and all(type(x) is int for x in item):
        return item[0], item[1]
    if type(item) is str and item.count("-") == 1:
        a, b = item.split("-")
        return int(a.strip(), 0), int(b.strip(), 0)
    raise ValueError


def channel_ranges(table):
    allowed_map = MAP[table]
    shown = ", ".join("0x%04X-0x%04X" % r for r in allowed_map)

    def check(key, v):
        ranges = []
        try:
            if type(v) is not list:
                raise ValueError
            for item in v:
                first, last = _parse_range(item)
                if first > last or not any(lo <= first and last <= hi for lo, hi in allowed_map):
                    raise ValueError
                ranges.append((first, last))
        except ValueError:
            _fail(key, v, "allowed a list of [first, last] or \"0xFIRST-0xLAST\" ranges inside " + shown)
        return ranges
    return check


def ip_port(key, v):
    try:
        h, p = v.rsplit(":", 1)
        if not (_ipv4(h) or h == "localhost") or not 0 <= int(p) <= 65535:
            raise ValueError
    except (AttributeError, ValueError):
        _fail(key, v, "allowed \"HOST:PORT\" with an IPv4 host and a port 0..65535")
    return v


def full_map():
    return [["0x%04X-0x%04X" % r for r in MAP[t]] for t in range(4)]


SCHEMA = {
    "unit_id": (1, integer(0, 247)),
    "tcp": {
        "enabled": (True, boolean),
        "host": ("0.0.0.0", host),
        "port": (502, integer(0, 65535)),
        "max_clients": (4, integer(1, 16)),
        "idle_timeout": (0, integer(0, 86400)),
        "persistent": (True, boolean),
        "when_full": ("refuse", choice("refuse", "close_idlest")),
        "allow": ([], ipv4_list),
    },
    "channels": {
        name: (full_map()[t], channel_ranges(t)) for t, name in enumerate(TABLE_NAMES)
    },
    "identity": {
        "vendor_name": ("mbnode", text(100)),
        "product_code": ("MBN-1", text(100)),
        "revision": (VERSION, text(100)),
        "vendor_url": ("", text(100)),
        "product_name": ("mbnode Modbus slave", text(100)),
        "model_name": ("", text(100)),
        "user_application_name": ("", text(100)),
    },
}


def _apply(schema, given, prefix):
    if type(given) is not dict:
        _fail(prefix.rstrip(".") or "(top level)", given, "allowed a JSON object")
    for key in given:
        if key not in schema:
            _fail(prefix + key, given[key], "unknown key; allowed keys: " + ", ".join(sorted(schema)))
    out = {}
    for key, rule in schema.items():
        if type(rule) is dict:
            out[key] = _apply(rule, given.get(key, {}), prefix + key + ".")
        else:
            default, check = rule
            out[key] = check(prefix + key, given.get(key, default))
    return out


def validate(given, board_schema=None):
    """Checked configuration with every default filled in. board_schema: the board's keys."""
    schema = dict(SCHEMA)
    schema["board"] = board_schema or {}
    return _apply(schema, given, "")


def load(path, board_schema=None):
    try:
        with open(path) as f:
            given = json.load(f)
    except OSError as e:
        raise ConfigError("config: cannot read %s: %s" % (path, e))
    except ValueError as e:
        raise ConfigError("config: %s is not valid JSON: %s" % (path, e))
    return validate(given, board_schema)
