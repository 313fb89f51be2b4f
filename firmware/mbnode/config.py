"""Configuration: one JSON object, checked completely at start-up.

Every key has a default; an unknown key or a bad value raises ConfigError naming the key, the
value and what is allowed. The schema is plain data, a rule being (default, kind, *arguments),
so a board declares its own keys under "board" without importing this module, and the firmware
can unload it once the configuration is checked. A board may also bring a default
configuration (the base the file's keys are merged onto) and a final check of the whole result
(which pins its chip can use): board.config_rules(), docs/boards.md.
"""

import json

from mbnode import VERSION
from mbnode.typenames import MAP, TABLE_NAMES


class ConfigError(ValueError):
    pass


def _ipv4(s):
    parts = s.split(".")
    return len(parts) == 4 and all(0 < len(p) <= 3 and 0 <= _number(p) <= 255 for p in parts)


def _host_port(v):
    if ":" not in v:
        return False
    h, p = v.rsplit(":", 1)
    return (_ipv4(h) or h == "localhost") and 0 <= _number(p) <= 65535


def _number(s, hex=False):
    # s as a number in ASCII digits, decimal or (hex true) 0x hex, else -1. Not int(): CPython's
    # also takes 0b, 0o, "+", "_" and other scripts' digits, not all of which MicroPython's does,
    # and `mbnode sim` (CPython) and the board must agree on every file.
    base = 10
    if hex and s[:2] in ("0x", "0X"):
        s = s[2:]
        base = 16
    if not s or [c for c in s if c not in ("0123456789abcdefABCDEF" if base == 16 else "0123456789")]:
        return -1
    return int(s, base)


def _ranges(v, table):
    # Each item a range (mbnode.rangeitem: the one reading of both forms) inside MAP[table].
    from mbnode.rangeitem import bounds

    out = []
    for item in v:
        first, last = bounds(item)
        if not 0 <= first <= last or not any(lo <= first and last <= hi for lo, hi in MAP[table]):
            raise ValueError
        out.append((first, last))
    return out


def _check(key, v, kind, args):
    """The checked value of `key`, or ConfigError saying what is allowed."""
    shown = None
    ok = False
    try:
        if kind == "int":
            allowed = "allowed an integer %d..%d" % args
            ok = type(v) is int and args[0] <= v <= args[1]
        elif kind == "bool":
            allowed = "allowed true or false"
            ok = v is True or v is False
        elif kind == "text":
            allowed = "allowed printable ASCII text of at most %d characters" % args
            ok = type(v) is str and len(v) <= args[0] and all(32 <= ord(c) < 127 for c in v)
        elif kind == "choice":
            allowed = "allowed one of " + ", ".join(json.dumps(o) for o in args)
            ok = any(v == o and type(v) is type(o) for o in args)  # 1.0 and true are not 1
        elif kind == "host":
            allowed = "allowed an IPv4 address such as \"0.0.0.0\""
            ok = type(v) is str and (_ipv4(v) or v == "localhost")
        elif kind == "ipv4_list":
            allowed = "allowed a list of IPv4 addresses such as [\"192.168.1.10\"]"
            ok = type(v) is list and all(type(a) is str and _ipv4(a) for a in v)
        elif kind == "host_port":
            allowed = "allowed \"HOST:PORT\" with an IPv4 host and a port 0..65535" + (
                " or \"\" (none)" if args else "")
            ok = type(v) is str and ((args and v == "") or _host_port(v))
        elif kind == "name":
            allowed = "allowed 1..16 letters, digits, \"-\" or \"_\""
            ok = type(v) is str and 0 < len(v) <= 16 and all(c.isalpha() or c.isdigit() or c in "-_" for c in v) \
                and all(ord(c) < 128 for c in v)
        elif kind == "name_or_empty":
            allowed = "allowed \"\" (the first line in master mode) or a serial line's name"
            ok = type(v) is str and len(v) <= 16
        elif kind == "units":
            allowed = "allowed a list of unit ids 1..255"
            ok = type(v) is list and all(type(u) is int and 1 <= u <= 255 for u in v)
        elif kind == "pins":
            allowed = "allowed a list of at most %d GPIO numbers" % args
            ok = type(v) is list and len(v) <= args[0] and all(type(p) is int and 0 <= p <= 255 for p in v)
        elif kind == "ranges":
            allowed = "allowed a list of [first, last] or \"0xFIRST-0xLAST\" ranges inside " + ", ".join(
                "0x%04X-0x%04X" % r for r in MAP[args[0]])
            ok = type(v) is list
            if ok:
                return _ranges(v, args[0])
        elif kind == "call":  # an optional section's own check (mbnode.pollconfig): the checked value
            return args[0](key, v)
        elif kind == "modules":  # the extension section's (mbnode.extconfig, loaded with its schema)
            from mbnode import extconfig

            return extconfig.check_modules(key, v)
        else:  # the kinds of the mqtt section live with it
            from mbnode.mqtt import config as mqttconfig

            done, v, ok, allowed, shown = mqttconfig.check_kind(key, v, kind, args)
            if done:
                return v
    except ConfigError:
        raise
    except ValueError:
        ok = False
    if not ok:
        if shown:
            raise ConfigError("config: %s = %s: %s" % (key, shown, allowed))
        raise refused(key, v, allowed)
    return v


