"""Proves the io modes' per-edge and per-sample paths allocation-free: run on the unix port
(not CPython). The firmware's IoModes runs on the simulator's field side (boards/unix/
simfield.py: a raw level whose changes call the interrupt handler, as a pin's would); each case
runs once unlocked, then under micropython.heap_lock(): the edge handler, the loop timer's
tick publishing counts, latches, frequencies, debounced levels, averaged and scaled AI, a pulse
output falling back (its Engine write and the subscribers it tells), and a master's writes of
positions through the Engine (reset, preset, latch cleared). Then the scaling's rounding. One
line per case, then "N passed, M failed".
"""

import time

from heaplock import Heard, Report, locked
from mbnode import config, iobuild, memory32
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.iomodes import IoModes, scale
from mbnode.pdu import Engine
from simfieldstart import FieldSetup

IO = {
    "scan_ms": 5,
    "di": [
        {"channel": 0, "mode": "counter", "position": 1},
        {"channel": 1, "mode": "latch", "position": 2},
        {"channel": 2, "mode": "frequency", "position": 3, "gate_ms": 100},
        {"channel": 3, "mode": "counter", "debounce_ms": 10, "position": 4, "invert": True},
        {"channel": 4, "mode": "level", "invert": True},
    ],
    "ai": [{"channel": 0, "period_ms": 1, "average": 4, "raw_low": 1000, "raw_high": 2000, "low": -500,
            "high": 500}],
    "do": [{"channel": 0, "pulse_ms": 20}],
    "ao": [{"channel": 0, "power_on": 100, "freq": 2000}],
}


class Loop:
    def __init__(self):
        self.timers = []

    def add_timer(self, t):
        self.timers.append(t)


cfg = config.validate({"io": IO})
model = DataModel()
model.set_present([cfg["channels"][n] for n in ("coils", "discrete_inputs", "holding_registers", "input_registers")])
engine = Engine(model, DeviceIdentification(cfg["identity"], cfg["unit_id"]))
loop = Loop()
setup = FieldSetup(loop, model)
field = setup.field
heard = Heard()
model.subscribe(heard.changed)
io = IoModes()
iobuild.build(io, loop, engine, model, cfg["io"], setup)
pins = field.pins
report = Report(40)
req = bytearray(12)
resp = bytearray(260)
clock = [time.ticks_ms()]


def tick(ms):
    clock[0] = time.ticks_add(clock[0], ms)
    io.tick(clock[0])


def write_regs(first, values):
    req[0] = 16
    req[1] = first >> 8
    req[2] = first & 0xFF
    req[3] = 0
    req[4] = len(values)
    req[5] = 2 * len(values)
    for i in range(len(values)):
        req[6 + 2 * i] = values[i] >> 8
        req[7 + 2 * i] = values[i] & 0xFF
    return engine.handle(req, 0, 6 + 2 * len(values), resp, 0)


def write_coil(n, on):
    req[0] = 5
    req[1] = 0
    req[2] = n
    req[3] = 0xFF if on else 0
    req[4] = 0
    return engine.handle(req, 0, 5, resp, 0)


def case(name, serve, collect, want):
    err, got = locked(serve, collect)
    report.check(name, err is None and got == want, repr(err if err is not None else got))


def toggle(pin, times):
    def serve():
        for _ in range(times):
            pin.set(1 - pin.level)
    return serve


# Power-on values reached the model (and the subscriber) through the Engine.
report.check("power-on AO 100, DO 0", model.get_reg(HOLDING, 0) == 100 and model.get_bit(COILS, 0) == 0
             and field.freqs[0] == 2000, None)

case("edge handler: 2 rising edges", toggle(pins[0], 4), lambda: io.di[0].edges, 4)  # twice: 2 rising each
case("tick: counter published", lambda: tick(5), lambda: memory32.get_u32(model, 1), 4)  # the rising ones
two = toggle(pins[0], 2)


def count_two():
    two()
    tick(5)


memory32.set_u32(model, 1, 0xFFFFFFFF)
case("tick: counter wraps at 2**32", count_two, lambda: memory32.get_u32(model, 1), 1)  # -1 + 2, twice


def reset():
    write_regs(0x1000, (0, 0))


def preset():
    write_regs(0x1000, (7, 1))
    count_two()


case("master resets the counter (FC16)", reset, lambda: memory32.get_u32(model, 1), 0)
case("master presets the counter (FC16)", preset, lambda: memory32.get_u32(model, 1), 0x10008)
glitch1 = toggle(pins[1], 2)


