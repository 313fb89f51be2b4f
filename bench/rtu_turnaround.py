"""RTU client side for the bench: frames, pty ends, and the turnaround measurement.

Turnaround = time from the request's last byte to the response's first byte, as a master on
the line would see it. On a pty there is no wire: os.write() of the whole request returns once
the last byte is in the pty, so the clock starts right after it returns; the clock stops when
poll() reports the first response byte readable. The rest of the response is then read and
checked (address, function code, length, CRC). Between requests the line stays silent for GAP
seconds (more than t3.5), as the Modbus serial line spec asks of a master.

What the client adds: its own wake-up after poll() returns. With client and server pinned to
one CPU the client runs only once the server stops running (blocks or sleeps), so the figure
includes whatever the server does between writing its reply and blocking; with them on
different CPUs it includes a cross-CPU wake-up instead (tens of microseconds).
"""

import os
import pty
import select
import struct
import sys
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

from mbnode.rtu import response_length  # noqa: E402  (the firmware's rule)

UNIT = 1
GAP = 0.004  # silence between a response and the next request (t3.5 = 1.75 ms at 115200)
TIMEOUT = 1.0  # per response
WRITE_LIMIT_US = 100  # a write() of one frame to a pty takes a few microseconds


class Failed(Exception):
    pass


def crc16(data):
    """CRC-16/MODBUS, bit by bit (independent of the firmware's table implementation)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def adu(pdu, unit=UNIT):
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


class Req:
    """An RTU request frame and the length of its normal response."""

    def __init__(self, name, pdu, resp_len):
        self.name = name
        self.fc = pdu[0]
        self.adu = adu(pdu)
        self.resp_len = resp_len


def read_regs(addr, qty):
    return Req("FC03 x%d" % qty, struct.pack(">BHH", 3, addr, qty), 5 + 2 * qty)


def write_regs(addr, qty):
    values = [(i * 7) & 0x3FF for i in range(qty)]  # <= 0x3FF: see bench/frames.py
    pdu = struct.pack(">BHHB", 16, addr, qty, 2 * qty) + struct.pack(">%dH" % qty, *values)
    return Req("FC16 x%d" % qty, pdu, 8)


def complete(resp):
    """True once resp holds a whole response frame, by its length (mbnode.rtu.response_length);
    never for a function code whose length only silence tells (the bench sends none)."""
    n = response_length(resp, 0, len(resp))
    return n > 0 and len(resp) >= n


def requests():
    """The two rows of the turnaround table: the largest read and the largest write."""
    return [read_regs(0, 125), write_regs(0, 123)]


# ---- pty ends ----------------------------------------------------------------------------------

def open_pair():
    """(client fd, server path, server-side fd kept open by us): a raw pty pair.

    The client uses the master end; the server opens the slave by path. We hold the slave open
    too (never reading it) so the master does not see a hang-up while the server starts."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, os.ttyname(slave), slave


def open_path(path):
    """The client end given by path (e.g. the one `mbnode sim --rtu pty` prints), raw."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def drain(fd, quiet=0.02, limit=1.0):
    """Read and drop input until the line has been quiet for `quiet` s; returns bytes dropped."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    dropped = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and p.poll(quiet * 1000):
        dropped += len(os.read(fd, 4096))
    return dropped


# ---- measurement -------------------------------------------------------------------------------

def exchange(fd, poller, req):
    """One request/response: (turnaround ns, ns the write() call took). Raises Failed."""
    data = req.adu
    clock = time.perf_counter_ns
    tw = clock()
    n = os.write(fd, data)
    t0 = clock()
    if n != len(data):
        raise Failed("pty took %d of %d request bytes" % (n, len(data)))
    if not poller.poll(TIMEOUT * 1000):
        raise Failed("no response within %.1f s" % TIMEOUT)
    t1 = clock()
    resp = os.read(fd, 512)
    deadline = time.monotonic() + TIMEOUT
    while not complete(resp):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise Failed("response cut at %d of %d bytes: %s" % (len(resp), req.resp_len, resp[:8].hex()))
        resp += os.read(fd, 512)
    if len(resp) >= 5 and resp[1] & 0x80:
        raise Failed("exception response %02X %02X" % (resp[1], resp[2]))
    if len(resp) != req.resp_len or resp[0] != UNIT or resp[1] != req.fc:
        raise Failed("unexpected response (%d bytes) %s..." % (len(resp), resp[:8].hex()))
    if crc16(resp[:-2]) != resp[-2] | (resp[-1] << 8):
        raise Failed("bad CRC in response")
    return t1 - t0, t0 - tw


def measure(fd, req, count, warm):
    """(`count` turnarounds in microseconds after `warm` unmeasured exchanges, samples dropped,
    smallest time in microseconds from the start of write() to the first response byte).

    The last figure is a strict lower bound check: no request byte reaches the server before
    write() starts, so a server that keeps t3.5 can never answer sooner than t3.5 after it,
    whatever the scheduler does to the client.

    A sample is dropped (and the exchange repeated, at most count/2 times in all) when the
    write() call itself took over WRITE_LIMIT_US: the client was preempted between handing over
    the last byte and reading the clock, so its start time is wrong (seen as impossible
    turnarounds of a few microseconds when another process took the CPU)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    out = []
    dropped = 0
    soonest = None
    for _ in range(warm):
        time.sleep(GAP)
        exchange(fd, poller, req)
    while len(out) < count:
        time.sleep(GAP)
        ns, write_ns = exchange(fd, poller, req)
        total = (ns + write_ns) / 1000.0
        soonest = total if soonest is None or total < soonest else soonest
        if write_ns > WRITE_LIMIT_US * 1000:
            dropped += 1
            if dropped > count // 2:
                raise Failed("%d samples dropped: the client is preempted too often" % dropped)
            continue
        out.append(ns / 1000.0)
    return out, dropped, soonest


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))
    return s[int(k)]
