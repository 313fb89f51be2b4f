"""RTU framing under stress, with a raw client on the simulator's pty that sets the gaps between
bytes itself (Modbus over Serial Line V1.02 2.5.1.1: a silence over t1.5 inside a frame spoils
it, a silence of t3.5 ends it, and the reply follows at least t3.5 after the request).

A pty delivers bytes at once, so the only gaps the slave sees are the client's pauses. Slow
line settings make t1.5/t3.5 long compared with scheduling noise on a loaded machine: 300 baud
(t1.5 = 55 ms, t3.5 = 128 ms) for the gaps inside a frame, 1200 baud (t3.5 = 32 ms) for the
rest. Delays are measured from just before the client's last write, so they are never too
short; no upper bound is tighter than a second except where the minimum of several tries is
compared with t3.5 / 2.
"""

import random
import struct
import time

import pytest

from rtutest import RtuPort, adu, crc_ok, hx, t15, t35

SLOW = 300  # baud for the tests of gaps inside a frame
MEDIUM = 1200  # baud for the other timing tests


@pytest.fixture
def slow(rtu_pool):
    """RTU only (--no-tcp), 300 baud 8E1: t1.5 = 55 ms, t3.5 = 128.3 ms."""
    return rtu_pool(32, baud=SLOW, tcp=False)


@pytest.fixture
def medium(rtu_pool):
    """RTU only (--no-tcp), 1200 baud 8E1: t1.5 = 13.75 ms, t3.5 = 32.1 ms."""
    return rtu_pool(32, baud=MEDIUM, tcp=False)


def port(sim, baud):
    assert sim.serial == "%d-8E1" % baud, sim.ready
    assert "tcp" not in sim.fields, sim.ready
    return RtuPort(sim.rtu_path, baud, "E")


def clear_counters(p):
    assert p.diag(0x0A) == 0


def test_character_times():
    """The figures the tests below rely on (1 start + 8 data + parity + 1 stop = 11 bits)."""
    assert t15(SLOW) == pytest.approx(0.055)
    assert t35(SLOW) == pytest.approx(0.12833, rel=1e-3)
    assert t35(MEDIUM) == pytest.approx(0.03208, rel=1e-3)
    assert t35(9600, "N") == pytest.approx(3.5 * 11 / 9600)
    assert (t15(38400), t35(38400)) == (750e-6, 1750e-6)


# --- gaps inside a frame (300 baud) -----------------------------------------------------------


def client_gaps_ok(times, low, high):
    """The pauses the client really made between bytes all lie in [low, high): a sleep on a
    loaded machine can overshoot, and such a try tests nothing, so the caller tries again."""
    return all(low <= b - a < high for a, b in zip(times, times[1:]))


TRIES = 3


def test_single_bytes_with_short_gaps_answered(slow):
    """Every byte on its own with 3 ms pauses, far below t1.5 = 55 ms."""
    with port(slow, SLOW) as p:
        for req, expected in (("06 0120 0A0B", "06 0120 0A0B"), ("03 0120 0001", "03 02 0A0B")):
            frame = adu(1, hx(req))
            for _ in range(TRIES):
                p.wait_quiet()
                times = p.write_gapped(frame, 0.003)
                if client_gaps_ok(times, 0, p.t15 / 2):
                    break
                p.collect(3 * p.t35)  # overshot: the slave may rightly drop it; try again
            else:
                pytest.fail("the client could not keep its pauses under %.0f ms" % (p.t15 / 2 * 1000))
            resp, _ = p.read_frame(2.0, request=frame)
            assert resp == adu(1, hx(expected)), resp.hex()


