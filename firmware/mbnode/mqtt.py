"""The MQTT bridge: umqtt.simple on the shared event loop (docs/mqtt.md).

Imported only when mqtt.enabled is true. The broker connection is one more socket in the loop:
a readable socket runs umqtt's check_msg (one packet), a loop timer connects, reconnects with
exponential back-off, sends keepalive pings and scans the telemetry points. Gateway requests
(mbnode.gateway) are queued as they arrive and run one at a time by mbnode.relay; /set writes
and telemetry go through mbnode.telemetry.

umqtt.simple blocks in its socket calls. The bridge bounds that: umqtt's module-level `socket`
is replaced by _Net, whose sockets (_Bounded) give every blocking call only what is left of
BUDGET_MS, counted from the start of the bridge's current turn in the loop (one packet read,
one connect, one scan). A turn that runs out drops the connection (reconnect follows), so
Modbus serving waits at most BUDGET_MS for the bridge, plus, on boards, the DNS lookup of a
broker given by name. umqtt's callback only queues: publishing from inside it would nest in
umqtt's own wait for a PUBACK.
"""

import errno
import socket
import sys
import time

from mbnode import gateway

try:
    from umqtt import simple
except ImportError:
    simple = None

BUDGET_MS = 1000
_OUTBOX = 16  # replies made inside umqtt's callback, published right after it


class _Bounded:
    """A socket as umqtt.simple uses it, with blocking calls bounded by the bridge's budget."""

    def __init__(self, sock, bridge):
        self.s = sock
        self.bridge = bridge
        self.blocking = True

    def _arm(self):
        if self.blocking:
            left = time.ticks_diff(self.bridge.deadline, time.ticks_ms())
            if left <= 0:
                raise OSError(errno.ETIMEDOUT)
            self.s.settimeout(left / 1000)

    def connect(self, addr):
        self._arm()
        self.s.connect(addr)

    def setblocking(self, flag):
        self.blocking = flag
        if not flag:
            self.s.setblocking(False)

    def read(self, n):
        self._arm()
        return self.s.read(n)

    def write(self, buf, n=None):
        self._arm()
        return self.s.write(buf) if n is None else self.s.write(buf, n)

    def close(self):
        self.s.close()


class _Net:
    """Stands in for the socket module inside umqtt.simple (see the module docstring)."""

    getaddrinfo = staticmethod(socket.getaddrinfo)

    def __init__(self, bridge, tls):
        self.bridge = bridge
        self.tls = tls

    def socket(self, *args):
        s = socket.socket(*args)
        # umqtt writes one packet in up to four calls: without TCP_NODELAY (6, 1 on Linux and
        # lwIP alike; the unix port's socket module has no names for them) Nagle holds the
        # later parts for the broker's delayed ACK, 40 ms on Linux.
        try:
            s.setsockopt(6, 1, 1)
        except OSError:
            pass
        b = _Bounded(s, self.bridge)
        if self.tls:
            # The ssl module wraps a real socket: the handshake is bounded by its timeout only.
            b._arm()
            return b.s
        return b


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


