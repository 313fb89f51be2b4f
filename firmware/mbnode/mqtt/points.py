"""Typed points: channels of the local map read as numbers or text for MQTT, written from MQTT.

A point is configured as an object in mqtt.points (checked by mbnode.mqtt.pointsconfig, which
is unloaded after start-up like the rest of the configuration code) and used as a Point.
Register types are named by size and sign, with the byte and word order as separate keys:

  type      registers  byte_order / word_order         seeds/004 name
  int16      1         byte_order BE | LE               int16BE / int16LE
  uint16     1         byte_order                       uint16BE / uint16LE
  int32      2         byte_order, word_order           int32BE = BE+BE, int32LE = LE+LE
  uint32     2         byte_order, word_order           uint32BE / uint32LE
  float32    2         byte_order, word_order           floatBE / floatLE
  int64      4         byte_order, word_order           (none)
  uint64     4         byte_order, word_order           bigUInt64BE / bigUInt64LE
  float64    4         byte_order, word_order           doubleBE / doubleLE
  memory32   2         low half first, "signed": bool   (mbnode's 32-bit memory positions)
  ascii      "count"   2 characters per register, high byte first
  bool       1 bit     coils and discrete inputs only   boolean

word_order BE puts the most significant 16 bits in the lowest register; byte_order BE keeps each
register's bytes as on the wire. The seed's *LE names read all the bytes reversed, which is
byte_order LE with word_order LE; the common "word swap" (CDAB) is byte_order BE, word_order LE.

MicroPython: integers beyond 30 bits (32-bit and 64-bit types) are heap objects, and on boards
with single-precision floats float64 values keep only float32's precision. Both are fine on the
publish and write paths, which allocate anyway; nothing here runs on the Modbus serving path.
"""

import json
import struct

from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, mem_register
from mbnode.pdu import MAX_BITS, MAX_READ_REGS

try:
    from time import ticks_diff
except ImportError:  # CPython: plain millisecond numbers
    def ticks_diff(a, b):
        return a - b

NAME_MAX = 32  # a point name's longest: one topic level (mbnode.mqtt.pointsconfig, the bridge's topics)

# plan() bridges gaps of unused channels up to these sizes: reading them from the local engine
# costs a few bytes of copy, far less than a second request.
MAX_REG_GAP = 8
MAX_BIT_GAP = 32

# table name -> (datamodel table, default type, types allowed, what its channels are called);
# "memory" positions are holding registers.
TABLES = {
    "coil": (COILS, "bool", ("bool",), "a coil"),
    "discrete": (DISCRETE_INPUTS, "bool", ("bool",), "a discrete input"),
    "input": (INPUT, "uint16", None, "input registers"),
    "holding": (HOLDING, "uint16", None, "holding registers"),
    "memory": (HOLDING, "memory32", ("memory32",), "a memory position"),
}
# type -> (struct format, registers); bool is 1 bit, ascii takes its "count" of registers.
TYPES = {
    "bool": (None, 1),
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "float32": (">f", 2),
    "int64": (">q", 4),
    "uint64": (">Q", 4),
    "float64": (">d", 4),
    "memory32": (">I", 2),
    "ascii": (None, 0),
}
_F32_MAX = 3.4028234663852886e38


def _number(v):
    return type(v) in (int, float) and v == v and v not in (float("inf"), float("-inf"))


class Point:
    """One point ready for use. d: one entry of the checked mqtt.points (check() filled in every
    default; a key left out here takes that same default). retain: mqtt.retain, used when the
    point's own retain is null."""

    def __init__(self, d, retain=False):
        self.name = d["name"]
        table = d["table"]
        self.table, t = TABLES[table][:2]
        self.type = t = d.get("type", t)
        fmt, n = TYPES[t]
        self.width = d["count"] if t == "ascii" else n  # registers, or 1 bit
        self.address = mem_register(d["position"]) if table == "memory" else d["address"]
        self.writable = table == "coil" or table == "holding" or table == "memory"
        self.fmt = ">i" if d.get("signed") else fmt
        self.bswap = 1 if d.get("byte_order") == "LE" else 0  # an index offset in _reorder
        self.wswap = d.get("word_order") == "LE" or t == "memory32"
        self.numeric = t != "bool" and t != "ascii"
        self.on_change = d.get("on_change", True)
        self.deadband = d.get("deadband", 0)
        self.every_ms = 1000 * d.get("every_s", 0)
        r = d.get("retain")
        self.retain = retain if r is None else r


