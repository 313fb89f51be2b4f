"""MQTT section of the bench: `.cache/venv/bin/python bench/mqtt.py` (or bench/run.py --sections m).

A mosquitto broker started here on a free 127.0.0.1 port serves every part; mbnode runs on the
32-bit unix port with an "mqtt" section (8 points of mixed types, a topic prefix of its own per
start, so no retained message of an earlier start is taken for this one's).

  (m1) smallest -X heapsize (firmware and umqtt.simple as .mpy, bisected by bench/heap.py's
       smallest()) with the bridge ON: a trial passes when the firmware starts, its retained
       "online" arrives on <prefix>/mbnode/status, a gateway FC03 x10 request to its own Modbus
       TCP address is answered with the values just set through the I/O control channel, the
       mixed TCP load of section (2) is served, new values and a second gateway request are
       answered right, all 8 points have been published, the process is alive and neither its
       stdout (where the event loop reports exceptions it survives) nor its stderr shows a
       MemoryError. Beside it the same bisection with the bridge OFF: section (2)'s trial
       (default configuration, no mqtt section), and the same configuration as ON with
       "enabled": false (the section and its points are still checked at start-up).
  (m2) gateway round trip, publish -> response arrival, median and p90 over COUNT requests after
       WARM ones, QoS 0, paho-mqtt in this process: `0 <cookie> 0 127.0.0.1 <port> 5 1 3 1 10`
       to the simulator itself (answered by its engine, no socket), to a pymodbus TCP server
       (a connection per request), and to the same server through an open format-2 slot; beside
       them a direct Modbus TCP FC03 x10 round trip with pymodbus's client to each server.

Every process is started and stopped here; every loop is bounded in count and time. Needs
mosquitto (apt, `make setup`) and paho-mqtt 2.x in the venv. Runtime about 1-2 minutes.
"""

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
import frames  # noqa: E402
import heap  # noqa: E402
import targets  # noqa: E402
from common import (HOST, WORK, free_port, median, micropython, run_parts, section_main, start_mbnode,  # noqa: E402
                    table)
from rtu_turnaround import percentile  # noqa: E402

BITS = 32
MOSQUITTO = "/usr/sbin/mosquitto"
COUNT = 200  # measured gateway requests per row of (m2)
WARM = 10
REQUEST_TIMEOUT = 5.0  # seconds to wait for one gateway response
MAX_FAILS = 5  # a row of (m2) stops after this many unanswered or wrong responses
ONLINE_TIMEOUT = 10.0  # the contract's bound for the retained "online" after the ready line
GATEWAY_TIMEOUT = 5  # the TIMEOUT field of the requests

# Eight points of mixed types and tables (docs/mqtt.md); every channel exists in the sim's map.
# bench/points8.json: the configuration the bridge's RAM figures are measured with (docs/mqtt.md),
# read by tests/test_mqtt_large.py too.
POINTS = json.loads((Path(__file__).resolve().parent / "points8.json").read_text())

_serial = [0]


def _next(prefix):
    _serial[0] += 1
    return "%s%d-%d" % (prefix, os.getpid(), _serial[0])


def mqtt_config(port, prefix, enabled=True):
    return {"mqtt": {"enabled": enabled, "host": HOST, "port": port, "client_id": "mbnode-" + prefix,
                     "prefix": prefix, "points": POINTS}}


def topics(prefix):
    base = prefix + "/"
    return {"request": base + "request", "response": base + "response", "status": base + "mbnode/status",
            "points": [base + "mbnode/" + p["name"] for p in POINTS]}


# ---- broker and client --------------------------------------------------------------------------

class Broker:
    """mosquitto on a free 127.0.0.1 port, anonymous, no persistence; its log goes to a file.
    extra: more lines for its configuration (bench/soak.py sets set_tcp_nodelay)."""

    def __init__(self, timeout=10.0, extra=""):
        self.port = free_port()
        WORK.mkdir(parents=True, exist_ok=True)
        self.conf = WORK / ("mosquitto-%d-%d.conf" % (os.getpid(), self.port))
        self.conf.write_text("listener %d %s\nallow_anonymous true\npersistence false\n"
                             "log_dest stderr\nlog_type error\nlog_type warning\n%s" % (self.port, HOST, extra))
        self.log = open(WORK / ("mosquitto-%d-%d.log" % (os.getpid(), self.port)), "w+")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.connect(self.port, timeout=1.0).close()
                return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                why = self.log.read()[-400:]
                self.stop()
                raise RuntimeError("mosquitto did not listen on %s:%d: %s" % (HOST, self.port, why))
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self.log.closed:
            self.log.close()
            os.unlink(self.log.name)
        if self.conf.exists():
            self.conf.unlink()


