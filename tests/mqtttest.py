"""MQTT helpers for the bridge tests: a mosquitto broker on a free 127.0.0.1 port, a paho-mqtt
2.x client that collects what it receives, the gateway's partners (a pymodbus Modbus TCP server,
a TCP server that never answers, a refused port, a socat pty pair with the pymodbus RTU field
device of tests/fakes on one end) and the simulator configuration that turns the bridge on.

Every wait has a deadline; every process or thread started here is stopped by whoever started
it (the fixtures in the test modules), terminate first, kill on timeout.
"""

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import Sim, need

try:
    import paho.mqtt.client as paho
except ImportError:  # the tests fail or skip through need_paho()
    paho = None

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
WAIT = 10.0  # seconds: the generous deadline of every wait for a message


def need_paho():
    need("paho-mqtt 2.x (pip install 'paho-mqtt>=2,<3')",
         paho is not None and hasattr(paho, "CallbackAPIVersion"))


def mosquitto_path():
    """The mosquitto binary (often in /usr/sbin, outside a user's PATH); fails in CI, skips
    elsewhere, when it is missing."""
    path = shutil.which("mosquitto")
    if path is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        path = "/usr/sbin/mosquitto"
    need("mosquitto (apt install mosquitto)", path)
    return path


def free_port(host=HOST):
    """A port nobody listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host=HOST, timeout=WAIT, proc=None):
    """Until a TCP connection to host:port succeeds; AssertionError at the deadline or when
    proc (the server's process) exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as e:
            err = e
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process serving %s:%d exited with %s" % (host, port, proc.returncode))
        if time.monotonic() > deadline:
            raise AssertionError("%s:%d does not accept connections after %.0f s: %s" % (host, port, timeout, err))
        time.sleep(0.05)


def unique_id(what="mbnode-test"):
    return "%s-%d-%s" % (what, os.getpid(), uuid.uuid4().hex[:8])


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Signal a process this module started, wait; SIGKILL (its group, when it leads one) on
    timeout."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


# --- the broker ------------------------------------------------------------------------------


class Broker:
    """mosquitto on 127.0.0.1:PORT with a minimal generated configuration. start/stop/kill/
    restart keep the same port, so a client configured with it finds the broker again."""

    def __init__(self, tmp_path, port=None):
        self.exe = mosquitto_path()
        self.port = port or free_port()
        self.dir = Path(tmp_path)
        self.conf = self.dir / ("mosquitto-%d.conf" % self.port)
        self.conf.write_text("listener %d %s\nallow_anonymous true\npersistence false\n" % (self.port, HOST))
        self.log = self.dir / ("mosquitto-%d.log" % self.port)
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=WAIT):
        assert not self.running, "broker already running"
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_port(self.port, timeout=max(0.5, deadline - time.monotonic()), proc=self.proc)
                return self
            except AssertionError:
                # Right after a kill the port can take a moment to be free again: retry.
                stop_process(self.proc, signal.SIGKILL)
                if time.monotonic() > deadline:
                    raise AssertionError("mosquitto does not serve 127.0.0.1:%d; log:\n%s"
                                         % (self.port, self.log.read_text(errors="replace")[-2000:]))
                time.sleep(0.2)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self):
        """SIGKILL: the broker vanishes without closing anything properly."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self):
        self.kill()
        return self.start()


# --- topics and configuration ----------------------------------------------------------------


class Topics:
    """The topic names of one device (contract: base = "<prefix>/" or "")."""

    def __init__(self, prefix="", root="mbnode", request="request", response="response"):
        base = prefix + "/" if prefix else ""
        self.prefix = prefix
        self.request = base + request
        self.response = base + response
        self.root = base + root
        self.status = self.root + "/status"

    def point(self, name, sub=None):
        return self.root + "/" + name + ("/" + sub if sub else "")


def mqtt_config(broker, topics=None, client_id=None, config=None, **mqtt):
    """A simulator configuration with the bridge enabled towards broker. topics: the Topics
    the device is to use (prefix, root); mqtt: further mqtt keys; config: other sections."""
    m = {"enabled": True, "host": HOST, "port": broker.port, "client_id": client_id or unique_id(),
         "reconnect": {"initial_s": 1, "max_s": 2, "factor": 2}}
    if topics is not None:
        if topics.prefix:
            m["prefix"] = topics.prefix
        m["root"] = topics.root[len(topics.prefix) + 1:] if topics.prefix else topics.root
    m.update(mqtt)
    cfg = dict(config or {})
    cfg["mqtt"] = m
    return cfg


# --- the client --------------------------------------------------------------------------------


class Msg:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = bytes(m.payload)
        self.retain = bool(m.retain)
        self.qos = m.qos
        self.time = time.monotonic()

    @property
    def text(self):
        return self.payload.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return "<%s %r%s q%d>" % (self.topic, self.payload[:200], " retained" if self.retain else "", self.qos)


class Client:
    """paho-mqtt 2.x client on the broker: subscribes to `subscribe` (again after every
    reconnect), keeps every message it receives until a wait() takes it."""

    def __init__(self, broker, subscribe=(), topics=None, client_id=None, qos=1, will=None,
                 reconnect=(1, 2), timeout=WAIT, auth=None):
        need_paho()
        self.topics = topics or Topics()
        self.qos = qos
        self.subs = list(subscribe)
        self.messages = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self._acked = set()
        self._sub_mid = None
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or unique_id("pytest"),
                             clean_session=True)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        if will is not None:
            self.c.will_set(*will)
        if auth is not None:  # (user, password)
            self.c.username_pw_set(*auth)
        self.c.reconnect_delay_set(*reconnect)
        self.c.connect(HOST, broker.port, keepalive=30)
        self.c.loop_start()
        self.wait_resubscribed(timeout)

    # paho callbacks (its network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        # Clean session: the subscriptions are made again on every connection.
        self._sub_mid = client.subscribe([(t, self.qos) for t in self.subs])[1] if self.subs else None
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self._acked.add(mid)
            self.cond.notify_all()

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.messages.append(Msg(m))
            self.cond.notify_all()

    def _wait_acked(self, mid, deadline):
        with self.cond:
            while mid not in self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
        return True

    def wait_resubscribed(self, timeout=WAIT):
        """Until connected with every subscription acknowledged (after the start, or after a
        broker restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                mid = self._sub_mid
                if mid is None or self._wait_acked(mid, min(deadline, time.monotonic() + 0.2)):
                    if self.connected.is_set() and mid == self._sub_mid:
                        return
            else:
                time.sleep(0.05)
        raise AssertionError("test client not connected and subscribed to %r within %.0f s" % (self.subs, timeout))

    def subscribe(self, topic, timeout=WAIT):
        self.subs.append(topic)
        mid = self.c.subscribe(topic, self.qos)[1]
        assert self._wait_acked(mid, time.monotonic() + timeout), "subscription to %s not acknowledged" % topic

    def publish(self, topic, payload, qos=None, retain=False, timeout=WAIT):
        info = self.c.publish(topic, payload, qos=self.qos if qos is None else qos, retain=retain)
        info.wait_for_publish(timeout)
        assert info.is_published(), "publish to %s did not complete" % topic

    # collected messages
    def _take(self, topic, predicate):
        for i, m in enumerate(self.messages):
            if paho.topic_matches_sub(topic, m.topic) and (predicate is None or predicate(m)):
                return self.messages.pop(i)
        return None

    def wait(self, topic, predicate=None, timeout=WAIT):
        """The first message (oldest) received on topic (a filter) that predicate accepts; it
        is removed from the collection. AssertionError at the deadline, listing what came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = self._take(topic, predicate)
                if m is not None:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [x for x in self.messages if paho.topic_matches_sub(topic, x.topic)]
                    raise AssertionError("no matching message on %s within %.1f s; unmatched there: %r"
                                         % (topic, timeout, seen[-20:]))
                self.cond.wait(min(left, 0.2))

    def absent(self, topic, predicate=None, duration=1.0):
        """AssertionError if a matching message arrives (or is waiting) within duration."""
        deadline = time.monotonic() + duration
        with self.cond:
            while True:
                m = self._take(topic, predicate)
                assert m is None, "unexpected message %r" % m
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(min(left, 0.1))

    def pending(self, topic):
        with self.cond:
            return [m for m in self.messages if paho.topic_matches_sub(topic, m.topic)]

    def clear(self, topic="#"):
        with self.cond:
            self.messages = [m for m in self.messages if not paho.topic_matches_sub(topic, m.topic)]

    def send(self, payload):
        """Publish a gateway request without waiting for its answer."""
        self.publish(self.topics.request, payload)

    def burst(self, payloads, timeout=WAIT):
        """Publish every payload on the request topic at once (paho queues them), then wait
        until paho has sent them all (QoS 1: the broker acknowledged each)."""
        infos = [self.c.publish(self.topics.request, p, qos=self.qos) for p in payloads]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "a burst of %d: not all published within %.0f s" % (len(payloads), timeout)

    def request(self, payload, timeout=WAIT, cookie=None):
        """Publish payload on the request topic; the text of the matching response: the one
        beginning with the request's cookie, or with "ERROR:" when the payload has no valid
        cookie (the gateway cannot echo one then)."""
        if cookie is None:
            from mbnode.mqtt import textproto

            cookie = textproto.cookie_of(payload)
        self.send(payload)
        return self.response(cookie, timeout)

    def response(self, cookie, timeout=WAIT):
        if cookie is None:
            def match(m):
                return m.text.startswith("ERROR:")
        else:
            def match(m):
                return m.text.split(" ", 1)[0] == cookie
        return self.wait(self.topics.response, match, timeout).text

    def wait_online(self, timeout=WAIT):
        """Until the device says "online" on its status topic (retained or live)."""
        return self.wait(self.topics.status, lambda m: m.payload == b"online", timeout)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# --- Modbus TCP partners of the gateway --------------------------------------------------------


class PymodbusServer:
    """A pymodbus 3.x Modbus TCP server in a thread of its own, serving `unit` with:
    coils 0..31 (i % 3 == 0), discrete inputs 0..31 (odd ones set), holding registers 0..99
    (500 + i), input registers 0..19 (700 + i); any other address answers exception 02."""

    COILS = [i % 3 == 0 for i in range(32)]
    DISCRETE = [i % 2 == 1 for i in range(32)]
    HOLDING = [500 + i for i in range(100)]
    INPUT = [700 + i for i in range(20)]

    def __init__(self, unit=5, port=None):
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.unit = unit
        self.port = port or free_port()
        dev = SimDevice(id=unit, simdata=(
            [SimData(0, values=list(self.COILS), datatype=DataType.BITS)],
            [SimData(0, values=list(self.DISCRETE), datatype=DataType.BITS)],
            [SimData(0, values=list(self.HOLDING), datatype=DataType.REGISTERS)],
            [SimData(0, values=list(self.INPUT), datatype=DataType.REGISTERS)]))
        self._ready = threading.Event()
        self._error = None
        self.loop = asyncio.new_event_loop()

        async def main():
            try:
                server = ModbusTcpServer(dev, address=(HOST, self.port))
                await server.serve_forever(background=True)
                self._stop = asyncio.Event()
            except Exception as e:  # reported by the constructor's wait
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await server.shutdown()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        assert self._ready.wait(WAIT), "pymodbus TCP server did not start"
        assert self._error is None, "pymodbus TCP server: %r" % self._error
        wait_port(self.port)

    def client(self, timeout=2.0):
        from pymodbus.client import ModbusTcpClient

        c = ModbusTcpClient(HOST, port=self.port, timeout=timeout, retries=0)
        assert c.connect()
        return c

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(WAIT)
        if not self.thread.is_alive():
            self.loop.close()


class SilentServer:
    """Accepts TCP connections and never answers (nor closes them): a Modbus TCP server that
    hangs. .accepted counts connections; close_after (seconds) instead closes each one that
    long after accepting it (a peer that goes away)."""

    def __init__(self, close_after=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.close_after = close_after
        self.conns = []
        self.accepted = 0
        self.received = b""
        self._lock = threading.Lock()
        self._run = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self._run:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                now = time.monotonic()
                self._drop_due(now)
                self._drain()
                continue
            except OSError:
                return
            c.setblocking(False)
            with self._lock:
                self.conns.append((c, time.monotonic()))
                self.accepted += 1

    def _drop_due(self, now):
        if self.close_after is None:
            return
        with self._lock:
            keep = []
            for c, t in self.conns:
                if now - t >= self.close_after:
                    c.close()
                else:
                    keep.append((c, t))
            self.conns = keep

    def _drain(self):
        # Read what clients send, so their writes never block and tests can look at it.
        with self._lock:
            for c, _ in self.conns:
                try:
                    data = c.recv(4096)
                    if data:
                        self.received += data
                except (BlockingIOError, OSError):
                    pass

    def wait_accepted(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while self.accepted < n:
            assert time.monotonic() < deadline, "silent server: %d of %d connections" % (self.accepted, n)
            time.sleep(0.02)

    def stop(self):
        self._run = False
        self.thread.join(WAIT)
        self.sock.close()
        with self._lock:
            for c, _ in self.conns:
                c.close()
            self.conns = []


# --- Modbus RTU field device on a pty pair ------------------------------------------------------


class PtyPair:
    """socat's two linked ptys: .a for the simulator (RTU master), .b for the field device."""

    def __init__(self, tmp_path):
        exe = shutil.which("socat")
        need("socat (apt install socat)", exe)
        d = Path(tmp_path)
        self.a = str(d / ("tty-a-%s" % uuid.uuid4().hex[:6]))
        self.b = str(d / ("tty-b-%s" % uuid.uuid4().hex[:6]))
        self.log = d / "socat.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-d", "-d", "pty,raw,echo=0,link=%s" % self.a, "pty,raw,echo=0,link=%s" % self.b],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + WAIT
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("socat made no pty pair: %s" % self.log.read_text(errors="replace"))
            time.sleep(0.02)

    def stop(self):
        stop_process(self.proc)


