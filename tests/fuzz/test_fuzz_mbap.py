"""The Modbus TCP slave's MBAP framing under mutated byte streams (CPython; the same source the
boards run).

The real TcpSlave (firmware/mbnode/tcp.py) serves one connection through fake sockets: the
client's bytes arrive in pieces of any size, with "nothing yet" (EAGAIN) between them, and the
socket takes the answers in pieces of any size too. What the slave must send is worked out here
independently, from the Modbus TCP implementation guide's header rules:

- MBAP header: transaction id, protocol id (0), length (unit id + PDU: 2..254), unit id;
- a protocol id other than 0 or a length outside 2..254 ends the connection, unanswered;
- a request for another unit id (not ours, not 255, unit_id 0 = any) is consumed, unanswered;
- every other request is answered once, in order, with its transaction id and unit id echoed,
  protocol 0 and a length that counts the unit id and the PDU, and the PDU the engine gives for
  that request (the engine's own answers are fuzzed against the spec in test_fuzz_pdu.py);
- the data model ends as a twin engine leaves it after exactly the answered requests: bytes
  that do not make a frame for this device change nothing.

Invariants: no exception ever leaves the slave; the bytes sent are exactly those answers,
however the stream was cut; the connection closes only after a bad header or the client's end.
The limits of 2 s (a request arriving, an answer leaving) are checked on a fake clock.
"""

import struct
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import fuzzing
import pdu_cases
from mbnode import tcp
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from conftest import ROOT
from test_fuzz_pdu import REQUESTS

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
from tcpfakes import POLLIN, POLLOUT, Clock, Listener, Loop, socket_module  # noqa: E402

PROPERTY = fuzzing.per_target(4)  # this target's properties share `make fuzz`'s inputs

UNIT = 17


class Client:
    """The accepted socket: gives the client's bytes in the pieces `reads` says (0: EAGAIN),
    takes answers in the pieces `takes` says (0: EAGAIN); after the data, EOF."""

    def __init__(self, data, reads, takes, eof=True):
        self.data = data
        self.pos = 0
        self.reads = list(reads)
        self.takes = list(takes)
        self.eof = eof
        self.sent = bytearray()
        self.closed = False

    def fileno(self):
        return 42

    def setblocking(self, flag):
        pass

    def setsockopt(self, *args):
        pass

    def readinto(self, buf, n=None):
        assert not self.closed
        n = len(buf) if n is None else n
        assert 0 < n <= len(buf)
        if self.pos >= len(self.data):
            return 0 if self.eof else None
        piece = self.reads.pop(0) if self.reads else n
        if piece == 0:
            return None
        k = min(n, piece, len(self.data) - self.pos)
        buf[:k] = self.data[self.pos:self.pos + k]
        self.pos += k
        return k

    def write(self, buf, *args):
        assert not self.closed
        off, n = (0, args[0]) if len(args) == 1 else args
        assert n > 0 and off + n <= len(buf)
        piece = self.takes.pop(0) if self.takes else n
        if piece == 0:
            return None
        k = min(n, piece)
        self.sent += buf[off:off + k]
        return k

    def close(self):
        self.closed = True


LISTENER = Listener()


@pytest.fixture(scope="module", autouse=True)
def fake_ports():
    """tcp.py's socket and time modules replaced for this module's tests (hypothesis runs many
    examples per test, so not a function-scoped monkeypatch)."""
    saved = tcp.socket, tcp.time
    tcp.socket = socket_module(LISTENER)
    yield
    tcp.socket, tcp.time = saved


