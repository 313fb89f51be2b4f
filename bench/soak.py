"""Soak: `make soak SECONDS=N` (or `.cache/venv/bin/python bench/soak.py --seconds N`).

One firmware on the 32-bit unix port, with the MQTT bridge and the RTU slave on, at a heap near
the smallest its configuration is specified for (--heap, below), serves for N seconds at once:

  tcp1..tcp4  4 Modbus TCP clients (raw sockets, one connection each, closed loop)
  rtu         a Modbus RTU master on the simulator's pty (115200 8N2; its own CRC)
  mqtt-q0     gateway text requests with cookies, published at QoS 0 (paho-mqtt, via mosquitto)
  mqtt-q1     the same at QoS 1
  mqtt-set    telemetry writes on <root>/<point>/set: the /res answer and the new value's publish

Every client works on addresses of its own (coils, holding registers, memory positions) and
checks each value it reads back against what it wrote there last; reads of inputs are checked
for their form; a few requests of every kind are meant to fail and must fail exactly as the
docs say (an absent address, a function the gateway refuses). Every request is counted once,
never retried: no answer within --timeout is LOST, a wrong answer (value, exception, form,
cookie answered twice) is an ERROR. The first requests of each client go through every
operation once, so the warm-up reaches every code path.

Heap: the firmware's heap after gc.collect() through the control channel's `heap` request
(docs/simulator.md). The baseline is taken after --warmup seconds of traffic with all clients
paused (nothing in flight), the end figure the same way after the traffic stops; samples every
--sample seconds in between give the smallest free heap seen. Growth is end - baseline bytes
in use; more than --tolerance bytes fails (docs/reliability.md says why 1 KiB).

The firmware runs as a board has it (firmware and umqtt.simple compiled to .mpy, as the
bridge's heap figure in docs/mqtt.md "RAM" is measured), started the way `mbnode sim --mpy
--rtu pty` starts it (the host's overlay and check of the configuration, its pty pair; `mbnode
sim --mpy` itself compiles umqtt.simple at import, which needs more heap), with the bench's
eight MQTT points (bench/mqtt.py) and the bridge at QoS 1, against a mosquitto started here on
a free 127.0.0.1 port. The heap: 132K by default, the smallest this configuration is specified
for (docs/mqtt.md "RAM": the bridge's 124 KiB, and 132 KiB with the RTU slave). Exit status 0
only when nothing was lost or wrong, the heap did not grow, the firmware printed nothing but its
ready and connect lines, and it and the broker ran to the end. Everything started here is
stopped here; every wait is bounded.
"""

import argparse
import array
import json
import multiprocessing
import os
import queue
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HOST, firmware_mpy, micropython, umqtt_path  # noqa: E402
from mqtt import POINTS, Broker  # noqa: E402
from rtu_turnaround import crc16  # noqa: E402

from mbnode.rtu import response_length  # noqa: E402  (rtu_turnaround put firmware/ on the path)
from mbnode_host import sim  # noqa: E402  (common put host/ on the path)

BITS = 32
# docs/mqtt.md, "RAM": the bridge with the RTU slave on is specified for 132 KiB (the bridge alone
# for 124 KiB); docs/reliability.md has the measurements behind both.
HEAP = "132K"
TOLERANCE = 1024  # bytes of growth allowed, docs/reliability.md
UNIT = 1
RTU_BAUD = 115200
RTU_GAP = 0.005  # s of silence before each RTU request (t3.5 at 115200 is 1.75 ms)
RTU_QUIET = 0.05  # s without a byte that ends the drain after a lost RTU response
GATEWAY_TIMEOUT = 5  # TIMEOUT field of the gateway requests
GRACE = 1.0  # s to wait for late or duplicate answers after the traffic stops
START_TIMEOUT = 30.0
MQTT_QOS = 1  # the bridge's mqtt.qos: requests at QoS 0 arrive at QoS 0, at QoS 1 at QoS 1

# Addresses of each client's own (docs/register-map.md): (first coil, coils, first holding
# register, registers, first memory position, positions). 64 memory positions each, so that
# memory reads and writes reach the largest requests (FC03 x124, FC16 x122: 255-byte RTU frames,
# gateway requests of 700+ bytes). The telemetry points (bench/mqtt.py) use coil 5, holding
# 0x40-0x43 and 0x70-0x73 and memory position 1: no client writes there but mqtt-set.
REGIONS = {
    "tcp1": (0x080, 64, 0x080, 32, 100, 64),
    "tcp2": (0x0C0, 64, 0x0A0, 32, 164, 64),
    "tcp3": (0x100, 64, 0x0C0, 32, 228, 64),
    "tcp4": (0x140, 64, 0x0E0, 32, 292, 64),
    "rtu": (0x180, 64, 0x100, 32, 356, 64),
    "mqtt-q0": (0x1C0, 32, 0x120, 16, 420, 64),
    "mqtt-q1": (0x1E0, 32, 0x130, 16, 484, 64),
}
ABSENT_HOLDING = 0x0200  # no holding register there: exception 02
SET_POINTS = ("ao64", "flow", "mem1", "do5")  # writable points of bench/mqtt.py's POINTS


class Lost(Exception):
    """No answer within the timeout."""


class Wrong(Exception):
    """An answer that is not the one expected."""


class Failed(Exception):
    """The soak cannot go on (the firmware or the broker died, a heap sample failed, ...)."""


# ---- what one client counts --------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.requests = 0
        self.errors = 0
        self.lost = 0
        self.late = 0  # answers that came after their request was counted lost
        self.ms = array.array("d")
        self.first = []  # the first few problems, as text

    def note(self, what):
        if len(self.first) < 5:
            self.first.append(what[:300])

    def merge(self, other):
        self.requests += other.requests
        self.errors += other.errors
        self.lost += other.lost
        self.late += other.late
        self.ms.extend(other.ms)
        self.first.extend(other.first[:5 - len(self.first)] if len(self.first) < 5 else [])


def percentile(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * (len(sorted_ms) - 1)))))
    return sorted_ms[k]


