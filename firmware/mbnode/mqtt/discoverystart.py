"""Home Assistant discovery's start (only with mqtt.discovery; mbnode.mqtt.bridge.start calls
later()): mbnode.mqtt.discovery is loaded and made at the bridge's first connect, not at
start-up. The peak of start-up (the configuration, the start-up code) is gone then, and the
module's code and buffer find room where, loaded inside start(), a heap near its smallest had
none (docs/mqtt.md, "Home Assistant discovery"). Out of memory then: tried again at the next
connect, and Modbus is served meanwhile. A module of its own, so that a bridge without
discovery carries none of this; unloaded once discovery is made.
"""


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
        bridge.greet.remove(discover)
        _forget()  # this module's work is done
        try:  # listen() subscribes from the next connect on; this one is under way
            bridge.client.subscribe(d.status, bridge.qos)
        except Exception as e:  # noqa: BLE001 - as the bridge's own subscriptions
            bridge._drop("subscribe to %s" % d.status.decode(), e)
            return
        d.connected()

    bridge.greet.append(discover)


def _forget():
    import sys

    import mbnode.mqtt

    sys.modules.pop("mbnode.mqtt.discoverystart", None)
    if hasattr(mbnode.mqtt, "discoverystart"):
        delattr(mbnode.mqtt, "discoverystart")
