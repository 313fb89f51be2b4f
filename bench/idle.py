"""Section 4: CPU while idle, from /proc/<pid>/stat over SECONDS, with no client and then with
one connected client that sends nothing. Targets in one group are measured at the same time
(they sleep, so they do not disturb each other); micropython-modbus polls without blocking and
gets a group per build so it has a core to itself."""

import time

import client
from common import CLK_TCK, table, verdict

SECONDS = 3.0
TARGET_PCT = 1.0  # "near 0"


def _pct(servers, seconds):
    t0 = {k: s.cpu_ticks() for k, s in servers.items()}
    c0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - c0
    return {k: 100.0 * (s.cpu_ticks() - t0[k]) / CLK_TCK / dt for k, s in servers.items()}


def measure_group(targets):
    servers = {}
    socks = []
    try:
        for t in targets:
            servers[t.key] = t.start()
        time.sleep(0.3)  # let start-up work settle
        quiet = _pct(servers, SECONDS)
        socks = [client.connect(s.port) for s in servers.values()]
        time.sleep(0.2)
        silent = _pct(servers, SECONDS)
        return {k: (quiet[k], silent[k]) for k in servers}
    finally:
        for s in socks:
            s.close()
        for s in servers.values():
            s.stop()


def run(targets):
    calm = [t for t in targets if not t.busy_idle]
    groups = [calm] + [[t] for t in targets if t.busy_idle]
    results = {}
    for g in groups:
        results.update(measure_group(g))
    rows = []
    for t in targets:
        quiet, silent = results[t.key]
        is_a = t.key.startswith("a")
        rows.append([t.label, "%.1f %%" % quiet, "%.1f %%" % silent,
                     "<= %.0f %%" % TARGET_PCT if is_a else "-",
                     verdict(quiet <= TARGET_PCT and silent <= TARGET_PCT) if is_a else "-"])
    table("(4) CPU while idle (%% of one core over %.0f s each)" % SECONDS,
          ["server", "no client", "1 silent client", "target", "verdict"], rows)
    worst = max(max(results[t.key]) for t in targets if t.key.startswith("a"))
    return [("(4) idle CPU of a: <= %.0f %%" % TARGET_PCT, "max %.1f %%" % worst,
             verdict(worst <= TARGET_PCT))]
