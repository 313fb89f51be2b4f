"""RTU section of the bench: `.cache/venv/bin/python bench/rtu.py` (or bench/run.py --sections r).

Serves Modbus RTU on a pty on the 32-bit unix port and prints one table per part:

  (r1) turnaround, from the request's last byte to the response's first byte (median, 99th
       percentile), FC03 x125 and FC16 x123, 115200 8N2, COUNT requests per row after WARM:
         a   mbnode                          target: median <= t3.5 + 0.2 ms and < b's median
         a'  mbnode, rtu.early_reply = true  informational
         b   micropython-modbus 2.3.7 with a stand-in machine.UART (bench/umodbus_rtu_server.py)
       with client and server pinned to one CPU (targets apply), pinned to two different CPUs,
       and not pinned.
                                                                  (client: bench/rtu_turnaround.py)
  (r2) CPU with the RTU line idle for IDLE_SECONDS (utime+stime from /proc). Target a: <= 1 %.
  (r3) microseconds per CRC-16 of 256 bytes: mbnode's viper table, a viper bit loop, plain
       Python table (umodbus's method) and bit loop.                          (bench/crc.py)
  (r4) heap bytes allocated per served RTU request (gc.mem_alloc(), gc disabled).
  (r5) requests written one byte per write() with pauses below t1.5 / 2 (19200 8E1), on an idle
       machine and with CPU burners: requests lost (of those whose pauses stayed below t3.5:
       target a 0), the server's wake-ups and CPU per request. MBNODE_BASELINE=<git revision>
       adds a row for that revision of mbnode (firmware/ and boards/ taken with git archive).

Every server is started and stopped here, on pty pairs this process creates; every loop is
bounded in count and time. Runtime about 2 minutes.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crc  # noqa: E402
import fetch  # noqa: E402
import rtu_turnaround as rt  # noqa: E402
from common import (  # noqa: E402
    BENCH, CLK_TCK, WORK, Server, median, micropython, paths, run_parts, section_main, sim, table, verdict,
)

BITS = 32
BAUD = 115200
PARITY = "N"
STOPBITS = 2  # the serial line spec's choice without parity; mbnode's default for "N"
T35_US = 1750  # fixed above 19200 baud
SLACK_US = 200  # target: median turnaround <= t3.5 + SLACK
EARLY_TOLERANCE_US = 5  # a reply sooner than t3.5 - this after write() began breaks the spec
COUNT = 300
WARM = 50
IDLE_SECONDS = 5.0
IDLE_TARGET_PCT = 1.0
ALLOC_WARM = 50
ALLOC_COUNT = 100
MAX_SECONDS = 300  # servers end by themselves after this, should the bench be killed hard


# ---- servers -----------------------------------------------------------------------------------

def start_mbnode(path, early_reply=False, tcp=False, bits=BITS, heap="128K", line=None, tree=None):
    """mbnode on the unix port serving RTU on the tty `path` (launched directly with the
    configuration `mbnode sim` would write, as common.start_mbnode does, so the pid is
    MicroPython itself and the line is set up exactly like micropython-modbus's). line: (baud,
    parity, stop bits), default the bench's; tree: a directory holding another revision's
    firmware/ and boards/ (part r5's baseline)."""
    baud, parity, stopbits = line or (BAUD, PARITY, STOPBITS)
    rtu = {"baud": baud, "parity": parity, "stopbits": stopbits, "early_reply": early_reply,
           "device": path}
    cfg = sim.effective_config(None, ("127.0.0.1", 0) if tcp else None, None, None, rtu)
    cfg["board"]["io"] = ""
    WORK.mkdir(parents=True, exist_ok=True)
    cfg_path = WORK / ("rtu-config-%d.json" % os.getpid())
    cfg_path.write_text(json.dumps(cfg))
    boards, firmware = (paths.BOARDS, paths.FIRMWARE) if tree is None else (tree / "boards", tree / "firmware")
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(boards / "unix"), str(firmware)]))
    argv = [micropython(bits), "-X", "heapsize=%d" % sim.parse_size(heap), str(firmware / "main.py"), str(cfg_path)]
    try:
        return Server("mbnode-rtu", argv, env=env)
    finally:
        cfg_path.unlink()


