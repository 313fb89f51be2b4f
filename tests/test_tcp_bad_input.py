"""Bad and awkward input over Modbus TCP. After every case a well-formed request on a new
connection must be answered correctly and the simulator must still be running.

Framing rules under test (firmware/mbnode/tcp.py): a protocol id other than 0 or a length field
outside 2..254 closes the connection without a reply; a frame may arrive in pieces or several
frames in one segment; a stalled or vanished peer must not hold up the others.
"""

import json
import random
import select
import signal
import socket
import struct
import time

import pytest

from mbtest import cli, closed_within, connect, fc03, mbap, read_adu, request, silent_for

SENTINEL_ADDR = 0x0120
SENTINEL = (0x1234, 0xBEEF)
EXPECTED = bytes([3, 4]) + struct.pack(">HH", *SENTINEL)


@pytest.fixture
def sim(sim_pool):
    s = sim_pool(32)
    if not getattr(s, "_sentinel_set", False):
        assert s.io_cmd("set ao %d %d %d" % ((SENTINEL_ADDR,) + SENTINEL)) == "ok"
        s._sentinel_set = True
    yield s
    # After each case: a new connection is answered correctly, the process lives.
    assert_served(s)


def assert_served(sim, timeout=2.0):
    assert sim.proc.poll() is None, "simulator exited with %r" % sim.proc.returncode
    t0 = time.monotonic()
    with connect(sim, timeout=timeout) as s:
        s.sendall(mbap(0x5A5A, 1, fc03(SENTINEL_ADDR, 2)))
        assert read_adu(s, timeout) == (0x5A5A, 1, EXPECTED)
    return time.monotonic() - t0