def _reorder(src, so, dst, do, n, bswap, wswap):
    # Registers <-> the value's big-endian bytes. Register i holds value word i (word_order BE)
    # or word n-1-i (LE); the same formula maps both ways.
    for i in range(n):
        s = so + 2 * i
        k = do + 2 * ((n - 1 - i) if wswap else i)
        dst[k + bswap] = src[s]
        dst[k + 1 - bswap] = src[s + 1]


def decode(point, data, offset):
    """The point's value from response data. Bit points: offset is the bit index into data,
    bits packed LSB first as FC01/02 send them. Register points: offset is the byte offset of
    the point's first register (wire format, high byte first)."""
    if point.type == "bool":
        return ((data[offset >> 3] >> (offset & 7)) & 1) == 1
    if point.type == "ascii":
        # Text stops at the first NUL (C-style), then trailing spaces go.
        raw = bytes(data[offset:offset + 2 * point.width])
        end = raw.find(b"\x00")
        raw = (raw if end < 0 else raw[:end]).rstrip(b" ")
        return "".join([chr(b) if 32 <= b < 127 else "?" for b in raw])
    be = bytearray(2 * point.width)
    _reorder(data, offset, be, 0, point.width, point.bswap, point.wswap)
    return struct.unpack(point.fmt, be)[0]


def _fail(point, value, allowed):
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    raise ValueError("point %s: value %s: allowed %s" % (point.name, shown, allowed))


def encode(point, value):
    """Register words (or [bit]) to write for value, a decoded JSON value. ValueError names the
    point, the value and what is allowed. 64-bit integers may also come as decimal text, as
    JSON numbers beyond 2**53 lose digits in many producers (seeds/004 does the same)."""
    t = point.type
    if t == "bool":
        if value is True or value is False or (type(value) is int and 0 <= value <= 1):
            return [1 if value else 0]
        _fail(point, value, "true, false, 0 or 1")
    if t == "ascii":
        n = 2 * point.width
        if type(value) is not str or len(value) > n or [c for c in value if not 32 <= ord(c) < 127]:
            _fail(point, value, "text of at most %d printable ASCII characters" % n)
        raw = value.encode()
        return [(raw[i] << 8 if i < len(raw) else 0) | (raw[i + 1] if i + 1 < len(raw) else 0)
                for i in range(0, n, 2)]
    fmt = point.fmt
    if fmt[1] in "fd":
        if type(value) is bool or not _number(value) or (fmt[1] == "f" and abs(value) > _F32_MAX):
            _fail(point, value, "a finite number" + (" within +-3.4028235e38" if fmt[1] == "f" else ""))
        value = float(value)
    else:
        bits = 16 * point.width
        if fmt[1] in "hiq":
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            lo, hi = 0, (1 << bits) - 1
        allowed = "an integer %d..%d" % (lo, hi)
        v = value
        if type(v) is str and bits == 64 and (v[1:] if v[:1] == "-" else v).isdigit() and len(v) <= 21:
            v = int(v)
        elif type(v) is float and _number(v) and v == int(v):
            v = int(v)
        if type(v) is not int or not lo <= v <= hi:
            _fail(point, value, allowed + (" (or its decimal text)" if bits == 64 else ""))
        value = v
    be = struct.pack(fmt, value)
    wire = bytearray(len(be))
    _reorder(be, 0, wire, 0, point.width, point.bswap, point.wswap)
    return [(wire[i] << 8) | wire[i + 1] for i in range(0, len(wire), 2)]


def write_pdu(point, value, buf, off=0):
    """The write request PDU for value in buf[off:]: FC05 (coil), FC06 (one register) or FC16;
    returns its length. ValueError for read-only points and bad values."""
    if not point.writable:
        raise ValueError("point %s: %s are read-only" % (
            point.name, "discrete inputs" if point.table == DISCRETE_INPUTS else "input registers"))
    words = encode(point, value)
    buf[off + 1] = point.address >> 8
    buf[off + 2] = point.address & 0xFF
    if point.table == COILS:
        buf[off] = 5
        buf[off + 3] = 0xFF if words[0] else 0
        buf[off + 4] = 0
        return 5
    if len(words) == 1:
        buf[off] = 6
        buf[off + 3] = words[0] >> 8
        buf[off + 4] = words[0] & 0xFF
        return 5
    buf[off] = 16
    buf[off + 3] = 0
    buf[off + 4] = len(words)
    buf[off + 5] = 2 * len(words)
    k = off + 6
    for w in words:
        buf[k] = w >> 8
        buf[k + 1] = w & 0xFF
        k += 2
    return k - off


