"""The "poller" section of the configuration (docs/master.md, "Poller and alarms"; keys in
docs/configuration.md): Modbus servers polled on a period, their requests with data types and
destinations, and alarms on the polled values. mbnode.config imports this module only when a
configuration has a "poller" object, and the firmware unloads it with config after start-up:
the running poller (mbnode.poller) keeps only what it needs, in its own objects.

Every object comes back with its defaults filled in and only the keys it uses, so a checked
configuration checks again unchanged. An error names the key by its path, e.g.
poller.servers[0].requests[2].count, the value and what is allowed.
"""

import json

from mbnode import datatypes, typenames
from mbnode.datatypes import NAME_MAX
from mbnode.typenames import MAP, TABLE_NAMES, TABLES
from mbnode.config import ConfigError, _ipv4, _number, lines, refused
from mbnode.datamodel import MEM_POSITIONS
from mbnode.memory32 import mem_register

MAX_SERVERS = 16
MAX_REQUESTS = 32  # over every server
MAX_ALARMS = 16
MESSAGE_MAX = 200
CODES = ("mv", "mi", "ma", "mn", "mr", "ut", "ts", "dn", "an", "n", "%")  # docs/master.md
CONDITIONS = (">", "<", "==", "!=", "<=", ">=")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
_REG_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "int8", "uint8",
              "bool", "ascii", "hex")
# table name (typenames.TABLES) -> the functions whose values may land there
_FILLS = {"coil": (1, 2), "discrete": (1, 2), "holding": (3, 4), "input": (3, 4)}
_SERVER_KEYS = ("name", "enabled", "host", "port", "line", "unit", "timeout_ms", "period_ms", "delay_ms",
                "always_reconnect", "reset_after", "requests")
_REQUEST_KEYS = ("name", "enabled", "function", "first", "count", "type", "byte_order", "word_order", "memory",
                 "table", "address", "point", "every_s")
_ALARM_KEYS = ("name", "enabled", "server", "request", "index", "condition", "value", "frequency", "redundancy_s",
               "write", "output", "mqtt")


class _Layout:
    """A data type's layout (mbnode.typenames.setup) for the checks of values."""

    def __init__(self, t, byte_order="BE", word_order="BE", count=0):
        typenames.setup(self, t, byte_order, word_order, False, count)


def _bad(key, v, allowed):
    raise ValueError(key, v, allowed)


def _keys(d, allowed):
    if type(d) is not dict:
        _bad("", d, "allowed a JSON object")
    for k in d:
        if k not in allowed:
            from mbnode.quote import name

            _bad("." + name(k), d[k], "unknown key; allowed keys: " + ", ".join(sorted(allowed)))


def _int(d, key, default, lo, hi, what=""):
    v = d.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        _bad("." + key, v, "allowed an integer %d..%d%s" % (lo, hi, what))
    return v


def _bool(d, key, default):
    v = d.get(key, default)
    if v is not True and v is not False:
        _bad("." + key, v, "allowed true or false")
    return v


def _one_of(d, key, default, options):
    v = d.get(key, default)
    if v not in options or type(v) is not type(options[0]):
        _bad("." + key, v, "allowed one of " + ", ".join([json.dumps(o) for o in options]))
    return v


def _name(d, key, required=True, default=None):
    v = d.get(key, default)
    if v is None and not required:
        return None
    if type(v) is not str or not 0 < len(v) <= NAME_MAX or [c for c in v if c not in _NAME_CHARS]:
        _bad("." + key, v, 'allowed 1..%d letters, digits, "_", "-" or "."' % NAME_MAX)
    return v


def _address(d, key):
    a = d.get(key)
    if type(a) is str and _number(a.strip(), True) >= 0:
        a = _number(a.strip(), True)
    if type(a) is not int or not 0 <= a <= 0xFFFF:
        _bad("." + key, d.get(key), 'allowed an address 0..65535 (or "0x..." text)')
    return a


def _listed(key, v, check, most, what):
    if type(v) is not list or len(v) > most:
        _bad(key, v, "allowed a list of at most %d %s" % (most, what))
    out = []
    for i, d in enumerate(v):
        try:
            out.append(check(d))
        except ValueError as e:
            _bad("%s[%d]%s" % (key, i, e.args[0]), e.args[1], e.args[2])
    return out


def _section(check, most, what):
    # A "call" rule's function for mbnode.config: the checked list, or ConfigError for the key.
    def run(key, v):
        try:
            return _listed("", v, check, most, what)
        except ValueError as e:
            raise refused(key + e.args[0], e.args[1], e.args[2])

    return run


