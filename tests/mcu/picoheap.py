"""The heap mbnode holds on the emulated Pico once started and serving (issue 12, section 6), for
tests/mcu/test_pico_heap.py and bench/cabinet_pico.py.

mpremote's `exec` soft-resets the board (so main.py does not run and the heap starts clean) and
runs PROBE: it starts mbnode exactly as main.py does (`app.run("config.json")`: the data model,
the configuration check and its unloading, the packed copy, startup.build), with two additions made
before anything of mbnode is built: Loop.run first prints `heap start IN_USE FREE` (after
gc.collect()) and then serves as usual with one more loop timer, which, once the Engine has
counted `served` requests from a transport, prints `heap served N IN_USE FREE` and stops the
loop with KeyboardInterrupt (app.run's normal way out). The probe's own objects (two classes,
two functions, its list; not mbnode.loop and mbnode.pdu, which it imports first and app.run
would import anyway) are measured before it starts mbnode and printed as `probe overhead N`;
the figures reported are IN_USE minus that overhead: what mbnode and the interpreter hold.
"""

import re
import threading

PROBE = r"""
import gc
from mbnode import loop as _L, pdu as _P
gc.collect()
_a = gc.mem_alloc()
_eng = []
class _E(_P.Engine):
    def __init__(self, *a):
        super().__init__(*a)
        _eng.append(self)
class _Stop:
    def due_in(self, now):
        return 0 if _eng[0].requests_lo >= %(served)d else 20
    def tick(self, now):
        if _eng[0].requests_lo < %(served)d:
            return
        gc.collect()
        print("heap served", _eng[0].requests_lo, gc.mem_alloc(), gc.mem_free())
        raise KeyboardInterrupt
_run = _L.Loop.run
def _go(self):
    gc.collect()
    print("heap start", gc.mem_alloc(), gc.mem_free())
    if %(served)d:
        self.add_timer(_Stop())
        _run(self)
gc.collect()
print("probe overhead", gc.mem_alloc() - _a)
_P.Engine = _E
_L.Loop.run = _go
from mbnode import app
app.run("config.json")
print("probe done")
"""

_LINE = re.compile(rb"heap start (\d+) (\d+)")


class Figures:
    """start, served: bytes in use (probe overhead taken away) at the loop's start and after the
    requests; free_start, free_served; overhead; output: what the probe printed."""

    def __init__(self, output):
        self.output = output
        values = {}
        for line in output.splitlines():
            w = line.split()
            if w[:2] == ["probe", "overhead"]:
                values["overhead"] = int(w[2])
            elif w[:2] == ["heap", "start"]:
                values["start"] = (int(w[2]), int(w[3]))
            elif w[:2] == ["heap", "served"]:
                values["served"] = (int(w[3]), int(w[4]))
                values["count"] = int(w[2])
        if "overhead" not in values or "start" not in values:
            raise RuntimeError("the heap probe printed no figures: %r" % output[-600:])
        self.overhead = values["overhead"]
        self.start = values["start"][0] - self.overhead
        self.free_start = values["start"][1]
        self.served = values["served"][0] - self.overhead if "served" in values else None
        self.free_served = values["served"][1] if "served" in values else None
        self.count = values.get("count", 0)


def requests(cfg=None):
    """(name, PDU, function code of a right answer) of every kind the RTU slave serves, on the
    full map (picotest.board_config(full_map=True)): the largest reads, writes to the RAM
    channels past the onboard pins, memory, diagnostics, identification, an absent address;
    with a `system` section in cfg, reads of the status registers (issue 12, section 3)."""
    system = []
    if cfg and "system" in cfg:
        system = [("FC%02d status 0x2000 x15" % fc, bytes([fc, 0x20, 0, 0, 15]), fc) for fc in (3, 4)]
        system.append(("FC03 device name 0x2020 x16", bytes([3, 0x20, 0x20, 0, 16]), 3))
    return system + [
        ("FC01 x576", bytes([1, 0, 0, 0x02, 0x40]), 1),
        ("FC02 x576", bytes([2, 0, 0, 0x02, 0x40]), 2),
        ("FC03 x125", bytes([3, 0, 0, 0, 125]), 3),
        ("FC04 x125", bytes([4, 0, 0, 0, 125]), 4),
        ("FC03 memory x125", bytes([3, 0x10, 0, 0, 125]), 3),
        ("FC05", bytes([5, 0, 0x40, 0xFF, 0]), 5),
        ("FC06", bytes([6, 0, 0x40, 0x12, 0x34]), 6),
        ("FC15 x16", bytes([15, 0, 0x40, 0, 16, 2, 0xA5, 0x5A]), 15),
        ("FC16 x123", bytes([16, 0, 0x41, 0, 123, 246]) + bytes(range(246)), 16),
        ("FC22", bytes([22, 0, 0x42, 0xF0, 0xF0, 0x0F, 0x0F]), 22),
        ("FC23", bytes([23, 0x10, 0, 0, 10, 0x10, 0x10, 0, 2, 4, 1, 2, 3, 4]), 23),
        ("FC08 bus message count", bytes([8, 0, 0x0B, 0, 0]), 8),
        ("FC11", bytes([11]), 11),
        ("FC43/14", bytes([0x2B, 0x0E, 1, 0]), 0x2B),
        ("FC03 absent (0x20F0)", bytes([3, 0x20, 0xF0, 0, 1]), 0x83),
    ]


def measure(pico, serve=None, served=0, timeout=600):
    """Figures of mbnode started with the board's config.json. serve(): run once the loop
    serves (a thread of this process, while the probe runs on the board), sending at least
    `served` requests on a transport; its exception is raised here."""
    mark = pico.cdc_mark()
    result = {}

    def run():
        try:
            result["out"] = pico.exec(PROBE % {"served": served}, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ok = serve is None
    try:
        if serve is not None:
            pico.wait_cdc(_LINE.pattern, timeout=timeout, start=mark)
            serve()
            ok = True
    finally:
        t.join(timeout if ok else 5)  # after a failure the caller stops the board, which ends mpremote
    if "error" in result:
        raise result["error"]
    if "out" not in result:
        raise RuntimeError("the heap probe did not end within %d s" % timeout)
    return Figures(result["out"])
