"""The MCU pin boards, run on the unix port with fake machine/network modules (tests/fakes; the
fake UART models the rp2 driver)."""

import os
import subprocess

import pytest

from conftest import ROOT, micropython_or_fail
from mbnode_host import boards
from mbnode_host.sim import free_port


def board_env(board, *extra):
    """Environment that runs a script in tests/core with `board` as the board module."""
    path = [".frozen", str(ROOT / "tests" / "fakes"), str(ROOT / "tests" / "core"), str(boards.BOARDS / board),
            str(boards.BOARDS / "common"), str(ROOT / "firmware")] + [str(p) for p in extra]
    return dict(os.environ, MICROPYPATH=":".join(path))


def run_script(board, *args, extra_path=(), timeout=60):
    binary = micropython_or_fail(32)
    return subprocess.run([binary, "-X", "heapsize=256K"] + [str(a) for a in args], cwd=ROOT / "tests" / "core",
                          env=board_env(board, *extra_path), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_pin_board_drives_and_samples_io(board):
    out = run_script(board, "board_pins.py", free_port("127.0.0.1"))
    assert out.returncode == 0 and "1 passed, 0 failed" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("baud", [19200, 115200])
def test_rp2_uart_model_loses_no_request(baud):
    """tests/core/uart_line.py: the Pico board's RTU slave behind the fake UART's model of the
    rp2 driver (bytes paced at the baud rate, delivered in groups by the FIFO interrupt):
    every function code at its largest quantity and 200 requests with idle pauses, none lost."""
    out = run_script("pico", "uart_line.py", baud, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 passed, 0 failed" in out.stdout, out.stdout


def test_control_channel_sets_reach_the_output_subscribers():
    """The simulator's `set` of do/ao/mem tells the output subscribers as a master's write does
    (memory positions as their register addresses); inputs are the field's side: no call."""
    from mbnode.datamodel import COILS, HOLDING, DataModel

    with boards._BoardImport("unix") as board:
        model = DataModel()
        heard = []
        model.subscribe(lambda table, first, count: heard.append((table, first, count)))
        replies = [board.execute(model, line.encode()) for line in
                   ("set do 3 1 0 1", "set ao 0x41 7", "set mem 2 70000", "set di 0 1", "set ai 0 5", "get do 3 3",
                    "set do 0 2")]
        assert replies == ["ok", "ok", "ok", "ok", "ok", "ok 1 0 1", "err bit value 2: allowed 0 or 1"]
        assert heard == [(COILS, 3, 3), (HOLDING, 0x41, 1), (HOLDING, 0x1002, 2)]

        def broken(table, first, count):
            raise OSError(5)

        model.subscribe(broken)
        assert board.execute(model, b"set do 9 1").startswith("err the values are set, but an output subscriber failed")
        assert model.get_bit(COILS, 9) == 1 and heard[-1] == (COILS, 9, 1)


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_pin_board_io_modes(board):
    """tests/core/board_io.py: the io section's modes with PinIO as the field side (a counter fed
    by Pin.irq, invert, DO power-on and pulse on the pins, AO PWM frequency, scaled AI, the
    RP2040's temperature sensor)."""
    out = run_script(board, "board_io.py")
    assert out.returncode == 0 and "1 passed, 0 failed" in out.stdout, out.stdout + out.stderr
