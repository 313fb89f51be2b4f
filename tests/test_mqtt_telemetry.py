"""MQTT telemetry of the running simulator: typed points read from the local data model and
published as {"timestamp": <unix ms>, "value": v}, written from <root>/<point>/set with the
result on <root>/<point>/res.

Raw register values are set through the simulator's I/O control channel (docs/simulator.md);
the expected values are struct.unpack in CPython of the same bytes in the stated byte and word
order (an implementation of its own here, not mbnode.points). One simulator for the module
(root "plant", QoS 0, mqtt.retain false); a second one for mqtt.retain true.
"""

import math
import re
import struct
import time

import pytest

from mbnode import gateway, points, pointsconfig
from mqtttest import Broker, Client, Topics, need_paho, start_device

FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f",
       "int64": "q", "uint64": "Q", "float64": "d"}
WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}
ORDERS = [("BE", "BE"), ("BE", "LE"), ("LE", "BE"), ("LE", "LE")]
# Raw registers per width, chosen so that every byte differs (each order gives another value)
# and every float order stays finite.
RAW = {
    1: [0xFEDC],
    2: {"int32": [0x8123, 0x4567], "uint32": [0x8123, 0x4567], "float32": [0x4148, 0x3F9A]},
    4: {"int64": [0x8123, 0x4567, 0x89AB, 0xCDEF], "uint64": [0x8123, 0x4567, 0x89AB, 0xCDEF],
        "float64": [0x4009, 0x21FB, 0x5444, 0x2D18]},
}


def regs_to_value(regs, typ, byte_order="BE", word_order="BE"):
    """The number the registers hold: word_order BE = most significant word in the lowest
    register; byte_order BE = each register's bytes as on the wire."""
    words = list(regs) if word_order == "BE" else list(reversed(regs))
    data = b"".join(struct.pack("<H" if byte_order == "LE" else ">H", w) for w in words)
    return struct.unpack(">" + FMT[typ], data)[0]


def value_to_regs(value, typ, byte_order="BE", word_order="BE"):
    data = struct.pack(">" + FMT[typ], value)
    words = [data[i:i + 2] for i in range(0, len(data), 2)]
    if byte_order == "LE":
        words = [w[::-1] for w in words]
    if word_order == "LE":
        words.reverse()
    return [struct.unpack(">H", w)[0] for w in words]


def test_order_helpers_match_the_documented_names():
    """points.py: *LE of the seed = all bytes reversed = byte_order LE + word_order LE; the
    "word swap" CDAB = byte_order BE + word_order LE."""
    regs = [0x1122, 0x3344]
    assert regs_to_value(regs, "uint32", "BE", "BE") == 0x11223344
    assert regs_to_value(regs, "uint32", "LE", "LE") == 0x44332211
    assert regs_to_value(regs, "uint32", "BE", "LE") == 0x33441122
    assert regs_to_value(regs, "uint32", "LE", "BE") == 0x22114433
    for bo, wo in ORDERS:
        assert value_to_regs(regs_to_value(regs, "uint32", bo, wo), "uint32", bo, wo) == regs


# --- the points --------------------------------------------------------------------------------

CASES = {}  # name -> (point object, io table, address, registers, expected value)
POINTS = []


def _add(d, io_table, address, regs, expected):
    POINTS.append(d)
    CASES[d["name"]] = (d, io_table, address, regs, expected)


_add({"name": "coil_a", "table": "coil", "address": 0x10, "type": "bool"}, "do", 0x10, [1], True)
_add({"name": "di_a", "table": "discrete", "address": "0x10", "type": "bool"}, "di", 0x10, [1], True)
_a = 0x40
for _t in ("int16", "uint16"):
    for _bo in ("BE", "LE"):
        _add({"name": "%s_%s" % (_t, _bo), "table": "input", "address": _a, "type": _t, "byte_order": _bo},
             "ai", _a, RAW[1], regs_to_value(RAW[1], _t, _bo))
        _a += 1
