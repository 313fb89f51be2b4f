"""The RS-485 line of a pin board: a machine.UART with the transceiver's driver-enable pin, as
the RTU link (mbnode.rtulink) uses a port: stream, readinto, send, latency_us."""

import time

import machine


class UartPort:
    """A UART with an RS-485 transceiver as the RTU port.

    Reads never wait: timeout=0, and readinto() asks for no more than any() says is there
    (asking for more would make the driver wait up to a millisecond, or timeout_char, for bytes
    that may never come). rxbuf takes a 256-byte frame twice over, so a whole request waits in
    the driver while the firmware is not looking; the link reads it in one go (mbnode.rtulink).

    latency_us: how long after its start bit a character can be read at most. On rp2, any()
    empties the PL011's FIFO itself, so a character is readable once received, whatever the
    receive interrupt (FIFO level 4, or 32 bit times of quiet) has done; the ESP32 driver's
    interrupt moves each byte (rx threshold 1, rx timeout 1 character with timeout_char=0).
    Two characters plus 1 ms of interrupt latency cover both with a margin.

    The driver enable pin (DE, with /RE tied to it or not) is raised just before the frame is
    written in one call (txbuf takes it whole, so write() never waits) and released once
    flush() says the last stop bit is out. Whatever the receiver picked up meanwhile (its own
    echo, when /RE stays enabled) is read and dropped one character time later: no master may
    start its next request within t3.5 of our reply.
    """

    def __init__(self, uart_id, tx, rx, de, de_invert, baud, parity, stopbits):
        from mbnode.rtu import char_times

        self.stream = machine.UART(
            uart_id, baudrate=baud, bits=8, parity=None if parity == "N" else 0 if parity == "E" else 1,
            stop=stopbits, tx=machine.Pin(tx), rx=machine.Pin(rx), txbuf=256, rxbuf=512, timeout=0,
            timeout_char=0)
        self.name = "uart%d" % uart_id
        self.on = 0 if de_invert else 1
        self.de = machine.Pin(de, machine.Pin.OUT, value=1 - self.on) if de >= 0 else None
        self.char_us = char_times(baud, parity, stopbits)[0]
        self.latency_us = 2 * self.char_us + 1000

    def readinto(self, buf, n):
        k = self.stream.any()
        if k > n:
            k = n
        return (self.stream.readinto(buf, k) or 0) if k else 0

    def send(self, buf, n):
        """The frame buf[0:n], with DE up from before its first start bit until after its last
        stop bit. Holds the caller for the frame's time on the wire."""
        uart = self.stream
        de = self.de
        if de:
            de.value(self.on)
        try:
            uart.write(buf, n)
            uart.flush()  # returns when the last stop bit is out (rp2: MicroPython 1.24 or newer)
        except OSError:
            time.sleep_us(n * self.char_us)  # flush gave up: still leave the frame its wire time
            raise
        finally:
            if de:
                de.value(1 - self.on)  # and never hold the bus after a failure
        time.sleep_us(self.char_us)
        # The echo goes into buf, whose frame is out and done with (the caller's transmit
        # buffer, MAX_FRAME bytes): no buffer of our own. Never asks for more than is there.
        k = uart.any()
        while k:
            uart.readinto(buf, k if k < n else n)
            k = uart.any()
