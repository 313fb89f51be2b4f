"""ESP32 and RP2 pin boards, run on the unix port with fake machine/network modules (the fake
UART models the rp2 driver: tests/fakes/machine.py)."""

import os
import subprocess

import pytest

from conftest import ROOT, micropython_or_fail
from mbnode_host.sim import free_port


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_pin_board_drives_and_samples_io(board):
    binary = micropython_or_fail(32)
    path = [".frozen", str(ROOT / "tests" / "fakes"), str(ROOT / "boards" / board), str(ROOT / "firmware")]
    out = subprocess.run([binary, "-X", "heapsize=256K", "board_pins.py", str(free_port("127.0.0.1")),
                          str(ROOT / "boards" / board / "config.json")],
                         cwd=ROOT / "tests" / "core", env=dict(os.environ, MICROPYPATH=":".join(path)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 0 failed" in out.stdout


@pytest.mark.parametrize("baud", [19200, 115200])
def test_rp2_uart_model_loses_no_request(baud):
    """tests/core/uart_line.py: the RP2 board's RTU slave behind the fake UART's model of the
    rp2 driver (bytes paced at the baud rate, delivered in groups by the FIFO interrupt):
    every function code at its largest quantity and 200 requests with idle pauses, none lost."""
    binary = micropython_or_fail(32)
    path = [".frozen", str(ROOT / "tests" / "fakes"), str(ROOT / "boards" / "rp2"), str(ROOT / "firmware")]
    out = subprocess.run([binary, "-X", "heapsize=256K", "uart_line.py", str(baud)], cwd=ROOT / "tests" / "core",
                         env=dict(os.environ, MICROPYPATH=":".join(path)), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 passed, 0 failed" in out.stdout, out.stdout
