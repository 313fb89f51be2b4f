"""Typed points: channels of the local map read as numbers or text for MQTT, written from MQTT.

A point is configured as an object in mqtt.points (checked by mbnode.mqtt.pointsconfig, which
is unloaded after start-up like the rest of the configuration code) and used as a Point.
Register types are named by size and sign, with the byte and word order as separate keys; the
types themselves (how registers read as values and back) are mbnode.datatypes', shared with
the poller:

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

MicroPython: integers beyond 30 bits (32-bit and 64-bit types) are heap objects, and on boards
with single-precision floats float64 values keep only float32's precision. Both are fine on the
publish and write paths, which allocate anyway; nothing here runs on the Modbus serving path.
"""

import json

from mbnode import datatypes
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING

try:
    from time import ticks_diff
except ImportError:  # CPython: plain millisecond numbers
    def ticks_diff(a, b):
        return a - b


# plan() bridges gaps of unused channels up to these sizes: reading them from the local engine
# costs a few bytes of copy, far less than a second request.
MAX_REG_GAP = 8
MAX_BIT_GAP = 32


class Point:
    """One point ready for use. d: one entry of the checked mqtt.points (check() filled in every
    default; a key left out here takes that same default). retain: mqtt.retain, used when the
    point's own retain is null. Twelve attributes at most: an instance's attributes live in a
    hash table of 12 slots up to 12 (then 17, 23...), and a device may hold 64 points; the
    publish policy's usual values are the class's, so a point stores deadband, every_ms and
    retain only when its own differ (10 slots up to 10). What a point is made of at run time
    beyond its layout (the value last published) is kept by mbnode.mqtt.telemetry in lists
    indexed by the point's number."""

    deadband = 0  # the change that publishes; None: changes never do (on_change false, every_s only)
    every_ms = 0  # publish every this many ms whether or not it changed; 0: never
    retain = False

    def __init__(self, d, retain=False):
        from mbnode import typenames  # start-up only: app.run unloads them once the parts are built
        from mbnode.memory32 import mem_register

        self.name = d["name"]
        table = d["table"]
        self.table, t = typenames.TABLES[table][:2]
        # type, fmt, width (registers, or 1 bit), bswap, wswap, numeric: mbnode.typenames.setup
        typenames.setup(self, d.get("type", t), d.get("byte_order", "BE"), d.get("word_order", "BE"),
                        d.get("signed", False), d.get("count", 0))
        self.address = mem_register(d["position"]) if table == "memory" else d["address"]
        if not d.get("on_change", True):
            self.deadband = None
        elif d.get("deadband", 0):
            self.deadband = d["deadband"]
        if d.get("every_s", 0):
            self.every_ms = 1000 * d["every_s"]
        r = d.get("retain")
        if retain if r is None else r:
            self.retain = True


def writable(point):
    """Coils, holding registers and memory positions (holding registers too) take writes."""
    return point.table == COILS or point.table == HOLDING


# The point's value from response data: bit points' offset is the bit index into data (bits
# packed LSB first, as FC01/02 send them), register points' the byte offset of the point's first
# register (wire format, high byte first).
decode = datatypes.decode


def encode(point, value):
    """Register words (or [bit]) to write for value, a decoded JSON value. ValueError names the
    point, the value and what is allowed. 64-bit integers may also come as decimal text
    (mbnode.datatypes.check)."""
    try:
        return datatypes.encode(point, value)
    except ValueError as e:
        raise ValueError("point %s: %s" % (point.name, e.args[0]))


def write_pdu(point, value, buf, off=0):
    """The write request PDU for value in buf[off:]: FC05 (coil), FC06 (one register) or FC16;
    returns its length. ValueError for read-only points and bad values."""
    if not writable(point):
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


def answer_size(req, ro):
    """The length of the answer PDU to the read request req[ro:ro + 5] (a batch of plan())."""
    count = (req[ro + 3] << 8) | req[ro + 4]
    return 2 + (2 * count if req[ro] >= 3 else (count + 7) >> 3)