# --- servers and their requests ---------------------------------------------------------------


def server(d):
    """One entry of poller.servers, defaults filled in. ValueError(".key", value, allowed)."""
    _keys(d, _SERVER_KEYS)
    out = {"name": _name(d, "name"), "enabled": _bool(d, "enabled", True)}
    if ("host" in d) == ("line" in d):
        _bad("", d, 'allowed a server with either "host" (Modbus TCP) or "line" (Modbus RTU)')
    tcp = "host" in d
    if tcp:
        h = d["host"]
        if type(h) is not str or not (_ipv4(h) or h == "localhost"):
            _bad(".host", h, 'allowed an IPv4 address such as "192.168.1.10" or "localhost"')
        out["host"] = h
        out["port"] = _int(d, "port", 502, 0, 65535)
        out["unit"] = _int(d, "unit", 1, 0, 255)
    else:
        v = out["line"] = d["line"]  # a serial line's name (rtu.name, rtu2.name): check() knows them
        if type(v) is not str or not 0 < len(v) <= 16:
            _bad(".line", v, "allowed the name of a serial line in master mode (rtu.name or rtu2.name)")
        out["unit"] = _int(d, "unit", 1, 1, 247, " (a serial line's unit ids; 0 is a broadcast)")
        for k in ("port", "delay_ms", "always_reconnect", "reset_after"):
            if k in d:
                _bad("." + k, d[k], 'allowed only for Modbus TCP servers (with "host")')
    out["timeout_ms"] = _int(d, "timeout_ms", 5000, 10, 60000)
    out["period_ms"] = _int(d, "period_ms", 1000, 10, 86400000)
    if tcp:
        out["delay_ms"] = _int(d, "delay_ms", 0, 0, 999)
        out["always_reconnect"] = _bool(d, "always_reconnect", False)
        out["reset_after"] = _int(d, "reset_after", 1, 0, 10, " (0: never)")
    reqs = out["requests"] = _listed(".requests", d.get("requests", []), request, MAX_REQUESTS, "request objects")
    names = [r["name"] for r in reqs]
    for i, n in enumerate(names):
        if n in names[:i]:
            _bad(".requests[%d].name" % i, n, "allowed a name no other request of this server uses")
    return out


def values(r):
    """(values a request reads, registers (or bits) per value) of a checked request."""
    t = r["type"]
    if r["function"] <= 2 or t == "bool":
        return r["count"], 1
    if t in typenames.TEXT:
        return 1, r["count"]
    size = typenames.TYPES[t][1]
    if size == 1:
        return 2 * r["count"], 1  # two values per register (the index // 2 is the register)
    return r["count"] // (size >> 1), size >> 1


def positions(r):
    """Memory positions the request's values take: 64-bit values two, text one per register."""
    t = r["type"]
    n, per = values(r)
    if r["function"] >= 3 and t in typenames.TEXT:
        return r["count"]
    if r["function"] >= 3 and typenames.TYPES[t][1] == 8:
        return 2 * n
    return n


def request(d):
    """One entry of a server's requests. ValueError(".key", value, allowed)."""
    _keys(d, _REQUEST_KEYS)
    out = {"name": _name(d, "name"), "enabled": _bool(d, "enabled", True)}
    fc = out["function"] = _int(d, "function", 3, 1, 4, " (1 coils, 2 discrete inputs, 3 holding, 4 input registers)")
    bits = fc <= 2
    t = d.get("type", "bool" if bits else "int16")
    if bits and t != "bool":
        _bad(".type", t, 'allowed "bool" for functions 1 and 2')
    if t not in _REG_TYPES:
        _bad(".type", t, "allowed one of " + ", ".join(['"%s"' % x for x in _REG_TYPES]))
    out["type"] = t
    first = out["first"] = _int(d, "first", None, 1, 65536, " (register NUMBER: address + 1, as the router counts)")
    size = typenames.TYPES[t][1]
    width = max(1, size >> 1) if t not in typenames.TEXT else 1
    most = 2000 if bits else 125
    n = out["count"] = _int(d, "count", width, 1, most)
    if first + n > 65537:
        _bad(".count", n, "allowed at most %d from register number %d (the last is 65536)" % (65537 - first, first))
    if n % width:
        _bad(".count", n, "allowed a multiple of %d (%s takes %d registers)" % (width, t, width))
    wide = size >= 4
    for k, ok, why in (("byte_order", size >= 2, "16-, 32- and 64-bit number types"),
                       ("word_order", wide, "32- and 64-bit number types")):
        if ok:
            out[k] = _one_of(d, k, "BE", ("BE", "LE"))
        elif k in d:
            _bad("." + k, d[k], "allowed only for " + why)
    if "memory" in d:
        p = out["memory"] = _int(d, "memory", None, 1, MEM_POSITIONS, " (a memory position)")
        k = positions(out)
        if p + k - 1 > MEM_POSITIONS:
            _bad(".memory", p, "allowed 1..%d (the values take %d positions)" % (MEM_POSITIONS - k + 1, k))
    if "table" in d or "address" in d:
        tables = [name for name in ("coil", "discrete", "holding", "input") if fc in _FILLS[name]]
        out["table"] = _one_of(d, "table", None, tables)
        a = out["address"] = _address(d, "address")
        tab = TABLES[out["table"]][0]
        fits = ["0x%04X-0x%04X" % (lo, hi - n + 1) for lo, hi in MAP[tab] if hi - n + 1 >= lo]
        if not [1 for lo, hi in MAP[tab] if lo <= a and a + n - 1 <= hi]:
            what = "%d %s" % (n, "bits" if bits else "registers")
            _bad(".address", d["address"], "allowed " + " or ".join(fits) + " (%s)" % what if fits else
                 "allowed no address: %s do not fit in table %s" % (what, out["table"]))
    if "point" in d:
        p = out["point"] = _name(d, "point")
        if p == "status":
            _bad(".point", p, 'allowed another name ("status" is the bridge\'s own topic)')
        out["every_s"] = _int(d, "every_s", 0, 0, 86400, " (seconds; 0: only on change)")
    elif "every_s" in d:
        _bad(".every_s", d["every_s"], 'allowed only with "point"')
    return out