class Watcher:
    """A paho-mqtt client subscribed to a device's topics. .last: topic -> latest payload;
    responses are queued with their arrival time (time.perf_counter() in paho's network thread,
    when the PUBLISH has been read)."""

    def __init__(self, port, prefix, subscribe, timeout=5.0):
        import paho.mqtt.client as paho

        self.t = topics(prefix)
        self.last = {}
        self.responses = queue.Queue()
        self._ready = threading.Event()
        self._subscribed = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-" + prefix, clean_session=True)
        self.c.on_connect = lambda c, u, flags, rc, props: self._ready.set()
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self._subscribed.set()
        self.c.on_message = self._message
        self.c.connect(HOST, port, keepalive=30)
        self.c.loop_start()
        try:
            if not self._ready.wait(timeout):
                raise RuntimeError("paho: no CONNACK from the broker within %ss" % timeout)
            self.c.subscribe([(t, 0) for t in subscribe])
            if not self._subscribed.wait(timeout):
                raise RuntimeError("paho: no SUBACK within %ss" % timeout)
        except BaseException:
            self.close()
            raise

    def _message(self, c, u, m):
        now = time.perf_counter()
        self.last[m.topic] = m.payload
        if m.topic == self.t["response"]:
            self.responses.put((now, m.payload.decode(errors="replace")))

    def wait(self, cond, timeout):
        """True once cond() holds, False after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def online(self, timeout=ONLINE_TIMEOUT):
        return self.wait(lambda: self.last.get(self.t["status"]) == b"online", timeout)

    def request(self, payload, cookie, timeout=REQUEST_TIMEOUT):
        """(seconds from publish to the response's arrival, response text), or (None, why)."""
        while not self.responses.empty():  # late answers to earlier requests
            self.responses.get_nowait()
        head = "%d " % cookie
        t0 = time.perf_counter()
        self.c.publish(self.t["request"], payload, qos=0)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "no response within %.0f s" % timeout
            try:
                t1, text = self.responses.get(timeout=left)
            except queue.Empty:
                continue
            if text.startswith(head):
                return t1 - t0, text

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def read10(cookie, port):
    return "0 %d 0 %s %d %d 1 3 1 10" % (cookie, HOST, port, GATEWAY_TIMEOUT)


def _expect(cookie, values):
    return "%d OK %s" % (cookie, " ".join(str(v) for v in values))


def _set10(srv, seed):
    """Sets holding registers 0-9 to known values through the simulator's I/O control channel
    (docs/simulator.md; not a Modbus TCP connection, so the 4 TCP client slots play no part);
    returns the values."""
    values = [(seed + i * 7) & 0x3FF for i in range(10)]
    words = srv.ready.split()
    host, port = dict(zip(words[1::2], words[2::2]))["io"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(("set ao 0 %s\n" % " ".join(str(v) for v in values)).encode())
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < 1000:
            chunk = s.recv(1000)
            if not chunk:
                break
            reply += chunk
    if reply.strip() != b"ok":
        raise client.Failed("I/O channel: %r" % reply[:100])
    return values


# ---- (m1) heap ----------------------------------------------------------------------------------

def bridge_trial(bits, size, broker):
    """heap.smallest()'s trial with the bridge on: (passed, why)."""
    prefix = _next("h")
    try:
        w = Watcher(broker.port, prefix, [prefix + "/#"])
    except (OSError, RuntimeError) as e:
        return False, "bench client: %s" % e
    try:
        try:
            srv = start_mbnode(bits, heap=size, mpy=True, timeout=10, config=mqtt_config(broker.port, prefix))
        except RuntimeError as e:
            return False, "start: %s" % heap._last_line(str(e))
        try:
            try:
                why = _bridge_checks(w, srv)
            except (OSError, client.Failed) as e:  # the I/O control channel
                why = "%s: %s" % (type(e).__name__, e)
            if why is None:
                # The event loop prints exceptions it survives on stdout, tracebacks go to stderr.
                logged = [x for x in (srv.output(0.3) + srv.stderr()).splitlines() if "MemoryError" in x]
                if logged:
                    why = "MemoryError logged: %s" % logged[0].strip()[:100]
            if why is None and not srv.alive():
                why = "exited after the load"
            return why is None, why and "%s %s" % (why, heap._last_line(srv.stderr()))
        finally:
            srv.stop()
    finally:
        w.close()


def _bridge_checks(w, srv):
    if not w.online():
        return "no retained online within %.0f s" % ONLINE_TIMEOUT
    for round_ in (1, 2):
        values = _set10(srv, seed=17 * round_)
        cookie = 4000 + round_
        _, text = w.request(read10(cookie, srv.port), cookie)
        if text != _expect(cookie, values):
            return "gateway %d: %r" % (round_, text)
        if round_ == 1:
            ok, err = client.mixed_load(srv.port, frames.mbnode_mixed(), conns=4, per_conn=75)
            if err:
                return "serve: %s" % err
    if not w.wait(lambda: all(t in w.last for t in w.t["points"]), 5.0):
        return "points published: %d of %d" % (sum(t in w.last for t in w.t["points"]), len(POINTS))
    return None


def heap_section(broker, bits=BITS):
    off_cfg = mqtt_config(broker.port, "unused", enabled=False)
    variants = [
        ("bridge ON, 8 points", lambda b, n: bridge_trial(b, n, broker), 16 * 1024, 64 * 1024),
        ("bridge OFF, no mqtt section (section 2's trial)", heap.mbnode_trial, 4 * 1024, 48 * 1024),
        ("bridge OFF, same config with \"enabled\": false", lambda b, n: heap.mbnode_trial(b, n, off_cfg),
         4 * 1024, 48 * 1024),
    ]
    rows = []
    sizes = []
    for label, trial, lo, hi in variants:
        t0 = time.monotonic()
        size, why = heap.smallest(trial, bits, lo, hi, 512 * 1024)
        sizes.append(size)
        rows.append([label, heap.kib(size), (why or "")[:90], "%.0f s" % (time.monotonic() - t0)])
    on, off = sizes[0], sizes[1]
    extra = "%+d KiB" % ((on - off) // 1024) if on and off else "-"
    table("(m1) Smallest heap, micropython-%d, firmware and umqtt.simple as .mpy (%d repeats per size, "
          "1 KiB steps, %d confirming trials)" % (bits, heap.REPEATS, heap.CONFIRM),
          ["configuration", "smallest heap", "first failure 1 KiB below", "bisection took"], rows,
          note=["ON trial: start, retained online on <prefix>/mbnode/status within %.0f s, gateway FC03 x10 to "
                "itself right, mixed TCP load of section (2) (4 connections x 75), gateway right again, 8 points "
                "published, alive, no MemoryError printed (stdout or stderr)." % ONLINE_TIMEOUT,
                "OFF trials: start and the mixed TCP load (bench/heap.py mbnode_trial).",
                "bridge ON - bridge OFF (no section): %s" % extra])
    return [("(m1) smallest heap, 32-bit, MQTT bridge on (off)",
             "%s (off: %s)" % (heap.kib(on), heap.kib(off)), "-" if on else "fail")]


# ---- (m2) round trips ---------------------------------------------------------------------------

def _gateway_row(w, make, check, count, warm):
    """[seconds] of the answered requests and a list of failure texts (at most MAX_FAILS)."""
    times, fails = [], []
    cookie = 10000
    for i in range(warm + count):
        if len(fails) >= MAX_FAILS:
            break
        cookie += 1
        dt, text = w.request(make(cookie), cookie)
        if dt is None or not check(cookie, text):
            fails.append(text if dt is not None else "request %d: %s" % (i, text))
            continue
        if i >= warm:
            times.append(dt)
    return times, fails


def _direct_row(port, count, warm):
    from pymodbus.client import ModbusTcpClient

    times, fails = [], []
    c = ModbusTcpClient(HOST, port=port, timeout=2, retries=0)
    if not c.connect():
        return times, ["pymodbus client: cannot connect to %s:%d" % (HOST, port)]
    try:
        for i in range(warm + count):
            if len(fails) >= MAX_FAILS:
                break
            t0 = time.perf_counter()
            try:
                r = c.read_holding_registers(0, count=10, device_id=1)
            except Exception as e:  # noqa: BLE001 - pymodbus raises several kinds; count it
                fails.append("%s: %s" % (type(e).__name__, e))
                continue
            dt = time.perf_counter() - t0
            if r.isError() or len(r.registers) != 10:
                fails.append(str(r))
            elif i >= warm:
                times.append(dt)
    finally:
        c.close()
    return times, fails


def _ok10(cookie, text):
    w = (text or "").split()
    return w[:2] == [str(cookie), "OK"] and len(w) == 12 and all(x.isdigit() for x in w[2:])


def roundtrip_section(broker, count=None, warm=WARM, bits=BITS):
    count = COUNT if count is None else count
    prefix = _next("r")
    t = topics(prefix)
    results = []  # (label, path, times, fails)
    w = Watcher(broker.port, prefix, [t["status"], t["response"]])
    try:
        srv = start_mbnode(bits, config=mqtt_config(broker.port, prefix))
        try:
            if not w.online():
                raise RuntimeError("mbnode: no retained online within %.0f s: %s"
                                   % (ONLINE_TIMEOUT, heap._last_line(srv.stderr())))
            remote = targets.start_c()
            try:
                local = srv.port
                results.append(("gateway -> mbnode itself (local engine)", "MQTT",
                                *_gateway_row(w, lambda c: read10(c, local), _ok10, count, warm)))
                results.append(("gateway -> pymodbus server, new connection per request", "MQTT + TCP",
                                *_gateway_row(w, lambda c: read10(c, remote.port), _ok10, count, warm)))
                _, text = w.request("2 77 0 0 0 %s %d %d" % (HOST, remote.port, GATEWAY_TIMEOUT), 77)
                if text != "77 OK":
                    results.append(("gateway -> pymodbus server, open slot 0", "MQTT + TCP", [],
                                    ["slot open: %r" % text]))
                else:
                    results.append(("gateway -> pymodbus server, open slot 0", "MQTT + TCP",
                                    *_gateway_row(w, lambda c: read10(c, remote.port), _ok10, count, warm)))
                    w.request("2 78 0 1", 78)
                results.append(("direct Modbus TCP -> mbnode", "TCP", *_direct_row(local, count, warm)))
                results.append(("direct Modbus TCP -> pymodbus server", "TCP",
                                *_direct_row(remote.port, count, warm)))
            finally:
                remote.stop()
            alive = srv.alive()
        finally:
            srv.stop()
    finally:
        w.close()
    rows, notes = [], []
    for label, path, times, fails in results:
        ms = [1000 * x for x in times]
        rows.append([label, path, "%.2f" % median(ms) if ms else "fail",
                     "%.2f" % percentile(ms, 90) if ms else "fail", "%d / %d" % (len(ms), count)])
        if fails:
            notes.append("%s: %d failures, first: %s" % (label, len(fails), str(fails[0])[:160]))
    if not alive:
        notes.append("mbnode exited during the measurement")
    table("(m2) FC03 x10 round trip, ms, micropython-%d (source, heap 128K), mosquitto %s:%d, QoS 0, "
          "%d requests per row after %d warm-up" % (bits, HOST, broker.port, count, warm),
          ["request", "path", "median", "p90", "answered"], rows,
          note=["MQTT rows: paho-mqtt publish -> response PUBLISH read by paho's network thread; request "
                "`0 <cookie> 0 127.0.0.1 <port> 5 1 3 1 10`, reply checked (cookie, OK, 10 values).",
                "direct rows: pymodbus ModbusTcpClient.read_holding_registers(0, count=10), one connection."]
          + notes)
    local = rows[0]
    direct = rows[3]
    return [("(m2) gateway FC03 x10 round trip to itself, median / p90",
             "%s / %s ms (direct Modbus TCP %s ms)" % (local[2], local[3], direct[2]),
             "-" if local[2] != "fail" else "ERROR")]


# ---- driver -------------------------------------------------------------------------------------

def run(parts="12", count=None):
    """Run the chosen parts with one broker; summary rows (target, measured, verdict)."""
    global COUNT
    COUNT = count or COUNT
    broker = Broker()
    try:
        return run_parts("m", {"1": lambda: heap_section(broker), "2": lambda: roundtrip_section(broker)}, parts)
    finally:
        broker.stop()


def main(argv=None):
    banner = "mbnode MQTT bench  %s  micropython-%d: %s  mosquitto: %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), BITS, micropython(BITS), MOSQUITTO)
    return section_main(argv, __doc__, "Summary, MQTT (a = mbnode)", "12", COUNT,
                        "measured requests per row in (m2)", banner, run)


if __name__ == "__main__":
    sys.exit(main())
