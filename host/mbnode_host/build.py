"""`mbnode build`: the firmware of one board, compiled as it is deployed or frozen.

    bundle(board, out=None, arch=None) -> Bundle
        Writes build/<board>/ (or `out`):
          device/       what goes on the board's filesystem: mbnode/*.mpy and its subpackage's
                        mbnode/mqtt/*.mpy, the board's modules (board.mpy, ...) as .mpy,
                        main.py (a board runs /main.py only as source) and config.json, the
                        board's default configuration
          frozen/       manifest.py and the .py sources it names, paths relative to itself, so
                        the folder freezes mbnode into a MicroPython firmware wherever it lies
                        (make BOARD=... FROZEN_MANIFEST=<abs>/frozen/manifest.py); the board's
                        default configuration is frozen with it (board_config.py)
          package.json  mip's package of device/ without config.json, URLs relative to the
                        folder: `mpremote mip install --target / build/<board>/package.json`
                        (mip.py; the repository's own package.json files list the .py sources)
        Bundle: .path, .board (boards.BoardInfo), .arch, .device_files [(relative path, bytes)]
    compile_mpy(board, out, arch=None) -> Path
        Only the device files without config.json (what `mbnode sim --mpy` runs: board "unix",
        arch x86 or x64); `arch` overrides the board's, e.g. armv7m for a qemu Cortex-M3.

mpy-cross runs with the board's -march (boards/<name>/board.py MPY_ARCH) because fast.py and
crc.py hold viper code, and with each module's import name as its source name (source_name()). Board names: mbnode_host.boards.names(); an unknown name raises
ValueError listing them.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mbnode_host import boards, paths
from mbnode_host.clitools import UsageError

ARCHES = ("x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa", "xtensawin",
          "rv32imc")
UNIX_ARCH = {32: "x86", 64: "x64"}  # the unix port's .mpy architecture by word size


@dataclass
class Bundle:
    path: Path
    board: boards.BoardInfo
    arch: str
    device_files: list  # [(path relative to device/, bytes)], sorted

    @property
    def total(self):
        return sum(size for _, size in self.device_files)


def firmware_sources():
    """[(source path, name on the device without extension)] of the firmware package with its
    subpackages (mbnode/mqtt/...); main.py comes beside them as source."""
    pkg = paths.FIRMWARE / "mbnode"
    return [(p, "mbnode/" + p.relative_to(pkg).with_suffix("").as_posix()) for p in sorted(pkg.rglob("*.py"))]


def _sources(info):
    """[(source path, name on the device without extension)]: the firmware package, then the
    board's modules (BoardInfo.sources); the mip packages list the same (mip.py)."""
    return firmware_sources() + [(p, m) for p, m in info.sources]


def _clear(out, marks):
    """Remove a previous build at `out`; refuse a folder that holds anything else."""
    if out.exists():
        if any(out.iterdir()) and not any((out / m).exists() for m in marks):
            raise ValueError("output folder %s exists and is not an mbnode build: allowed a new or empty "
                             "folder, or an earlier build" % out)
        shutil.rmtree(out)


def source_name(name):
    """The source name mpy-cross writes into the .mpy of module `name` (its path on the device
    without extension, "mbnode/mqtt/bridge"): the name it is imported under ("mbnode.mqtt.bridge";
    a package's __init__ is the package, "mbnode"). Tracebacks show it (`File "mbnode.mqtt.bridge",
    line 12`), never this machine's path. The device interns every .mpy's source name; its import
    name is interned anyway, while a path ("mbnode/mqtt/bridge.py") is one more name per module:
    about 1 KB of heap over the firmware's modules when the .mpy files are loaded into RAM."""
    if name.endswith("/__init__"):
        name = name[:-9]
    return name.replace("/", ".")


_ELLIPSIS = 4  # MP_PERSISTENT_OBJ_ELLIPSIS, py/persistentcode.h: a constant object of one byte


def _uint(data, i):
    """The .mpy format's variable-length unsigned integer at data[i] -> (value, next index)."""
    v = 0
    while True:
        b = data[i]
        i += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, i