# --- alarms -----------------------------------------------------------------------------------


def alarm(d):
    """One entry of poller.alarms (its references are checked by check()). ValueError."""
    _keys(d, _ALARM_KEYS)
    out = {"name": _name(d, "name", False, None), "enabled": _bool(d, "enabled", True),
           "server": _name(d, "server"), "request": _name(d, "request"), "index": _int(d, "index", 0, 0, 1999),
           "condition": _one_of(d, "condition", ">", CONDITIONS), "value": d.get("value"),
           "frequency": _one_of(d, "frequency", "every", ("every", "first")),
           "redundancy_s": _int(d, "redundancy_s", 0, 0, 86400, " (seconds; 0: off)")}
    if out["name"] is None:
        del out["name"]
    if "value" not in d:
        _bad(".value", None, "allowed the value to compare with (a number, true/false or text)")
    acts = 0
    for k, check in (("write", _write), ("output", _output), ("mqtt", _mqtt)):
        if k in d:
            try:
                out[k] = check(d[k])
            except ValueError as e:
                _bad("." + k + e.args[0], e.args[1], e.args[2])
            acts += 1
    if not acts:
        _bad("", d, 'allowed an alarm with at least one action: "write", "output" or "mqtt"')
    return out


def _write(d):
    _keys(d, ("server", "function", "first", "values", "type", "value", "byte_order", "word_order"))
    out = {"server": _name(d, "server"), "function": _one_of(d, "function", 16, (5, 6, 15, 16))}
    fc = out["function"]
    first = out["first"] = _int(d, "first", None, 1, 65536, " (register NUMBER: address + 1)")
    if "type" in d:
        if fc not in (6, 16):
            _bad(".type", d["type"], "allowed only with function 6 or 16 (registers)")
        t = out["type"] = _one_of(d, "type", None, ("int16", "uint16", "int32", "uint32", "float32", "int64",
                                                    "uint64", "float64"))
        size = typenames.TYPES[t][1]
        if fc == 6 and size != 2:
            _bad(".type", t, 'allowed "int16" or "uint16" with function 6 (one register)')
        out["byte_order"] = _one_of(d, "byte_order", "BE", ("BE", "LE"))
        if size >= 4:
            out["word_order"] = _one_of(d, "word_order", "BE", ("BE", "LE"))
        elif "word_order" in d:
            _bad(".word_order", d["word_order"], "allowed only for 32- and 64-bit number types")
        if "values" in d:
            _bad(".values", d["values"], 'allowed either "values" or "type" with "value"')
        layout = _Layout(t, out["byte_order"], out.get("word_order", "BE"))
        try:
            out["value"] = datatypes.check(layout, d.get("value"))
        except ValueError as e:
            _bad(".value", d.get("value"), e.args[0].split(": ", 1)[1])
        n = layout.width
    else:
        for k in ("value", "byte_order", "word_order"):
            if k in d:
                _bad("." + k, d[k], 'allowed only with "type"')
        v = d.get("values")
        bits = fc in (5, 15)
        top = 1 if bits else 0xFFFF
        most = {5: 1, 6: 1, 15: 1968, 16: 123}[fc]
        if (type(v) is not list or not 1 <= len(v) <= most
                or [x for x in v if type(x) is not int or not 0 <= x <= top]):
            what = ("1..%d values 0 or 1" % most if bits else "1..%d register values 0..65535" % most) if most > 1 else (
                "one value, 0 or 1" if bits else "one register value 0..65535")
            _bad(".values", v, "allowed a list of %s for function %d" % (what, fc))
        out["values"] = v
        n = len(v)
    if first + n > 65537:
        _bad(".first", first, "allowed at most %d for %d values (the last register number is 65536)"
             % (65537 - n, n))
    return out