class Batch:
    """One read request covering several points: fc 1-4, first address, count channels.
    items: (point, offset) with offset as decode() takes it, counted from the response PDU's
    function code byte."""

    def __init__(self, table, first):
        self.table = table
        self.fc = (1, 2, 3, 4)[table]
        self.first = first
        self.count = 0
        self.items = []

    def request(self, buf, off=0):
        """The read request PDU in buf[off:]; returns 5."""
        buf[off] = self.fc
        buf[off + 1] = self.first >> 8
        buf[off + 2] = self.first & 0xFF
        buf[off + 3] = self.count >> 8
        buf[off + 4] = self.count & 0xFF
        return 5

    def values(self, pdu, n, off=0):
        """[(point, value)] from the response PDU pdu[off:off+n]; ValueError for an exception
        response or a malformed one."""
        if n >= 2 and pdu[off] == self.fc | 0x80:
            raise ValueError("Modbus exception %d" % pdu[off + 1])
        size = 2 * self.count if self.fc >= 3 else (self.count + 7) >> 3
        if n != size + 2 or pdu[off] != self.fc or pdu[off + 1] != size:
            raise ValueError("malformed response of %d bytes to function %d" % (n, self.fc))
        scale = 8 if self.fc <= 2 else 1
        return [(p, decode(p, pdu, scale * off + o)) for p, o in self.items]


def plan(points, present=None, reg_gap=MAX_REG_GAP, bit_gap=MAX_BIT_GAP):
    """Batches reading every point: points of one table whose channels are contiguous, or apart
    by at most reg_gap registers / bit_gap bits, share one request of at most the engine's own
    limits (pdu.MAX_READ_REGS registers, pdu.MAX_BITS bits). present(table, first, count), e.g.
    DataModel.is_present, keeps a batch from spanning channels that are not there, which would
    turn the whole request into exception 02. Memory positions are read as holding registers."""
    batches = []
    b = None
    for p in sorted(points, key=lambda p: (p.table, p.address)):
        bits = p.table <= DISCRETE_INPUTS
        limit, gap = (MAX_BITS, bit_gap) if bits else (MAX_READ_REGS, reg_gap)
        end = p.address + p.width
        if b is not None and b.table == p.table and p.address - (b.first + b.count) <= gap:
            new = max(end, b.first + b.count) - b.first
            if new > limit or (present is not None and not present(p.table, b.first, new)):
                b = None
        else:
            b = None
        if b is None:
            b = Batch(p.table, p.address)
            batches.append(b)
        b.count = max(b.count, end - b.first)
        rel = p.address - b.first
        b.items.append((p, 16 + rel if bits else 2 + 2 * rel))
    return batches


def should_publish(point, old, new, now_ms, last_ms):
    """Whether to publish new. old: the value last PUBLISHED (None: never), so slow drift adds
    up against the deadband; last_ms: when (time.ticks_ms() on MicroPython, wrap-safe).
    Publish when every_s is due, or on change: |new - old| > deadband for numbers, new != old
    for bool and text. NaN equals NaN here: only a change to or from NaN is published."""
    if old is None or last_ms is None:
        return True
    if point.every_ms and ticks_diff(now_ms, last_ms) >= point.every_ms:
        return True
    if not point.on_change:
        return False
    if point.numeric:
        if new != new or old != old:
            return (new != new) != (old != old)
        return abs(new - old) > point.deadband
    return new != old


def _json(point, value):
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            return "null"  # JSON has no NaN/infinity
        # float32 carries about 7 significant digits: 1.1, not 1.100000023841858.
        return "%.7g" % value if point.fmt == ">f" else repr(value)
    if type(value) is str:
        return json.dumps(value)
    return "%d" % value


def message(point, value, ts_ms):
    """The telemetry payload {"timestamp": <unix ms>, "value": <value>}."""
    return '{"timestamp": %d, "value": %s}' % (ts_ms, _json(point, value))


def result(ts_ms, error=None):
    """The payload on <root>/<point>/res after a write."""
    if error is None:
        return '{"timestamp": %d, "ok": true}' % ts_ms
    return '{"timestamp": %d, "ok": false, "error": %s}' % (ts_ms, json.dumps(error))


def parse_set(payload):
    """The value of a /set payload: {"value": v} or a bare JSON value; ValueError otherwise."""
    try:
        v = json.loads(payload)
    except ValueError:
        raise ValueError('payload is not JSON: allowed {"value": ...} or a bare JSON value')
    if type(v) is dict:
        if "value" not in v or len(v) != 1:
            raise ValueError('payload object: allowed exactly one key, "value"')
        v = v["value"]
    return v
