"""The protocol core as .mpy files for the MCU instruction sets, run by MicroPython's qemu port.

`mbnode build` compiles the firmware for a board's architecture (armv6m for the Pico, rv32imc for
the ESP32-C3, and armv7m); the core modules are loaded from those .mpy files on an emulated
Cortex-M0 (MICROBIT), Cortex-M3 (MPS2_AN385) and RV32 (VIRT_RV32) core, and the shared cases of
tests/core (PDU engine, CRC, request lengths) must give the same answers as on x86. fast.py and
crc.py are viper code, so this is native ARM/RISC-V machine code, not just bytecode.
"""

import subprocess
import sys

import pytest

from conftest import ROOT, need
from mcu_common import need_mcu_tool
from qemu import ARCH_CODES, BOARDS, QemuBoard, firmware, mpy_arch

import pdu_cases
import pdu_guard_cases
import rtu_cases

# What the cases import, as built by `mbnode build`.
CORE = ["__init__", "datamodel", "memory32", "typenames", "pdu", "devid", "devidbuild", "fast", "crc", "rtu", "diag", "protect"]
CASE_SCRIPTS = ["pdu_run.py", "pdu_cases.py", "pdu_guard_cases.py", "rtu_cases.py"]

# What a board reports in sys.implementation._mpy where it is not the arch of the files it runs:
# MicroPython names every Thumb-2 build without an FPU armv7em, and loads armv7m code on it.
DEVICE_ARCH = {"MPS2_AN385": "armv7em"}

# qemu board -> the `mbnode build` arguments whose .mpy files it runs
BUILDS = {
    "MICROBIT": ["--board", "pico"],
    "MPS2_AN385": ["--board", "pico", "--arch", "armv7m"],  # the core as an RP2350 (armv7m) would run it,
    "VIRT_RV32": ["--board", "esp32-c3"],
}


@pytest.fixture(scope="module", params=sorted(BOARDS))
def board(request):
    system = BOARDS[request.param][0]
    need_mcu_tool(system)
    need("%s (make setup-mcu builds it)" % firmware(request.param), firmware(request.param).exists())
    return request.param


def build(args, out):
    r = subprocess.run([sys.executable, "-m", "mbnode_host.cli", "build", *args, "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_core_cases_on_mcu_isa(board, tmp_path):
    arch = BOARDS[board][2]
    out = build(BUILDS[board], tmp_path / "bundle")
    files = {}
    for name in CORE:
        data = (out / "device" / "mbnode" / (name + ".mpy")).read_bytes()
        files["mbnode/%s.mpy" % name] = data
    # The viper modules carry native code for this architecture.
    for name in ("fast", "crc"):
        assert mpy_arch(files["mbnode/%s.mpy" % name]) == ARCH_CODES[arch], name
    # The case scripts go as .mpy too (bytecode, as any module on a board): compiled on the
    # device from source, with their text in the RAM filesystem beside them, they left the
    # smallest of these heaps without a piece for the data model's 5 KB register buffer.
    from mbnode_host import paths

    for script in CASE_SCRIPTS:
        mpy = tmp_path / script.replace(".py", ".mpy")
        r = subprocess.run([str(paths.mpy_cross()), "-o", str(mpy), "-s", script,
                            str(ROOT / "tests" / "core" / script)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        files[mpy.name] = mpy.read_bytes()
    # One case script at a time: the PDU cases' tables are dropped before the RTU cases' load.
    code = ("import gc, sys, mbnode.fast, pdu_cases\n"
            "print('arch', sys.implementation._mpy >> 10)\n"
            "print('fast from', mbnode.fast.__file__)\n"
            "pdu_cases.main()\n"
            "del sys.modules['pdu_cases'], pdu_cases\n"
            "gc.collect()\n"
            "import pdu_guard_cases\n"
            "pdu_guard_cases.main()\n"
            "del sys.modules['pdu_guard_cases'], pdu_guard_cases\n"
            "gc.collect()\n"
            "import rtu_cases\n"
            "rtu_cases.main()\n")
    with QemuBoard(board) as q:
        status, output = q.run(files, code)
    assert status == 0, output
    assert "arch %d" % ARCH_CODES[DEVICE_ARCH.get(board, arch)] in output, output
    assert "fast from /ram/mbnode/fast.mpy" in output, output
    summaries = [line for line in output.splitlines() if line.endswith(" failed")]
    checks, _ = rtu_cases.run()
    assert summaries == ["%d passed, 0 failed" % len(pdu_cases.CASES), "%d passed, 0 failed" % len(pdu_guard_cases.CASES),
                         "%d passed, 0 failed" % checks], output
    assert "FAIL" not in output, output
