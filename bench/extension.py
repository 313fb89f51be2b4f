"""Extension modules (section x): `.cache/venv/bin/python bench/extension.py [--seconds S]`.

  (x1) The poll cycle of 8 modules x (16 DI + 8 AI) on one RTU line at 115200 8N2: the firmware
       (32-bit unix port, as .mpy) is the master on one end of tests/fakes/line_emulator.py, whose
       other ends are 8 emulated slaves (tests/fakes/emulated_slave.py) answering at once (t3.5
       after the request, as the spec allows at the earliest). The line emulator paces every
       character at 115200 baud, so the pty behaves as a wire. Every module is polled back to
       back (period_ms 0): the cycle is the time between two FC02 requests to the same module,
       taken from the emulated wire's own clock (the end of each request frame). Lower bound:
       the frames' characters (11 bits each) plus t3.5 (1.75 ms) before each answer and before
       each next request, nothing else. Target: the median cycle within 1.5x of it.
  (x2) The heap in use after start-up (gc.mem_alloc after gc.collect, via the simulator's
       control channel), 32-bit, firmware as .mpy: the RTU master alone, and with the 8 modules
       of (x1) polling.

Only 127.0.0.1 and ptys; the simulator and the emulator are started and stopped here.
"""

import argparse
import socket
import statistics
import sys
import time

from common import ROOT, start_mbnode, table

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from emulated_slave import EmulatedSlave  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Setting  # noqa: E402

BAUD = 115200
MODULES = 8
DI = 16
AI = 8
SECONDS = 5.0
WARM = 1.0
TARGET = 1.5
BITS_PER_CHAR = 11  # 8N2: start, 8 data, 2 stop
T35 = 0.00175  # fixed above 19200 baud


def lower_bound():
    """Seconds one cycle of every module takes at least on the wire: per module an FC02 and an
    FC04 transaction, each request and answer frame with t3.5 before each."""
    char = BITS_PER_CHAR / BAUD
    di_bytes = (DI + 7) // 8
    frames = [8, 1 + 2 + di_bytes + 2, 8, 1 + 2 + 2 * AI + 2]  # FC02 req/answer, FC04 req/answer
    per_module = sum(frames) * char + len(frames) * T35
    return MODULES * per_module, sum(frames)


def modules_config(period_ms=0):
    return [{"unit": u, "di": DI, "ai": AI, "period_ms": period_ms, "timeout_ms": 100} for u in range(1, MODULES + 1)]


def heap_in_use(srv):
    """gc.mem_alloc() after gc.collect(), from the simulator's control channel."""
    fields = srv.ready.split()
    host, port = dict(zip(fields[1::2], fields[2::2]))["io"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"heap\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    words = reply.decode().split()
    assert words[0] == "ok", reply
    return int(words[1])


def start(line, modules):
    cfg = {"rtu": {"enabled": True, "mode": "master", "baud": BAUD, "parity": "N", "stopbits": 2},
           "board": {"rtu_device": line.url(0)}}
    if modules:
        cfg["extension"] = {"modules": modules}
    return start_mbnode(bits=32, mpy=True, config=cfg)


def cycle(seconds):
    """(x1) rows and the summary row."""
    slaves = [EmulatedSlave(Setting(BAUD, parity="N", stopbits=2), unit=u, discrete=[(0, DI - 1)],
                            inputs=[(0, AI - 1)], reply_delay=0.0, name="module %d" % u)
              for u in range(1, MODULES + 1)]
    with LineEmulator([PtyEnd()] + slaves) as line:
        srv = start(line, modules_config())
        try:
            time.sleep(WARM)  # the bench's own pacing, not a synchronisation: the firmware runs freely
            marks = [len(s.log) for s in slaves]
            time.sleep(seconds)
            heap = heap_in_use(srv)
            ends = [list(zip(s.log[m:], s.times[m:])) for s, m in zip(slaves, marks)]
        finally:
            srv.stop()
    cycles = []
    missed = 0
    for log in ends:
        starts = [t for (n, pdu, what), t in log if pdu.startswith("02")]
        missed += sum(1 for (n, pdu, what), t in log if what != "answered")
        cycles += [b - a for a, b in zip(starts, starts[1:])]
    bound, chars = lower_bound()
    med = statistics.median(cycles)
    p90 = sorted(cycles)[int(0.9 * (len(cycles) - 1))]
    ratio = med / bound
    rows = [
        ["lower bound (wire time)", "%.1f ms" % (1000 * bound),
         "%d chars x %d bits at %d baud + %d x t3.5, per module; x %d" % (chars, BITS_PER_CHAR, BAUD, 4, MODULES)],
        ["cycle, median", "%.1f ms" % (1000 * med), "%.2fx the bound (target <= %.1fx)" % (ratio, TARGET)],
        ["cycle, 90th percentile / max", "%.1f / %.1f ms" % (1000 * p90, 1000 * max(cycles)), ""],
        ["cycles measured", "%d" % len(cycles), "%d requests missed" % missed],
        ["heap in use, master + 8 modules polling", "%d bytes" % heap, "gc.mem_alloc after gc.collect"],
    ]
    table("(x1) Poll cycle, %d modules x (%d DI + %d AI), RTU %d 8N2, emulated line, %.0f s, 32-bit .mpy"
          % (MODULES, DI, AI, BAUD, seconds), ["figure", "value", "note"], rows)
    return [("(x1) poll cycle 8 x (16 DI + 8 AI) at 115200, median vs wire bound",
             "%.1f ms vs %.1f ms (%.2fx)" % (1000 * med, 1000 * bound, ratio),
             "FAIL" if missed else ("PASS" if ratio <= TARGET else "MISS"))], heap


def heaps(with_modules):
    """(x2) rows: the master alone, with one module (polling, answered), and with 8 ((x1))."""
    figures = []
    for modules in ([], modules_config(100)[:1]):
        slaves = [EmulatedSlave(Setting(BAUD, parity="N", stopbits=2), unit=1, discrete=[(0, DI - 1)],
                                inputs=[(0, AI - 1)], reply_delay=0.0)] if modules else []
        with LineEmulator([PtyEnd()] + slaves) as line:
            srv = start(line, modules)
            try:
                figures.append(heap_in_use(srv))
            finally:
                srv.stop()
    alone, one = figures
    per = (with_modules - one) // (MODULES - 1)
    rows = [["RTU master, no modules", "%d bytes" % alone, ""],
            ["RTU master + 1 module", "%d bytes" % one, "%+d bytes: extension.py's code, 4 write jobs, 1 module"
             % (one - alone)],
            ["RTU master + 8 modules (x1)", "%d bytes" % with_modules, "%+d bytes: each further module %d bytes"
             % (with_modules - alone, per)]]
    table("(x2) Heap in use after start-up, 32-bit unix port, firmware as .mpy", ["configuration", "gc.mem_alloc", ""],
          rows)
    return [("(x2) heap in use, RTU master + 8 modules (master alone; per module)",
             "%d (%d; %d) bytes" % (with_modules, alone, per), "-")]


def run(seconds=SECONDS):
    summary, with_modules = cycle(seconds)
    return summary + heaps(with_modules)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=SECONDS, help="measured seconds in (x1) (default %.0f)" % SECONDS)
    args = p.parse_args(argv)
    print("mbnode extension modules bench  %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
    rows = run(args.seconds)
    table("Summary, extension modules (a = mbnode)", ["target", "measured", "verdict"], rows)
    return 1 if any(r[2] in ("FAIL", "ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
