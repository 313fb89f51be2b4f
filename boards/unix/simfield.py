"""The simulator's field side for the "io" section's modes (firmware/mbnode/iomodes.py), loaded
only when the configuration has one: the raw inputs behind the channels the modes own, set
from the control channel, so that the firmware's own debounce, counting and scaling is what a
client sees (docs/simulator.md).

An input channel the modes own is a SimInput, its raw level: a DI's 0 or 1, read as a pin's
(value()), with an interrupt handler called on each change as a pin's would be (a pulse train
toggles it on this module's loop timer; edges that fall due together come in one tick, in
order); an AI's reading 0..65535, read as an ADC's (read_u16()). One class for both kinds: a
second class would take about 110 bytes of heap for its one method. Outputs: the level a DO pin
would have (coil, inverted if so configured) and the PWM frequency of an AO. What the modes
call at start-up (pin, adc, own, do_invert, ao_freq) is simfieldstart.py's, unloaded once the
parts are built; the control channel's `set` of an owned input is simcontrol's (_set_input),
loaded with it.
"""

import time


class SimInput:
    """Its fields, set by simfieldstart.FieldSetup (start-up only, so this class has no __init__
    taking RAM): level; handler and trigger, as irq() sets them; train, a DI's pulse train or
    None: [edges left, high ms, low ms, next edge ticks_ms]."""

    def value(self):
        return self.level

    def read_u16(self):
        return self.level

    def irq(self, handler, trigger, hard):  # as mbnode.iobuild calls a pin's (hard=True)
        self.handler = handler
        self.trigger = trigger

    def set(self, v):
        if v != self.level:
            self.level = v
            if self.handler is not None and self.trigger & (1 if v else 2):
                self.handler(self)


class Field:
    """The loop timer that plays the pulse trains, and what the control channel reads and sets.
    Its fields, set by simfieldstart.FieldSetup (start-up only, so this class has no __init__
    taking RAM): model; the raw inputs (pins, adcs: channel -> SimInput), the inverted DO
    channels (inv) and the AO frequencies (freqs)."""

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