def slave_for(client, unit_id=UNIT, unit_255=True):
    clock = Clock()
    LISTENER.backlog[:] = [client]
    tcp.time = clock
    model = DataModel()
    engine = Engine(model, DeviceIdentification(pdu_cases.IDENTITY, UNIT))
    cfg = {"unit_255": unit_255, "persistent": True, "idle_timeout": 0, "when_full": "refuse", "allow": [],
           "max_clients": 2, "host": "127.0.0.1", "port": 502}
    loop = Loop()
    slave = tcp.TcpSlave(loop, engine, cfg, unit_id)
    slave.on_event(slave._key(slave.sock), POLLIN)  # accept
    assert client.fileno() in loop.handlers and loop.changed, "the connection was not accepted"
    return slave, loop, model, clock


def expected(data, unit_id=UNIT, unit_255=True):
    """(bytes the slave must send, the twin model after the answered requests, where a bad
    header starts or None) for the client's byte stream, per the MBAP rules."""
    twin = DataModel()
    engine = Engine(twin, DeviceIdentification(pdu_cases.IDENTITY, UNIT))
    out = bytearray()
    pos = 0
    resp = bytearray(260)
    while len(data) - pos >= 6:
        tid, proto, length = struct.unpack_from(">HHH", data, pos)
        if proto != 0 or not 2 <= length <= 254:
            return bytes(out), twin, pos
        if len(data) - pos < 6 + length:
            break
        unit = data[pos + 6]
        if unit_id == 0 or unit == unit_id or (unit == 255 and unit_255):
            req = bytes(data[pos + 7:pos + 6 + length])
            n = engine.handle(req, 0, len(req), resp, 0)
            out += struct.pack(">HHHB", tid, 0, n + 1, unit) + resp[:n]
        pos += 6 + length
    return bytes(out), twin, None


def run(slave, loop, client, limit=100000):
    """Serve the connection as the loop would, honouring its poll mask, until it closes."""
    key = client.fileno()
    for _ in range(limit):
        if key not in loop.handlers:
            return
        mask = loop.masks[key]
        assert mask in (POLLIN, POLLOUT), mask
        loop.handlers[key].on_event(key, mask)
    raise AssertionError("the connection never closed")


@st.composite
def frame(draw):
    """One MBAP frame: mostly a well-formed request, sometimes one with a wrong unit id,
    protocol id or length field, or a frame cut short."""
    pdu = draw(REQUESTS)[:253]
    if not pdu:
        pdu = b"\x03"
    unit = draw(st.sampled_from([UNIT, UNIT, UNIT, 255, 0, 1, 247, UNIT + 1]))
    tid = draw(st.integers(0, 0xFFFF))
    length = len(pdu) + 1
    kind = draw(st.sampled_from(["ok"] * 10 + ["proto", "length", "length", "short", "long", "junk"]))
    proto = 0
    if kind == "proto":
        proto = draw(st.integers(1, 0xFFFF))
    elif kind == "length":
        length = draw(st.sampled_from([0, 1, 255, 255, 256, 0x7FFF, 0xFFFF]))
    elif kind == "short":
        length = draw(st.integers(2, max(2, length - 1)))  # the next frame's bytes complete it
    elif kind == "long":
        length = min(254, length + draw(st.integers(1, 10)))
    elif kind == "junk":
        return draw(st.binary(min_size=1, max_size=20))
    return struct.pack(">HHHB", tid, proto, length, unit) + pdu


REQ = struct.pack(">HHHB", 1, 0, 6, UNIT) + bytes.fromhex("0300000001")
STREAM = st.lists(frame(), min_size=1, max_size=8).map(b"".join)
PIECES = st.lists(st.integers(0, 300), max_size=40)


# The edges of the length field, whatever the draw: 1 and 255 are refused, 2 and 254 are not.
@example(data=REQ + struct.pack(">HHHB", 2, 0, 255, UNIT) + REQ[7:], reads=[], takes=[], unit_255=True, unit_id=UNIT)
@example(data=REQ + struct.pack(">HHHB", 2, 0, 1, UNIT) + REQ, reads=[], takes=[], unit_255=True, unit_id=UNIT)
@example(data=struct.pack(">HHHBB", 2, 0, 2, UNIT, 0x41) + struct.pack(">HHHB", 3, 0, 254, UNIT) + bytes(253),
         reads=[], takes=[], unit_255=True, unit_id=UNIT)
