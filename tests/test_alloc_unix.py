"""The whole TCP request path (loop, framing, engine) allocates nothing, proven with
micropython.heap_lock() on the unix port, for every data function code."""

import os
import subprocess

from conftest import ROOT, micropython_or_fail
from mbnode_host.sim import free_port


def test_tcp_path_is_allocation_free(bits):
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_tcp.py", str(free_port("127.0.0.1"))],
                         cwd=ROOT / "tests" / "core", env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "17 passed, 0 failed" in out.stdout
