"""Speed of the emulated Pico (tests/mcu/emu/pico.mjs): `.cache/venv/bin/python bench/emu_speed.py`.

Boots MicroPython's stock rp2 firmware from a blank flash, then measures, from the runner's own
counters (control channel `stats`):

  boot      wall seconds until the REPL prompt shows on the USB CDC (littlefs is formatted too)
  cpu       a CPU-bound MicroPython loop: instructions per wall second, simulated/wall time
  deploy    `mpremote cp -r` of the rp2 .mpy bundle (`mbnode build --target rp2`) and a soft
            reset: wall seconds, instructions per wall second, simulated/wall time
  idle      the REPL waiting: the runner's CPU use and simulated/wall time

Needs what the MCU tests need (`make setup-mcu` and the boot ROM, see tests/mcu/pico.py).
Only 127.0.0.1 is used; the runner is started and stopped here. About 30 s.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mcu"))

from pico import Pico, missing, stock_firmware  # noqa: E402

CPU_LOOP = "x = 0\nfor i in range(300000):\n    x += i * 3 % 7\nprint(x)"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delta(before, after):
    wall = after["wall_s"] - before["wall_s"]
    sim = (after["sim_ns"] - before["sim_ns"]) / 1e9
    instructions = after["instructions"] - before["instructions"]
    busy = (after["busy_ns"] - before["busy_ns"]) / 1e9
    return wall, sim, instructions, busy


def line(name, wall, sim, instructions, busy, extra=""):
    print("%-8s wall %6.2f s  sim %6.3f s  sim/wall %5.2f  instructions %11d  %5.1f M/wall-s  busy %5.1f%%  %s"
          % (name, wall, sim, sim / wall if wall else 0, instructions, instructions / wall / 1e6 if wall else 0,
             100 * busy / sim if sim else 0, extra))


def main():
    gaps = missing(stock_firmware())
    if gaps:
        sys.exit("emu_speed: missing " + "; ".join("%s (%s)" % g for g in gaps))
    with tempfile.TemporaryDirectory(prefix="emu-speed-") as tmp:
        bundle = Path(tmp) / "bundle"
        subprocess.run([sys.executable, "-m", "mbnode_host.cli", "build", "--target", "rp2", "--out", str(bundle)],
                       check=True, capture_output=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")])))
        start = time.monotonic()
        with Pico(firmware=stock_firmware(), workdir=tmp) as pico:
            pico.wait_cdc(rb">>> ", timeout=120)
            s0 = pico.stats()
            print("boot     wall %6.2f s to the REPL prompt (runner start included)  sim %6.3f s"
                  % (time.monotonic() - start, s0["sim_ns"] / 1e9))

            pico.exec("print(1)")  # mpremote's first connection soft-resets the board
            s1 = pico.stats()
            pico.exec(CPU_LOOP)
            s2 = pico.stats()
            line("cpu", *delta(s1, s2), extra="(mpremote exec of a 300000-step loop)")

            t = time.monotonic()
            pico.mpremote("cp", "-r", str(bundle) + "/", ":", "+", "soft-reset", timeout=300)
            s3 = pico.stats()
            files = sum(1 for p in bundle.rglob("*") if p.is_file())
            size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
            line("deploy", *delta(s2, s3), extra="(%d files, %d bytes, mpremote %.2f s)" % (files, size, time.monotonic() - t))

            c0 = cpu_seconds(pico.proc.pid)
            s4 = pico.stats()
            time.sleep(5)
            s5 = pico.stats()
            c1 = cpu_seconds(pico.proc.pid)
            wall, sim, instructions, busy = delta(s4, s5)
            line("idle", wall, sim, instructions, busy, extra="(runner CPU %.1f%%)" % (100 * (c1 - c0) / wall))


if __name__ == "__main__":
    main()
