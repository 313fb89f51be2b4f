"""The RTU framing rules under mutated frames (CPython; the same source the boards run).

Invariants:
- rtu.request_length never raises and only grows more certain as bytes come: once it names a
  length for a prefix, every longer prefix gets the same length;
- rtu.response_length never raises, settles the same way, and says at every prefix what the
  oracle of tests/test_rtu_core.py (a walk over the spec's response tables) says; the slave's
  every reply ends where it says;
- for a whole frame with a correct CRC, RtuServer.serve answers only frames for its own address
  that are not broadcasts (a broadcast, another unit's frame, or listen-only mode: no reply),
  every reply carries our address and a correct CRC, and its PDU is the one the PDU engine gives
  over TCP for the same request (the serial-line functions 07/08/11/12 aside: LineDiagnostics);
- a broadcast changes the data model only through a write, and another unit's frame never;
- the bus message counter counts every correct frame, whatever its address.
"""

import random
import struct

from hypothesis import example, given
from hypothesis import strategies as st

import fuzzing
import pdu_cases
from mbnode.crc import crc16
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.diag import LineDiagnostics
from mbnode.pdu import Engine
from mbnode.rtu import MORE, UNKNOWN, RtuServer, changes_state, request_length, response_length
from test_fuzz_pdu import REQUESTS
from test_rtu_core import spec_response_length

PROPERTY = fuzzing.per_target(4)  # this target's properties share `make fuzz`'s inputs

UNIT = 17
SERIAL_LINE = (7, 11, 12)


def frame(addr, pdu):
    body = bytes([addr]) + bytes(pdu)
    c = crc16(body, 0, len(body))
    return body + struct.pack("<H", c)


@PROPERTY
@given(st.binary(min_size=0, max_size=300))
def test_request_length_settles_and_never_raises(data):
    settled = None
    for n in range(len(data) + 1):
        got = request_length(data, 0, n)
        assert got in (MORE, UNKNOWN) or got >= 4, (data[:n].hex(), got)
        if settled is not None:
            assert got == settled, "length %d for %d bytes, %d before" % (got, n, settled)
        elif got != MORE:
            settled = got


RESPONSE_FCS = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43]


