"""The RTU core under CPython: CRC, request and response lengths, and what RtuServer +
LineDiagnostics do with whole frames (addressing, broadcast, listen-only, the FC07/08/11/12 counters and event log).
Expected bytes are worked out from the specs by hand, not produced by the code under test."""

import binascii
import struct

import pytest

import pdu_cases
import rtu_cases
from mbnode.datamodel import HOLDING, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.diag import LineDiagnostics
from mbnode.crc import crc16
from mbnode.pdu import Engine
from mbnode.rtu import MORE, UNKNOWN, RtuServer, request_length, response_length

UNIT = 17


def hx(text):
    return binascii.unhexlify(text.replace(" ", ""))


def frame(addr, pdu_hex):
    body = bytes([addr]) + hx(pdu_hex)
    return body + struct.pack("<H", crc16(body, 0, len(body)))


class Line:
    """An RtuServer with its diagnostics, fed whole frames as the link would."""

    def __init__(self):
        self.model = DataModel()
        self.diag = LineDiagnostics()
        self.server = RtuServer(Engine(self.model, DeviceIdentification(pdu_cases.IDENTITY, UNIT)), self.diag,
                                UNIT)

    def send(self, addr, pdu_hex):
        """The reply PDU as hex, or None when the slave stays silent."""
        rx = bytearray(256)
        f = frame(addr, pdu_hex)
        rx[:len(f)] = f
        tx = bytearray(256)
        n = self.server.serve(rx, 0, len(f), tx)
        if not n:
            return None
        assert tx[0] == addr
        assert crc16(tx, 0, n) == 0, "reply CRC"
        return binascii.hexlify(tx[1:n - 2]).decode().upper()

    def counter(self, sub):
        reply = self.send(UNIT, "08 00%02X 0000" % sub)
        assert reply[:6] == "0800%02X" % sub
        return int(reply[6:], 16)


@pytest.mark.parametrize("data, crc", [
    ("11 03 006B 0003", 0x8776),  # Modbus over Serial Line V1.02, 6.2.2 example
    ("01 03 0000 000A", 0xCDC5),
    ("", 0xFFFF),
])
def test_crc16_known_values(data, crc):
    b = hx(data)
    assert crc16(b, 0, len(b)) == crc
    padded = b"\xAA\xBB" + b + b"\xCC"
    assert crc16(padded, 2, len(b)) == crc  # start and length honoured


def test_crc_table_from_the_polynomial():
    """Every entry of the firmware's constant table is what eight shift-and-xor steps with the
    reflected polynomial 0xA001 make of its index."""
    from mbnode.crc import _CRC

    assert len(_CRC) == 512
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        assert _CRC[2 * i] | _CRC[2 * i + 1] << 8 == c, i


def test_crc_of_whole_frame_is_zero():
    f = frame(1, "03 0000 0001")
    assert f[-2:] == hx("84 0A")
    assert crc16(f, 0, len(f)) == 0


@pytest.mark.parametrize("pdu, length", [
    ("01 0000 0001", 8), ("02", 8), ("03 0000 0001", 8), ("04", 8), ("05 0000 FF00", 8), ("06 0000 0001", 8),
    ("0F 0000 0010 02 FFFF", 11), ("10 0000 0002 04 00010002", 13), ("16 0000 FFFF 0000", 10),
    ("17 0000 0001 0000 0001 02 0001", 15), ("07", 4), ("0B", 4), ("0C", 4), ("11", 4), ("2B 0E 01 00", 7),
    ("08 000B 0000", 8), ("08 0001 FF00", 8),
])
def test_request_length(pdu, length):
    f = frame(1, pdu)
    assert request_length(f, 0, len(f)) == length
    assert request_length(b"\xee\xee" + f, 2, len(f)) == length


def test_request_length_needs_more_or_silence():
    assert request_length(b"\x01", 0, 1) == MORE
    assert request_length(hx("01 10 0000 00"), 0, 5) == MORE  # byte count not in yet
    assert request_length(hx("01 17 0000 0001 0000 00"), 0, 9) == MORE
    assert request_length(hx("01 08 00"), 0, 3) == MORE
    assert request_length(hx("01 08 0000 1234"), 0, 6) == UNKNOWN  # echo: any data length
    assert request_length(hx("01 41 0000"), 0, 4) == UNKNOWN


# ---- response lengths, checked against a reading of the spec's response tables ---------------
#
# The oracle below is not the firmware's rule restated: it walks the fields of each response PDU
# as the Modbus Application Protocol V1.1b3 (section 6) lists them, reading only the fields whose
# value decides what follows (a count, a sub-function, the MEI type), and says MORE while one of
# those is not in yet.