# 32-bit types on input registers from 0x50, 64-bit ones on holding registers from 0x80.
for _n, _table, _io, _a, _types in ((2, "input", "ai", 0x50, ("int32", "uint32", "float32")),
                                    (4, "holding", "ao", 0x80, ("int64", "uint64", "float64"))):
    for _t in _types:
        for _bo, _wo in ORDERS:
            _r = RAW[_n][_t]
            _add({"name": "%s_%s_%s" % (_t, _bo, _wo), "table": _table, "address": _a, "type": _t,
                  "byte_order": _bo, "word_order": _wo}, _io, _a, _r, regs_to_value(_r, _t, _bo, _wo))
            _a += _n
_add({"name": "mem_signed", "table": "memory", "position": 10, "type": "memory32", "signed": True},
     "mem", 10, [0xFFFFFFFB], struct.unpack("<i", struct.pack("<HH", 0xFFFB, 0xFFFF))[0])
_add({"name": "mem_unsigned", "table": "memory", "position": 11, "type": "memory32"},
     "mem", 11, [0x12345678], struct.unpack("<I", struct.pack("<HH", 0x5678, 0x1234))[0])
_add({"name": "mem_unsigned_top", "table": "memory", "position": 12, "type": "memory32", "signed": False},
     "mem", 12, [0xFFFFFFFB], 0xFFFFFFFB)
_add({"name": "text", "table": "holding", "address": 0xC0, "type": "ascii", "count": 4},
     "ao", 0xC0, [0x4869, 0x2D34, 0x3221, 0x0000], "Hi-42!")
TYPED = list(CASES)

BEHAVIOUR = [
    {"name": "chg", "table": "input", "address": 0x100},
    {"name": "db", "table": "input", "address": 0x101, "type": "int16", "deadband": 10},
    {"name": "tick", "table": "input", "address": 0x104, "on_change": False, "every_s": 1},
    {"name": "kept", "table": "input", "address": 0x105, "retain": True},
    {"name": "fleeting", "table": "input", "address": 0x106, "retain": False},
    {"name": "nan32", "table": "input", "address": 0x108, "type": "float32"},
    {"name": "dbf", "table": "input", "address": 0x10A, "type": "float32", "deadband": 0.5},
    {"name": "ro_di", "table": "discrete", "address": 0x12},
]
WRITABLE = [
    {"name": "sp", "table": "holding", "address": 0x50},
    {"name": "relay", "table": "coil", "address": 0x11},
    {"name": "onboard", "table": "holding", "address": 0x05},
    {"name": "f32w", "table": "holding", "address": 0x58, "type": "float32"},
    {"name": "i32w", "table": "holding", "address": 0x5A, "type": "int32", "byte_order": "LE", "word_order": "LE"},
    {"name": "u16le", "table": "holding", "address": 0x5C, "type": "uint16", "byte_order": "LE"},
    {"name": "memw", "table": "memory", "position": 20, "type": "memory32", "signed": True},
    {"name": "txtw", "table": "holding", "address": 0x60, "type": "ascii", "count": 2},
    {"name": "i64w", "table": "holding", "address": 0x64, "type": "int64"},
]
ALL_POINTS = POINTS + BEHAVIOUR + WRITABLE
BY_NAME = dict((d["name"], d) for d in ALL_POINTS)


def cpython_point(name):
    return points.Point(pointsconfig.check(BY_NAME[name]))


def encode_error(name, value):
    with pytest.raises(ValueError) as e:
        points.encode(cpython_point(name), value)
    return str(e.value)


# --- fixtures ------------------------------------------------------------------------------------


def value(dev, name, predicate=None, timeout=10):
    """The value of the next telemetry message of point name that predicate(value) accepts."""
    m = dev.client.wait(dev.topic(name), lambda m: predicate is None or predicate(m.json()["value"]), timeout)
    return telemetry(m)["value"]


def set_point(dev, name, payload, timeout=10):
    """Publish payload on <point>/set; the parsed /res message, its keys checked."""
    dev.client.clear(dev.topic(name, "res"))
    dev.client.publish(dev.topic(name, "set"), payload)
    res = dev.client.wait(dev.topic(name, "res"), timeout=timeout).json()
    assert type(res.get("timestamp")) is int and abs(res["timestamp"] - 1000 * time.time()) < 120000, res
    if res.get("ok") is True:
        assert set(res) == {"timestamp", "ok"}, res
    else:
        assert set(res) == {"timestamp", "ok", "error"} and res["ok"] is False, res
    return res


