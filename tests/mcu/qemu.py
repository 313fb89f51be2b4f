"""MicroPython's qemu port on an emulated Cortex-M0, Cortex-M3 or RV32 core, driven with mpremote.

The qemu port has a REPL on its UART and no filesystem, so files are put into a small RAM
filesystem mounted at /ram through the raw REPL (`mpremote run` of generated scripts, one per
file, in one mpremote session), and code runs with `mpremote exec`. A script must not end with
sys.exit(): SystemExit at the raw REPL soft-resets the board and the RAM filesystem is gone.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QEMU_DIR = ROOT / ".cache" / "mcu" / "qemu"

# board: (emulator, machine options, .mpy architecture, what it stands for)
BOARDS = {
    "MICROBIT": ("qemu-system-arm", ["-machine", "microbit", "-global", "nrf51-soc.flash-size=1048576",
                                     "-global", "nrf51-soc.sram-size=262144"], "armv6m", "Cortex-M0, the RP2040's ISA"),
    "MPS2_AN385": ("qemu-system-arm", ["-machine", "mps2-an385"], "armv7m", "Cortex-M3"),
    "VIRT_RV32": ("qemu-system-riscv32", ["-machine", "virt", "-bios", "none"], "rv32imc", "the ESP32-C3's ISA"),
}

# sys.implementation._mpy >> 10 on the device, by mpy-cross -march name (py/persistentcode.h)
ARCH_CODES = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6, "armv7emsp": 7,
              "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11}

_RAMFS = '''
import io, os, sys
class _RamFS:
    # Read-only files held in RAM: enough for import to find packages and load .mpy files.
    def __init__(self):
        self.files = {}
    def mount(self, readonly, mkfs):
        pass
    def umount(self):
        pass
    def stat(self, path):
        p = path.strip("/")
        if p in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[p]), 0, 0, 0)
        if p == "" or any(k.startswith(p + "/") for k in self.files):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)
    def open(self, path, mode):
        p = path.strip("/")
        if p not in self.files:
            raise OSError(2)
        return io.BytesIO(self.files[p])
ramfs = _RamFS()
os.mount(ramfs, "/ram")
sys.path.insert(0, "/ram")
'''


def mpremote():
    venv = ROOT / ".cache" / "venv" / "bin" / "mpremote"
    return str(venv) if venv.exists() else "mpremote"


def firmware(board):
    return QEMU_DIR / (board + ".elf")


class QemuBoard:
    """One qemu process running the board's MicroPython; its UART is a pty that mpremote opens."""

    def __init__(self, board, timeout=30):
        system, machine, self.arch, _ = BOARDS[board]
        self.board = board
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [system, *machine, "-nographic", "-monitor", "null", "-semihosting", "-serial", "pty",
             "-kernel", str(firmware(board))],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pty = self._wait_for_pty(timeout)

    def _wait_for_pty(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(rb"char device redirected to (/dev/pts/\d+)", self.log.read())
            if m:
                return m.group(1).decode()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        out = self.log.read().decode(errors="replace")
        self.stop()
        raise RuntimeError("%s: qemu gave no serial pty within %d s: %s" % (self.board, timeout, out[-500:]))

    def run(self, files, code, timeout=120):
        """Put files ({name: bytes}) into /ram, then exec code; returns (status, output)."""
        with tempfile.TemporaryDirectory(prefix="qemu-put-") as tmp:
            args = [mpremote(), "connect", self.pty]
            setup = Path(tmp) / "ramfs.py"
            setup.write_text(_RAMFS)
            args += ["run", str(setup)]
            for i, (name, data) in enumerate(sorted(files.items())):
                put = Path(tmp) / ("put%03d.py" % i)
                put.write_text("ramfs.files[%r] = %r\n" % (name, bytes(data)))
                args += ["+", "run", str(put)]
            args += ["+", "exec", code]
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def mpy_arch(data):
    """The native architecture code in a .mpy file's header (0: bytecode only)."""
    if data[:1] != b"M":
        raise ValueError("not a .mpy file")
    return data[2] >> 2


if __name__ == "__main__":  # python tests/mcu/qemu.py BOARD: a REPL-less smoke run
    with QemuBoard(sys.argv[1]) as q:
        print(q.run({}, "import sys; print(sys.implementation)"))