def rst_close(s):
    """Close with a reset instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# --- garbage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5, 6, 7, 12, 100, 259, 260, 261, 600, 1000])
def test_random_bytes(sim, size):
    rnd = random.Random(20240 + size)
    data = bytes(rnd.getrandbits(8) for _ in range(size))
    with connect(sim) as s:
        s.sendall(data)
        if size >= 6:
            length = (data[4] << 8) | data[5]
            if data[2:4] != b"\0\0" or not 2 <= length <= 254:
                assert closed_within(s, 1.0), "bad MBAP header %s not closed" % data[:6].hex()


def test_truncated_mbap_then_close(sim):
    with connect(sim) as s:
        s.sendall(b"\x00\x01\x00")


@pytest.mark.parametrize("length", [0, 1, 255, 300, 0xFFFF])
def test_length_field_out_of_range_closes(sim, length):
    with connect(sim) as s:
        s.sendall(mbap(7, 1, fc03(0, 1), length=length))
        assert closed_within(s, 1.0)


@pytest.mark.parametrize("proto", [5, 0x0100, 0xFFFF])
def test_protocol_id_not_zero_closes(sim, proto):
    with connect(sim) as s:
        s.sendall(mbap(7, 1, fc03(0, 1), proto=proto))
        assert closed_within(s, 1.0)


def test_good_frame_then_bad_header_in_one_send(sim):
    """Frames before a bad header in the same segment are answered, then the connection closes."""
    with connect(sim) as s:
        s.sendall(mbap(0x0A01, 1, fc03(SENTINEL_ADDR, 2)) + mbap(0x0A02, 1, fc03(0, 1), proto=1))
        assert read_adu(s) == (0x0A01, 1, EXPECTED)
        assert closed_within(s, 1.0)


def test_300_byte_frame_closes(sim):
    pdu = fc03(0, 1) + bytes(300 - 7 - 5)
    frame = mbap(9, 1, pdu)
    assert len(frame) == 300
    with connect(sim) as s:
        s.sendall(frame)
        assert closed_within(s, 1.0)


def test_largest_frame_is_answered(sim):
    """Length 254 (260-byte ADU, a 253-byte PDU) is legal framing; the engine answers 03."""
    with connect(sim) as s:
        pdu = fc03(0, 1) + bytes(253 - 5)
        assert len(mbap(1, 1, pdu)) == 260
        assert request(s, pdu, tid=0x0260) == b"\x83\x03"
        # A legal 253-byte PDU: FC16 with 123 registers is 252; FC23 read 1 write 121 is 252 too.
        pdu = bytes.fromhex("10 0040 007B F6".replace(" ", "")) + b"\x00\x01" * 123
        assert request(s, pdu, tid=2) == bytes.fromhex("10 0040 007B".replace(" ", ""))


def test_unsupported_function_0x41(sim):
    with connect(sim) as s:
        assert request(s, bytes.fromhex("4100000001"), tid=0x4141) == b"\xc1\x01"
        assert request(s, b"\x00", tid=2) == b"\x80\x01"
        assert request(s, b"\x7f", tid=3) == b"\xff\x01"
        assert request(s, b"\x83\x00\x00\x00\x01", tid=4) == b"\x83\x01"


def test_shortest_frames(sim):
    """Length 2: unit id and function code only. Every data function answers 03 (the length
    is checked before anything is read), an unknown function 01."""
    with connect(sim) as s:
        for tid, fc in enumerate((1, 2, 3, 4, 5, 6, 15, 16, 22, 23), 1):
            assert request(s, bytes([fc]), tid=tid) == bytes([fc | 0x80, 3]), "fc %d" % fc
        assert request(s, b"\x41", tid=99) == b"\xc1\x01"


# --- slow, stalled and vanishing peers ------------------------------------------------------


def test_length_lies_stall_then_resume(sim):
    """The header promises 10 bytes, only the 6-byte header arrives: no reply, no close; others
    are served meanwhile; when the rest arrives the frame is answered."""
    body = b"\x01" + fc03(0, 1) + b"\0\0\0\0"  # unit + 9-byte PDU: FC03 with a wrong length
    with connect(sim) as s:
        s.sendall(mbap(0x1010, 1, body[1:], length=10)[:6])
        assert silent_for(s, 0.3)
        assert assert_served(sim) < 0.5, "another client was held up by the stalled one"
        s.sendall(body)
        assert read_adu(s) == (0x1010, 1, b"\x83\x03")


def test_stall_mid_frame_does_not_block_others(sim):
    with connect(sim) as stalled:
        stalled.sendall(mbap(1, 1, fc03(0, 1))[:9])
        for _ in range(3):
            assert assert_served(sim) < 0.5
        assert silent_for(stalled, 0.1)
        stalled.sendall(mbap(1, 1, fc03(0, 1))[9:])
        assert read_adu(stalled)[0] == 1


def test_disconnect_mid_frame(sim):
    s = connect(sim)
    s.sendall(mbap(1, 1, fc03(0, 1))[:9])
    s.close()


def test_reset_mid_frame(sim):
    s = connect(sim)
    s.sendall(mbap(1, 1, fc03(0, 1))[:4])
    time.sleep(0.02)
    rst_close(s)


def test_half_close_still_answered(sim):
    """A peer that sends its request and shuts down its sending side still gets the answer."""
    with connect(sim) as s:
        s.sendall(mbap(0x0909, 1, fc03(SENTINEL_ADDR, 2)))
        s.shutdown(socket.SHUT_WR)
        assert read_adu(s) == (0x0909, 1, EXPECTED)
        assert closed_within(s, 1.0)


# --- segmentation ---------------------------------------------------------------------------


def test_frame_byte_by_byte(sim):
    frame = mbap(0x0B0B, 1, fc03(SENTINEL_ADDR, 2))
    with connect(sim, nodelay=True) as s:
        for i in range(len(frame)):
            s.sendall(frame[i:i + 1])
            time.sleep(0.01)
            if i < len(frame) - 1:
                s.settimeout(0.001)
                try:
                    early = s.recv(1)
                except socket.timeout:
                    early = None
                assert early is None, "reply before the frame was complete"
        assert read_adu(s) == (0x0B0B, 1, EXPECTED)


def test_split_across_frames(sim):
    """Segment boundaries that do not match frame boundaries: the end of one frame and the
    start of the next in one segment."""
    frames = b"".join(mbap(0x0C00 + i, 1, fc03(SENTINEL_ADDR, 2)) for i in range(3))
    cuts = [0, 5, 14, 20, 31, len(frames)]
    with connect(sim, nodelay=True) as s:
        for a, b in zip(cuts, cuts[1:]):
            s.sendall(frames[a:b])
            time.sleep(0.02)
        for i in range(3):
            assert read_adu(s) == (0x0C00 + i, 1, EXPECTED)


@pytest.mark.parametrize("n", [2, 3, 30])
def test_several_frames_in_one_send(sim, n):
    data = b"".join(mbap(0x0D00 + i, 1, fc03(SENTINEL_ADDR, 2)) for i in range(n))
    with connect(sim) as s:
        s.sendall(data)
        for i in range(n):
            assert read_adu(s) == (0x0D00 + i, 1, EXPECTED), "frame %d of %d" % (i, n)
        assert silent_for(s, 0.1)


def test_slow_reader_with_small_buffer_gets_every_answer(sim):
    # A client with a 4 KB receive buffer pipelines more answers than the socket buffers hold
    # and reads them a little late: it is given time, not dropped.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((sim.host, sim.port))
    try:
        count = 120
        s.sendall(b"".join(mbap(i, 1, fc03(0, 125)) for i in range(count)))
        time.sleep(0.05)
        for i in range(count):
            tid, _, pdu = read_adu(s)
            assert tid == i and pdu[:2] == b"\x03\xfa"
    finally:
        s.close()


def test_large_frames_back_to_back(sim):
    """Three 259-byte frames (FC16, 123 registers) in one send: more than one receive buffer."""
    pdu = bytes.fromhex("10 0041 007B F6".replace(" ", "")) + b"\xa5\x5a" * 123
    data = b"".join(mbap(0x0E00 + i, 1, pdu) for i in range(3)) + mbap(0x0E03, 1, fc03(0x41, 2))
    assert len(data) == 3 * 259 + 12
    with connect(sim) as s:
        s.sendall(data)
        for i in range(3):
            assert read_adu(s) == (0x0E00 + i, 1, bytes.fromhex("100041007B"))
        assert read_adu(s) == (0x0E03, 1, b"\x03\x04\xa5\x5a\xa5\x5a")


def test_pipelined_requests_all_answered(sim):
    """200 requests for 125 registers sent before reading any answer (52 KB of responses):
    a master that does read is not dropped, every answer arrives in order."""
    n = 200
    with connect(sim) as s:
        s.sendall(b"".join(mbap(i, 1, fc03(0, 125)) for i in range(n)))
        for i in range(n):
            tid, u, pdu = read_adu(s)
            assert (tid, u, pdu[:2], len(pdu)) == (i, 1, b"\x03\xfa", 252)


def test_peer_that_never_reads(sim):
    """A master that sends many requests and reads no answers: once an answer cannot leave, the
    slave reads no more of its requests (back-pressure), and 2 s later closes it (it has no
    memory to queue answers); others are served all along."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.connect((sim.host, sim.port))
    try:
        batch = mbap(1, 1, fc03(0, 125)) * 100  # 12 bytes in, 259 bytes out each
        s.settimeout(0.2)
        deadline = time.monotonic() + 10
        ended = False
        while time.monotonic() < deadline:
            try:
                s.sendall(batch)
            except socket.timeout:
                break  # our send side is full: the slave stopped reading us
            except (ConnectionResetError, BrokenPipeError):
                # On a busy machine our sending can outlast the slave's 2 s limit: it closed us.
                ended = True
                break
        else:
            raise AssertionError("the slave kept reading a peer that does not read")
        # Stay deaf: the connection must end (a FIN or a reset) without our reading a byte.
        watch = select.poll()
        watch.register(s, select.POLLRDHUP)
        t_end = time.monotonic() + 6
        while not ended and time.monotonic() < t_end:
            assert assert_served(sim) < 1.0
            ended = bool(watch.poll(100))
        assert ended, "slave kept a peer that never reads"
    finally:
        s.close()


