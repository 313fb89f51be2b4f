"""Typed points (mbnode.mqtt.points): data types and orders against CPython's struct, writes
through the real Engine, batching plans and publish policies."""

import json
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import micropython_or_fail
from mbnode import config, memory32
from mbnode.mqtt import points, pointsconfig
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def point(type_, table="holding", address=0x40, **kw):
    d = {"name": "p", "table": table, "address": address, "type": type_}
    d.update(kw)
    return points.Point(d)


def words_of(raw):
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def on_wire(be, byte_order, word_order):
    """The registers of a big-endian value as a device with these orders sends them: word_order
    LE reverses the 16-bit words, byte_order LE swaps the two bytes in each register."""
    words = [be[i:i + 2] for i in range(0, len(be), 2)]
    if word_order == "LE":
        words.reverse()
    if byte_order == "LE":
        words = [w[::-1] for w in words]
    return b"".join(words)


# --- data types, byte and word order --------------------------------------------------------

NUMBERS = [
    ("int16", "h", [0, 1, -1, 0x1234, -32768, 32767]),
    ("uint16", "H", [0, 0x1234, 65535]),
    ("int32", "i", [0, 0x01020304, -2, -2147483648, 2147483647]),
    ("uint32", "I", [0, 0x01020304, 4294967295]),
    ("float32", "f", [0.0, 1.5, -2.25, 3.4028234663852886e38, 1e-30]),
    ("int64", "q", [0, 0x0102030405060708, -1, -(1 << 63), (1 << 63) - 1]),
    ("uint64", "Q", [0, 0x0102030405060708, (1 << 64) - 1]),
    ("float64", "d", [0.0, 1.1, -1e300, 5e-324]),
]
ORDERS = [("BE", "BE"), ("BE", "LE"), ("LE", "BE"), ("LE", "LE")]


def _cases():
    for type_, fmt, values in NUMBERS:
        orders = ORDERS if struct.calcsize(fmt) > 2 else [("BE", None), ("LE", None)]
        for byte_order, word_order in orders:
            for v in values:
                yield type_, fmt, byte_order, word_order, v


@pytest.mark.parametrize("type_, fmt, byte_order, word_order, value", list(_cases()))
def test_number_types_both_directions(type_, fmt, byte_order, word_order, value):
    kw = {"byte_order": byte_order}
    if word_order:
        kw["word_order"] = word_order
    p = point(type_, **kw)
    be = struct.pack(">" + fmt, value)
    wire = on_wire(be, byte_order, word_order or "BE")
    assert points.encode(p, value) == words_of(wire)
    # float32 values come back as the single-precision number struct makes of them
    assert points.decode(p, b"\xAA\xBB" + wire, 2) == struct.unpack(">" + fmt, be)[0]


def test_seed_004_little_endian_names_read_the_bytes_reversed():
    # seeds/004's int32LE/floatLE/doubleLE read the register bytes as one little-endian number:
    # byte_order LE + word_order LE here.
    for type_, fmt in (("int32", "<i"), ("float32", "<f"), ("float64", "<d"), ("uint64", "<Q"), ("int16", "<h")):
        kw = {"byte_order": "LE"}
        if type_ != "int16":
            kw["word_order"] = "LE"
        raw = bytes(range(1, struct.calcsize(fmt) + 1))
        assert points.decode(point(type_, **kw), raw, 0) == struct.unpack(fmt, raw)[0]


@pytest.mark.parametrize("byte_order, word_order, wire", [
    ("BE", "BE", "01020304"), ("BE", "LE", "03040102"), ("LE", "BE", "02010403"), ("LE", "LE", "04030201"),
])
def test_the_four_layouts_of_one_32_bit_value(byte_order, word_order, wire):
    p = point("uint32", byte_order=byte_order, word_order=word_order)
    assert points.encode(p, 0x01020304) == words_of(bytes.fromhex(wire))
    assert points.decode(p, bytes.fromhex(wire), 0) == 0x01020304


def test_default_orders_are_big_endian():
    p = point("float32")
    assert points.encode(p, 1.0) == [0x3F80, 0x0000]


def test_float32_decodes_the_exact_single_value():
    p = point("float32")
    raw = struct.pack(">f", 1.1)
    assert points.decode(p, raw, 0) == struct.unpack(">f", raw)[0]


