"""Compile the firmware to .mpy with mpy-cross, as it is deployed to a board."""

import shutil
import subprocess
from pathlib import Path

from mbnode_host import paths

# mpy-cross -march per target: needed because fast.py holds viper code (native machine code).
ARCH = {"esp32": "xtensawin", "esp32c3": "rv32imc", "rp2": "armv6m", "unix-64": "x64", "unix-32": "x86"}
BOARD_DIR = {"esp32": "esp32", "esp32c3": "esp32", "rp2": "rp2", "unix-64": "unix", "unix-32": "unix"}


def build(target, out):
    """Compile firmware/mbnode/*.py and the target's board modules (board.py and its helpers)
    into out/, next to main.py."""
    if target not in ARCH:
        raise ValueError("target %r: allowed %s" % (target, ", ".join(sorted(ARCH))))
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "mbnode").mkdir(parents=True)
    tool = paths.mpy_cross()
    sources = [(p, "mbnode/" + p.stem) for p in sorted((paths.FIRMWARE / "mbnode").glob("*.py"))]
    sources += [(p, p.stem) for p in sorted((paths.BOARDS / BOARD_DIR[target]).glob("*.py"))]
    for src, name in sources:
        # -s: tracebacks name the module as on the device, not this machine's path.
        subprocess.run([tool, "-march=" + ARCH[target], "-s", name + ".py", "-o", str(out / (name + ".mpy")), str(src)],
                       check=True)
    # main.py stays source: a board runs /main.py only as .py; it is two lines.
    shutil.copy(paths.FIRMWARE / "main.py", out / "main.py")
    return out