def test_gap_over_t15_inside_a_frame_is_not_checked(slow):
    """A 90 ms pause (t1.5 55 ms < 90 ms < t3.5 128 ms) in the middle of a write request.
    Without a time stamp per byte the slave cannot tell such a pause from a late look at the
    port, so it does not check t1.5 (docs/rtu.md): the frame has the right length and CRC, and
    it is executed and answered; no communication error is counted."""
    assert slow.io_cmd("set ao 0x21 7") == "ok"
    with port(slow, SLOW) as p:
        frame = adu(1, hx("06 0021 0123"))
        for _ in range(TRIES):
            clear_counters(p)
            p.wait_quiet()
            times = p.write_gapped(frame, 0, gaps={4: 0.09})
            resp, _ = p.read_frame(2.0, request=frame)
            if times[4] - times[3] < p.t35 - 0.02:
                break
            p.collect(3 * p.t35)  # overshot to near t3.5: the slave may rightly split it
        else:
            pytest.fail("the client could not keep a 90 ms pause under %.0f ms" % ((p.t35 - 0.02) * 1000))
        assert resp == frame, resp.hex()
        assert slow.io_cmd("get ao 0x21") == "ok 291"
        assert p.diag(0x0C) == 0
        assert p.diag(0x0B) == 3, "the write, the 0C read and this one"


def test_gap_over_t35_splits_into_two_bad_frames(slow):
    """A 1 s pause is longer than t3.5 (128 ms here): the slave sees two fragments, each a bad frame.
    (1 s, not 400 ms: the slave must get the CPU during the pause to see it, which on a busy
    2-core machine a 400 ms pause did not always give it.)"""
    with port(slow, SLOW) as p:
        clear_counters(p)
        frame = adu(1, hx("06 0021 4321"))
        p.wait_quiet()
        p.write_gapped(frame, 0, gaps={3: 1.0})
        assert p.silent(3 * p.t35)
        assert p.diag(0x0C) == 2
        assert p.request(hx("03 0021 0001")) != hx("03 02 4321")


def extend_during_reply_wait(p, frame, before_try):
    """Send frame and, 5 ms later, one byte more, until that byte left well inside t3.5 (a busy
    host may be late); then assert that no reply came. before_try() runs before every try."""
    for _ in range(TRIES):
        before_try()
        p.wait_quiet()
        t_frame = p.write(frame)
        time.sleep(0.005)
        t_extra = p.write(b"\x00")
        got = p.collect(3 * p.t35)
        if t_extra - t_frame < p.t35 - 0.03:
            assert got == b"", "replied %s although the request went on" % got.hex()
            return
    pytest.fail("the client could not send the extra byte within %.0f ms" % ((p.t35 - 0.03) * 1000))


def test_input_during_reply_wait_cancels_the_reply(slow):
    """A byte 5 ms after a complete request, well inside t3.5 = 128 ms: the request was not
    over after all, so no reply goes out and the frame counts as a communication error."""
    with port(slow, SLOW) as p:
        extend_during_reply_wait(p, adu(1, hx("03 0000 0001")), lambda: clear_counters(p))
        assert p.diag(0x0C) == 1
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")


def test_request_spoilt_during_reply_wait_is_not_executed(slow):
    """Same as above with a write: a frame is over only once t3.5 of silence followed it
    (Modbus over Serial Line 2.5.1.1 and its reception state diagram, where a frame is
    checked and processed after t3.5), so one that went on must not be executed either."""
    def reset():
        assert slow.io_cmd("set ao 0x123 0") == "ok"

    with port(slow, SLOW) as p:
        frame = adu(1, hx("06 0123 0055"))
        extend_during_reply_wait(p, frame, reset)
        assert slow.io_cmd("get ao 0x123") == "ok 0", "%s + 00 was executed" % frame.hex()


# --- one frame after another (1200 baud) ------------------------------------------------------


def test_back_to_back_requests(medium):
    """Each request sent the moment the previous reply is in; none is lost, and no reply
    starts before t3.5 after its request."""
    with port(medium, MEDIUM) as p:
        clear_counters(p)
        delays = []
        for i in range(15):
            frame = adu(1, struct.pack(">BHH", 6, 0x30 + i % 3, i))
            resp, delay = p.request_frame(frame, wait=False)
            assert resp == frame, "request %d: %s -> %s" % (i, frame.hex(), resp.hex())
            delays.append(delay)
        resp, _ = p.request_frame(adu(1, hx("03 0030 0003")), wait=False)
        assert resp == adu(1, hx("03 06 000C 000D 000E"))
        assert min(delays) >= p.t35 - 0.0005, ["%.1f ms" % (d * 1000) for d in delays]
        assert p.diag(0x0C) == 0
        assert p.diag(0x0B) == 16 + 2, "the 16 requests, the 0C read and this one"


