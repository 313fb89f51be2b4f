"""Home Assistant discovery's start (only with mqtt.discovery; mbnode.mqtt.bridge.start calls
later()): mbnode.mqtt.discovery is loaded and made at the bridge's first connect, not at
start-up. The peak of start-up (the configuration, the start-up code) is gone then, and the
module's code and buffer find room where, loaded inside start(), a heap near its smallest had
none (docs/mqtt.md, "Home Assistant discovery"). Out of memory then: tried again at the next
connect, and Modbus is served meanwhile. A module of its own, so that a bridge without
discovery carries none of this; unloaded once discovery is made.

channels(): the onboard channels as implicit points (mqtt.discovery_channels, docs/mqtt.md
"Onboard channels"), made in start(): plain point objects, checked by nothing else because
they are made right (a table, an address that is present, a name of letters and digits).
"""

MAX_CHANNELS = 32  # implicit points at most, and with the configured ones at most 64 (pointsconfig.MAX_POINTS)
# (point table, channels section, name prefix), in the order the names are taken in turn
_KINDS = (("coil", "coils", "do"), ("discrete", "discrete_inputs", "di"),
          ("input", "input_registers", "ai"), ("holding", "holding_registers", "ao"))


def channels(points, present):
    """Point objects for the present onboard channels (0x0000-0x003F of each table) that no
    configured point reads and whose name no point has: do<n> (coils), di<n>, ai<n>, ao<n>,
    n the address. points: the checked mqtt.points; present: the channels section. At most
    MAX_CHANNELS, and 64 points in all,
    taken in turn (do0, di0, ai0, ao0, do1, ...) so every kind gets its first channels; returns
    (list, channels left out)."""
    from mbnode.datamodel import ONBOARD
    from mbnode.typenames import TABLES, TYPES

    cap = min(MAX_CHANNELS, 64 - len(points))
    names = [d["name"] for d in points]
    taken = []  # (table, first address, channels) of each configured point outside memory
    for d in points:
        if d["table"] != "memory":
            t = d["type"]
            n = d["count"] if t == "ascii" else max(1, TYPES[t][1] >> 1)
            taken.append((TABLES[d["table"]][0], d["address"], n))
    lists = []
    for table, section, prefix in _KINDS:
        tab = TABLES[table][0]
        out = []
        for lo, hi in present[section]:
            for a in range(lo, min(hi, ONBOARD - 1) + 1):
                name = prefix + str(a)
                if name in names or [1 for t, f, n in taken if t == tab and f <= a < f + n]:
                    continue
                out.append({"name": name, "table": table, "address": a})
        lists.append(out)
    made = []
    i = 0
    while len(made) < cap and [1 for x in lists if len(x) > i]:
        made += [x[i] for x in lists if len(x) > i][:cap - len(made)]
        i += 1
    return made, sum([len(x) for x in lists]) - len(made)


def later(loop, bridge, prefix, identity, board):
    ident = {}
    for k in ("device_name", "vendor_name", "product_name", "product_code"):
        ident[k] = identity[k]
    mac = board.mac() if hasattr(board, "mac") else ""

    def discover():  # a greet callback of the bridge: after each connect until it succeeds
        try:
            from mbnode.mqtt.discovery import Discovery

            d = Discovery(loop, bridge, bridge.telemetry, prefix, ident, mac)
        except MemoryError:
            print("mqtt: discovery: out of memory; tried again at the next connect")
            return
        bridge.greet = tuple([fn for fn in bridge.greet if fn is not discover])
        _forget()  # this module's work is done
        try:  # listen() subscribes from the next connect on; this one is under way
            bridge.client.subscribe(d.status, bridge.qos)
        except Exception as e:  # noqa: BLE001 - as the bridge's own subscriptions
            bridge._drop("subscribe to %s" % d.status.decode(), e)
            return
        d.connected()

    bridge.greet += (discover,)


def _forget():
    import sys

    import mbnode.mqtt

    sys.modules.pop("mbnode.mqtt.discoverystart", None)
    if hasattr(mbnode.mqtt, "discoverystart"):
        delattr(mbnode.mqtt, "discoverystart")
