"""The highest pulse rate mbnode counts without loss on the emulated Raspberry Pi Pico:
`.cache/venv/bin/python bench/io_pulses.py` (needs `make setup-mcu` and the boot ROM).

mbnode is deployed as .mpy onto the stock MicroPython 1.25 rp2 firmware with `mbnode deploy`,
with io.di channel 0 (GP12, pull-up) a counter of rising edges (no debounce: the pin interrupt
counts, hard=True) in memory position 1, and RTU at 115200 8N2. For each rate the runner's signal
generator (tests/mcu/emu/gpio.mjs, `pulses`) puts COUNT pulses of 50 % duty on GP12 in simulated
time; after the last one and SETTLE_MS of simulated quiet a pymodbus master (retries=0) reads the
count over RTU and resets it. A train lasts at least TRAIN_MS (and --count pulses); the CPU's
busy fraction over it is the runner's busy time over simulated time (the pin interrupt's cost with
the loop's own work; the window may overrun the train by a few ms). Rates double until one loses
pulses, then bisection between the last rate without loss and the first with loss to 2 % (the first row,
0 Hz, is the same window without pulses: the baseline busy fraction). Then
the same with the master reading the counter over RTU back to back from before the first pulse
to after the last ("busy": the UART's interrupts, the RTU link and the Engine compete with the
pin interrupt); there a request without its answer (MASTER_TIMEOUT_S of wall time: a saturated
emulated CPU answers late in wall time) counts as a loss too.

All times are simulated: rp2040js counts cycles per instruction without flash wait states, so
the figure is approximately a Pico's at 125 MHz (docs/mcu-emulation.md, "What a time means").
Only 127.0.0.1 is used; the runner is started and stopped here; every wait is bounded.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "mcu"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from pico import missing  # noqa: E402
from picotest import Master, board_config, deployed, line_settings  # noqa: E402

PIN = 12
SETTLE_MS = 20
TRAIN_MS = 300  # simulated ms a train lasts at least
MASTER_TIMEOUT_S = 120  # wall: a CPU the interrupts saturate answers late, which is not a loss


def config():
    cfg = board_config(115200, "N")
    cfg["io"] = {"di": [{"channel": 0, "mode": "counter", "position": 1}]}
    return cfg


class Bench:
    def __init__(self, pico, master, count):
        self.pico = pico
        self.master = master
        self.count = count
        self.lock = threading.Lock()

    def read(self):
        with self.lock:
            r = self.master.read_holding_registers(0x1000, count=2, device_id=1)
        assert not r.isError(), r
        return r.registers[0] | r.registers[1] << 16

    def reset(self):
        with self.lock:
            r = self.master.write_registers(0x1000, [0, 0], device_id=1)
        assert not r.isError(), r

    def run(self, rate, busy=False):
        """One train at `rate` Hz lasting at least TRAIN_MS of simulated time (and at least
        self.count pulses). Busy: the master reads the counter back to back from before the first
        pulse to after the last. Sets self.sent, .lost (pulses), .reads, .unanswered, .busy."""
        pico = self.pico
        self.reset()
        half = max(1, round(1e9 / rate / 2)) if rate else 0
        self.sent = max(self.count, rate * TRAIN_MS // 1000) if rate else 0
        stop = threading.Event()
        reads = [0, 0]  # answered, unanswered

        def poll():
            while not stop.is_set():
                try:
                    self.read()
                    reads[0] += 1
                except Exception:  # noqa: BLE001 - a request without its answer: counted
                    reads[1] += 1

        t = threading.Thread(target=poll) if busy else None
        if t:
            t.start()
            pico.wait_for(lambda: reads[0] >= 3, 60, "the master's first reads")
        start = list(reads)
        before = pico.stats()
        try:
            if rate:
                pico.pulses(PIN, self.sent, half, half)
                pico.wait_for(lambda: pico.pulses_left(PIN) == 0, 900, "the pulses' end", interval=0.02)
            else:  # the baseline: the same window without pulses
                pico.wait_for(lambda: pico.sim_ns() > before["sim_ns"] + TRAIN_MS * 1e6, 900, "the window's end")
            after = pico.stats()
        finally:
            stop.set()
            if t:
                t.join(MASTER_TIMEOUT_S + 10)
        self.busy = (after["busy_ns"] - before["busy_ns"]) / max(1, after["sim_ns"] - before["sim_ns"])
        self.reads, self.unanswered = reads[0] - start[0], reads[1] - start[1]
        end = pico.sim_ns()
        pico.wait_for(lambda: pico.sim_ns() > end + SETTLE_MS * 1e6, 60, "settle")
        self.lost = self.sent - self.read()


def highest(bench, busy, start, log):
    """Highest rate (Hz) without a lost pulse (busy: nor a request without its answer):
    doubling from start, then bisection to 2 %."""
    def lossless(rate):
        bench.run(rate, busy)
        log("  %8d Hz: %d of %d pulses lost, CPU busy %.0f %%%s" % (
            rate, bench.lost, bench.sent, 100 * bench.busy,
            ", %d reads answered, %d unanswered" % (bench.reads, bench.unanswered) if busy else ""))
        return not bench.lost and not (busy and bench.unanswered)

    lossless(0)  # the baseline: no pulses
    ok, bad = None, None
    rate = start
    while rate <= 2_000_000:
        if not lossless(rate):
            bad = rate
            break
        ok = rate
        rate *= 2
    if ok is None or bad is None:
        return ok, bad
    while bad - ok > ok * 0.02:
        mid = (ok + bad) // 2
        if lossless(mid):
            ok = mid
        else:
            bad = mid
    return ok, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="pulses per rate at least (default 2000)")
    ap.add_argument("--start", type=int, default=1000, help="first rate, Hz (default 1000)")
    args = ap.parse_args()
    why = missing()
    if why:
        sys.exit("bench/io_pulses.py: %s" % why)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="io-pulses-") as tmp:
        cfg = config()
        pico, _ = deployed(tmp, cfg)
        master = Master(pico, *line_settings(cfg), timeout=MASTER_TIMEOUT_S)
        try:
            bench = Bench(pico, master, args.count)
            t0 = time.monotonic()
            results = {}
            for busy in (False, True):
                print("%s:" % ("line busy (a master reads the counter back to back)" if busy else "line idle"),
                      flush=True)
                results[busy] = highest(bench, busy, args.start, lambda s: print(s, flush=True))
            print()
            for busy, (ok, bad) in results.items():
                print("highest rate counted without loss, %s: %s Hz (%s lost some)" % (
                    "RTU polled (no request unanswered either)" if busy else "line idle", ok,
                    "%d Hz" % bad if bad else "no rate tried"))
            print("at least %d pulses and %d ms per rate, 50 %% duty, simulated time; %.0f s wall" % (
                args.count, TRAIN_MS, time.monotonic() - t0))
        finally:
            master.close()
            pico.stop()


if __name__ == "__main__":
    main()
