"""The register map as data (`mbnode map`): one machine-readable description of a device as
configured, built from the checked configuration (mbnode.config.validate with the board's rules,
as the firmware checks it at start-up) and the constants of the modules that serve each part:
mbnode.datamodel (the channel map), mbnode.memory32 (memory positions), mbnode.extconfig
(extension modules), mbnode.sysregs and mbnode.settings (the system registers' layout),
mbnode.pdu (request limits), mbnode.typenames (types and their sizes), mbnode.pollconfig (where
polled values land). Nothing of the map is written down here a second time: only what each part
is called.

    load(config_file, board)    the checked configuration (board "unix": the simulator's, with
                                `mbnode sim`'s default TCP address where the file gives none)
    build(cfg, board, source)   the map: a dict that json.dumps prints as `mbnode map --json`
    text(m)                     the same as a readable table

The map's "values" are the named things a master reads or writes: onboard channels, extension
modules' channels and status, memory positions that a part of the configuration names (MQTT
points, poller destinations, io counters), the system status figures. The exports
(mbnode_host.export) are made from them.
"""

import json

from mbnode import VERSION, pdu, settings, sysregs, typenames
from mbnode.datamodel import (
    AO_MAX,
    MEM_BASE,
    MEM_POSITIONS,
    MEM_REGS,
    ONBOARD,
    _merge,
)
from mbnode.memory32 import mem_register
from mbnode.typenames import TABLE_NAMES

# The function codes that read and write each kind of range (mbnode.pdu's Engine; the system
# blocks: mbnode.sysregs (read-only) and mbnode.settings (holding registers only)).
READ_BITS = {"coils": [1], "discrete_inputs": [2]}
WRITE_COILS = [5, 15]
READ_HOLDING = [3, 23]
WRITE_HOLDING = [6, 16, 22, 23]
READ_INPUT = [4]

# What the onboard and extension channels of each table are (extconfig.TABLE_KEYS: module key, name).
_KIND = {"coils": ("do", "DO", "digital outputs"), "discrete_inputs": ("di", "DI", "digital inputs"),
         "holding_registers": ("ao", "AO", "analog outputs"), "input_registers": ("ai", "AI", "analog inputs")}

# The system status block (mbnode.sysregs): each figure's name, the sysregs constant that places
# it, its data type, what it is. Registers not named here are reserved (read 0).
STATUS = (
    ("uptime", "_UPTIME", "uint32", "uptime, s"),
    ("free_heap", "_FREE", "uint32", "free heap, bytes"),
    ("least_free_heap", "_LEAST", "uint32", "smallest free heap seen, bytes"),
    ("requests", "_REQUESTS", "uint32", "requests served"),
    ("exceptions", "_EXCEPTIONS", "uint32", "exception responses sent"),
    ("crc_errors", "_CRC", "uint32", "RTU CRC errors"),
    ("tcp_clients", "_TCP", "uint16", "TCP clients connected"),
    ("failsafe", "_FAILSAFE", "uint16", "fail-safe: 0 normal, 1 outputs safe"),
    ("temperature", "_TEMP", "int16", "chip temperature, 0.1 degC; -32768 (0x8000): none"),
    ("faults", "_FAULT", "uint16", "faults, bits: 1 config.json refused (board defaults), 2 last flash save failed"),
    ("unix_time", "_TIME", "uint32", "unix time, s; 0 while unknown"),
    ("ipv4", "_IPV4", ("uint16", 4), "IPv4 address, one byte per register"),
    ("flash_writes", "_FLASH", "uint32", "flash writes since boot"),
    ("device_name", "NAME", ("ascii", 16), "device name"),
    ("firmware_version", "FIRMWARE", ("ascii", 16), "firmware version"),
    ("mac", "MAC", ("ascii", 16), "MAC address as text"),
)
# The settings block (mbnode.settings), likewise; "switch": the system key that may forbid writes.
SETTINGS = (
    ("device_name", "DEVICE_NAME", ("ascii", 16), "device name", None),
    ("unit_id", "UNIT", "uint16", "unit id (after a save and reboot)", "unit_id_writes"),
    ("baud", "BAUD", "uint32", "RTU baud rate (after a save and reboot)", None),
    ("parity", "PARITY", "uint16", "RTU parity: 0 none, 1 odd, 2 even (after a save and reboot)", None),
    ("stopbits", "STOP", "uint16", "RTU stop bits (after a save and reboot)", None),
    ("failsafe_timeout", "FAILSAFE", "uint16", "fail-safe timeout, 0.1 s (after a save and reboot)", None),
    ("unix_time", "_TIME", "uint32", "unix time, s: sets the clock", None),
    ("save", "_SAVE", "uint16", "write 1: save the settings", None),
    ("reboot", "_REBOOT", "uint16", "write 1: reboot 1 s after the answer", "reboot"),
)


