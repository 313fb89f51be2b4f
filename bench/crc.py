"""RTU section, CRC part: microseconds per CRC-16/MODBUS of a 256-byte frame on the unix port.

One file, two roles:
- under MicroPython it is the measurement script (run with firmware/ on MICROPYPATH):
    micropython crc.py [ROUNDS]     prints "crc NAME US_PER_CALL VALUE" per variant
- under CPython, `measure(bits)` runs it on the unix-port binary and parses those lines.

Variants, all over the same 256 bytes (the longest RTU frame):
  table-viper  mbnode.crc.crc16: viper loop over a 512-byte little-endian table (the firmware's)
  bits-viper   viper bit-by-bit loop, 8 shift/xor steps per byte (written here for comparison)
  table-py     plain Python loop over a 256-entry int table (the method umodbus/serial.py uses)
  bits-py      plain Python bit-by-bit loop
Every variant must give the same value; the check value of b"123456789" (0x4B37) is verified
first. Timing: best of 5 batches of ROUNDS calls, time.ticks_us(), per call.
"""

import sys

CHECK_INPUT = b"123456789"
CHECK_VALUE = 0x4B37  # CRC-16/MODBUS check value (catalogue of parametrised CRC algorithms)
FRAME = 256
ROUNDS = 200

if sys.implementation.name == "micropython":
    import micropython
    import time

    from mbnode.crc import crc16 as _mbnode_crc16

    @micropython.viper
    def _bits_viper(buf, n: int) -> int:
        b = ptr8(buf)  # noqa: F821 - viper built-in
        crc = 0xFFFF
        i = 0
        while i < n:
            crc = crc ^ b[i]
            j = 0
            while j < 8:
                if crc & 1:
                    crc = (crc >> 1) ^ 0xA001
                else:
                    crc = crc >> 1
                j += 1
            i += 1
        return crc

    def _make_table():
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t.append(c)
        return tuple(t)

    _TABLE = _make_table()

    def _table_py(buf, n):
        crc = 0xFFFF
        t = _TABLE
        for i in range(n):
            crc = (crc >> 8) ^ t[(crc ^ buf[i]) & 0xFF]
        return crc

    def _bits_py(buf, n):
        crc = 0xFFFF
        for i in range(n):
            crc ^= buf[i]
            for _ in range(8):
                if crc & 1:
                    crc = (crc >> 1) ^ 0xA001
                else:
                    crc >>= 1
        return crc

    VARIANTS = (
        ("table-viper", lambda b, n: _mbnode_crc16(b, 0, n)),
        ("bits-viper", _bits_viper),
        ("table-py", _table_py),
        ("bits-py", _bits_py),
    )

    def _time(fn, buf, rounds):
        best = None
        for _ in range(5):
            t0 = time.ticks_us()
            for _ in range(rounds):
                fn(buf, FRAME)
            dt = time.ticks_diff(time.ticks_us(), t0)
            best = dt if best is None or dt < best else best
        return best / rounds

    def _main():
        rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
        check = bytearray(CHECK_INPUT)
        frame = bytearray((i * 37 + 11) & 0xFF for i in range(FRAME))
        for name, fn in VARIANTS:
            got = fn(check, len(check))
            if got != CHECK_VALUE:
                print("crc-error %s check value %04X, expected %04X" % (name, got, CHECK_VALUE))
                continue
            # plain Python is ~100x slower: fewer rounds keep the run short
            n = rounds if name.endswith("viper") else max(1, rounds // 20)
            print("crc %s %.2f %04X" % (name, _time(fn, frame, n), fn(frame, FRAME)))

    _main()

else:
    import os
    import subprocess

    def measure(bits=32, rounds=ROUNDS):
        """{variant: (us per call, crc value)} on micropython-<bits>; raises on a wrong CRC."""
        from common import BENCH, micropython, paths

        env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(paths.FIRMWARE)]))
        r = subprocess.run([micropython(bits), str(BENCH / "crc.py"), str(rounds)], env=env,
                           capture_output=True, text=True, timeout=60)
        out = {}
        for line in r.stdout.splitlines():
            w = line.split()
            if w[:1] == ["crc-error"]:
                raise RuntimeError("micropython-%d: %s" % (bits, line))
            if w[:1] == ["crc"] and len(w) == 4:
                out[w[1]] = (float(w[2]), int(w[3], 16))
        if len(out) != 4:
            raise RuntimeError("micropython-%d crc.py: exit %s, output %r %r"
                               % (bits, r.returncode, r.stdout[-300:], r.stderr[-500:]))
        if len({v for _, v in out.values()}) != 1:
            raise RuntimeError("micropython-%d: the CRC variants disagree: %r" % (bits, out))
        return out