def telemetry(m):
    d = m.json()
    assert set(d) == {"timestamp", "value"}, m
    assert type(d["timestamp"]) is int and abs(d["timestamp"] - 1000 * time.time()) < 120000, \
        "timestamp %r is not unix milliseconds of now" % d["timestamp"]
    return d


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    need_paho()
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


def start_points(tmp, broker, topics, pts, sim_kw=None, **mqtt):
    return start_device(tmp, broker, topics, sim_kw=sim_kw, points=pts, **mqtt)


@pytest.fixture(scope="module")
def tele(tmp_path_factory, broker):
    # 256K: the firmware runs from source here, and compiling it takes RAM that a device
    # running .mpy files never spends (test_64_points_as_on_a_device checks the heap a device needs).
    d = start_points(tmp_path_factory.mktemp("tele"), broker, Topics(root="plant"), ALL_POINTS,
                     sim_kw={"heap": "256K"}, qos=0)
    yield d
    d.stop()


# --- first publish and the message format ------------------------------------------------------------


def test_every_point_published_after_connect(tele):
    """The first publish comes right after connect, for every point, with the simulator's
    initial all-zero channels in the point's JSON type (false, 0, "")."""
    for d in ALL_POINTS:
        m = tele.client.wait(tele.topic(d["name"]), timeout=5)
        v = telemetry(m)["value"]
        assert m.qos == 0, "mqtt.qos 0: %r" % m
        t = d.get("type", {"coil": "bool", "discrete": "bool", "memory": "memory32"}.get(d["table"], "uint16"))
        if t == "bool":
            assert v is False, m
        elif t == "ascii":
            assert v == "", m
        elif t.startswith("float"):
            assert type(v) in (int, float) and v == 0, m
        else:
            assert type(v) is int and v == 0, m


# --- every data type ------------------------------------------------------------------------------------


def _matches(expected):
    if type(expected) is float:
        return lambda v: type(v) in (int, float) and math.isclose(v, expected, rel_tol=1e-6, abs_tol=0)
    return lambda v: v == expected and type(v) is type(expected)


@pytest.mark.parametrize("name", TYPED)
def test_value_decoding(tele, name):
    d, table, address, regs, expected = CASES[name]
    if type(expected) is float:
        assert math.isfinite(expected)
    tele.io("set %s %d %s" % (table, address, " ".join("%d" % r for r in regs)))
    m = tele.client.wait(tele.topic(name), lambda m: _matches(expected)(m.json()["value"]))
    telemetry(m)
    if d.get("type") == "float64":
        # repr: the value to double precision (a few ulp for MicroPython's formatting).
        assert math.isclose(m.json()["value"], expected, rel_tol=1e-14)
    if d.get("type") == "float32":
        # %.7g: at most 7 significant digits, not the double's 17.
        token = re.search(rb'"value": *([-+0-9.eE]+)', m.payload).group(1).decode()
        mantissa = token.lower().split("e")[0].lstrip("-+").replace(".", "").lstrip("0")
        assert len(mantissa) <= 7, m.payload


def test_value_decoding_second_values(tele):
    """The other sign / halves: int16 positive, memory32 signed positive, bool back to false."""
    tele.io("set ai 0x40 0x0102")
    assert value(tele, "int16_BE", lambda v: v == 0x0102) == 258
    tele.io("set mem 10 0x7FFFFFFF")
    assert value(tele, "mem_signed", lambda v: v == 0x7FFFFFFF) == 2147483647
    tele.io("set do 0x10 1")
    tele.io("set do 0x10 0")
    assert value(tele, "coil_a", lambda v: v is False) is False
    tele.io("set ao 0xC0 0x4142 0x2020 0 0")  # trailing spaces go
    assert value(tele, "text", lambda v: v == "AB") == "AB"


def test_nan_and_infinity_are_null(tele):
    tele.io("set ai 0x108 0x3F80 0")
    assert value(tele, "nan32", lambda v: v == 1.0) == 1.0
    tele.io("set ai 0x108 0x7FC0 0")
    assert value(tele, "nan32", lambda v: v is None) is None
    tele.io("set ai 0x108 0x7F80 0")  # +inf: a change from NaN, published as null too
    assert value(tele, "nan32", lambda v: v is None) is None
    tele.io("set ai 0x108 0x4000 0")
    assert value(tele, "nan32", lambda v: v == 2.0) == 2.0