def start_umodbus(path, alloc=None, bits=BITS, line=None):
    baud, parity, stopbits = line or (BAUD, PARITY, STOPBITS)
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(fetch.umodbus_dir()))
    argv = [micropython(bits), "-X", "heapsize=%s" % ("4M" if alloc else "1M"),
            str(BENCH / "umodbus_rtu_server.py"), path, str(baud), parity, str(stopbits),
            str(MAX_SECONDS)]
    if alloc:
        argv += ["alloc", str(alloc[0]), str(alloc[1])]
    return Server("umodbus-rtu", argv, env=env)


TARGETS = [
    ("a", "a: mbnode", lambda path: start_mbnode(path)),
    ("a'", "a': mbnode, early_reply", lambda path: start_mbnode(path, early_reply=True)),
    ("b", "b: micropython-modbus 2.3.7", lambda path: start_umodbus(path)),
]


class Line:
    """A pty pair with a server on its slave end; the client uses .fd. Closes both on exit."""

    def __init__(self, start):
        self.fd, self.path, self._keep = rt.open_pair()
        try:
            self.srv = start(self.path)
        except BaseException:
            self._close_fds()
            raise

    def _close_fds(self):
        os.close(self.fd)
        os.close(self._keep)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.srv.stop()
        finally:
            self._close_fds()


# ---- (r1) turnaround ---------------------------------------------------------------------------

PLACEMENTS = ("one CPU", "two CPUs", "unpinned")


def _place(cpus, placement):
    """Put this process where `placement` says; returns a function placing a started server:
    "one CPU" both on the first CPU, "two CPUs" client on the first and server on the second
    (the same CPU when there is only one), "unpinned" wherever the scheduler likes."""
    if placement == "unpinned":
        os.sched_setaffinity(0, set(cpus))
        return lambda pid: os.sched_setaffinity(pid, set(cpus))
    os.sched_setaffinity(0, {cpus[0]})
    other = cpus[1] if placement == "two CPUs" and len(cpus) > 1 else cpus[0]
    return lambda pid: os.sched_setaffinity(pid, {other})


def turnaround(count=None, warm=WARM, placements=PLACEMENTS):
    """{(placement, target key, request name): rt.measure()'s (list of us, samples dropped,
    soonest reply after write() began) or a failure text}."""
    count = COUNT if count is None else count
    results = {}
    saved = os.sched_getaffinity(0)
    cpus = sorted(saved)
    try:
        for where in placements:
            place = _place(cpus, where)
            for key, _, start in TARGETS:
                try:
                    line = Line(start)
                except Exception as e:  # noqa: BLE001 - report it, measure the others
                    for req in rt.requests():
                        results[(where, key, req.name)] = "start failed: %s" % e
                    continue
                with line:
                    place(line.srv.pid)
                    time.sleep(0.2)
                    for req in rt.requests():
                        try:
                            results[(where, key, req.name)] = rt.measure(line.fd, req, count, warm)
                        except (rt.Failed, OSError) as e:
                            results[(where, key, req.name)] = "%s: %s" % (type(e).__name__, e)
                            rt.drain(line.fd)
    finally:
        os.sched_setaffinity(0, saved)
    return results


def _stats(cell):
    """(median, p99) of a measured cell, None for a failure text."""
    if isinstance(cell, str) or not cell or not cell[0]:
        return None
    return median(cell[0]), rt.percentile(cell[0], 99)


def _fmt(cell):
    s = _stats(cell)
    if s is None:
        return "fail"
    return "%.0f / %.0f" % s


