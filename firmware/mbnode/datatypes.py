"""Data types of Modbus values: the one definition of how registers and bits read as numbers or
text, and how values become registers again. The MQTT points (mbnode.mqtt.points) and the poller
(mbnode.poller, pollbuild, polltext) use it, and so do their configuration checks
(pointsconfig, pollconfig).

  type      bytes  struct  what it is
  bool      -      -       one bit (coils, discrete inputs), or a register that is not 0
  int8      1      >b      (poller) each byte of the registers, high byte first
  uint8     1      >B      (poller)
  int16     2      >h      byte_order BE | LE
  uint16    2      >H
  int32     4      >i      byte_order and word_order
  uint32    4      >I
  float32   4      >f
  int64     8      >q
  uint64    8      >Q
  float64   8      >d
  memory32  4      >I      (points) an mbnode memory position: lower half first, "signed" or not
  ascii     count  -       2 characters per register, high byte first; ends at the first NUL
  hex       count  -       (poller) the registers' bytes as hexadecimal digits, "00FF1A2B"

A user of a type keeps its layout in attributes of its own object: type, fmt, width (registers
of one value: the count for text, 1 for bool and int8/uint8), bswap, wswap, numeric. The names
as the configuration has them (the table above, TYPES, and where typed values live, TABLES) and
setup(), which gives an object its layout, are mbnode.typenames': start-up and the configuration
checks only, unloaded once the parts are built; this module is what the parts use at run time.
word_order BE puts the most significant 16 bits in the lowest register; byte_order BE keeps each
register's bytes as on the wire. seeds/004's *LE names read
all the bytes reversed: byte_order LE with word_order LE; the common word swap (CDAB) is
byte_order BE, word_order LE. seeds/000's "16bit INT, low byte first" is int16 with byte_order LE.

MicroPython: integers beyond 30 bits are heap objects, floats too, and on boards with
single-precision floats float64 values keep only float32's precision. decode() and encode()
allocate; reorder() does not (the poller's steady state uses it, and its own order keys).
"""

import json
import struct

NAME_MAX = 32  # a named value's longest name: one MQTT topic level (mqtt.points, the poller's points)
F32_MAX = 3.4028234663852886e38
_HEX = "0123456789ABCDEF"


def reorder(src, so, dst, do, n, bswap, wswap):
    """n registers at src[so:] <-> the value's big-endian bytes at dst[do:]. Register i holds
    value word i (word_order BE) or word n-1-i (LE); the same formula maps both ways."""
    for i in range(n):
        s = so + 2 * i
        k = do + 2 * ((n - 1 - i) if wswap else i)
        dst[k + bswap] = src[s]
        dst[k + 1 - bswap] = src[s + 1]


def decode(obj, data, offset):
    """The value at data[offset:]. bool: offset is a bit index (bits packed LSB first, as
    FC01/02 send them); the others: the byte offset of the value's first register, or of its
    byte for int8/uint8 (wire format)."""
    t = obj.type
    if t == "bool":
        return ((data[offset >> 3] >> (offset & 7)) & 1) == 1
    if t == "ascii":
        # Text stops at the first NUL (C-style), then trailing spaces go.
        raw = bytes(data[offset:offset + 2 * obj.width])
        end = raw.find(b"\x00")
        raw = (raw if end < 0 else raw[:end]).rstrip(b" ")
        return "".join([chr(b) if 32 <= b < 127 else "?" for b in raw])
    if t == "hex":
        return "".join([_HEX[b >> 4] + _HEX[b & 15] for b in data[offset:offset + 2 * obj.width]])
    if obj.fmt[1] in "bB":
        b = data[offset]
        return b - 256 if obj.fmt[1] == "b" and b > 127 else b
    be = bytearray(2 * obj.width)
    reorder(data, offset, be, 0, obj.width, obj.bswap, obj.wswap)
    return struct.unpack(obj.fmt, be)[0]


def _number(v):
    return type(v) in (int, float) and v == v and abs(v) != float("inf")


def _refused(obj, value):
    # check()'s ValueError, from mbnode.badvalue: loaded for it and dropped again, so none of its
    # texts stays on the heap.
    import sys

    import mbnode

    try:
        from mbnode.badvalue import refusal

        return refusal(obj, value)
    finally:
        sys.modules.pop("mbnode.badvalue", None)
        if hasattr(mbnode, "badvalue"):
            delattr(mbnode, "badvalue")


def check(obj, value):
    """value (decoded JSON) as the type takes it: True/False for bool, text for ascii and hex
    (hex in capitals), an int or float for the numbers. ValueError("value V: allowed A"; the
    texts: mbnode.badvalue). 64-bit integers may also come as decimal text, as JSON numbers
    beyond 2**53 lose digits in many producers (seeds/004 does the same)."""
    t = obj.type
    if t == "bool":
        if value is True or value is False or (type(value) is int and 0 <= value <= 1):
            return bool(value)
    elif t == "ascii":
        if type(value) is str and len(value) <= 2 * obj.width and not [c for c in value if not 32 <= ord(c) < 127]:
            return value
    elif t == "hex":
        if type(value) is str and len(value) == 4 * obj.width and not [c for c in value.upper() if c not in _HEX]:
            return value.upper()
    elif obj.fmt[1] in "fd":
        if type(value) is not bool and _number(value) and (obj.fmt[1] == "d" or abs(value) <= F32_MAX):
            return float(value)
    else:
        lo, hi = limits(obj)
        v = value
        if type(v) is str and obj.fmt[1] in "qQ" and (v[1:] if v[:1] == "-" else v).isdigit() and len(v) <= 21:
            v = int(v)
        elif type(v) is float and _number(v) and v == int(v):
            v = int(v)
        if type(v) is int and lo <= v <= hi:
            return v
    raise _refused(obj, value)


def limits(obj):
    """(lowest, highest) value of an integer type (fmt b, B, h, H, i, I, q, Q)."""
    bits = 8 * struct.calcsize(obj.fmt)
    if obj.fmt[1] in "bhiq":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def encode(obj, value):
    """Register words (or [bit] for bool) to write for value (not hex: it is read only), in the
    type's byte and word order. ValueError as check()."""
    value = check(obj, value)
    if obj.type == "bool":
        return [1 if value else 0]
    if obj.type == "ascii":
        be = value.encode() + bytes(2 * obj.width - len(value))
    else:
        be = struct.pack(obj.fmt, value)
        wire = bytearray(len(be))
        reorder(be, 0, wire, 0, obj.width, obj.bswap, obj.wswap)
        be = wire
    return [(be[i] << 8) | be[i + 1] for i in range(0, len(be), 2)]


def json_value(obj, value):
    """value as JSON text: numbers (float32 with 7 significant digits: 1.1, not
    1.100000023841858), true/false, text; a list of them as a JSON array."""
    if type(value) is list:
        return "[" + ", ".join([json_value(obj, v) for v in value]) + "]"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is float:
        if value != value or abs(value) == float("inf"):
            return "null"  # JSON has no NaN/infinity
        return "%.7g" % value if obj.fmt == ">f" else repr(value)
    if type(value) is str:
        return json.dumps(value)
    return str(value)  # an int