# --- publish policies ---------------------------------------------------------------------------


def test_on_change(tele):
    tele.io("set ai 0x100 5")
    assert value(tele, "chg", lambda v: v == 5) == 5
    tele.io("set ai 0x100 6")
    assert value(tele, "chg", lambda v: v == 6) == 6
    tele.io("set ai 0x100 6")  # the same value again: nothing new
    tele.client.absent(tele.topic("chg"), duration=0.7)


def test_deadband(tele):
    topic = tele.topic("db")
    tele.io("set ai 0x101 100")
    assert value(tele, "db", lambda v: v == 100) == 100
    tele.io("set ai 0x101 105")  # |105 - 100| <= 10
    tele.client.absent(topic, duration=1.0)
    tele.io("set ai 0x101 111")  # against the last published 100: 11 > 10
    assert value(tele, "db", lambda v: v == 111) == 111
    tele.io("set ai 0x101 101")  # exactly the deadband: not more than it
    tele.client.absent(topic, duration=1.0)
    tele.io("set ai 0x101 %d" % (0x10000 - 20))  # -20 as int16
    assert value(tele, "db", lambda v: v == -20) == -20


def test_deadband_float(tele):
    topic = tele.topic("dbf")
    tele.io("set ai 0x10A 0x4120 0")  # 10.0
    assert value(tele, "dbf", lambda v: v == 10.0) == 10.0
    tele.io("set ai 0x10A 0x4128 0")  # 10.5: not more than 0.5 away
    tele.client.absent(topic, duration=1.0)
    tele.io("set ai 0x10A 0x4130 0")  # 11.0
    assert value(tele, "dbf", lambda v: v == 11.0) == 11.0


def test_every_s_repeats(tele):
    """every_s 1 with on_change false: the value is published once a second, changed or not."""
    topic = tele.topic("tick")
    tele.io("set ai 0x104 77")
    first = tele.client.wait(topic, lambda m: m.json()["value"] == 77, timeout=3)
    tele.client.clear(topic)  # the earlier repeats of the old value
    times = [first.time]
    for _ in range(3):
        m = tele.client.wait(topic, timeout=3)
        assert telemetry(m)["value"] == 77
        times.append(m.time)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.6 <= g <= 1.6 for g in gaps), "every_s 1: gaps %r" % gaps


def test_retain_flag_per_point(tele, broker):
    tele.io("set ai 0x105 4242")
    tele.io("set ai 0x106 4343")
    assert value(tele, "kept", lambda v: v == 4242) == 4242
    assert value(tele, "fleeting", lambda v: v == 4343) == 4343
    check_retained(broker, tele, "kept", 4242, "fleeting")


def check_retained(broker, dev, kept, value, fleeting):
    """A subscriber arriving now gets point `kept` retained with value, and nothing of `fleeting`."""
    late = Client(broker, subscribe=[dev.topic(kept), dev.topic(fleeting)])
    try:
        m = late.wait(dev.topic(kept), timeout=5)
        assert m.retain and telemetry(m)["value"] == value
        late.absent(dev.topic(fleeting), duration=1.0)
    finally:
        late.close()


def test_mqtt_retain_default(tmp_path, broker):
    """mqtt.retain true: points with retain null are retained, retain false ones are not."""
    pts = [{"name": "a", "table": "input", "address": 0x20},
           {"name": "b", "table": "input", "address": 0x21, "retain": False}]
    d = start_points(tmp_path, broker, Topics(root="retained-site"), pts, retain=True)
    try:
        d.io("set ai 0x20 11 12")
        assert value(d, "a", lambda v: v == 11) == 11
        assert value(d, "b", lambda v: v == 12) == 12
        check_retained(broker, d, "a", 11, "b")
    finally:
        d.stop()


