"""The "extension" section of the configuration (docs/master.md, "Extension modules"): its
schema, the checks of extension.modules and the rules that involve other sections. mbnode.config
imports this module only when a configuration has an "extension" object, and the firmware
unloads it with config after start-up.

The modules' channels are mapped in order onto the extension ranges of the map, each table on
its own (module 0's DI from 0x0040, module 1's after them, ...). The check makes them the
extension part of channels.*: what channels.* says about 0x0040-0x023F (bits) and 0x0040-0x013F
(registers) is replaced by the modules' channels, so channels of no module are absent
(exception 02) and everything downstream (the data model's presence, mqtt.points) sees the
channels that exist.
"""

import json

from mbnode.config import ConfigError, _apply, lines, refused
from mbnode.datamodel import BIT_CHANNELS, MEM_POSITIONS, ONBOARD, REG_CHANNELS
from mbnode.typenames import TABLE_NAMES

MAX_MODULES = 32  # the status block (2 memory positions each) fits the top 64 positions

# Per table, in the data model's order (coils, discrete inputs, holding, input registers): the
# module key, what it is, and how many extension channels there are.
TABLE_KEYS = (("do", "DO", BIT_CHANNELS), ("di", "DI", BIT_CHANNELS), ("ao", "AO", REG_CHANNELS),
              ("ai", "AI", REG_CHANNELS))

MODULE = {
    "unit": (1, "int", 0, 255),  # 1..247 on a serial line
    "tcp": ("", "host_port", "empty allowed"),  # "HOST:PORT": over Modbus TCP; "": on the serial line
    "line": ("", "name_or_empty"),  # the serial line's name when tcp is "" ("": the first line in master mode)
    "di": (0, "int", 0, BIT_CHANNELS - ONBOARD),
    "di_address": (0, "int", 0, 65535),  # the module's own address of its first DI
    "do": (0, "int", 0, BIT_CHANNELS - ONBOARD),
    "do_address": (0, "int", 0, 65535),
    "ai": (0, "int", 0, REG_CHANNELS - ONBOARD),
    "ai_address": (0, "int", 0, 65535),
    "ao": (0, "int", 0, REG_CHANNELS - ONBOARD),
    "ao_address": (0, "int", 0, 65535),
    "period_ms": (100, "int", 0, 3600000),  # inputs read this often (0: one cycle after the other)
    "timeout_ms": (250, "int", 10, 60000),  # per request
    "misses": (3, "int", 1, 1000),  # requests in a row without an answer before it is offline
    "retry_ms": (1000, "int", 10, 3600000),  # offline: first retry after this, then twice as long...
    "retry_max_ms": (30000, "int", 10, 3600000),  # ... up to this
}

SCHEMA = {
    "modules": ([], "modules"),
    "writes": (4, "int", 1, 16),  # write-throughs on their way at once (each holds a 253-byte buffer)
    "status_position": (961, "int", 0, MEM_POSITIONS),  # module k's status: positions P+2k, P+2k+1; 0: none
}


def check_modules(key, v):
    """The checked list of module objects, every default filled in; ConfigError naming the key."""
    if type(v) is not list or len(v) > MAX_MODULES:
        raise refused(key, v, "allowed a list of at most %d module objects" % MAX_MODULES)
    out = []
    for i, d in enumerate(v):
        where = "%s[%d]" % (key, i)
        m = _apply(MODULE, d, where + ".")
        if not any(m[k] for k, _, _ in TABLE_KEYS):
            raise ConfigError("config: %s: a module without channels: allowed di, do, ai or ao above 0" % where)
        for k, _, _ in TABLE_KEYS:
            if m[k] and m[k + "_address"] + m[k] > 65536:
                raise ConfigError("config: %s.%s_address = %d: allowed 0..%d (its %d channels end at 65535)"
                                  % (where, k, m[k + "_address"], 65536 - m[k], m[k]))
        if m["tcp"] == "" and not 1 <= m["unit"] <= 247:
            raise ConfigError("config: %s.unit = %d: allowed 1..247 on a serial line (0..255 with tcp)"
                              % (where, m["unit"]))
        if m["retry_max_ms"] < m["retry_ms"]:
            raise ConfigError("config: %s.retry_max_ms = %d: allowed %d..3600000 (at least retry_ms)"
                              % (where, m["retry_max_ms"], m["retry_ms"]))
        out.append(m)
    return out


def _outside(ranges, lo, hi):
    """ranges without the channels lo..hi."""
    out = []
    for first, last in ranges:
        if first < lo:
            out.append((first, min(last, lo - 1)))
        if last > hi:
            out.append((max(first, hi + 1), last))
    return out


def check(cfg):
    """The rules of the extension section that involve other keys; makes the modules' channels
    the extension part of cfg["channels"]."""
    ext = cfg["extension"]
    mods = ext["modules"]
    names = [line["name"] for _, line in lines(cfg) if line["mode"] == "master"]
    for i, m in enumerate(mods):
        if m["tcp"]:
            continue
        if not names:
            raise ConfigError("config: extension.modules[%d].tcp = \"\": a module on a serial line needs a line "
                              "(rtu or rtu2) enabled in \"master\" mode (or give it tcp \"HOST:PORT\")" % i)
        if m["line"] and m["line"] not in names:
            raise ConfigError("config: extension.modules[%d].line = %s: no serial line in master mode has that name; "
                              "allowed %s" % (i, json.dumps(m["line"]), ", ".join(json.dumps(n) for n in names)))
    p = ext["status_position"]
    if p and p + 2 * len(mods) - 1 > MEM_POSITIONS:
        raise ConfigError("config: extension.status_position = %d: allowed 1..%d for %d modules (2 positions each) "
                          "or 0 (none)" % (p, MEM_POSITIONS + 1 - 2 * len(mods), len(mods)))
    for t, (k, what, size) in enumerate(TABLE_KEYS):
        total = sum(m[k] for m in mods)
        if total > size - ONBOARD:
            raise ConfigError("config: extension.modules: %s channels add up to %d: allowed at most %d in all "
                              "(extension %s 0x%04X-0x%04X)" % (what, total, size - ONBOARD, what, ONBOARD, size - 1))
        name = TABLE_NAMES[t]
        ranges = _outside(cfg["channels"][name], ONBOARD, size - 1)
        if total:
            ranges.append((ONBOARD, ONBOARD + total - 1))
        cfg["channels"][name] = sorted(ranges)
