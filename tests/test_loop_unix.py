"""The event loop on the unix port: a handler or timer that raises on every event or tick does
not make the loop spin, and the other connections are served (tests/core/loop_errors.py); a
handler that closes and opens connections mid-round, returning nothing, never gets a closed
connection's handler or a stale event called (tests/core/loop_changes.py)."""

import os
import subprocess

from conftest import ROOT, micropython_or_fail
from mbnode_host.sim import free_port


def test_a_handler_that_always_raises_does_not_spin_the_loop(bits):
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "firmware")]))
    out = subprocess.run([binary, "loop_errors.py", str(free_port("127.0.0.1"))], cwd=ROOT / "tests" / "core", env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed, 0 failed" in out.stdout, out.stdout
    errors = out.stdout.count("mbnode: error in event handler:")
    assert errors <= 12, "%d error lines: the loop kept calling a failing handler" % errors


def test_a_poll_set_changed_mid_round_is_polled_afresh(bits):
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "firmware")]))
    out = subprocess.run([binary, "loop_changes.py", str(free_port("127.0.0.1"))], cwd=ROOT / "tests" / "core",
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "28 passed, 0 failed" in out.stdout, out.stdout
    assert "error in event handler" not in out.stdout, out.stdout
