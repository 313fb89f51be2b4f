"""mbnode.datatypes on CPython (the same source the firmware runs): the poller's additions
(int8, uint8, hex) and the order keys its alarms compare with (mbnode.poller.order_key). The MQTT
points' types are tested through mbnode.mqtt.points in test_points.py.

Expected values come from struct and Python's own ordering of numbers, not from the module."""

import math
import random
import struct

import pytest

from mbnode import datatypes, pollbuild, typenames
from mbnode.poller import compare, order_key


class Layout:
    def __init__(self, t, byte_order="BE", word_order="BE", count=0):
        typenames.setup(self, t, byte_order, word_order, False, count)
        self.size = typenames.TYPES[t][1]
        self.order = pollbuild.order(self.fmt)


FORMATS = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f",
           "int64": "q", "uint64": "Q", "float64": "d"}


def samples(t, rnd):
    fmt = FORMATS[t]
    if fmt in "fd":
        special = [0.0, -0.0, 1.0, -1.0, 1e-40 if fmt == "f" else 5e-324, -1e-40 if fmt == "f" else -5e-324,
                   3.4e38, -3.4e38, float("inf"), float("-inf")]
        out = special + [rnd.uniform(-1e6, 1e6) for _ in range(200)]
        # Round-trip through the format so Python compares the values the bytes hold.
        return [struct.unpack(">" + fmt, struct.pack(">" + fmt, v))[0] for v in out]
    bits = 8 * struct.calcsize(fmt)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() else (0, (1 << bits) - 1)
    return [lo, hi, 0, 1, -1 if lo else 2, lo + 1, hi - 1] + [rnd.randint(lo, hi) for _ in range(200)]


@pytest.mark.parametrize("t", sorted(FORMATS))
def test_order_keys_compare_as_the_numbers_do(t):
    rnd = random.Random(t)
    lay = Layout(t)
    fmt = ">" + FORMATS[t]
    values = samples(t, rnd)
    keys = []
    for v in values:
        k = bytearray(struct.pack(fmt, v))
        assert order_key(k, 0, len(k), lay.order)
        keys.append(bytes(k))
    for _ in range(2000):
        i, j = rnd.randrange(len(values)), rnd.randrange(len(values))
        a, b = values[i], values[j]
        want = (a > b) - (a < b)
        assert compare(keys[i], 0, keys[j], 0, len(keys[i])) == want, (a, b)


@pytest.mark.parametrize("t, nan", [("float32", struct.pack(">f", math.nan)), ("float32", b"\xff\xc0\x00\x01"),
                                    ("float64", struct.pack(">d", math.nan)), ("float64", b"\x7f\xf0\x00\x00\x00\x00\x00\x01")])
def test_nan_has_no_order_key(t, nan):
    k = bytearray(nan)
    assert not order_key(k, 0, len(k), Layout(t).order)


def test_infinity_is_no_nan():
    for v in (math.inf, -math.inf):
        for fmt, t in ((">f", "float32"), (">d", "float64")):
            k = bytearray(struct.pack(fmt, v))
            assert order_key(k, 0, len(k), Layout(t).order)


def test_eight_bit_values_are_bytes():
    data = bytes([0xAA, 0xF6, 0x05])
    assert datatypes.decode(Layout("int8"), data, 1) == -10
    assert datatypes.decode(Layout("uint8"), data, 1) == 246
    assert datatypes.decode(Layout("int8"), data, 2) == 5
    assert datatypes.check(Layout("int8"), -128) == -128
    assert datatypes.check(Layout("uint8"), 255.0) == 255
    with pytest.raises(ValueError) as e:
        datatypes.check(Layout("int8"), 128)
    assert str(e.value) == "value 128: allowed an integer -128..127"


def test_hex_text():
    lay = Layout("hex", count=2)
    assert datatypes.decode(lay, b"\x00\xbe\xef\x01\x2a", 1) == "BEEF012A"
    assert datatypes.check(lay, "beef012a") == "BEEF012A"
    for bad in ("BEEF", "BEEF012G", 5):
        with pytest.raises(ValueError) as e:
            datatypes.check(lay, bad)
        assert str(e.value).endswith("allowed text of 8 hexadecimal digits")


def test_json_values_and_lists():
    f = Layout("float32")
    assert datatypes.json_value(f, [1.100000023841858, -2.5]) == "[1.1, -2.5]"
    assert datatypes.json_value(Layout("int8"), [-10, 5]) == "[-10, 5]"
    assert datatypes.json_value(Layout("bool"), [True, False]) == "[true, false]"
    assert datatypes.json_value(Layout("hex", count=1), "BEEF") == '"BEEF"'
    assert datatypes.json_value(Layout("float64"), math.nan) == "null"


def test_layouts():
    assert [(x.width, x.size, x.order) for x in (Layout("bool"), Layout("int8"), Layout("uint16"), Layout("int32"),
                                                 Layout("float64"), Layout("ascii", count=3))] == [
        (1, 0, 0), (1, 1, 1), (1, 2, 0), (2, 4, 1), (4, 8, 2), (3, 0, 0)]
    m = Layout("memory32")
    assert (m.wswap, m.fmt) == (True, ">I")
    # Six attributes, as the MQTT points hold them (64 of them on a device).
    class Bare:
        pass
    b = Bare()
    typenames.setup(b, "float32")
    assert sorted(vars(b)) == ["bswap", "fmt", "numeric", "type", "width", "wswap"]