def test_reply_waits_t35(medium):
    with port(medium, MEDIUM) as p:
        for _ in range(5):
            resp, delay = p.request_frame(adu(1, hx("03 0000 0001")))
            assert resp[:3] == hx("01 03 02")
            assert delay >= p.t35 - 0.0005, "reply %.2f ms after the request, t3.5 = %.2f ms" % (
                delay * 1000, p.t35 * 1000)
            assert delay < 1.0


def test_reply_waits_1750_us_above_19200(rtu_pool):
    sim = rtu_pool(32, baud=38400)
    assert sim.serial == "38400-8E1"
    with RtuPort(sim.rtu_path, 38400, "E") as p:
        assert p.t35 == 1750e-6
        for _ in range(10):
            resp, delay = p.request_frame(adu(1, hx("03 0000 0001")))
            assert resp[:3] == hx("01 03 02")
            assert delay >= p.t35 - 0.0001, "reply %.3f ms after the request" % (delay * 1000)


def test_early_reply_comes_sooner(start_sim):
    sim = start_sim(rtu="pty", baud=MEDIUM, tcp=False, config={"rtu": {"early_reply": True}})
    with RtuPort(sim.rtu_path, MEDIUM, "E") as p:
        delays = []
        for _ in range(5):
            resp, delay = p.request_frame(adu(1, hx("03 0000 0001")))
            assert resp[:3] == hx("01 03 02")
            delays.append(delay)
    # The smallest of five: one quick turn of the loop shows the slave does not wait t3.5.
    assert min(delays) < p.t35 / 2, ["%.1f ms" % (d * 1000) for d in delays]


# --- noise ------------------------------------------------------------------------------------


def test_garbage_then_silence_then_frame(medium):
    rnd = random.Random(3)
    with port(medium, MEDIUM) as p:
        clear_counters(p)
        for size in (1, 3, 7, 20):
            garbage = bytes(rnd.getrandbits(8) for _ in range(size))
            assert not crc_ok(garbage)
            assert p.send_unanswered(garbage)
            assert p.request(hx("03 0000 0001"))[:2] == hx("03 02"), "after %d bytes of garbage" % size
        assert p.diag(0x0C) == 4


def test_noise_glued_to_the_front_of_a_frame(medium):
    """Bytes without the t3.5 silence before a frame: the slave finds the frame for it at the
    end of the burst (rtulink) and answers it, after the burst's silence."""
    with port(medium, MEDIUM) as p:
        frame = adu(1, hx("03 0000 0001"))
        resp, delay = p.request_frame(hx("55 AA 13") + frame)
        assert resp[:3] == hx("01 03 02"), resp.hex()
        assert delay >= p.t35 - 0.0005


def test_300_bytes_of_noise(medium):
    """A burst longer than any frame: dropped as an overrun (08/12); the slave keeps serving."""
    noise = bytes(random.Random(300).getrandbits(8) for _ in range(300))
    with port(medium, MEDIUM) as p:
        clear_counters(p)
        assert p.send_unanswered(noise)
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")
        counts = p.counters()
        assert counts[0x12] == 1, counts
        assert counts[0x0C] == 0, counts
        # Noise in pieces separated by silence: each piece is a bad frame.
        clear_counters(p)
        for i in range(5):
            piece = noise[i * 60:i * 60 + 60]
            assert not crc_ok(piece)
            assert p.send_unanswered(piece)
        assert p.diag(0x0C) == 5
        assert p.diag(0x12) == 0
        for i in range(5):
            assert p.request(struct.pack(">BHH", 6, 0x40, i)) == struct.pack(">BHH", 6, 0x40, i)


def test_still_serving(medium, slow):
    """Runs last: both shared simulators survived everything above."""
    for sim, baud in ((medium, MEDIUM), (slow, SLOW)):
        assert sim.proc.poll() is None
        with port(sim, baud) as p:
            assert p.request(hx("08 0000 CAFE")) == hx("08 0000 CAFE")
