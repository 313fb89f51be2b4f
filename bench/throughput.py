"""Section 1: requests/s and server CPU per request, same closed-loop client load for every target.

All servers are started once; runs alternate target by target (the order rotates each round) so
a slow drift of the machine hits every target alike. A run: connect, WARMUP requests, read the
server's utime+stime (/proc/<pid>/stat), SECONDS of lean closed loop (client.lean_loop), read it
again; CPU per request = tick delta / requests. Targets that poll while idle (micropython-modbus)
are SIGSTOPped between their own runs.

By default the client and every server are pinned to one CPU (sched_setaffinity, inherited by
the servers): on this 2-core VM a cross-CPU wake-up per request adds ~15 us of server CPU and
makes results depend on where the scheduler happens to put each process (up to 2x spread run
to run). --split-cpus puts the client and the servers on different CPUs instead.
"""

import os

import client
import frames
from common import median, spread, table, ticks_to_us, verdict

RUNS = 5
SECONDS = 0.6
WARMUP = 200
MAX_COUNT = 200000
B_FACTOR = 5  # target: a's CPU per request <= b's / 5, and below c's


def one_run(srv, req):
    """(requests/s, server CPU us per request) or a failure text."""
    s = None
    try:
        s = client.connect(srv.port)
        client.lean_loop(s, req, 5.0, WARMUP)
        t0 = srv.cpu_ticks()
        n, elapsed = client.lean_loop(s, req, SECONDS, MAX_COUNT)
        t1 = srv.cpu_ticks()
        return n / elapsed, ticks_to_us(t1 - t0) / n
    except (client.Failed, OSError) as e:
        return "fail: %s" % e
    finally:
        if s is not None:
            s.close()


def _placement(split):
    """Pin this process (servers inherit it) to one CPU, or with split the servers to one CPU
    and this process to another; returns a function that pins a started server."""
    cpus = sorted(os.sched_getaffinity(0))
    if split and len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[0]})
        return lambda pid: os.sched_setaffinity(pid, {cpus[1]})
    os.sched_setaffinity(0, {cpus[0]})
    return lambda pid: os.sched_setaffinity(pid, {cpus[0]})


def measure(targets, requests, split=False):
    """{(target key, request name): [(rps, us), ...] or failure text}."""
    results = {}
    servers = {}
    saved = os.sched_getaffinity(0)
    try:
        pin = _placement(split)
        for t in targets:
            servers[t.key] = t.start()
            pin(servers[t.key].pid)
            if t.busy_idle:
                servers[t.key].pause()
        for r in range(RUNS):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for req in requests:
                for t in order:
                    srv = servers[t.key]
                    if t.busy_idle:
                        srv.resume()
                    try:
                        res = one_run(srv, req)
                    finally:
                        if t.busy_idle:
                            srv.pause()
                    cell = results.setdefault((t.key, req.name), [])
                    if isinstance(res, str):
                        results[(t.key, req.name)] = res if not cell or isinstance(cell, str) else cell + [res]
                    elif isinstance(cell, list):
                        cell.append(res)
    finally:
        for srv in servers.values():
            srv.stop()
        os.sched_setaffinity(0, saved)
    return results


def _values(results, key, name, i):
    cell = results.get((key, name))
    if not isinstance(cell, list):
        return []
    return [v[i] for v in cell if not isinstance(v, str)]


def _cell(results, key, name, i, fmt):
    cell = results.get((key, name))
    if isinstance(cell, str):
        return "fail"
    vals = _values(results, key, name, i)
    fails = len(cell) - len(vals) if cell else 0
    return spread(vals, fmt) + (" (%d fail)" % fails if fails else "")


def report(targets, requests, results, split=False):
    keys = [t.key for t in targets]
    placement = "client and server on different CPUs" if split else "client and server pinned to one CPU"
    for i, (what, fmt) in enumerate((("requests/s", "%.0f"), ("server CPU us/request", "%.1f"))):
        rows = [[req.name] + [_cell(results, k, req.name, i, fmt) for k in keys] for req in requests]
        table("(1%s) %s: median (min-max) of %d runs x %.1f s, one connection, closed loop, %s"
              % ("ab"[i], what, RUNS, SECONDS, placement), ["request"] + keys, rows,
              note=(["  ".join("%s = %s" % (t.key, t.label) for t in targets)]
                    + _failures(results, keys, requests)) if i == 0 else None)
    rows = []
    for req in requests:
        for a in (k for k in keys if k.startswith("a")):
            bits = a[1:]
            cpu_a = median(_values(results, a, req.name, 1))
            cpu_b = median(_values(results, "b" + bits, req.name, 1))
            cpu_c = median(_values(results, "c", req.name, 1))
            limit = cpu_b / B_FACTOR if cpu_b else None
            ok_b = limit is None or (cpu_a is not None and cpu_a <= limit)
            ok_c = cpu_c is None or (cpu_a is not None and cpu_a < cpu_c)
            rows.append([req.name, a, _num(cpu_a), _ratio(cpu_b, cpu_a), _ratio(cpu_c, cpu_a),
                         "<= %.1f (b/5)" % limit if limit else "b fails: -",
                         "< %.1f (c)" % cpu_c if cpu_c else "-",
                         verdict(cpu_a is not None and ok_b and ok_c)])
    table("(1c) CPU per request: ratios and targets (medians; b compared on the same binary)",
          ["request", "a", "a us/req", "b/a CPU", "c/a CPU", "target vs b", "target vs c", "a"],
          rows)
    passed = sum(1 for r in rows if r[-1] == "PASS")
    return [("(1) server CPU/request: a <= b/5 and a < c", "%d of %d request x build rows pass"
             % (passed, len(rows)), verdict(passed == len(rows)))]


def _failures(results, keys, requests):
    out = []
    for req in requests:
        for k in keys:
            cell = results.get((k, req.name))
            text = cell if isinstance(cell, str) else next((v for v in cell or [] if isinstance(v, str)), None)
            if text:
                out.append("%s %s: %s" % (k, req.name, text))
    return out


def _num(v):
    return "fail" if v is None else "%.1f" % v


def _ratio(x, a):
    return "%.1fx" % (x / a) if x and a else "-"


def run(targets, split=False):
    requests = frames.throughput_set()
    results = measure(targets, requests, split)
    return report(targets, requests, results, split)
