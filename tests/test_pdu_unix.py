"""The shared PDU and RTU cases (tests/core/pdu_cases.py, pdu_guard_cases.py, rtu_cases.py) on the
MicroPython unix port, 32- and 64-bit: the same engine, CRC and frame-length source with the viper
emitter and MicroPython's integer sizes."""

import os
import re
import subprocess

import pytest

from conftest import ROOT, micropython_or_fail
import rtu_cases
import pdu_cases
import pdu_guard_cases


@pytest.mark.parametrize("script", ["pdu_cases", "pdu_guard_cases"])
def test_pdu_cases_on_unix_port(bits, script):
    cases = {"pdu_cases": pdu_cases, "pdu_guard_cases": pdu_guard_cases}[script].CASES
    micropython = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "firmware")]))
    r = subprocess.run([micropython, script + ".py"], cwd=str(ROOT / "tests" / "core"), env=env,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, "no summary line:\n" + out
    assert r.returncode == 0, out
    assert m.group(2) == "0", out
    assert int(m.group(1)) == len(cases), out
    assert "FAIL" not in r.stdout, out


def test_rtu_cases_on_unix_port(bits):
    micropython = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "firmware")]))
    r = subprocess.run([micropython, "rtu_cases.py"], cwd=str(ROOT / "tests" / "core"), env=env,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    checks, fails = rtu_cases.run()
    assert not fails and checks > 400, fails  # the same cases under CPython
    assert r.returncode == 0 and "FAIL" not in r.stdout, out
    assert r.stdout.splitlines()[-1] == "%d passed, 0 failed" % checks, out
