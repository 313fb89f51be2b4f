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


class PinBoard:
    """What a board module offers the firmware (CONFIG_SCHEMA, start, describe) for a board
    whose onboard I/O is plain pins and whose network is Wi-Fi."""

    CONFIG_SCHEMA = {
        "wifi_ssid": ("", "text", 32),
        "wifi_password": ("", "text", 64),
        "wifi_timeout": (20, "int", 1, 300),
        "scan_ms": (20, "int", 1, 10000),
        "pins": (True, "bool"),
    }

    def __init__(self, name, do_pins, di_pins, ai_pins, ao_pins):
        self.name = name
        self.pins = (do_pins, di_pins, ai_pins, ao_pins)
        self.ip = None

    def start(self, loop, model, cfg):
        if cfg["pins"]:
            loop.timers.append(PinIO(model, *self.pins, scan_ms=cfg["scan_ms"]))
        if cfg["wifi_ssid"]:
            self.ip = connect_wifi(cfg["wifi_ssid"], cfg["wifi_password"], cfg["wifi_timeout"])

    def describe(self):
        return ["board " + self.name] + (["ip " + self.ip] if self.ip else [])
