"""Home Assistant MQTT discovery (docs/mqtt.md, "Home Assistant discovery"): the points
(configured, and with mqtt.discovery_channels the onboard channels as implicit points made by
discoverystart.channels) announced as entities of one device. Imported only when mqtt.discovery is true, and then
at the bridge's first connect, not at start-up (mbnode.mqtt.bridge.start: discover()).

Each point gets one retained device-based discovery message on
<discovery_prefix>/device/<node>_<id>/config: the shared device block ("dev": identifiers,
name, manufacturer, model, firmware version, the MAC as a connection where the board has one),
the origin ("o"), availability from the bridge's <root>/status (its "online" and last will
"offline") and one component in "cmps". Home Assistant puts every entity with the same device
identifiers on one device. One message per point keeps each payload a few hundred bytes; it is
written into one buffer made at start-up (the longest message's size), in small pieces, only
when it is sent: a loop timer sends one per turn of the event loop (each turn its own bridge
budget), never all of them at once, and sending never needs a large free block of the heap.

  point table        component      state topic      command topic
  coil               switch         <root>/<point>   <root>/<point>/set (true / false)
  discrete           binary_sensor  <root>/<point>   -
  input              sensor         <root>/<point>   -
  holding, memory    number         <root>/<point>   <root>/<point>/set (the number)
  holding ascii      sensor         <root>/<point>   -

Commands are the points' /set: the same Telemetry.write, the Engine with SOURCE_MQTT, so
limits, exceptions and write protection apply as to any /set. The messages go out after every
connect and whenever Home Assistant says "online" on <discovery_prefix>/status; a second after
the last one every point's state is published again, for an entity that subscribed after the
connect's own publish (retained points never need that).

node: the bridge's client id (mqtt.client_id, or "mbnode-" + the board's unique id) with every
character outside [A-Za-z0-9_-] as "_"; id: the point's name with "." as "_" (a name whose id
another point has already gets "_" appended until it is unique). unique_id: <node>_<id>.
"""

import json
import time

from mbnode import VERSION
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, AO_MAX, ONBOARD
from mbnode.datatypes import F32_MAX, limits

STATES_AFTER_MS = 1000  # the points' states again this long after the last discovery message
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_BOOL = "{{ 'ON' if value_json.value else 'OFF' }}"
_VALUE = "{{ value_json.value }}"


def node_id(text):
    """text with every character Home Assistant does not take in a discovery id as "_"."""
    return "".join([c if c in _ID_CHARS else "_" for c in text])