class RtuDevice:
    """tests/fakes/pymodbus_rtu_device.py on a serial port: unit 17 (by default) with holding
    registers 100..199 = 1000 + address; every other table answers exception 02; other units
    get no answer."""

    HOLDING_FIRST = 100

    def __init__(self, port, unit=17, baud=19200, parity="N", stopbits=1):
        self.unit = unit
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fakes" / "pymodbus_rtu_device.py"), "--port", port,
             "--baud", str(baud), "--parity", parity, "--stopbits", str(stopbits), "--unit", str(unit)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + WAIT
        line = ""
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if line.startswith("ready") or not line:
                    break
        sel.close()
        if not line.startswith("ready"):
            stop_process(self.proc, signal.SIGKILL)
            raise AssertionError("RTU field device did not start: %r %s" % (line, self.proc.stderr.read()))

    def stop(self):
        stop_process(self.proc)


def kill_sim(sim):
    """SIGKILL the simulator's whole process group (the wrapper and the firmware): an abrupt
    loss, no goodbye to the broker."""
    if sim.proc.poll() is None:
        os.killpg(sim.proc.pid, signal.SIGKILL)
        sim.proc.wait(timeout=10)


def sim_alive(sim):
    if sim.proc.poll() is not None:
        raise AssertionError("simulator exited with %s: %s" % (sim.proc.returncode, sim.proc.stderr.read()[-2000:]))


