"""mbnode installed with `mpremote mip` onto the emulated Pico, both ways the packages come:
`.cache/venv/bin/python bench/mip_pico.py [--only py|mpy]`.

  py   the repository's package.json and boards/pico.json (the .py sources, what
       `mpremote mip install --target / github:OWNER/mbnode github:OWNER/mbnode/boards/pico.json`
       fetches), here from a file server on 127.0.0.1 serving the checkout
  mpy  build/pico/package.json of `mbnode build --board pico` (.mpy for armv6m), from a file
       server on 127.0.0.1 serving the build folder

Each on the stock firmware with a blank flash (tests/mcu/pico.py): the install's wall time and
bytes, the time from a soft reset to mbnode's ready line, and tests/mcu/picoheap.py's heap
figures where the loop starts (in use, the probe's own objects taken away; free) after one
counted RTU request. Wall times on the emulator are only comparable with each other (the chip
runs at about 0.4-0.5 of a Pico's speed, docs/mcu-emulation.md). Figures: docs/benchmarks.md,
"mip installs on the emulated Pico". Exit status 1 when something failed.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "host"))
sys.path.append(str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "mcu"))

from mbnode_host import build, deploy  # noqa: E402
from pico import Pico, missing, stock_firmware  # noqa: E402
from picotest import Master, wait_ready  # noqa: E402
import picoheap  # noqa: E402
from test_mip_package import served  # noqa: E402


def packages(kind, tmp):
    """(folder to serve, [package.json paths below it], bytes the packages install)."""
    if kind == "py":
        names = ["package.json", "boards/pico.json"]
        folder = ROOT
    else:
        folder = build.bundle("pico", Path(tmp) / "pico").path
        names = ["package.json"]
    size = 0
    for name in names:
        base = (folder / name).parent
        size += sum((base / url).stat().st_size for _, url in json.loads((folder / name).read_text())["urls"])
    return folder, names, size


def measure(kind):
    with tempfile.TemporaryDirectory(prefix="mbnode-mip-pico-") as tmp:
        folder, names, size = packages(kind, tmp)
        files = served(folder)
        with files as url, Pico(firmware=stock_firmware(), workdir=tmp) as pico:
            pico.wait_cdc(rb">>> ", timeout=180)
            t0 = time.monotonic()
            pico.mpremote("mip", "install", "--target", "/", *[url + "/" + n for n in names], timeout=1800)
            install_s = time.monotonic() - t0
            mark = pico.cdc_mark()
            t0 = time.monotonic()
            deploy.restart(pico.repl_url)
            ready = wait_ready(pico, mark, timeout=600)
            boot_s = time.monotonic() - t0
            master = Master(pico, 19200, "E", 1)
            try:
                def one():
                    r = master.read_holding_registers(0x1000, count=2, device_id=1)
                    if r.isError():
                        raise RuntimeError("read failed: %s" % r)

                fig = picoheap.measure(pico, one, served=1)
            finally:
                master.close()
    return {"kind": kind, "files": len(files.asked) - len(names), "bytes": size, "install_s": install_s,
            "boot_s": boot_s, "ready": ready, "in_use": fig.start, "free": fig.free_start}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("py", "mpy"))
    args = ap.parse_args(argv)
    lacking = missing(stock_firmware())
    if lacking:
        print("mip_pico: SKIP: %s" % "; ".join("%s (%s)" % m for m in lacking))
        return 1
    rows = [measure(k) for k in ([args.only] if args.only else ["mpy", "py"])]
    print("| package | files | bytes | install (wall) | soft reset to ready (wall) | heap in use at the loop's start "
          "| free |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %s | %d | %d | %.0f s | %.1f s | %d B | %d B |" % (
            {"py": "package.json + boards/pico.json (.py)", "mpy": "build/pico/package.json (.mpy)"}[r["kind"]],
            r["files"], r["bytes"], r["install_s"], r["boot_s"], r["in_use"], r["free"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
