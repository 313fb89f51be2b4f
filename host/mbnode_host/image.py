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
import shutil
import subprocess
import sys

from mbnode_host import paths, uf2

IMAGE_BOARDS = {"pico": "RPI_PICO"}


def _setup_mcu():
    return paths.ROOT / "tools" / "setup-mcu.sh"


def build_image(bundle):
    """Build the firmware image for a bundle (build.bundle's result); returns (bin path, uf2 path).
    Progress of the MicroPython build goes to stderr."""
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
    print("mbnode build: building MicroPython %s with mbnode frozen (log: %s) ..." % (IMAGE_BOARDS[board], log),
          file=sys.stderr)
    with open(log, "w") as f:
        r = subprocess.run(["bash", str(_setup_mcu()), "rp2-build", str(build_dir), str(manifest)],
                           stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ))
    if r.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError("the MicroPython build failed (full log %s):\n%s" % (log, "\n".join(tail)))
    image = (build_dir / "firmware.bin").read_bytes()
    name = "mbnode-%s" % board
    bin_path = bundle.path / (name + ".bin")
    uf2_path = bundle.path / (name + ".uf2")
    shutil.copy(build_dir / "firmware.bin", bin_path)
    uf2_path.write_bytes(uf2.from_bin(image))
    return bin_path, uf2_path
