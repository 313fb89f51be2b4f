"""The whole TCP and RTU request paths (loop, framing, engine, line diagnostics), the
TCP-to-RTU gateway, extension modules, the poller, the io modes, the system registers, write
protection, retained memory and the custom register block allocate nothing, proven with
micropython.heap_lock() on the unix port by the tests/core/alloc_*.py scripts."""

import os
import pty
import subprocess
import tty

from conftest import ROOT, micropython_or_fail
from mbnode_host.sim import free_port


def probe(bits, script, *args, line=False, port=False, timeout=60):
    """Run tests/core/<script> on the unix port; its output. line: it gets a pty pair (the
    firmware's end as fd:N, the other end's path) first; port: a free TCP port last."""
    binary = micropython_or_fail(bits)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    argv = [binary, "-X", "heapsize=256K", script] + list(args)
    fds = ()
    if line:
        firmware_end, other_end = pty.openpty()
        tty.setraw(other_end)
        os.set_blocking(firmware_end, False)
        argv += [str(firmware_end), os.ttyname(other_end)]
        fds = (firmware_end, other_end)
    if port:
        argv.append(str(free_port("127.0.0.1")))
    try:
        out = subprocess.run(argv, cwd=ROOT / "tests" / "core", env=env, capture_output=True, text=True,
                             timeout=timeout, pass_fds=fds[:1])
    finally:
        for fd in fds:
            os.close(fd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_tcp_path_is_allocation_free(bits):
    assert "22 passed, 0 failed" in probe(bits, "alloc_tcp.py", port=True)


def test_rtu_path_is_allocation_free(bits):
    assert "23 passed, 0 failed" in probe(bits, "alloc_rtu.py", line=True)


def test_gateway_path_is_allocation_free(bits):
    """The TCP-to-RTU gateway: TCP request in, RTU request out, the field device's answer (this
    script plays it on the pty's other end) back as the TCP answer; and the 0x0B of a timeout."""
    assert "7 passed, 0 failed" in probe(bits, "alloc_gateway.py", line=True, port=True)


def test_extension_paths_are_allocation_free(bits):
    """Extension modules: a poll cycle (FC02, FC04 split at 125 registers) with the answers landing
    in the map, write-throughs from a TCP client (FC16, FC15, FC05) answered when the module
    has, a module going offline (a poll without answer), its 0x0B for a read and a write, its
    return (outputs written, then inputs read) and a write-through without answer (0x0B). This
    script plays both modules on the pty's other end."""
    assert "10 passed, 0 failed" in probe(bits, "alloc_extension.py", line=True, port=True, timeout=120)


def test_poller_path_is_allocation_free(bits):
    """The poller's steady state: rounds to a Modbus TCP server and an RTU device (this script
    plays both), every data type landed in memory and local registers, alarms compared and
    acting (a write, an output), a unit that never answers."""
    assert "6 passed, 0 failed" in probe(bits, "alloc_poller.py", line=True, port=True)


def test_protected_writes_are_allocation_free(bits):
    """Write protection (mbnode.protect): writes refused (02) and let through at the ranges'
    edges, from a trusted TCP client (127.0.0.1) and another (bound to 127.0.0.2), a read of a
    protected range, and the Engine with the RTU and MQTT sources."""
    out = probe(bits, "alloc_protect.py", port=True)
    assert "sources at accept: TCP, TCP trusted" in out and out.splitlines()[0].endswith(" protect 5"), out
    assert "21 passed, 0 failed" in out, out


def test_system_registers_are_allocation_free(bits):
    """The status block (FC03, FC04) and the settings block (FC03/06/16/22/23, their exceptions),
    and the status block's timer tick (mbnode.sysregs, mbnode.settings)."""
    assert "14 passed, 0 failed" in probe(bits, "alloc_sysregs.py", port=True)


def test_retain_and_custom_block_paths_are_allocation_free(bits, tmp_path):
    # The custom register block's reads and writes (file seek, readinto, write in place, flush),
    # retained memory's dirty flag, and its timer and after-reply call between saves and while
    # a save waits for a busy master line (held).
    assert "13 passed, 0 failed" in probe(bits, "alloc_retain.py", str(tmp_path))


def test_io_mode_paths_are_allocation_free(bits):
    """The io section's modes (tests/core/alloc_io.py): the pin interrupt handler, the loop
    timer publishing counters, latches, frequencies, debounced and inverted levels, averaged and
    scaled AI, a pulse output falling back through the Engine, and a master's writes of the
    positions (reset, preset, latch cleared); the scaling's rounding and clamping."""
    assert "28 passed, 0 failed" in probe(bits, "alloc_io.py")