# --- the firmware as a board runs it -----------------------------------------------------------------


def board_build(tmp, bits=32):
    """mbnode and umqtt.simple compiled to .mpy in tmp, as a board has them (`mbnode deploy`,
    `mpremote mip install umqtt.simple`): (firmware folder, library folder). `mbnode sim --mpy`
    compiles umqtt.simple at import instead, which needs more heap than a board does."""
    from mbnode_host import build, paths

    src = paths.CACHE / "lib" / "umqtt" / "simple.py"
    need("umqtt.simple in .cache/lib (make setup)", src.exists())
    arch = build.UNIX_ARCH[bits]
    fw = build.compile_mpy("unix", Path(tmp) / "fw", arch)
    lib = Path(tmp) / "lib"
    (lib / "umqtt").mkdir(parents=True, exist_ok=True)
    subprocess.run([paths.mpy_cross(), "-march=" + arch, "-s", "umqtt/simple.py", "-o",
                    str(lib / "umqtt" / "simple.mpy"), str(src)], check=True)
    return fw, lib


class BoardSim(Sim):
    """The firmware from board_build() on the unix port with a heap of `heap`, started as
    `mbnode sim --mpy` starts it (the same configuration overrides, argv and search path), but
    with umqtt.simple as .mpy too. Serves Modbus TCP and the control channel on free ports."""

    def __init__(self, dirs, tmp_path, config, heap, bits=32):
        from conftest import micropython_or_fail
        from mbnode_host import sim

        fw, lib = dirs
        cfg = sim.effective_config(None, (HOST, 0), None, (HOST, 0))
        for key, value in config.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        cfg_file = Path(tmp_path) / ("config-%d.json" % id(self))
        cfg_file.write_text(json.dumps(cfg))
        argv = [str(micropython_or_fail(bits)), "-X", "heapsize=%d" % sim.parse_size(heap), str(fw / "main.py"),
                str(cfg_file)]
        env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(fw), str(lib)]))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.ready = self._wait_ready(20)
        self.fields = dict(zip(self.ready.split()[1::2], self.ready.split()[2::2]))
        self.host, port = self.fields["tcp"].rsplit(":", 1)
        self.port = int(port)
        io_host, io_port = self.fields["io"].rsplit(":", 1)
        self.io = (io_host, int(io_port))
        self.rtu_path = self.serial = None


