"""The three servers compared: (a) mbnode, (b) micropython-modbus 2.3.7, (c) pymodbus 3.x.

(a) and (b) run on the same MicroPython unix-port binary (32- or 64-bit); (c) on CPython (the
bench's interpreter). Each start_* returns a running common.Server with .port and .pid (the
server process itself, so /proc CPU is its own).
"""

import os
import sys

import fetch
from common import BENCH, Server, free_port, micropython, start_mbnode

MAX_SECONDS = 600  # servers end by themselves after this, should the bench be killed hard


def start_a(bits, heap="128K"):
    return start_mbnode(bits, heap=heap)


def start_b(bits, heap="1M"):
    port = free_port()
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(fetch.umodbus_dir()))
    argv = [micropython(bits), "-X", "heapsize=%s" % heap, str(BENCH / "umodbus_server.py"),
            str(port), str(MAX_SECONDS)]
    return Server("umodbus-%d" % bits, argv, env=env, port=port)


def start_c():
    port = free_port()
    argv = [sys.executable, str(BENCH / "pymodbus_server.py"), str(port), str(MAX_SECONDS)]
    return Server("pymodbus", argv, port=port)


class Target:
    """A named server to start; `busy_idle` ones (b polls without blocking) are SIGSTOPped while
    another target is measured so they do not steal a core."""

    def __init__(self, key, label, start, busy_idle=False):
        self.key = key
        self.label = label
        self.start = start
        self.busy_idle = busy_idle


def all_targets(bits_list=(32, 64)):
    out = []
    for bits in bits_list:
        out.append(Target("a%d" % bits, "a: mbnode %d-bit" % bits, lambda b=bits: start_a(b)))
        out.append(Target("b%d" % bits, "b: micropython-modbus %d-bit" % bits,
                          lambda b=bits: start_b(b), busy_idle=True))
    out.append(Target("c", "c: pymodbus %s CPython" % _pymodbus_version(), start_c))
    return out


def _pymodbus_version():
    try:
        import pymodbus

        return pymodbus.__version__
    except ImportError:
        return "?"
