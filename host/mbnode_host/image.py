"""`mbnode build --board pico --image`: a complete MicroPython firmware with mbnode frozen in.

The rp2 port of the MicroPython tree that `make setup-mcu` prepares (.cache/mcu/micropython, the
same Debian 1.25 source as the unix port, with pico-sdk and tinyusb) is built with a manifest
that includes the plain firmware's (tools/mcu/rp2-manifest.py) and the bundle's frozen/manifest.py,
main.py included: the board boots into mbnode with its default configuration (frozen in
board_config.py) and nothing on its filesystem; a /config.json there overrides the defaults.
Frozen bytecode runs from flash, so the heap holds only what mbnode allocates at run time.

Only the Pico can be built here: a Pico W image needs the CYW43 driver and lwIP, and ESP32
images ESP-IDF, none of which this machine's sources carry. Their bundles' frozen/manifest.py
is for users who build MicroPython themselves.
"""

import hashlib
import os
import re
import shutil
import subprocess

from mbnode_host import clitools, paths, uf2

IMAGE_BOARDS = {"pico": "RPI_PICO"}


def _setup_mcu():
    return paths.ROOT / "tools" / "setup-mcu.sh"


MAKE_PERCENT = re.compile(rb"^\[ *(\d+)%\]")  # CMake's makefiles: "[ 45%] Building C object ..."


def follow_build(stream, log, progress):
    """Copy the build's output to `log`, showing its percentages: a bar on a terminal, and a
    line at every 10 % step (when progress lines are shown off a terminal)."""
    step = -1
    for raw in stream:
        log.write(raw.decode(errors="replace"))
        m = MAKE_PERCENT.match(raw)
        if not m:
            continue
        pct = min(100, int(m.group(1)))
        progress.bar(pct, 100, "building MicroPython")
        if not progress.tty and pct // 10 > step:
            step = pct // 10
            progress.event("building MicroPython: %d%%" % pct)
    log.flush()


def build_image(bundle, progress=None):
    """Build the firmware image for a bundle (build.bundle's result); returns (bin path, uf2 path).
    Progress of the MicroPython build goes to `progress` (clitools.Progress): a bar from make's
    percentages on a terminal, a line per 10 % otherwise."""
    board = bundle.board.name
    if board not in IMAGE_BOARDS:
        raise ValueError("--image: allowed for board %s only (the firmware of board %s needs a MicroPython build "
                         "this machine cannot make; %s freezes mbnode into your own)"
                         % (", ".join(IMAGE_BOARDS), board, bundle.path / "frozen" / "manifest.py"))
    tree = paths.CACHE / "mcu" / "micropython"
    if not (tree / ".mbnode-tree").exists():
        raise paths.MissingTool("the MicroPython rp2 tree is not prepared: run `make setup-mcu` first")
    manifest = bundle.path / "image-manifest.py"
    manifest.write_text(
        "# The firmware of `mbnode build --board %s --image`: the plain rp2 firmware's frozen modules,\n"
        "# then mbnode with main.py and the board's default configuration.\n"
        "include(%r)\n"
        "include(%r, base=None, main=True)\n"
        % (board, str(paths.ROOT / "tools" / "mcu" / "rp2-manifest.py"), str(bundle.path / "frozen" / "manifest.py")))
    # One build folder per checkout (worktrees may share .cache/mcu): its CMake cache names this
    # manifest, and a rebuild is incremental.
    tag = hashlib.sha256(str(paths.ROOT).encode()).hexdigest()[:8]
    build_dir = paths.CACHE / "mcu" / ("image-%s-%s" % (board, tag))
    log = paths.CACHE / "logs" / ("image-%s.log" % board)
    log.parent.mkdir(parents=True, exist_ok=True)
    progress = progress or clitools.Progress()
    progress.event("mbnode build: building MicroPython %s with mbnode frozen (log: %s) ..." % (IMAGE_BOARDS[board], log))
    with open(log, "w") as f:
        proc = subprocess.Popen(["bash", str(_setup_mcu()), "rp2-build", str(build_dir), str(manifest)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
        follow_build(proc.stdout, f, progress)
        code = proc.wait()
    progress.clear()
    if code:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
        errors = [x for x in lines if "error" in x.lower()]
        said = (errors or lines or ["no output"])[-1]
        raise RuntimeError("the MicroPython build failed: %s (full log %s)" % (said, log))
    image = (build_dir / "firmware.bin").read_bytes()
    name = "mbnode-%s" % board
    bin_path = bundle.path / (name + ".bin")
    uf2_path = bundle.path / (name + ".uf2")
    shutil.copy(build_dir / "firmware.bin", bin_path)
    uf2_path.write_bytes(uf2.from_bin(image))
    return bin_path, uf2_path