# --- a simulator with the bridge on -----------------------------------------------------------------


class Device:
    """A simulator with the bridge on, and a test client subscribed to its response topic and
    everything under its root."""

    def __init__(self, sim, client, topics):
        self.sim = sim
        self.client = client
        self.topics = topics
        self.unanswered = None  # a request that got no reply at all

    def request(self, payload, timeout=WAIT, cookie=None):
        """The reply to payload. Once one request got no reply at all, later ones fail at once
        (a hung device would otherwise cost every following test the whole timeout)."""
        sim_alive(self.sim)
        if self.unanswered is not None:
            raise AssertionError("the device did not answer an earlier request (%r) and is not asked again"
                                 % self.unanswered)
        try:
            return self.client.request(payload, timeout, cookie)
        except AssertionError:
            self.unanswered = payload
            raise

    def io(self, line):
        """A control channel request (docs/simulator.md); the values of its "ok" reply."""
        sim_alive(self.sim)
        reply = self.sim.io_cmd(line)
        assert reply.startswith("ok"), (line, reply)
        return [int(v) for v in reply.split()[1:]]

    def local(self, rest, cookie, server=1):
        """A format-0 request to the simulator's own Modbus TCP address."""
        return "0 %s 0 127.0.0.1 %d 5 %d %s" % (cookie, self.sim.port, server, rest)

    def topic(self, name, sub=None):
        return self.topics.point(name, sub)

    def stop(self):
        try:
            self.sim.stop()
        finally:
            self.client.close()


