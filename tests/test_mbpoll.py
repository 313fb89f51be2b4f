"""mbpoll (libmodbus-based master, Debian package) against the simulator, over Modbus TCP and
over Modbus RTU on the simulator's pty (libmodbus opens it like a serial port: it sets 19200 8E1
through termios, which a pty accepts and ignores, and times its own frames).

mbpoll numbers references from 1 unless -0 is given; every call here passes -0 so the numbers
are the PDU addresses. -v makes libmodbus print the frames, which shows the function code used.
"""

import re
import subprocess

import pytest

from conftest import need_tool


@pytest.fixture(params=["tcp", "rtu"])
def sim(request, sim_pool, rtu_pool):
    return sim_pool(32) if request.param == "tcp" else rtu_pool(32)


def mbpoll(sim, *args, verbose=False, address=1, timeout="2"):
    """Run mbpoll once against sim: over RTU when the simulator serves it, else over TCP."""
    exe = need_tool("mbpoll")
    if sim.rtu_path:
        argv = [exe, "-m", "rtu", "-b", "19200", "-P", "even", "-s", "1"]
        target = sim.rtu_path
    else:
        argv = [exe, "-m", "tcp", "-p", str(sim.port)]
        target = sim.host
    argv += ["-a", str(address), "-0", "-1", "-o", timeout]
    if verbose:
        argv.append("-v")
    # Options first, then the host, then values (after "--" so negative numbers are values).
    opts = [a for a in args if not isinstance(a, Values)]
    vals = [a for a in args if isinstance(a, Values)]
    argv += [str(a) for a in opts] + [target]
    if vals:
        argv += ["--"] + [str(v) for v in vals[0]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


class Values(list):
    """Values to write (kept apart from the options)."""


def values(r):
    """{reference: printed value} from mbpoll's `[ref]: value` lines."""
    out = {}
    for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", r.stdout, re.M):
        v = m.group(2)
        out[int(m.group(1))] = int(v, 16) if v.lower().startswith("0x") else int(v)
    return out


def sent_frames(r):
    """The request frames libmodbus printed in verbose mode: [tid][tid][00][00]... over TCP,
    [01][03]... (with the CRC) over RTU."""
    frames = []
    for line in (r.stdout + r.stderr).splitlines():
        b = re.findall(r"\[([0-9A-Fa-f]{2})\]", line)
        if len(b) >= 4:
            frames.append(bytes(int(x, 16) for x in b))
    return frames


def sent_function_codes(r):
    # MBAP frames carry the function code after the 7-byte header, RTU frames after the address.
    return [f[7] if len(f) >= 8 and f[2:4] == b"\0\0" and f[4:6] == bytes([0, len(f) - 6]) else f[1]
            for f in sent_frames(r)]


def io(sim, line):
    reply = sim.io_cmd(line)
    assert reply.startswith("ok"), reply
    return [int(v) for v in reply.split()[1:]]


def test_fc01_read_coils(sim):
    io(sim, "set do 0x3c 1 0 1 1 0 1 0 0")
    r = mbpoll(sim, "-t", "0", "-r", 0x3C, "-c", 8)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x3C + i: v for i, v in enumerate([1, 0, 1, 1, 0, 1, 0, 0])}


def test_fc02_read_discrete_inputs(sim):
    io(sim, "set di 0x23b 0 1 1 0 1")
    r = mbpoll(sim, "-t", "1", "-r", 0x23B, "-c", 5, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x23B: 0, 0x23C: 1, 0x23D: 1, 0x23E: 0, 0x23F: 1}
    assert sent_function_codes(r) == [2]


def test_fc03_read_holding(sim):
    io(sim, "set ao 0x3e 1 1023 65535 7")
    r = mbpoll(sim, "-t", "4", "-r", 0x3E, "-c", 4)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x3E: 1, 0x3F: 1023, 0x40: 65535, 0x41: 7}
    r = mbpoll(sim, "-t", "4:hex", "-r", 0x40, "-c", 1)
    assert values(r) == {0x40: 0xFFFF}


def test_fc04_read_input(sim):
    io(sim, "set ai 0x13e 1000 2000")
    r = mbpoll(sim, "-t", "3", "-r", 0x13E, "-c", 2, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x13E: 1000, 0x13F: 2000}
    assert sent_function_codes(r) == [4]


def test_read_absent_address_reports_exception(sim):
    r = mbpoll(sim, "-t", "4", "-r", 0x140, "-c", 1)
    assert values(r) == {}
    assert "illegal data address" in (r.stdout + r.stderr).lower()


def test_fc06_write_single_register(sim):
    io(sim, "set ao 0x50 0")
    r = mbpoll(sim, "-t", "4", "-r", 0x50, Values([4242]), verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sent_function_codes(r) == [6]
    assert io(sim, "get ao 0x50") == [4242]


def test_fc16_write_registers(sim):
    io(sim, "set ao 0x51 0 0 0")
    r = mbpoll(sim, "-t", "4", "-r", 0x51, Values([1, 65535, 300]), verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sent_function_codes(r) == [16]
    assert io(sim, "get ao 0x51 3") == [1, 65535, 300]


def test_onboard_ao_limit_seen_by_mbpoll(sim):
    io(sim, "set ao 0x3f 5")
    r = mbpoll(sim, "-t", "4", "-r", 0x3F, Values([1024]))
    assert "illegal data value" in (r.stdout + r.stderr).lower()
    assert io(sim, "get ao 0x3f") == [5]


def test_fc05_fc15_write_coils(sim):
    io(sim, "set do 0x200 0 0 0 0")
    r = mbpoll(sim, "-t", "0", "-r", 0x201, Values([1]), verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sent_function_codes(r) == [5]
    assert io(sim, "get do 0x200 4") == [0, 1, 0, 0]
    r = mbpoll(sim, "-t", "0", "-r", 0x200, Values([1, 0, 1, 1]), verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sent_function_codes(r) == [15]
    assert io(sim, "get do 0x200 4") == [1, 0, 1, 1]


def test_32_bit_int_lower_word_first(sim):
    io(sim, "set mem 3 0x12345678")  # position 3 = registers 0x1004 (low), 0x1005 (high)
    io(sim, "set mem 4 -5")
    # Without -B mbpoll expects the lower word first, as the firmware stores it.
    r = mbpoll(sim, "-t", "4:int", "-r", 0x1004, "-c", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x1004: 0x12345678, 0x1006: -5}
    r = mbpoll(sim, "-t", "3:int", "-r", 0x1004, "-c", 1)
    assert values(r) == {0x1004: 0x12345678}
    r = mbpoll(sim, "-t", "4:int", "-r", 0x1008, Values([-123456789]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert io(sim, "get mem 5") == [(-123456789) & 0xFFFFFFFF]