def test_memory32_low_half_first_through_the_data_model():
    model = DataModel()
    memory32.set_u32(model, 1, 0x12345678)
    memory32.set_u32(model, 1024, -2)
    unsigned = points.Point({"name": "m1", "table": "memory", "position": 1})
    signed = points.Point({"name": "m2", "table": "memory", "position": 1024, "signed": True})
    assert (unsigned.table, unsigned.address, unsigned.width) == (HOLDING, 0x1000, 2)
    assert signed.address == 0x17FE
    regs = model.regs
    assert points.decode(unsigned, regs, model.reg_offset(HOLDING, 0x1000)) == 0x12345678
    assert points.decode(signed, regs, model.reg_offset(HOLDING, 0x17FE)) == -2
    assert points.encode(unsigned, 0x12345678) == [0x5678, 0x1234]
    assert points.encode(signed, -2) == [0xFFFE, 0xFFFF]
    assert points.encode(unsigned, 4294967295) == [0xFFFF, 0xFFFF]
    # memory32 also fits any register pair of the holding or input table.
    anywhere = point("memory32", table="input", address=0x10, signed=True)
    assert points.decode(anywhere, bytes.fromhex("FFFBFFFF"), 0) == -5
    assert points.decode(anywhere, bytes.fromhex("FFFFFFFB"), 0) == -0x40001  # 0xFFFBFFFF


def test_ascii_two_characters_per_register_high_byte_first():
    p = point("ascii", count=3)
    assert p.width == 3
    assert points.encode(p, "Hello") == [0x4865, 0x6C6C, 0x6F00]
    assert points.encode(p, "") == [0, 0, 0]
    assert points.decode(p, b"Hello\x00", 0) == "Hello"
    assert points.decode(p, b"Hi    ", 0) == "Hi"
    assert points.decode(p, b"AB\x00CDE", 0) == "AB"  # text ends at the first NUL
    assert points.decode(p, b"A\x01\xffxyz", 0) == "A??xyz"
    assert points.decode(p, b"--ok\x00\x00xy", 2) == "ok"
    assert points.decode(p, b"  ok  ", 0) == "  ok"  # only trailing spaces go


def test_bool_points_read_bits_lsb_first():
    p = points.Point({"name": "c", "table": "coil", "address": 3})
    assert (p.table, p.width, p.type) == (COILS, 1, "bool")
    data = bytes([0b00001000, 0x01])
    assert points.decode(p, data, 3) is True
    assert points.decode(p, data, 2) is False
    assert points.decode(p, data, 8) is True
    assert points.encode(p, True) == [1]
    assert points.encode(p, 0) == [0]
    d = points.Point({"name": "d", "table": "discrete", "address": 0x23F})
    assert (d.table, points.writable(d), points.writable(p)) == (DISCRETE_INPUTS, False, True)


def test_integral_floats_and_64_bit_text_are_accepted_for_integers():
    assert points.encode(point("int16"), 5.0) == [5]
    assert points.encode(point("uint64"), "18446744073709551615") == [0xFFFF] * 4
    assert points.encode(point("int64"), "-1") == [0xFFFF] * 4
    assert points.encode(point("float32"), 2) == [0x4000, 0]