class Bridge:
    def __init__(self, loop, m, client_id, relay):
        """m: the checked mqtt section; relay: mbnode.relay.Relay (its finish is self.reply).
        telemetry: a mbnode.telemetry.Telemetry when there are points, set by start()."""
        self.loop = loop
        self.m = m
        self.client_id = client_id
        self.relay = relay
        self.telemetry = None
        base = m["prefix"] + "/" if m["prefix"] else ""
        self.t_request = (base + m["request_topic"]).encode()
        self.t_response = (base + m["response_topic"]).encode()
        self.t_root = (base + m["root"] + "/").encode()
        self.t_status = self.t_root + b"status"
        self.qos = m["qos"]
        self.tls = _tls_context(m["tls"]) if m["tls"]["enabled"] else None
        self.queue = []  # request payloads waiting for the relay
        self.outbox = []  # (topic, payload, retain) made inside umqtt's callback
        self.client = None
        self.sock = None  # what the loop polls
        self.deadline = 0
        rc = m["reconnect"]
        self.delay = self.initial = 1000 * rc["initial_s"]
        self.retry_at = time.ticks_ms()  # the first connect: on the loop's first turn
        self.keep_ms = 1000 * m["keepalive"]
        self.last_tx = self.last_rx = self.ping_at = 0
        self.ping_out = False
        loop.add_timer(self)

    def begin(self):
        """Start a turn: blocking socket calls from here on share BUDGET_MS."""
        self.deadline = time.ticks_add(time.ticks_ms(), BUDGET_MS)

    # --- connection

    def _connect(self):
        m = self.m
        simple.socket = _Net(self, self.tls is not None)
        c = simple.MQTTClient(self.client_id, m["host"], m["port"], m["user"] or None, m["password"],
                              m["keepalive"], ssl=self.tls)
        if self.tls is not None and hasattr(c, "ssl_params"):
            print("mqtt: tls needs umqtt.simple 1.4 or later (mpremote mip install umqtt.simple); "
                  "not connecting", file=sys.stderr)
            self.retry_at = time.ticks_add(time.ticks_ms(), 3600000)
            return
        c.set_callback(self._on_message)
        c.set_last_will(self.t_status, b"offline", True, self.qos)
        try:
            c.connect(m["clean_session"])
            if not isinstance(c.sock, _Bounded):
                c.sock = _Bounded(c.sock, self)  # the TLS socket
            self.client = c
            self.sock = c.sock.s
            self.loop.add(self.sock, self)
            c.subscribe(self.t_request, self.qos)
            if self.telemetry is not None and self.telemetry.writable:
                c.subscribe(self.t_root + b"+/set", self.qos)
        except Exception as e:  # noqa: BLE001 - OSError, MQTTException, umqtt's asserts
            self._drop("connect to %s:%d" % (m["host"], m["port"]), e)
            return
        now = time.ticks_ms()
        self.last_tx = self.last_rx = now
        self.ping_out = False
        self.delay = self.initial
        print("mqtt: connected to %s:%d as %s" % (m["host"], m["port"], self.client_id))
        if self.publish(self.t_status, b"online", True) and self.telemetry is not None:
            self.telemetry.scan(now, True)
        self._work()

    def _drop(self, what, e):
        c = self.client
        if self.sock is not None:
            self.loop.remove(self.sock)
        self.client = self.sock = None
        if c is not None and c.sock is not None:
            try:
                c.sock.close()
            except OSError:
                pass
        print("mqtt: %s: %s; reconnecting in %d s" % (what, repr(e) if e is not None else "connection lost",
                                                      self.delay // 1000))
        self.retry_at = time.ticks_add(time.ticks_ms(), self.delay)
        rc = self.m["reconnect"]
        self.delay = min(self.delay * rc["factor"], 1000 * rc["max_s"])

    def publish(self, topic, payload, retain=False):
        """False when there is no connection or it broke on the way."""
        c = self.client
        if c is None:
            return False
        try:
            c.publish(topic, payload, retain, self.qos)
        except Exception as e:  # noqa: BLE001
            self._drop("publish on %s" % topic.decode(), e)
            return False
        self.last_tx = time.ticks_ms()
        return True

    # --- incoming

    def on_event(self, sock, events):
        self.begin()
        if events & 0x18:  # POLLERR | POLLHUP
            self._drop("broker connection", None)
            return True
        try:
            self.client.check_msg()
        except Exception as e:  # noqa: BLE001
            self._drop("receive", e)
            return True
        self.last_rx = time.ticks_ms()
        self.ping_out = False
        self._work()
        return True  # the relay or a drop may have changed the poll set

    def _on_message(self, topic, msg):
        # Inside umqtt (check_msg, or a publish waiting for its PUBACK): only queue here.
        if topic == self.t_request:
            if len(self.queue) < self.m["queue"]:
                self.queue.append(msg)
            else:
                self._later(self.t_response, gateway.queue_full(msg, self.m["queue"]).encode(), False)
        elif self.telemetry is not None and topic.startswith(self.t_root) and topic.endswith(b"/set"):
            name = topic[len(self.t_root):-4]
            if b"/" not in name:
                res = self.telemetry.write(name.decode(), msg)
                self._later(self.t_root + name + b"/res", res.encode(), False)

    def _later(self, topic, payload, retain):
        if len(self.outbox) < _OUTBOX:
            self.outbox.append((topic, payload, retain))
        else:
            print("mqtt: outbox full, dropped a message for", topic.decode())

    def _work(self):
        """Publish what the callback left, then run queued requests while the relay is free."""
        while self.outbox and self.client is not None:
            self.publish(*self.outbox.pop(0))
        while self.queue and not self.relay.busy and self.client is not None:
            payload = self.queue.pop(0)
            try:
                line = self.relay.start(gateway.parse(payload, self.m["serial_devices"]))
            except gateway.RequestError as e:
                line = e.args[0]
            if line is not None:
                self.publish(self.t_response, line.encode())

    def reply(self, line):
        """The relay's answer to the request it was running."""
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
        if self.keep_ms:
            if self.ping_out:
                d = time.ticks_diff(time.ticks_add(self.ping_at, self.keep_ms), now)
            else:
                d = self.keep_ms // 2 - max(time.ticks_diff(now, self.last_tx), time.ticks_diff(now, self.last_rx))
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
        if self.keep_ms:
            if self.ping_out:
                if time.ticks_diff(now, self.ping_at) >= self.keep_ms:
                    self._drop("broker", OSError("no answer to a ping within %d s" % (self.keep_ms // 1000)))
                    return
            elif max(time.ticks_diff(now, self.last_tx), time.ticks_diff(now, self.last_rx)) >= self.keep_ms // 2:
                try:
                    self.client.ping()
                except Exception as e:  # noqa: BLE001
                    self._drop("ping", e)
                    return
                self.ping_out = True
                self.ping_at = self.last_tx = now
        if self.telemetry is not None and self.telemetry.due_in(now) == 0:
            self.telemetry.scan(now)


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


def start(loop, engine, model, cfg, board, tcp):
    """The bridge on the loop; returns the words for the ready line. tcp: the TcpSlave or None.
    With rtu.mode "master" the serial port is opened here, for the relay."""
    if simple is None:
        print("mqtt: mqtt.enabled needs umqtt.simple (on a board: mpremote mip install umqtt.simple)",
              file=sys.stderr)
        if not getattr(board, "KEEP_SERVING", False):
            sys.exit(1)
        return ["mqtt", "off"]  # a board keeps serving Modbus without the bridge
    from mbnode.relay import Relay

    m = cfg["mqtt"]
    words = []
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
    port = None
    t35 = 0
    rtu = cfg["rtu"]
    if rtu["enabled"] and rtu["mode"] == "master":
        from mbnode.rtu import char_times, open_port

        port, words = open_port(board, cfg)
        words += ["rtu_mode", "master"]
        t35 = char_times(rtu["baud"], rtu["parity"], rtu["stopbits"])[1]
    relay = Relay(loop, engine, cfg["unit_id"], own, port, t35, None)
    bridge = Bridge(loop, m, _client_id(m), relay)
    relay.finish = bridge.reply
    if m["points"]:
        from mbnode.telemetry import Telemetry

        bridge.telemetry = Telemetry(engine, model, m["points"], m["retain"], bridge.t_root, bridge.publish)
    return words + ["mqtt", "%s:%d" % (m["host"], m["port"])]
