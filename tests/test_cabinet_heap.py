"""The cabinet module's heap with every part on (issue 12, section 6): at most 48 KiB in use
after serving requests of every kind, with the firmware's .mpy files run in place from a ROMFS
image (as on a board whose MicroPython has a ROMFS partition, `mpremote romfs deploy`), and with
the firmware frozen into the 32-bit unix port as a board image has it.

bench/cabinet_heap.py does the work: --romfs packs the .mpy files `mbnode build` makes into a
ROMFS image (mpremote's builder) and runs them on the 32-bit unix port built with
tools/unix-romfs.patch (`build-micropython.sh romfs`: the port's /rom mount given an image);
--frozen builds the port with `mbnode build --board unix`'s manifest. Either way it runs
bench/cabinet.json (TCP, the RTU slave on a pty, the MQTT bridge with 8 points on a mosquitto it
starts, fail-safe, 4 DI counters/latch/frequency, the system registers, the full map), sends
requests of every kind with independent clients (pymodbus over TCP, a CPython RTU master on the
pty, paho-mqtt), checks every answer, and reads gc.mem_alloc() after gc.collect() three times on
the control channel. Its exit status is 1 when any answer was wrong or missing.

The emulated Pico's figure (frozen, no network) is asserted by tests/mcu/test_pico_heap.py. The
.mpy files loaded into the heap (`mbnode deploy` onto stock MicroPython) take their bytecode into
RAM as well and miss the limit; the bench reports that figure and docs/benchmarks.md says why.

A memory figure is deterministic enough to assert (the same binary, configuration and requests
allocate the same objects; the bench's unix figures wobble by up to 150 bytes with the lengths
of a pty's name and a topic prefix); the assertion is the issue's limit, not a tolerance.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 48 * 1024


def _cabinet_heap(mode, label):
    """Run bench/cabinet_heap.py in mode (--frozen, --romfs); its bytes in use after requests of
    every kind, each answer checked by the bench (exit status 0)."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "cabinet_heap.py"), mode],
                       capture_output=True, text=True, timeout=850, cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    answered = re.search(r"requests answered: tcp (\d+), rtu (\d+), mqtt gateway (\d+), mqtt /set (\d+)", out)
    assert answered, out[-2000:]
    assert all(int(n) > 0 for n in answered.groups()), answered.group(0)
    m = re.search(r"firmware %s on micropython-32: (\d+) bytes in use" % label, out)
    assert m, out[-2000:]
    return int(m.group(1)), out


def test_frozen_cabinet_heap_within_48_kib():
    used, out = _cabinet_heap("--frozen", "frozen into the port")
    assert used <= LIMIT, "%d bytes in use, limit %d\n%s" % (used, LIMIT, out[-1500:])


def test_romfs_cabinet_heap_within_48_kib():
    # The .mpy files run in place from a ROMFS image (a board with a ROMFS partition,
    # `mpremote romfs deploy`); the bench builds the unix port that maps one (about 20 s once).
    used, out = _cabinet_heap("--romfs", "as .mpy in a ROMFS image")
    assert used <= LIMIT, "%d bytes in use, limit %d\n%s" % (used, LIMIT, out[-1500:])