@pytest.mark.parametrize("type_, kw, value, message", [
    ("int16", {}, 32768, "point p: value 32768: allowed an integer -32768..32767"),
    ("int16", {}, -32769, "point p: value -32769: allowed an integer -32768..32767"),
    ("int16", {}, "12", 'point p: value "12": allowed an integer -32768..32767'),
    ("int16", {}, 1.5, "point p: value 1.5: allowed an integer -32768..32767"),
    ("int16", {}, float("nan"), "point p: value NaN: allowed an integer -32768..32767"),
    ("int16", {}, True, "point p: value true: allowed an integer -32768..32767"),
    ("int16", {}, None, "point p: value null: allowed an integer -32768..32767"),
    ("uint16", {}, -1, "point p: value -1: allowed an integer 0..65535"),
    ("uint16", {}, 65536, "point p: value 65536: allowed an integer 0..65535"),
    ("int32", {}, 2147483648, "point p: value 2147483648: allowed an integer -2147483648..2147483647"),
    ("uint32", {}, 4294967296, "point p: value 4294967296: allowed an integer 0..4294967295"),
    ("uint32", {}, [1], "point p: value [1]: allowed an integer 0..4294967295"),
    ("int64", {}, 1 << 63,
     "point p: value 9223372036854775808: allowed an integer -9223372036854775808..9223372036854775807 "
     "(or its decimal text)"),
    ("uint64", {}, -1, "point p: value -1: allowed an integer 0..18446744073709551615 (or its decimal text)"),
    ("uint64", {}, "1e3", 'point p: value "1e3": allowed an integer 0..18446744073709551615 (or its decimal text)'),
    ("int64", {}, "--5",
     'point p: value "--5": allowed an integer -9223372036854775808..9223372036854775807 (or its decimal text)'),
    ("int64", {}, "-",
     'point p: value "-": allowed an integer -9223372036854775808..9223372036854775807 (or its decimal text)'),
    ("float32", {}, 1e39, "point p: value 1e+39: allowed a finite number within +-3.4028235e38"),
    ("float32", {}, float("inf"), "point p: value Infinity: allowed a finite number within +-3.4028235e38"),
    ("float32", {}, "1.5", 'point p: value "1.5": allowed a finite number within +-3.4028235e38'),
    ("float64", {}, float("nan"), "point p: value NaN: allowed a finite number"),
    ("float64", {}, False, "point p: value false: allowed a finite number"),
    ("memory32", {}, -1, "point p: value -1: allowed an integer 0..4294967295"),
    ("memory32", {"signed": True}, 2147483648, "point p: value 2147483648: allowed an integer -2147483648..2147483647"),
    ("ascii", {"count": 2}, "Hello", 'point p: value "Hello": allowed text of at most 4 printable ASCII characters'),
    ("ascii", {"count": 2}, "\u00e9", 'point p: value "\\u00e9": allowed text of at most 4 printable ASCII characters'),
    ("ascii", {"count": 2}, 12, "point p: value 12: allowed text of at most 4 printable ASCII characters"),
])
def test_encode_refuses_with_a_reason(type_, kw, value, message):
    with pytest.raises(ValueError) as e:
        points.encode(point(type_, **kw), value)
    assert str(e.value) == message


def test_bool_encode_refuses_other_values():
    p = points.Point({"name": "c", "table": "coil", "address": 0})
    for bad, shown in ((2, "2"), ("on", '"on"'), (0.5, "0.5")):
        with pytest.raises(ValueError) as e:
            points.encode(p, bad)
        assert str(e.value) == "point c: value %s: allowed true, false, 0 or 1" % shown


# --- writes through the real engine ----------------------------------------------------------

def run(engine, pdu, n):
    resp = bytearray(260)
    k = engine.handle(pdu, 0, n, resp, 0)
    return bytes(resp[:k])


def test_write_pdus_go_through_the_engine():
    model = DataModel()
    engine = Engine(model, DeviceIdentification({}, 1))
    buf = bytearray(260)
    coil = points.Point({"name": "do5", "table": "coil", "address": 5})
    n = points.write_pdu(coil, True, buf)
    assert bytes(buf[:n]) == bytes.fromhex("0500 05FF 00")
    assert run(engine, buf, n) == bytes.fromhex("050005FF00") and model.get_bit(COILS, 5) == 1
    reg = point("int16", address=0x41)
    n = points.write_pdu(reg, -2, buf)
    assert bytes(buf[:n]) == bytes.fromhex("060041FFFE")
    assert run(engine, buf, n) == bytes.fromhex("060041FFFE") and model.get_reg(HOLDING, 0x41) == 0xFFFE
    f = point("float32", address=0x42, word_order="LE")
    n = points.write_pdu(f, 1.0, buf)
    assert bytes(buf[:n]) == bytes.fromhex("10 0042 0002 04 0000 3F80".replace(" ", ""))
    assert run(engine, buf, n) == bytes.fromhex("1000420002")
    mem = points.Point({"name": "m", "table": "memory", "position": 3, "signed": True})
    n = points.write_pdu(mem, -5, buf, 7)
    assert run(engine, buf[7:], n) == bytes.fromhex("1010040002")
    assert memory32.get_i32(model, 3) == -5
    # Onboard AO is 10-bit: the engine's own rule reaches the writer as exception 03.
    ao = point("uint16", address=0)
    n = points.write_pdu(ao, 1024, buf)
    assert run(engine, buf, n) == bytes.fromhex("8603")