def report_turnaround(results, placements=PLACEMENTS):
    reqs = rt.requests()
    header = ["request", "server"] + ["%s: median / p99 us" % s for s in placements]
    rows = []
    notes = []
    for req in reqs:
        for key, label, _ in TARGETS:
            rows.append([req.name, label] + [_fmt(results.get((s, key, req.name))) for s in placements])
            for s in placements:
                cell = results.get((s, key, req.name))
                where = "%s %s %s" % (label, req.name, s)
                if isinstance(cell, str):
                    notes.append("%s: %s" % (where, cell))
                    continue
                if cell and cell[1]:
                    notes.append("%s: dropped %d samples (client preempted during write())"
                                 % (where, cell[1]))
                if cell and key != "a'" and cell[2] < T35_US - EARLY_TOLERANCE_US:
                    notes.append("%s: a reply came %.0f us after the request's write() began, "
                                 "sooner than t3.5" % (where, cell[2]))
    table("(r1) RTU turnaround, last request byte -> first response byte, %d requests per row, "
          "pty, %d %d%s%d, micropython-%d" % (COUNT, BAUD, 8, PARITY, STOPBITS, BITS),
          header, rows, note=notes or None)
    # Targets on the pinned placement (the first one), like the TCP bench.
    first = placements[0]
    limit = T35_US + SLACK_US
    vrows = []
    for req in reqs:
        a = _stats(results.get((first, "a", req.name)))
        b = _stats(results.get((first, "b", req.name)))
        ok_t = a is not None and a[0] <= limit
        ok_b = a is not None and (b is None or a[0] < b[0])
        vrows.append([req.name, "%.0f" % a[0] if a else "fail", "<= %d" % limit, verdict(ok_t),
                      "%.0f" % b[0] if b else "fail", verdict(ok_b)])
    table("(r1) targets for a (medians, %s): <= t3.5 + %d us, and below b"
          % (first, SLACK_US),
          ["request", "a median us", "target", "verdict", "b median us", "a < b"], vrows)
    passed = sum(1 for r in vrows if r[3] == "PASS" and r[5] == "PASS")
    return [("(r1) RTU turnaround of a: median <= %d us and < b" % limit,
             "%d of %d requests pass" % (passed, len(vrows)), verdict(passed == len(vrows)))]


# ---- (r2) idle CPU -----------------------------------------------------------------------------

IDLE_TARGETS = [
    ("a", "a: mbnode, RTU only", lambda path: start_mbnode(path)),
    ("a+tcp", "a: mbnode, RTU + TCP", lambda path: start_mbnode(path, tcp=True)),
    ("b", "b: micropython-modbus 2.3.7", lambda path: start_umodbus(path)),
]


def idle(seconds=IDLE_SECONDS):
    """{key: CPU % over `seconds` with the line silent}; all servers measured at once (the
    sleeping ones do not disturb each other; b gets whatever core is left)."""
    lines = {}
    try:
        for key, _, start in IDLE_TARGETS:
            try:
                lines[key] = Line(start)
            except Exception as e:  # noqa: BLE001
                lines[key] = "start failed: %s" % e
        time.sleep(0.5)
        live = {k: v for k, v in lines.items() if not isinstance(v, str)}
        t0 = {k: v.srv.cpu_ticks() for k, v in live.items()}
        c0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - c0
        out = {k: 100.0 * (v.srv.cpu_ticks() - t0[k]) / CLK_TCK / dt for k, v in live.items()}
        out.update({k: v for k, v in lines.items() if isinstance(v, str)})
        return out
    finally:
        for v in lines.values():
            if not isinstance(v, str):
                v.__exit__()


