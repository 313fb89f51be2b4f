"""The MQTT bridge: umqtt.simple on the shared event loop (docs/mqtt.md).

Imported only when mqtt.enabled is true. The broker connection is one more socket in the loop:
a readable socket runs umqtt's check_msg (one packet), a loop timer connects, reconnects with
exponential back-off, sends keepalive pings and scans the telemetry points. Gateway requests
(mbnode.mqtt.textproto) are queued as they arrive and run by mbnode.mqtt.relay, several remote
ones at once (mqtt.parallel) and local ones at once; /set writes and telemetry go through
mbnode.mqtt.telemetry.

umqtt.simple is used as it is, through the socket it is given: while it connects, its
module-level `socket` is replaced by mbnode.mqtt.connect's stand-in, whose sockets (_Wire) do
three things umqtt cannot.
- Every blocking call gets only what is left of BUDGET_MS, counted from the start of the
  bridge's current turn in the loop (one packet read, one connect, one scan). A turn that runs
  out drops the connection (reconnect follows), so Modbus serving waits at most BUDGET_MS for
  the bridge, plus, on boards, the DNS lookup of a broker given by name.
- _Wire reads each packet's fixed header itself, before umqtt asks for it, and hands umqtt the
  same bytes. A PUBLISH longer than mqtt.max_message (or on a topic longer than any the bridge
  subscribes to) never reaches umqtt, which would read it whole into one object: _Wire keeps
  its first bytes (the cookie), reads the rest into a small buffer and drops it, a piece per
  loop turn, and the bridge answers "request too long". This is the only level where it can
  be done without a copy of umqtt: its wait_msg reads the payload with one read(n).
- Replies are published by the bridge itself (_send): umqtt's publish() with QoS 1 waits for
  the PUBACK inside the call, reading every packet that comes first, requests included, whose
  replies then had to be parked (up to 16; a burst of requests lost the rest). _send writes
  the PUBLISH and returns; _Wire drops the PUBACK when it comes. With nothing nested, every
  reply is written when it is made, and the broker is read one packet per loop turn: TCP's flow
  control is the back-pressure, no reply is ever parked or dropped.
"""

import errno
import sys
import time

from mbnode.mqtt import textproto

BUDGET_MS = 1000


def _once(name):
    """mbnode.mqtt.<name> for one use on a rare path (a connect, start-up, a message turned away):
    loaded and forgotten by sys.modules and the package at once, so it leaves the heap with the
    caller's reference; a MemoryError while loading it is the caller's."""
    import mbnode.mqtt

    try:
        return __import__("mbnode.mqtt." + name, None, None, (name,))
    finally:
        sys.modules.pop("mbnode.mqtt." + name, None)
        if hasattr(mbnode.mqtt, name):
            delattr(mbnode.mqtt, name)


