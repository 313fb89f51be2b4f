"""Mutated configuration files: what a person with a text editor, a script gone wrong or a file
cut short produces from a valid config.json.

mutations(n, seed) yields n (description, file bytes) pairs, deterministically for a seed. Half
change the parsed object (a value replaced by a nasty one: 100,000 characters, 800-deep nesting,
lists and objects where text belongs, huge numbers; unknown keys; sections that are not objects)
and half change the text (bytes inserted, deleted or replaced, invalid UTF-8, a byte order
mark, the file cut short). The contract the tests check (issue 10): the firmware starts, or it
refuses with exactly one `config: ...` line naming the file, never a traceback.
"""

import copy
import json
import random

# A valid configuration for the unix board (mbnode sim), touching every section.
SEED = {
    "unit_id": 7,
    "tcp": {"enabled": True, "host": "127.0.0.1", "port": 5020, "max_clients": 4, "idle_timeout": 0,
            "persistent": True, "when_full": "refuse", "allow": ["127.0.0.1"]},
    "rtu": {"enabled": False, "mode": "slave", "baud": 19200, "parity": "E", "stopbits": 1, "early_reply": False},
    "channels": {"coils": [[0, 15], "0x0020-0x002F"], "holding_registers": [[0, 63]]},
    "identity": {"vendor_name": "acme", "product_code": "X-1", "device_name": "pump 3"},
    "board": {"io": "127.0.0.1:5021", "rtu_device": "/dev/ttyUSB0", "rtu_peer": ""},
    "mqtt": {"enabled": False, "host": "broker.local", "port": 1883, "qos": 1, "root": "plant/pump3",
             "serial_devices": ["rs485"], "reconnect": {"initial_s": 1, "max_s": 30, "factor": 2},
             "points": [{"name": "level", "table": "holding", "address": 3, "type": "uint16", "deadband": 2},
                        {"name": "run", "table": "coil", "address": "0x0001"}]},
    "protect": {"read_only": {"coils": ["0x0008-0x000F"], "holding_registers": [[4096, 4099]]},
                "trusted_only": {"holding_registers": ["0x0020-0x002F"]}, "trusted_clients": ["127.0.0.1"],
                "mqtt_trusted": False},
}

LONG = 100000  # characters of the longest text value
DEEP = 800  # levels of the deepest nesting


def _deep(kind, depth):
    v = 1
    for _ in range(depth):
        v = [v] if kind == "list" else {"a": v}
    return v


def nasty_values(rnd):
    """A value that does not belong where it is put (or sometimes does)."""
    return rnd.choice([
        None, True, False, 0, -1, 1.5, -0.0, 1e308, 10 ** 30, -10 ** 30, 2 ** 63, "", " ", "x" * LONG,
        "é", "\u0000", "\ud800", "0x10", "1-2", "127.0.0.1:99999", [], {}, [[]], {"a": 1}, [None], [1] * 1000,
        ["x" * 200] * 3, _deep("list", DEEP), _deep("dict", DEEP), _deep("list", 5), [[0, 1]], [[1, 0]],
        ["0x00-0xFFFF"], {"enabled": True}, 19200, 247, 248, 65536, "E", "N", "refuse", "slave", "master",
    ])


def _paths(v, path=()):
    """Every (path of keys/indexes) inside v, v itself first."""
    yield path
    if type(v) is dict:
        for k in v:
            yield from _paths(v[k], path + (k,))
    elif type(v) is list:
        for i, x in enumerate(v):
            yield from _paths(x, path + (i,))


def _set(root, path, value):
    if not path:
        return value
    parent = root
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return root


def _tree_mutation(rnd):
    cfg = copy.deepcopy(SEED)
    paths = list(_paths(cfg))
    kind = rnd.randrange(5)
    if kind == 0:  # a value replaced
        path = rnd.choice(paths[1:])
        value = nasty_values(rnd)
        return "%s = %.40r" % (".".join(map(str, path)), value), _set(cfg, path, value)
    if kind == 1:  # an unknown key in some object
        objects = [p for p in paths if type(_get(cfg, p)) is dict]
        path = rnd.choice(objects)
        _get(cfg, path)[rnd.choice(["colis", "Port", "", "x" * 300, "enabled ", "\u00e9"])] = nasty_values(rnd)
        return "unknown key under %s" % ".".join(map(str, path)), cfg
    if kind == 2:  # a section that is not an object
        section = rnd.choice(["tcp", "rtu", "channels", "identity", "board", "mqtt"])
        value = rnd.choice([[], "x", 5, None, True, [cfg[section]], _deep("list", DEEP)])
        cfg[section] = value
        return "section %s = %.40r" % (section, value), cfg
    if kind == 3:  # the top level is not an object
        value = rnd.choice([[], [cfg], "config", 5, None, _deep("list", DEEP)])
        return "top level %.40r" % (value,), value
    # several values replaced at once
    for path in rnd.sample(paths[1:], 3):
        try:
            _set(cfg, path, nasty_values(rnd))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed the place
    return "three values replaced", cfg


def _get(root, path):
    for k in path:
        root = root[k]
    return root


def _text_mutation(rnd):
    text = json.dumps(SEED, indent=rnd.choice([None, 2])).encode()
    kind = rnd.randrange(7)
    i = rnd.randrange(len(text))
    if kind == 0:
        return "byte %d deleted" % i, text[:i] + text[i + 1:]
    if kind == 1:
        b = rnd.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"x", b"0", b"-", b" ", b"\x00", b"\n",
                        "\u00e9".encode(), b"NaN", b"true", b"//"])
        return "%r inserted at %d" % (b, i), text[:i] + b + text[i:]
    if kind == 2:
        b = rnd.choice([b"\xff", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\x80"])
        return "invalid UTF-8 %r at %d" % (b, i), text[:i] + b + text[i + 1:]
    if kind == 3:
        return "cut short at %d" % i, text[:i]
    if kind == 4:
        return "byte order mark", b"\xef\xbb\xbf" + text
    if kind == 5:
        j = min(len(text), i + rnd.randrange(1, 40))
        return "bytes %d..%d repeated" % (i, j), text[:j] + text[i:j] + text[j:]
    j = min(len(text), i + rnd.randrange(1, 40))
    return "bytes %d..%d deleted" % (i, j), text[:i] + text[j:]


def mutations(n, seed=0):
    """n (description, file bytes) pairs, the same ones for the same seed."""
    rnd = random.Random(seed)
    for _ in range(n):
        if rnd.random() < 0.5:
            what, value = _tree_mutation(rnd)
            # CPython writes what json.loads reads back (NaN and Infinity are not produced here)
            yield what, json.dumps(value).encode()
        else:
            yield _text_mutation(rnd)
