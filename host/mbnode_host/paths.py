"""Where things are: the firmware and boards, the set-up cache, the unix port.

From a checkout (also `pip install -e .`): the checkout's firmware/, boards/, .cache/ (make
setup) and build/. Installed by `pip install .`: firmware/ and boards/ travel inside this package
as _firmware/ and _boards/ (pyproject.toml), the cache is $XDG_CACHE_HOME/mbnode (~/.cache/mbnode),
builds go to ./build, and the unix port and mpy-cross come from $MICROPYTHON and PATH.
"""

import os
import shutil
import subprocess
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _checkout():
    root = _HERE.parents[1]
    if (root / "pyproject.toml").is_file() and (root / "firmware" / "main.py").is_file() and (root / "boards").is_dir():
        return root
    return None


ROOT = _checkout()  # None when installed
if ROOT is not None:
    FIRMWARE = ROOT / "firmware"
    BOARDS = ROOT / "boards"
    CACHE = ROOT / ".cache"
    BUILD = ROOT / "build"
else:
    FIRMWARE = _HERE / "_firmware"
    BOARDS = _HERE / "_boards"
    CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mbnode"
    BUILD = Path("build")


class MissingTool(RuntimeError):
    pass


def _word_bits(binary):
    try:
        out = subprocess.run([binary, "-c", "import sys; print(sys.maxsize)"],
                             capture_output=True, text=True, timeout=10).stdout
        return 64 if int(out) > 2**32 else 32
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def micropython(bits=32):
    """Path of a MicroPython unix port of the given word size.

    The set-up's build (.cache/bin/micropython-32|64) first, then $MICROPYTHON, then
    `micropython` on PATH, each only if it really is a `bits`-bit build."""
    candidates = [CACHE / "bin" / ("micropython-%d" % bits)]
    for c in (os.environ.get("MICROPYTHON"), shutil.which("micropython")):
        if c:
            candidates.append(Path(c))
    for c in candidates:
        if c.exists() and _word_bits(str(c)) == bits:
            return str(c)
    raise MissingTool("no %d-bit MicroPython unix port found (looked at %s); run `make setup`"
                      % (bits, ", ".join(str(c) for c in candidates)))


def mpy_cross():
    for c in (CACHE / "bin" / "mpy-cross", shutil.which("mpy-cross")):
        if c and Path(c).exists():
            return str(c)
    raise MissingTool("mpy-cross not found; run `make setup`")


def micropython_src():
    """The MicroPython source tree `make setup` unpacked (Debian's +ds tree): its tools/ (e.g.
    manifestfile.py) and ports/ are read, never changed."""
    ready = CACHE / "src" / "ready"
    if ready.exists():
        parts = ready.read_text().split()
        if len(parts) == 2 and (Path(parts[1]) / "tools" / "manifestfile.py").exists():
            return Path(parts[1])
    raise MissingTool("no MicroPython source tree (%s names none); run `make setup`" % ready)
