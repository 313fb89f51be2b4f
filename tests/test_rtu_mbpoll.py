"""mbpoll over Modbus RTU: what only the serial line has. tests/test_mbpoll.py runs every
function code with mbpoll over both TCP and RTU; here: the exact frames libmodbus builds, the
largest read, and a slave address that is not on the line.
"""

import pytest

from rtutest import adu
from test_mbpoll import io, mbpoll, sent_frames, values


@pytest.fixture
def sim(rtu_pool):
    return rtu_pool(32)


def test_fc01_frame_as_libmodbus_builds_it(sim):
    io(sim, "set do 0x3c 1 0 1 1 0 1 0 0")
    r = mbpoll(sim, "-t", "0", "-r", 0x3C, "-c", 8, verbose=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x3C + i: v for i, v in enumerate([1, 0, 1, 1, 0, 1, 0, 0])}
    # The whole RTU frame, CRC included, as libmodbus built it.
    assert sent_frames(r) == [adu(1, bytes.fromhex("01003C0008"))]


def test_fc03_largest_read(sim):
    io(sim, "set ao 0x40 " + " ".join(str(i * 3) for i in range(125)))
    r = mbpoll(sim, "-t", "4", "-r", 0x40, "-c", 125)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0x40 + i: i * 3 for i in range(125)}


def test_other_slave_address_times_out(sim):
    """Slave 2 is not on this line: libmodbus gets no answer and says so; slave 1 still is."""
    r = mbpoll(sim, "-t", "4", "-r", 0, "-c", 1, address=2, timeout="0.3")
    assert values(r) == {}
    assert "timed out" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    r = mbpoll(sim, "-t", "4", "-r", 0, "-c", 1)
    assert r.returncode == 0, r.stdout + r.stderr