BYTE_COUNT = (("byte count", 1), ("data", "byte count"))
RESPONSE_FIELDS = {
    0x01: BYTE_COUNT,  # coil status
    0x02: BYTE_COUNT,  # input status
    0x03: BYTE_COUNT,  # register values
    0x04: BYTE_COUNT,  # input registers
    0x05: (("output address", 2), ("output value", 2)),
    0x06: (("register address", 2), ("register value", 2)),
    0x07: (("output data", 1),),
    0x0B: (("status", 2), ("event count", 2)),
    0x0C: BYTE_COUNT,  # status, event count, message count, events
    0x0F: (("starting address", 2), ("quantity of outputs", 2)),
    0x10: (("starting address", 2), ("quantity of registers", 2)),
    0x11: BYTE_COUNT,  # server id, run indicator, additional data
    0x14: (("response data length", 1), ("sub-responses", "response data length")),
    0x15: (("request data length", 1), ("sub-requests", "request data length")),
    0x16: (("reference address", 2), ("and mask", 2), ("or mask", 2)),
    0x17: BYTE_COUNT,  # read registers value
    0x18: (("byte count", 2), ("FIFO count and FIFO values", "byte count")),
}
EXCEPTION_FIELDS = (("exception code", 1),)
DIAGNOSTIC_FIELDS = (("sub-function", 2), ("data", 2))  # 00 echoes the request instead
DEVICE_ID_FIELDS = (("read device id code", 1), ("conformity level", 1), ("more follows", 1),
                    ("next object id", 1), ("number of objects", 1),
                    ("objects", "number of objects", (("object id", 1), ("object length", 1),
                                                       ("object value", "object length"))))


def _counts(fields):
    """Names of the fields that size others."""
    out = set()
    for field in fields:
        if isinstance(field[1], str):
            out.add(field[1])
        if len(field) == 3:
            out |= _counts(field[2])
    return out


COUNTS = set().union(*(_counts(f) for f in list(RESPONSE_FIELDS.values()) + [DEVICE_ID_FIELDS]))


def _walk(data, pos, fields, values):
    """pos after the fields, or MORE when a field that sizes a later one is not in data yet."""
    for field in fields:
        name, size = field[0], field[1]
        if isinstance(size, str):
            size = values[size]
        if len(field) == 3:  # a group repeated `size` times
            for _ in range(size):
                pos = _walk(data, pos, field[2], values)
                if pos == MORE:
                    return MORE
            continue
        if name in COUNTS:
            if len(data) < pos + size:
                return MORE
            values[name] = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    return pos


def spec_response_length(data, req_len=0):
    """Length of the response frame that begins with `data` (address, function code, ...): MORE,
    UNKNOWN, or the frame's length with its CRC. req_len: the request's length (FC08/00)."""
    if len(data) < 2:
        return MORE
    fc = data[1]
    if fc >= 0x80:
        fields = EXCEPTION_FIELDS
    elif fc == 0x08:
        if len(data) < 4:
            return MORE
        if data[2:4] == b"\0\0":  # return query data: the request comes back as it was sent,
            return req_len if req_len >= 6 else UNKNOWN  # at least address, 08, 0000, CRC
        fields = DIAGNOSTIC_FIELDS
    elif fc == 0x2B:
        if len(data) < 3:
            return MORE
        if data[2] != 0x0E:  # only read device identification is a response we can size
            return UNKNOWN
        fields = (("MEI type", 1),) + DEVICE_ID_FIELDS
    elif fc in RESPONSE_FIELDS:
        fields = RESPONSE_FIELDS[fc]
    else:
        return UNKNOWN
    end = _walk(bytes(data), 2, fields, {})
    return MORE if end == MORE else end + 2  # + CRC


def needed(data, req_len=0):
    """Fewest bytes of `data` from which the oracle tells the length."""
    return next(n for n in range(len(data) + 1) if spec_response_length(data[:n], req_len) != MORE)


def check_every_prefix(f, req_len, want=None):
    """response_length at every prefix of frame f, at offset 0 and at offset 3 of a bigger
    bytearray whose bytes beyond those received are garbage, is what the oracle says."""
    buf = bytearray(b"\xee" * (len(f) + 300))
    for n in range(len(f) + 1):
        buf[3:3 + n] = f[:n]
        oracle = spec_response_length(f[:n], req_len)
        assert response_length(f, 0, n, req_len) == oracle, (f[:n].hex(), req_len)
        assert response_length(buf, 3, n, req_len) == oracle, (f[:n].hex(), req_len, "at offset 3")
    if want is not None:
        assert spec_response_length(f, req_len) == want