def report_idle(res, seconds=IDLE_SECONDS):
    rows = []
    worst = None
    for key, label, _ in IDLE_TARGETS:
        v = res.get(key)
        is_a = key.startswith("a")
        if isinstance(v, str) or v is None:
            rows.append([label, v or "fail", "", ""])
            if is_a:
                worst = float("inf")
            continue
        if is_a:
            worst = v if worst is None else max(worst, v)
        rows.append([label, "%.1f %%" % v, "<= %.0f %%" % IDLE_TARGET_PCT if is_a else "-",
                     verdict(v <= IDLE_TARGET_PCT) if is_a else "-"])
    table("(r2) CPU with the RTU line silent (%% of one core over %.0f s)" % seconds,
          ["server", "CPU", "target", "verdict"], rows)
    ok = worst is not None and worst <= IDLE_TARGET_PCT
    return [("(r2) idle RTU CPU of a: <= %.0f %%" % IDLE_TARGET_PCT,
             "max %.1f %%" % worst if worst is not None and worst != float("inf") else "fail",
             verdict(ok))]


# ---- (r3) CRC ----------------------------------------------------------------------------------

CRC_LABELS = [
    ("table-viper", "mbnode.crc.crc16 (viper, 512-byte table)"),
    ("bits-viper", "viper, bit by bit"),
    ("table-py", "plain Python, table (umodbus's method)"),
    ("bits-py", "plain Python, bit by bit"),
]


def crc_section(bits_list=(32, 64)):
    res = {bits: crc.measure(bits) for bits in bits_list}
    rows = []
    for key, label in CRC_LABELS:
        rows.append([label] + ["%.2f" % res[b][key][0] for b in bits_list]
                    + ["%.0fx" % (res[bits_list[0]][key][0] / res[bits_list[0]]["table-viper"][0])])
    table("(r3) CRC-16/MODBUS of 256 bytes, us per call (best of 5 batches)",
          ["implementation"] + ["micropython-%d" % b for b in bits_list]
          + ["vs mbnode (%d-bit)" % bits_list[0]], rows,
          note="all variants agree (CRC %04X) and give 4B37 for b'123456789'"
               % res[bits_list[0]]["table-viper"][1])
    fastest = min(res[bits_list[0]].items(), key=lambda kv: kv[1][0])[0]
    return [("(r3) CRC 256 B on micropython-%d: mbnode's table viper" % bits_list[0],
             "%.2f us (bit-loop viper %.2f, plain Python %.1f)"
             % (res[bits_list[0]]["table-viper"][0], res[bits_list[0]]["bits-viper"][0],
                res[bits_list[0]]["bits-py"][0]),
             "fastest" if fastest == "table-viper" else "not fastest (%s)" % fastest)]


# ---- (r4) heap per request ---------------------------------------------------------------------

def _lockstep(fd, req, total):
    """`total` exchanges in lock step; None or the failure text."""
    import select

    p = select.poll()
    p.register(fd, select.POLLIN)
    try:
        for _ in range(total):
            time.sleep(rt.GAP)
            rt.exchange(fd, p, req)
    except rt.Failed as e:
        return str(e)
    return None


def umodbus_alloc(req):
    line = Line(lambda path: start_umodbus(path, alloc=(ALLOC_WARM, ALLOC_COUNT)))
    with line:
        err = _lockstep(line.fd, req, ALLOC_WARM + ALLOC_COUNT + 2)
        text = line.srv.wait_line("alloc", 10) if not err else ""
    w = text.split()
    return ("%.0f" % (int(w[1]) / int(w[2]))) if w[:1] == ["alloc"] else "fail: %s" % err


def alloc_section():
    rows = []
    for req in rt.requests():
        rows.append([req.name, mbnode_alloc(req), umodbus_alloc(req)])
    table("(r4) heap bytes allocated per served RTU request (gc.mem_alloc(), gc disabled, "
          "micropython-%d)" % BITS, ["request", "a: mbnode", "b: micropython-modbus"], rows)
    ok = all(r[1] == "0" for r in rows)
    return [("(r4) RTU heap bytes per request of a: 0", ", ".join("%s %s" % (r[0], r[1]) for r in rows),
             verdict(ok))]


