"""Input and output modes of the onboard channels (the "io" section, docs/configuration.md):
between the field side a board provides (raw pin levels and edges, raw ADC readings, output
pins) and the data model.

- DI: invert, debounce, and a mode: level; counter (32-bit, rising or falling edges); latch (the
  edge is kept until a master clears it); frequency (edges per second over a gate time).
  Counters, latches and frequencies are published in 32-bit memory positions (lower half first);
  a master's write of a position presets the counter (0 resets it), clears (0) or sets the latch,
  or restarts the frequency's gate. The DI bit shows the debounced, inverted level, except in
  latch mode, where it shows the latch.
- AI: a sample every period_ms, the average of the last N, scaled linearly to int16
  engineering units (rounded half away from zero, clamped to -32768..32767).
- DO: a power-on value, invert, pulse mode (a write of 1 is on for pulse_ms, then the coil is
  written 0 again through the Engine, so every output subscriber hears it).
- AO: a power-on value and the PWM frequency.

Edges are counted by the board's pin interrupts (field.pin(n).irq with hard=True) in `edge`,
which allocates nothing: a small-int counter that wraps at 2**30, and the time of the edge for
the debounce. Everything else runs on one loop timer every io.scan_ms (earlier when a
debounce or a pulse ends), allocation-free in steady state (tests/core/alloc_io.py).
"""

import time

from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, MEM_BASE
from mbnode.pdu import put_head

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_WRAP = const(0x3FFFFFFF)  # interrupt counters wrap here: small ints on every port
_FREQ_MAX = const(1000000)  # edges in one gate counted at most (x1000 stays a small int)
_COUNTER = const(1)  # the modes as iobuild.MODES numbers them (0: level)
_LATCH = const(2)
_FREQUENCY = const(3)

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff


class _DI:
    """A DI channel with a mode (its fields: mbnode.iobuild.di). A channel has the fields of the
    frequency mode (gate, acc, g) and of a debounce (stable, active) only when it uses them:
    every field an object sets takes 8 B of its member table, whose size steps from 12 to 17."""

    deb = 0  # no debounce, unless the channel has its own

    def edge(self, pin):
        # The pin interrupt (hard): two small-int stores, nothing allocated.
        self.edges = (self.edges + 1) & _WRAP
        self.t = ticks_ms()


def scale(a, x):
    """Raw reading x of AI channel a in engineering units as a register value (int16 two's
    complement): low + (x - raw_low) * (high - low) / (raw_high - raw_low), rounded half away
    from zero, clamped to -32768..32767; in small ints only (no product above 2**25)."""
    d = x - a.rl
    s = a.span
    den = a.den
    neg = (d < 0) ^ (s < 0) ^ (den < 0)
    d = abs(d)
    s = abs(s)
    den = abs(den)
    hi = (d >> 8) * s
    q = hi // den
    if q > 0x7FFF:
        q = 0x10000
    else:
        t = (hi - q * den) * 256 + (d & 0xFF) * s
        q2 = t // den
        q = q * 256 + q2
        if 2 * (t - q2 * den) >= den:
            q += 1
    v = a.low - q if neg else a.low + q
    if v > 32767:
        v = 32767
    elif v < -32768:
        v = -32768
    return v & 0xFFFF


def _put32(regs, o, v):
    # A 32-bit memory position (lower half first, each half big-endian) from a small int >= 0.
    regs[o] = (v >> 8) & 0xFF
    regs[o + 1] = v & 0xFF
    regs[o + 2] = (v >> 24) & 0xFF
    regs[o + 3] = (v >> 16) & 0xFF


def _add32(regs, o, delta):
    # Position += delta (< 2**30), modulo 2**32, in small ints: 16-bit halves with a carry.
    low = ((regs[o] << 8) | regs[o + 1]) + (delta & 0xFFFF)
    high = (((regs[o + 2] << 8) | regs[o + 3]) + (delta >> 16) + (low >> 16)) & 0xFFFF
    regs[o] = (low >> 8) & 0xFF
    regs[o + 1] = low & 0xFF
    regs[o + 2] = high >> 8
    regs[o + 3] = high & 0xFF


