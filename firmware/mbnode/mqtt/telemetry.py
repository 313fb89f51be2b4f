"""Telemetry for the MQTT bridge: the configured points, read from the local data model and
published as JSON, and their /set writes (docs/mqtt.md).

Every SCAN_MS the point batches (mbnode.mqtt.points.plan) are read through the Engine, as a master
would read them, into one response buffer. A batch whose bytes did not change since the last
scan is not decoded at all unless a periodic publish is due, so a quiet device costs a few
copies per scan. Writes go through the Engine too, so limits, exceptions and the onboard AO
range apply to MQTT as to Modbus.
"""

import time

from mbnode.mqtt import points, textproto

SCAN_MS = 100


def unix_ms():
    """Milliseconds since 1970 (right once the board's clock is set, e.g. by ntptime)."""
    return time.time_ns() // 1000000


class Telemetry:
    def __init__(self, engine, model, point_list, retain, root, publish):
        """point_list: the checked mqtt.points; retain: mqtt.retain; root: b"<base><root>/";
        publish(topic, payload, retain) -> False when not connected."""
        self.engine = engine
        self.publish = publish
        self.root = root
        self.points = [points.Point(d, retain) for d in point_list]
        self.by_name = {}
        for p in self.points:
            p.topic = root + p.name.encode()
            p.last = None  # the value last published, and when (ticks_ms)
            p.last_ms = None
            self.by_name[p.name] = p
        self.batches = points.plan(self.points, model.is_present)
        self.seen = [None] * len(self.batches)  # each batch's response bytes at the last scan
        self.writable = any(p.writable for p in self.points)
        self.req = bytearray(260)
        self.resp = bytearray(260)
        self.begin = None  # the bridge's begin(), called before a /res published later
        self.next = time.ticks_ms()

    def due_in(self, now):
        d = time.ticks_diff(self.next, now)
        return d if d > 0 else 0

    def scan(self, now, everything=False):
        """Publish what changed or is due; everything: each point now (after a connect)."""
        self.next = time.ticks_add(now, SCAN_MS)
        ts = None
        for i, b in enumerate(self.batches):
            n = self.engine.handle(self.req, 0, b.request(self.req), self.resp, 0)
            raw = self.resp[:n]
            if raw == self.seen[i] and not everything and not self._due(b, now):
                continue
            self.seen[i] = raw
            try:
                values = b.values(self.resp, n)
            except ValueError as e:
                print("mqtt: points %s: %s" % (", ".join([p.name for p, _ in b.items]), e))
                continue
            for p, v in values:
                if everything or points.should_publish(p, p.last, v, now, p.last_ms):
                    if ts is None:
                        ts = unix_ms()
                    if not self.publish(p.topic, points.message(p, v, ts).encode(), p.retain):
                        return
                    p.last = v
                    p.last_ms = now

    def _due(self, batch, now):
        for p, _ in batch.items:
            if p.every_ms and (p.last_ms is None or time.ticks_diff(now, p.last_ms) >= p.every_ms):
                return True
        return False

    def too_long(self, size, limit):
        """The /res payload for a /set message of size bytes, more than limit (mqtt.max_message)."""
        return points.result(unix_ms(), "payload of %d bytes: allowed at most %d (mqtt.max_message)" % (size, limit))

    def write(self, name, payload):
        """Write a /set payload to the point called name; the /res payload."""
        p = self.by_name.get(name)
        if p is None:
            return points.result(unix_ms(), "no point named %s" % name)
        try:
            n = points.write_pdu(p, points.parse_set(payload), self.req)
        except ValueError as e:
            return points.result(unix_ms(), e.args[0])
        if self.engine.handle(self.req, 0, n, self.resp, 0, _Later(self, p), 3) == 0:  # pdu.SOURCE_MQTT
            return None  # pdu.PENDING: a write to extension modules, answered by set_done
        return self.set_done(p, self.resp, 0)

    def set_done(self, p, buf, o, late=False):
        """The /res payload for the answer PDU buf[o:] of a /set write to point p; published
        here when the answer came later (late)."""
        self.next = time.ticks_ms()  # publish the new value on the next turn
        if buf[o] & 0x80:
            res = points.result(unix_ms(), textproto.exception_text(buf[o + 1]))
        else:
            res = points.result(unix_ms())
        if late:
            self.begin()
            self.publish(p.topic + b"/res", res.encode(), False)
        return res


class _Later:
    """The Engine's waiter for a /set write to extension modules' outputs (pdu.PENDING)."""

    def __init__(self, telemetry, point):
        self.telemetry = telemetry
        self.point = point

    def finish(self, status, buf, o, n):
        self.telemetry.set_done(self.point, buf, o, True)