def load(config_file=None, board="unix"):
    """The configuration as the firmware of `board` runs it, checked (mbnode.config.ConfigError
    naming the file otherwise). Board "unix" is the simulator: where the file names no TCP host
    or port, those of `mbnode sim` (127.0.0.1:5020) count, as they do when it runs."""
    from mbnode import config
    from mbnode_host import boards, sim

    given = config.read(config_file) if config_file else {}
    if board == "unix" and type(given) is dict and type(given.get("tcp", {})) is dict:
        given = json.loads(json.dumps(given))
        tcp = given.setdefault("tcp", {})
        tcp.setdefault("host", sim.DEFAULT_HOST)
        tcp.setdefault("port", sim.DEFAULT_PORT)
    try:
        return config.validate(given, *boards.rules(board))
    except config.ConfigError as e:
        raise config.ConfigError("config: %s: %s" % (config_file or "board %s defaults" % board, str(e)[8:]))


class _Layout:
    """A value's layout (mbnode.typenames.setup): .width is its registers (1 for a bit)."""

    def __init__(self, t, count=0):
        typenames.setup(self, t, "BE", "BE", False, count)


def _value(name, table, address, t, access, source, what, word_order=None, byte_order="BE", count=0, **extra):
    """One named value; registers (or bits) from mbnode.typenames."""
    n = _Layout(t, count).width
    v = {"name": name, "table": table, "address": address, "count": n, "type": t, "access": access,
         "source": source, "what": what}
    if n > 1 and t not in typenames.TEXT:
        v["word_order"] = word_order or "BE"
    if byte_order != "BE":
        v["byte_order"] = byte_order
    v.update(extra)
    return v


def _cut(ranges, points):
    """The [first, last] ranges cut at each of `points` (a range starting there)."""
    out = []
    for first, last in ranges:
        cuts = sorted(set(p for p in points if first < p <= last))
        for p in cuts:
            out.append((first, p - 1))
            first = p
        out.append((first, last))
    return out


def _modules(cfg):
    """Per extension module: index, where it is, and per table its (first, last) channels, laid
    out as mbnode.extension lays them (in order from 0x0040, each table on its own)."""
    ext = cfg.get("extension")
    if not ext:
        return []
    from mbnode import extconfig

    first = {name: ONBOARD for name in TABLE_NAMES}
    out = []
    p = ext["status_position"]
    for k, m in enumerate(ext["modules"]):
        via = ("tcp " + m["tcp"]) if m["tcp"] else "line %s" % (m["line"] or "(first master line)")
        d = {"index": k, "unit": m["unit"], "via": via}
        for t, (key, what, _) in enumerate(extconfig.TABLE_KEYS):
            name = TABLE_NAMES[t]
            if m[key]:
                d[key] = {"first": first[name], "last": first[name] + m[key] - 1, "module_address": m[key + "_address"]}
                first[name] += m[key]
        if p:
            d["status_positions"] = [p + 2 * k, p + 2 * k + 1]
            d["status_register"] = mem_register(p + 2 * k)
        out.append(d)
    return out


