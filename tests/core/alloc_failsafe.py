"""Proves fail-safe, the status LED and the watchdog allocation-free: run on the unix port.

The unix board's firmware with a failsafe section is built by startup.build; the fail-safe timer
is driven with the loop's own `now` values: an idle look, a request from a transport seen,
fail-safe entered (the safe values written through the Engine as FC15/FC16, every output
subscriber told) and ended by the next request, all under micropython.heap_lock(). The LED
(boards/common/statusled.py, its pin a stand-in that allocates nothing) through every pattern,
and the watchdog (fake machine.WDT) started and fed. One line per case, then "N passed, M
failed". Run with MICROPYPATH=.frozen:tests/fakes:boards/unix:boards/common:firmware.
"""

import struct
import time

import board
import machine
from heaplock import Heard, Report, locked
from mbnode import startup, config, failsafe, memory32
from mbnode.datamodel import COILS, HOLDING
from parts import made

CONFIG = {
    "tcp": {"enabled": False},
    "failsafe": {"timeout_ms": 1000, "do_default": "off", "do": {"1": "on", "2-3": "hold"},
                 "ao": {"0x0001": "hold", "2": 77}, "memory": {"5-6": -2}},
}


class Pin:
    # The LED's pin: a level, no log.
    def __init__(self):
        self.level = -1

    def value(self, v):
        self.level = v


class Health:
    def __init__(self):
        self.failsafe = 0
        self.fault = 0


class Engine:
    def __init__(self):
        self.requests_lo = 0


def main():
    cfg = config.validate(CONFIG, *board.config_rules())
    kept = made(failsafe, "Failsafe")
    loop, ready = startup.build(cfg, board)
    print(ready)
    f = kept[0]
    engine = f.engine
    model = engine.model
    heard = Heard()
    model.subscribe(heard.changed)
    report = Report(40)
    read = bytearray(struct.pack(">BHH", 3, 0, 4))
    resp = bytearray(16)
    t = [time.ticks_ms()]

    def idle():
        f.tick(t[0])

    err, got = locked(idle, lambda: f.health.failsafe)
    report.check("idle look", err is None and got == 0, err)

    def request():
        engine.handle(read, 0, 5, resp, 0, None, 2)  # pdu.SOURCE_TCP
        t[0] = time.ticks_add(t[0], 10)
        f.tick(t[0])

    err, got = locked(request, lambda: (f.last == t[0], f.health.failsafe))
    report.check("a request seen", err is None and got == (True, 0), err)

    def commanded():
        for a in range(8):
            model.set_bit(COILS, a, 1)
        for a in range(4):
            model.set_reg(HOLDING, a, 500 + a)
        memory32.set_u32(model, 5, 1)
        f.health.failsafe = 0
        f.last = t[0]
        t[0] = time.ticks_add(t[0], 1000)
        heard.count = 0

    def enter():
        f.tick(t[0])

    err, got = locked(enter, lambda: (f.health.failsafe, [model.get_bit(COILS, a) for a in range(8)],
                                      [model.get_reg(HOLDING, a) for a in range(4)], memory32.get_u32(model, 5),
                                      memory32.get_u32(model, 6), heard.count > 0), commanded)
    report.check("fail-safe entered", err is None and got == (1, [0, 1, 1, 1, 0, 0, 0, 0], [0, 501, 77, 0],
                                                               0xFFFFFFFE, 0xFFFFFFFE, True), (err, got))

    def leave():
        engine.handle(read, 0, 5, resp, 0, None, 1)  # pdu.SOURCE_RTU
        t[0] = time.ticks_add(t[0], 10)
        f.tick(t[0])

    def in_failsafe():
        f.health.failsafe = 1

    err, got = locked(leave, lambda: (f.health.failsafe, model.get_bit(COILS, 0), model.get_reg(HOLDING, 2)),
                      in_failsafe)
    report.check("fail-safe ended, outputs stay", err is None and got == (0, 0, 77), (err, got))

    # The status LED through its patterns, its pin a stand-in.
    import statusled

    health = Health()
    eng = Engine()
    led = statusled.StatusLed(25, eng, health)
    led.pin = pin = Pin()
    t0 = led.t0
    levels = []

    def at(ms):
        now = time.ticks_add(t0, ms)
        led.due_in(now)
        led.tick(now)
        return pin.level

    def flicker():
        eng.requests_lo += 1
        levels.append(at(10_000))
        levels.append(at(10_060))

    def failsafe_pattern():
        health.failsafe = 1
        levels.append(at(20_050))
        levels.append(at(20_500))
        health.failsafe = 0

    def fault_pattern():
        health.fault = 1
        levels.append(at(30_050))
        levels.append(at(30_150))
        health.fault = 0

    for name, fn in (("LED traffic flicker", flicker), ("LED fail-safe pattern", failsafe_pattern),
                     ("LED fault pattern", fault_pattern)):
        err, got = locked(fn, lambda: levels[-2:])
        report.check(name, err is None and got == ([0, 1] if fn is flicker else [1, 0]), (err, got))

    import watchdog

    wd = watchdog.Watchdog(2000, 0)
    wd.tick(time.ticks_ms())  # started (allocates the WDT object), fed once
    dog = machine.WDT.made[-1]

    def feed():
        wd.tick(time.ticks_add(wd.at, 0))

    err, got = locked(feed, lambda: dog.feeds)
    report.check("watchdog fed", err is None and got == 3 and dog.timeout == 2000, (err, got))
    return report.finish()


main()
