"""The RTU master's rules (firmware/mbnode/rtumaster.py) on CPython, with a clock the test moves
and a port the test feeds: what goes on the line and when, which bytes are taken for an answer,
and how every transaction ends. The same master runs end to end in tests/test_tcp_gateway.py
and tests/test_mqtt_gateway.py; here each rule is driven to its edge where timing on a real
line could not be controlled.

Frames are built with tests/fakes/modbus_crc.py (a CRC written from the spec, not mbnode's).
"""

import sys

import pytest

from conftest import ROOT
from mbnode import rtumaster
from mbnode.transaction import BAD, FAILED, OK, SENT, TIMEOUT, Transaction

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402
from modbus_crc import crc16  # noqa: E402

BAUD = 19200  # 8N2: a character is 11 bits, 572 us; t3.5 = 2005 us
CHAR_US = 11 * 1000000 // BAUD
T35_US = 35 * 11 * 100000 // BAUD
LATENCY_US = 2000


def frame(*body):
    body = bytes(body)
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


class Clock(tcpfakes.Clock):
    """ticks_ms and ticks_us on one clock, in microseconds."""

    def __init__(self):
        super().__init__(10_000_000)

    def ticks_us(self):
        return self.now

    def ticks_ms(self):
        return self.now // 1000

    def ticks_add(self, a, b):
        return a + b

    def sleep_us(self, us):
        self.now += us

    def advance_ms(self, ms):
        self.now += ms * 1000


class Port:
    name = "fake"
    latency_us = LATENCY_US
    stream = 7

    def __init__(self):
        self.sent = []
        self.pending = b""
        self.fail = None

    def send(self, buf, n):
        if self.fail:
            raise OSError(self.fail)
        self.sent.append(bytes(buf[:n]))

    def readinto(self, buf, n):
        k = min(n, len(self.pending))
        buf[:k] = self.pending[:k]
        self.pending = self.pending[k:]
        return k


class Loop(tcpfakes.Loop):
    def remove_timer(self, timer):
        self.timers.remove(timer)


class Rig:
    def __init__(self, monkeypatch, queue=4):
        self.clock = Clock()
        monkeypatch.setattr(rtumaster, "time", self.clock)
        self.loop = Loop()
        self.port = Port()
        self.master = rtumaster.RtuMaster(self.loop, self.port, BAUD, "N", 2, queue=queue, turnaround_ms=100)
        self.ended = []

    def txn(self, unit, *pdu, timeout_ms=200):
        t = Transaction(self.done)
        t.unit = unit
        t.pdu[:len(pdu)] = bytes(pdu)
        t.n = len(pdu)
        t.timeout_ms = timeout_ms
        t.user = (unit,) + pdu
        return t

    def done(self, txn, status, buf, o, n):
        self.ended.append((txn.user, status, bytes(buf[o:o + n]) if status == OK else txn.why))

    def feed(self, data):
        """Bytes arrive on the line and the loop serves the port."""
        self.port.pending += data
        self.clock.now += len(data) * CHAR_US
        self.master.on_event(self.port.stream, 1)

    def run_ms(self, ms, step=1):
        """Time passes; the loop's timer fires when it is due."""
        end = self.clock.now + ms * 1000
        while self.clock.now < end:
            self.clock.now += step * 1000
            if self.master.due_in(self.clock.ticks_ms()) == 0:
                self.master.tick(self.clock.ticks_ms())


@pytest.fixture
def rig(monkeypatch):
    return Rig(monkeypatch)


def test_requests_go_out_one_at_a_time_in_order_each_after_t35_of_silence(rig):
    a, b = rig.txn(5, 3, 0, 1, 0, 1), rig.txn(6, 4, 0, 2, 0, 1)
    assert rig.master.submit(a) and rig.master.submit(b)
    assert rig.port.sent == [frame(5, 3, 0, 1, 0, 1)]  # the line was quiet: at once
    rig.run_ms(50)
    assert len(rig.port.sent) == 1  # b waits for a's answer
    rig.feed(frame(5, 3, 2, 0, 42))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([3, 2, 0, 42]))]
    sent_at = rig.clock.now
    while len(rig.port.sent) < 2:
        rig.run_ms(1, step=1)
        assert rig.clock.now - sent_at < 10_000
    assert rig.clock.now - sent_at >= T35_US  # t3.5 after the answer's last byte was seen
    assert rig.port.sent[1] == frame(6, 4, 0, 2, 0, 1)


