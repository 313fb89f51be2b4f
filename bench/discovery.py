"""The heap Home Assistant discovery adds to the MQTT bridge: `.cache/venv/bin/python bench/discovery.py`.

The bench's eight points (bench/points8.json, the configuration the bridge's RAM figure is
measured with, docs/mqtt.md "RAM"), a mosquitto on a free 127.0.0.1 port, and
`mbnode sim --bits 32 --mpy --heap 256K` three times: mqtt.discovery off, on, on with the channels. Each run waits until
the device said "online" and published every point (with discovery: every discovery message
and the points' states after them), answers one /set, then reads the firmware's heap after
gc.collect() through `mbnode sim-io heap` (bytes in use, bytes free) three times; the table
shows the median of the bytes in use, and the largest discovery message.
A third run has mqtt.discovery_channels true (the first two false): the simulator's whole map
makes 32 implicit points (docs/mqtt.md, "Onboard channels"); the second table shows what each
costs.

With --smallest it also bisects the smallest heap (bench/heap.py's smallest(), 1 KiB steps, 3
trials a size, 10 to confirm) at which the firmware as a board runs it (mbnode and umqtt.simple
as .mpy) starts, announces, publishes and answers a /set, with discovery off and on (a few
minutes more).

Every process is started and stopped here; every wait is bounded. Needs mosquitto and paho-mqtt
2.x (make setup). Runtime about 30 s.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import mqtt as bench_mqtt  # noqa: E402 - the section m broker
from common import HOST, free_port, start_mbnode, table  # noqa: E402

POINTS = json.loads((HERE / "points8.json").read_text())
NAMES = [p["name"] for p in POINTS]
# mqtt.discovery_channels with the simulator's whole map: 32 implicit points (8 of each kind;
# do5 and di3 are bench points, so do8 and di8 come in their place)
IMPLICIT = [n for n in ["%s%d" % (k, a) for a in range(9) for k in ("do", "di", "ai", "ao")] if n not in NAMES][:32]
CHANNELS = len(IMPLICIT)
MBNODE = [sys.executable, "-m", "mbnode_host.cli"]
WAIT = 30.0
TRIAL_WAIT = 10.0  # a trial that passes takes 1-3 s


class Watch:
    def __init__(self, port, topics):
        import paho.mqtt.client as paho

        self.got = {}
        self.cond = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-disc-%d" % os.getpid())
        self.c.on_message = self._message
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.connect(HOST, port)
        self.c.loop_start()
        self.c.subscribe([(t, 0) for t in topics])
        if not done.wait(WAIT):
            raise RuntimeError("no SUBACK from the broker")

    def _message(self, c, u, m):
        with self.cond:
            self.got.setdefault(m.topic, []).append(bytes(m.payload))
            self.cond.notify_all()

    def until(self, cond, what, wait=WAIT):
        deadline = time.monotonic() + wait
        with self.cond:
            while not cond(self.got):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("waited %.0f s for %s" % (wait, what))
                self.cond.wait(min(left, 0.2))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def run(broker, discovery, tmp, channels=False):
    """channels: mqtt.discovery_channels (the simulator's whole map: CHANNELS implicit points)."""
    root = "disc%d%s" % (os.getpid(), ("ch" if channels else "on") if discovery else "off")
    cfg = {"mqtt": {"enabled": True, "host": HOST, "port": broker.port, "client_id": "bench-" + root,
                    "root": root, "points": POINTS, "discovery": discovery, "discovery_channels": channels}}
    path = Path(tmp) / ("%s.json" % root)
    path.write_text(json.dumps(cfg))
    io = free_port()
    w = Watch(broker.port, [root + "/#", "homeassistant/#"])
    proc = subprocess.Popen(MBNODE + ["sim", "--bits", "32", "--mpy", "--heap", "256K", "--config", str(path),
                                      "--tcp", "%s:0" % HOST, "--io", "%s:%d" % (HOST, io)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        names = [root + "/" + n for n in NAMES + (IMPLICIT if channels else [])]
        disc = ["homeassistant/device/bench-%s_%s/config" % (root, n.split("/")[-1]) for n in names]
        if discovery:  # every message, then the states once more after them
            w.until(lambda g: all(t in g for t in disc) and all(len(g.get(t, ())) >= 2 for t in names),
                    "the discovery messages and the states after them")
        else:
            w.until(lambda g: all(t in g for t in names), "every point")
        w.c.publish(root + "/do5/set", "true")
        w.until(lambda g: root + "/do5/res" in g, "the /set answer")
        samples = []
        for _ in range(3):
            out = subprocess.run(MBNODE + ["sim-io", "--io", "%s:%d" % (HOST, io), "heap"], capture_output=True,
                                 text=True, timeout=WAIT)
            if out.returncode:
                raise RuntimeError("sim-io heap: %s" % out.stderr.strip())
            samples.append(int(out.stdout.split()[0]))
        largest = max([len(w.got[t][0]) for t in disc]) if discovery else 0
        if [t for t in w.got if t.startswith("homeassistant/")] and not discovery:
            raise RuntimeError("discovery off published under homeassistant/")
        return statistics.median(samples), largest
    finally:
        w.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


_trials = [0]


def trial(broker, discovery):
    """bench/heap.py's trial for the smallest heap: the firmware and umqtt.simple as .mpy (as on a
    board, start_mbnode), the eight points; passes when the device said online, published every
    point (with discovery: every discovery message, then the states again), answered a /set
    right and printed no MemoryError. Each start has a root and a discovery prefix of its own,
    so no retained message of an earlier start counts."""
    def run_one(bits, heap):
        _trials[0] += 1
        root = "t%d-%d" % (os.getpid(), _trials[0])
        prefix = "ha-" + root
        cfg = {"mqtt": {"enabled": True, "host": HOST, "port": broker.port, "client_id": "bench-" + root,
                        "root": root, "points": POINTS, "discovery": discovery, "discovery_prefix": prefix,
                        "discovery_channels": False}}
        w = Watch(broker.port, [root + "/#", prefix + "/#"])  # before the device publishes
        try:
            srv = start_mbnode(bits, heap=heap, mpy=True, timeout=10, config=cfg)
        except RuntimeError as e:
            w.close()
            return False, "start: %s" % str(e).strip().splitlines()[-1][:120]
        try:
            names = [root + "/" + p["name"] for p in POINTS]
            disc = ["%s/device/bench-%s_%s/config" % (prefix, root, p["name"]) for p in POINTS]
            if discovery:
                w.until(lambda g: all(t in g for t in disc) and all(len(g.get(t, ())) >= 2 for t in names),
                        "the discovery messages and the states after them", TRIAL_WAIT)
            else:
                w.until(lambda g: all(t in g for t in names), "every point", TRIAL_WAIT)
            w.c.publish(root + "/do5/set", "true")
            w.until(lambda g: root + "/do5/res" in g, "the /set answer", TRIAL_WAIT)
            if b'"ok": true' not in w.got[root + "/do5/res"][0]:
                return False, "set: %r" % w.got[root + "/do5/res"][0]
            if not srv.alive():
                return False, "exited"
            err = srv.stderr()
            if "MemoryError" in err or "out of memory" in err:
                return False, err.strip().splitlines()[-1][:120]
            return True, None
        except RuntimeError as e:
            return False, str(e)
        finally:
            w.close()
            srv.stop()
    return run_one


def main():
    broker = bench_mqtt.Broker()
    try:
        with tempfile.TemporaryDirectory(prefix="mbnode-disc-") as tmp:
            off, _ = run(broker, False, tmp)
            on, largest = run(broker, True, tmp)
            ch, _ = run(broker, True, tmp, True)
        small = []
        if "--smallest" in sys.argv:
            import heap

            for discovery in (False, True):
                size, why = heap.smallest(trial(broker, discovery), 32, 64 * 1024, 128 * 1024, 256 * 1024)
                small.append(heap.kib(size))
    finally:
        broker.stop()
    table("Home Assistant discovery: heap in use after start-up, discovery and one /set "
          "(32-bit unix port, mbnode sim --mpy, 8 points)",
          ["mqtt.discovery", "bytes in use", "largest message"],
          [["off", "%d" % off, "-"], ["on", "%d (%+d)" % (on, on - off), "%d bytes" % largest]])
    table("mqtt.discovery_channels: the onboard channels as implicit points (the whole map: %d of them)"
          % CHANNELS, ["mqtt.discovery_channels", "bytes in use", "per implicit point"],
          [["false", "%d" % on, "-"], ["true", "%d (%+d)" % (ch, ch - on), "%d" % round((ch - on) / CHANNELS)]])
    if small:
        table("Smallest heap that starts, announces, publishes and answers a /set (firmware and umqtt.simple "
              "as .mpy, bench/heap.py's bisection)", ["mqtt.discovery", "smallest heap"],
              [["off", small[0]], ["on", small[1]]])


if __name__ == "__main__":
    main()
