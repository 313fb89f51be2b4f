"""Allocation-free byte and bit copies for the request hot path.

On MicroPython these compile with the viper emitter (machine-word loops over raw buffers, no heap
use). CPython has no viper, so there the same source runs as ordinary functions: `micropython`
and `ptr8` get do-nothing stand-ins. One text, two speeds, identical results, so the CPython
tests prove the logic the board runs.
"""

try:
    import micropython
except ImportError:  # CPython

    class micropython:  # noqa: N801 - stands in for the MicroPython module
        @staticmethod
        def viper(f):
            return f

    def ptr8(buf):
        return buf


@micropython.viper
def copy(dst, do: int, src, so: int, n: int):
    # Copy n bytes src[so:] -> dst[do:]; safe for overlap when do <= so (ascending copy).
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[do + i] = s[so + i]
        i += 1


@micropython.viper
def get_bits(dst, do: int, src, start: int, qty: int) -> int:
    # Pack qty bits of bitmap src from bit `start` into dst[do:], LSB first, unused high bits
    # of the last byte zero. src needs one spare byte past its last bit. Returns bytes written.
    d = ptr8(dst)
    s = ptr8(src)
    nbytes = (qty + 7) >> 3
    k = start >> 3
    sh = start & 7
    i = 0
    while i < nbytes:
        v = s[k + i] >> sh
        if sh:
            v = v | (s[k + i + 1] << (8 - sh))
        d[do + i] = v & 0xFF
        i += 1
    rem = qty & 7
    if rem:
        d[do + nbytes - 1] = d[do + nbytes - 1] & ((1 << rem) - 1)
    return nbytes


@micropython.viper
def put_bits(dst, start: int, src, so: int, qty: int):
    # Store qty packed bits (LSB first) from src[so:] into bitmap dst from bit `start`.
    d = ptr8(dst)
    s = ptr8(src)
    j = 0
    while j < qty:
        pos = start + j
        mask = 1 << (pos & 7)
        if (s[so + (j >> 3)] >> (j & 7)) & 1:
            d[pos >> 3] = d[pos >> 3] | mask
        else:
            d[pos >> 3] = d[pos >> 3] & (0xFF ^ mask)
        j += 1


@micropython.viper
def any_above(buf, off: int, count: int, limit: int) -> int:
    # 1 if any of `count` big-endian 16-bit words at buf[off:] exceeds limit, else 0.
    b = ptr8(buf)
    i = 0
    while i < count:
        if ((b[off + 2 * i] << 8) | b[off + 2 * i + 1]) > limit:
            return 1
        i += 1
    return 0