class _Wire:
    """The broker socket as umqtt.simple sees it (see the module docstring)."""

    def __init__(self, sock, bridge):
        self.s = sock
        self.bridge = bridge
        self.blocking = True
        self.head = bytearray(7)  # the current packet's fixed header (+ a PUBLISH's topic length)
        self.hpos = self.hlen = 0  # how much of head umqtt has read / head holds
        self.left = 0  # bytes of the current packet after head that umqtt has not read
        self.skip = 0  # bytes to read and drop before the next packet (a refused PUBLISH, a PUBACK)

    def _arm(self):
        left = time.ticks_diff(self.bridge.deadline, time.ticks_ms())
        if left <= 0:
            raise OSError(errno.ETIMEDOUT)
        self.s.settimeout(left / 1000)

    def connect(self, addr):
        self._arm()
        self.s.connect(addr)

    def setblocking(self, flag):
        # umqtt's check_msg sets False before the first byte of a packet, wait_msg True after
        # it. Only that byte is read without waiting; every other call is bounded (_arm).
        self.blocking = flag
        if not flag and (self.left or self.hpos < self.hlen):
            # umqtt did not read all of a packet (wait_msg returns unknown types unread): drop
            # the rest, or a payload byte would be taken for the next packet's type.
            self.skip += self.left
            self.hpos = self.hlen = self.left = 0

    def write(self, buf, n=None):
        self._arm()
        return self.s.write(buf) if n is None else self.s.write(buf, n)

    def close(self):
        self.s.close()

    def _get(self, n):
        # n bytes of the current packet, waiting for them within the budget.
        self._arm()
        b = self.s.read(n)
        if len(b) < n:
            raise OSError("mqtt: the broker closed the connection inside a packet")
        return b

    def read(self, n):
        if not n:
            return b""  # an empty payload: not the start of the next packet
        if self.hpos == self.hlen and not self.left:
            b = self._next()
            if b is not True:
                return b  # None: nothing yet (check_msg returns None); b"": the broker closed
        k = min(n, self.hlen - self.hpos)
        out = bytes(self.head[self.hpos:self.hpos + k])
        self.hpos += k
        if k == n:
            return out
        n -= k
        if n > self.left:
            raise OSError("mqtt: umqtt read past the end of a packet")
        self.left -= n
        return out + self._get(n) if k else self._get(n)

    def _drop(self, wait):
        # Read and drop self.skip bytes: all of them (within the budget) when wait, else those
        # that have arrived. False when some are still to come.
        buf = self.bridge.relay.scratch  # see Relay.scratch
        while self.skip:
            if wait:
                self._arm()
            else:
                self.s.setblocking(False)
            n = self.s.readinto(buf, min(self.skip, len(buf)))
            if n is None:
                return False
            if not n:
                raise OSError("mqtt: the broker closed the connection inside a packet")
            self.skip -= n
        return True

    def _next(self):
        """Read the next packet's fixed header into head. True when it is for umqtt; None when
        nothing (more) is there without waiting; b"" when the broker closed."""
        h = self.head
        bridge = self.bridge
        while True:
            if not self._drop(self.blocking):
                return None
            if self.blocking:
                self._arm()
            else:
                self.s.setblocking(False)
            b = self.s.read(1)
            if not b:
                return b
            h[0] = b[0]
            size = shift = 0
            i = 1
            while i == 1 or h[i - 1] & 0x80:  # remaining length: 7 bits a byte, low first
                if i == 5:
                    raise OSError("mqtt: malformed packet from the broker")
                h[i] = self._get(1)[0]
                size |= (h[i] & 0x7F) << shift
                shift += 7
                i += 1
            kind = h[0] & 0xF0
            if kind == 0x40:  # PUBACK of a reply (_send): nobody waits for it
                self.skip = size
                continue
            self.hpos, self.hlen, self.left = 0, i, size
            if kind != 0x30:
                return True
            h[i:i + 2] = self._get(2)  # PUBLISH: the topic length too
            tlen = (h[i] << 8) | h[i + 1]
            pid = 2 if h[0] & 6 else 0
            body = size - 2 - tlen - pid
            if body < 0:
                raise OSError("mqtt: malformed packet from the broker")
            self.hlen = i + 2
            self.left = size - 2
            if tlen <= bridge.max_topic and body <= bridge.m["max_message"]:
                return True
            # Too long to take in: keep the topic when it can be one of ours and the first
            # textproto.HEAD bytes of the payload, acknowledge it (QoS 1), drop the rest as it comes.
            self.hlen = self.left = 0
            topic = None
            if tlen <= bridge.max_topic:
                topic = self._get(tlen)
            else:  # the packet id (QoS 1) comes after it
                self.skip = tlen
                self._drop(True)
            if pid:
                ack = bytearray(b"\x40\x02\0\0")
                ack[2:4] = self._get(2)
                self.write(ack)
            head = self._get(min(body, textproto.HEAD)) if topic is not None else b""
            self.skip = body - len(head)
            _once("turnaway").refused(bridge, topic, head, body)


