"""The RTU core under CPython: CRC, request lengths, and what RtuServer + LineDiagnostics do with
whole frames (addressing, broadcast, listen-only, the FC07/08/11/12 counters and event log).
Expected bytes are worked out from the specs by hand, not produced by the code under test."""

import binascii
import struct

import pytest

import pdu_cases
from mbnode.datamodel import HOLDING, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.diag import LineDiagnostics
from mbnode.crc import crc16
from mbnode.pdu import Engine
from mbnode.rtu import MORE, UNKNOWN, RtuServer, request_length

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