SCHEMA = {
    "unit_id": (1, "int", 0, 247),
    "tcp": {
        "enabled": (True, "bool"),
        "host": ("0.0.0.0", "host"),
        "port": (502, "int", 0, 65535),
        "max_clients": (4, "int", 1, 16),
        "idle_timeout": (0, "int", 0, 86400),
        "persistent": (True, "bool"),
        "when_full": ("refuse", "choice", "refuse", "close_idlest"),
        "allow": ([], "ipv4_list"),
        "unit_255": (True, "bool"),  # unit id 255 (0xFF) is this device too (Modbus TCP implementation guide)
    },
    # The serial lines: rtu on the board's first RS-485 port, rtu2 on a second one where the
    # board has two (its board.rtu2_* keys). At most one line is a slave; a master line's RTU
    # master (mbnode.rtumaster) is shared by every part that sends requests on it, and `name`
    # is how they (and the MQTT gateway's SERIAL_DEVICE_ID) call it.
    "rtu": {
        "enabled": (False, "bool"),
        "mode": ("slave", "choice", "slave", "master"),
        "name": ("rs485", "name"),
        "baud": (19200, "int", 300, 4000000),
        "parity": ("E", "choice", "E", "N", "O"),
        "stopbits": (None, "choice", None, 1, 2),
        "early_reply": (False, "bool"),
    },
    "rtu2": {
        "enabled": (False, "bool"),
        "mode": ("master", "choice", "slave", "master"),
        "name": ("rs485-2", "name"),
        "baud": (19200, "int", 300, 4000000),
        "parity": ("E", "choice", "E", "N", "O"),
        "stopbits": (None, "choice", None, 1, 2),
        "early_reply": (False, "bool"),
    },
    # The TCP-to-RTU gateway (mbnode.tcpgateway, docs/master.md): Modbus TCP requests for these
    # unit ids ([]: every id that is not this device's) go out on the RTU line in master mode.
    "gateway": {
        "enabled": (False, "bool"),
        "units": ([], "units"),
        "timeout_ms": (1000, "int", 10, 60000),
        "broadcast": (False, "bool"),  # unit 0 goes out as an RTU broadcast (never answered)
        "line": ("", "name_or_empty"),  # the master line's name ("": the first line in master mode)
    },
    "channels": {
        name: (["0x%04X-0x%04X" % r for r in MAP[t]], "ranges", t) for t, name in enumerate(TABLE_NAMES)
    },
    "identity": {
        "vendor_name": ("mbnode", "text", 100),
        "product_code": ("MBN-1", "text", 100),
        "revision": (VERSION, "text", 100),
        "vendor_url": ("", "text", 100),
        "product_name": ("mbnode Modbus slave", "text", 100),
        "model_name": ("", "text", 100),
        "user_application_name": ("", "text", 100),
        "device_name": ("mbnode", "text", 100),
    },
}


def lines(cfg):
    """The enabled serial lines: [(section key, its settings)], rtu first."""
    return [(key, cfg[key]) for key in ("rtu", "rtu2") if cfg[key]["enabled"]]


def _check_lines(cfg):
    a, b = cfg["rtu"], cfg["rtu2"]
    if not a["enabled"]:
        return
    if a["mode"] == "slave" and b["mode"] == "slave":
        raise ConfigError("config: rtu2.mode = \"slave\": rtu is this device's slave line already; allowed \"master\" "
                          "(one slave line)")
    if a["name"] == b["name"]:
        raise ConfigError("config: rtu2.name = %s: rtu has that name; allowed another" % json.dumps(b["name"]))