def _protected(cfg):
    """Per writable table, the protected ranges: [first, last, rule]."""
    p = cfg.get("protect")
    out = {"coils": [], "holding_registers": []}
    if not p:
        return out
    for rule in ("read_only", "trusted_only"):
        for table in out:
            for first, last in p[rule][table]:
                out[table].append([first, last, rule])
    return out


def _block_fields(module, fields, first):
    out = []
    for f in fields:
        name, const, t, what = f[:4]
        count = 0
        if type(t) is tuple:
            t, count = t
        off = getattr(module, const)
        if t == "uint16" and count:
            regs = count
        elif t in typenames.TEXT:
            regs = count
        else:
            regs = max(1, typenames.TYPES[t][1] >> 1)
        d = {"name": name, "address": first + off, "registers": regs, "type": t, "what": what}
        if regs == 2 and t not in typenames.TEXT:
            d["word_order"] = "LE"  # 32-bit values of the system blocks: lower half first
        if len(f) > 4:
            d["switch"] = f[4]
        out.append(d)
    return out


def _with_reserved(fields, first, count):
    """fields sorted by address with the gaps of the block filled as reserved."""
    out = []
    at = first
    for f in sorted(fields, key=lambda f: f["address"]):
        if f["address"] > at:
            out.append({"name": "reserved", "address": at, "registers": f["address"] - at, "type": "uint16",
                        "what": "reserved, reads 0"})
        out.append(f)
        at = f["address"] + f["registers"]
    if at < first + count:
        out.append({"name": "reserved", "address": at, "registers": first + count - at, "type": "uint16",
                    "what": "reserved, reads 0"})
    return out


def system_blocks(cfg):
    """The status and settings blocks: ({first, last, fields}, {first, last, fields}), or None
    without an enabled "system" section."""
    s = cfg.get("system")
    if not s or not s["enabled"]:
        return None
    first, count = sysregs.FIRST, sysregs.COUNT
    status = {"first": first, "last": first + count - 1,
              "fields": _with_reserved(_block_fields(sysregs, STATUS, first), first, count)}
    sfirst, scount = settings._FIRST, settings.COUNT
    fields = _block_fields(settings, SETTINGS, sfirst)
    for f in fields:
        sw = f.pop("switch", None)
        f["writable"] = not sw or bool(s[sw])
    sets = {"first": sfirst, "last": sfirst + scount - 1, "fields": _with_reserved(fields, sfirst, scount)}
    return status, sets


def _range(table, first, last, kind, what, read, write, protected, **extra):
    r = {"first": first, "last": last, "count": last - first + 1, "kind": kind, "what": what,
         "access": "read-write" if write else "read", "read": read, "write": write}
    r.update(extra)
    prot = [[max(a, first), min(b, last), rule] for a, b, rule in protected.get(table, []) if a <= last and first <= b]
    if prot:
        r["protected"] = [{"first": a, "last": b, "rule": rule} for a, b, rule in prot]
    return r


