"""Stand-in for machine.Pin / ADC / PWM / UART on the unix port: records what the firmware
drives. LOG keeps the order of output pin changes and UART writes/flushes, so a test can check
that RS-485's driver enable rises before a frame and falls after its last stop bit."""

import io

PINS = {}
LOG = []
UARTS = {}


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
        if self.mode == Pin.OUT:
            LOG.append(("pin", self.id, v))


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


class UART(io.IOBase):
    """Pollable (MP_STREAM_POLL via ioctl) UART whose line is a byte queue; echo=True makes it
    receive its own transmissions, like a transceiver with /RE tied low."""

    def __init__(self, id, **settings):
        self.id = id
        self.settings = settings
        self.rxq = bytearray()
        self.echo = False
        UARTS[id] = self

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return arg & 1 if self.rxq else 0
        return -1  # anything else (e.g. "give me your file descriptor"): not supported

    def any(self):
        return len(self.rxq)

    def readinto(self, buf, n):
        n = min(n, len(self.rxq), len(buf))
        buf[:n] = self.rxq[:n]
        self.rxq = self.rxq[n:]
        return n

    def write(self, buf, n):
        data = bytes(buf[:n])
        LOG.append(("write", data))
        if self.echo:
            self.rxq += data
        return n

    def flush(self):
        LOG.append(("flush",))