def _check_gateway(cfg):
    gw = cfg["gateway"]
    if not cfg["tcp"]["enabled"]:
        raise ConfigError("config: gateway.enabled = true: allowed only with tcp.enabled true (it forwards Modbus TCP requests)")
    masters = [line for _, line in lines(cfg) if line["mode"] == "master"]
    if gw["line"]:
        if gw["line"] not in [line["name"] for line in masters]:
            raise ConfigError("config: gateway.line = %s: no serial line in master mode has that name; allowed %s"
                              % (json.dumps(gw["line"]), ", ".join(json.dumps(line["name"]) for line in masters)
                                 or "none: enable a line (rtu or rtu2) in master mode"))
    elif not masters:
        raise ConfigError("config: gateway.enabled = true: allowed only with a serial line (rtu or rtu2) enabled in "
                          "\"master\" mode (the gateway's requests go out on it as its master)")
    own = [cfg["unit_id"]] + ([255] if cfg["tcp"]["unit_255"] else [])
    for u in gw["units"]:
        if u in own:
            raise ConfigError("config: gateway.units = %s: unit %d is this device's own (unit_id%s): allowed other ids"
                              % (json.dumps(gw["units"]), u, ", tcp.unit_255" if u == 255 else ""))
    if not gw["units"] and cfg["unit_id"] == 0:
        raise ConfigError("config: gateway.units = []: with unit_id 0 this device answers every unit id itself: "
                          "list the ids to forward")


def refused(key, v, allowed):
    """ConfigError "config: KEY = VALUE: ALLOWED", the value shown by mbnode.quote (loaded only
    for a refusal: a valid configuration's check does not spend RAM on it)."""
    from mbnode.quote import quote

    return ConfigError("config: %s = %s: %s" % (key, quote(v), allowed))


def _apply(schema, given, prefix):
    if type(given) is not dict:
        raise refused(prefix.rstrip(".") or "(top level)", given, "allowed a JSON object")
    for key in given:
        if key not in schema:
            from mbnode.quote import name

            raise refused(prefix + name(key), given[key], "unknown key; allowed keys: " + ", ".join(sorted(schema)))
    out = {}
    for key, rule in schema.items():
        if type(rule) is dict:
            out[key] = _apply(rule, given.get(key, {}), prefix + key + ".")
        else:
            out[key] = _check(prefix + key, given.get(key, rule[0]), rule[1], rule[2:])
    return out


def merge(base, given):
    """`given` laid over `base`: objects merge key by key, anything else replaces."""
    if type(base) is not dict or type(given) is not dict:
        return given
    out = dict(base)
    for key in given:
        out[key] = merge(base[key], given[key]) if key in base else given[key]
    return out


