"""Fail-safe outputs: when the masters go quiet, every output takes its configured safe value.

Loaded only when the configuration has a "failsafe" section with enabled true (its schema and
checks: mbnode.failsafeconfig; docs/configuration.md, "Fail-safe outputs").

- A valid request is one a transport brought and the Engine answered (Modbus TCP, RTU, the MQTT
  gateway's local requests and /set writes; reads and writes alike, an exception answer too: the
  master is there). The Engine counts them (requests_lo/hi); this loop timer watches the count,
  and the loop ticks every timer after each poll, so a request is seen in the loop step that
  served it. The device's own requests (SOURCE_LOCAL: telemetry scans, the poller, fail-safe
  itself) are not counted and keep nothing alive. The clock starts at boot: a device no master
  ever talks to goes safe timeout_ms after start-up.
- No request for timeout_ms: the safe values are written through Engine.handle as the device's
  own FC15/FC16 requests (prepared at start-up, one per run of consecutive channels), so pins,
  extension modules and every other output subscriber follow as for a master's write; "hold"
  channels are left as they are. health.failsafe becomes 1, `<root>/failsafe` on MQTT "1".
- The next valid request ends fail-safe (health.failsafe 0, MQTT "0"). The outputs STAY at their
  safe values until a master writes them: nothing switches back on by itself when the line
  comes back (the master may have given up on that state; a motor must not restart unasked).
- Extension outputs are written once on entry; a module offline then keeps its own state (its
  write is answered 0x0B, printed on one line).

timeout_ms may be changed at run time (the settings registers): it counts from the last request.
Allocation-free in steady state (a tick compares two counters and a time).
"""

import time

from mbnode.datamodel import COILS, HOLDING, MEM_BASE, REG_CHANNELS

_HOLD = -1
_MAX_BITS = 0x240  # FC15 quantity the Engine takes (pdu.MAX_BITS)
_MAX_REGS = 120  # FC16 quantity (pdu.MAX_WRITE_REGS is 123): an even number, whole memory positions


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


class Failsafe:
    def __init__(self, engine, health, pdus, timeout_ms):
        self.engine = engine
        self.health = health
        self.pdus = pdus
        self.timeout_ms = timeout_ms
        self.resp = bytearray(8)  # the answers: 5 bytes, or 2 for an exception
        self.lo = engine.requests_lo
        self.hi = engine.requests_hi
        self.last = time.ticks_ms()  # when the last request was seen (start-up: boot)
        self.publish = None  # the MQTT bridge's publish, once attached
        self.topic = None

    # --- loop timer

    def due_in(self, now):
        if self.health.failsafe:
            return -1  # a request wakes the loop anyway; tick() sees it after that poll
        d = self.timeout_ms - time.ticks_diff(now, self.last)
        return d if d > 0 else 0

    def tick(self, now):
        e = self.engine
        if e.requests_lo != self.lo or e.requests_hi != self.hi:
            self.lo = e.requests_lo
            self.hi = e.requests_hi
            self.last = now
            if self.health.failsafe:
                self._state(0)
        elif not self.health.failsafe and time.ticks_diff(now, self.last) >= self.timeout_ms:
            self.apply()
            self._state(1)

    def apply(self):
        """Write the safe values (the device's own requests: not counted, never refused)."""
        e = self.engine
        resp = self.resp
        for pdu in self.pdus:
            e.handle(pdu, 0, len(pdu), resp, 0)
            if resp[0] & 0x80:
                print("failsafe: safe values from 0x%02X%02X not written: exception %d" % (pdu[1], pdu[2], resp[1]))

    def _state(self, on):
        self.health.failsafe = on
        print("failsafe: no request for timeout_ms: outputs at their safe values" if on else
              "failsafe: a request came: fail-safe over, outputs stay until written")
        if self.publish is not None:
            self.publish(self.topic, b"1" if on else b"0", True)

    # --- the MQTT bridge's seams (mbnode.mqtt.bridge.start: publishers)

    def attach(self, publish, base, root):
        """Publish the state retained on <root>/failsafe; returns that topic's length."""
        self.publish = publish
        self.topic = root + b"failsafe"
        return len(self.topic)

    def connected(self):
        """The bridge (re)connected: the broker gets the current state."""
        self.publish(self.topic, b"1" if self.health.failsafe else b"0", True)


def start(loop, engine, model, health, fs):
    """Fail-safe on the loop, from the checked section; returns the Failsafe."""
    f = Failsafe(engine, health, requests(model.present, fs), fs["timeout_ms"])
    loop.add_timer(f)
    return f
