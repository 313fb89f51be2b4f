"""The simulator's field side for the "io" section's modes (firmware/mbnode/iomodes.py), loaded
only when the configuration has one: the raw inputs behind the channels the modes own, set
from the control channel, so that the firmware's own debounce, counting and scaling is what a
client sees (docs/simulator.md).

A DI channel the modes own is a SimPin: a raw level with an interrupt handler, called on each
change as a pin's would be; a pulse train toggles it on this module's loop timer (edges that
fall due together come in one tick, in order). An AI channel the modes own is a SimADC, a raw
reading. Outputs: the level a DO pin would have (coil, inverted if so configured) and the PWM
frequency of an AO.
"""

import time

from mbnode.datamodel import DISCRETE_INPUTS, INPUT


class SimPin:
    def __init__(self, level):
        self.level = level
        self.handler = None
        self.trigger = 0
        self.train = None  # [edges left, high ms, low ms, next edge ticks_ms]

    def value(self):
        return self.level

    def irq(self, handler=None, trigger=3, hard=False):
        self.handler = handler
        self.trigger = trigger

    def set(self, v):
        if v != self.level:
            self.level = v
            if self.handler is not None and self.trigger & (1 if v else 2):
                self.handler(self)


class SimADC:
    def __init__(self, raw):
        self.raw = raw

    def read_u16(self):
        return self.raw


class Field:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, loop, model):
        self.model = model
        self.pins = {}
        self.adcs = {}
        self.inv = set()
        self.freqs = {}
        loop.add_timer(self)

    def pin(self, n):
        p = self.pins[n] = SimPin(self.model.get_bit(DISCRETE_INPUTS, n))
        return p

    def adc(self, n, temp):
        a = self.adcs[n] = SimADC(self.model.get_reg(INPUT, n))
        return a

    def own(self, table, n):
        pass  # the simulator mirrors nothing: an owned channel's raw input is pins[n] / adcs[n]

    def do_invert(self, n):
        self.inv.add(n)

    def ao_freq(self, n, hz):
        self.freqs[n] = hz

    def set_input(self, table, n, v):
        """`set di` / `set ai` of a channel the modes own: the raw input. False: not owned (or a
        value the table does not take: the board's own check refuses it)."""
        if table == DISCRETE_INPUTS and n in self.pins and v in (0, 1):
            p = self.pins[n]
            p.train = None
            p.set(v)
            return True
        if table == INPUT and n in self.adcs and 0 <= v <= 0xFFFF:
            self.adcs[n].raw = v
            return True
        return False

    def due_in(self, now):
        d = -1
        for p in self.pins.values():
            t = p.train
            if t is not None:
                left = max(0, time.ticks_diff(t[3], now))
                if d < 0 or left < d:
                    d = left
        return d

    def tick(self, now):
        for p in self.pins.values():
            t = p.train
            while t is not None and time.ticks_diff(now, t[3]) >= 0:
                p.set(1 - p.level)
                t[0] -= 1
                t[3] = time.ticks_add(t[3], t[1] if t[0] & 1 else t[2])
                if t[0] == 0:
                    p.train = t = None
