"""The RTU framing rules under mutated frames (CPython; the same source the boards run).

Invariants:
- rtu.request_length never raises and only grows more certain as bytes come: once it names a
  length for a prefix, every longer prefix gets the same length;
- for a whole frame with a correct CRC, RtuServer.serve answers only frames for its own address
  that are not broadcasts (a broadcast, another unit's frame, or listen-only mode: no reply),
  every reply carries our address and a correct CRC, and its PDU is the one the PDU engine gives
  over TCP for the same request (the serial-line functions 07/08/11/12 aside: LineDiagnostics);
- a broadcast changes the data model only through a write, and another unit's frame never;
- the bus message counter counts every correct frame, whatever its address.
"""

import struct

from hypothesis import given
from hypothesis import strategies as st

import fuzzing
import pdu_cases
from mbnode.crc import crc16
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.diag import LineDiagnostics
from mbnode.pdu import Engine
from mbnode.rtu import MORE, UNKNOWN, RtuServer, changes_state, request_length
from test_fuzz_pdu import REQUESTS

PROPERTY = fuzzing.per_target(2)  # this target's properties share `make fuzz`'s inputs

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
    if not serial:
        resp = bytearray(260)
        n = engine.handle(bytearray(pdu), 0, len(pdu), resp, 0)
        assert bytes(tx[1:r - 2]) == bytes(resp[:n]), (f.hex(), tx[:r].hex(), resp[:n].hex())
