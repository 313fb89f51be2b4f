"""Write protection (issue 12, the "protect" section): `.cache/venv/bin/python bench/protect.py`.

  (w1) The heap in use after start-up (gc.mem_alloc after gc.collect, from the simulator's control
       channel), 32-bit unix port, firmware as .mpy, TCP + RTU (a pty): without a "protect"
       section, and with one of 5 ranges (read-only and trusted-only coils and holding registers,
       memory positions) and 2 trusted client addresses.
  (w2) What the guard adds to a write: Engine.handle of FC06 and of FC16 x123 on the 32-bit unix
       port (the firmware's source), without a guard, with the guard of (w1) letting the write
       through (the ranges scanned to their end) and refusing it (exception 02). Microseconds per
       request over 20,000 requests, the best of 5 interleaved runs; a figure of this machine, not a
       limit.

Only 127.0.0.1 and ptys; the simulator is started and stopped here.
"""

import argparse
import subprocess
import sys
import tempfile
import time

from common import ROOT, table

sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "host"), str(ROOT / "firmware")]

from conftest import Sim  # noqa: E402
from mbnode_host import paths  # noqa: E402

PROTECT = {
    "read_only": {"coils": ["0x0008-0x000F"], "holding_registers": ["0x0010-0x0011", "0x1000-0x1003"]},
    "trusted_only": {"coils": ["0x0020-0x0027"], "holding_registers": ["0x0020-0x002F"]},
    "trusted_clients": ["127.0.0.1", "192.168.1.10"],
}

TIMING = r"""
import time
from mbnode import config
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from mbnode.protect import Guard

N = 20000
section = config.validate({"protect": %r})["protect"]
req6 = bytes([6, 0, 0x30, 0, 1])
req6_refused = bytes([6, 0, 0x20, 0, 1])
req16 = bytes([16, 0, 0x30, 0, 123, 246]) + bytes(246)
resp = bytearray(260)


def run(engine, req):
    n = len(req)
    t = time.ticks_us()
    for _ in range(N):
        engine.handle(req, 0, n, resp, 0, None, 2)
    return time.ticks_diff(time.ticks_us(), t) / N


engines = []
for guard in (False, True):
    engine = Engine(DataModel(), DeviceIdentification(config.validate({})["identity"], 1))
    if guard:
        engine.guard = Guard(section)
    engines.append(engine)
best = [[1e9] * 3, [1e9] * 3]
for _ in range(5):  # interleaved, the best of 5: the machine is shared
    for i, engine in enumerate(engines):
        for j, req in enumerate((req6, req16, req6_refused)):
            best[i][j] = min(best[i][j], run(engine, req))
print("none", *best[0])
print("guard", *best[1])
""" % (PROTECT,)


def heaps():
    tmp = tempfile.mkdtemp(prefix="mbnode-bench-")
    out = {}
    for name, cfg in (("without", {}), ("with", {"protect": PROTECT})):
        s = Sim(bits=32, mpy=True, config=cfg, tmp_path=tmp, rtu="pty")
        try:  # the least of 5 readings: the control channel's own request is in the others
            out[name] = min(int(s.io_cmd("heap").split()[1]) for _ in range(5))
        finally:
            s.stop()
    rows = [["TCP + RTU, no protect section", "%d bytes" % out["without"], ""],
            ["TCP + RTU + protect (5 ranges, 2 trusted clients)", "%d bytes" % out["with"],
             "%+d bytes: protect.py's code and the guard" % (out["with"] - out["without"])]]
    table("(w1) Heap in use after start-up, 32-bit unix port, firmware as .mpy", ["configuration", "gc.mem_alloc", ""],
          rows)
    return [("(w1) heap the protect section adds", "%d bytes" % (out["with"] - out["without"]), "-")]


def timing():
    r = subprocess.run([str(paths.micropython(32)), "-c", TIMING], capture_output=True, text=True, timeout=300,
                       env={"MICROPYPATH": str(ROOT / "firmware")})
    assert r.returncode == 0, r.stdout + r.stderr
    figures = {}
    for line in r.stdout.splitlines():
        words = line.split()
        figures[words[0]] = [float(w) for w in words[1:]]
    none, guard = figures["none"], figures["guard"]
    rows = [["FC06, written", "%.1f" % none[0], "%.1f" % guard[0]],
            ["FC16 x123, written", "%.1f" % none[1], "%.1f" % guard[1]],
            ["FC06 to a trusted-only register from TCP: refused (02)", "-", "%.1f" % guard[2]]]
    table("(w2) Engine.handle, 32-bit unix port, microseconds per request", ["request", "no guard", "guard"], rows)
    return [("(w2) FC06 with / without the guard", "%.1f / %.1f us" % (guard[0], none[0]), "-")]


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    print("mbnode write protection bench  %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
    rows = heaps() + timing()
    table("Summary, write protection (a = mbnode)", ["target", "measured", "verdict"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