def _output(d):
    _keys(d, ("table", "address", "set", "value"))
    t = _one_of(d, "table", "coil", ("coil", "holding"))
    out = {"table": t, "address": _address(d, "address")}
    if t == "coil":
        out["set"] = _one_of(d, "set", "on", ("on", "off", "invert"))
        if "value" in d:
            _bad(".value", d["value"], 'allowed only for table "holding" (a coil takes "set")')
    else:
        out["value"] = _int(d, "value", None, 0, 65535)
        if "set" in d:
            _bad(".set", d["set"], 'allowed only for table "coil" (a holding register takes "value")')
    return out


def _mqtt(d):
    _keys(d, ("topic", "message", "retain"))
    from mbnode.mqtt.config import _topic

    t = d.get("topic")
    if type(t) is not str or not t or not _topic(t):
        _bad(".topic", t, "allowed an MQTT topic of printable ASCII without spaces, \"+\" or \"#\", empty levels "
                          "or a leading \"$\", at most 100 characters")
    m = d.get("message", "%mn %mr %mv")
    if type(m) is not str or len(m) > MESSAGE_MAX or [c for c in m if not 32 <= ord(c) < 127]:
        _bad(".message", m, "allowed printable ASCII text of at most %d characters" % MESSAGE_MAX)
    i = m.find("%")
    while i >= 0:
        code = [c for c in CODES if m.startswith(c, i + 1)]
        if not code:
            _bad(".message", m, "allowed %-codes: " + ", ".join(["%" + c for c in CODES]) + " (docs/master.md)")
        i = m.find("%", i + 1 + len(code[0]))
    return {"topic": t, "message": m, "retain": _bool(d, "retain", False)}


# --- the section ------------------------------------------------------------------------------

SCHEMA = {
    "enabled": (False, "bool"),
    "servers": ([], "call", _section(server, MAX_SERVERS, "server objects")),
    "alarms": ([], "call", _section(alarm, MAX_ALARMS, "alarm objects")),
}


def _present(cfg, table, first, n):
    name = TABLE_NAMES[table]
    return [1 for lo, hi in cfg["channels"][name] if lo <= first and first + n - 1 <= hi]


def _modules_own(cfg, table, first, n):
    """The extension range that first..first+n-1 of `table` overlaps when extension modules are
    configured (their channels are theirs: their own polls and writes fill them), else None."""
    ext = cfg.get("extension")
    if not ext or not ext.get("modules"):
        return None
    hi = 0x023F if table < 2 else 0x013F
    if first <= hi and first + n - 1 >= 0x0040:
        return "0x0040-0x%04X" % hi
    return None