def test_read_only_points_refuse_writes():
    buf = bytearray(16)
    for table, what in (("discrete", "discrete inputs"), ("input", "input registers")):
        d = {"name": "ro", "table": table, "address": 0}
        with pytest.raises(ValueError) as e:
            points.write_pdu(points.Point(d), 1, buf)
        assert str(e.value) == "point ro: %s are read-only" % what


# --- batching ----------------------------------------------------------------------------------

def P(name, table, address, type_=None, **kw):
    d = {"name": name, "table": table}
    if table == "memory":
        d["position"] = address
    else:
        d["address"] = address
    if type_:
        d["type"] = type_
    d.update(kw)
    return points.Point(d)


def shape(plan, pts):
    # plan()'s tables as [(fc, first, count, [(point name, offset)])], one entry per batch
    reqs, order, offsets, ends = plan
    assert len(reqs) == 5 * len(ends) and len(order) == len(offsets) == len(pts) == ends[-1]
    out = []
    for i in range(len(ends)):
        r = reqs[5 * i:5 * i + 5]
        items = range(ends[i - 1] if i else 0, ends[i])
        out.append((r[0], (r[1] << 8) | r[2], (r[3] << 8) | r[4], [(pts[order[j]].name, offsets[j]) for j in items]))
    return out


def test_plan_contiguous_points_share_one_request():
    pts = [P("a", "holding", 0x40), P("b", "holding", 0x41, "int32"), P("c", "holding", 0x43, "float64")]
    assert shape(points.plan(pts), pts) == [(3, 0x40, 7, [("a", 2), ("b", 4), ("c", 8)])]


def test_plan_bridges_small_gaps_only():
    pts = [P("a", "input", 0), P("b", "input", 9), P("c", "input", 19)]  # gaps of 8, then 9
    assert shape(points.plan(pts), pts) == [(4, 0, 10, [("a", 2), ("b", 20)]), (4, 19, 1, [("c", 2)])]
    bits = [P("x", "coil", 0), P("y", "coil", 33), P("z", "coil", 67)]  # gaps of 32, then 33
    assert shape(points.plan(bits), bits) == [(1, 0, 34, [("x", 16), ("y", 49)]), (1, 67, 1, [("z", 16)])]
    assert len(points.plan(pts, reg_gap=0)[3]) == 3


def test_plan_respects_the_engine_limits():
    # Two ascii points of 100 registers each do not fit one 125-register read.
    pts = [P("s1", "holding", 0x40, "ascii", count=100), P("s2", "holding", 0xA4, "ascii", count=25),
           P("s3", "holding", 0xBD, "ascii", count=1)]
    assert shape(points.plan(pts), pts) == [(3, 0x40, 125, [("s1", 2), ("s2", 202)]), (3, 0xBD, 1, [("s3", 2)])]
    bits = [P("first", "discrete", 0), P("last", "discrete", 0x23F)]
    assert shape(points.plan(bits, bit_gap=1000), bits) == [(2, 0, 0x240, [("first", 16), ("last", 16 + 0x23F)])]
    pts = [P("a", "holding", 0), P("b", "holding", 125)]
    assert len(points.plan(pts, reg_gap=1000)[3]) == 2


def test_plan_mixed_tables_sorted_by_table_then_address():
    pts = [P("m", "memory", 2), P("i", "input", 5), P("h", "holding", 0x13F), P("d", "discrete", 1),
           P("c", "coil", 2), P("c0", "coil", 0)]
    assert shape(points.plan(pts), pts) == [
        (1, 0, 3, [("c0", 16), ("c", 18)]),
        (2, 1, 1, [("d", 16)]),
        (3, 0x13F, 1, [("h", 2)]),
        (3, 0x1002, 2, [("m", 2)]),
        (4, 5, 1, [("i", 2)]),
    ]


def test_plan_never_spans_absent_channels():
    model = DataModel([[(0, 0x23F)], [(0, 0x23F)], [(0x40, 0x43), (0x46, 0x13F)], [(0, 0x13F)]])
    pts = [P("a", "holding", 0x42), P("b", "holding", 0x46)]
    assert len(points.plan(pts)[3]) == 1
    assert shape(points.plan(pts, present=model.is_present), pts) == [
        (3, 0x42, 1, [("a", 2)]), (3, 0x46, 1, [("b", 2)])]


