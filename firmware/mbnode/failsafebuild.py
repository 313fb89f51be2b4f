"""Start-up only: fail-safe (mbnode.failsafe.Failsafe) on the loop, its safe state as the request
PDUs it sends through the Engine; start() unloads the module again once they are built."""

import time

from mbnode.datamodel import COILS, HOLDING, MEM_BASE, REG_CHANNELS
from mbnode.failsafe import Failsafe

_HOLD = -1
_MAX_BITS = 0x240  # FC15 quantity the Engine takes (pdu.MAX_BITS)
_MAX_REGS = 120  # FC16 quantity (pdu.MAX_WRITE_REGS is 123): an even number, whole memory positions


def start(loop, engine, model, health, fs):
    """Fail-safe on the loop, from the checked section; returns the Failsafe."""
    import sys

    import mbnode

    del sys.modules["mbnode.failsafebuild"]
    delattr(mbnode, "failsafebuild")
    f = Failsafe()
    f.engine = engine
    f.health = health
    f.pdus = tuple(requests(model.present, fs))
    f.timeout_ms = fs["timeout_ms"]
    f.resp = bytearray(8)  # the answers: 5 bytes, or 2 for an exception
    f.lo = engine.requests_lo
    f.hi = engine.requests_hi
    f.last = time.ticks_ms()  # when the last request was seen (start-up: boot)
    f.publish = None  # the MQTT bridge's publish, once attached
    f.topic = None
    loop.add_timer(f)
    return f


def span(key):
    """A failsafe key "ADDRESS" or "FIRST-LAST" (decimal or 0x hex, checked) -> (first, last)."""
    parts = key.split("-")
    return _int(parts[0]), _int(parts[-1])


def _int(s):
    s = s.strip()
    return int(s[2:], 16) if s[:2] in ("0x", "0X") else int(s)


def _value(given, default, a):
    # The safe value of channel a: the last key naming it, else the default.
    v = default
    for first, last, x in given:
        if first <= a <= last:
            v = x
    return v


def _runs(ranges, given, default, limit):
    # [(first, [values])]: consecutive channels that are not held, within one present range.
    out = []
    for i in range(0, len(ranges), 2):
        run = None
        for a in range(ranges[i], ranges[i + 1] + 1):
            v = _value(given, default, a)
            if v == _HOLD:
                run = None
            elif run is None or len(run[1]) == limit:
                run = (a, [v])
                out.append(run)
            else:
                run[1].append(v)
    return out


def _fc15(first, values):
    n = len(values)
    pdu = bytearray(6 + (n + 7) // 8)
    pdu[0:6] = bytes((15, first >> 8, first & 0xFF, n >> 8, n & 0xFF, (n + 7) // 8))
    for i in range(n):
        if values[i]:
            pdu[6 + i // 8] |= 1 << (i % 8)
    return pdu


def _fc16(first, words):
    n = len(words)
    pdu = bytearray(6 + 2 * n)
    pdu[0:6] = bytes((16, first >> 8, first & 0xFF, n >> 8, n & 0xFF, 2 * n))
    for i in range(n):
        pdu[6 + 2 * i] = words[i] >> 8
        pdu[7 + 2 * i] = words[i] & 0xFF
    return pdu


def requests(present, fs):
    """The safe state as request PDUs: FC15 per run of coils, FC16 per run of AO registers and of
    memory positions. present: DataModel.present (merged ranges per table); fs: the checked
    failsafe section."""
    do = [span(k) + ({"off": 0, "on": 1}.get(v, _HOLD),) for k, v in fs["do"].items()]
    default = {"off": 0, "on": 1}.get(fs["do_default"], _HOLD)
    pdus = [_fc15(a, v) for a, v in _runs(present[COILS], do, default, _MAX_BITS)]
    ao = [span(k) + (_HOLD if v == "hold" else v,) for k, v in fs["ao"].items()]
    default = _HOLD if fs["ao_default"] == "hold" else fs["ao_default"]
    regs = present[HOLDING]
    ranges = []  # the AO channels' part of the holding ranges (memory positions apart)
    for i in range(0, len(regs), 2):
        if regs[i] < REG_CHANNELS:
            ranges += [regs[i], min(regs[i + 1], REG_CHANNELS - 1)]
    pdus += [_fc16(a, v) for a, v in _runs(ranges, ao, default, _MAX_REGS)]
    for k, v in fs["memory"].items():
        first, last = span(k)
        v &= 0xFFFFFFFF
        words = [v & 0xFFFF, v >> 16] * (last - first + 1)  # lower half first
        for i in range(0, len(words), _MAX_REGS):
            pdus.append(_fc16(MEM_BASE + 2 * (first - 1) + i, words[i:i + _MAX_REGS]))
    return pdus
