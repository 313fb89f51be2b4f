"""The MQTT bridge's start (mbnode.mqtt.bridge.start loads this module, calls start() and unloads
it again): what only start-up runs, with its texts, so that none of it stays in RAM with the
running bridge (as .mpy each string constant of a loaded module stays; from ROMFS 16 bytes each).
"""

import sys

from mbnode.mqtt.bridge import Bridge

try:
    from umqtt import simple
except ImportError:
    simple = None

# The keys of the mqtt section the bridge reads once it runs (mbnode.mqtt.bridge, connect, discovery).
RUNNING = ("client_id", "host", "port", "user", "password", "keepalive", "clean_session", "reconnect", "max_message",
           "queue", "serial_devices")


def _tls_context(tls):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls["insecure"]:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=tls["ca"])
    if tls["cert"]:
        ctx.load_cert_chain(tls["cert"], tls["key"])
    return ctx


def _client_id(m):
    if m["client_id"]:
        return m["client_id"]
    try:
        from binascii import hexlify
        from machine import unique_id

        return "mbnode-" + hexlify(unique_id()).decode()
    except ImportError:  # the unix port: the host's machine id and the simulator's process id
        with open("/etc/machine-id") as f:
            host = f.read(8)
        with open("/proc/self/stat") as f:
            return "mbnode-%s-%s" % (host, f.read(16).split()[0])


def start(loop, engine, model, cfg, board, tcp, masters, slave_line=None, publishers=()):
    """The bridge on the loop; returns the words for the ready line. tcp: the TcpSlave or None;
    masters: mbnode.masters.Masters, where the gateway's remote requests go, or None (made at
    the first remote request: mbnode.mqtt.relay); slave_line: the
    name of the serial line this device is a slave on, or None; publishers: optional parts that
    publish through the bridge (the poller): each is given attach(publish, base, root) and
    returns the longest topic it publishes on."""
    if simple is None:
        print("mqtt: mqtt.enabled needs umqtt.simple (on a board: mpremote mip install umqtt.simple)",
              file=sys.stderr)
        if not getattr(board, "KEEP_SERVING", False):
            sys.exit(1)
        return ["mqtt", "off"]  # a board keeps serving Modbus without the bridge
    from mbnode.mqtt.relay import Relay

    m = cfg["mqtt"]
    own = None
    if tcp is not None:
        host, tcp_port = tcp.address
        hosts = [host]
        addresses = []
        if host == "0.0.0.0" or host == "127.0.0.1":
            hosts = ["127.0.0.1", "localhost"]
            if host == "0.0.0.0" and hasattr(board, "addresses"):  # boards with a network interface
                addresses = board.addresses()  # the board's live list: Wi-Fi may come later
        own = (hosts, tcp_port, addresses)
    ids = m["serial_devices"]
    names = [cfg[key]["name"] for key in ("rtu", "rtu2") if cfg[key]["enabled"] and cfg[key]["name"] not in ids]
    if names:  # every serial line's name is a SERIAL_DEVICE_ID too
        m["serial_devices"] = ids + names
    relay = Relay(engine, cfg["unit_id"], own, masters, slave_line, None, m["parallel"], loop)
    m["client_id"] = _client_id(m)
    bridge = Bridge(loop, m, relay, _tls_context(m["tls"]) if m["tls"]["enabled"] else None)
    relay.finish = bridge.reply
    pts = m["points"]
    if m["discovery"] and m["discovery_channels"]:  # the onboard channels as implicit points
        from mbnode.mqtt.discoverystart import channels

        more, left = channels(pts, cfg["channels"])
        pts = pts + more
        if left:
            print("mqtt: discovery: %d onboard channels left out (at most %d implicit points; name them "
                  "in mqtt.points)" % (left, len(more)))
    if pts:
        from mbnode.datatypes import NAME_MAX
        from mbnode.mqtt.telemetry import Telemetry

        bridge.telemetry = Telemetry(engine, model, pts, m["retain"], bridge)
        # The points' topics under root (and their /set, /res) widen the limits.
        bridge.max_topic = max(bridge.max_topic, len(bridge.t_root) + NAME_MAX + 4)
        bridge.room(bridge.max_topic)
        if m["discovery"]:  # Home Assistant discovery of the points, loaded at the first connect
            from mbnode.mqtt.discoverystart import later

            later(loop, bridge, m["discovery_prefix"], cfg["identity"], board)
    base = (m["prefix"] + "/" if m["prefix"] else "").encode()
    for part in publishers:
        bridge.room(part.attach(bridge.publish, base, bridge.t_root))  # _send writes the topic into hdr
        if hasattr(part, "connected"):  # a part that publishes its state on every connect
            bridge.greet += (part.connected,)
    # The running bridge reads only these of the section (each connect, the back-off, the limits
    # on requests): the rest (its topics' texts, tls, the points, discovery's) is not kept with it.
    bridge.m = {k: m[k] for k in RUNNING}
    return ["mqtt", "%s:%d" % (m["host"], m["port"])]