def test_plan_overlapping_points():
    pts = [P("whole", "holding", 0x50, "uint32"), P("low", "holding", 0x51)]
    assert shape(points.plan(pts), pts) == [(3, 0x50, 2, [("whole", 2), ("low", 4)])]


def test_batches_read_through_the_engine():
    model = DataModel()
    engine = Engine(model, DeviceIdentification({}, 1))
    model.set_reg(INPUT, 0x40, 0xFFFE)
    model.set_reg(INPUT, 0x42, 0x3FC0)  # float32 1.5, word order BE
    model.set_reg(INPUT, 0x43, 0x0000)
    memory32.set_u32(model, 7, 123456789)
    for bit in (3, 40):
        model.set_bit(DISCRETE_INPUTS, bit, 1)
    pts = [P("t", "input", 0x40, "int16"), P("f", "input", 0x42, "float32"), P("m", "memory", 7),
           P("d3", "discrete", 3), P("d4", "discrete", 4), P("d40", "discrete", 40)]
    got = {}
    reqs, order, offsets, ends = points.plan(pts)
    assert reqs.hex() == "0200030002" "0200280001" "03100c0002" "0400400004"  # sorted by table, then address
    for i in range(len(ends)):
        resp = bytearray(run(engine, reqs[5 * i:5 * i + 5], 5))
        points.check_answer(reqs, 5 * i, resp, len(resp))
        for j in range(ends[i - 1] if i else 0, ends[i]):
            p = pts[order[j]]
            got[p.name] = points.decode(p, resp, offsets[j])
    assert got == {"t": -2, "f": 1.5, "m": 123456789, "d3": True, "d4": False, "d40": True}


def test_batch_answers_refuse_exceptions_and_bad_lengths():
    reqs = points.plan([P("a", "holding", 0)])[0]
    points.check_answer(reqs, 0, bytes.fromhex("03020007"), 4)
    with pytest.raises(ValueError, match="Modbus exception 2"):
        points.check_answer(reqs, 0, bytes.fromhex("8302"), 2)
    with pytest.raises(ValueError, match="malformed response of 3 bytes to function 3"):
        points.check_answer(reqs, 0, bytes.fromhex("030200"), 3)
    with pytest.raises(ValueError, match="malformed response of 4 bytes to function 3"):
        points.check_answer(reqs, 0, bytes.fromhex("04020007"), 4)


# --- publish policy -----------------------------------------------------------------------------

def test_first_value_is_always_published():
    p = point("int16")
    assert points.should_publish(p, None, 5, 1000, None)


def test_on_change_without_deadband():
    p = point("int16")
    assert not points.should_publish(p, 5, 5, 1000, 0)
    assert points.should_publish(p, 5, 6, 1000, 0)
    b = points.Point({"name": "c", "table": "coil", "address": 0})
    assert points.should_publish(b, False, True, 10, 0)
    assert not points.should_publish(b, True, True, 10, 0)
    s = point("ascii", count=2)
    assert points.should_publish(s, "ab", "ac", 10, 0)
    assert not points.should_publish(s, "ab", "ab", 10, 0)


def test_deadband_is_exceeded_not_reached():
    p = point("float32", deadband=0.5)
    assert not points.should_publish(p, 10.0, 10.5, 1000, 0)
    assert not points.should_publish(p, 10.0, 9.5, 1000, 0)
    assert points.should_publish(p, 10.0, 10.75, 1000, 0)
    assert points.should_publish(p, 10.0, 9.25, 1000, 0)
    i = point("int16", deadband=2)
    assert [points.should_publish(i, 100, v, 0, 0) for v in (98, 99, 101, 102, 103, 97)] == [
        False, False, False, False, True, True]


def test_nan_is_published_once():
    p = point("float32", deadband=1)
    nan = float("nan")
    assert points.should_publish(p, 1.0, nan, 0, 0)
    assert not points.should_publish(p, nan, nan, 0, 0)
    assert points.should_publish(p, nan, 1.0, 0, 0)


def test_every_n_seconds():
    p = point("int16", on_change=False, every_s=10)
    assert p.every_ms == 10000
    assert not points.should_publish(p, 1, 2, 19999, 10000)
    assert points.should_publish(p, 1, 1, 20000, 10000)
    both = point("int16", every_s=5, deadband=10)
    assert points.should_publish(both, 1, 1, 5000, 0)
    assert not points.should_publish(both, 1, 5, 4999, 0)
    assert points.should_publish(both, 1, 12, 4999, 0)


