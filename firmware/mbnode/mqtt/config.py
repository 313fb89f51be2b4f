"""The "mqtt" section of the configuration (docs/mqtt.md): its schema, its own rule kinds and
the rules that involve more than one key. mbnode.config imports this module only when a
configuration has an "mqtt" object, and the firmware unloads it with config after start-up, so
a device without the bridge never spends RAM on it.
"""

from mbnode.config import ConfigError, _ipv4, refused
from mbnode.datamodel import ONBOARD
from mbnode.typenames import TABLE_NAMES


def _hostname(s):
    # A DNS name: dot-separated labels of letters, digits and inner hyphens.
    labels = s.split(".")
    return 0 < len(s) <= 253 and all(
        0 < len(p) <= 63 and p[0] != "-" and p[-1] != "-" and all(c.isalpha() or c.isdigit() or c == "-" for c in p)
        for p in labels) and all(ord(c) < 128 for c in s)


def _topic(s):
    # Printable ASCII without spaces or wildcards, no empty level, not a $SYS-style topic.
    return (len(s) <= 100 and all(32 < ord(c) < 127 and c not in "+#" for c in s)
            and "" not in s.split("/") and s[0] != "$")


def _ids(v):
    return (len(v) <= 8 and all(type(x) is str and 0 < len(x) <= 32 and all(32 < ord(c) < 127 for c in x) for x in v)
            and len(set(v)) == len(v))  # set() after the type check: a list in the list is not hashable


def _points(key, v):
    # mqtt.points: mbnode.mqtt.pointsconfig checks the objects, imported only when there are some.
    if type(v) is list and not v:
        return v
    from mbnode.mqtt import pointsconfig

    try:
        return pointsconfig.check_list(v)
    except ValueError as e:  # (sub-key, value, allowed)
        raise refused(key + e.args[0], e.args[1], e.args[2])


def check_kind(key, v, kind, args):
    """(done, value, ok, allowed, shown) for a rule kind of this section: done means value is
    already the checked value (points); otherwise ok says whether v is allowed."""
    if kind == "points":
        return True, _points(key, v), True, "", None
    shown = None
    if kind == "hostname":
        ok = type(v) is str and (_ipv4(v) or _hostname(v))
        allowed = "allowed an IPv4 address or a hostname such as \"broker.example.com\""
    elif kind == "secret":  # like text, but the value is never shown
        ok = type(v) is str and len(v) <= args[0] and all(32 <= ord(c) < 127 for c in v)
        allowed = "allowed printable ASCII text of at most %d characters" % args
        shown = "(not shown)"
    elif kind == "qos":
        ok = type(v) is int and 0 <= v <= 1
        allowed = "allowed 0 or 1 (umqtt.simple cannot do QoS 2)"
    elif kind == "topic":
        ok = type(v) is str and ((args and v == "") or (v != "" and _topic(v)))
        allowed = ("allowed an MQTT topic of printable ASCII without spaces, \"+\" or \"#\", "
                   "empty levels or a leading \"$\", at most 100 characters") + (" or \"\" (none)" if args else "")
    elif kind == "ids":
        ok = type(v) is list and _ids(v)
        allowed = "allowed a list of at most 8 different names of 1..32 printable characters without spaces"
    else:
        raise ValueError("config schema: unknown rule kind %r" % kind)
    return False, v, ok, allowed, shown


