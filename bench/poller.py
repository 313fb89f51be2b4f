"""Poller section of the bench: `.cache/venv/bin/python bench/poller.py` (or bench/run.py
--sections o). The RAM the poller costs on the 32-bit unix port, firmware as .mpy (as
`mbnode deploy` puts it on a board).

Three simulators on this machine: A serves Modbus TCP (the default configuration), C is a
Modbus RTU slave on one end of a socat pty pair at 115200 8N1, and B, the one measured, is the
RTU master on the other end and polls both:

  (o1) heap in use after start (`heap` on the I/O control channel: gc.collect(), then
       gc.mem_alloc()) of B with the default configuration, with the RTU master alone (no
       user), and with the RTU master and the poller: 16 requests (8 over Modbus TCP to A, 8 over
       RTU to C, every number type, into memory positions and local registers) and 8 alarms (4
       setting a local output, 4 writing to A or C), every server polled every 100 ms. The
       poller's figure is taken once its first values have landed, and again after SOAK_S
       seconds of polling (~10 rounds a second each: the steady state must not grow).
  (o2) the smallest -X heapsize B starts with in that configuration and polls in: bisected by
       bench/heap.py's smallest() (1 KiB steps, 3 trials per size, 10 confirming); a trial
       passes when B prints its ready line, the values set on A and C reach its memory within
       TRIAL_S seconds, it is still alive and printed no MemoryError.

Every process is started and stopped here; every wait is bounded. Needs socat (`make setup`).
About 2-3 minutes.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heap  # noqa: E402
from common import HOST, WORK, run_parts, section_main, start_mbnode, table  # noqa: E402

BITS = 32
SOAK_S = 30
TRIAL_S = 10.0
BAUD = 115200
# Eight register requests of every number type, each to both servers (16 requests).
TYPES = [("f32", "float32", 2), ("i16", "int16", 1), ("u32", "uint32", 2), ("i64", "int64", 4),
         ("f64", "float64", 4), ("i8", "int8", 1), ("u16le", "uint16", 1), ("i32cdab", "int32", 2)]


class PtyPair:
    """socat's two linked ptys (.a, .b), stopped by stop()."""

    def __init__(self):
        exe = shutil.which("socat")
        if exe is None:
            raise RuntimeError("socat is missing (make setup installs it)")
        WORK.mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.mkdtemp(dir=WORK, prefix="poller-")
        self.a = os.path.join(self.dir, "a")
        self.b = os.path.join(self.dir, "b")
        self.proc = subprocess.Popen([exe, "pty,raw,echo=0,link=%s" % self.a, "pty,raw,echo=0,link=%s" % self.b],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("socat made no pty pair")
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def io(srv, line):
    """One request on a simulator's I/O control channel; the reply's values (ints)."""
    fields = dict(zip(srv.ready.split()[1::2], srv.ready.split()[2::2]))
    host, port = fields["io"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    text = reply.decode().strip()
    if not text.startswith("ok"):
        raise RuntimeError("%s: %s" % (line, text))
    return [int(v) for v in text.split()[1:]]


def rtu(device):
    return {"rtu": {"enabled": True, "baud": BAUD, "parity": "N", "stopbits": 1},
            "board": {"rtu_device": device}}


def poller_config(a_port, c_device):
    """B's configuration: the RTU master on c_device, 16 requests, 8 alarms."""
    servers = []
    for name, host, unit in (("a", HOST, 1), ("c", None, 1)):
        reqs = []
        reg = 0
        for i, (rname, t, n) in enumerate(TYPES):
            r = {"name": rname, "first": 1 + reg, "count": n, "type": t, "memory": 1 + 100 * len(servers) + 4 * i}
            if rname == "u16le":
                r["byte_order"] = "LE"
            if rname == "i32cdab":
                r["word_order"] = "LE"
                r["table"] = "input"
                r["address"] = 0x40 + 0x10 * len(servers)
            reqs.append(r)
            reg += n
        s = {"name": name, "unit": unit, "period_ms": 100, "timeout_ms": 1000, "requests": reqs}
        if host:
            s.update(host=host, port=a_port)
        else:
            s["line"] = "rs485"
        servers.append(s)
    alarms = []
    for i in range(8):
        srv = "a" if i % 2 == 0 else "c"
        a = {"name": "al%d" % i, "server": srv, "request": TYPES[i][0], "condition": ">", "value": 0,
             "frequency": "every" if i < 4 else "first"}
        if i < 4:
            a["output"] = {"table": "coil", "address": 0x40 + i, "set": "invert"}
        else:
            a["write"] = {"server": srv, "function": 6, "first": 200 + i, "values": [i]}
        alarms.append(a)
    cfg = rtu(c_device)
    cfg["rtu"]["mode"] = "master"
    cfg["poller"] = {"enabled": True, "servers": servers, "alarms": alarms}
    return cfg


class Peers:
    """A (TCP) and C (RTU slave on the pty pair) with known values in holding 0..16."""

    def __init__(self):
        self.pair = PtyPair()
        self.a = self.c = None
        try:
            self.a = start_mbnode(BITS, heap="128K", mpy=True)
            self.c = start_mbnode(BITS, heap="128K", mpy=True, config=rtu(self.pair.a))
            for srv in (self.a, self.c):
                io(srv, "set ao 0 " + " ".join(str(1 + i) for i in range(17)))
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for srv in (self.a, self.c):
            if srv is not None:
                srv.stop()
        self.pair.stop()


def landed(b):
    """B's memory shows A's float32 (1.0 + ...) and C's first value: both servers answered."""
    return io(b, "get mem 1")[0] != 0 and io(b, "get mem 101")[0] != 0


def wait_landed(b, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if landed(b):
            return True
        time.sleep(0.1)
    return False


def alloc(srv):
    # A get first: the control channel's get/set code (boards/unix/simcontrol.py) is loaded on the
    # first such request, and the poller row's wait for landed values makes one; every row counts it.
    io(srv, "get mem 1")
    return io(srv, "heap")[0]


def kib(n):
    return "%.1f KiB (%d B)" % (n / 1024, n)


def run_heap(peers):
    rows = []
    b = start_mbnode(BITS, heap="256K", mpy=True)
    try:
        base = alloc(b)
    finally:
        b.stop()
    rows.append(["default configuration", kib(base), "-", "-"])
    pair = PtyPair()
    try:
        cfg = rtu(pair.b)
        cfg["rtu"]["mode"] = "master"
        b = start_mbnode(BITS, heap="256K", mpy=True, config=cfg)
        try:
            master = alloc(b)
        finally:
            b.stop()
    finally:
        pair.stop()
    rows.append(["RTU master, no user", kib(master), "+%s" % kib(master - base), "-"])
    b = start_mbnode(BITS, heap="256K", mpy=True, config=poller_config(peers.a.port, peers.pair.b))
    try:
        if not wait_landed(b, TRIAL_S):
            raise RuntimeError("B's memory shows no polled values within %.0f s" % TRIAL_S)
        first = alloc(b)
        time.sleep(SOAK_S)
        if not b.alive():
            raise RuntimeError("B exited while polling")
        later = alloc(b)
        rounds = io(b, "get mem 1")  # still answered: the value is there
    finally:
        b.stop()
    rows.append(["RTU master + poller: 16 requests, 8 alarms", kib(first), "+%s" % kib(first - master),
                 "%+d B after %d s" % (later - first, SOAK_S)])
    # Issue 11's figure: the master with 8 extension modules (16 DI + 8 AI each, bench/extension.py's
    # shape; units 101-108, which nothing on the line answers, so they go offline and are retried
    # with back-off: their code, buffers and state are all there) and the poller above, together.
    cfg = poller_config(peers.a.port, peers.pair.b)
    for server in cfg["poller"]["servers"]:  # the extension ranges are the modules' now: onboard instead
        for r in server["requests"]:
            if "address" in r:
                r["address"] -= 0x40
    for a in cfg["poller"]["alarms"]:
        if "output" in a:
            a["output"]["address"] -= 0x40
    cfg["extension"] = {"modules": [{"unit": 100 + u, "di": 16, "do": 8, "ai": 8, "period_ms": 100,
                                     "timeout_ms": 100} for u in range(1, 9)]}
    b = start_mbnode(BITS, heap="256K", mpy=True, config=cfg)
    try:
        if not wait_landed(b, TRIAL_S):
            raise RuntimeError("B's memory shows no polled values within %.0f s (with modules)" % TRIAL_S)
        both = alloc(b)
    finally:
        b.stop()
    rows.append(["RTU master + 8 modules + poller (16 requests, 8 alarms)", kib(both), "+%s" % kib(both - master),
                 "-"])
    table("(o1) Heap in use after start, B on the 32-bit unix port, firmware as .mpy",
          ["configuration", "gc.mem_alloc()", "over the line before", "steady state"], rows,
          note=["B polls A (Modbus TCP) and C (Modbus RTU, 115200 8N1 on a socat pty pair) every 100 ms; "
                "8 alarms, 4 setting a local coil, 4 writing to A or C.", "last value seen: %r" % rounds])
    return [("(o1) poller, 16 requests + 8 alarms: heap over the RTU master alone", kib(first - master), "-"),
            ("(o1) RTU master + 8 modules + 16 polled requests + 8 alarms: heap in use", kib(both), "-"),
            ("(o1) poller steady state, %d s of polling: heap growth" % SOAK_S, "%+d B" % (later - first),
             "PASS" if later - first <= 64 else "MISS")]


def run_smallest(peers):
    cfg = poller_config(peers.a.port, peers.pair.b)

    def trial(bits, size):
        try:
            b = start_mbnode(bits, heap=size, mpy=True, timeout=10, config=cfg)
        except RuntimeError as e:
            return False, "start: %s" % str(e).strip().splitlines()[-1][:100]
        try:
            if not wait_landed(b, TRIAL_S):
                return False, "no values within %.0f s" % TRIAL_S
            if not b.alive():
                return False, "exited"
            if "MemoryError" in b.stderr():
                return False, "MemoryError"
            out = b.output(0.2)  # the event loop reports exceptions it survives on stdout
            return ("MemoryError" not in out), ("MemoryError" if "MemoryError" in out else None)
        except (OSError, RuntimeError) as e:
            return False, "io: %s" % e
        finally:
            b.stop()

    size, why = heap.smallest(trial, BITS, 32 * 1024, 96 * 1024, 512 * 1024)
    table("(o2) Smallest heap B starts and polls with (.mpy, 1 KiB steps)", ["configuration", "smallest",
                                                                            "first failure 1 KiB below"],
          [["RTU master + poller: 16 requests, 8 alarms", heap.kib(size), (why or "")[:70]]])
    return [("(o2) smallest heap, RTU master + poller 16 + 8", heap.kib(size), "-")]


def run(parts="12", count=None):
    peers = Peers()
    try:
        return run_parts("o", {"1": lambda: run_heap(peers), "2": lambda: run_smallest(peers)}, parts)
    finally:
        peers.stop()


if __name__ == "__main__":
    sys.exit(section_main(sys.argv[1:], __doc__, "Poller section summary", "12", 1,
                          "unused (the figures are one measurement each)",
                          "mbnode bench, poller section, %d-bit unix port" % BITS,
                          lambda parts, count: run(parts)))