@pytest.mark.parametrize("pdu, req_len, length, first", rtu_cases.RESPONSE_CASES,
                         ids=["%s/%d" % (c[0][:14], c[1]) for c in rtu_cases.RESPONSE_CASES])
def test_response_length_table(pdu, req_len, length, first):
    """The hand-worked table (tests/core/rtu_cases.py, also run on the unix port and the emulated
    MCUs) and the oracle agree, and the rule says MORE at every prefix shorter than `first`."""
    f = frame(1, pdu)
    assert spec_response_length(f, req_len) == length and needed(f, req_len) == first
    if length > 0:
        assert length == len(f), "the table's frame is whole"
    for n in range(len(f) + 1):
        assert response_length(f, 0, n, req_len) == (MORE if n < first else length), n
    check_every_prefix(f, req_len)


def test_response_length_of_every_function_code():
    """Every function code 0..255, its exception, the fields after it of a few kinds (zeros,
    small, large counts), with and without the request's length: the rule is the oracle."""
    sizes = set()
    for fc in range(256):
        for tail in (bytes(12), bytes(range(1, 40)), b"\xff" * 8, b"\x0e\x01\x01\x00\x00\x02\x00\x03abc\x01\x00"):
            for req_len in (0, 8, 12):
                f = bytes([1, fc]) + tail
                check_every_prefix(f, req_len)
                sizes.add(spec_response_length(f, req_len))
    assert {UNKNOWN, 5, 6, 8, 10, 12} <= sizes


@pytest.mark.parametrize("objects", [
    [], [b""], [b"mbnode"], [b"mbnode", b"MBN-1", b"0.1.0"], [b"x" * 255], [b"", b"", b""],
    [b"a" * 100, b"b" * 100, b"c" * 40],
])
def test_response_length_walks_device_id_objects(objects):
    """FC43/14: the length is known once the last object's id and length bytes are in, MORE
    before, whatever the objects' values."""
    pdu = bytes([0x2B, 0x0E, 0x01, 0x81, 0x00, 0x00, len(objects)])
    for i, value in enumerate(objects):
        pdu += bytes([i, len(value)]) + value
    f = frame(1, pdu.hex())
    headers = 8 + sum(2 + len(v) for v in objects[:-1]) + (2 if objects else 0)
    assert response_length(f, 0, len(f)) == len(f) == 8 + sum(2 + len(v) for v in objects) + 2
    for n in range(len(f) + 1):
        assert response_length(f, 0, n) == (MORE if n < headers else len(f)), n
    check_every_prefix(f, 0, len(f))


def test_response_length_frames_what_the_slave_sends():
    """Every reply of the shared PDU cases as the RTU slave sends it: the rule finds its end."""
    line = Line()
    sent = 0
    for case in pdu_cases.CASES:
        for request, _ in case[2]:
            f = frame(UNIT, request)
            reply = line.send(UNIT, request)
            if reply is not None:
                r = frame(UNIT, reply)
                assert response_length(r, 0, len(r), len(f)) == len(r), (request, reply)
                sent += 1
    assert sent > 100


def test_addressing_and_broadcast():
    line = Line()
    assert line.send(UNIT, "03 0000 0001") == "03020000"
    assert line.send(UNIT + 1, "06 0000 0001") is None
    assert line.model.get_reg(HOLDING, 0) == 0, "another unit's write is not ours"
    assert line.send(0, "06 0001 0123") is None, "broadcast never answered"
    assert line.model.get_reg(HOLDING, 1) == 0x123, "broadcast write executed"
    assert line.send(0, "10 0002 0002 04 00070008") is None
    assert (line.model.get_reg(HOLDING, 2), line.model.get_reg(HOLDING, 3)) == (7, 8)
    assert line.send(0, "03 0000 0001") is None, "broadcast read ignored"
    assert line.send(0, "06 0140 0001") is None, "broadcast exception not sent"
    # bus: all 7 frames + this read; server: 6 for us/broadcast + this read
    assert line.counter(0x0B) == 7
    assert line.counter(0x0E) == 7
    assert line.counter(0x0F) == 4, "4 broadcasts unanswered"
    assert line.counter(0x0D) == 0, "an unsent exception is not counted"
    # FC11 counts requests completed without exception: the read, the 2 broadcast writes and
    # the 4 counter reads; not the ignored broadcast read nor the failing broadcast write.
    events = int(line.send(UNIT, "0B")[6:], 16)
    assert events == 1 + 2 + 4, "read, 2 broadcast writes, 4 counter reads"


