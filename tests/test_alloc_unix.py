"""The whole TCP and RTU request paths (loop, framing, engine, line diagnostics) allocate
nothing, proven with micropython.heap_lock() on the unix port, for every function code."""

import os
import pty
import subprocess
import tty

from conftest import ROOT, micropython_or_fail
from mbnode_host.sim import free_port


def test_tcp_path_is_allocation_free(bits):
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_tcp.py", str(free_port("127.0.0.1"))],
                         cwd=ROOT / "tests" / "core", env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "22 passed, 0 failed" in out.stdout


def test_rtu_path_is_allocation_free(bits):
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    firmware_end, client_end = pty.openpty()
    try:
        tty.setraw(client_end)
        os.set_blocking(firmware_end, False)
        out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_rtu.py", str(firmware_end),
                              os.ttyname(client_end)], cwd=ROOT / "tests" / "core", env=env, capture_output=True,
                             text=True, timeout=60, pass_fds=[firmware_end])
    finally:
        os.close(firmware_end)
        os.close(client_end)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "23 passed, 0 failed" in out.stdout


def test_gateway_path_is_allocation_free(bits):
    """The TCP-to-RTU gateway: TCP request in, RTU request out, the field device's answer (this
    script plays it on the pty's other end) back as the TCP answer; and the 0x0B of a timeout."""
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    firmware_end, device_end = pty.openpty()
    try:
        tty.setraw(device_end)
        os.set_blocking(firmware_end, False)
        out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_gateway.py", str(firmware_end),
                              os.ttyname(device_end), str(free_port("127.0.0.1"))], cwd=ROOT / "tests" / "core",
                             env=env, capture_output=True, text=True, timeout=60, pass_fds=[firmware_end])
    finally:
        os.close(firmware_end)
        os.close(device_end)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 passed, 0 failed" in out.stdout


def test_extension_paths_are_allocation_free(bits):
    """Extension modules: a poll cycle (FC02, FC04 split at 125 registers) with the answers landing
    in the map, write-throughs from a TCP client (FC16, FC15, FC05) answered when the module
    has, a module going offline (a poll without answer), its 0x0B for a read and a write, its
    return (outputs written, then inputs read) and a write-through without answer (0x0B). This
    script plays both modules on the pty's other end."""
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    firmware_end, device_end = pty.openpty()
    try:
        tty.setraw(device_end)
        os.set_blocking(firmware_end, False)
        out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_extension.py", str(firmware_end),
                              os.ttyname(device_end), str(free_port("127.0.0.1"))], cwd=ROOT / "tests" / "core",
                             env=env, capture_output=True, text=True, timeout=120, pass_fds=[firmware_end])
    finally:
        os.close(firmware_end)
        os.close(device_end)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "10 passed, 0 failed" in out.stdout


def test_poller_path_is_allocation_free(bits):
    """The poller's steady state: rounds to a Modbus TCP server and an RTU device (this script
    plays both), every data type landed in memory and local registers, alarms compared and
    acting (a write, an output), a unit that never answers."""
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    firmware_end, device_end = pty.openpty()
    try:
        tty.setraw(device_end)
        os.set_blocking(firmware_end, False)
        out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_poller.py", str(firmware_end),
                              os.ttyname(device_end), str(free_port("127.0.0.1"))], cwd=ROOT / "tests" / "core",
                             env=env, capture_output=True, text=True, timeout=60, pass_fds=[firmware_end])
    finally:
        os.close(firmware_end)
        os.close(device_end)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 passed, 0 failed" in out.stdout
