"""Heap in use of the cabinet module on the emulated Pico with mbnode frozen (issue 12, section
6): `.cache/venv/bin/python bench/cabinet_pico.py [CONFIG.json] [--image UF2]`.

The `mbnode build --board pico --image` firmware (built here from the checkout unless --image
names one) boots on the emulated Pico (tests/mcu/pico.py; docs/mcu-emulation.md) from a blank
flash; CONFIG (default bench/cabinet-pico.json: the RTU slave at 115200 8N2 and every channel of
the seed RTU's map; the Pico has no TCP and no MQTT) is copied to its flash as config.json. Then
tests/mcu/picoheap.py's probe starts mbnode as main.py does and reads gc.mem_alloc() after
gc.collect() where the event loop starts, and again after a counting master on UART0 has sent
every kind of request of picoheap.requests() (each answer checked). Printed: both figures (the
probe's own objects taken away), and the verdict against the 48 KiB target. Exit status 1 when
something failed; the figure itself is reported, not asserted (tests/mcu/test_pico_heap.py
asserts it). --deployed measures mbnode put onto the stock firmware as .mpy files with `mbnode
deploy` instead (its bytecode then on the heap), for comparison. Figures: docs/benchmarks.md, "The cabinet module's heap".
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.append(str(BENCH_DIR.parent / "tests"))  # rtutest, for picotest.Master.raw
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "mcu"))

from common import verdict  # noqa: E402
from pico import Pico, missing, stock_firmware  # noqa: E402
from picotest import DE_PIN, Master, line_settings, mbnode, wait_ready, write_config  # noqa: E402
import picoheap  # noqa: E402

TARGET = 48 * 1024


def build_image(out):
    r = mbnode("build", "--board", "pico", "--image", "--out", str(out), timeout=1800)
    if r.returncode:
        raise SystemExit("cabinet_pico: mbnode build --image failed: %s" % (r.stdout + r.stderr).strip()[-600:])
    return r.stdout.strip().splitlines()[-1]


def serve_all(master, cfg):
    """Every request of picoheap.requests(cfg) once; raises on a wrong or missing answer."""
    for name, pdu, fc in picoheap.requests(cfg):
        answer = master.raw(pdu)
        if answer[0] != fc:
            raise RuntimeError("%s: answer %s" % (name, answer.hex()))


DEFAULT_CONFIG = BENCH_DIR / "cabinet-pico.json"


def run(config=DEFAULT_CONFIG, image=None):
    """bench/run.py section (c): the summary row (SKIP without the MCU set-up)."""
    what = "(c) heap in use, emulated Pico, frozen, %s" % Path(config).name
    lacking = missing()
    if lacking:
        return [(what, "not measured: " + "; ".join("%s (%s)" % m for m in lacking), "SKIP")]
    ready, fig = measure(json.loads(Path(config).read_text()), image)
    worst = max(fig.start, fig.served)
    return [(what + ": <= %d" % TARGET, "%d B (%d at the loop's start)" % (fig.served, fig.start),
             verdict(worst <= TARGET))]


def measure(cfg, image=None, deployed=False):
    """(ready line, picoheap.Figures) of the image (built from the checkout when None), or with
    deployed, of mbnode put onto the stock firmware as .mpy files by `mbnode deploy`."""
    with tempfile.TemporaryDirectory(prefix="mbnode-cabinet-pico-") as tmp:
        if deployed:
            pico = Pico(firmware=stock_firmware(), workdir=tmp, watch=[DE_PIN])
        else:
            image = image or build_image(Path(tmp) / "image")
            pico = Pico(firmware=image, workdir=tmp, watch=[DE_PIN])
        try:
            if deployed:
                pico.wait_cdc(rb">>> ", timeout=180)
                mark = pico.cdc_mark()
                r = mbnode("deploy", "--board", "pico", "--port", pico.repl_url, "--config",
                           str(write_config(tmp, cfg)))
                if r.returncode:
                    raise SystemExit("cabinet_pico: mbnode deploy failed: %s" % (r.stdout + r.stderr)[-600:])
            else:
                wait_ready(pico, 0)
                pico.mpremote("fs", "cp", str(write_config(tmp, cfg)), ":config.json")
                mark = pico.cdc_mark()
                pico.reset()
            ready = wait_ready(pico, mark)
            master = Master(pico, *line_settings(cfg))
            try:
                n = len(picoheap.requests(cfg))
                fig = picoheap.measure(pico, lambda: serve_all(master, cfg), served=n)
            finally:
                master.close()
        finally:
            pico.stop()
    return ready, fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    ap.add_argument("--image", help="a built mbnode-pico.uf2 (default: build one from the checkout)")
    ap.add_argument("--deployed", action="store_true",
                    help="mbnode as .mpy on the stock firmware (`mbnode deploy`) instead of frozen")
    args = ap.parse_args(argv)
    lacking = missing()
    if lacking:
        print("cabinet_pico: SKIP: %s" % "; ".join("%s (%s)" % m for m in lacking))
        return 1
    t0 = time.monotonic()
    ready, fig = measure(json.loads(Path(args.config).read_text()), args.image, args.deployed)
    print("cabinet_pico: %s" % ready)
    print("cabinet_pico: %s, mbnode %s on the emulated Pico: %d bytes in use where the loop starts, %d after "
          "%d requests (%d free); the probe's own %d bytes taken away [%.0f s]"
          % (Path(args.config).name, "as .mpy (mbnode deploy)" if args.deployed else "frozen", fig.start, fig.served, fig.count, fig.free_served, fig.overhead,
             time.monotonic() - t0))
    worst = max(fig.start, fig.served)
    print("cabinet_pico: target <= %d: %s" % (TARGET, verdict(worst <= TARGET)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