def _channel_ranges(cfg, mods, protected):
    """Per table, the present ranges of the map with what they are."""
    out = {}
    for t, name in enumerate(TABLE_NAMES):
        key, short, long = _KIND[name]
        bits = t < 2
        writable = name in ("coils", "holding_registers")
        read = READ_BITS[name] if bits else (READ_HOLDING if name == "holding_registers" else READ_INPUT)
        write = (WRITE_COILS if bits else WRITE_HOLDING) if writable else []
        spans = {}  # first -> module index
        cuts = [ONBOARD, MEM_BASE]
        for m in mods:
            if key in m:
                spans[m[key]["first"]] = m
                cuts += [m[key]["first"], m[key]["last"] + 1]
        present = _merge(cfg["channels"][name])
        pairs = list(zip(present[0::2], present[1::2]))
        ranges = []
        for first, last in _cut(pairs, cuts):
            extra = {}
            if first >= MEM_BASE:
                kind, what = "memory", "memory registers: positions %d-%d, 32-bit, lower half first" % (
                    (first - MEM_BASE) // 2 + 1, (last - MEM_BASE) // 2 + 1)
                r = _range(name, first, last, kind, what, READ_INPUT if name == "input_registers" else READ_HOLDING,
                           WRITE_HOLDING if name == "holding_registers" else [], protected)
                if name == "input_registers":
                    r["same_as"] = "holding_registers"  # one memory, seen by FC03 and FC04
                ranges.append(r)
                continue
            if first < ONBOARD:
                kind, what = "onboard", "onboard %s (%s)" % (long, short)
                if name == "holding_registers":
                    extra["values"] = [0, AO_MAX]  # onboard AO is 10-bit (exception 03 above)
            else:
                m = next((spans[s] for s in spans if spans[s][key]["first"] <= first <= spans[s][key]["last"]), None)
                if m is not None:
                    kind, what = "extension", "extension module %d's %s (%s %d-%d of unit %d, %s)" % (
                        m["index"], short, short, first - m[key]["first"] + m[key]["module_address"],
                        last - m[key]["first"] + m[key]["module_address"], m["unit"], m["via"])
                    extra["module"] = m["index"]
                else:
                    kind, what = "extension", "extension %s (%s; no module configured)" % (long, short)
            ranges.append(_range(name, first, last, kind, what, read, write, protected, **extra))
        out[name] = ranges
    return out


def _position_value(name, p, t, source, what, retained, signed=False):
    if t == "memory32":
        t = "int32" if signed else "uint32"
    v = _value(name, "holding_registers", mem_register(p), t, "read-write", source, what, word_order="LE",
               position=p)
    if retained:
        v["retained"] = True
    return v


def _named(cfg, mods, system, retained):
    """The named values (see the module docstring), in map order."""
    vals = []
    taken = {}

    def add(v):
        key = (v["table"], v["address"], v["count"], v["type"], v.get("word_order"), v.get("byte_order"))
        if key in taken:  # the same channel again: one entry, its name from the last part that names it
            old = taken[key]
            old["name"] = v["name"]
            old["source"] = v["source"]
            old["what"] = v["what"]
            return
        taken[key] = v
        vals.append(v)

    # Onboard channels present; extension modules' channels.
    for name in TABLE_NAMES:
        key, short, long = _KIND[name]
        bits = name in ("coils", "discrete_inputs")
        writable = name in ("coils", "holding_registers")
        present = _merge(cfg["channels"][name])
        for first, last in zip(present[0::2], present[1::2]):
            for a in range(first, min(last, ONBOARD - 1) + 1):
                add(_value("%s%d" % (short, a), name, a, "bool" if bits else "uint16",
                           "read-write" if writable else "read", "channels", "onboard %s %d" % (short, a)))
        for m in mods:
            if key in m:
                r = m[key]
                for a in range(r["first"], r["last"] + 1):
                    j = a - r["first"]
                    add(_value("ext%d_%s%d" % (m["index"], key, j), name, a, "bool" if bits else "uint16",
                               "read-write" if writable else "read", "extension",
                               "extension module %d's %s %d" % (m["index"], short, j + r["module_address"])))
    # Extension modules' status: four 16-bit registers in two memory positions.
    for m in mods:
        if "status_register" in m:
            for i, field in enumerate(("state", "misses", "sent", "failed")):
                add(_value("ext%d_%s" % (m["index"], field), "holding_registers", m["status_register"] + i, "uint16",
                           "read-write", "extension.status_position",
                           "extension module %d: %s" % (m["index"], {"state": "0 starting, 1 online, 2 offline",
                                                                    "misses": "misses in a row",
                                                                    "sent": "requests sent (wraps)",
                                                                    "failed": "requests failed (wraps)"}[field]),
                           position=m["status_positions"][i // 2]))
    # io counters, latches and frequencies (the io section's DI entries with a position).
    io = cfg.get("io")
    if io:
        for e in io.get("di", []):
            if e.get("position"):
                p = e["position"]
                add(_position_value("DI%d_%s" % (e["channel"], e["mode"]), p, "uint32", "io.di",
                                    "onboard DI %d: %s" % (e["channel"], e["mode"]), p in retained))
    # Poller destinations.
    poller = cfg.get("poller")
    if poller:
        from mbnode import pollconfig

        for s in poller["servers"]:
            for r in s["requests"]:
                base = r.get("point") or "%s_%s" % (s["name"], r["name"])
                if "memory" in r:
                    n = pollconfig.positions(r)
                    t = r["type"]
                    size = typenames.TYPES[t][1]
                    if t in ("int8", "int16", "int32"):
                        mt = "int32"
                    elif t == "float32":
                        mt = "float32"
                    elif size == 8 and r["function"] >= 3:
                        mt = t
                    else:
                        mt = "uint32"
                    step = 2 if size == 8 and r["function"] >= 3 else 1
                    for i in range(0, n, step):
                        p = r["memory"] + i
                        nm = base if n == step else "%s_%d" % (base, i // step)
                        add(_position_value(nm, p, mt, "poller", "polled from %s (%s)" % (s["name"], r["name"]),
                                            p in retained))
                if "table" in r:
                    table = {"coil": "coils", "discrete": "discrete_inputs", "holding": "holding_registers",
                             "input": "input_registers"}[r["table"]]
                    bits = table in ("coils", "discrete_inputs")
                    for i in range(r["count"]):
                        nm = base if r["count"] == 1 else "%s_%d" % (base, i)
                        add(_value(nm, table, r["address"] + i, "bool" if bits else "uint16",
                                   "read-write" if table in ("coils", "holding_registers") else "read", "poller",
                                   "polled from %s (%s)" % (s["name"], r["name"])))
    # MQTT points: the names the bridge publishes under.
    mqtt = cfg.get("mqtt") or {}
    for pt in mqtt.get("points", []):
        table = {"coil": "coils", "discrete": "discrete_inputs", "holding": "holding_registers",
                 "input": "input_registers", "memory": "holding_registers"}[pt["table"]]
        what = "MQTT point %s" % pt["name"]
        if pt["table"] == "memory":
            add(_position_value(pt["name"], pt["position"], "memory32", "mqtt.points", what,
                                pt["position"] in retained, pt.get("signed", False)))
            continue
        access = "read-write" if table in ("coils", "holding_registers") else "read"
        add(_value(pt["name"], table, pt["address"], pt["type"], access, "mqtt.points", what,
                   word_order=pt.get("word_order"), byte_order=pt.get("byte_order", "BE"), count=pt.get("count", 0)))
    # The system status figures (FC04; FC03 reads the same).
    if system:
        for f in system[0]["fields"]:
            if f["name"] == "reserved":
                continue
            t = f["type"]
            count = f["registers"] if t in typenames.TEXT else 0
            if t == "uint16" and f["registers"] > 1:  # IPv4: one byte per register
                for i in range(f["registers"]):
                    add(_value("%s_%d" % (f["name"], i), "input_registers", f["address"] + i, "uint16", "read",
                               "system", "%s, byte %d" % (f["what"], i + 1)))
                continue
            add(_value(f["name"], "input_registers", f["address"], t, "read", "system", f["what"],
                       word_order=f.get("word_order"), count=count))
    return vals


def _access(v, protected):
    """A value's access with write protection applied."""
    if v["access"] == "read" or v["table"] not in protected:
        return v
    last = v["address"] + v["count"] - 1
    rules = [rule for a, b, rule in protected[v["table"]] if a <= last and v["address"] <= b]
    if "read_only" in rules:
        v["access"] = "read"
        v["protected"] = "read_only"
    elif rules:
        v["protected"] = "trusted_only"
    return v


def build(cfg, board="unix", source=None):
    """The map of a checked configuration `cfg` (see the module docstring)."""
    mods = _modules(cfg)
    protected = _protected(cfg)
    tables = _channel_ranges(cfg, mods, protected)
    system = system_blocks(cfg)
    if system:
        status, sets = system
        for name in ("holding_registers", "input_registers"):
            tables[name].append(_range(name, status["first"], status["last"], "system_status",
                                       "system status, read-only (docs/register-map.md)",
                                       READ_HOLDING[:1] if name == "holding_registers" else READ_INPUT, [], protected))
        tables["holding_registers"].append(_range("holding_registers", sets["first"], sets["last"], "settings",
                                                  "settings (docs/register-map.md)", READ_HOLDING[:1], WRITE_HOLDING,
                                                  protected))
    cb = cfg.get("custom_block")
    block = None
    if cb:
        block = {"enabled": cb["enabled"], "first": cb["first"] - 1, "last": cb["first"] + cb["count"] - 2,
                 "count": cb["count"], "first_number": cb["first"], "file": cb["file"]}
        if cb["enabled"]:
            tables["holding_registers"].append(_range("holding_registers", block["first"], block["last"],
                                                      "custom_block", "custom register block (file %s)" % cb["file"],
                                                      READ_HOLDING[:1], WRITE_HOLDING, protected))
    for name in tables:
        tables[name].sort(key=lambda r: r["first"])
    retained = set()
    for a, b in (cfg.get("retain") or {}).get("positions", []):
        retained.update(range(a, b + 1))
    values = [_access(v, protected) for v in _named(cfg, mods, system, retained)]
    for v in values:  # a 32-bit value on a memory position's two registers: say which position
        off = v["address"] - MEM_BASE
        if v["table"] != "coils" and v["count"] == 2 and 0 <= off < MEM_REGS and off % 2 == 0:
            v.setdefault("position", off // 2 + 1)
    mem = _merge(cfg["channels"]["holding_registers"])
    mem_present = [[(max(a, MEM_BASE) - MEM_BASE) // 2 + 1, (min(b, MEM_BASE + MEM_REGS - 1) - MEM_BASE) // 2 + 1]
                   for a, b in zip(mem[0::2], mem[1::2]) if b >= MEM_BASE and a < MEM_BASE + MEM_REGS]
    slave = "rtu2" if cfg["rtu2"]["enabled"] and cfg["rtu2"]["mode"] == "slave" else "rtu"
    line = cfg[slave]
    m = {
        "mbnode": VERSION,
        "board": board,
        "config": source,
        "unit_id": cfg["unit_id"],
        "device_name": cfg["identity"]["device_name"],
        "transports": {
            "tcp": {"enabled": cfg["tcp"]["enabled"], "host": cfg["tcp"]["host"], "port": cfg["tcp"]["port"],
                    "unit_255": cfg["tcp"]["unit_255"]},
            "rtu": {"enabled": line["enabled"] and line["mode"] == "slave", "line": slave, "baud": line["baud"],
                    "parity": line["parity"], "stopbits": line["stopbits"], "bytesize": 8},
        },
        "addresses": "0-based Modbus addresses (the PDU's); register number = address + 1",
        "limits": {"read_bits": pdu.MAX_BITS, "write_bits": pdu.MAX_BITS, "read_registers": pdu.MAX_READ_REGS,
                   "write_registers": pdu.MAX_WRITE_REGS},
        "tables": tables,
        "memory": {"first_register": MEM_BASE, "positions": MEM_POSITIONS, "present": mem_present,
                   "layout": "position n: registers 0x1000 + 2(n-1) (bits 0-15) and 0x1001 + 2(n-1) (bits 16-31)",
                   "word_order": "LE", "retained": (cfg.get("retain") or {}).get("positions", [])},
        "values": values,
    }
    if mods:
        m["extension"] = {"modules": mods, "status_position": cfg["extension"]["status_position"]}
    if system:
        m["system"] = {"status": system[0], "settings": system[1]}
    if block:
        m["custom_block"] = block
    p = cfg.get("protect")
    if p:
        m["protect"] = {"read_only": p["read_only"], "trusted_only": p["trusted_only"],
                        "trusted_clients": p["trusted_clients"], "rtu_trusted": p["rtu_trusted"],
                        "mqtt_trusted": p["mqtt_trusted"], "refused_with": 2}
    fs = cfg.get("failsafe")
    if fs:
        m["failsafe"] = {"enabled": fs["enabled"], "timeout_ms": fs["timeout_ms"], "do_default": fs["do_default"],
                         "ao_default": fs["ao_default"], "do": fs["do"], "ao": fs["ao"], "memory": fs["memory"]}
    return m


def _fcs(fcs):
    return ",".join("%02d" % f for f in fcs) or "-"


def text(m):
    """The map as a readable table."""
    t = m["transports"]
    lines = ["mbnode %s map, board %s%s: unit %d%s%s" % (
        m["mbnode"], m["board"], ", " + m["config"] if m["config"] else "", m["unit_id"],
        ", tcp %s:%d" % (t["tcp"]["host"], t["tcp"]["port"]) if t["tcp"]["enabled"] else "",
        ", rtu %d-8%s%d" % (t["rtu"]["baud"], t["rtu"]["parity"], t["rtu"]["stopbits"]) if t["rtu"]["enabled"] else ""),
        "addresses 0-based; 32-bit values lower half first", ""]
    lines.append("%-18s %-13s %6s  %-11s %-9s %-12s %s" % ("table", "addresses", "count", "access", "read", "write",
                                                             "what"))
    for name, ranges in m["tables"].items():
        for r in ranges:
            access = r["access"]
            if r.get("protected"):
                access += "*"
            lines.append("%-18s 0x%04X-0x%04X %6d  %-11s %-9s %-12s %s" % (
                name, r["first"], r["last"], r["count"], access, _fcs(r["read"]), _fcs(r["write"]), r["what"]))
    prot = [(name, p) for name, ranges in m["tables"].items() for r in ranges for p in r.get("protected", [])]
    if prot:
        lines.append("")
        lines.append("* write protection (exception 02 to a master not allowed):")
        for name, p in prot:
            lines.append("  %s 0x%04X-0x%04X %s" % (name, p["first"], p["last"], p["rule"].replace("_", "-")))
    if m.get("system"):
        for block in ("status", "settings"):
            lines.append("")
            lines.append("system %s 0x%04X-0x%04X:" % (block, m["system"][block]["first"], m["system"][block]["last"]))
            for f in m["system"][block]["fields"]:
                extra = "" if f.get("writable", True) else " (writes refused: system switch)"
                lines.append("  0x%04X %2d  %-17s %-7s %s%s" % (f["address"], f["registers"], f["name"], f["type"],
                                                               f["what"], extra))
    named = [v for v in m["values"] if v["source"] not in ("channels", "system")]
    if named:
        lines.append("")
        lines.append("named values:")
        for v in named:
            where = "position %d, " % v["position"] if "position" in v else ""
            order = ", lower half first" if v.get("word_order") == "LE" else ""
            lines.append("  %-24s %s 0x%04X (%s%s%s) %s, %s%s" % (
                v["name"], v["table"], v["address"], where, v["type"], order, v["access"], v["source"],
                ", retained" if v.get("retained") else ""))
    return "\n".join(lines)


def run(args):
    """`mbnode map [--config FILE] [--board NAME] [--json]`."""
    m = build(load(args.config, args.board), args.board, args.config)
    print(json.dumps(m, indent=1) if args.json else text(m))
    return 0