# --- payloads -----------------------------------------------------------------------------------

def test_messages_are_json():
    ts = 1700000000123
    f = point("float32")
    assert points.message(f, struct.unpack(">f", struct.pack(">f", 1.1))[0], ts) == (
        '{"timestamp": 1700000000123, "value": 1.1}')
    assert json.loads(points.message(f, float("nan"), ts)) == {"timestamp": ts, "value": None}
    assert json.loads(points.message(point("float64"), 0.1, ts))["value"] == 0.1
    assert json.loads(points.message(point("uint64"), (1 << 64) - 1, ts))["value"] == (1 << 64) - 1
    c = points.Point({"name": "c", "table": "coil", "address": 0})
    assert points.message(c, True, ts) == '{"timestamp": 1700000000123, "value": true}'
    assert json.loads(points.message(point("ascii", count=2), 'a"b', ts))["value"] == 'a"b'
    assert points.result(ts) == '{"timestamp": 1700000000123, "ok": true}'
    assert json.loads(points.result(ts, "Modbus exception 3 (illegal data value)")) == {
        "timestamp": ts, "ok": False, "error": "Modbus exception 3 (illegal data value)"}


@pytest.mark.parametrize("payload, value", [
    (b'{"value": 12}', 12), (b"12", 12), (b"-1.5", -1.5), (b"true", True), (b'"text"', "text"),
    (b'{"value": [1]}', [1]),
])
def test_set_payloads(payload, value):
    assert points.parse_set(payload) == value


@pytest.mark.parametrize("payload, message", [
    (b"on", 'payload is not JSON: allowed {"value": ...} or a bare JSON value'),
    (b"", 'payload is not JSON: allowed {"value": ...} or a bare JSON value'),
    (b'{"val": 1}', 'payload object: allowed exactly one key, "value"'),
    (b'{"value": 1, "x": 2}', 'payload object: allowed exactly one key, "value"'),
])
def test_bad_set_payloads(payload, message):
    with pytest.raises(ValueError) as e:
        points.parse_set(payload)
    assert str(e.value) == message


# --- point configuration -------------------------------------------------------------------

def test_span_of_checked_points():
    assert pointsconfig.span(pointsconfig.check({"name": "a", "table": "input", "address": 0x13C, "type": "uint64"})) == (
        INPUT, 0x13C, 4)
    assert pointsconfig.span(pointsconfig.check({"name": "m", "table": "memory", "position": 1024})) == (HOLDING, 0x17FE, 2)
    assert pointsconfig.span(pointsconfig.check({"name": "s", "table": "holding", "address": 0, "type": "ascii",
                                     "count": 8})) == (HOLDING, 0, 8)
    assert pointsconfig.span(pointsconfig.check({"name": "d", "table": "discrete", "address": 9})) == (DISCRETE_INPUTS, 9, 1)


def test_point_from_a_checked_configuration():
    cfg = config.validate({"mqtt": {"points": [
        {"name": "m", "table": "memory", "position": 9, "signed": True, "every_s": 5, "on_change": False},
        {"name": "c", "table": "coil", "address": 7, "retain": True},
        {"name": "f", "table": "input", "address": "0x0010", "type": "float64", "byte_order": "LE",
         "word_order": "LE", "deadband": 0.25},
    ]}})
    m, c, f = (points.Point(d, retain=True) for d in cfg["mqtt"]["points"])
    assert (m.table, m.address, m.width, m.fmt, m.wswap, m.deadband, m.every_ms, m.retain) == (
        HOLDING, 0x1010, 2, ">i", True, None, 5000, True)  # deadband None: on_change false
    assert (c.table, c.address, c.width, points.writable(c), c.numeric, c.deadband, c.retain) == (
        COILS, 7, 1, True, False, 0, True)
    assert (f.table, f.address, f.width, f.bswap, f.wswap, f.deadband, points.writable(f), f.retain) == (
        INPUT, 0x10, 4, 1, True, 0.25, False, True)
    assert points.Point(cfg["mqtt"]["points"][0]).retain is False  # null: mqtt.retain (default false)
    assert points.Point(cfg["mqtt"]["points"][1], retain=False).retain is True  # its own retain wins


