"""The MQTT bridge's connect (mbnode.mqtt.bridge.Bridge._connect): loaded for each connect and
dropped again, so its texts and the socket stand-in umqtt.simple connects through (_Net) stay
off the heap while the bridge is connected. See bridge.py's docstring for what _Wire does.
"""

import socket
import sys
import time

from umqtt import simple

from mbnode.mqtt.bridge import _Wire


class _Net:
    """Stands in for the socket module inside umqtt.simple while it connects."""

    getaddrinfo = staticmethod(socket.getaddrinfo)

    def __init__(self, bridge, tls):
        self.bridge = bridge
        self.tls = tls

    def socket(self, *args):
        s = socket.socket(*args)
        # A PUBLISH goes out in two writes (Bridge._send): without TCP_NODELAY (6, 1 on Linux and
        # lwIP alike; the unix port's socket module has no names for them) Nagle holds the second
        # for the broker's delayed ACK, 40 ms on Linux.
        try:
            s.setsockopt(6, 1, 1)
        except OSError:
            pass
        b = _Wire(s, self.bridge)
        if self.tls:
            # The ssl module wraps a real socket: the handshake is bounded by its timeout only.
            b._arm()
            return b.s
        return b


def connect(bridge):
    """Connect bridge to its broker, subscribe, publish "online" and greet; on failure, drop
    (bridge._drop: the next retry is due after the back-off)."""
    m = bridge.m
    c = simple.MQTTClient(m["client_id"], m["host"], m["port"], m["user"] or None, m["password"],
                          m["keepalive"], ssl=bridge.tls)
    if bridge.tls is not None and hasattr(c, "ssl_params"):
        print("mqtt: tls needs umqtt.simple 1.4 or later (mpremote mip install umqtt.simple); "
              "not connecting", file=sys.stderr)
        bridge.retry_at = time.ticks_add(time.ticks_ms(), 3600000)
        return
    c.set_callback(bridge._on_message)
    c.set_last_will(bridge.status_topic(), b"offline", True, bridge.qos)
    simple.socket = _Net(bridge, bridge.tls is not None)
    try:
        c.connect(m["clean_session"])
        if not isinstance(c.sock, _Wire):
            c.sock = _Wire(c.sock, bridge)  # the TLS socket
        bridge.client = c
        bridge.loop.add(c.sock.s, bridge)
        c.subscribe(bridge.t_request, bridge.qos)
        if bridge.telemetry is not None and bridge.telemetry.writable:
            c.subscribe(bridge.t_root + b"+/set", bridge.qos)
        for topic, _ in bridge.subs:
            c.subscribe(topic, bridge.qos)
    except Exception as e:  # noqa: BLE001 - OSError, MQTTException, umqtt's asserts
        bridge._drop("connect to %s:%d" % (m["host"], m["port"]), e)
        return
    finally:
        simple.socket = socket  # umqtt uses it only in connect(): _Net is not kept
    now = time.ticks_ms()
    bridge.last_tx = bridge.last_rx = now
    bridge.ping_at = None
    bridge.delay = 1000 * m["reconnect"]["initial_s"]
    print("mqtt: connected to %s:%d as %s" % (m["host"], m["port"], m["client_id"]))
    if bridge.publish(bridge.status_topic(), b"online", True) and bridge.telemetry is not None:
        bridge.telemetry.scan(now, True)
    for fn in bridge.greet:  # a greet callback may replace the tuple (discovery): this one goes on
        if bridge.client is not None:
            fn()
    bridge._work()
