"""Section 2: the smallest MicroPython heap (-X heapsize) that starts and serves a TCP load.

A trial starts the server with the heap size, waits for its ready line and runs a mixed load;
it passes when every response is right and the process is still alive afterwards. The size is
bisected in 1 KiB steps between a failing lower and a passing upper bound; a size counts as
passing only when all REPEATS trials pass (the first failure ends the size early); the result
is then confirmed by CONFIRM more trials (one failing moves it up 1 KiB).

mbnode: `mbnode sim --mpy` equivalent (firmware as .mpy), default configuration (full map, I/O
control channel on), 4 concurrent connections x 75 requests over every function code it serves,
max sizes included (bench/frames.py mbnode_mixed).
micropython-modbus: its package compiled to .mpy by the same mpy-cross, the bench map (64/64/
128/128), one connection x 100 requests of what it serves (it drops a connection when another
arrives, so more connections would only measure that).
"""

import os

import client
import fetch
import frames
from common import BENCH, Server, free_port, micropython, start_mbnode, table, verdict

REPEATS = 3
CONFIRM = 10  # extra trials at the size found
STEP = 1024
TARGET = 32 * 1024
STRETCH = 24 * 1024
B_REFERENCE = "118 KiB as .mpy on the 64-bit build, 384 registers (reference, not measured here)"


def mbnode_trial(bits, heap, config=None):
    """config: configuration sections added to the default one (bench/mqtt.py uses it)."""
    try:
        srv = start_mbnode(bits, heap=heap, mpy=True, timeout=10, config=config)
    except RuntimeError as e:
        return False, "start: %s" % _last_line(str(e))
    try:
        ok, err = client.mixed_load(srv.port, frames.mbnode_mixed(), conns=4, per_conn=75)
        if not err and not srv.alive():
            err = "exited after the load"
        return err is None, err and "serve: %s %s" % (err, _last_line(srv.stderr()))
    finally:
        srv.stop()


def umodbus_trial(bits, heap, _mpy={}):
    if bits not in _mpy:
        _mpy[bits] = fetch.umodbus_mpy(bits)
    port = free_port()
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(_mpy[bits]))
    argv = [micropython(bits), "-X", "heapsize=%d" % heap, str(BENCH / "umodbus_server.py"),
            str(port), "60"]
    try:
        srv = Server("umodbus-%d" % bits, argv, env=env, timeout=10)
    except RuntimeError as e:
        return False, "start: %s" % _last_line(str(e))
    try:
        ok, err = client.mixed_load(port, frames.umodbus_mixed(), conns=1, per_conn=100)
        if not err and not srv.alive():
            err = "exited after the load"
        return err is None, err and "serve: %s %s" % (err, _last_line(srv.stderr()))
    finally:
        srv.stop()


def _last_line(text):
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip()[:120] if lines else ""


def passes(trial, bits, heap, times=REPEATS):
    """(True, None) when `times` trials at this heap size all pass, else (False, why)."""
    for _ in range(times):
        ok, why = trial(bits, heap)
        if not ok:
            return False, why
    return True, None


def smallest(trial, bits, lo, hi, cap):
    """Bisect: (smallest passing size, why the next size down failed) or (None, why) when even
    `cap` fails. lo is assumed to fail; hi is doubled until it passes."""
    ok, why = passes(trial, bits, hi)
    while not ok:
        if hi >= cap:
            return None, why
        lo, hi = hi, min(2 * hi, cap)
        ok, why = passes(trial, bits, hi)
    fail_why = "(not reached: %d B is the lower bound)" % lo
    while hi - lo > STEP:
        mid = (lo + hi) // 2 // STEP * STEP
        ok, why = passes(trial, bits, mid)
        if ok:
            hi = mid
        else:
            lo, fail_why = mid, why
    # Bisection assumes monotonic behaviour; confirm the result with more trials and step up
    # (a bounded number of times) if one of them fails.
    for _ in range(8):
        ok, why = passes(trial, bits, hi, CONFIRM)
        if ok:
            return hi, fail_why
        hi, fail_why = hi + STEP, why
    return None, why


def kib(n):
    return "%d KiB (%d B)" % (n // 1024, n) if n else "fail"


def run(bits_list=(32, 64), measure_b=True):
    rows = []
    results = {}
    for bits in bits_list:
        size, why = smallest(mbnode_trial, bits, 4 * 1024, 48 * 1024, 512 * 1024)
        results[bits] = size
        if measure_b:
            bsize, bwhy = smallest(umodbus_trial, bits, 16 * 1024, 160 * 1024, 2048 * 1024)
            b = kib(bsize)
        else:
            b = B_REFERENCE
        target = "<= 32 KiB (stretch 24 KiB)" if bits == 32 else "-"
        v = "-"
        if bits == 32:
            v = verdict(size is not None and size <= TARGET)
            if size is not None and size <= STRETCH:
                v += " (stretch PASS)"
        rows.append(["%d-bit" % bits, kib(size), (why or "")[:70], b, target, v])
    table("(2) Smallest heap that starts and serves the mixed TCP load (.mpy, %d repeats per size, "
          "1 KiB steps, %d confirming trials)" % (REPEATS, CONFIRM),
          ["build", "a: mbnode", "a: first failure 1 KiB below", "b: micropython-modbus",
           "target a", "a"],
          rows,
          note=["a load: 4 connections x 75 requests, FC01/02/03/04/05/06/15/16/22/23/43 incl. max "
                "sizes, default sim config (full map, I/O control channel on).",
                "b load: 1 connection x 100 requests of FC01/02/03/04/05/06/15/16 (<= 57 registers).",
                "b figure given in the brief: " + B_REFERENCE])
    size = results.get(32)
    if 32 not in results:
        return []
    return [("(2) smallest heap, 32-bit: <= 32 KiB (stretch 24 KiB)", kib(size),
             verdict(size is not None and size <= TARGET)
             + (" (stretch PASS)" if size is not None and size <= STRETCH else " (stretch MISS)"))]