def collect_replies(dev, cookies, timeout=WAIT):
    """Every reply on dev's response topic until each cookie in `cookies` (None: a reply
    without one, "ERROR: ...") has one, then half a second more for anything further:
    {cookie: [reply texts]} with every reply that arrived, expected or not."""
    got = {}
    want = set(cookies)
    deadline = time.monotonic() + timeout
    while want - set(got):
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise AssertionError("deadline")
            m = dev.client.wait(dev.topics.response, timeout=left)
        except AssertionError:
            missing = sorted(want - set(got), key=str)
            raise AssertionError("no reply for %d of %d requests (%r...) within %.0f s; got %d: %r...; %s" % (
                len(missing), len(want), missing[:10], timeout, len(got), sorted(got.items(), key=str)[:5],
                sim_output(dev.sim)))
        first = m.text.split(" ", 1)[0]
        got.setdefault(None if first == "ERROR:" else first, []).append(m.text)
    dev.client.absent(dev.topics.response, duration=0.5)  # nothing after the last one
    return got


def sim_output(sim):
    """Stop the simulator; the tails of what it printed (for a failure message)."""
    running = sim.proc.poll() is None
    sim.stop()
    out = sim.proc.stdout.read()[-2000:]
    err = sim.proc.stderr.read()[-2000:]
    return "%s; stdout: %r; stderr: %r" % ("was running" if running else "exited %s" % sim.proc.returncode, out, err)


def start_device(tmp, broker, topics, sim_kw=None, config=None, make_sim=None, client_qos=1, **mqtt):
    """Subscribe first, then start the simulator (config: other sections; mqtt: mqtt keys)
    and wait until it says "online". make_sim(configuration) starts it instead of
    `mbnode sim` (e.g. a BoardSim); client_qos: the test client's QoS."""
    from conftest import Sim

    client = Client(broker, subscribe=[topics.response, topics.root + "/#"], topics=topics, qos=client_qos)
    try:
        cfg = mqtt_config(broker, topics, config=config, **mqtt)
        sim = make_sim(cfg) if make_sim is not None else Sim(tmp_path=tmp, config=cfg, **(sim_kw or {}))
    except BaseException:
        client.close()
        raise
    try:
        client.wait_online()
    except AssertionError:
        client.close()
        raise AssertionError("the simulator never said online on %s: %s" % (topics.status, sim_output(sim)))
    return Device(sim, client, topics)


# --- fixtures shared by the bridge's test modules (imported there by name) ---------------------


@pytest.fixture(scope="module", autouse=True)
def needs_bridge_tools():
    """paho-mqtt and pymodbus, or the module's tests skip (fail in CI)."""
    from mbtest import pymodbus

    need_paho()
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, needs_bridge_tools):
    """A mosquitto of the module's own on a free port."""
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()