def validate(given, board_schema=None, base=None, check=None):
    """Checked configuration with every default filled in. board_schema: the board's keys;
    base: the board's default configuration, which `given` overrides key by key; check(cfg):
    the board's last word on the result, a one-line error or None (it may also settle values
    that depend on others)."""
    if base:
        given = merge(base, given)
    schema = dict(SCHEMA)
    schema["board"] = board_schema or {}
    mqtt = type(given) is dict and "mqtt" in given
    if mqtt:
        # The MQTT section's schema is loaded only when the configuration has one.
        from mbnode.mqtt import config as mqttconfig

        schema["mqtt"] = mqttconfig.SCHEMA
    else:
        schema["mqtt"] = {"enabled": (False, "bool")}
    poller = type(given) is dict and "poller" in given
    if poller:  # the poller's schema and checks (mbnode.pollconfig), loaded only for its section
        from mbnode import pollconfig

        schema["poller"] = pollconfig.SCHEMA
    else:
        schema["poller"] = {}  # named among the allowed keys; no section in the result
    ext = type(given) is dict and "extension" in given
    if ext:  # extension modules (docs/master.md): their checks are loaded only when configured
        from mbnode import extconfig

        schema["extension"] = extconfig.SCHEMA
    else:
        schema["extension"] = {}  # named among the allowed keys; no section in the result
    failsafe = type(given) is dict and "failsafe" in given
    if failsafe:  # fail-safe outputs (mbnode.failsafeconfig), loaded only for its section
        from mbnode import failsafeconfig

        schema["failsafe"] = failsafeconfig.SCHEMA
    else:
        schema["failsafe"] = {}  # named among the allowed keys; no section in the result
    protect = type(given) is dict and "protect" in given
    if protect:  # write protection (mbnode.protectconfig), loaded only for its section
        from mbnode import protectconfig

        schema["protect"] = protectconfig.SCHEMA
    else:
        schema["protect"] = {}  # named among the allowed keys; no section in the result
    system = type(given) is dict and "system" in given
    if system:  # the system registers (mbnode.sysconfig), loaded only for their section
        from mbnode import sysconfig

        schema["system"] = sysconfig.SCHEMA
    else:
        schema["system"] = {}  # named among the allowed keys; no section in the result
    kept = type(given) is dict and ("retain" in given or "custom_block" in given)
    if kept:  # retained memory and the custom register block (mbnode.retainconfig), loaded only for them
        from mbnode import retainconfig

        schema["retain"] = retainconfig.RETAIN
        schema["custom_block"] = retainconfig.CUSTOM_BLOCK
    else:
        schema["retain"] = schema["custom_block"] = {}  # named among the allowed keys; no section in the result
    io = type(given) is dict and "io" in given
    if io:  # input and output modes (docs/configuration.md): their checks are loaded only when configured
        from mbnode import ioconfig

        schema["io"] = ioconfig.SCHEMA
    else:
        schema["io"] = {}  # named among the allowed keys; no section in the result
    unit = given.get("unit_id", SCHEMA["unit_id"][0]) if type(given) is dict else None
    for key in ("rtu", "rtu2"):
        rtu = given.get(key) if type(given) is dict else None
        if type(rtu) is dict and rtu.get("enabled") is True and rtu.get("mode", SCHEMA[key]["mode"][0]) == "slave" \
                and type(unit) is int and not 1 <= unit <= 247:
            raise ConfigError("config: unit_id = %d: allowed 1..247 when %s.enabled is true in slave mode "
                              "(0, any unit, is for Modbus TCP only)" % (unit, key))
    cfg = _apply(schema, given, "")
    if not ext:
        del cfg["extension"]
    if not failsafe:
        del cfg["failsafe"]
    if system:
        sysconfig.check(cfg)
    else:
        del cfg["system"]
    for key in ("retain", "custom_block"):
        if key not in given:
            del cfg[key]
    if kept:
        retainconfig.check(cfg)
    if not io:
        del cfg["io"]
    for key in ("rtu", "rtu2"):
        rtu = cfg[key]
        if rtu["stopbits"] is None:  # the serial line spec: 2 stop bits when there is no parity
            rtu["stopbits"] = 2 if rtu["parity"] == "N" else 1
    if cfg["rtu2"]["enabled"]:
        _check_lines(cfg)
    if cfg["gateway"]["enabled"]:
        _check_gateway(cfg)
    if ext:
        extconfig.check(cfg)
    if failsafe:
        failsafeconfig.check(cfg)
    if io:
        ioconfig.check(cfg)
    if mqtt:
        mqttconfig.check(cfg)
    if poller:
        pollconfig.check(cfg)
    else:
        del cfg["poller"]
    if protect:
        protectconfig.check(cfg)
    else:
        del cfg["protect"]
    if check is not None:
        problem = check(cfg)
        if problem:
            raise ConfigError(problem)
    return cfg


def _closed(text):
    """Does every { and [ of the JSON text close (outside strings)? MicroPython's json takes an
    object cut short ('{"unit_id": 7,' loads as {"unit_id": 7}), and a file written half-way
    (power lost) must not pass for a shorter configuration."""
    depth = 0
    in_str = escaped = False
    for c in text:
        if in_str:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{" or c == "[":
            depth += 1
        elif c == "}" or c == "]":
            depth -= 1
    return depth <= 0 and not in_str


def read(path):
    """The JSON value in the file at `path`, or ConfigError naming the file and what is wrong
    with it (missing, unreadable, not UTF-8 JSON, a byte order mark, cut short, too large)."""
    text = None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if text and ord(text[0]) == 0xFEFF:
            raise ConfigError("config: %s starts with a byte order mark (BOM): allowed plain UTF-8 JSON "
                              "(save it as UTF-8 without BOM)" % path)
        if not _closed(text):
            raise ValueError("it ends before its last closing bracket")
        return json.loads(text)
    except OSError as e:
        if e.args and e.args[0] == 2:  # ENOENT
            raise ConfigError("config: %s not found" % path)
        raise ConfigError("config: cannot read %s: %s" % (path, e))
    except ValueError as e:  # also UnicodeError: bytes that are not UTF-8 (CPython)
        if isinstance(e, ConfigError):
            raise
        raise ConfigError("config: %s is not valid JSON: %s" % (path, e))
    except RuntimeError:  # CPython's json: RecursionError
        raise ConfigError("config: %s is not valid JSON: nested too deep" % path)
    except MemoryError:
        text = None
        from mbnode.quote import too_large

        raise too_large(path)


def load(path, board_schema=None, base=None, check=None):
    """read(path), checked by validate(); every error names the file."""
    given = read(path)
    try:
        return validate(given, board_schema, base, check)
    except ConfigError as e:  # every message starts with "config: ", the board check's too
        raise ConfigError("config: %s: %s" % (path, str(e)[8:]))
    except MemoryError:
        given = None
        from mbnode.quote import too_large

        raise too_large(path)