def test_64_points_as_on_a_device(tmp_path, broker):
    """pointsconfig.MAX_POINTS points, the firmware as .mpy files (as on a board) in a 144K heap
    (the bench's eight points are specified for 124 KiB, docs/mqtt.md "RAM"; 64 points start
    from 133 KiB since the masters came, 2026-12-07): it starts, and every point is published
    after connect."""
    pts = [dict(d, name="p%d" % i) for i, d in enumerate((ALL_POINTS * 2)[:pointsconfig.MAX_POINTS])]
    d = start_points(tmp_path, broker, Topics(root="many"), pts, sim_kw={"mpy": True, "heap": "144K"})
    try:
        for p in pts:
            telemetry(d.client.wait(d.topic(p["name"]), timeout=5))
        d.io("set ai 0x100 9")
        assert value(d, "p%d" % [p["name"] for p in ALL_POINTS].index("chg"), lambda v: v == 9) == 9
    finally:
        d.stop()


# --- writes through <point>/set ---------------------------------------------------------------------


def test_set_object_and_bare_number(tele):
    assert set_point(tele, "sp", '{"value": 1234}')["ok"] is True
    assert tele.io("get ao 0x50") == [1234]
    assert value(tele, "sp", lambda v: v == 1234) == 1234  # the scan publishes what was written
    assert set_point(tele, "sp", "4321")["ok"] is True
    assert tele.io("get ao 0x50") == [4321]


def test_set_coil(tele):
    assert set_point(tele, "relay", '{"value": true}')["ok"] is True
    assert tele.io("get do 0x11") == [1]
    assert set_point(tele, "relay", "false")["ok"] is True
    assert tele.io("get do 0x11") == [0]
    assert set_point(tele, "relay", "1")["ok"] is True
    assert tele.io("get do 0x11") == [1]


@pytest.mark.parametrize("name,payload,value,table,count", [
    ("f32w", '{"value": 1.5}', 1.5, "float32", None),
    ("i32w", '{"value": -2}', -2, "int32", None),
    ("u16le", "258", 258, "uint16", None),
    ("i64w", '{"value": "-9223372036854775808"}', -(1 << 63), "int64", None),
])
def test_set_orders(tele, name, payload, value, table, count):
    d = BY_NAME[name]
    assert set_point(tele, name, payload)["ok"] is True
    regs = value_to_regs(value, table, d.get("byte_order", "BE"), d.get("word_order", "BE"))
    assert tele.io("get ao %d %d" % (d["address"], len(regs))) == regs


def test_set_memory_and_text(tele):
    assert set_point(tele, "memw", '{"value": -5}')["ok"] is True
    assert tele.io("get mem 20") == [0xFFFFFFFB]
    assert set_point(tele, "txtw", '{"value": "AB"}')["ok"] is True
    assert tele.io("get ao 0x60 2") == [0x4142, 0]


def test_set_value_out_of_range(tele):
    res = set_point(tele, "sp", '{"value": 70000}')
    assert res["error"] == encode_error("sp", 70000) == "point sp: value 70000: allowed an integer 0..65535"
    res = set_point(tele, "relay", '{"value": 2}')
    assert res["error"] == encode_error("relay", 2)
    res = set_point(tele, "f32w", '{"value": 1e39}')
    assert res["error"] == encode_error("f32w", 1e39)
    res = set_point(tele, "txtw", '{"value": "ABCDE"}')
    assert res["error"] == encode_error("txtw", "ABCDE")
    assert tele.io("get ao 0x50") != [70000 & 0xFFFF], "nothing is written on an error"


def test_set_engine_exception(tele):
    """Onboard AO 0x0005 is 10-bit: the Engine answers exception 03, the point says so."""
    res = set_point(tele, "onboard", '{"value": 2000}')
    assert res["error"] == gateway.exception_text(3) == "Modbus exception 3 (illegal data value)"
    assert set_point(tele, "onboard", '{"value": 1000}')["ok"] is True
    assert tele.io("get ao 5") == [1000]


def test_set_read_only(tele):
    res = set_point(tele, "chg", '{"value": 1}')
    assert res["error"] == "point chg: input registers are read-only"
    res = set_point(tele, "ro_di", "true")
    assert res["error"] == "point ro_di: discrete inputs are read-only"


def test_set_bad_payload(tele):
    for payload in ("not json", '{"value": 1, "other": 2}', '{"val": 1}'):
        with pytest.raises(ValueError) as e:
            points.parse_set(payload)
        assert set_point(tele, "sp", payload)["error"] == str(e.value)


def test_set_unknown_point(tele):
    res = set_point(tele, "nosuch", '{"value": 1}')
    assert res["error"] == "no point named nosuch"
