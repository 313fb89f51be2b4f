"""Stand-in for machine.Pin / ADC / PWM / UART on the unix port: records what the firmware
drives. LOG keeps the order of output pin changes and UART writes/flushes, so a test can check
that RS-485's driver enable rises before a frame and falls after its last stop bit."""

import io
import time

PINS = {}
LOG = []
UARTS = {}


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    IRQ_FALLING = 4  # the rp2 port's values
    IRQ_RISING = 8

    def __init__(self, id, mode=IN, pull=None, value=0):
        self.id = id
        self.mode = mode
        self.level = value
        PINS[id] = self

    def value(self, v=None):
        if v is None:
            return self.level
        was, self.level = self.level, v
        if self.mode == Pin.OUT:
            LOG.append(("pin", self.id, v))
        elif v != was and getattr(self, "handler", None) and self.trigger & (Pin.IRQ_RISING if v else Pin.IRQ_FALLING):
            self.handler(self)  # an input level set by a test: its interrupt, as the pin's would run

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self.handler = handler
        self.trigger = trigger


class ADC:
    def __init__(self, pin):
        self.pin = pin
        self.raw = 0

    def read_u16(self):
        return self.raw


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self.freq_hz = freq
        self.duty = duty_u16
        pin.pwm = self

    def duty_u16(self, v=None):
        if v is None:
            return self.duty
        self.duty = v

    def freq(self, hz=None):
        if hz is None:
            return self.freq_hz
        self.freq_hz = hz


class UART(io.IOBase):
    """A UART as MicroPython's rp2 driver presents it, paced by the line's character time.

    feed() puts bytes on RX, one per character time. The PL011 moves a byte into its FIFO once
    received; its receive interrupt, which moves the FIFO into the driver's ring buffer (rxbuf)
    and wakes the loop's poll, fires when 4 bytes are in the FIFO or 32 bit times after the
    last byte: so poll sees the port readable in groups, not per byte. any() empties the FIFO
    itself. A readinto() asking for more than is there would make the real driver wait up to
    timeout_char for bytes that may never come: it is logged as ("read waits", asked, there).
    write() returns at once (txbuf holds the frame); flush() returns once the last stop bit is
    out. echo=True: the receiver hears the transmission, like a transceiver with /RE tied low.
    """

    def __init__(self, id, **settings):
        self.id = id
        self.settings = settings
        bits = 1 + settings["bits"] + (settings["parity"] is not None) + settings["stop"]
        self.bit_us = 1000000 // settings["baudrate"]
        self.char_us = bits * 1000000 // settings["baudrate"]
        self.wire = []  # (ticks_us when received, byte), in order
        self.fifo = bytearray()
        self.rxq = bytearray()  # the driver's ring buffer
        self.last_rx = 0
        self.tx_end = time.ticks_us()
        self.echo = False
        self.reads = 0  # readinto() calls that returned bytes
        UARTS[id] = self

    def feed(self, data):
        """data arrives on RX from now on, one byte per character time."""
        t = time.ticks_us()
        if self.wire and time.ticks_diff(self.wire[-1][0], t) > 0:
            t = self.wire[-1][0]
        for b in data:
            t = time.ticks_add(t, self.char_us)
            self.wire.append((t, b))

    def _receive(self):
        now = time.ticks_us()
        while self.wire and time.ticks_diff(now, self.wire[0][0]) >= 0:
            self.last_rx, b = self.wire.pop(0)
            self.fifo.append(b)
            if len(self.fifo) >= 4:  # RX interrupt at FIFO level 4
                self._irq()
        if self.fifo and time.ticks_diff(now, self.last_rx) >= 32 * self.bit_us:  # receive timeout
            self._irq()

    def _irq(self):
        self.rxq += self.fifo
        self.fifo = bytearray()

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            self._receive()
            return arg & 1 if self.rxq else 0
        return -1  # anything else (e.g. "give me your file descriptor"): not supported

    def any(self):
        self._receive()
        self._irq()
        return len(self.rxq)

    def readinto(self, buf, n):
        self._receive()
        self._irq()
        if n > len(self.rxq):
            LOG.append(("read waits", n, len(self.rxq)))
        n = min(n, len(self.rxq), len(buf))
        buf[:n] = self.rxq[:n]
        self.rxq = self.rxq[n:]
        if n:
            self.reads += 1
        return n

    def write(self, buf, n):
        data = bytes(buf[:n])
        LOG.append(("write", data))
        t = time.ticks_us()
        if time.ticks_diff(self.tx_end, t) > 0:
            t = self.tx_end
        for b in data:
            t = time.ticks_add(t, self.char_us)
            if self.echo:
                self.wire.append((t, b))
        self.tx_end = t
        return n

    def flush(self):
        while time.ticks_diff(self.tx_end, time.ticks_us()) > 0:
            pass
        LOG.append(("flush",))


class WDT:
    """machine.WDT: keeps its timeout, counts the feeds and the time of the last one (without
    allocating: the watchdog's tick is proven allocation-free with this fake)."""

    made = []

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.last = None
        WDT.made.append(self)

    def feed(self):
        self.feeds += 1
        self.last = time.ticks_ms()