def mbnode_alloc(req):
    """Bytes per request as text ("0", "12", "fail: ..."), plus " (heap_lock: ...)" when the
    locked span did not pass cleanly."""
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(paths.BOARDS / "unix"),
                                                 str(paths.FIRMWARE)]))

    def start(path):
        # bench/alloc_probe.py, as for TCP: WARM warm-up requests, then gc.mem_alloc() over
        # COUNT requests ("alloc BYTES COUNT"), then COUNT under heap_lock().
        return Server("mbnode-rtu-alloc", [micropython(BITS), "-X", "heapsize=256K",
                                            str(Path(__file__).parent / "alloc_probe.py"), "rtu", path, str(BAUD),
                                            PARITY, str(STOPBITS), str(ALLOC_WARM), str(ALLOC_COUNT)], env=env)

    line = Line(start)
    with line:
        err = _lockstep(line.fd, req, ALLOC_WARM + 2 * ALLOC_COUNT + 1)
        out = line.srv.output(2 if err else 5)
    per_req = None
    errors = [ln for ln in out.splitlines() if ln.startswith("mbnode: error")]
    for ln in out.splitlines():
        w = ln.split()
        if w[:1] == ["alloc"]:
            per_req = "%.0f" % (int(w[1]) / int(w[2]))
    if per_req is None:
        return "fail: %s" % (err or out[-200:] or "no alloc line")
    if err or errors:
        return "%s (heap_lock: %s)" % (per_req, err or errors[0])
    return per_req


# ---- (r5) requests dribbled byte by byte, on an idle and on a loaded machine -------------------

DRIBBLE_LINE = (19200, "E", 1)  # t1.5 = 859 us, t3.5 = 2005 us: the case of issue 9
DRIBBLE_T15, DRIBBLE_T35 = 1.5 * 11 / 19200, 3.5 * 11 / 19200
DRIBBLE_COUNT = 100  # requests per cell, alternately FC03 x10 and FC16 x123
DRIBBLE_TIMEOUT = 0.5
BURNERS = 2


def _dribble_targets():
    """(key, label, start) of r5: mbnode, the baseline revision of $MBNODE_BASELINE if set,
    micropython-modbus."""
    out = [("a", "a: mbnode", lambda path: start_mbnode(path, line=DRIBBLE_LINE))]
    rev = os.environ.get("MBNODE_BASELINE")
    if rev:
        tree = _baseline_tree(rev)
        out.append(("a0", "a0: mbnode %s" % rev, lambda path: start_mbnode(path, line=DRIBBLE_LINE, tree=tree)))
    out.append(("b", "b: micropython-modbus 2.3.7", lambda path: start_umodbus(path, line=DRIBBLE_LINE)))
    return out