def check_answer(req, ro, pdu, n):
    """ValueError unless pdu[:n] answers the read request req[ro:ro + 5] (a batch of plan()):
    an exception response, or one of the wrong length."""
    fc = req[ro]
    if n >= 2 and pdu[0] == fc | 0x80:
        raise ValueError("Modbus exception %d" % pdu[1])
    size = answer_size(req, ro)
    if n != size or pdu[0] != fc or pdu[1] != size - 2:
        raise ValueError("malformed response of %d bytes to function %d" % (n, fc))


START_ONLY = ("plan",)  # dropped by app.run once the parts are built (Telemetry has its batches)


def plan(points, present=None, reg_gap=MAX_REG_GAP, bit_gap=MAX_BIT_GAP):
    """The batches reading every point: points of one table whose channels are contiguous, or
    apart by at most reg_gap registers / bit_gap bits, share one request of at most the engine's
    own limits (pdu.MAX_READ_REGS registers, pdu.MAX_BITS bits). present(table, first, count),
    e.g. DataModel.is_present, keeps a batch from spanning channels that are not there, which
    would turn the whole request into exception 02. Memory positions are read as holding
    registers.

    Returns (reqs, order, offsets, ends), flat tables rather than an object per batch: reqs
    holds batch i's read request PDU at reqs[5 * i:] (function 1-4, first address, count);
    its points are points[order[j]] for j in range(ends[i - 1] (0 for i = 0), ends[i]), each
    read at offsets[j] in the response PDU as decode() takes it (bits: the bit index from the
    function code byte; registers: the byte offset of the point's first register)."""
    from mbnode.pdu import MAX_BITS, MAX_READ_REGS  # imported here: plan() is start-up only (START_ONLY)

    reqs = bytearray()
    order = []
    offsets = []
    ends = []
    table = first = count = -1  # the batch being filled
    for k in sorted(range(len(points)), key=lambda k: (points[k].table, points[k].address)):
        p = points[k]
        bits = p.table <= DISCRETE_INPUTS
        limit, gap = (MAX_BITS, bit_gap) if bits else (MAX_READ_REGS, reg_gap)
        end = p.address + p.width
        new = max(end, first + count) - first  # the batch's count with p in it
        if (p.table != table or p.address - (first + count) > gap or new > limit
                or (present is not None and not present(table, first, new))):
            table, first, count = p.table, p.address, 0  # p starts a batch of its own
            reqs += bytes((table + 1, first >> 8, first & 0xFF, 0, 0))  # fc 1-4 is the table + 1
            ends.append(0)
            new = end - first
        count = max(count, new)
        reqs[-2] = count >> 8
        reqs[-1] = count & 0xFF
        order.append(k)
        rel = p.address - first
        offsets.append(16 + rel if bits else 2 + 2 * rel)
        ends[-1] = len(order)
    return bytes(reqs), bytes(order), tuple(offsets), bytes(ends)


def should_publish(point, old, new, now_ms, last_ms):
    """Whether to publish new. old: the value last PUBLISHED (None: never), so slow drift adds
    up against the deadband; last_ms: when (time.ticks_ms() on MicroPython, wrap-safe).
    Publish when every_s is due, or on change: |new - old| > deadband for numbers, new != old
    for bool and text. NaN equals NaN here: only a change to or from NaN is published."""
    if old is None or last_ms is None:
        return True
    if point.every_ms and ticks_diff(now_ms, last_ms) >= point.every_ms:
        return True
    if point.deadband is None:  # on_change false
        return False
    if point.numeric:
        if new != new or old != old:
            return (new != new) != (old != old)
        return abs(new - old) > point.deadband
    return new != old


def message(point, value, ts_ms):
    """The telemetry payload {"timestamp": <unix ms>, "value": <value>}."""
    return '{"timestamp": %d, "value": %s}' % (ts_ms, datatypes.json_value(point, value))


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