# ---- Modbus requests and their checks (independent of the firmware's code) ----------------------


class Shadow:
    """What a client wrote last in its region: coils, registers, memory positions; None where it
    does not know (not written yet, or the write's answer never came)."""

    def __init__(self, region):
        self.coil0, ncoils, self.reg0, nregs, self.pos0, npos = region
        self.coils = [None] * ncoils
        self.regs = [None] * nregs
        self.mem = [None] * npos


def _bits(values):
    out = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _unbits(data, n):
    return [(data[i >> 3] >> (i & 7)) & 1 for i in range(n)]


class ModbusOps:
    """Requests (PDUs) over a client's region and the check of each answer PDU. next() gives
    (name, pdu, check): check(answer_pdu) raises Wrong or returns; the shadow is updated only
    by writes that were answered right; forget() marks a request's writes unknown."""

    OPS = ("read_coils", "write_coil", "write_coils", "read_regs", "write_reg", "write_regs", "read_write",
           "write_mem", "read_mem", "read_mem_input", "read_di", "read_ir", "absent")

    def __init__(self, region, seed):
        self.s = Shadow(region)
        self.rng = random.Random(seed)
        self.count = 0
        self.pending = None  # (table, first, n) a request in flight writes

    def next(self):
        op = self.OPS[self.count] if self.count < len(self.OPS) else self.rng.choice(self.OPS)
        self.count += 1
        return getattr(self, op)()

    def forget(self):
        if self.pending:
            table, first, n = self.pending
            getattr(self.s, table)[first:first + n] = [None] * n
        self.pending = None

    def _span(self, size, most):
        n = self.rng.randint(1, min(size, most))
        return self.rng.randint(0, size - n), n

    # checks
    @staticmethod
    def _head(resp, fc):
        if not resp:
            raise Wrong("empty answer")
        if resp[0] == fc | 0x80:
            raise Wrong("exception %d to function %d" % (resp[1] if len(resp) > 1 else -1, fc))
        if resp[0] != fc:
            raise Wrong("function %d in the answer to %d" % (resp[0], fc))

    def _echo(self, pdu, table, first, n, values):
        self.pending = (table, first, n)

        def check(resp):
            self._head(resp, pdu[0])
            if resp != pdu[:5]:
                raise Wrong("answer %s to write %s" % (resp.hex(), pdu[:5].hex()))
            getattr(self.s, table)[first:first + n] = values
            self.pending = None
        return check

    def _read_check(self, fc, table, first, n, decode):
        def check(resp):
            self._head(resp, fc)
            got = decode(resp)
            want = getattr(self.s, table)[first:first + n]
            if len(got) != n:
                raise Wrong("function %d: %d values for %d" % (fc, len(got), n))
            for i, (g, w) in enumerate(zip(got, want)):
                if w is not None and g != w:
                    raise Wrong("function %d: %s %d is %d, this client wrote %d" % (fc, table, first + i, g, w))
        return check

    @staticmethod
    def _regs(resp):
        if len(resp) < 2 or resp[1] != len(resp) - 2 or resp[1] % 2:
            raise Wrong("byte count %d with %d data bytes" % (resp[1] if len(resp) > 1 else -1, len(resp) - 2))
        return list(struct.unpack(">%dH" % (resp[1] // 2), resp[2:]))

    # operations
    def read_coils(self):
        first, n = self._span(len(self.s.coils), 64)

        def decode(resp):
            if len(resp) < 2 or resp[1] != (n + 7) // 8 or len(resp) != 2 + resp[1]:
                raise Wrong("FC01 byte count for %d coils: %s" % (n, resp[:4].hex()))
            return _unbits(resp[2:], n)
        return "FC01", struct.pack(">BHH", 1, self.s.coil0 + first, n), self._read_check(1, "coils", first, n, decode)

    def write_coil(self):
        i = self.rng.randrange(len(self.s.coils))
        v = self.rng.randint(0, 1)
        pdu = struct.pack(">BHH", 5, self.s.coil0 + i, 0xFF00 if v else 0)
        return "FC05", pdu, self._echo(pdu, "coils", i, 1, [v])

    def write_coils(self):
        first, n = self._span(len(self.s.coils), 64)
        values = [self.rng.randint(0, 1) for _ in range(n)]
        data = _bits(values)
        pdu = struct.pack(">BHHB", 15, self.s.coil0 + first, n, len(data)) + data
        return "FC15", pdu, self._echo(pdu, "coils", first, n, values)

    def read_regs(self):
        first, n = self._span(len(self.s.regs), 125)
        pdu = struct.pack(">BHH", 3, self.s.reg0 + first, n)
        return "FC03", pdu, self._read_check(3, "regs", first, n, self._regs)

    def write_reg(self):
        i = self.rng.randrange(len(self.s.regs))
        v = self.rng.randrange(65536)
        pdu = struct.pack(">BHH", 6, self.s.reg0 + i, v)
        return "FC06", pdu, self._echo(pdu, "regs", i, 1, [v])

    def write_regs(self):
        first, n = self._span(len(self.s.regs), 123)
        values = [self.rng.randrange(65536) for _ in range(n)]
        pdu = struct.pack(">BHHB%dH" % n, 16, self.s.reg0 + first, n, 2 * n, *values)
        return "FC16", pdu, self._echo(pdu, "regs", first, n, values)

    def read_write(self):
        wfirst, wn = self._span(len(self.s.regs), 121)
        rfirst, rn = self._span(len(self.s.regs), 125)
        values = [self.rng.randrange(65536) for _ in range(wn)]
        pdu = struct.pack(">BHHHHB%dH" % wn, 23, self.s.reg0 + rfirst, rn, self.s.reg0 + wfirst, wn, 2 * wn, *values)
        self.pending = ("regs", wfirst, wn)

        def check(resp):
            self._head(resp, 23)
            self.s.regs[wfirst:wfirst + wn] = values  # the write happens before the read
            self.pending = None
            self._read_check(23, "regs", rfirst, rn, self._regs)(resp)
        return "FC23", pdu, check

    def _mem_addr(self, pos_index):
        return 0x1000 + 2 * (self.s.pos0 + pos_index - 1)

    def write_mem(self):
        first, n = self._span(len(self.s.mem), 61)  # 122 registers (FC16 takes 123)
        values = [self.rng.randrange(1 << 32) for _ in range(n)]
        regs = []
        for v in values:
            regs += [v & 0xFFFF, v >> 16]  # lower half first (docs/register-map.md)
        pdu = struct.pack(">BHHB%dH" % len(regs), 16, self._mem_addr(first), len(regs), 2 * len(regs), *regs)
        return "FC16 mem", pdu, self._echo(pdu, "mem", first, n, values)

    def _read_mem(self, fc):
        first, n = self._span(len(self.s.mem), 62)  # 124 registers (FC03/04 take 125)

        def decode(resp):
            r = self._regs(resp)
            return [r[2 * i] | r[2 * i + 1] << 16 for i in range(len(r) // 2)]
        pdu = struct.pack(">BHH", fc, self._mem_addr(first), 2 * n)
        return "FC%02d mem" % fc, pdu, self._read_check(fc, "mem", first, n, decode)

    def read_mem(self):
        return self._read_mem(3)

    def read_mem_input(self):
        return self._read_mem(4)

    def read_di(self):
        first, n = self.rng.randrange(0x200), self.rng.randint(1, 64)
        pdu = struct.pack(">BHH", 2, first, n)

        def check(resp):
            self._head(resp, 2)
            if len(resp) != 2 + (n + 7) // 8 or resp[1] != (n + 7) // 8:
                raise Wrong("FC02 of %d inputs: %s" % (n, resp[:4].hex()))
        return "FC02", pdu, check

    def read_ir(self):
        first, n = self.rng.randrange(0x100), self.rng.randint(1, 64)
        pdu = struct.pack(">BHH", 4, first, n)

        def check(resp):
            self._head(resp, 4)
            if len(self._regs(resp)) != n:
                raise Wrong("FC04: %d registers for %d" % (len(self._regs(resp)), n))
        return "FC04", pdu, check

    def absent(self):
        pdu = struct.pack(">BHH", 3, ABSENT_HOLDING, 1)

        def check(resp):
            if resp != bytes([0x83, 2]):
                raise Wrong("FC03 of absent register 0x%04X: %s, expected exception 02 (8302)"
                            % (ABSENT_HOLDING, resp.hex()))
        return "FC03 absent", pdu, check


# ---- clients -------------------------------------------------------------------------------------


class TcpClient:
    """One Modbus TCP connection. ask(pdu) -> answer PDU; Lost after timeout (the connection is
    then made anew, so a late answer cannot be taken for the next one's)."""

    def __init__(self, port, unit, timeout):
        self.port, self.unit, self.timeout = port, unit, timeout
        self.tid = 0
        self.sock = None

    def _connect(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                s = socket.create_connection((HOST, self.port), timeout=self.timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock = s
                return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise Wrong("cannot connect to %s:%d: %s" % (HOST, self.port, e))
                time.sleep(0.05)

    def _recv(self, n, deadline):
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Lost()
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                raise Lost()
            if not chunk:
                raise Wrong("connection closed by the slave")
            buf += chunk
        return buf

    def ask(self, pdu):
        if self.sock is None:
            self._connect()
        self.tid = (self.tid + 1) & 0xFFFF
        deadline = time.monotonic() + self.timeout
        try:
            self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, self.unit) + pdu)
            head = self._recv(7, deadline)
            tid, proto, length, unit = struct.unpack(">HHHB", head)
            if tid != self.tid or proto != 0 or unit != self.unit or not 2 <= length <= 254:
                raise Wrong("MBAP header %s for transaction %d unit %d" % (head.hex(), self.tid, self.unit))
            return self._recv(length - 1, deadline)
        except (Lost, Wrong, OSError):
            self.close()
            raise

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class RtuMaster:
    """A Modbus RTU master on the client end of the simulator's pty: the whole request in one
    write after RTU_GAP of silence; the answer read by its length (from its function code and
    byte count) and checked (address, CRC). After a lost answer the line is drained until it has
    been quiet RTU_QUIET, so a late answer is never taken for the next request's."""

    def __init__(self, path, unit, timeout):
        self.unit, self.timeout = unit, timeout
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.last = 0.0

    def _read(self, n, deadline):
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Lost()
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                data += os.read(self.fd, n - len(data))
        return data

    def _drain(self):
        end = time.monotonic() + max(1.0, self.timeout)
        while time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], RTU_QUIET)
            if not r:
                return
            os.read(self.fd, 4096)

    def ask(self, pdu):
        wait = self.last + RTU_GAP - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the line's silence before a request (t3.5), not a synchronisation
        body = bytes([self.unit]) + pdu
        deadline = time.monotonic() + self.timeout
        try:
            os.write(self.fd, body + struct.pack("<H", crc16(body)))
            frame = self._read(2, deadline)
            n = response_length(frame, 0, 2, len(body) + 2)
            while n == 0 or n > len(frame):  # MORE: one byte more; else the rest of the frame
                frame += self._read(n - len(frame) if n else 1, deadline)
                n = response_length(frame, 0, len(frame), len(body) + 2)
        except Lost:
            self._drain()
            raise
        finally:
            self.last = time.monotonic()
        if n < 0:
            self._drain()
            raise Wrong("RTU frame %s: a function code whose length only silence tells" % frame.hex())
        if frame[0] != self.unit or crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
            self._drain()
            raise Wrong("RTU frame %s: address or CRC wrong" % frame.hex())
        return frame[1:-2]

    def close(self):
        os.close(self.fd)


def modbus_worker(name, transport, ops, stats, running, stop):
    while not stop.is_set():
        if not running.wait(0.05):
            continue
        while running.is_set():
            what, pdu, check = ops.next()
            stats.requests += 1
            t0 = time.perf_counter()
            try:
                check(transport.ask(pdu))
                stats.ms.append((time.perf_counter() - t0) * 1000)
            except Lost:
                stats.lost += 1
                ops.forget()
                stats.note("%s %s: no answer within %.0f s" % (name, what, transport.timeout))
            except (Wrong, OSError) as e:
                stats.errors += 1
                ops.forget()
                stats.note("%s %s: %s" % (name, what, e))
        yield


# ---- MQTT clients ------------------------------------------------------------------------------


class Paho:
    """A paho-mqtt 2.x client on the broker, subscribed to `topics` at qos; every message goes
    to on_message(topic, payload, arrival perf_counter)."""

    def __init__(self, port, name, topics, qos, on_message, timeout=10.0):
        import paho.mqtt.client as paho

        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="soak-%s-%d" % (name, os.getpid()),
                             clean_session=True)
        connected, subscribed = threading.Event(), threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: connected.set()
        self.c.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.c.on_message = lambda c, u, m: on_message(m.topic, bytes(m.payload), time.perf_counter())
        self.c.connect(HOST, port, keepalive=60)
        # paho leaves Nagle on: a PUBACK it sends would hold its next PUBLISH back for the
        # broker's delayed ACK (40 ms), which would be the client's time, not the device's.
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        if not connected.wait(timeout):
            raise RuntimeError("paho %s: no CONNACK within %.0f s" % (name, timeout))
        self.c.subscribe([(t, qos) for t in topics])
        if not subscribed.wait(timeout):
            raise RuntimeError("paho %s: no SUBACK within %.0f s" % (name, timeout))

    def publish(self, topic, payload, qos):
        self.c.publish(topic, payload, qos=qos)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class GatewayOps:
    """Gateway text requests (docs/mqtt.md) over a requester's region, to the device's own
    Modbus TCP address (format 0) and its serial device (format 1, answered by its own engine),
    and the reply each must get. Register numbers are address + 1."""

    OPS = ("read_regs", "write_reg", "write_regs", "read_coils", "write_coil", "write_coils", "write_mem",
           "read_mem", "read_mem_input", "bad_function", "absent")

    def __init__(self, region, port, seed):
        self.s = Shadow(region)
        self.port = port
        self.rng = random.Random(seed)
        self.count = 0
        self.pending = None

    def next(self, cookie):
        op = self.OPS[self.count] if self.count < len(self.OPS) else self.rng.choice(self.OPS)
        self.count += 1
        head = (("0 %s 0 %s %d %d %d" % (cookie, HOST, self.port, GATEWAY_TIMEOUT, UNIT)) if self.count % 2
                else ("1 %s rs485 %d %d" % (cookie, GATEWAY_TIMEOUT, UNIT)))
        what, rest, check = getattr(self, op)(cookie)
        return what, head + " " + rest, check

    def forget(self):
        ModbusOps.forget(self)

    def _span(self, size, most):
        return ModbusOps._span(self, size, most)

    @staticmethod
    def _ok(cookie, text):
        words = text.split(" ")
        if words[:2] != [cookie, "OK"]:
            raise Wrong("reply %r" % text[:120])
        return words[2:]

    def _write(self, cookie, table, first, n, values):
        self.pending = (table, first, n)

        def check(text):
            if text != "%s OK" % cookie:
                raise Wrong("reply %r to a write" % text[:120])
            getattr(self.s, table)[first:first + n] = values
            self.pending = None
        return check

    def _read(self, cookie, table, first, n, convert):
        def check(text):
            words = self._ok(cookie, text)
            got = convert([int(w) for w in words])
            want = getattr(self.s, table)[first:first + n]
            if len(got) != n:
                raise Wrong("%d values for %d: %r" % (len(got), n, text[:120]))
            for i, (g, w) in enumerate(zip(got, want)):
                if w is not None and g != w:
                    raise Wrong("%s %d is %d, this client wrote %d" % (table, first + i, g, w))
        return check

    def read_regs(self, c):
        first, n = self._span(len(self.s.regs), 125)
        return "read regs", "3 %d %d" % (self.s.reg0 + first + 1, n), self._read(c, "regs", first, n, list)

    def write_reg(self, c):
        i, v = self.rng.randrange(len(self.s.regs)), self.rng.randrange(65536)
        return "write reg", "6 %d %d" % (self.s.reg0 + i + 1, v), self._write(c, "regs", i, 1, [v])

    def write_regs(self, c):
        first, n = self._span(len(self.s.regs), 123)
        values = [self.rng.randrange(65536) for _ in range(n)]
        return ("write regs", "16 %d %d %s" % (self.s.reg0 + first + 1, n, ",".join(map(str, values))),
                self._write(c, "regs", first, n, values))

    def read_coils(self, c):
        first, n = self._span(len(self.s.coils), 64)
        return "read coils", "1 %d %d" % (self.s.coil0 + first + 1, n), self._read(c, "coils", first, n, list)

    def write_coil(self, c):
        i, v = self.rng.randrange(len(self.s.coils)), self.rng.randint(0, 1)
        return "write coil", "5 %d %d" % (self.s.coil0 + i + 1, v), self._write(c, "coils", i, 1, [v])

    def write_coils(self, c):
        first, n = self._span(len(self.s.coils), 64)
        values = [self.rng.randint(0, 1) for _ in range(n)]
        return ("write coils", "15 %d %d %s" % (self.s.coil0 + first + 1, n, ",".join(map(str, values))),
                self._write(c, "coils", first, n, values))

    def _mem_number(self, first):
        return 0x1000 + 2 * (self.s.pos0 + first - 1) + 1

    def write_mem(self, c):
        first, n = self._span(len(self.s.mem), 61)
        values = [self.rng.randrange(1 << 32) for _ in range(n)]
        regs = []
        for v in values:
            regs += [v & 0xFFFF, v >> 16]
        return ("write mem", "16 %d %d %s" % (self._mem_number(first), len(regs), ",".join(map(str, regs))),
                self._write(c, "mem", first, n, values))

    def _read_mem(self, c, fc):
        first, n = self._span(len(self.s.mem), 62)

        def convert(r):
            return [r[2 * i] | r[2 * i + 1] << 16 for i in range(len(r) // 2)]
        return ("read mem fc%d" % fc, "%d %d %d" % (fc, self._mem_number(first), 2 * n),
                self._read(c, "mem", first, n, convert))

    def read_mem(self, c):
        return self._read_mem(c, 3)

    def read_mem_input(self, c):
        return self._read_mem(c, 4)

    def bad_function(self, c):
        want = "%s ERROR: function 7: allowed 1, 2, 3, 4, 5, 6, 15, 16" % c

        def check(text):
            if text != want:
                raise Wrong("reply %r, expected %r" % (text[:120], want))
        return "function 7", "7 1 1", check

    def absent(self, c):
        want = "%s ERROR: Modbus exception 2 (illegal data address)" % c

        def check(text):
            if text != want:
                raise Wrong("reply %r, expected %r" % (text[:120], want))
        return "absent register", "3 %d 1" % (ABSENT_HOLDING + 1), check


class Replies:
    """Answers collected by paho's thread: key -> [(arrival, text)], a condition to wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.got = {}

    def add(self, key, when, text):
        with self.cond:
            self.got.setdefault(key, []).append((when, text))
            self.cond.notify_all()

    def wait(self, key, deadline):
        with self.cond:
            while key not in self.got:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.got[key][0]


def gateway_worker(name, cfg, stats, running, stop):
    qos = 1 if name == "mqtt-q1" else 0
    base = (1 if qos else 2) * 10 ** 12  # the two requesters' cookies never meet
    replies = Replies()

    def on_message(topic, payload, when):
        text = payload.decode("utf-8", "replace")
        first = text.split(" ", 1)[0]
        if first.isdigit() and base <= int(first) < base + 10 ** 12:
            replies.add(first, when, text)
        elif first == "ERROR:":
            replies.add(None, when, text)

    client = Paho(cfg["broker"], name, [cfg["topics"]["response"]], qos, on_message)
    ops = GatewayOps(REGIONS[name], cfg["port"], seed=sum(map(ord, name)))
    sent = {}
    lost = set()
    try:
        while not stop.is_set():
            if not running.wait(0.05):
                continue
            while running.is_set():
                cookie = str(base + len(sent) + 1)
                what, payload, check = ops.next(cookie)
                sent[cookie] = what
                stats.requests += 1
                t0 = time.perf_counter()
                client.publish(cfg["topics"]["request"], payload, qos)
                got = replies.wait(cookie, time.monotonic() + cfg["timeout"])
                if got is None:
                    stats.lost += 1
                    lost.add(cookie)
                    ops.forget()
                    stats.note("%s %s %s: no reply within %.0f s" % (name, what, cookie, cfg["timeout"]))
                    continue
                try:
                    check(got[1])
                    stats.ms.append((got[0] - t0) * 1000)
                except Wrong as e:
                    stats.errors += 1
                    ops.forget()
                    stats.note("%s %s: %s" % (name, what, e))
            yield
        time.sleep(GRACE)  # late and duplicate replies
        with replies.cond:
            got = dict(replies.got)
        for key, answers in got.items():
            if key is None or key not in sent:
                stats.errors += len(answers)
                stats.note("%s: a reply to no request of ours: %r" % (name, answers[0][1][:120]))
            elif key in lost:
                stats.late += 1
            elif len(answers) > 1:
                stats.errors += 1
                stats.note("%s: cookie %s answered %d times: %r" % (name, key, len(answers), answers[1][1][:120]))
    finally:
        client.close()


def set_worker(name, cfg, stats, running, stop):
    """Writes the writable telemetry points in turn: each /set must get {"ok": true} on its /res
    and the point must then publish the value written."""
    root = cfg["topics"]["root"]
    replies = Replies()

    def on_message(topic, payload, when):
        rest = topic[len(root) + 1:]
        if rest.endswith("/res"):
            replies.add(("res", rest[:-4]), when, payload)
        elif "/" not in rest and rest != "status":
            try:
                replies.add(("value", rest, json.loads(payload)["value"]), when, payload)
            except (ValueError, KeyError, TypeError):
                replies.add(("bad", rest), when, payload)

    client = Paho(cfg["broker"], name, [root + "/#"], 1, on_message)
    rng = random.Random(7)
    makers = {"ao64": lambda: rng.randint(-32768, 32767), "flow": lambda: rng.randint(-4000, 4000) / 4.0,
              "mem1": lambda: rng.randint(-2 ** 31, 2 ** 31 - 1)}
    last = {"do5": False}  # each value differs from the last one written (else nothing is published)
    n = 0
    try:
        while not stop.is_set():
            if not running.wait(0.05):
                continue
            while running.is_set():
                point = SET_POINTS[n % len(SET_POINTS)]
                n += 1
                if point == "do5":
                    value = not last["do5"]
                else:
                    value = makers[point]()
                    while value == last.get(point) or value == 0:  # 0: what the point starts with
                        value = makers[point]()
                last[point] = value
                with replies.cond:  # only what comes after this publish counts
                    replies.got.pop(("res", point), None)
                    replies.got.pop(("value", point, value), None)
                stats.requests += 1
                t0 = time.perf_counter()
                client.publish("%s/%s/set" % (root, point), json.dumps({"value": value}), 1)
                deadline = time.monotonic() + cfg["timeout"]
                res = replies.wait(("res", point), deadline)
                if res is None:
                    stats.lost += 1
                    stats.note("%s %s = %r: no /res within %.0f s" % (name, point, value, cfg["timeout"]))
                    continue
                try:
                    answer = json.loads(res[1])
                except ValueError:
                    answer = None
                if not isinstance(answer, dict) or answer.get("ok") is not True:
                    stats.errors += 1
                    stats.note("%s %s = %r: /res %r" % (name, point, value, res[1][:120]))
                    continue
                stats.ms.append((res[0] - t0) * 1000)
                if replies.wait(("value", point, value), deadline) is None:
                    stats.errors += 1
                    stats.note("%s %s = %r: written, but the point did not publish it within %.0f s"
                               % (name, point, value, cfg["timeout"]))
            yield
        bad = [k for k in replies.got if k[0] == "bad"]
        if bad:
            stats.errors += len(bad)
            stats.note("%s: unreadable point payloads on %s" % (name, bad[0][1]))
    finally:
        client.close()


def worker_main(name, cfg, running, stop, results):
    """A client process: runs while `running` is set, says "idle" each time it has stopped (no
    request in flight), and sends its Stats when `stop` is set."""
    stats = Stats()
    try:
        if name.startswith("tcp"):
            transport = TcpClient(cfg["port"], cfg["unit"], cfg["timeout"])
            steps = modbus_worker(name, transport, ModbusOps(REGIONS[name], seed=int(name[3:])), stats, running, stop)
        elif name == "rtu":
            transport = RtuMaster(cfg["rtu"], cfg["unit"], cfg["timeout"])
            steps = modbus_worker(name, transport, ModbusOps(REGIONS[name], seed=99), stats, running, stop)
        elif name == "mqtt-set":
            steps = set_worker(name, cfg, stats, running, stop)
        else:
            steps = gateway_worker(name, cfg, stats, running, stop)
        results.put(("ready", name, None))
        for _ in steps:
            results.put(("idle", name, None))
    except Exception as e:  # noqa: BLE001 - a client that cannot work is a failed soak, said in one line
        stats.errors += 1
        stats.note("%s: %s: %s" % (name, type(e).__name__, e))
        results.put(("ready", name, None))
    results.put(("done", name, stats))


# ---- the firmware, the broker and the control channel ----------------------------------------------


class Firmware:
    """The firmware as .mpy (with umqtt.simple as .mpy) on the unix port, started as `mbnode sim
    --mpy --rtu pty` starts it: the host's overlay and check of the configuration, a pty pair
    whose client end stays open here. Its output is read by a thread: the ready line, and every
    line after it but the first `mqtt: connected` is a problem."""

    def __init__(self, heap, mqtt_section, tmp, with_rtu=True, given=None, romfs=None, frozen=None):
        """given: the configuration laid under the bench's (bench/cabinet_heap.py), instead of
        {"mqtt": mqtt_section}; its rtu section's settings are kept. romfs: (binary, image) to
        run the firmware from a ROMFS image instead (bench/cabinet_heap.py --romfs); frozen: a
        unix port with the firmware frozen in, main.py included (bench/cabinet_heap.py --frozen)."""
        fw_fd, self.rtu_path, self.client_fd = sim.make_pty()
        try:
            rtu = {"device": "fd:%d" % fw_fd, "peer": self.rtu_path}
            if given is None:
                given = {"mqtt": mqtt_section}
                rtu.update(baud=RTU_BAUD, parity="N")
            if not with_rtu:  # --only without the rtu client: the configuration without RTU either
                rtu = None
            cfg, ours = sim.overlay(given, (HOST, 0), None, (HOST, 0), rtu)
            sim.check_config(cfg, None, ours)
            cfg_path = Path(tmp) / "soak-config.json"
            cfg_path.write_text(json.dumps(cfg))
            fw, lib = firmware_mpy(BITS), umqtt_path(BITS, True)
            env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(fw), str(lib)]))
            self.argv = [micropython(BITS), "-X", "heapsize=%d" % heap, str(fw / "main.py"), str(cfg_path)]
            if romfs:  # the bundle's files on /rom, mapped outside the heap; main found on sys.path
                env = dict(os.environ, MICROPYPATH=".frozen:/rom", MICROPY_ROMFS=str(romfs[1]))
                self.argv = [str(romfs[0]), "-X", "heapsize=%d" % heap, "-m", "main", str(cfg_path)]
            if frozen:  # every module in the binary, as on a board image; nothing on the path
                env = dict(os.environ, MICROPYPATH=".frozen")
                self.argv = [str(frozen), "-X", "heapsize=%d" % heap, "-m", "main", str(cfg_path)]
            self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, pass_fds=[fw_fd])
        finally:
            os.close(fw_fd)
        self._io = None
        self.lines = []  # (stream, text) after the ready line
        self.early = []
        self.ready = None
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                         for s, n in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for t in self._threads:
            t.start()
        if not self._ready.wait(START_TIMEOUT) or self.ready is None:
            self.stop()
            raise RuntimeError("the firmware did not print its ready line within %.0f s: %s"
                               % (START_TIMEOUT, " | ".join(t for _, t in self.early[-5:])))
        words = self.ready.split()
        fields = dict(zip(words[1::2], words[2::2]))
        self.port = int(fields["tcp"].rsplit(":", 1)[1])
        host, port = fields["io"].rsplit(":", 1)
        self.io = (host, int(port))

    def _read(self, stream, name):
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip()
            if self.ready is None and name == "stdout" and text.startswith("ready"):
                self.ready = text
                self._ready.set()
            elif self.ready is None:
                self.early.append((name, text))
            else:
                self.lines.append((name, text))
        if name == "stdout":
            self._ready.set()

    def problems(self):
        out = []
        connected = False
        for stream, text in list(self.lines):
            if stream == "stdout" and text.startswith("mqtt: connected to ") and not connected:
                connected = True
            else:
                out.append("%s: %s" % (stream, text))
        return out

    def alive(self):
        return self.proc.poll() is None

    def heap(self, timeout=5.0):
        """(bytes in use, bytes free) after the firmware's gc.collect(), asked over one control
        connection kept for every sample (a new connection each time would be an object more
        or less in some samples)."""
        if self._io is None:
            self._io = socket.create_connection(self.io, timeout=timeout)
        self._io.settimeout(timeout)
        try:
            self._io.sendall(b"heap\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = self._io.recv(256)
                if not chunk:
                    break
                reply += chunk
        except OSError as e:
            self._io.close()
            self._io = None
            raise Failed("control channel %s:%d: heap request: %s" % (self.io[0], self.io[1], e or type(e).__name__))
        words = reply.decode("ascii", "replace").split()
        if len(words) != 3 or words[0] != "ok":
            raise Failed("control channel: heap answered %r" % reply[:100])
        return int(words[1]), int(words[2])

    def stop(self):
        """SIGINT, the firmware's normal way out (as `mbnode sim` stops it); its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._io is not None:
            self._io.close()
            self._io = None
        for t in self._threads:
            t.join(5)
        os.close(self.client_fd)
        return self.proc.returncode


def wait_online(broker_port, status_topic, timeout=15.0):
    seen = threading.Event()
    c = Paho(broker_port, "online", [status_topic], 1,
             lambda t, p, w: seen.set() if p == b"online" else None)
    try:
        return seen.wait(timeout)
    finally:
        c.close()


# ---- the run -------------------------------------------------------------------------------------

NAMES = ("tcp1", "tcp2", "tcp3", "tcp4", "rtu", "mqtt-q0", "mqtt-q1", "mqtt-set")
BROKER_CONF = "set_tcp_nodelay true\n"  # docs/reliability.md: without it every QoS 1 reply costs 40 ms


class Run:
    """The clients (processes) and the phases of traffic; samples of the heap meanwhile."""

    def __init__(self, args, fw, broker, cfg, names):
        self.args, self.fw, self.broker, self.names = args, fw, broker, names
        ctx = multiprocessing.get_context("spawn")  # processes: the clients share no GIL
        self.running, self.stop, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.procs = [ctx.Process(target=worker_main, args=(n, cfg, self.running, self.stop, self.results),
                                  name="soak-" + n) for n in names]
        self.samples = []  # (seconds since the traffic began, in use, free)
        self.t0 = None
        self.stats = {}

    def _collect(self, kind, timeout, what):
        """Until every client has sent a message of this kind (or "done")."""
        seen = set(n for n in self.names if n in self.stats)
        deadline = time.monotonic() + timeout
        while seen != set(self.names) and time.monotonic() < deadline:
            try:
                k, name, payload = self.results.get(timeout=0.5)
            except queue.Empty:
                continue
            if k == "done":
                self.stats[name] = payload
            if k in (kind, "done"):
                seen.add(name)
        if seen != set(self.names):
            late = ", ".join(sorted(set(self.names) - seen))
            raise Failed("clients not %s within %.0f s: %s" % (what, timeout, late))

    def start(self):
        for p in self.procs:
            p.start()
        self._collect("ready", START_TIMEOUT, "ready")
        self.t0 = time.monotonic()

    def sample(self):
        used, free = self.fw.heap()
        self.samples.append((time.monotonic() - self.t0, used, free))
        return used, free

    def quiet_heap(self, n=3):
        """n samples with nothing in flight: (in use, free) of the last, and every one's in use."""
        got = [self.sample() for _ in range(n)]
        return got[-1][0], got[-1][1], [u for u, _ in got]

    def check_alive(self):
        if not self.fw.alive():
            raise Failed("the firmware exited (status %s) while serving" % self.fw.proc.returncode)
        if self.broker.proc.poll() is not None:
            raise Failed("mosquitto exited (status %s)" % self.broker.proc.returncode)

    def phase(self, seconds):
        """Traffic for `seconds` with heap samples every --sample s; returns once every client is
        idle (nothing in flight), also when the firmware dies meanwhile."""
        self.running.set()
        try:
            end = time.monotonic() + seconds
            next_sample = time.monotonic() + self.args.sample
            while time.monotonic() < end:
                time.sleep(min(0.2, max(0.0, end - time.monotonic())))
                self.check_alive()
                if next_sample <= time.monotonic() < end - 0.5:
                    self.sample()
                    next_sample += self.args.sample
        finally:
            self.running.clear()
            self._collect("idle", self.args.timeout + 10, "idle after the traffic stopped")

    def finish(self):
        """Every client's Stats (a client that sent none gets an empty one and a reason)."""
        self.stop.set()
        self.running.clear()
        missing = []
        try:
            self._collect("done", self.args.timeout + GRACE + 15, "done")
        except Failed as e:
            missing.append(str(e))
        for p in self.procs:
            if p.pid is None:
                continue
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        self.stats = dict((n, self.stats.get(n) or Stats()) for n in self.names)
        return missing


def judge(stats, start_used, end_used, tolerance, firmware_problems, failures):
    """The reasons the soak failed (empty: it passed). stats: {kind: Stats}; start_used,
    end_used: bytes in use after gc at the baseline and at the end (None: not measured)."""
    why = []
    lost = sum(s.lost for s in stats.values())
    errors = sum(s.errors for s in stats.values())
    if lost:
        why.append("%d lost response%s (%s)" % (lost, "s" if lost > 1 else "",
                                                ", ".join("%s %d" % (k, s.lost) for k, s in stats.items() if s.lost)))
    if errors:
        why.append("%d error%s (%s)" % (errors, "s" if errors > 1 else "",
                                        ", ".join("%s %d" % (k, s.errors) for k, s in stats.items() if s.errors)))
    idle = [k for k, s in stats.items() if not s.requests]
    if idle or not stats:
        why.append("no requests from %s" % (", ".join(idle) or "any client"))
    if start_used is None or end_used is None:
        why.append("no heap figure at the %s" % ("start" if start_used is None else "end"))
    elif end_used - start_used > tolerance:
        why.append("heap grew by %d bytes (%d -> %d in use, tolerance %d)"
                   % (end_used - start_used, start_used, end_used, tolerance))
    if firmware_problems:
        why.append("the firmware printed %d unexpected line%s, first: %s"
                   % (len(firmware_problems), "s" if len(firmware_problems) > 1 else "", firmware_problems[0][:160]))
    why.extend(failures)
    return why


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60, help="traffic after the warm-up (default 60)")
    ap.add_argument("--warmup", type=float, default=5, help="traffic before the heap baseline (default 5 s)")
    ap.add_argument("--heap", default=HEAP, help="MicroPython heap (default %s, docs/reliability.md)" % HEAP)
    ap.add_argument("--tolerance", type=int, default=TOLERANCE,
                    help="bytes of heap growth allowed (default %d, docs/reliability.md)" % TOLERANCE)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds after which a response is lost (5)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between heap samples (5)")
    ap.add_argument("--unit", type=int, default=UNIT,
                    help="unit id the Modbus TCP and RTU clients address (default %d, the firmware's; another "
                         "one is never answered, so each of their requests is lost)" % UNIT)
    ap.add_argument("--only", default=",".join(NAMES),  # without rtu, the firmware runs without RTU
                    help="the clients to run, comma-separated, for looking into a failure (default: all, %s)"
                    % ",".join(NAMES))
    args = ap.parse_args(argv)
    names = tuple(n for n in NAMES if n in args.only.split(","))
    if not names or set(args.only.split(",")) - set(NAMES):
        ap.error("--only %s: allowed some of %s" % (args.only, ",".join(NAMES)))
    if args.seconds <= 0 or args.warmup < 0 or args.timeout <= 0 or args.sample <= 0 or not 0 <= args.unit <= 255:
        ap.error("allowed: --seconds, --timeout, --sample above 0; --warmup 0 or more; --unit 0..255")
    try:
        heap = sim.parse_size(args.heap, BITS)
    except ValueError as e:
        ap.error(str(e))
    t_begin = time.monotonic()
    prefix = "soak%d" % os.getpid()
    section = {"enabled": True, "host": HOST, "port": 0, "client_id": "mbnode-" + prefix, "prefix": prefix,
               "qos": MQTT_QOS, "points": POINTS}
    topics = {"request": prefix + "/request", "response": prefix + "/response", "root": prefix + "/mbnode"}
    broker = fw = run = None
    start = end = None
    failures = []
    stats = {}
    traffic = 0.0
    try:
        with tempfile.TemporaryDirectory(prefix="mbnode-soak-") as tmp:
            try:
                broker = Broker(extra=BROKER_CONF)
                section["port"] = broker.port
                fw = Firmware(heap, section, tmp, "rtu" in names)
                print("soak: %s, %d CPUs, load average %.2f at the start; micropython-%d, heap %s, firmware and "
                      "umqtt.simple as .mpy: %s" % (time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), os.getloadavg()[0],
                                                    BITS, args.heap, fw.ready))
                print("soak: mosquitto %s:%d; %.0f s warm-up, %.0f s traffic; a response is lost after %.0f s"
                      % (HOST, broker.port, args.warmup, args.seconds, args.timeout), flush=True)
                if not wait_online(broker.port, topics["root"] + "/status"):
                    raise Failed("the bridge never said online on %s/status" % topics["root"])
                cfg = {"port": fw.port, "unit": args.unit, "timeout": args.timeout, "rtu": fw.rtu_path,
                       "broker": broker.port, "topics": topics}
                run = Run(args, fw, broker, cfg, names)
                run.start()
                if args.warmup > 0:
                    run.phase(args.warmup)
                start = run.quiet_heap()
                run.phase(args.seconds)
                end = run.quiet_heap()
            except (Failed, RuntimeError, OSError) as e:
                failures.append(str(e) or type(e).__name__)
            finally:
                if run is not None:
                    traffic = time.monotonic() - run.t0 if run.t0 else 0.0
                    failures.extend(run.finish())
                    stats = run.stats
    finally:
        code = fw.stop() if fw is not None else None
        if broker is not None:
            broker.stop()
    if code not in (0, None) and not failures:
        failures.append("the firmware stopped with status %s on SIGINT" % code)
    problems = fw.problems() if fw is not None else []
    if run is not None:
        report(stats, run, start, end, args, traffic)
    for line in problems[:5]:
        print("firmware said: %s" % line)
    why = judge(stats, start and start[0], end and end[0], args.tolerance, problems, failures)
    if why:
        print("soak: FAIL: %s" % "; ".join(why))
        return 1
    print("soak: PASS %d requests in %.0f s (%s), none lost, no errors; heap %+d bytes (%d -> %d in use, "
          "tolerance %d), smallest free %d of %s" % (
              sum(s.requests for s in stats.values()), time.monotonic() - t_begin,
              ", ".join("%s %d" % (k, s.requests) for k, s in stats.items()), end[0] - start[0], start[0], end[0],
              args.tolerance, min(f for _, _, f in run.samples), args.heap))
    return 0


def report(stats, run, start, end, args, traffic):
    """The table of counts and latencies, then the heap figures. start/end: (in use, free, the
    quiet samples' figures in use) or None."""
    rows = []
    total = Stats()
    for name, s in stats.items():
        if name.startswith("tcp"):
            total.merge(s)
        rows.append((name, s))
        if name == "tcp4":
            rows.append(("tcp total", total))
    print()
    print("%-10s %9s %7s %6s %5s %5s %7s %7s" % ("kind", "requests", "per s", "errors", "lost", "late", "p50 ms",
                                               "p99 ms"))
    for name, s in rows:
        ms = sorted(s.ms)
        print("%-10s %9d %7.0f %6d %5d %5d %7.2f %7.2f" % (name, s.requests, s.requests / traffic if traffic else 0,
                                                         s.errors, s.lost, s.late, percentile(ms, 50),
                                                         percentile(ms, 99)))
    for name, s in stats.items():
        for text in s.first:
            print("  %s" % text)
    print()
    for label, fig in (("start (after the warm-up)", start), ("end (after the traffic)", end)):
        if fig is not None:
            print("heap after gc, %s: %d in use, %d free (quiet samples in use: %s)"
                  % (label, fig[0], fig[1], " ".join(map(str, fig[2]))))
    if start is not None and end is not None:
        print("heap growth: %+d bytes (tolerance %d)" % (end[0] - start[0], args.tolerance))
    if run.samples:
        low = min(run.samples, key=lambda x: x[2])
        print("heap samples: %d; in use %d..%d; smallest free %d at %.0f s (heap %s)"
              % (len(run.samples), min(u for _, u, _ in run.samples), max(u for _, u, _ in run.samples), low[2],
                 low[0], args.heap))


if __name__ == "__main__":
    sys.exit(main())
