"""The checks of mqtt.points objects (docs/mqtt.md): loaded with the configuration only and
unloaded with it, so a running device keeps just mbnode.mqtt.points."""

from mbnode.datamodel import MEM_POSITIONS
from mbnode.memory32 import mem_register
from mbnode.pdu import MAX_READ_REGS
from mbnode.datatypes import NAME_MAX
from mbnode.typenames import MAP, TABLES, TYPES

MAX_POINTS = 64
_REG_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "memory32", "ascii")
_KEYS = ("name", "table", "address", "position", "type", "byte_order", "word_order", "signed",
         "count", "on_change", "deadband", "every_s", "retain")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


def _bad(key, v, allowed):
    raise ValueError(key, v, allowed)


def _one_of(key, v, options, what=""):
    if v not in options:
        _bad(key, v, "allowed one of " + ", ".join(['"%s"' % o for o in options]) + what)


def check_list(points):
    """check() for each of a list; names are unique. Errors: ValueError("[i].key", value, allowed)."""
    if type(points) is not list or len(points) > MAX_POINTS:
        _bad("", points, "allowed a list of at most %d point objects" % MAX_POINTS)
    names = []
    out = []
    for i, d in enumerate(points):
        try:
            p = check(d)
            if p["name"] in names:
                _bad(".name", p["name"], "allowed a name no other point uses")
        except ValueError as e:
            _bad("[%d]%s" % (i, e.args[0]), e.args[1], e.args[2])
        names.append(p["name"])
        out.append(p)
    return out


def check(d):
    """One point object (an entry of mqtt.points) with every default filled in and only the keys
    its type uses, so a checked configuration checks again unchanged. A bad key raises
    ValueError(".key", value, "allowed ...") for config.py to report.

    name: 1..32 letters, digits, "_", "-", "." (a topic level; "status" is reserved); table:
    coil | discrete | input | holding | memory; address: integer or "0x..." text, or position
    1..1024 for table memory; type (default bool, uint16, memory32 per table); byte_order,
    word_order: "BE" (default) | "LE"; signed (memory32; default false); count (ascii: 1..125
    registers); on_change (default true); deadband (number types, >= 0, default 0); every_s
    (0..86400, 0 = off); retain (null = mqtt.retain, true, false).
    """
    if type(d) is not dict:
        _bad("", d, "allowed a JSON object")
    for k in d:
        if k not in _KEYS:
            from mbnode.quote import name  # a key may be anything: MicroPython's json takes {"a", "b": 1}

            _bad("." + name(k), d[k], "unknown key; allowed keys: " + ", ".join(sorted(_KEYS)))
    name = d.get("name")
    if (type(name) is not str or not 0 < len(name) <= NAME_MAX or name == "status"
            or [c for c in name if c not in _NAME_CHARS]):
        _bad(".name", name, 'allowed 1..%d letters, digits, "_", "-" or "." ("status" is reserved)' % NAME_MAX)
    table = d.get("table")
    _one_of(".table", table, ("coil", "discrete", "input", "holding", "memory"))
    tab, t, types, what = TABLES[table]
    t = d.get("type", t)
    _one_of(".type", t, types or _REG_TYPES, " for " + what)
    out = {"name": name, "table": table, "type": t}
    n = max(1, TYPES[t][1] >> 1)  # registers (bool: 1 bit)
    if t == "ascii":
        n = out["count"] = d.get("count")
        if type(n) is not int or not 1 <= n <= MAX_READ_REGS:
            _bad(".count", n, "allowed an integer 1..%d (registers of 2 characters)" % MAX_READ_REGS)
    elif "count" in d:
        _bad(".count", d["count"], 'allowed only for type "ascii"')
    _place(d, out, table, tab, n, t)
    wide = 1 < n <= 4 and t != "memory32" and t != "ascii"
    for k, ok, why in (("byte_order", wide or t == "int16" or t == "uint16", "16-, 32- and 64-bit number types"),
                       ("word_order", wide, "32- and 64-bit number types")):
        if ok:
            v = out[k] = d.get(k, "BE")
            if v != "BE" and v != "LE":
                _bad("." + k, v, 'allowed "BE" or "LE"')
        elif k in d:
            _bad("." + k, d[k], "allowed only for " + why)
    if t == "memory32":
        signed = out["signed"] = d.get("signed", False)
        if type(signed) is not bool:
            _bad(".signed", signed, "allowed true or false")
    elif "signed" in d:
        _bad(".signed", d["signed"], 'allowed only for type "memory32" (the other types say it: int32, uint32...)')
    _policy(d, out, t)
    return out


def _place(d, out, table, tab, n, t):
    if table == "memory":
        if "address" in d:
            _bad(".address", d["address"], 'allowed only for tables other than "memory" (use position)')
        p = out["position"] = d.get("position")
        if type(p) is not int or not 1 <= p <= MEM_POSITIONS:
            _bad(".position", p, "allowed an integer 1..%d" % MEM_POSITIONS)
        return
    if "position" in d:
        _bad(".position", d["position"], 'allowed only for table "memory"')
    a = d.get("address")
    if type(a) is str:
        from mbnode.config import _number  # decimal or 0x hex, as in channel ranges

        if _number(a.strip(), True) >= 0:
            a = _number(a.strip(), True)
    # MAP is indexed coils, discrete, holding, input: the datamodel table numbers.
    ranges = [(lo, hi - n + 1) for lo, hi in MAP[tab] if hi - n + 1 >= lo]
    if type(a) is not int or not [1 for lo, hi in ranges if lo <= a <= hi]:
        _bad(".address", d.get("address"), "allowed " + " or ".join(["0x%04X-0x%04X" % r for r in ranges])
             + ("" if n == 1 else " (%s takes %d registers)" % (t, n)))
    out["address"] = a


def _policy(d, out, t):
    on_change = out["on_change"] = d.get("on_change", True)
    if type(on_change) is not bool:
        _bad(".on_change", on_change, "allowed true or false")
    if t != "bool" and t != "ascii":
        db = out["deadband"] = d.get("deadband", 0)
        if type(db) not in (int, float) or not 0 <= db < float("inf"):
            _bad(".deadband", db, "allowed a number >= 0")
    elif "deadband" in d:
        _bad(".deadband", d["deadband"], "allowed only for number types")
    every = out["every_s"] = d.get("every_s", 0)
    if type(every) is not int or not 0 <= every <= 86400:
        _bad(".every_s", every, "allowed an integer 0..86400 (seconds; 0 = off)")
    if not on_change and not every:
        _bad(".on_change", on_change, "allowed true when every_s is 0 (a point needs a publish policy)")
    retain = out["retain"] = d.get("retain")
    if retain is not None and type(retain) is not bool:
        _bad(".retain", retain, "allowed null (mqtt.retain), true or false")


def span(d):
    """(datamodel table, first address, channels) of a checked point object."""
    tab = TABLES[d["table"]][0]
    t = d["type"]
    n = d["count"] if t == "ascii" else max(1, TYPES[t][1] >> 1)
    return tab, d["address"] if "address" in d else mem_register(d["position"]), n