@PROPERTY
@given(data=STREAM, reads=PIECES, takes=PIECES, unit_255=st.booleans(), unit_id=st.sampled_from([UNIT, UNIT, 0]))
def test_answers_exactly_the_frames_for_this_device_however_the_stream_is_cut(
        data, reads, takes, unit_255, unit_id):
    client = Client(data, reads, takes)
    slave, loop, model, clock = slave_for(client, unit_id, unit_255)
    run(slave, loop, client)
    want, twin, bad = expected(data, unit_id, unit_255)
    assert bytes(client.sent) == want
    assert client.closed
    assert (bytes(model.regs), bytes(model.bits[0])) == (bytes(twin.regs), bytes(twin.bits[0]))
    if bad is not None:  # closed at the bad header: nothing after it was read
        assert client.pos == bad + 6, (bad, client.pos)
    else:
        assert client.pos == len(data)
    assert all(c.sock is None for c in slave.conns)


@PROPERTY
@given(data=STREAM, reads=PIECES)
def test_random_bytes_never_raise(data, reads):
    # Any bytes at all, cut anywhere: served or closed, never an exception.
    client = Client(bytes(b ^ 0x5A for b in data), reads, [])
    slave, loop, model, clock = slave_for(client)
    run(slave, loop, client)
    assert client.closed


@PROPERTY
@given(head=st.integers(1, 259), wait=st.integers(0, 4000), reads=PIECES)
def test_a_request_that_stops_arriving_closes_after_2_s(head, wait, reads):
    req = struct.pack(">HHHB", 1, 0, 6, UNIT) + bytes.fromhex("0300000001")  # 12 bytes
    data = (req * 22)[:head]
    if head % 12 == 0:
        return  # whole requests: nothing waits
    client = Client(data, reads, [], eof=False)
    slave, loop, model, clock = slave_for(client)
    key = client.fileno()
    for _ in range(10 * len(data) + 50):  # read everything there is
        if client.pos >= len(data):
            break
        loop.handlers[key].on_event(key, loop.masks[key])
    loop.handlers[key].on_event(key, POLLIN)  # EAGAIN: nothing more
    assert not client.closed
    started = clock.now
    clock.now += wait
    due = slave.due_in(clock.now)
    assert due == max(0, 2000 - wait)
    slave.tick(clock.now)
    assert client.closed == (clock.now - started >= 2000)


@PROPERTY
@given(takes=st.lists(st.integers(0, 100), min_size=1, max_size=10), wait=st.integers(0, 4000))
def test_an_answer_the_client_does_not_take_closes_after_2_s(takes, wait):
    req = struct.pack(">HHHB", 9, 0, 6, UNIT) + bytes.fromhex("03000000 7D".replace(" ", ""))
    client = Client(req, [], [0] * 3 + takes, eof=False)
    slave, loop, model, clock = slave_for(client)
    key = client.fileno()
    loop.handlers[key].on_event(key, POLLIN)  # the whole request; the socket takes nothing
    assert loop.masks[key] == POLLOUT, "the rest of the answer waits for POLLOUT"
    assert slave.due_in(clock.now) == 2000
    for _ in range(1 + len(takes)):  # the socket takes 0, 0, then takes[:-1]
        loop.handlers[key].on_event(key, loop.masks[key])
    answer_len = 7 + 2 + 250
    if len(client.sent) < answer_len:
        clock.now += wait
        slave.tick(clock.now)
        assert client.closed == (wait >= 2000)
        assert len(client.sent) < answer_len
    else:
        assert loop.masks[key] == POLLIN and not client.closed
        assert client.sent[:9] == struct.pack(">HHHBBB", 9, 0, 253, UNIT, 3, 250)
