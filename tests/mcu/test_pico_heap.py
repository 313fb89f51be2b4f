"""The cabinet module's heap on the emulated Pico with mbnode frozen (issue 12, section 6): at most
48 KiB in use once started and after serving every kind of request.

The `mbnode build --board pico --image` firmware on a blank flash, with bench/cabinet-pico.json
as config.json (the configuration bench/cabinet_pico.py measures: the RTU slave and every
channel of the seed RTU's map, and whatever sections the cabinet module has: fail-safe, I/O
modes, system registers). tests/mcu/picoheap.py's probe starts mbnode as main.py does and reads
gc.mem_alloc() after gc.collect() where the loop starts and after the requests.

Unlike a time, a memory figure is deterministic enough to assert: the same image, configuration
and requests allocate the same objects (the emulator's clock plays no part in what is
allocated; the request path allocates nothing, tests/core/alloc_*.py), and repeated runs gave
the same bytes. The assertion is the issue's limit, not a measured figure with a tolerance.
"""

import json
from pathlib import Path

from picotest import Master, image_pico, image_uf2, line_settings
import picoheap

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 48 * 1024


def test_heap_in_use_within_48_kib(tmp_path, tmp_path_factory):
    cfg = json.loads((ROOT / "bench" / "cabinet-pico.json").read_text())
    pico, ready = image_pico(tmp_path, image_uf2(tmp_path_factory), cfg)
    try:
        master = Master(pico, *line_settings(cfg))
        wrong = []

        def serve():
            for name, pdu, fc in picoheap.requests(cfg):
                answer = master.raw(pdu)
                if answer[0] != fc:
                    wrong.append("%s: %s" % (name, answer.hex()))

        try:
            fig = picoheap.measure(pico, serve, served=len(picoheap.requests(cfg)))
        finally:
            master.close()
    finally:
        pico.stop()
    assert not wrong, wrong
    assert master.sent == master.answered == fig.count == len(picoheap.requests(cfg)), (
        master.sent, master.answered, fig.count)
    assert fig.start <= LIMIT, "%d bytes in use where the loop starts (%s)" % (fig.start, ready)
    assert fig.served <= LIMIT, "%d bytes in use after %d requests (%s)" % (fig.served, fig.count, ready)
