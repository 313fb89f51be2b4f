"""The io section's modes on the emulated Pico: pulses driven on a DI pin by the runner's signal
generator (simulated time) are counted by the firmware's pin interrupts and read back over RTU
by pymodbus; a short pulse is latched; DO power-on values, invert and a pulse output seen as
pin levels; the RP2040's temperature sensor (ADC 4) as an AI channel. mbnode is deployed onto
the stock MicroPython firmware with `mbnode deploy`. The highest rate counted without loss is
bench/io_pulses.py's figure, not an assertion here.
"""

import pytest

from picotest import Master, board_config, deployed, line_settings

COUNT_PIN, LATCH_PIN = 12, 13  # DI channels 0 and 1 (pull-up: pulses go to 0 and back)
PULSE_PIN, ON_PIN, INV_PIN = 2, 3, 6  # DO channels 0, 1, 2
PULSE_MS = 50


def io_config():
    cfg = board_config(115200, "N")
    cfg["channels"] = {"input_registers": ["0x0000-0x0003", "0x1000-0x17FF"]}
    cfg["io"] = {
        "di": [{"channel": 0, "mode": "counter", "position": 1},
               {"channel": 1, "mode": "latch", "position": 2}],
        "ai": [{"channel": 3, "source": "temp", "period_ms": 10}],
        "do": [{"channel": 0, "pulse_ms": PULSE_MS}, {"channel": 1, "power_on": 1, "invert": True},
               {"channel": 2, "invert": True}],
    }
    return cfg


class Node:
    def __init__(self, pico, cfg):
        self.pico = pico
        self.master = Master(pico, *line_settings(cfg))

    def position(self, p):
        r = self.master.read_holding_registers(0x1000 + 2 * (p - 1), count=2, device_id=1)
        assert not r.isError(), r
        return r.registers[0] | r.registers[1] << 16

    def write_position(self, p, value):
        r = self.master.write_registers(0x1000 + 2 * (p - 1), [value & 0xFFFF, value >> 16], device_id=1)
        assert not r.isError(), r

    def pulse_train(self, pin, count, high_ns, low_ns=None):
        """count pulses on pin; returns once the last has ended (simulated time)."""
        pico = self.pico
        pico.pulses(pin, count, high_ns, low_ns)
        pico.wait_for(lambda: pico.pulses_left(pin) == 0, 120, "the end of %d pulses" % count)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    cfg = io_config()
    pico, r = deployed(tmp_path_factory.mktemp("io"), cfg)
    pico.watch([PULSE_PIN, ON_PIN, INV_PIN])
    n = Node(pico, cfg)
    yield n
    n.master.close()
    pico.stop()


def test_power_on_values_on_the_pins(node):
    pico = node.pico
    assert pico.level(ON_PIN) == 0  # power-on 1, inverted
    assert pico.level(INV_PIN) == 1  # 0, inverted
    assert pico.level(PULSE_PIN) == 0
    r = node.master.read_coils(0, count=3, device_id=1)
    assert r.bits[:3] == [False, True, False]


def test_counted_pulses_read_over_rtu(node):
    node.write_position(1, 0)
    node.pulse_train(COUNT_PIN, 200, 250_000)  # 2 kHz
    node.pico.wait_for(lambda: node.position(1) == 200, 30, "200 counted")
    node.write_position(1, 1000)  # a preset
    node.pulse_train(COUNT_PIN, 50, 20_000)  # 25 kHz
    node.pico.wait_for(lambda: node.position(1) == 1050, 30, "50 more counted")


def test_short_pulse_latched(node):
    assert node.position(2) == 0
    node.pulse_train(LATCH_PIN, 1, 10_000)  # 10 us
    node.pico.wait_for(lambda: node.position(2) == 1, 30, "the latch")
    r = node.master.read_discrete_inputs(1, count=1, device_id=1)
    assert r.bits[0] is True
    node.write_position(2, 0)
    assert node.position(2) == 0


def test_pulse_output_on_the_pin(node):
    pico = node.pico
    _, since = pico.edges(pins=[PULSE_PIN])
    r = node.master.write_coil(0, True, device_id=1)
    assert not r.isError(), r

    def fell():
        edges, _ = pico.edges(since, pins=[PULSE_PIN])
        return edges if [e["level"] for e in edges] == [1, 0] else None

    edges = pico.wait_for(fell, 30, "the pulse on GP%d" % PULSE_PIN)
    assert edges[1]["t_ns"] - edges[0]["t_ns"] >= PULSE_MS * 1_000_000
    assert node.master.read_coils(0, count=1, device_id=1).bits[0] is False
    # Invert on a pin: coil 1 on channel 2 is level 0.
    assert not node.master.write_coil(2, True, device_id=1).isError()
    assert pico.level(INV_PIN) == 0


def test_temperature_sensor_channel(node):
    raw12 = 876  # 0.706 V: 27 degC
    node.pico.adc(4, raw12)
    u16 = raw12 << 4 | raw12 >> 8  # MicroPython's read_u16 of a 12-bit reading
    want = 10 * (27 - (u16 * 3.3 / 65535 - 0.706) / 0.001721)

    def near():
        r = node.master.read_input_registers(3, count=1, device_id=1)
        v = r.registers[0] - 0x10000 if r.registers[0] & 0x8000 else r.registers[0]
        return abs(v - want) <= 1  # the scaling's endpoints are rounded to 0.1 degC

    node.pico.wait_for(near, 30, "%.1f in 0.1 degC" % want)