# --- start-up and shutdown ------------------------------------------------------------------


@pytest.mark.parametrize("config, extra, key", [
    ({"tcp": {"max_clients": 0}}, [], "tcp.max_clients"),
    ({"tcp": {"idle_timeout": -1}}, [], "tcp.idle_timeout"),
    ({"channels": {"coils": [[0, 0x240]]}}, [], "channels.coils"),
    ({}, ["--unit", "248"], "unit_id"),
])
def test_config_error_exits_2(tmp_path, config, extra, key):
    from conftest import micropython_or_fail

    micropython_or_fail(32)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(config))
    r = cli("sim", "--config", f, "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", *extra)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "config" in r.stderr and key in r.stderr, r.stderr
    assert "ready" not in r.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0_and_closes(start_sim, sig):
    sim = start_sim()
    with connect(sim) as s:
        assert request(s, fc03(0, 1))[:2] == b"\x03\x02"
        sim.proc.send_signal(sig)
        sim.proc.wait(timeout=10)
        assert sim.proc.returncode == 0, sim.proc.stderr.read()
        assert closed_within(s, 1.0), "open connection not closed at exit"
    assert "Traceback" not in sim.proc.stderr.read()
    with pytest.raises(OSError):
        socket.create_connection((sim.host, sim.port), timeout=1).close()


def test_garbage_on_io_channel_keeps_firmware_serving(sim):
    """Undecodable bytes and bad commands on the I/O channel neither stop the firmware nor
    the channel."""
    with socket.create_connection(sim.io, timeout=3) as s:
        s.sendall(b"\xff\xfe\x00\nset di 99999 1\nget zz 0\n")
        time.sleep(0.3)
    assert sim.io_cmd("set di 3 1") == "ok"
    assert sim.io_cmd("get di 3") == "ok 1"
    assert sim.io_cmd("get di 0x240").startswith("err addresses 576..576 outside di 0..575")
    with connect(sim) as c:
        assert request(c, fc03(0, 1)) == b"\x03\x02\x00\x00"
