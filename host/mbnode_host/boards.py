"""The boards of boards/<name>/ as the host tools see them: their facts (chip, MicroPython port,
.mpy architecture), the files a board runs, and its configuration rules, read from the board
modules themselves (they import nothing of `machine` at import time), so every fact has one home.

    names()                 every board name (boards/<name>/board.py), sorted
    info(name)              BoardInfo: name, port, micropython_board, chip, arch, wifi, keep_serving,
                            sources [(path, module name on the device)]
    rules(name)             (schema, defaults, check) for mbnode.config.validate, as the firmware
                            gets them from board.config_rules()
    default_config(name)    the board's default configuration as config.json holds it
"""

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mbnode_host import paths
from mbnode_host.clitools import UsageError

BOARDS = paths.BOARDS
COMMON = BOARDS / "common"
# The modules every pin board runs besides its own (boards/common); wifi.py only with a radio.
PIN_BOARD_MODULES = ("pinboard", "pinrules", "pinio", "rs485", "watchdog", "statusled")


def names():
    return sorted(p.parent.name for p in BOARDS.glob("*/board.py"))


MCU_BOARDS = [n for n in names() if n != "unix"]


@dataclass
class BoardInfo:
    name: str
    port: str
    micropython_board: str
    chip: str
    arch: str
    wifi: bool
    keep_serving: bool
    sources: list = field(default_factory=list)  # [(source path, module name on the device)]


def _check_name(name):
    if name not in names():
        raise UsageError("board %r: allowed %s" % (name, ", ".join(names())))


class _BoardImport:
    """Import boards/<name>/board.py (and what it imports from boards/) on CPython, then forget
    those modules again, so boards with the same module names can be read one after another."""

    def __init__(self, name):
        _check_name(name)
        self.dirs = [str(BOARDS / name), str(COMMON)]

    def __enter__(self):
        self.saved = list(sys.path)
        sys.path[:0] = self.dirs
        self._forget()
        spec = importlib.util.spec_from_file_location("board", Path(self.dirs[0]) / "board.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["board"] = module
        spec.loader.exec_module(module)
        return module

    def __exit__(self, *exc):
        sys.path[:] = self.saved
        self._forget()

    def _forget(self):
        for name, module in list(sys.modules.items()):
            f = getattr(module, "__file__", None) or ""
            if name == "board" or f.startswith(str(BOARDS) + "/"):
                del sys.modules[name]


def info(name):
    with _BoardImport(name) as b:
        bi = BoardInfo(name, b.PORT, b.MICROPYTHON_BOARD, b.CHIP, b.MPY_ARCH, b.WIFI, b.KEEP_SERVING)
    sources = [(p, p.stem) for p in sorted((BOARDS / name).glob("*.py"))]
    if bi.chip:
        common = list(PIN_BOARD_MODULES) + ["chip_" + bi.chip] + (["wifi"] if bi.wifi else [])
        sources += [(COMMON / (m + ".py"), m) for m in common]
    bi.sources = sources
    return bi


def rules(name):
    """(schema, defaults, check) of the board, from its own config_rules()."""
    with _BoardImport(name) as b:
        return b.config_rules()


def default_config(name):
    """The board's default configuration for its config.json: the board's DEFAULTS with the tcp,
    rtu and board sections written out in full (every key a user may edit, at its default), so the
    file validates to exactly what the board runs without one."""
    from mbnode import config

    schema, defaults, check = rules(name)
    defaults = defaults or {}
    out = {}
    for key in ("unit_id", "tcp", "rtu", "channels", "identity"):
        rule = config.SCHEMA[key]
        if key in ("tcp", "rtu"):
            out[key] = config.merge({k: r[0] for k, r in rule.items()}, defaults.get(key, {}))
        elif key in defaults:
            out[key] = defaults[key]
    out["board"] = config.merge({k: r[0] for k, r in schema.items()}, defaults.get("board", {}))
    return out
