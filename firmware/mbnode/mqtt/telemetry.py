"""Telemetry for the MQTT bridge: the configured points, read from the local data model and
published as JSON, and their /set writes (docs/mqtt.md).

Every _SCAN_MS the point batches (mbnode.mqtt.points.plan) are read through the Engine, as a master
would read them, into the device's scratch buffer (mbnode.scratch: each answer is compared,
copied and decoded before the next, all inside one scan). A batch whose bytes did not change
since the last scan is not decoded at all unless a periodic publish is due, so a quiet device
costs a few copies per scan. Writes go through the Engine too, so limits, exceptions and the
onboard AO range apply to MQTT as to Modbus; a /set write's request PDU and its answer are in the
scratch buffer too, read into the /res payload in the same call (or, for extension modules'
outputs, answered later from the module's job: pdu.PENDING).
"""

import time

from mbnode import fast
from mbnode.mqtt import points, textproto
from mbnode.scratch import SCRATCH

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_SCAN_MS = const(100)


def unix_ms():
    """Milliseconds since 1970 (right once the board's clock is set, e.g. by ntptime)."""
    return time.time_ns() // 1000000


class Telemetry:
    def __init__(self, engine, model, point_list, retain, bridge):
        """point_list: the checked mqtt.points; retain: mqtt.retain; bridge: the Bridge, whose
        publish(topic, payload, retain) (False when not connected) and begin() (before a /res
        published later) are used, and whose t_root (b"<base><root>/") the topics are under.
        What each point is beyond its layout is kept in tables indexed by its number in points:
        one object per point with these as attributes would take a larger hash table each."""
        self.engine = engine
        self.bridge = bridge
        self.points = [points.Point(d, retain) for d in point_list]
        self.last = [None] * len(self.points)  # the value last published, and when (ticks_ms)
        self.last_ms = [None] * len(self.points)
        # (reqs, order, offsets, ends): the read requests and their points, points.plan
        self.batches = points.plan(self.points, model.is_present)
        reqs = self.batches[0]
        # Each batch's answer at the last scan, one after the other: its length (0: none) and
        # room for its bytes (points.answer_size), compared and copied in place.
        self.seen = bytearray(sum([1 + points.answer_size(reqs, r) for r in range(0, len(reqs), 5)]))
        self.writable = any([points.writable(p) for p in self.points])
        self.next = time.ticks_ms()

    def topic(self, k):
        """Point number k's topic, <root>/<name>: made for each publish, like its payload (kept,
        the points' topics would take a bytes object each for as long as the bridge runs)."""
        return self.bridge.t_root + self.points[k].name.encode()

    def due_in(self, now):
        d = time.ticks_diff(self.next, now)
        return d if d > 0 else 0

    def scan(self, now, everything=False):
        """Publish what changed or is due; everything: each point now (after a connect)."""
        self.next = time.ticks_add(now, _SCAN_MS)
        reqs, order, offsets, ends = self.batches
        pts = self.points
        resp = SCRATCH  # a batch's answer (at most 252 bytes), used up before the next
        seen = self.seen
        ts = None
        j = 0  # the batch's first entry in order
        at = 0  # its place in seen
        for i in range(len(ends)):
            n = self.engine.handle(reqs, 5 * i, 5, resp, 0)
            first, j = j, ends[i]
            size = points.answer_size(reqs, 5 * i)
            if self._same(at, n) and not everything and not self._due(first, j, now):
                at += 1 + size
                continue
            if n <= size:  # a longer answer is malformed (reported below): never the same
                seen[at] = n
                fast.copy(seen, at + 1, resp, 0, n)
            else:
                seen[at] = 0
            at += 1 + size
            try:
                points.check_answer(reqs, 5 * i, resp, n)
            except ValueError as e:
                print("mqtt: points %s: %s" % (", ".join([pts[k].name for k in order[first:j]]), e))
                continue
            for x in range(first, j):
                k = order[x]
                p = pts[k]
                v = points.decode(p, resp, offsets[x])
                if everything or points.should_publish(p, self.last[k], v, now, self.last_ms[k]):
                    if ts is None:
                        ts = unix_ms()
                    if not self.bridge.publish(self.topic(k), points.message(p, v, ts).encode(), p.retain):
                        return
                    self.last[k] = v
                    self.last_ms[k] = now

    def _same(self, at, n):
        # Whether the answer in SCRATCH[:n] is the one kept at seen[at] (no copy: scans allocate nothing).
        seen = self.seen
        buf = SCRATCH
        if seen[at] != n:
            return False
        for x in range(n):
            if seen[at + 1 + x] != buf[x]:
                return False
        return True

    def _due(self, first, end, now):
        # Whether a periodic publish is due for a point of order[first:end] (one batch).
        order = self.batches[1]
        for x in range(first, end):
            k = order[x]
            every = self.points[k].every_ms
            if every and (self.last_ms[k] is None or time.ticks_diff(now, self.last_ms[k]) >= every):
                return True
        return False

    def write(self, name, payload):
        """Write a /set payload to the point called name; the /res payload."""
        for k in range(len(self.points)):
            if self.points[k].name == name:
                break
        else:
            return points.result(unix_ms(), "no point named %s" % name)
        try:
            n = points.write_pdu(self.points[k], points.parse_set(payload), SCRATCH, 0)
        except ValueError as e:
            return points.result(unix_ms(), e.args[0])
        # The request in SCRATCH[:n] and its answer behind it, never overlapping: at most 256 + 2
        # bytes (FC16 of 125 registers is refused with an exception) or 252 + 5.
        if self.engine.handle(SCRATCH, 0, n, SCRATCH, n, _Later(self, k), 3) == 0:  # pdu.SOURCE_MQTT
            return None  # pdu.PENDING: a write to extension modules, answered by set_done
        return self.set_done(k, SCRATCH, n)

    def set_done(self, k, buf, o, late=False):
        """The /res payload for the answer PDU buf[o:] of a /set write to point number k;
        published here when the answer came later (late)."""
        self.next = time.ticks_ms()  # publish the new value on the next turn
        if buf[o] & 0x80:
            res = points.result(unix_ms(), textproto.exception_text(buf[o + 1]))
        else:
            res = points.result(unix_ms())
        if late:
            self.bridge.begin()
            self.bridge.publish(self.topic(k) + b"/res", res.encode(), False)
        return res


class _Later:
    """The Engine's waiter for a /set write to extension modules' outputs (pdu.PENDING)."""

    def __init__(self, telemetry, k):
        self.telemetry = telemetry
        self.k = k  # the point's number

    def finish(self, status, buf, o, n):
        self.telemetry.set_done(self.k, buf, o, True)