def check(cfg):
    """The rules of the poller section that involve more than one key or other sections."""
    p = cfg["poller"]
    servers = {}
    named = []  # the poller's point names
    total = 0
    mqtt = cfg["mqtt"]["enabled"]
    masters = [line["name"] for _, line in lines(cfg) if line["mode"] == "master"]
    for i, s in enumerate(p["servers"]):
        key = "poller.servers[%d]" % i
        if s["name"] in servers:
            raise ConfigError("config: %s.name = \"%s\": allowed a name no other server uses" % (key, s["name"]))
        servers[s["name"]] = s
        if "line" in s and s["line"] not in masters:
            raise ConfigError("config: %s.line = \"%s\": no serial line in master mode has that name; allowed %s "
                              "(the poller's requests go out on the line as its master)"
                              % (key, s["line"], ", ".join(['"%s"' % n for n in masters])
                                 or "none: enable a line (rtu or rtu2) in master mode"))
        total += len(s["requests"])
        for j, r in enumerate(s["requests"]):
            rk = "%s.requests[%d]" % (key, j)
            if "memory" in r:
                a = mem_register(r["memory"])
                if not _present(cfg, 2, a, 2 * positions(r)):
                    raise ConfigError("config: %s.memory = %d: allowed positions present in channels.holding_registers "
                                      "(0x%04X-0x%04X is not)" % (rk, r["memory"], a, a + 2 * positions(r) - 1))
            if "table" in r:
                tab = TABLES[r["table"]][0]
                owned = _modules_own(cfg, tab, r["address"], r["count"])
                if owned:
                    raise ConfigError("config: %s.address = %d: channels %s of channels.%s are extension modules' "
                                      "(their polls and writes fill them); allowed channels outside them"
                                      % (rk, r["address"], owned, TABLE_NAMES[tab]))
                if not _present(cfg, tab, r["address"], r["count"]):
                    raise ConfigError("config: %s.address = %d: allowed channels present in channels.%s "
                                      "(0x%04X-0x%04X is not)" % (rk, r["address"], TABLE_NAMES[tab], r["address"],
                                                                  r["address"] + r["count"] - 1))
            if "point" in r:
                if not mqtt:
                    raise ConfigError("config: %s.point = \"%s\": allowed only with mqtt.enabled true (the bridge "
                                      "publishes it)" % (rk, r["point"]))
                if r["point"] in named or r["point"] in [x["name"] for x in cfg["mqtt"]["points"]]:
                    raise ConfigError("config: %s.point = \"%s\": allowed a name no other point (poller or mqtt."
                                      "points) uses" % (rk, r["point"]))
                named.append(r["point"])
    if total > MAX_REQUESTS:
        raise ConfigError("config: poller.servers: %d requests: allowed at most %d over every server"
                          % (total, MAX_REQUESTS))
    for i, a in enumerate(p["alarms"]):
        _check_alarm(cfg, "poller.alarms[%d]" % i, a, servers, mqtt)


def _check_alarm(cfg, key, a, servers, mqtt):
    s = servers.get(a["server"])
    if s is None:
        raise ConfigError("config: %s.server = \"%s\": allowed the name of a server in poller.servers" % (key, a["server"]))
    r = [x for x in s["requests"] if x["name"] == a["request"]]
    if not r:
        raise ConfigError("config: %s.request = \"%s\": allowed the name of one of server %s's requests"
                          % (key, a["request"], s["name"]))
    r = r[0]
    n, per = values(r)
    if a["index"] >= n:
        raise ConfigError("config: %s.index = %d: allowed 0..%d (request %s reads %d value%s)"
                          % (key, a["index"], n - 1, r["name"], n, "" if n == 1 else "s"))
    t = "bool" if r["function"] <= 2 else r["type"]
    if t in typenames.TEXT and a["condition"] not in ("==", "!="):
        raise ConfigError("config: %s.condition = \"%s\": allowed \"==\" or \"!=\" for %s values" % (key, a["condition"], t))
    layout = _Layout(t, r.get("byte_order", "BE"), r.get("word_order", "BE"), r["count"])
    try:
        a["value"] = datatypes.check(layout, a["value"])
    except ValueError as e:
        from mbnode.quote import quote

        raise ConfigError("config: %s.value = %s: allowed %s (request %s's type)"
                          % (key, quote(a["value"]), e.args[0].split(": allowed ", 1)[1], r["name"]))
    w = a.get("write")
    if w is not None:
        if w["server"] not in servers:
            raise ConfigError("config: %s.write.server = \"%s\": allowed the name of a server in poller.servers"
                              % (key, w["server"]))
        if not servers[w["server"]]["enabled"]:
            raise ConfigError("config: %s.write.server = \"%s\": allowed an enabled server" % (key, w["server"]))
    o = a.get("output")
    if o is not None:
        tab = 0 if o["table"] == "coil" else 2
        owned = _modules_own(cfg, tab, o["address"], 1)
        if owned:
            raise ConfigError("config: %s.output.address = %d: channels %s of channels.%s are extension modules' "
                              "(a write there goes out to the module); allowed channels outside them"
                              % (key, o["address"], owned, TABLE_NAMES[tab]))
        if not _present(cfg, tab, o["address"], 1):
            raise ConfigError("config: %s.output.address = %d: allowed a channel present in channels.%s"
                              % (key, o["address"], TABLE_NAMES[tab]))
        if tab == 2 and o["address"] < 0x40 and o["value"] > 0x3FF:
            raise ConfigError("config: %s.output.value = %d: allowed 0..1023 for onboard AO (0x0000-0x003F, 10-bit)"
                              % (key, o["value"]))
    if "mqtt" in a and not mqtt:
        raise ConfigError("config: %s.mqtt: allowed only with mqtt.enabled true (the bridge publishes it)" % key)
