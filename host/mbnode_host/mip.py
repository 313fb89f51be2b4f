"""mbnode as mip packages: the package.json files `mpremote mip install` reads, written from the
file lists `mbnode build` uses (build.firmware_sources, BoardInfo.sources), so there is one
definition of what a board runs.

In the repository (committed; `python -m mbnode_host.mip --write` rewrites them, a test checks
they match), .py sources, URLs relative to the file:
    package.json         the firmware: mbnode/ with its subpackage mbnode/mqtt/, and main.py
    boards/NAME.json     board NAME's modules: boards/NAME/*.py and the boards/common/ modules it
                         runs; umqtt.simple as a dependency when the board has Wi-Fi (the MQTT
                         bridge needs it)
Every URL lies below its package.json's folder: mip adds relative URLs to that folder, and a
path with "../" is not fetched by every mip. So the firmware and the boards are two packages,
installed together with --target / (the layout `mbnode deploy` makes; MicroPython runs /main.py
only):
    mpremote mip install --target / github:OWNER/mbnode github:OWNER/mbnode/boards/pico.json

In a build (`mbnode build`, not committed): build/BOARD/package.json, everything in device/ but
config.json, as the .mpy files mpy-cross made for the board's -march:
    mpremote mip install --target / build/pico/package.json

    committed() -> {path relative to the checkout: text}
    stale() -> [paths whose committed text differs from committed(), or that are missing]
    built_text(device_files, board) -> the text of build/BOARD/package.json
"""

import json
import sys

from mbnode import VERSION
from mbnode_host import boards, build, paths

# The package index names of what a Wi-Fi board's MQTT bridge imports (docs/mqtt.md).
MQTT_DEPS = [["umqtt.simple", "latest"]]


def package_text(urls, deps=()):
    """mip's package.json: {"urls": [[name on the device, URL]], "deps": [[package, version]],
    "version"}, one pair per line, in a fixed order so a regenerated file is byte-identical."""
    def pairs(items):
        if not items:
            return "[]"
        return "[\n" + ",\n".join("    " + json.dumps(list(p)) for p in items) + "\n  ]"

    return '{\n  "urls": %s,\n  "deps": %s,\n  "version": %s\n}\n' % (pairs(urls), pairs(list(deps)),
                                                                       json.dumps(VERSION))


def firmware_urls():
    """[(name on the device, URL relative to the checkout)] of the firmware package."""
    root = paths.FIRMWARE.parent
    out = [(name + ".py", src.relative_to(root).as_posix()) for src, name in build.firmware_sources()]
    return out + [("main.py", (paths.FIRMWARE / "main.py").relative_to(root).as_posix())]


def board_urls(name):
    """[(name on the device, URL relative to boards/)] of board `name`'s package."""
    return [(module + ".py", src.relative_to(paths.BOARDS).as_posix()) for src, module in boards.info(name).sources]


def board_deps(name):
    return MQTT_DEPS if boards.info(name).wifi else []


def committed():
    out = {"package.json": package_text(firmware_urls())}
    for name in boards.MCU_BOARDS:
        out["boards/%s.json" % name] = package_text(board_urls(name), board_deps(name))
    return out


def stale():
    root = paths.FIRMWARE.parent
    bad = []
    for rel, text in committed().items():
        p = root / rel
        if not p.is_file() or p.read_text() != text:
            bad.append(rel)
    return bad


def write():
    root = paths.FIRMWARE.parent
    for rel, text in committed().items():
        (root / rel).write_text(text)
    return sorted(committed())


def built_text(device_files, board):
    """build/BOARD/package.json: every file of device/ but config.json (a reinstall must not
    overwrite the configuration), URLs relative to build/BOARD/."""
    urls = [(name, "device/" + name) for name in device_files if name != "config.json"]
    return package_text(urls, board_deps(board))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if paths.ROOT is None:
        print("mbnode_host.mip: the package.json files live in a checkout; this is an installed copy", file=sys.stderr)
        return 1
    if argv == ["--write"]:
        for rel in write():
            print(rel)
        return 0
    if argv == ["--check"]:
        bad = stale()
        if bad:
            print("mbnode_host.mip: %s differ from the firmware's file lists: run python -m mbnode_host.mip --write"
                  % ", ".join(bad), file=sys.stderr)
            return 1
        return 0
    print("usage: python -m mbnode_host.mip --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
