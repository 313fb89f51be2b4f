"""Onboard I/O of a pin board: machine.Pin / ADC / PWM mirrored into the data model.

Outputs follow the master's writes (drive_pins subscribes to DataModel's output changes); inputs
are sampled every scan_ms by a loop timer. Channel n of each kind is the n-th pin of the board's
list; the data model stays the single image of the I/O, so Modbus reads never touch hardware.

It is also the field side of the "io" section's modes (mbnode/iomodes.py): pin(n) and adc(n)
hand over an input channel's Pin or ADC (the modes count its edges with Pin.irq and write the
channel themselves: own()), do_invert(n) and ao_freq(n, hz) set how an output is driven.
"""

import time

import machine

from mbnode.datamodel import AO_MAX, COILS, DISCRETE_INPUTS, HOLDING, INPUT


class PinIO:
    def __init__(self, model, do_pins, di_pins, ai_pins, ao_pins, scan_ms, pwm_freq=1000):
        self.model = model
        self.do = [machine.Pin(p, machine.Pin.OUT, value=0) for p in do_pins]
        self.di = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in di_pins]
        self.ai = [machine.ADC(machine.Pin(p)) for p in ai_pins]
        self.ao = [machine.PWM(machine.Pin(p), freq=pwm_freq, duty_u16=0) for p in ao_pins]
        self.scan_ms = scan_ms
        self.next = 0
        self.inv = bytearray(len(self.do))  # 1: the pin is the coil inverted
        self.owned = (bytearray(len(self.di)), bytearray(len(self.ai)))  # written by the io modes
        model.subscribe(self.drive_pins)

    # The field side of the io modes (mbnode/iomodes.py).
    IRQ_RISING = machine.Pin.IRQ_RISING
    IRQ_FALLING = machine.Pin.IRQ_FALLING

    def pin(self, n):
        return self.di[n]

    def adc(self, n, temp):
        return machine.ADC(4) if temp else self.ai[n]  # ADC 4: the RP2040's temperature sensor

    def own(self, table, n):
        owned = self.owned[0 if table == DISCRETE_INPUTS else 1]
        if n < len(owned):
            owned[n] = 1

    def do_invert(self, n):
        self.inv[n] = 1

    def ao_freq(self, n, hz):
        self.ao[n].freq(hz)

    def drive_pins(self, table, first, count):
        # Output subscriber: the DO and AO pins among the channels written (memory positions and
        # extension channels have none).
        model = self.model
        if table == COILS:
            for n in range(first, min(first + count, len(self.do))):
                self.do[n].value(model.get_bit(COILS, n) ^ self.inv[n])
        else:
            for n in range(first, min(first + count, len(self.ao))):
                self.ao[n].duty_u16(model.get_reg(HOLDING, n) * 65535 // AO_MAX)

    def due_in(self, now):
        d = time.ticks_diff(self.next, now)
        return d if d > 0 else 0

    def tick(self, now):
        if time.ticks_diff(now, self.next) < 0:
            return
        self.next = time.ticks_add(now, self.scan_ms)
        # Index loops: enumerate() would allocate an iterator and a tuple per pin, every scan.
        model = self.model
        di = self.di
        own = self.owned[0]
        for n in range(len(di)):
            if not own[n]:
                model.set_bit(DISCRETE_INPUTS, n, di[n].value())
        ai = self.ai
        own = self.owned[1]
        for n in range(len(ai)):
            if not own[n]:
                model.set_reg(INPUT, n, ai[n].read_u16())