def _baseline_tree(rev):
    """firmware/ and boards/ of git revision rev, unpacked under WORK (once per revision)."""
    import subprocess

    tree = WORK / ("baseline-" + rev.replace("/", "_"))
    if not (tree / "firmware" / "main.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(paths.ROOT), "archive", rev, "firmware", "boards"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _switches(pid):
    """Voluntary context switches of pid so far: each is the process going to sleep, so the
    count between two moments is how often it woke up."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def _dribble(fd, frame, rnd):
    """Write frame one byte per write(), sleeping below t1.5 / 2 between bytes; returns the
    longest pause the server can have seen (end of write k - start of write k-1)."""
    worst = 0.0
    last = None
    for i in range(len(frame)):
        if i:
            time.sleep(rnd.uniform(0, DRIBBLE_T15 / 2))
        start = time.perf_counter()
        os.write(fd, frame[i:i + 1])
        if last is not None:
            worst = max(worst, time.perf_counter() - last)
        last = start
    return worst


def _dribble_cell(start, loaded):
    """{sent, qualified (pauses < t3.5), lost, lost_q, wakeups, cpu_ms} per request, or a text."""
    import random
    import select
    import subprocess

    reqs = [rt.read_regs(0, 10), rt.write_regs(0, 123)]
    rnd = random.Random(5)
    burners = []
    try:
        line = Line(start)
    except Exception as e:  # noqa: BLE001
        return "start failed: %s" % e
    with line:
        time.sleep(0.2)
        if loaded:
            burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BURNERS)]
        try:
            poller = select.poll()
            poller.register(line.fd, select.POLLIN)
            w0, c0 = _switches(line.srv.pid), line.srv.cpu_ticks()
            qualified = lost = lost_q = 0
            for i in range(DRIBBLE_COUNT):
                req = reqs[i % 2]
                time.sleep(0.01)  # more than t3.5 of silence between requests
                worst = _dribble(line.fd, req.adu, rnd)
                resp = b""
                deadline = time.monotonic() + DRIBBLE_TIMEOUT
                while not rt.complete(resp):
                    left = deadline - time.monotonic()
                    if left <= 0 or not poller.poll(left * 1000):
                        break
                    resp += os.read(line.fd, 512)
                good = (len(resp) == req.resp_len and resp[1] == req.fc
                        and rt.crc16(resp[:-2]) == resp[-2] | (resp[-1] << 8))
                q = worst < DRIBBLE_T35
                qualified += q
                lost += not good
                lost_q += q and not good
                if not good:
                    rt.drain(line.fd, quiet=0.05)
            wakeups = (_switches(line.srv.pid) - w0) / DRIBBLE_COUNT
            cpu_ms = 1000.0 * (line.srv.cpu_ticks() - c0) / CLK_TCK / DRIBBLE_COUNT
        finally:
            for b in burners:
                b.kill()
                b.wait()
    return {"sent": DRIBBLE_COUNT, "qualified": qualified, "lost": lost, "lost_q": lost_q,
            "wakeups": wakeups, "cpu_ms": cpu_ms}


def dribble_section():
    rows = []
    mine = None
    for loaded in (False, True):
        for key, label, start in _dribble_targets():
            cell = _dribble_cell(start, loaded)
            where = "%d CPU burners" % BURNERS if loaded else "idle"
            if isinstance(cell, str):
                rows.append([where, label, cell, "", "", "", ""])
                continue
            rows.append([where, label, "%d" % cell["sent"], "%d" % cell["qualified"],
                         "%d (%d)" % (cell["lost"], cell["lost_q"]), "%.1f" % cell["wakeups"],
                         "%.2f" % cell["cpu_ms"]])
            if key == "a" and loaded:
                mine = cell
    table("(r5) requests written one byte per write(), pauses below t1.5 / 2, alternately FC03 x10 "
          "(8 bytes) and FC16 x123 (255 bytes), pty, %d 8%s%d, micropython-%d" % (
              DRIBBLE_LINE[0], DRIBBLE_LINE[1], DRIBBLE_LINE[2], BITS),
          ["machine", "server", "sent", "pauses < t3.5", "lost (of those)", "wake-ups / req",
           "CPU ms / req"], rows,
          note="wake-ups: the server's voluntary context switches per request (/proc); "
               "set MBNODE_BASELINE=<git revision> for a row of an earlier mbnode")
    ok = mine is not None and mine["lost_q"] == 0
    return [("(r5) dribbled requests lost by a under load, of those with pauses < t3.5: 0",
             "%d of %d" % (mine["lost_q"], mine["qualified"]) if mine else "fail", verdict(ok))]


# ---- driver ------------------------------------------------------------------------------------

def run(parts="12345", count=None):
    """Run the chosen parts; returns summary rows (target, measured, verdict) for bench/run.py."""
    global COUNT
    COUNT = count or COUNT
    steps = {
        "1": lambda: report_turnaround(turnaround()),
        "2": lambda: report_idle(idle()),
        "3": crc_section,
        "4": alloc_section,
        "5": dribble_section,
    }
    return run_parts("r", steps, parts)


def main(argv=None):
    banner = "mbnode RTU bench  %s  micropython-%d: %s  umodbus: %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), BITS, micropython(BITS), fetch.umodbus_dir())
    return section_main(argv, __doc__, "Summary, RTU (a = mbnode)", "12345", COUNT,
                        "measured requests per row in (r1)", banner, run)


if __name__ == "__main__":
    sys.exit(main())