class Discovery:
    def __init__(self, loop, bridge, telemetry, prefix, identity, mac=""):
        """bridge: the Bridge (publish, begin, greet, listen); telemetry: its Telemetry (the
        points); prefix: mqtt.discovery_prefix; identity: the identity section (device name,
        vendor, product); mac: "AA:BB:..." or "" (no connection then)."""
        self.bridge = bridge
        self.telemetry = telemetry
        self.node = node_id(bridge.m["client_id"])
        self.topic = prefix + "/device/" + self.node + "_"  # + <id>/config
        dev = {"ids": [self.node], "name": identity["device_name"] or self.node, "sw": VERSION}
        for key, name in (("mf", "vendor_name"), ("mdl", "product_name"), ("mdl_id", "product_code")):
            if identity[name]:
                dev[key] = identity[name]
        if mac:
            dev["cns"] = [["mac", mac.lower()]]
        # Everything before the component, the same in every message: the start of self.buf.
        head = ('{"dev":%s,"o":{"name":"mbnode","sw":%s},"avty_t":%s,"qos":%d,"cmps":{' % (
            json.dumps(dev), json.dumps(VERSION), json.dumps(bridge.status_topic().decode()), bridge.qos)).encode()
        # ids: only those that differ from the name with "." as "_" are kept.
        self.renamed = {}
        seen = []
        for i, p in enumerate(telemetry.points):
            oid = p.name.replace(".", "_")
            while oid in seen:
                oid += "_"
            seen.append(oid)
            if oid != p.name.replace(".", "_"):
                self.renamed[i] = oid
        longest = max([len(p.name) for p in telemetry.points]) + 2 * len(self.renamed)
        bridge.room(len(self.topic) + longest + 7)
        # One buffer for every message, made now while the heap is in one piece: a message is
        # written into it in small pieces, so sending one never needs a large free block.
        self.start = len(head)
        self.buf = bytearray(self.start + max([sum([len(b) for b in self.pieces(i)])
                                               for i in range(len(telemetry.points))]))
        self.buf[:self.start] = head
        self.status = (prefix + "/status").encode()
        bridge.listen(self.status, self.birth)
        bridge.greet += (self.connected,)
        self.next = -1  # the point announced next; -1: none; -2: the states are due at self.at
        self.at = 0
        loop.add_timer(self)

    def oid(self, i):
        return self.renamed.get(i) or self.telemetry.points[i].name.replace(".", "_")

    def connected(self):
        """The bridge (re)connected: announce every point again."""
        self.next = 0

    def birth(self, payload):
        """A message on <discovery_prefix>/status: Home Assistant (re)started when "online"."""
        if payload == b"online":
            self.next = 0

    def component(self, i):
        """The component of point i: a dict of abbreviated discovery keys."""
        p = self.telemetry.points[i]
        c = {"name": p.name, "uniq_id": self.node + "_" + self.oid(i), "stat_t": self.telemetry.topic(i).decode()}
        t = p.table
        if t == COILS or t == DISCRETE_INPUTS:
            c["val_tpl"] = _BOOL
            if t == COILS:
                c.update(p="switch", cmd_t=c["stat_t"] + "/set", pl_on="true", pl_off="false",
                         stat_on="ON", stat_off="OFF")
            else:
                c.update(p="binary_sensor", pl_on="ON", pl_off="OFF")
        else:
            c["val_tpl"] = _VALUE
            if t == HOLDING and p.numeric:
                c.update(p="number", cmd_t=c["stat_t"] + "/set", mode="box")
                if p.fmt[1] in "fd":
                    c.update(min=-F32_MAX, max=F32_MAX, step=0.001)
                else:
                    lo, hi = limits(p)
                    if p.address < ONBOARD and p.width == 1 and not p.bswap:
                        lo, hi = 0, AO_MAX  # onboard AO: 10 bits (the Engine refuses more)
                    c.update(min=lo, max=hi, step=1)
            else:  # input registers, text
                c["p"] = "sensor"
                if p.numeric and t == INPUT:
                    c["stat_cla"] = "measurement"
        return c

    def pieces(self, i):
        """What follows the shared head in point i's message, as small bytes objects."""
        yield json.dumps(self.oid(i)).encode()
        sep = ":{"
        for k, v in self.component(i).items():
            yield ('%s"%s":%s' % (sep, k, json.dumps(v))).encode()
            sep = ","
        yield b"}}}"

    def message(self, i):
        """Point i's message written into self.buf; its length."""
        buf = self.buf
        n = self.start
        for b in self.pieces(i):
            buf[n:n + len(b)] = b
            n += len(b)
        return n

    # --- loop timer

    def due_in(self, now):
        if self.bridge.client is None or self.next == -1:
            return -1
        if self.next == -2:
            d = time.ticks_diff(self.at, now)
            return d if d > 0 else 0
        return 0

    def tick(self, now):
        """One discovery message per turn; then, STATES_AFTER_MS later, the points' states."""
        bridge = self.bridge
        i = self.next
        if i == -1 or bridge.client is None:
            return
        bridge.begin()
        if i == -2:
            if time.ticks_diff(now, self.at) >= 0:
                self.next = -1
                self.telemetry.scan(now, True)
            return
        if i >= len(self.telemetry.points):
            self.next = -2
            self.at = time.ticks_add(now, STATES_AFTER_MS)
            return
        self.next = i + 1
        try:
            msg = memoryview(self.buf)[:self.message(i)]
            topic = (self.topic + self.oid(i) + "/config").encode()
        except MemoryError:
            print("mqtt: discovery of point %s: out of memory; announced at the next connect"
                  % self.telemetry.points[i].name)
            return
        if not bridge.publish(topic, msg, True):
            self.next = -1  # the connection broke: connected() starts again
