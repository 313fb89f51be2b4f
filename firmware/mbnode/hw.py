"""Onboard I/O of a real board: machine.Pin / ADC / PWM mirrored into the data model.

Outputs follow the master's writes (DataModel.on_output); inputs are sampled every scan_ms by
a loop timer. Channel n of each kind is the n-th pin of the board's list; the data model stays
the single image of the I/O, so Modbus reads never touch hardware.
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
        model.on_output = self.on_output

    def on_output(self, table, first, count):
        model = self.model
        if table == COILS:
            for n in range(first, min(first + count, len(self.do))):
                self.do[n].value(model.get_bit(COILS, n))
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
        model = self.model
        for n, pin in enumerate(self.di):
            model.set_bit(DISCRETE_INPUTS, n, pin.value())
        for n, adc in enumerate(self.ai):
            model.set_reg(INPUT, n, adc.read_u16())


def connect_wifi(ssid, password, timeout_s):
    """Join a Wi-Fi network as a station; returns the IP address (raises OSError on timeout)."""
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
        deadline = time.ticks_add(time.ticks_ms(), timeout_s * 1000)
        while not wlan.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError("Wi-Fi %r: not connected after %d s" % (ssid, timeout_s))
            time.sleep_ms(100)
    return wlan.ifconfig()[0]


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
            stop=stopbits, tx=machine.Pin(tx), rx=machine.Pin(rx), txbuf=512, rxbuf=512, timeout=0,
            timeout_char=0)
        self.name = "uart%d" % uart_id
        self.on = 0 if de_invert else 1
        self.de = machine.Pin(de, machine.Pin.OUT, value=1 - self.on) if de >= 0 else None
        self.char_us = char_times(baud, parity, stopbits)[0]
        self.latency_us = 2 * self.char_us + 1000
        self.drain = bytearray(64)

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
        k = uart.any()
        while k:
            uart.readinto(self.drain, k if k < 64 else 64)  # never more than is there: no wait
            k = uart.any()


class PinBoard:
    """What a board module offers the firmware (CONFIG_SCHEMA, start, describe, open_rtu) for a
    board whose onboard I/O is plain pins, whose network is Wi-Fi and whose RTU line is a UART
    with an RS-485 transceiver."""

    def __init__(self, name, do_pins, di_pins, ai_pins, ao_pins, rtu_pins):
        """rtu_pins: default (UART id, tx, rx, driver enable) of the RS-485 port."""
        self.name = name
        self.pins = (do_pins, di_pins, ai_pins, ao_pins)
        self.ip = None
        uart, tx, rx, de = rtu_pins
        self.CONFIG_SCHEMA = {
            "wifi_ssid": ("", "text", 32),
            "wifi_password": ("", "text", 64),
            "wifi_timeout": (20, "int", 1, 300),
            "scan_ms": (20, "int", 1, 10000),
            "pins": (True, "bool"),
            "rtu_uart": (uart, "int", 0, 2),
            "rtu_tx": (tx, "int", 0, 48),
            "rtu_rx": (rx, "int", 0, 48),
            "rtu_de": (de, "int", -1, 48),
            "rtu_de_invert": (False, "bool"),
        }

    def open_rtu(self, rtu, cfg):
        return UartPort(cfg["rtu_uart"], cfg["rtu_tx"], cfg["rtu_rx"], cfg["rtu_de"], cfg["rtu_de_invert"],
                        rtu["baud"], rtu["parity"], rtu["stopbits"])

    def start(self, loop, model, cfg):
        if cfg["pins"]:
            loop.timers.append(PinIO(model, *self.pins, scan_ms=cfg["scan_ms"]))
        if cfg["wifi_ssid"]:
            self.ip = connect_wifi(cfg["wifi_ssid"], cfg["wifi_password"], cfg["wifi_timeout"])

    def describe(self):
        return ["board " + self.name] + (["ip " + self.ip] if self.ip else [])

    def addresses(self):
        """This board's own IP addresses (a gateway request to one of them stays local)."""
        return [self.ip] if self.ip else []