def pad_constants(data, word=4):
    """The .mpy `data` (bytes) as it should be loaded: with one unused constant object (an
    Ellipsis) added when it has none and its table of names would end on a heap block's end.

    MicroPython 1.25 (py/bc.h, mp_module_context_alloc_tables) allocates a module's name table
    and constant-object table as one block and points the constant table just past the names: in
    a module without constants that pointer is the block's end, and when the names fill whole GC
    blocks it is the first word of the next block, which the garbage collector then keeps alive,
    whatever it is (0.7 KB after the cabinet bench's requests in one case). The added constant is
    never referenced by the bytecode (it comes after every index the module uses); it costs one
    word. `word`: the pointer size of the port the .mpy is for. Returns data unchanged otherwise."""
    n_qstr, i = _uint(data, 4)  # after the header: 'M', version, features, small-int bits
    if data[i] != 0:  # n_obj, a one-byte 0 when there are none
        return data
    words = (n_qstr * 2 + word - 1) // word  # the names: 2-byte entries, rounded up to words
    if words % 4:  # a GC block is 4 words: the table does not end on a block's end
        return data
    j = i + 1
    for _ in range(n_qstr):  # skip the names: to the place of the first constant object
        n, j = _uint(data, j)
        if not n & 1:  # a name stored in the file (odd: a static qstr's number)
            j += (n >> 1) + 1  # its text and NUL
    return data[:i] + b"\x01" + data[i + 1:j] + bytes((_ELLIPSIS,)) + data[j:]


def compile_mpy(board, out, arch=None):
    info = boards.info(board)
    arch = arch or info.arch
    if arch not in ARCHES:
        raise UsageError("arch %r: allowed %s" % (arch, ", ".join(ARCHES)))
    out = Path(out)
    _clear(out, ("main.py", "mbnode"))
    (out / "mbnode").mkdir(parents=True)
    tool = paths.mpy_cross()
    for src, name in _sources(info):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        mpy = out / (name + ".mpy")
        subprocess.run([tool, "-march=" + arch, "-s", source_name(name), "-o", str(mpy), str(src)], check=True)
        mpy.write_bytes(pad_constants(mpy.read_bytes(), 8 if arch == "x64" else 4))
    shutil.copy(paths.FIRMWARE / "main.py", out / "main.py")
    return out


def config_text(cfg):
    """JSON with one key per line down to the second level, values below that inline."""
    lines = []
    for i, (key, value) in enumerate(cfg.items()):
        end = "," if i < len(cfg) - 1 else ""
        if isinstance(value, dict) and value:
            inner = ['    %s: %s' % (json.dumps(k), json.dumps(v)) for k, v in value.items()]
            lines.append("  %s: {\n%s\n  }%s" % (json.dumps(key), ",\n".join(inner), end))
        else:
            lines.append("  %s: %s%s" % (json.dumps(key), json.dumps(value), end))
    return "{\n" + "\n".join(lines) + "\n}\n"


def manifest_text(info, modules):
    base = "$(BOARD_DIR)/manifest.py" if info.micropython_board == "RPI_PICO_W" else "$(PORT_DIR)/boards/manifest.py"
    from mbnode import VERSION

    lines = [
        "# mbnode %s for board %s (MicroPython port %s, board %s), written by `mbnode build --board %s`."
        % (VERSION, info.name, info.port, info.micropython_board, info.name),
        "# Paths are relative to this file: this folder is all a frozen build needs.",
        "#   As the firmware's manifest:  make BOARD=%s FROZEN_MANIFEST=<absolute path of this file>"
        % info.micropython_board,
        "#     (the port's own manifest comes first: option `base`)",
        "#   From another manifest:       include(\"<this file>\", base=None, main=False)",
        "# main=True freezes main.py, which MicroPython then runs at boot in preference to /main.py;",
        "# the board's default configuration is frozen in board_config.py, /config.json overrides it.",
        "options.defaults(base=\"%s\", main=True)" % base,
        "metadata(description=\"mbnode Modbus RTU/TCP slave, board %s\", version=\"%s\")" % (info.name, VERSION),
        "if options.base:",
        "    include(options.base)",
        "package(\"mbnode\")",  # with its subpackages (mbnode/mqtt)
    ]
    lines += ["module(\"%s.py\")" % m for m in modules]
    lines += ["if options.main:", "    module(\"main.py\")"]
    return "\n".join(lines) + "\n"


def bundle(board, out=None, arch=None):
    from mbnode_host.boards import default_config

    info = boards.info(board)
    out = Path(out) if out is not None else paths.BUILD / board
    _clear(out, ("device", "frozen"))
    device = compile_mpy(board, out / "device", arch)
    cfg = default_config(board)
    (device / "config.json").write_text(config_text(cfg))
    frozen = out / "frozen"
    (frozen / "mbnode").mkdir(parents=True)
    modules = []
    for src, name in _sources(info):
        (frozen / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, frozen / (name + ".py"))
        if not name.startswith("mbnode/"):
            modules.append(name)
    shutil.copy(paths.FIRMWARE / "main.py", frozen / "main.py")
    (frozen / "manifest.py").write_text(manifest_text(info, modules))
    files = sorted((p.relative_to(device).as_posix(), p.stat().st_size) for p in device.rglob("*") if p.is_file())
    from mbnode_host import mip

    (out / "package.json").write_text(mip.built_text([name for name, _ in files], board))
    return Bundle(out, info, arch or info.arch, files)