def test_an_answer_in_pieces_is_taken_when_its_length_and_crc_are_in(rig):
    rig.master.submit(rig.txn(5, 3, 0, 0, 0, 2))
    answer = frame(5, 3, 4, 0, 1, 0, 2)
    for i in range(len(answer) - 1):
        rig.feed(answer[i:i + 1])
        assert rig.ended == []
    rig.feed(answer[-1:])
    assert rig.ended == [((5, 3, 0, 0, 0, 2), OK, bytes([3, 4, 0, 1, 0, 2]))]


@pytest.mark.parametrize("wrong, why", [
    (frame(9, 3, 2, 0, 42), "answer from unit 9"),
    (frame(5, 4, 2, 0, 42), "function 4 to function 3"),
    (frame(5, 3, 2, 0, 42)[:-1] + b"\0", "CRC error"),
])
def test_a_frame_that_is_not_the_answer_is_dropped_and_the_answer_still_taken(rig, wrong, why):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.feed(wrong)
    assert rig.ended == []
    rig.clock.now += T35_US + LATENCY_US + 1  # the pause that starts a new frame
    rig.feed(frame(5, 3, 2, 0, 7))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([3, 2, 0, 7]))]
    assert rig.master.malformed == 1


@pytest.mark.parametrize("before", [b"\x00\xff", b"\x05", frame(9, 3, 2, 0, 5), frame(5, 4, 2, 0, 5)])
def test_bytes_glued_to_the_front_of_the_answer_are_skipped(rig, before):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.feed(before + frame(5, 3, 2, 0, 7))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([3, 2, 0, 7]))]


def test_a_frame_cut_short_is_dropped_at_silence_and_the_answer_still_taken(rig):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.feed(frame(5, 3, 2, 0, 7)[:4])
    rig.run_ms(6)  # a look finds the line silent: the bytes are dropped
    assert rig.master.fill == 0 and rig.master._why() == "frame cut short"
    rig.feed(frame(5, 3, 2, 0, 8))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([3, 2, 0, 8]))]


def test_only_a_crc_error_ends_bad_at_the_timeout(rig):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.feed(frame(5, 3, 2, 0, 42)[:-1] + b"\0")
    rig.run_ms(250)
    assert rig.ended == [((5, 3, 0, 1, 0, 1), BAD, "CRC error")]


def test_an_exception_answer_is_an_answer(rig):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.feed(frame(5, 0x83, 2))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([0x83, 2]))]
    assert (rig.master.answers, rig.master.exceptions) == (1, 1)


def test_timeout_then_the_silent_unit_waits_for_its_late_answer_while_others_go(rig):
    slow = rig.txn(5, 3, 0, 1, 0, 1)
    again = rig.txn(5, 3, 0, 9, 0, 1)
    other = rig.txn(6, 3, 0, 1, 0, 1)
    rig.master.submit(slow)
    rig.run_ms(250)
    assert rig.ended == [((5, 3, 0, 1, 0, 1), TIMEOUT, None)]
    rig.master.submit(again)
    rig.master.submit(other)
    rig.run_ms(20)
    assert rig.port.sent[1:] == [frame(6, 3, 0, 1, 0, 1)]  # the other unit first
    rig.feed(frame(6, 3, 2, 0, 6))
    rig.run_ms(20)
    assert len(rig.port.sent) == 2  # unit 5 is still held: its late answer may come
    rig.feed(frame(5, 3, 2, 0, 99))  # there it is: stray, dropped
    assert rig.master.stray == 7
    rig.run_ms(20)
    assert rig.port.sent[2] == frame(5, 3, 0, 9, 0, 1)
    rig.feed(frame(5, 3, 2, 0, 9))
    assert rig.ended[-1] == ((5, 3, 0, 9, 0, 1), OK, bytes([3, 2, 0, 9]))


def test_the_hold_on_a_silent_unit_ends_after_one_more_timeout(rig):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.run_ms(250)
    rig.master.submit(rig.txn(5, 3, 0, 2, 0, 1))
    rig.run_ms(150)
    assert len(rig.port.sent) == 1
    rig.run_ms(100)
    assert rig.port.sent[1] == frame(5, 3, 0, 2, 0, 1)


def test_an_answer_arriving_at_the_timeout_is_let_finish(rig):
    rig.master.submit(rig.txn(5, 3, 0, 0, 0, 2))
    rig.run_ms(203)
    answer = frame(5, 3, 4, 0, 1, 0, 2)
    rig.feed(answer[:3])
    rig.run_ms(2)  # the deadline (timeout + the request's wire time) passes with the answer half in
    assert rig.master.late and rig.ended == []
    rig.feed(answer[3:])
    assert rig.ended == [((5, 3, 0, 0, 0, 2), OK, bytes([3, 4, 0, 1, 0, 2]))]


