"""(p) `mbnode probe`: how long and how many frames to find a device knowing nothing about it,
beside a naive scanner. `.cache/venv/bin/python bench/probe.py` alone, or section p of run.py.

The device: the pymodbus RTU slave of the tests (tests/fakes/pymodbus_rtu_device.py) at 38400
8O1, unit 17, on tests/fakes/line_emulator.py, which decodes every other baud rate and parity
bit by bit as a UART would (nothing valid gets through) and delays every byte by its wire time.
The probe runs as `mbnode probe URL --json --no-identify` with its default timeouts (wire times
+ t3.5 + 40 ms turnaround, the wait a real line at that baud rate needs), so the discovery
figure is real, measured time: the requests and seconds until the find (`found_after`), without
the parity check that follows it.

The naive scanner (mbpoll-style: 1 s timeout per attempt, the same order of baud rates,
parities and ids) would need about 2000 s for this device: that is computed, not waited for:
    naive = (attempts - 1) x (1 s + wire time of the request) + the time of the answer.
The model is checked against a real naive sweep over a narrowed range (baud 38400, parities
E, N, O, ids 10-20: 30 attempts, about 29 s), measured with `mbnode probe --timeout 1`.
Target: the probe needs 10x fewer seconds than the naive sweep. Runtime about 2.5 minutes.
"""

import json
import os
import select
import subprocess
import sys
import time

from common import ROOT, table, verdict

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "firmware"))

from line_emulator import LineEmulator  # noqa: E402
from mbnode_host.serialline import Line  # noqa: E402

DEVICE = ROOT / "tests" / "fakes" / "pymodbus_rtu_device.py"
TARGET = Line(38400, "O")
UNIT = 17
NAIVE_TIMEOUT = 1.0
NARROW = ("--baud", "38400", "--ids", "10-20")
TARGET_RATIO = 10.0


def start_device(port):
    proc = subprocess.Popen([sys.executable, str(DEVICE), "--port", port, "--baud", str(TARGET.baud),
                             "--parity", TARGET.parity, "--unit", str(UNIT)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready or not proc.stdout.readline().startswith("ready"):
        stop(proc)
        raise RuntimeError("pymodbus RTU device did not start")
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def probe(url, *args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    argv = [sys.executable, "-m", "mbnode_host.cli", "probe", url, "--json", "--no-identify", "--quiet"]
    r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError("probe %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    res = json.loads(r.stdout)
    dev = res["devices"][0]
    if (dev["unit"], dev["serial"]["label"]) != (UNIT, TARGET.label):
        raise RuntimeError("probe found unit %d at %s, expected %d at %s"
                           % (dev["unit"], dev["serial"]["label"], UNIT, TARGET.label))
    # The request that found it and the time until then (the parity check that follows a find
    # is not part of finding it).
    return dev["found_after"]["requests"], dev["found_after"]["seconds"]


def naive_model(attempts, answer_seconds):
    """Seconds a 1 s-timeout sweep needs for `attempts` attempts, the last one answered."""
    return (attempts - 1) * (NAIVE_TIMEOUT + TARGET.wire(8)) + answer_seconds


def run():
    line = LineEmulator(["rfc2217", "rfc2217"]).start()
    dev = None
    try:
        dev = start_device(line.url(1))
        print("\n(p) mbnode probe: find unit %d at %s from no knowledge (emulated line, pymodbus device)"
              % (UNIT, TARGET.label))
        sys.stdout.flush()
        narrow_n, narrow_fast = probe(line.url(0), *NARROW)
        naive_n, naive_measured = probe(line.url(0), *NARROW, "--timeout", str(NAIVE_TIMEOUT))
        blind_n, blind_s = probe(line.url(0))
    finally:
        if dev is not None:
            stop(dev)
        line.stop()
    # The answering attempt costs what one fast answer costs: wire times + the device's reply.
    answer = TARGET.wire(8) + TARGET.t35 + TARGET.wire(7) + 0.005
    naive_narrow_model = naive_model(naive_n, answer)
    model_error = naive_measured / naive_narrow_model - 1
    naive_blind = naive_model(blind_n, answer)
    ratio = naive_blind / blind_s
    ok = ratio >= TARGET_RATIO and abs(model_error) < 0.05
    rows = [
        ("narrowed: baud 38400, ids 10-20", narrow_n, "%.2f s" % narrow_fast, "%d" % naive_n,
         "%.1f s measured (model %.1f s, %+.1f %%)" % (naive_measured, naive_narrow_model, 100 * model_error), ""),
        ("no knowledge: all settings, ids 1-247", blind_n, "%.1f s" % blind_s, "%d" % blind_n,
         "%.0f s computed (%.0f min)" % (naive_blind, naive_blind / 60), "%.1fx %s" % (ratio, verdict(ok))),
    ]
    table("(p) time to find the device: mbnode probe vs a naive 1 s-timeout sweep",
          ["search", "probe frames", "probe time", "naive frames", "naive time", "speed-up (target >= 10x)"], rows,
          note=["probe: default timeouts, e.g. %s %.1f ms, 9600 8E1 %.1f ms per silent attempt (wire + t3.5 + "
                "40 ms turnaround)" % (TARGET.label, 1000 * TARGET.timeout(8, 7), 1000 * Line(9600, "E").timeout(8, 7)),
                "naive no-knowledge time = (frames - 1) x (1 s + request wire time) + one answer: computed, "
                "not waited for; the narrowed naive run is real and checks that model (must be within 5 %)"])
    return [("(p) probe find time", "%.1f s vs naive %.0f s: %.1fx" % (blind_s, naive_blind, ratio), verdict(ok))]


if __name__ == "__main__":
    t0 = time.monotonic()
    summary = run()
    print("\n%s: %s  %s  (%.0f s)" % (summary[0] + (time.monotonic() - t0,)))
    sys.exit(0 if summary[0][2] == "PASS" else 1)
