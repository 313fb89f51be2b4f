"""micropython-modbus 2.3.7 from PyPI, fetched at bench time into .cache/bench/ (never committed).

PyPI has it only as an sdist without setup.py or pyproject.toml, so `pip download` fetches and
unpacks it and then fails when it tries to read its metadata. With TMPDIR pointed at our
directory and --no-clean the unpacked tree stays; we copy its umodbus/ package out of it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import WORK, mpy_cross

PACKAGE = "micropython-modbus==2.3.7"
DEST = WORK / "micropython-modbus-2.3.7"


def umodbus_dir():
    """Directory holding the `umodbus` package sources (downloads once)."""
    pkg = DEST / "umodbus"
    if (pkg / "tcp.py").exists():
        return DEST
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipdl-", dir=WORK) as tmp:
        env = dict(os.environ, TMPDIR=tmp, PIP_DISABLE_PIP_VERSION_CHECK="1")
        # Exit status is non-zero by design (no setup.py); success = the unpacked tree exists.
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-clean",
                            "--no-binary", ":all:", "-d", tmp, PACKAGE],
                           env=env, capture_output=True, text=True, timeout=180)
        found = sorted(Path(tmp).glob("pip-download-*/*/umodbus/tcp.py"))
        if not found:
            raise RuntimeError("could not fetch %s: %s" % (PACKAGE, (r.stdout + r.stderr)[-600:]))
        if DEST.exists():
            shutil.rmtree(DEST)
        shutil.copytree(found[0].parent, pkg)
    return DEST


def umodbus_mpy(bits):
    """umodbus compiled to .mpy with the bench's mpy-cross (plain bytecode: no -march needed)."""
    out = WORK / ("umodbus-mpy-%d" % bits)
    src = umodbus_dir() / "umodbus"
    if out.exists():
        shutil.rmtree(out)
    (out / "umodbus").mkdir(parents=True)
    for py in sorted(src.glob("*.py")):
        subprocess.run([mpy_cross(), "-o", str(out / "umodbus" / (py.stem + ".mpy")), str(py)],
                       check=True, timeout=60)
    return out