def test_bytes_nobody_asked_for_delay_the_next_request(rig):
    rig.feed(b"\x01\x02\x03")  # noise, or another master
    assert rig.master.stray == 3
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    assert rig.port.sent == []
    rig.run_ms(10)
    assert len(rig.port.sent) == 1


def test_queue_full_and_cancel(rig):
    txns = [rig.txn(5, 3, 0, i, 0, 1) for i in range(6)]
    assert rig.master.submit(txns[0])  # on the line
    assert all(rig.master.submit(t) for t in txns[1:5])  # the queue holds 4
    assert not rig.master.submit(txns[5])
    rig.master.cancel(txns[2])  # queued: taken out, never sent, never ended
    rig.master.cancel(txns[0])  # on the line: its answer is dropped
    rig.feed(frame(5, 3, 2, 0, 0))
    rig.run_ms(20)
    for t in (1, 3, 4):
        assert rig.port.sent[-1] == frame(5, 3, 0, t, 0, 1)
        rig.feed(frame(5, 3, 2, 0, t))
        rig.run_ms(20)
    assert [e[0][3] for e in rig.ended] == [1, 3, 4]
    assert len(rig.port.sent) == 4


def test_broadcast_is_not_awaited_and_holds_the_line_for_the_turnaround(rig):
    rig.master.submit(rig.txn(0, 6, 0, 4, 0, 99))
    rig.master.submit(rig.txn(5, 3, 0, 4, 0, 1))
    rig.run_ms(90)
    assert len(rig.port.sent) == 1 and rig.ended == []
    rig.run_ms(30)
    assert rig.ended == [((0, 6, 0, 4, 0, 99), SENT, None)]
    assert rig.port.sent[1] == frame(5, 3, 0, 4, 0, 1)
    assert rig.master.broadcasts == 1


def test_a_line_that_goes_away_ends_everything_failed(rig):
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    rig.master.submit(rig.txn(5, 3, 0, 2, 0, 1))
    rig.master.on_event(rig.port.stream, 0x10)  # POLLHUP
    assert [e[1] for e in rig.ended] == [FAILED, FAILED]
    assert "closed" in rig.ended[0][2]
    assert not rig.master.submit(rig.txn(5, 3, 0, 3, 0, 1))
    assert rig.port.stream not in rig.loop.handlers


def test_a_send_that_fails_ends_that_transaction_only(rig):
    rig.port.fail = 5  # EIO
    rig.master.submit(rig.txn(5, 3, 0, 1, 0, 1))
    assert rig.ended[0][1] == FAILED and "cannot send" in rig.ended[0][2]
    rig.port.fail = None
    rig.master.submit(rig.txn(5, 3, 0, 2, 0, 1))
    rig.run_ms(5)
    assert rig.port.sent == [frame(5, 3, 0, 2, 0, 1)]


def test_fc08_echo_is_found_by_the_request_length(rig):
    rig.master.submit(rig.txn(5, 8, 0, 0, 1, 2, 3, 4))
    rig.feed(frame(5, 8, 0, 0, 1, 2, 3, 4))
    assert rig.ended == [((5, 8, 0, 0, 1, 2, 3, 4), OK, bytes([8, 0, 0, 1, 2, 3, 4]))]


def test_a_held_line_ends_the_transaction_on_it_and_starts_no_other_until_let_go(rig):
    """hold() (a save to flash waiting, mbnode.retain): the answer on its way is still taken,
    busy() says when it is in, and nothing new goes out until hold(False)."""
    m = rig.master
    a, b, c = rig.txn(5, 3, 0, 1, 0, 1), rig.txn(6, 3, 0, 2, 0, 1), rig.txn(7, 3, 0, 3, 0, 1)
    assert m.submit(a) and m.submit(b)
    assert m.busy()
    m.hold(True)
    rig.feed(frame(5, 3, 2, 0, 42))
    assert rig.ended == [((5, 3, 0, 1, 0, 1), OK, bytes([3, 2, 0, 42]))]
    assert not m.busy()
    assert m.submit(c)  # queued while held
    rig.run_ms(500)  # far past t3.5 and any timeout: nothing goes out, nothing ends
    assert len(rig.port.sent) == 1 and len(rig.ended) == 1 and not m.busy()
    assert m.due_in(rig.clock.ticks_ms()) == -1  # a held line wants no timer
    m.hold(False)
    rig.run_ms(5)
    assert rig.port.sent[1:] == [frame(6, 3, 0, 2, 0, 1)] and m.busy()
    rig.feed(frame(6, 3, 2, 0, 7))
    rig.run_ms(5)
    assert rig.port.sent[2:] == [frame(7, 3, 0, 3, 0, 1)]  # the queue goes on in order