class Bridge:
    def __init__(self, loop, m, relay, tls=None):
        """m: the checked mqtt section, its client_id filled in (start, which then keeps only
        the values read while the bridge runs: bridgestart.RUNNING); relay:
        mbnode.mqtt.relay.Relay (its finish is self.reply); tls: the ssl.SSLContext with
        mqtt.tls on, else None. telemetry: a mbnode.mqtt.telemetry.Telemetry when there are
        points, set by start()."""
        self.loop = loop
        self.m = m
        self.relay = relay
        self.telemetry = None
        self.greet = ()  # parts to call after each connect (fail-safe publishes its state): += (fn,)
        self.subs = ()  # (topic, fn(payload)): further topics parts listen on (listen())
        base = m["prefix"] + "/" if m["prefix"] else ""
        self.t_request = (base + m["request_topic"]).encode()
        self.t_response = (base + m["response_topic"]).encode()
        self.t_root = (base + m["root"] + "/").encode()
        self.qos = m["qos"]
        self.tls = tls
        # max_topic: no topic the bridge takes messages on is longer (the request topic,
        # <root>/<point>/set, listen()'s); hdr: a PUBLISH's fixed header, topic and packet id
        # (_send), 5 + 2 + topic + 2 bytes, for the longest topic it publishes on (the response
        # topic, <root>/status, <root>/<point>, a /set topic's /res, room()'s).
        self.max_topic = max(len(self.t_request), len(self.status_topic()))
        self.hdr = bytearray(9 + max(len(self.t_response), self.max_topic))
        self.pid = 0  # the packet id of the last QoS 1 publish
        self.queue = []  # request payloads waiting for the relay
        self.again = None  # while _work runs: whether to pass again (a reply came in); else None
        self.client = None
        self.deadline = 0
        self.delay = 1000 * m["reconnect"]["initial_s"]
        self.retry_at = time.ticks_ms()  # the first connect: on the loop's first turn
        self.last_tx = self.last_rx = 0
        self.ping_at = None  # when the ping not yet answered went out; None: none is
        loop.add_timer(self)

    def listen(self, topic, fn):
        """Subscribe to topic (bytes) on every connect from the next on; fn(payload) gets its
        messages, inside umqtt's check_msg (it should only take note)."""
        self.subs += ((topic, fn),)
        self.max_topic = max(self.max_topic, len(topic))
        self.room(self.max_topic)

    def room(self, n):
        """Make _send's header buffer hold a topic of n bytes."""
        if 9 + n > len(self.hdr):
            self.hdr = bytearray(9 + n)

    def status_topic(self):
        """<root>/status: "online" (retained) while connected, the will "offline" after."""
        return self.t_root + b"status"

    def begin(self):
        """Start a turn: blocking socket calls from here on share BUDGET_MS."""
        self.deadline = time.ticks_add(time.ticks_ms(), BUDGET_MS)

    # --- connection

    def _connect(self):
        # mbnode.mqtt.connect, loaded for each connect and dropped again (its texts and the
        # socket stand-in stay off the heap while connected). Out of memory: the next retry.
        try:
            connect = _once("connect").connect
        except MemoryError as e:
            self._drop("connect", e)
            return
        connect(self)

    def _drop(self, what, e):
        c = self.client
        self.client = None
        if c is not None:  # connected (the loop polls its socket)
            self.loop.remove(c.sock.s)
            try:
                c.sock.close()
            except OSError:
                pass
        print("mqtt: %s: %s; reconnecting in %d s" % (what, repr(e) if e is not None else "connection lost",
                                                      self.delay // 1000))
        self.retry_at = time.ticks_add(time.ticks_ms(), self.delay)
        rc = self.m["reconnect"]
        self.delay = min(self.delay * rc["factor"], 1000 * rc["max_s"])

    def _send(self, topic, payload, retain):
        """Write one PUBLISH (mqtt.qos) and return: a QoS 1 PUBACK is dropped by _Wire when it
        comes (see the module docstring). Raises OSError when the connection fails; inside
        umqtt (its callback, _Wire) that is how the failure reaches umqtt's caller."""
        h = self.hdr
        qos = self.qos
        size = 2 + len(topic) + len(payload) + 2 * qos
        h[0] = 0x30 | qos << 1 | (1 if retain else 0)
        i = 1
        while size > 0x7F:
            h[i] = (size & 0x7F) | 0x80
            size >>= 7
            i += 1
        h[i] = size
        n = len(topic)
        h[i + 1] = n >> 8
        h[i + 2] = n & 0xFF
        i += 3
        h[i:i + n] = topic
        i += n
        if qos:
            self.pid = self.pid % 65535 + 1  # 1..65535: 0 is not a packet id
            h[i] = self.pid >> 8
            h[i + 1] = self.pid & 0xFF
            i += 2
        w = self.client.sock
        w.write(h, i)
        w.write(payload)
        self.last_tx = time.ticks_ms()

    def publish(self, topic, payload, retain=False):
        """False when there is no connection or it broke on the way."""
        if self.client is None:
            return False
        try:
            self._send(topic, payload, retain)
        except Exception as e:  # noqa: BLE001
            self._drop("publish on %s" % topic.decode(), e)
            return False
        return True

    # --- incoming

    def on_event(self, sock, events):
        self.begin()
        if events & 0x18:  # POLLERR | POLLHUP
            self._drop("broker connection", None)
            return
        try:
            self.client.check_msg()
        except Exception as e:  # noqa: BLE001
            self._drop("receive", e)
            return
        self.last_rx = time.ticks_ms()
        self.ping_at = None
        self._work()

    def _point(self, topic):
        # The point name of a /set topic under root, or None.
        if self.telemetry is not None and topic.startswith(self.t_root) and topic.endswith(b"/set"):
            name = topic[len(self.t_root):-4]
            if b"/" not in name:
                return name
        return None

    def _on_message(self, topic, msg):
        # Inside umqtt's check_msg (or its wait for a SUBACK while connecting): requests are
        # queued (remote ones) or answered at once (local ones, errors, queue full, /res: _send).
        if topic == self.t_request:
            line = self._now(msg)
            if line is None:
                if len(self.queue) < self.m["queue"]:
                    self.queue.append(msg)
                    return
                line = _once("turnaway").queue_full(msg, self.m["queue"])
            self._send(self.t_response, line.encode(), False)
            return
        for t, fn in self.subs:
            if topic == t:
                fn(msg)
                return
        name = self._point(topic)
        if name is not None:
            res = self.telemetry.write(name.decode(), msg)
            if res is not None:  # None: a write to extension modules, its /res follows
                self._send(self.t_root + name + b"/res", res.encode(), False)

    def _now(self, payload):
        """The reply to a request that needs no job (a local one, a malformed one): it never
        waits behind remote requests. None: the request goes to another device and is queued."""
        try:
            req = textproto.parse(payload, self.m["serial_devices"])
            if self.relay.is_remote(req):
                return None
            return self.relay.start(req)
        except textproto.RequestError as e:
            return e.args[0]
        except MemoryError:  # e.g. a 2000-bit read's reply on a small heap: still an answer
            return textproto.error(textproto.cookie_of(payload), "out of memory for this request")

    def _work(self):
        """Run what can run: every queued request that is answered at once (local ones, errors)
        and remote ones while the relay has a free job; the rest stay queued in order. A
        request kept waiting is parsed again next time (parsing keeps nothing: the queue holds
        only the payloads). A remote request that ends at once (a refused connect) calls reply()
        inside this: that only asks for one more pass."""
        if self.again is not None:  # running: one more pass
            self.again = True
            return
        try:
            self.again = True
            while self.again:
                self.again = False
                self._pass()
        finally:
            self.again = None

    def _pass(self):
        queue = self.queue
        i = 0
        while i < len(queue) and self.client is not None:
            payload = queue[i]
            try:
                req = textproto.parse(payload, self.m["serial_devices"])
                if self.relay.busy and self.relay.is_remote(req):
                    i += 1  # waits for a job; local requests behind it go on
                    continue
                queue.pop(i)
                line = self.relay.start(req)
            except textproto.RequestError as e:
                queue.pop(i)
                line = e.args[0]
            except MemoryError:  # e.g. a 2000-bit read's reply on a small heap: still an answer
                if i < len(queue) and queue[i] is payload:
                    queue.pop(i)
                line = textproto.error(textproto.cookie_of(payload), "out of memory for this request")
            if line is not None:
                self.publish(self.t_response, line.encode())

    def reply(self, line):
        """The relay's answer to a remote request."""
        self.begin()
        if not self.publish(self.t_response, line.encode()):
            print("mqtt: reply lost, no broker connection:", line)
        self._work()

    # --- loop timer

    def due_in(self, now):
        """ms until tick() has work (a connect, a ping, a ping's deadline, a scan); -1: none."""
        if self.client is None:
            return max(0, time.ticks_diff(self.retry_at, now))
        d = -1
        keep_ms = 1000 * self.m["keepalive"]
        if keep_ms:
            if self.ping_at is not None:
                d = time.ticks_diff(time.ticks_add(self.ping_at, keep_ms), now)
            else:
                d = keep_ms // 2 - max(time.ticks_diff(now, self.last_tx), time.ticks_diff(now, self.last_rx))
            d = max(d, 0)
        if self.telemetry is not None:
            t = self.telemetry.due_in(now)
            if d < 0 or t < d:
                d = t
        return d

    def tick(self, now):
        if self.client is None:
            if time.ticks_diff(now, self.retry_at) >= 0:
                self.begin()
                self._connect()
            return
        self.begin()
        keep_ms = 1000 * self.m["keepalive"]
        if keep_ms:
            if self.ping_at is not None:
                if time.ticks_diff(now, self.ping_at) >= keep_ms:
                    self._drop("broker", OSError("no answer to a ping within %d s" % self.m["keepalive"]))
                    return
            elif max(time.ticks_diff(now, self.last_tx), time.ticks_diff(now, self.last_rx)) >= keep_ms // 2:
                try:
                    self.client.ping()
                except Exception as e:  # noqa: BLE001
                    self._drop("ping", e)
                    return
                self.ping_at = self.last_tx = now
        if self.telemetry is not None and self.telemetry.due_in(now) == 0:
            self.telemetry.scan(now)


START_ONLY = ("start",)  # dropped by app.run once the parts are built


def start(loop, engine, model, cfg, board, tcp, masters, slave_line=None, publishers=()):
    """The bridge on the loop; returns the words for the ready line (mbnode.mqtt.bridgestart,
    loaded for this and unloaded again)."""
    return _once("bridgestart").start(loop, engine, model, cfg, board, tcp, masters, slave_line, publishers)