@st.composite
def responses(draw):
    """Bytes as a master may read them: anything; a function code the slave answers (or its
    exception, or none) and anything after it; an FC43/14 answer with small objects, maybe cut
    short or followed by more."""
    kind = draw(st.sampled_from(["bytes", "fc", "devid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "fc":
        fc = draw(st.one_of(st.sampled_from(RESPONSE_FCS), st.sampled_from(RESPONSE_FCS).map(lambda c: c | 0x80),
                            st.integers(0, 255)))
        return bytes([UNIT, fc]) + draw(st.binary(max_size=300))
    objects = draw(st.lists(st.binary(max_size=20), max_size=8))
    data = bytes([UNIT, 0x2B, 0x0E, draw(st.integers(1, 4)), 0x81, 0, 0, len(objects)])
    for i, value in enumerate(objects):
        data += bytes([i, len(value)]) + value
    data += draw(st.binary(min_size=2, max_size=2))
    return data[:draw(st.integers(0, len(data)))] + draw(st.binary(max_size=8))


@PROPERTY
@given(data=responses(), req_len=st.sampled_from([0, 0, 6, 8, 12, 256]))
def test_response_length_settles_and_agrees_with_the_spec(data, req_len):
    buf = bytearray(data) + bytearray(b"\xee" * 8)  # bytes beyond those received do not count
    settled = None
    for n in range(len(data) + 1):
        got = response_length(buf, 0, n, req_len)
        assert got == spec_response_length(data[:n], req_len), (data[:n].hex(), req_len, got)
        assert got in (MORE, UNKNOWN) or got >= 5, (data[:n].hex(), got)
        if settled is not None:
            assert got == settled, "length %d for %d bytes, %d before" % (got, n, settled)
        elif got != MORE:
            settled = got


def line():
    model = DataModel()
    server = RtuServer(Engine(model, DeviceIdentification(pdu_cases.IDENTITY, UNIT)), LineDiagnostics(), UNIT)
    return model, server


@PROPERTY
@given(pdu=REQUESTS, addr=st.sampled_from([UNIT, 0, UNIT + 1, 247, 255]))
def test_server_answers_only_its_own_frames_as_the_engine_does(pdu, addr):
    if len(pdu) > 253:
        return  # no room in an RTU frame
    model, server = line()
    twin = DataModel()
    engine = Engine(twin, DeviceIdentification(pdu_cases.IDENTITY, UNIT))
    f = frame(addr, pdu)
    rx = bytearray(256)
    rx[:len(f)] = f
    tx = bytearray(256)
    before = bytes(model.regs), bytes(model.bits[0])
    bus = server.diag.bus
    r = server.serve(rx, 0, len(f), tx)
    assert server.diag.bus == bus + 1, "every correct frame is a bus message"
    fc = pdu[0]
    serial = fc in SERIAL_LINE or (fc == 8 and len(pdu) >= 3 and pdu[1:3] != b"\0\0")
    if addr != UNIT:
        assert r == 0, "answered a frame for %d" % addr
        if addr != 0 or not changes_state(f, 0):
            assert (bytes(model.regs), bytes(model.bits[0])) == before, "state changed by %s" % f.hex()
        return
    assert r >= 5, f.hex()
    assert tx[0] == UNIT and crc16(tx, 0, r) == 0, tx[:r].hex()
    assert response_length(tx, 0, r, len(f)) == r, "a master would not find the end of %s" % tx[:r].hex()
    if not serial:
        resp = bytearray(260)
        n = engine.handle(bytearray(pdu), 0, len(pdu), resp, 0)
        assert bytes(tx[1:r - 2]) == bytes(resp[:n]), (f.hex(), tx[:r].hex(), resp[:n].hex())


# ---- the link on a simulated line: RtuLink (mbnode.rtulink) with its own timing --------------
#
# A master sends bursts on a line at a baud rate: whole requests (for this unit, broadcasts,
# other units), requests with a broken CRC, requests cut short, noise of up to 300 bytes; each
# burst starts well after the answer to the one before could have ended. The port hands bytes
# over as a UART or a pty does: in order, each one readable somewhere between the end of its
# stop bit and `latency_us` after its start bit; the loop may look late. What must come back,
# per the serial-line spec: for a burst that is one frame with a correct CRC, what the slave's
# server gives for that frame (our unit and not listen-only: one reply; a broadcast: executed,
# no reply), never before t3.5 after the frame's last byte; nothing for anything else; the data
# model ends as the same frames alone leave a twin's.

class LineClock:
    """time.ticks_us & co. on simulated time; every reading costs the CPU 2 us, so that the
    link's spin waits end."""

    def __init__(self):
        self.us = 10000

    def ticks_us(self):
        self.us += 2
        return self.us

    def ticks_ms(self):
        return self.us // 1000

    def ticks_add(self, a, b):
        return a + b

    def ticks_diff(self, a, b):
        return a - b

    def sleep_us(self, n):
        self.us += n


class LinePort:
    def __init__(self, clock, avail, data, latency_us):
        self.clock = clock
        self.avail = avail  # per byte, the time from which it can be read
        self.data = data
        self.pos = 0
        self.latency_us = latency_us
        self.stream = 5
        self.name = "line"
        self.sent = []  # (time, frame)

    def readinto(self, buf, n):
        k = 0
        now = self.clock.us
        while k < n and self.pos < len(self.data) and self.avail[self.pos] <= now:
            buf[k] = self.data[self.pos]
            self.pos += 1
            k += 1
        return k

    def send(self, buf, n):
        self.sent.append((self.clock.us, bytes(buf[:n])))


class LineLoop:
    def __init__(self):
        self.mask = None
        self.handler = None
        self.timer = None

    def add(self, stream, handler, events=1):
        self.mask, self.handler = events, handler

    def modify(self, stream, events):
        self.mask = events

    def remove(self, stream):
        self.mask = None

    def add_timer(self, timer):
        self.timer = timer

    def remove_timer(self, timer):
        self.timer = None


def _counters_free(pdu):
    # Requests whose answer does not depend on what the line's diagnostics saw of frames the
    # twin never sees (FC07's exception status and FC08/02's register, FC11, FC12, FC08's
    # counters): the twin serves only the whole frames.
    return pdu[0] not in (7, 11, 12) and not (pdu[0] == 8 and len(pdu) >= 3 and (
        pdu[1:3] >= b"\x00\x0b" or pdu[1:3] == b"\x00\x02"))


def _hides_a_frame(burst):
    """Could the link take part of this burst for a whole frame (by its length and CRC, or as a
    frame after noise)? A chance of about 1 in 65536 per position; such bursts are not drawn."""
    for n in range(4, len(burst)):
        if request_length(burst, 0, n) == n and crc16(burst, 0, n) == 0:
            return True
    for k in range(1, len(burst) - 3):
        if burst[k] in (UNIT, 0) and crc16(burst, k, len(burst) - k) == 0:
            return True
    return False


@st.composite
def bursts(draw):
    out = []
    for _ in range(draw(st.integers(1, 6))):
        pdu = bytes(draw(REQUESTS.filter(lambda p: 0 < len(p) <= 252 and _counters_free(p))))
        addr = draw(st.sampled_from([UNIT, UNIT, UNIT, 0, UNIT + 1, 247]))
        f = frame(addr, pdu)
        kind = draw(st.sampled_from(["frame"] * 6 + ["crc", "cut", "noise"]))
        if kind == "crc":
            i = draw(st.integers(0, len(f) - 1))
            f = f[:i] + bytes([f[i] ^ draw(st.integers(1, 255))]) + f[i + 1:]
        elif kind == "cut":
            f = f[:draw(st.integers(1, len(f) - 1))]
        elif kind == "noise":
            f = draw(st.binary(min_size=1, max_size=300))
        whole = len(f) >= 4 and len(f) <= 256 and crc16(f, 0, len(f)) == 0
        if _hides_a_frame(f[:256]) or (kind != "frame" and whole):
            kind = "skip"
        if kind != "skip":
            out.append((kind == "frame", f))
    return out


# Found by this property: a frame whose byte count promises more than comes was answered only
# when the missing bytes would have come (here 340 ms after it, at 9600 baud), not at t3.5.
@example(line=[(True, frame(UNIT, bytes.fromhex("0f0000000093"))), (True, frame(UNIT, b"\x00"))], baud=9600, parity="E", latency=0, jitter=[],
         seed=random.Random(0), early=False)
@PROPERTY
@given(line=bursts(), baud=st.sampled_from([9600, 19200, 115200]), parity=st.sampled_from(["E", "N"]),
       latency=st.integers(0, 3000), jitter=st.lists(st.integers(0, 1500), max_size=50), seed=st.randoms(),
       early=st.booleans())
def test_link_answers_whole_frames_for_us_once_and_nothing_else(line, baud, parity, latency, jitter, seed, early):
    from mbnode import rtulink
    from mbnode.rtu import char_times

    if not line:
        return
    stopbits = 2 if parity == "N" else 1
    char, t35 = char_times(baud, parity, stopbits)
    latency += char
    clock = LineClock()
    # The master's line: each burst starts after the longest answer (256 bytes) and 10 x t3.5.
    gap = 260 * char + 10 * t35 + latency
    data, avail, starts, ends = bytearray(), [], [], []
    t = clock.us + 1000
    for whole, f in line:
        starts.append(t)
        for i, b in enumerate(f):
            start_bit = t + i * char
            ready = start_bit + char + seed.randint(0, latency - char)
            avail.append(max(avail[-1] if avail else 0, ready))
            data.append(b)
        ends.append(t + len(f) * char)
        t += len(f) * char + gap
    port = LinePort(clock, avail, bytes(data), latency)
    loop = LineLoop()
    model = DataModel()
    server = RtuServer(Engine(model, DeviceIdentification(pdu_cases.IDENTITY, UNIT)), LineDiagnostics(), UNIT)
    saved = rtulink.time
    rtulink.time = clock
    try:
        link = rtulink.RtuLink(loop, server, port, char, t35, early)
        late = iter(jitter)
        for _ in range(20000):
            next_byte = avail[port.pos] if port.pos < len(avail) and loop.mask == 1 else None
            d = link.due_in(clock.us // 1000)
            next_timer = clock.us + d * 1000 if d >= 0 else None
            if next_byte is None and next_timer is None:
                break
            wake = min(x for x in (next_byte, next_timer) if x is not None)
            clock.us = max(clock.us, wake) + next(late, 0)  # the loop may look late
            if loop.mask == 1 and port.pos < len(avail) and avail[port.pos] <= clock.us:
                link.on_event(port.stream, 1)
            link.tick(clock.us // 1000)
        else:
            raise AssertionError("the link never settled")
    finally:
        rtulink.time = saved
    assert port.pos == len(data), "bytes left unread"

    twin_model = DataModel()
    twin = RtuServer(Engine(twin_model, DeviceIdentification(pdu_cases.IDENTITY, UNIT)), LineDiagnostics(), UNIT)
    got = [[] for _ in line]
    for when, reply in port.sent:
        k = max(i for i, s in enumerate(starts) if s <= when)
        got[k].append((when, reply))
    for k, (whole, f) in enumerate(line):
        want = b""
        if whole:
            rx = bytearray(256)
            rx[:len(f)] = f
            tx = bytearray(256)
            want = bytes(tx[:twin.serve(rx, 0, len(f), tx)])
        replies = [r for _, r in got[k]]
        assert replies == ([want] if want else []), "burst %d %s: sent %s, want %s" % (
            k, f.hex(), [r.hex() for r in replies], want.hex())
        if want:
            after = got[k][0][0] - ends[k]
            # Not before t3.5 (unless early_reply); and soon after the frame is known to be over
            # (by its length, or by silence): while bytes come the link looks at least every 32
            # characters + latency (or t3.5 + latency), so the last ones are seen that late at
            # most, after their latency, and silence is proven one such period later; each look
            # may be up to the loop's lateness (1.5 ms here) and 1 ms of timer rounding late.
            assert early or after >= t35, "answered %d us after the request, t3.5 is %d" % (after, t35)
            period = max(32 * char, t35) + latency
            bound = latency + 2 * period + 2 * (1500 + 1000) + 1000
            assert after <= bound, "answered %d us after the request (at most %d)" % (after, bound)
    assert (bytes(model.regs), bytes(model.bits[0])) == (bytes(twin_model.regs), bytes(twin_model.bits[0]))
