"""Stand-in for machine.Pin / ADC / PWM on the unix port: records what the firmware drives."""

PINS = {}


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, id, mode=IN, pull=None, value=0):
        self.id = id
        self.mode = mode
        self.level = value
        PINS[id] = self

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v


class ADC:
    def __init__(self, pin):
        self.pin = pin
        self.raw = 0

    def read_u16(self):
        return self.raw


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self.freq = freq
        self.duty = duty_u16
        pin.pwm = self

    def duty_u16(self, v=None):
        if v is None:
            return self.duty
        self.duty = v
