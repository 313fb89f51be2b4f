"""Modbus RTU on the emulated Raspberry Pi Pico (section e): `.cache/venv/bin/python bench/mcu.py`
(or bench/run.py --sections e).

Three slaves on MicroPython 1.25's rp2 firmware on the emulated RP2040 (tests/mcu/emu/pico.mjs,
docs/mcu-emulation.md), each on a blank flash, served on UART0 through the runner's model of the
RP2040 UART (bytes paced at the baud rate, receive interrupt at FIFO level 4 or after 32 bit
times of quiet):

  a  mbnode deployed as .mpy onto the stock firmware with `mbnode deploy` (the board's map)
  f  mbnode frozen: the `mbnode build --board pico --image` firmware, with a config.json
  b  micropython-modbus 2.3.7 (`umodbus`, from PyPI into .cache/bench) as .mpy on the stock
     firmware, run by bench/umodbus_pico.py: ModbusRTU on UART0 GP0/GP1, DE on GP22, a map of 64
     coils, 64 discrete inputs, 128 holding and 128 input registers, process() in a loop

Parts:
  (e1) heap after boot: from the REPL (after mpremote's soft reset), gc.collect(); mem_alloc()
       before and after importing and building the slave exactly as at boot minus its serving
       loop (mbnode: app.run; umodbus: the device script's build()). Target: f <= 16 KB.
  (e2) at 19200 8E1 and at 115200 8N2, the same counting pymodbus master (retries=0): COUNT
       requests per line setting, of which TIMING FC03 x125 and TIMING FC16 x123 are measured
       one by one and the rest are write/read-back pairs with idle pauses. Per target: requests
       lost (target a and f: 0), turnaround (trace: end of the last request byte to the start of
       the first reply byte), busy cycles per request (the runner's busy time x 125 MHz over the
       exchange on the line: Run.measured), busy fraction while receiving FC16 x123 requests,
       while sending FC03 x125 replies (Sampler) and while the line is idle.

All times are simulated. rp2040js counts cycles per instruction without flash wait states or an
XIP cache, so absolute figures are approximately a Pico's; compare them as ratios. Only
127.0.0.1 is used; every runner is started and stopped here; every loop is bounded in count and
(wall and simulated) time. Runtime about 11-12 minutes with the defaults (--count 200 --timing 20:
about 4 minutes); a first image build in a new checkout adds about a minute. Figures and how they
are measured: docs/benchmarks.md, section e.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "mcu"))

import fetch  # noqa: E402
from common import WORK, median, mpy_cross, table  # noqa: E402
from pico import Pico, missing, stock_firmware  # noqa: E402
from picotest import DE_PIN, Master, mbnode  # noqa: E402
from rtu_turnaround import percentile  # noqa: E402

LINES = [(19200, "E", 1), (115200, "N", 2)]  # (baud, parity, stop bits): the MCU suite's two
COUNT = 1000  # requests per target and line setting (timing rows included)
TIMING = 50  # measured requests per timing row
IDLE_MS = 1000  # simulated ms of quiet line for the idle busy fraction
SETTLE_MS = 20  # simulated ms of quiet after each measured reply before its busy time is read
MASTER_TIMEOUT = 3.0  # s (wall) pymodbus waits for a reply: the longest exchange is ~0.2 s simulated
MAX_LOST = 25  # a target that loses this many requests in a line setting stops there
READY_TIMEOUT = 180  # s (wall), boot or deploy to the ready line on a loaded machine
RUNNER_LIMIT = 1800  # s (wall): the runner stops by itself after this, should the bench hang
FROZEN_HEAP_TARGET = 16 * 1024
CLK_SYS = 125_000_000
HR_BASE = {"mbnode": 0x1000, "umodbus": 0}  # 125 consecutive holding registers on each map


# ---- the targets -------------------------------------------------------------------------------

def _ready_line(pico, mark):
    m = pico.wait_cdc(rb"(ready [^\r\n]*)\r?\n", timeout=READY_TIMEOUT, start=mark)
    return m.group(1).decode()


def _reset_to_ready(pico):
    mark = pico.cdc_mark()
    pico.reset()
    return _ready_line(pico, mark)


def _mbnode_config(line):
    baud, parity, stop = line
    return {"rtu": {"baud": baud, "parity": parity, "stopbits": stop}}


MBNODE_HEAP = """
import gc
gc.collect()
a = gc.mem_alloc()
import sys
from mbnode import startup
from mbnode.datamodel import DataModel
model = DataModel()
import board
loop, ready = startup.build(startup.load_config("config.json", board), board, model)
gc.collect()
b = gc.mem_alloc()
print("heap %d after %d free %d" % (b - a, b, gc.mem_free()))
print(ready)
"""

UMODBUS_HEAP = """
import gc
gc.collect()
a = gc.mem_alloc()
import umodbus_bench
slave = umodbus_bench.build(*umodbus_bench.settings())
gc.collect()
b = gc.mem_alloc()
print("heap %d after %d free %d" % (b - a, b, gc.mem_free()))
"""


class Target:
    """One slave on one emulated Pico: boot, install, line settings, heap script."""

    kind = "mbnode"
    heap_script = MBNODE_HEAP
    repl_idle = None  # busy fraction of the stock firmware at its REPL, before anything is installed

    def __init__(self, key, label, workdir):
        self.key = key
        self.label = label
        self.workdir = Path(workdir)

    def firmware(self):
        return stock_firmware()

    def boot(self):
        self.pico = Pico(firmware=self.firmware(), workdir=self.workdir, watch=[DE_PIN], time_limit=RUNNER_LIMIT)
        return self.pico

    def install(self):
        raise NotImplementedError

    def configure(self, line):
        """Serve with these line settings; returns the ready line."""
        raise NotImplementedError

    def _write(self, name, data):
        path = self.workdir / name
        path.write_text(json.dumps(data))
        return path


class DeployedMbnode(Target):
    """mbnode as .mpy on the stock firmware, put there with `mbnode deploy` as a user does."""

    def install(self):
        self.pico.wait_cdc(rb">>> ", timeout=READY_TIMEOUT)
        self.repl_idle = idle_fraction(self.pico)
        return self.configure(LINES[0])

    def configure(self, line):
        cfg = self._write("config.json", _mbnode_config(line))
        r = mbnode("deploy", "--board", "pico", "--port", self.pico.repl_url, "--config", str(cfg))
        if r.returncode:
            raise RuntimeError("mbnode deploy failed: %s" % (r.stdout + r.stderr).strip()[-600:])
        return "ready " + r.stdout.strip().splitlines()[-1].split(": ", 1)[1]


class FrozenMbnode(Target):
    """The `mbnode build --board pico --image` firmware; a config.json sets the line."""

    def __init__(self, key, label, workdir, image):
        super().__init__(key, label, workdir)
        self.image = image

    def firmware(self):
        return self.image

    def install(self):
        return _ready_line(self.pico, 0)  # the image serves its defaults with nothing installed

    def configure(self, line):
        cfg = self._write("config.json", _mbnode_config(line))
        self.pico.mpremote("fs", "cp", str(cfg), ":config.json")
        return _reset_to_ready(self.pico)


class Umodbus(Target):
    """micropython-modbus 2.3.7 as .mpy on the stock firmware, bench/umodbus_pico.py serving."""

    kind = "umodbus"
    heap_script = UMODBUS_HEAP

    def install(self):
        files = umodbus_files(self.workdir / "device")
        self.pico.wait_cdc(rb">>> ", timeout=READY_TIMEOUT)
        self.repl_idle = idle_fraction(self.pico)
        self.pico.mpremote("fs", "cp", "-r", *[str(f) for f in files], ":", timeout=600)
        return self.configure(LINES[0])

    def configure(self, line):
        baud, parity, stop = line
        settings = self._write("bench.json", {"baud": baud, "parity": parity, "stop": stop})
        self.pico.mpremote("fs", "cp", str(settings), ":bench.json")
        return _reset_to_ready(self.pico)


def umodbus_files(out):
    """umodbus/*.mpy, umodbus_bench.mpy and main.py, compiled by the set-up's mpy-cross (the same
    MicroPython 1.25 as the rp2 firmware; plain bytecode needs no -march)."""
    src = fetch.umodbus_dir() / "umodbus"
    pkg = Path(out) / "umodbus"
    pkg.mkdir(parents=True, exist_ok=True)
    for py in sorted(src.glob("*.py")):
        subprocess.run([mpy_cross(), "-o", str(pkg / (py.stem + ".mpy")), str(py)], check=True, timeout=60)
    script = Path(out) / "umodbus_bench.mpy"
    subprocess.run([mpy_cross(), "-o", str(script), str(BENCH_DIR / "umodbus_pico.py")], check=True, timeout=60)
    main = Path(out) / "main.py"
    main.write_text("import umodbus_bench\numodbus_bench.serve()\n")
    return [pkg, script, main]


def build_image(out):
    """`mbnode build --board pico --image`: the .uf2 it prints last."""
    r = mbnode("build", "--board", "pico", "--image", "--out", str(out), timeout=1800)
    if r.returncode:
        raise RuntimeError("mbnode build --image failed: %s" % (r.stdout + r.stderr).strip()[-600:])
    return r.stdout.strip().splitlines()[-1]


# ---- measurement -------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Reads the runner's busy time as often as the control channel answers (between the
    runner's run slices: about every simulated ms while the chip sleeps, every few while it
    runs), for the busy fraction inside windows of simulated time."""

    def __init__(self, pico):
        super().__init__(daemon=True)
        self.pico = pico
        self.samples = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and len(self.samples) < 2_000_000:
            try:
                s = self.pico.stats()
            except Exception:  # noqa: BLE001 - the runner went away: the main thread reports it
                return
            self.samples.append((s["sim_ns"], s["busy_ns"]))

    def stop(self):
        self.halt.set()
        self.join(timeout=30)

    def fraction(self, windows):
        """(busy / simulated time, simulated ns covered) over sample pairs inside the windows."""
        samples = sorted(set(self.samples))
        busy = span = 0
        k = 0
        for start, end in sorted(windows):
            while k < len(samples) and samples[k][0] < start:
                k += 1
            j = k
            while j + 1 < len(samples) and samples[j + 1][0] <= end:
                span += samples[j + 1][0] - samples[j][0]
                busy += samples[j + 1][1] - samples[j][1]
                j += 1
        return (busy / span if span else None), span


def _wait_sim(pico, until_ns, what):
    pico.wait_for(lambda: pico.sim_ns() >= until_ns, 60, what, interval=0.005)


def idle_fraction(pico):
    s0 = pico.stats()
    _wait_sim(pico, s0["sim_ns"] + IDLE_MS * 1_000_000, "%d ms of simulated time" % IDLE_MS)
    s1 = pico.stats()
    return (s1["busy_ns"] - s0["busy_ns"]) / (s1["sim_ns"] - s0["sim_ns"])


class Run:
    """One target at one line setting: a counting master and what was measured."""

    def __init__(self, target, line):
        self.target = target
        self.pico = target.pico
        self.line = line
        self.master = Master(self.pico, *line, timeout=MASTER_TIMEOUT)
        self.base = HR_BASE[target.kind]
        self.wrong = []
        self.stopped = None
        # request name -> {"turnaround", "busy", "work": [ns], "rx", "tx": [(start, end)] on the line}
        self.rows = {}

    @property
    def lost(self):
        return self.master.sent - self.master.answered

    def call(self, name, *args, **kw):
        """One counted request: the reply, or None when it was lost (drained and counted) or
        wrong (an exception reply, recorded)."""
        from pymodbus.exceptions import ModbusException

        try:
            r = getattr(self.master, name)(*args, device_id=1, **kw)
        except ModbusException:
            self._after_loss()
            return None
        if r.isError():
            self.wrong.append("%s: %s" % (name, r))
            return None
        return r

    def _after_loss(self):
        """No reply in time: let the line go quiet (a late reply ends) and drop what came in."""
        pico = self.pico
        _wait_sim(pico, pico.sim_ns() + 300_000_000, "quiet after a lost request")
        self.master.client.socket.reset_input_buffer()
        if self.lost >= MAX_LOST and self.stopped is None:
            self.stopped = "stopped after %d lost" % self.lost

    def measured(self, name, method, *args, **kw):
        """One request with its busy time bracketed: the runner's busy time read on a quiet line
        before it and SETTLE_MS after its reply; returns the reply or None."""
        pico = self.pico
        a = pico.stats()
        r = self.call(method, *args, **kw)
        entries, self.since = pico.uart_trace(self.since)
        host = [e for e in entries if e["dir"] == "host"]
        if r is None or not host:
            return r
        request = [e for e in host if e["burst"] == host[-1]["burst"]]
        req_start, req_end = request[0]["start_ns"], request[-1]["end_ns"]
        tx = [e for e in entries if e["dir"] == "tx" and e["start_ns"] >= req_end]
        if not tx:
            return r
        reply_start, reply_end = tx[0]["start_ns"], tx[-1]["end_ns"]
        _wait_sim(pico, reply_end + SETTLE_MS * 1_000_000, "quiet after a reply")
        b = pico.stats()
        row = self.rows.setdefault(name, {"turnaround": [], "busy": [], "rx": [], "tx": []})
        row["turnaround"].append(reply_start - req_end)
        exchange = reply_end - req_start
        outside = (b["sim_ns"] - a["sim_ns"]) - exchange
        row["busy"].append((b["busy_ns"] - a["busy_ns"]) - self.idle * outside)
        row["rx"].append((req_start, req_end))
        row["tx"].append((reply_start, reply_end))
        return r

    def serve(self, count, timing, rnd):
        pico = self.pico
        self.idle = idle_fraction(pico)
        sampler = Sampler(pico)
        sampler.start()
        try:
            self.since = pico.uart_trace(0)[1]
            n = self.base
            for _ in range(timing):
                if self.stopped:
                    break
                r = self.measured("FC03 x125", "read_holding_registers", n, count=125)
                if r is not None and len(r.registers) != 125:
                    self.wrong.append("FC03 x125: %d registers" % len(r.registers))
            for _ in range(timing):
                if self.stopped:
                    break
                values = [rnd.getrandbits(16) for _ in range(123)]
                self.measured("FC16 x123", "write_registers", n, values)
        finally:
            sampler.stop()
        self.receiving, self.receiving_ns = sampler.fraction(self.rows.get("FC16 x123", {}).get("rx", []))
        self.sending, self.sending_ns = sampler.fraction(self.rows.get("FC03 x125", {}).get("tx", []))
        self.samples = len(sampler.samples)
        for row in self.rows.values():
            # Busy time outside the reply's time on the wire: rp2's UART flush() spins (no WFE)
            # until the last stop bit is out, and both slaves flush after writing their reply.
            send = self.sending if self.sending is not None else 1.0
            row["work"] = [busy - send * (end - start) for busy, (start, end) in zip(row["busy"], row["tx"])]
        self.pairs(count - self.master.sent, rnd)

    def pairs(self, left, rnd):
        """Write/read-back pairs up to `left` requests: mostly FC06 + FC03 x1, every tenth pair
        FC16 x123 + FC03 x125, the line idle for up to 50 ms (wall) every ten pairs."""
        i = 0
        while left > 0 and not self.stopped:
            if i % 10 == 0:
                time.sleep(rnd.random() * 0.05)
            large = i % 10 == 5
            addr = self.base if large else self.base + i % 100
            if left == 1:
                self.call("read_holding_registers", addr, count=125 if large else 1)
                break
            if large:
                values = [rnd.getrandbits(16) for _ in range(123)]
                wrote = self.call("write_registers", addr, values)
            else:
                values = [rnd.getrandbits(16)]
                wrote = self.call("write_register", addr, values[0])
            r = self.call("read_holding_registers", addr, count=125 if large else 1)
            if wrote and r is not None and r.registers[:len(values)] != values:
                self.wrong.append("FC03 at %d read %s... after a write of %s..." % (addr, r.registers[:3], values[:3]))
            left -= 2
            i += 1

    def window_ms(self, name, what):
        return sum(end - start for start, end in self.rows.get(name, {}).get(what, [])) / 1e6

    def close(self):
        self.master.close()


# ---- the section --------------------------------------------------------------------------------

def heap_after_boot(target):
    out = target.pico.exec(target.heap_script, timeout=300)
    for text in out.splitlines():
        if text.startswith("heap "):
            return int(text.split()[1]), out
    raise RuntimeError("%s: no heap line in %r" % (target.label, out[-400:]))


def run_target(target, parts, count, timing, seed):
    """Boot, install, heap (1), serve each line (2); the runner is always stopped."""
    result = {"label": target.label, "runs": {}}
    t0 = time.monotonic()
    target.boot()
    try:
        result["ready"] = target.install()
        result["install_s"] = time.monotonic() - t0
        result["repl_idle"] = target.repl_idle
        print("  %s: %s (%.0f s)" % (target.label, result["ready"], result["install_s"]))
        if "1" in parts:
            result["heap"], text = heap_after_boot(target)
            print("  %s: heap after boot %d bytes (%s)" % (target.label, result["heap"], text.splitlines()[0]))
        if "2" in parts:
            for line in LINES:
                t1 = time.monotonic()
                ready = target.configure(line)
                run = Run(target, line)
                try:
                    run.serve(count, timing, random.Random(seed + line[0]))
                finally:
                    run.close()
                result["runs"][line] = run
                print("  %s %d-8%s%d: %s; %d sent, %d lost, %d wrong; %d busy samples covering %.0f of %.0f ms "
                      "receiving and %.0f of %.0f ms sending (%.0f s)" % (
                          target.label, line[0], line[1], line[2], ready, run.master.sent, run.lost, len(run.wrong),
                          run.samples, run.receiving_ns / 1e6, run.window_ms("FC16 x123", "rx"),
                          run.sending_ns / 1e6, run.window_ms("FC03 x125", "tx"), time.monotonic() - t1))
                for w in run.wrong[:5]:
                    print("    wrong: %s" % w)
    finally:
        target.pico.stop()
    result["seconds"] = time.monotonic() - t0
    return result


def _ms(ns_values, q):
    return percentile(ns_values, q) / 1e6


def _mc(ns_values, q):
    return percentile(ns_values, q) * CLK_SYS / 1e9 / 1e6


def _figure(run, name, what):
    """'median / p95' of one timing row, or '-'."""
    row = run.rows.get(name) if run else None
    if not row or not row.get(what):
        return "-"
    if what == "turnaround":
        return "%.2f / %.2f ms" % (_ms(row[what], 50), _ms(row[what], 95))
    return "%.3f / %.3f M" % (_mc(row[what], 50), _mc(row[what], 95))


def _median(run, name, what):
    row = run.rows.get(name) if run else None
    return median(row[what]) if row and row.get(what) else None


def _pct(value, digits=1):
    return "-" if value is None else "%.*f %%" % (digits, 100 * value)


def report(results, count, timing):
    """One side-by-side table: a column per target, then b's figure over a's and over f's."""
    keys = [k for k in ("a", "f", "b") if k in results]
    versus = [k for k in ("a", "f") if k in results] if "b" in results else []
    header = ["figure"] + [results[k]["label"] for k in keys] + ["b / %s" % k for k in versus]
    rows = []

    def add(label, cells, values=None):
        """values: {key: number} for the ratio columns (b's over the other's)."""
        ratios = []
        for k in versus:
            a, b = (values or {}).get(k), (values or {}).get("b")
            ratios.append("%.1fx" % (b / a) if a and b is not None else "")
        rows.append([label] + cells + ratios)

    repl = {k: results[k].get("repl_idle") for k in keys}
    if any(v is not None for v in repl.values()):
        add("stock firmware busy at its REPL before install (%d ms)" % IDLE_MS, [_pct(repl[k], 2) for k in keys])
    heaps = {k: results[k].get("heap") for k in keys}
    if any(v is not None for v in heaps.values()):
        add("heap after boot, bytes", ["-" if heaps[k] is None else str(heaps[k]) for k in keys], heaps)
    for line in LINES:
        tag = "%d-8%s%d" % line
        runs = {k: results[k]["runs"].get(line) for k in keys}
        if not any(runs.values()):
            continue
        add("%s lost (of sent)" % tag, [
            ("%d of %d%s" % (r.lost, r.master.sent, ", " + r.stopped if r.stopped else "")) if r else "-"
            for r in runs.values()])
        for name in ("FC03 x125", "FC16 x123"):
            for what, label in (("turnaround", "turnaround"), ("busy", "busy cycles per request"),
                                ("work", "  of which outside the reply's wire time")):
                add("%s %s %s, median / p95" % (tag, name, label), [_figure(r, name, what) for r in runs.values()],
                    {k: _median(r, name, what) for k, r in runs.items()})
        for attr, label in (("receiving", "busy while receiving (FC16 x123 requests)"),
                            ("sending", "busy while sending (FC03 x125 replies)"),
                            ("idle", "busy while idle (%d ms)" % IDLE_MS)):
            values = {k: getattr(r, attr, None) if r else None for k, r in runs.items()}
            add("%s %s" % (tag, label), [_pct(v, 2 if attr == "idle" else 1) for v in values.values()], values)
    table("(e) Modbus RTU on the emulated Pico: a = mbnode deployed (.mpy), f = mbnode frozen (image), "
          "b = micropython-modbus 2.3.7 (.mpy)", header, rows,
          note=["Simulated time (the runner's clock); the emulator has no flash wait states or XIP cache "
                "model: compare as ratios. Ratio columns: b's median over a's / f's.",
                "Per line setting %d requests, %d FC03 x125 and %d FC16 x123 of them measured one by one. "
                "Turnaround: end of the last request byte to the start of the first reply byte on the line. "
                "Busy cycles: the runner's busy time x 125 MHz from the first request byte to the last reply "
                "byte, plus what exceeds the idle rate in the %d ms after it; 'outside the wire time' takes "
                "away the reply's time on the line at the measured sending rate (rp2's UART flush() spins "
                "until the last stop bit is out)." % (count, timing, timing, SETTLE_MS)])


def summary_rows(results):
    out = []
    for k in ("a", "f"):
        res = results.get(k)
        if not res:
            continue
        for line, run in res["runs"].items():
            bad = run.lost + len(run.wrong)
            out.append(("(e2) %s at %d-8%s%d: lost (wrong) of sent" % ((res["label"],) + line),
                        "%d (%d) of %d" % (run.lost, len(run.wrong), run.master.sent), "PASS" if bad == 0 else "FAIL"))
    if "f" in results and "heap" in results["f"]:
        h = results["f"]["heap"]
        out.append(("(e1) heap after boot, mbnode frozen <= %d" % FROZEN_HEAP_TARGET, "%d bytes" % h,
                    "PASS" if h <= FROZEN_HEAP_TARGET else "MISS"))
    if "b" in results:
        for line, run in results["b"]["runs"].items():
            out.append(("(e2) micropython-modbus at %d-8%s%d: lost (wrong) of sent" % line,
                        "%d (%d) of %d" % (run.lost, len(run.wrong), run.master.sent), "-"))
    return out


def run(parts="12", count=None, timing=None, targets="afb", image=None, seed=9):
    """The section; returns summary rows (target, measured, verdict) for bench/run.py. A lost or
    wrong mbnode reply makes a FAIL row; a missing MCU set-up a SKIP row."""
    count = count or COUNT
    timing = min(timing or TIMING, count // 2)
    gaps = missing(stock_firmware())
    if gaps:
        text = "; ".join("%s: %s" % g for g in gaps)
        print("\n(e) not run, the emulated Pico lacks %s" % text)
        return [("(e) emulated Pico", "not run: missing %s" % text, "SKIP")]
    print("\n(e) emulated Pico: %s, parts %s, %d requests per line setting, %d per timing row" % (
        ", ".join("%s" % k for k in targets), parts, count, timing))
    WORK.mkdir(parents=True, exist_ok=True)
    results = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcu-", dir=WORK) as tmp:
        tmp = Path(tmp)
        make = {
            "a": lambda: DeployedMbnode("a", "a: mbnode .mpy", tmp / "a"),
            "f": lambda: FrozenMbnode("f", "f: mbnode frozen", tmp / "f", image or build_image(tmp / "image" / "pico")),
            "b": lambda: Umodbus("b", "b: umodbus 2.3.7", tmp / "b"),
        }
        for key in targets:
            t0 = time.monotonic()
            try:
                results[key] = run_target(make[key](), parts, count, timing, seed)
            except Exception as e:  # noqa: BLE001 - report it, run the other targets
                rows.append(("(e) target %s" % key, "ERROR %s: %s" % (type(e).__name__, e), "ERROR"))
                print("\n(e) target %s failed: %s: %s" % (key, type(e).__name__, e))
            print("[(e) target %s: %.0f s]" % (key, time.monotonic() - t0))
            sys.stdout.flush()
    report(results, count, timing)
    return summary_rows(results) + rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="12", help="1 heap after boot, 2 serving (default 12)")
    p.add_argument("--count", type=int, default=COUNT, help="requests per target and line setting (default %d)" % COUNT)
    p.add_argument("--timing", type=int, default=TIMING, help="measured requests per timing row (default %d)" % TIMING)
    p.add_argument("--targets", default="afb", help="any of a (mbnode .mpy), f (mbnode frozen), b (umodbus)")
    p.add_argument("--image", help="a built mbnode-pico.uf2 or .bin for f instead of building one")
    args = p.parse_args(argv)
    if args.count < 2 or args.timing < 1 or set(args.parts) - set("12") or set(args.targets) - set("afb"):
        p.error("--count >= 2, --timing >= 1, --parts of 1 and 2, --targets of a, f, b")
    start = time.monotonic()
    print("mbnode bench, emulated Pico  %s  %d CPUs  load %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())))
    summary = run(args.parts, args.count, args.timing, args.targets, args.image)
    table("Summary, emulated Pico (a, f = mbnode)", ["target", "measured", "verdict"], summary,
          note="total runtime %.0f s" % (time.monotonic() - start))
    return 1 if any(r[2] in ("ERROR", "FAIL") for r in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
