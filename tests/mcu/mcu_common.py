"""What the emulated-MCU tests share: the tools `make setup-mcu` installs, found or reported."""

import shutil

from conftest import need


def need_mcu_tool(name):
    """Path of a program of the MCU set-up (qemu-system-*, node); skips locally, fails in CI."""
    path = shutil.which(name)
    need("%s (make setup-mcu installs it)" % name, path)
    return path