def test_modules_run_on_the_unix_port():
    """The same calls on MicroPython (32-bit: big ints for 64-bit values) give CPython's answers."""
    script = "\n".join([
        "from mbnode.mqtt import points, textproto",
        "p = points.Point({'name': 'u', 'table': 'holding', 'address': 64, 'type': 'uint64', 'word_order': 'LE'})",
        "w = points.encode(p, 18446744073709551614)",
        "raw = bytearray(8)",
        "for i in range(4):",
        "    raw[2 * i] = w[i] >> 8",
        "    raw[2 * i + 1] = w[i] & 255",
        "print(w, points.decode(p, raw, 0))",
        "f = points.Point({'name': 'f', 'table': 'input', 'address': 0, 'type': 'float64', 'byte_order': 'LE'})",
        "print(points.encode(f, -2.5))",
        "m = points.Point({'name': 'm', 'table': 'memory', 'position': 2, 'signed': True})",
        "print(points.encode(m, -2147483648), points.message(m, -2147483648, 1700000000000))",
        "print([tuple(r) for r in points.plan([p, f, m])])",
        "print(points.should_publish(p, 1, 2, 5, 0))",
        "r = textproto.parse(b'0 18446744073709551615 0 192.168.1.1 502 5 1 16 1 2 65535,1')",
        "buf = bytearray(260)",
        "n = textproto.build_pdu(r, buf)",
        "print(bytes(buf[:n]), textproto.format_response(r, b'\\x10\\x00\\x00\\x00\\x02', 5))",
        "try:",
        "    textproto.parse('0 18446744073709551616 0')",
        "except textproto.RequestError as e:",
        "    print(e.args[0])",
    ])
    expected = [
        "[65534, 65535, 65535, 65535] 18446744073709551614",
        "[1216, 0, 0, 0]",
        "[0, 32768] {\"timestamp\": 1700000000000, \"value\": -2147483648}",
        "[(3, 0, 64, 0, 4, 3, 16, 2, 0, 2, 4, 0, 0, 0, 4), (0, 2, 1), (2, 2, 2), (1, 2, 3)]",
        "True",
        "b'\\x10\\x00\\x00\\x00\\x02\\x04\\xff\\xff\\x00\\x01' 18446744073709551615 OK",
        "ERROR: cookie 18446744073709551616: allowed 0..18446744073709551615",
    ]
    binary = micropython_or_fail(32)
    out = subprocess.run([str(binary), "-c", script], cwd=str(FIRMWARE), env={"MICROPYPATH": "."},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.splitlines() == expected


SCAN_SCRIPT = """
import gc, time
from mbnode.datamodel import HOLDING, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from mbnode.mqtt.telemetry import Telemetry

class Bridge:
    t_root = b"io/"
    def __init__(self):
        self.sent = []
    def publish(self, topic, payload, retain):
        self.sent.append(topic)
        return True
    def begin(self):
        pass

model = DataModel()
bridge = Bridge()
pts = [{"name": "a", "table": "holding", "address": 0x40, "type": "int16"},
       {"name": "c", "table": "coil", "address": 5},
       {"name": "s", "table": "holding", "address": 0x70, "type": "ascii", "count": 4}]
t = Telemetry(Engine(model, DeviceIdentification({}, 1)), model, pts, False, bridge)
now = time.ticks_ms()
t.scan(now, True)
print(bridge.sent)
del bridge.sent[:]
gc.collect()
gc.disable()
before = gc.mem_alloc()
for _ in range(50):
    t.scan(now)
grown = gc.mem_alloc() - before
gc.enable()
print(bridge.sent, grown < 50 * 32)
model.set_reg(HOLDING, 0x40, 7)
t.scan(now)
print(bridge.sent)
"""


def test_quiet_scans_compare_in_place():
    """A scan with nothing changed publishes nothing and keeps no copy of the answers (each
    batch's last answer is compared in place): 50 of them allocate less than 32 bytes each
    (the call's frame), where a copy per batch and scan took hundreds."""
    binary = micropython_or_fail(32)
    out = subprocess.run([str(binary), "-c", SCAN_SCRIPT], cwd=str(FIRMWARE), env={"MICROPYPATH": "."},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.splitlines() == ["[b'io/c', b'io/a', b'io/s']", "[] True", "[b'io/a']"]
