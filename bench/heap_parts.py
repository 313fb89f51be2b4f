"""Where the cabinet module's heap goes: `.cache/venv/bin/python bench/heap_parts.py [CONFIG.json]`.

Starts the firmware as bench/cabinet_heap.py does (32-bit unix port, .mpy, the same configuration
file, a pty for the RTU line; the MQTT broker address points at a closed port: the bridge is built
but the loop never runs, so it never connects), with builtins.__import__ wrapped: every module
the firmware loads is measured with gc.collect() and gc.mem_alloc() around its import (its own
cost: its import minus the imports it made itself), and app.run stops where the event loop would
start (Loop.run replaced), where gc.mem_alloc() is read again. Printed: the modules still loaded
with their own import cost (code, constants, globals, the objects made at import), the modules
imported and unloaded again during start-up, the total in use, what is not in a loaded module's
import (objects startup.build made: buffers, slots, points, the data model), and the interned-name
pools (micropython.qstr_info()).

The wrapper's own records cost a little heap (one list entry per import); they are counted in
neither the modules nor the total it reports as the firmware's. Figures: docs/benchmarks.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import HOST, firmware_mpy, free_port, micropython, umqtt_path  # noqa: E402

from mbnode_host import sim  # noqa: E402

PROBE = r"""
import gc, sys, builtins, micropython
gc.collect()
_records = []  # (name, inclusive bytes, children bytes)
_stack = [0]
_imp = builtins.__import__
def _hook(name, *args):
    _stack.append(0)
    gc.collect()
    a = gc.mem_alloc()
    try:
        return _imp(name, *args)
    finally:
        gc.collect()
        n = gc.mem_alloc() - a
        kids = _stack.pop()
        _stack[-1] += n
        if n > 0:
            _records.append((name, n, kids))
# what the parts startup.build makes cost (their objects, not the imports they make): wrapped once
# their module is loaded
_WRAP = {"mbnode.datamodel": ("DataModel",), "mbnode.pdu": ("Engine",), "mbnode.loop": ("Loop",),
         "mbnode.devid": ("DeviceIdentification",), "mbnode.tcp": ("TcpSlave",), "mbnode.rtulink": ("RtuLink",),
         "board": ("start",), "mbnode.masters": ("Masters",), "mbnode.tcpmaster": ("TcpMaster",),
         "mbnode.mqtt.relay": ("Relay",), "mbnode.mqtt.bridge": ("Bridge",),
         "mbnode.mqtt.telemetry": ("Telemetry",)}
def _wrap(mod, attr):
    fn = getattr(mod, attr)
    label = "%s.%s" % (mod.__name__, attr)
    def call(*a, **k):
        _stack.append(0)
        gc.collect()
        b = gc.mem_alloc()
        try:
            return fn(*a, **k)
        finally:
            gc.collect()
            n = gc.mem_alloc() - b
            kids = _stack.pop()
            _stack[-1] += n
            _records.append(("()" + label, n, kids))
    setattr(mod, attr, call)
def _hook2(name, *args):
    first = name not in sys.modules
    m = _hook(name, *args)
    if first and name in _WRAP and name in sys.modules:
        for attr in _WRAP[name]:
            _wrap(sys.modules[name], attr)
    return m
gc.collect()
_a = gc.mem_alloc()
from mbnode import loop as _loop
gc.collect()
_records.append(("mbnode.loop", gc.mem_alloc() - _a, 0))
def _stop(self):
    builtins.__import__ = _imp
    gc.collect()
    used = gc.mem_alloc()
    print("TOTAL", used, gc.mem_free())
    for name, n, kids in _records:
        print("CALL" if name[0] == "(" else "IMPORT", name.lstrip("()"), n, n - kids)
    print("MODULES", " ".join(sorted(sys.modules)))
    micropython.qstr_info()