def test_counters_clear_and_exceptions():
    line = Line()
    line.send(UNIT, "03 0140 0001")  # exception 02
    line.send(UNIT, "41")  # exception 01
    line.diag.bad_frame()
    line.diag.bad_frame()
    line.diag.overrun_frame()
    assert line.counter(0x0C) == 2
    assert line.counter(0x0D) == 2
    assert line.counter(0x12) == 1
    assert line.counter(0x02) == 0b0111, "diagnostic register: CRC, overrun, exception"
    assert line.send(UNIT, "07") == "0707", "FC07: its low byte"
    assert line.send(UNIT, "08 0014 0000") == "08 0014 0000".replace(" ", "")
    assert line.counter(0x12) == 0
    assert line.counter(0x02) == 0b0101
    assert line.counter(0x10) == 0 and line.counter(0x11) == 0
    assert line.send(UNIT, "08 000A 0000") == "08000A0000"
    assert [line.counter(s) for s in (0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x12, 0x02)] == [1, 0, 0, 4, 0, 0, 0]


@pytest.mark.parametrize("pdu, reply", [
    ("08 0002 0001", "88 03"),  # data must be 0000
    ("08 000B FF00", "88 03"),
    ("08 0001 1234", "88 03"),  # restart takes 0000 or FF00 only
    ("08 0003 0000", "88 01"),  # change ASCII delimiter: not an RTU thing
    ("08 0013 0000", "88 01"),
    ("08 0015 0000", "88 01"),
    ("08 000B", "88 03"),  # short
    ("07 00", "87 03"),
    ("0B 00", "8B 03"),
    ("0C 00", "8C 03"),
    ("08 0000 1234 5678", "08 0000 1234 5678"),  # echo, any length
])
def test_diagnostics_exceptions_and_echo(pdu, reply):
    assert Line().send(UNIT, pdu) == reply.replace(" ", "")


def test_listen_only_mode_and_restart():
    line = Line()
    assert line.send(UNIT, "08 0004 0000") is None, "force listen-only is never answered"
    assert line.send(UNIT, "03 0000 0001") is None
    assert line.send(UNIT, "06 0000 0005") is None
    assert line.model.get_reg(HOLDING, 0) == 0, "nothing executed in listen-only mode"
    assert line.send(UNIT, "08 0001 0000") is None, "restart from listen-only: no reply"
    assert line.send(UNIT, "03 0000 0001") == "03020000"
    # Restart cleared the counters: 1 (the read above) + this read
    assert line.counter(0x0E) == 2
    assert line.send(UNIT, "08 0001 FF00") == "08 0001 FF00".replace(" ", ""), "restart answers when online"


def test_comm_event_counter_and_log():
    line = Line()
    line.send(UNIT, "03 0000 0001")  # ok -> counted
    line.send(UNIT, "06 0000 0001")  # ok
    line.send(UNIT, "03 0140 0001")  # exception 02 -> not counted
    line.send(0, "06 0001 0002")  # broadcast write ok -> counted
    line.send(UNIT, "0B")  # FC11 itself is not counted
    assert line.send(UNIT, "0B") == "0B" + "0000" + "0003"
    reply = hx(line.send(UNIT, "0C"))
    # events newest first: this FC12's receive, then send/receive pairs of the frames above
    events = list(reply[8:])
    assert reply[0] == 0x0C and reply[1] == 6 + len(events)
    assert struct.unpack(">HHH", reply[2:8]) == (0, 3, 7)  # status, event count, bus messages
    assert events == [0x80,  # FC12 received
                      0x40, 0x80,  # FC11
                      0x40, 0x80,  # FC11
                      0x40, 0xC0,  # broadcast received, "sent" (no response)
                      0x41, 0x80,  # exception 02 sent
                      0x40, 0x80, 0x40, 0x80]


def test_event_log_keeps_64_newest_and_restart_clears():
    line = Line()
    for _ in range(40):
        line.send(UNIT, "03 0000 0001")
    reply = hx(line.send(UNIT, "0C"))
    assert reply[1] == 6 + 64
    line.send(UNIT, "08 0001 FF00")  # restart, clearing the log: one restart event, then its send
    reply = hx(line.send(UNIT, "0C"))
    assert list(reply[8:]) == [0x80, 0x40, 0x00]
    line.send(UNIT, "08 0004 0000")
    line.send(UNIT, "08 0001 0000")  # keeps the log
    reply = hx(line.send(UNIT, "0C"))
    assert list(reply[8:15]) == [0x80, 0x40, 0x00, 0xA0, 0x60, 0x04, 0x80]


def test_report_server_id():
    assert Line().send(UNIT, "11") == "11" + "0A" + "11" + "FF" + binascii.hexlify(b"sim-node").decode().upper()
