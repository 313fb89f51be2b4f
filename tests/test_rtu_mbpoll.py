"""mbpoll (libmodbus-based master, Debian package) against the simulator over Modbus RTU on its
pty, as tests/test_mbpoll.py does over TCP. libmodbus opens the pty like a serial port (it
sets 19200 8E1 through termios, which a pty accepts and ignores) and times its own frames.

Every call passes -0 so reference numbers are PDU addresses, -1 to poll once, and -o 2 for a
two-second answer timeout. -v makes libmodbus print the request bytes, [01][03]..., which shows
the function code it used.
"""

import re
import subprocess

import pytest

from conftest import need_tool
from rtutest import adu
from test_mbpoll import Values, io, values


@pytest.fixture
def sim(rtu_pool):
    return rtu_pool(32)


def mbpoll(sim, *args, verbose=False, address=1, timeout="2"):
    exe = need_tool("mbpoll")
    argv = [exe, "-m", "rtu", "-b", "19200", "-P", "even", "-s", "1", "-a", str(address), "-0", "-1",
            "-o", timeout]
    if verbose:
        argv.append("-v")
    opts = [a for a in args if not isinstance(a, Values)]
    vals = [a for a in args if isinstance(a, Values)]
    argv += [str(a) for a in opts] + [sim.rtu_path]
    if vals:
        argv += ["--"] + [str(v) for v in vals[0]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def sent_frames(r):
    """The request frames libmodbus printed in verbose mode: [01][03][00][00]..."""
    frames = []
    for line in (r.stdout + r.stderr).splitlines():
        b = re.findall(r"\[([0-9A-Fa-f]{2})\]", line)
        if len(b) >= 4:
            frames.append(bytes(int(x, 16) for x in b))
    return frames


def sent_function_codes(r):
    return [f[1] for f in sent_frames(r)]


def test_fc01_read_coils(sim):
    io(sim, "set do 0x3c 1 0 1 1 0 1 0 0")
    r = mbpoll(sim, "-t", "0", "-r", 0x3C, "-c", 8, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x3C + i: v for i, v in enumerate([1, 0, 1, 1, 0, 1, 0, 0])}
    # The whole RTU frame, CRC included, as libmodbus built it.
    assert sent_frames(r) == [adu(1, bytes.fromhex("01003C0008"))]


def test_fc02_read_discrete_inputs(sim):
    io(sim, "set di 0x23b 0 1 1 0 1")
    r = mbpoll(sim, "-t", "1", "-r", 0x23B, "-c", 5, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x23B: 0, 0x23C: 1, 0x23D: 1, 0x23E: 0, 0x23F: 1}
    assert sent_function_codes(r) == [2]


def test_fc03_read_holding(sim):
    io(sim, "set ao 0x3e 1 1023 65535 7")
    r = mbpoll(sim, "-t", "4", "-r", 0x3E, "-c", 4, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x3E: 1, 0x3F: 1023, 0x40: 65535, 0x41: 7}
    assert sent_function_codes(r) == [3]
    r = mbpoll(sim, "-t", "4:hex", "-r", 0x40, "-c", 1)
    assert values(r) == {0x40: 0xFFFF}


def test_fc03_largest_read(sim):
    io(sim, "set ao 0x40 " + " ".join(str(i * 3) for i in range(125)))
    r = mbpoll(sim, "-t", "4", "-r", 0x40, "-c", 125)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x40 + i: i * 3 for i in range(125)}


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
    io(sim, "set mem 3 0x12345678")
    io(sim, "set mem 4 -5")
    r = mbpoll(sim, "-t", "4:int", "-r", 0x1004, "-c", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x1004: 0x12345678, 0x1006: -5}
    r = mbpoll(sim, "-t", "4:int", "-r", 0x1008, Values([-123456789]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert io(sim, "get mem 5") == [(-123456789) & 0xFFFFFFFF]


def test_other_slave_address_times_out(sim):
    """Slave 2 is not on this line: libmodbus gets no answer and says so; slave 1 still is."""
    r = mbpoll(sim, "-t", "4", "-r", 0, "-c", 1, address=2, timeout="0.3")
    assert values(r) == {}
    assert "timed out" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    r = mbpoll(sim, "-t", "4", "-r", 0, "-c", 1)
    assert r.returncode == 0, r.stdout + r.stderr