_loop.Loop.run = _stop
_wrap(_loop, "Loop")
builtins.__import__ = _hook2
from mbnode import app
app.run(sys.argv[1])
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default=str(BENCH_DIR / "cabinet.json"))
    ap.add_argument("--heap", default="256K")
    ap.add_argument("--romfs", action="store_true", help="the .mpy files from a ROMFS image (cabinet_heap.py --romfs)")
    args = ap.parse_args(argv)
    given = json.loads(Path(args.config).read_text())
    fw_fd, peer, client_fd = sim.make_pty()
    try:
        rtu = {"device": "fd:%d" % fw_fd, "peer": peer} if given.get("rtu", {}).get("enabled") else None
        if "mqtt" in given:
            given["mqtt"].update(host=HOST, port=free_port(), client_id="mbnode-parts", prefix="parts")
        cfg, ours = sim.overlay(given, (HOST, 0), None, (HOST, 0), rtu)
        sim.check_config(cfg, None, ours)
        with tempfile.TemporaryDirectory(prefix="mbnode-parts-") as tmp:
            cfg_path = Path(tmp) / "config.json"
            cfg_path.write_text(json.dumps(cfg))
            probe = Path(tmp) / "probe.py"
            probe.write_text(PROBE)
            fw = firmware_mpy(32)
            env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(fw), str(umqtt_path(32, True))]))
            binary = micropython(32)
            if args.romfs:
                from cabinet_heap import romfs_image

                binary, image = romfs_image(tmp)
                env = dict(os.environ, MICROPYPATH=".frozen:/rom", MICROPY_ROMFS=str(image))
            r = subprocess.run([str(binary), "-X", "heapsize=%d" % sim.parse_size(args.heap, 32), str(probe),
                                str(cfg_path)], env=env, capture_output=True, text=True, timeout=60,
                               pass_fds=[fw_fd])
    finally:
        os.close(fw_fd)
        os.close(client_fd)
    if r.returncode or "TOTAL" not in r.stdout:
        print(r.stdout[-2000:], r.stderr[-2000:])
        return 1
    report(r.stdout)
    return 0


def report(out):
    total = free = 0
    imports, calls, modules = [], [], []
    qstr = ""
    for line in out.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "TOTAL":
            total, free = int(w[1]), int(w[2])
        elif w[0] in ("IMPORT", "CALL"):
            (imports if w[0] == "IMPORT" else calls).append((w[1], int(w[2]), int(w[3])))
        elif w[0] == "MODULES":
            modules = w[1:]
        elif line.startswith("qstr pool"):
            qstr = line.strip()
        elif w[0] == "ready":
            print(line)
    last = {}
    for i, r in enumerate(imports):
        last[r[0]] = i
    kept = [r for i, r in enumerate(imports) if r[0] in modules and last[r[0]] == i]
    gone = [r for r in imports if r not in kept]
    kept_self = sum(r[2] for r in kept)
    calls_self = sum(r[2] for r in calls)
    print("in use where the loop would start: %d bytes (%.1f KiB), %d free" % (total, total / 1024, free))
    print("\nmodules loaded, own import cost (bytes; a qstr pool that grows is counted to the import that grew it):")
    for name, n, own in sorted(kept, key=lambda r: -r[2]):
        print("  %-34s %6d" % (name, own))
    print("  %-34s %6d (%.1f KiB)" % ("sum", kept_self, kept_self / 1024))
    print("\nimported during start-up and unloaded again (their names stay interned):")
    for name, n, own in gone:
        print("  %-34s %6d" % (name, own))
    print("\nobjects start-up made (bytes kept after each call, without the imports it made):")
    for name, n, own in calls:
        print("  %-34s %6d" % (name, own))
    print("  %-34s %6d (%.1f KiB)" % ("sum", calls_self, calls_self / 1024))
    print("\nthe rest (interpreter, sys.modules, main, the checked configuration, what the wrapped calls"
          " do not cover): %d bytes" % (total - kept_self - calls_self))
    print(qstr)


if __name__ == "__main__":
    sys.exit(main())
