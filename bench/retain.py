"""Retained memory and the custom register block: what they cost in heap, 32-bit unix port,
firmware as .mpy (`.cache/venv/bin/python bench/retain.py`, a few seconds).

Each configuration is the default one (TCP, full map, I/O control channel) plus the section(s)
named; the figure is the heap in use after start (`heap` on the I/O control channel:
gc.collect(), then gc.mem_alloc()), and the difference to the default configuration. Two
starts per configuration; their figures are printed both (they agree within a few bytes).
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import start_mbnode, table  # noqa: E402
from poller import io, kib  # noqa: E402


def configs(tmp):
    return [
        ("default", {}),
        ("retain: 100 positions", {"retain": {"positions": [[1, 100]], "file": tmp + "/r1.dat"}}),
        ("retain: all 1024 positions", {"retain": {"positions": [[1, 1024]], "file": tmp + "/r2.dat"}}),
        ("custom_block: 128 registers", {"custom_block": {"file": tmp + "/b1.dat"}}),
        ("custom_block: 3072 registers", {"custom_block": {"file": tmp + "/b2.dat", "count": 3072}}),
        ("retain 100 + custom_block 128", {"retain": {"positions": [[1, 100]], "file": tmp + "/r3.dat"},
                                           "custom_block": {"file": tmp + "/b3.dat"}}),
    ]


def main():
    rows = []
    base = None
    with tempfile.TemporaryDirectory(prefix="mbnode-retain-") as tmp:
        for name, cfg in configs(tmp):
            got = []
            for _ in range(2):
                srv = start_mbnode(32, heap="128K", mpy=True, config=cfg)
                try:
                    got.append(io(srv, "heap")[0])
                finally:
                    srv.stop()
            if base is None:
                base = got[0]
            rows.append([name, " / ".join(str(g) for g in got), "+" + kib(got[0] - base) if got[0] > base else "-"])
    table("Heap in use after start, 32-bit, .mpy", ["configuration", "bytes (two starts)", "over the default"], rows)


if __name__ == "__main__":
    main()