def latch():
    glitch1()
    tick(5)


def clear():
    write_regs(0x1002, (0, 0))


case("latch: a pulse of no length", latch, lambda: (memory32.get_u32(model, 2), model.get_bit(DISCRETE_INPUTS, 1)), (1, 1))
case("latch cleared by the master", clear, lambda: (memory32.get_u32(model, 2), model.get_bit(DISCRETE_INPUTS, 1)), (0, 0))
ten = toggle(pins[2], 20)


def gate():
    tick(50)
    ten()
    tick(50)


case("frequency: 10 edges in 100 ms", gate, lambda: memory32.get_u32(model, 3), 100)
# Debounce 10 ms, inverted: the raw falling edge is the counted (rising) one.
d = io.di[3]
glitch3 = toggle(pins[3], 2)


def no_edge():
    glitch3()
    tick(20)


case("debounce: a glitch is no edge", no_edge, lambda: (memory32.get_u32(model, 4), d.stable), (0, 1))


def debounced_edge():
    pins[3].set(1)  # raw up: logical 0, a falling edge (not counted)
    d.t = time.ticks_add(clock[0], 5)
    tick(10)  # 5 ms stable: not yet
    s1 = d.stable
    tick(10)  # 15 ms: accepted
    s2 = d.stable
    pins[3].set(0)  # raw down: logical 1, counted once accepted
    d.t = time.ticks_add(clock[0], 5)
    tick(20)
    pair[0] = s1
    pair[1] = s2


pair = [None, None]
case("debounce: held levels accepted, one count", debounced_edge,
     lambda: (memory32.get_u32(model, 4), pair[0], pair[1], d.stable,
              model.get_bit(DISCRETE_INPUTS, 3)), (2, 1, 0, 1, 1))  # one count per run (two runs)


def level():
    pins[4].set(1 - pins[4].level)
    tick(5)


case("level inverted", level, lambda: model.get_bit(DISCRETE_INPUTS, 4) ^ pins[4].level, 1)
raws = (1500, 1500, 1700, 1700, 0, 0, 0, 0, 65535, 65535, 65535, 65535)


def samples(first):
    def serve():
        a = field.adcs[0]
        for i in range(first, first + 4):
            a.level = raws[i]
            tick(1)
    return serve


case("AI: average of 4 (0 0 200 200), scaled", samples(0), lambda: model.get_reg(INPUT, 0), 100)
case("AI: below raw_low: -1500", samples(4), lambda: model.get_reg(INPUT, 0), (-1500) & 0xFFFF)
case("AI: clamped to 32767", samples(8), lambda: model.get_reg(INPUT, 0), 32767)


def pulse():
    write_coil(0, True)  # timed from ticks_ms(); this script's clock runs ahead of it
    p = io.pulses[0]
    p.end = time.ticks_add(clock[0], 20)
    heard.count = 0
    tick(10)
    pair[0] = model.get_bit(COILS, 0)
    tick(15)


case("pulse DO: on (FC05), falls back, told", pulse,
     lambda: (pair[0], model.get_bit(COILS, 0), heard.count, tuple(heard.last)), (1, 0, 1, (COILS, 0, 1)))

# Scaling: half away from zero, clamped; products above 2**30 never built.


class Ch:
    def __init__(self, raw_low, raw_high, low, high):
        self.rl = raw_low
        self.den = raw_high - raw_low
        self.low = low
        self.span = high - low


for ch, x, want in ((Ch(0, 4, 0, 2), 1, 1), (Ch(0, 4, 0, -2), 1, -1), (Ch(0, 4, 0, 2), 3, 2),
                    (Ch(0, 65535, 0, 1000), 98, 1), (Ch(0, 65535, 0, 1000), 99, 2), (Ch(0, 65535, 0, 1000), 32, 0),
                    (Ch(0, 65535, 0, 1000), 33, 1), (Ch(0, 1, -32768, 32767), 1, 32767),
                    (Ch(0, 1, 0, 32767), 65535, 32767), (Ch(65535, 0, 0, 32767), 0, 32767),
                    (Ch(0, 65535, 4372, -14803), 14000, 276), (Ch(100, 200, 0, -32768), 65535, -32768)):
    def serve():
        pair[0] = scale(ch, x)

    case("scale %d in %d..%d -> %d..%d: %d" % (x, ch.rl, ch.rl + ch.den, ch.low, ch.low + ch.span, want), serve,
         lambda: pair[0] - 0x10000 if pair[0] & 0x8000 else pair[0], want)

raise SystemExit(report.finish())