# The MQTT bridge (docs/mqtt.md); its modules are not imported while it is off.
SCHEMA = {
    "enabled": (False, "bool"),
    "host": ("127.0.0.1", "hostname"),
    "port": (0, "int", 0, 65535),  # 0: 1883, or 8883 with TLS
    "client_id": ("", "text", 64),  # "": derived from the machine id at run time
    "user": ("", "text", 100),
    "password": ("", "secret", 100),
    "keepalive": (30, "int", 0, 65535),  # seconds; 0: none (MQTT's own rule)
    "clean_session": (True, "bool"),
    "qos": (0, "qos"),
    "tls": {
        "enabled": (False, "bool"),
        "ca": ("", "text", 100),  # file names on the device; "": none
        "cert": ("", "text", 100),
        "key": ("", "text", 100),
        "insecure": (False, "bool"),
    },
    "prefix": ("", "topic", True),  # prepended with "/" to every topic below
    "request_topic": ("request", "topic"),
    "response_topic": ("response", "topic"),
    "root": ("mbnode", "topic"),  # telemetry: <root>/<point>, <root>/<point>/set, <root>/status
    "retain": (False, "bool"),  # for points whose own retain is null
    "reconnect": {
        "initial_s": (1, "int", 1, 3600),
        "max_s": (30, "int", 1, 3600),
        "factor": (2, "int", 1, 10),
    },
    "queue": (8, "int", 1, 32),  # gateway requests waiting; more are answered ERROR
    "parallel": (4, "int", 1, 8),  # remote gateway requests running at once (docs/mqtt.md)
    # Bytes of a request or /set payload the bridge takes in; a longer one is read and dropped
    # in small pieces, never held (docs/mqtt.md). 1536: every FC16 and anything the device's own
    # engine can execute (FC15 of 576 coils to a 253-character hostname is 1,457 bytes).
    "max_message": (1536, "int", 128, 8192),
    "serial_devices": (["rs485"], "ids"),  # the SERIAL_DEVICE_IDs format 1 accepts
    "points": ([], "points"),
    "discovery": (False, "bool"),  # Home Assistant MQTT discovery of the points (mqtt/discovery.py)
    "discovery_channels": (True, "bool"),  # with discovery: the onboard channels as implicit points
    "discovery_prefix": ("homeassistant", "topic"),  # Home Assistant's; mqtt.prefix is not put before it
}


def check(cfg):
    """The rules of the mqtt section that involve more than one key."""
    mqtt = cfg["mqtt"]
    tls = mqtt["tls"]
    if mqtt["port"] == 0:
        mqtt["port"] = 8883 if tls["enabled"] else 1883
    if (tls["cert"] == "") != (tls["key"] == ""):
        key = "cert" if tls["cert"] == "" else "key"
        raise ConfigError("config: mqtt.tls.%s = \"\": allowed a file name when tls.%s is set (a client "
                          "certificate needs its key)" % (key, "key" if key == "cert" else "cert"))
    if tls["enabled"] and not tls["insecure"] and tls["ca"] == "":
        raise ConfigError("config: mqtt.tls.ca = \"\": allowed a CA file name when tls.insecure is false "
                          "(the broker's certificate is checked against it)")
    if mqtt["password"] and not mqtt["user"]:
        raise ConfigError("config: mqtt.user = \"\": allowed a user name when mqtt.password is set "
                          "(MQTT sends no password without a user name)")
    rc = mqtt["reconnect"]
    if rc["max_s"] < rc["initial_s"]:
        raise ConfigError("config: mqtt.reconnect.max_s = %d: allowed %d..3600 (at least "
                          "reconnect.initial_s)" % (rc["max_s"], rc["initial_s"]))
    onboard = [1 for name in TABLE_NAMES for lo, hi in cfg["channels"][name] if lo < ONBOARD]
    if mqtt["discovery"] and not mqtt["points"] and not (mqtt["discovery_channels"] and onboard):
        raise ConfigError("config: mqtt.discovery = true: allowed only with mqtt.points or onboard channels and "
                          "mqtt.discovery_channels (the points are what Home Assistant is told about)")
    if mqtt["points"]:
        from mbnode.mqtt.pointsconfig import span
    for i, d in enumerate(mqtt["points"]):
        table, first, n = span(d)
        name = TABLE_NAMES[table]
        if not any(lo <= first and first + n - 1 <= hi for lo, hi in cfg["channels"][name]):
            key = "position" if "position" in d else "address"
            raise ConfigError("config: mqtt.points[%d].%s = %d: allowed a channel present in "
                              "channels.%s (0x%04X-0x%04X is not)" % (i, key, d[key], name, first, first + n - 1))