class IoModes:
    """The channels' state and the loop timer (its fields: mbnode.iobuild.build)."""

    def _write(self, fc, n, value):
        put_head(self.req, fc, n, value)
        self.engine.handle(self.req, 0, 5, self.resp, 0)

    def written(self, table, first, count):
        """Output subscriber: a master wrote coils (pulse outputs) or memory positions (counters,
        latches, frequencies). Allocates nothing."""
        now = ticks_ms()
        last = first + count - 1
        if table == COILS:
            for p in self.pulses:
                if first <= p.n <= last:
                    p.on = self.model.get_bit(COILS, p.n) == 1
                    p.end = time.ticks_add(now, p.ms)
                    if p.on and ticks_diff(p.end, self.next) < 0:
                        self.next = p.end
            return
        if table != HOLDING or last < MEM_BASE:
            return
        regs = self.regs
        # The registers written as offsets in regs, to compare with each position's (off, off + 2).
        lo = self.model.reg_offset(HOLDING, first if first > MEM_BASE else MEM_BASE)
        hi = self.model.reg_offset(HOLDING, last)
        for c in self.di:
            o = c.off
            if o < 0 or lo > o + 2 or hi < o:
                continue
            # The master's value stands; edges from now on count onto it.
            c.seen = c.edges
            if c.mode == _LATCH:
                v = regs[o] | regs[o + 1] | regs[o + 2] | regs[o + 3]
                _put32(regs, o, 1 if v else 0)
                self.model.set_bit(DISCRETE_INPUTS, c.n, 1 if v else 0)
            elif c.mode == _FREQUENCY:
                c.acc = 0
                c.g = now

    def due_in(self, now):
        d = ticks_diff(self.next, now)
        return d if d > 0 else 0

    def tick(self, now):
        if ticks_diff(now, self.next) < 0:
            return
        nxt = time.ticks_add(now, self.scan)
        model = self.model
        regs = self.regs
        for c in self.di:
            level = c.pin.value() ^ c.inv
            delta = 0
            if c.deb:
                e = c.edges
                if level != c.stable:
                    left = c.deb - ticks_diff(now, c.t)
                    if left <= 0:
                        c.stable = level
                        if level == c.active:
                            delta = 1
                    elif ticks_diff(time.ticks_add(now, left), nxt) < 0:
                        nxt = time.ticks_add(now, left)
                c.seen = e
                level = c.stable
            else:
                e = c.edges
                delta = (e - c.seen) & _WRAP
                c.seen = e
            mode = c.mode
            if mode == _COUNTER:
                if delta:
                    _add32(regs, c.off, delta)
            elif mode == _LATCH:
                if delta:
                    _put32(regs, c.off, 1)
                level = 1 if regs[c.off + 1] else 0
            elif mode == _FREQUENCY:
                a = c.acc + delta
                c.acc = a if a < _FREQ_MAX else _FREQ_MAX
                el = ticks_diff(now, c.g)
                if el >= c.gate:
                    _put32(regs, c.off, (c.acc * 1000 + el // 2) // el)
                    c.acc = 0
                    c.g = now
            model.set_bit(DISCRETE_INPUTS, c.n, level)
        for a in self.ai:
            if ticks_diff(now, a.next) >= 0:
                a.next = time.ticks_add(a.next, a.period)
                if ticks_diff(now, a.next) >= 0:  # late by a whole period: start again from now
                    a.next = time.ticks_add(now, a.period)
                x = a.adc.read_u16()
                ring = a.ring
                a.sum += x - ring[a.i]
                ring[a.i] = x
                a.i = (a.i + 1) % len(ring)
                if a.filled < len(ring):
                    a.filled += 1
                v = scale(a, (a.sum + a.filled // 2) // a.filled)
                regs[a.off] = v >> 8
                regs[a.off + 1] = v & 0xFF
            if ticks_diff(a.next, nxt) < 0:
                nxt = a.next
        for p in self.pulses:
            if p.on:
                if ticks_diff(now, p.end) >= 0:
                    p.on = False
                    self._write(5, p.n, 0)  # the subscribers (pins, this one) hear it
                elif ticks_diff(p.end, nxt) < 0:
                    nxt = p.end
        self.next = nxt
