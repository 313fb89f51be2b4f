"""The MQTT bridge's answers to messages it does not take in (mbnode.mqtt.bridge): a request
while mqtt.queue requests are waiting, and a request or /set payload longer than
mqtt.max_message, which its socket stand-in read and dropped. Loaded for each such answer and
dropped again (bridge._once), so none of these texts stays on the heap; a MemoryError while
loading it ends the bridge's turn like any failure inside umqtt's check_msg (a reconnect).
"""

from mbnode.mqtt.textproto import cookie_of, error


def queue_full(payload, limit):
    """Reply to a request that arrived while `limit` requests were already waiting."""
    return error(cookie_of(payload), "queue full: %d requests waiting, try again later" % limit)


def too_long(head, size, limit):
    """Reply to a request of `size` bytes, more than `limit` (mqtt.max_message), of which only
    the first bytes, head (textproto.HEAD of them), were kept."""
    return error(cookie_of(head, True),
                 "request too long: %d bytes: allowed at most %d (mqtt.max_message)" % (size, limit))


def refused(bridge, topic, head, size):
    """The bridge's socket stand-in dropped a message of `size` bytes (more than
    mqtt.max_message) on topic (None: longer than any topic of the bridge); head: its first
    bytes. A request is answered on the response topic, a /set payload on its /res topic."""
    limit = bridge.m["max_message"]
    if topic == bridge.t_request:
        bridge._send(bridge.t_response, too_long(head, size, limit).encode(), False)
        return
    name = None if topic is None else bridge._point(topic)
    if name is None:
        print("mqtt: dropped a message of %d bytes on a topic this device does not answer (its topics have "
              "at most %d bytes)" % (size, bridge.max_topic))
        return
    from mbnode.mqtt.points import result
    from mbnode.mqtt.telemetry import unix_ms

    res = result(unix_ms(), "payload of %d bytes: allowed at most %d (mqtt.max_message)" % (size, limit))
    bridge._send(bridge.t_root + name + b"/res", res.encode(), False)
