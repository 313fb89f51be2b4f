"""The status LED (board.led_pin, docs/boards.md): what the device is doing, by pattern.

  fault (health.fault not 0)   fast blinking, 5 per second (100 ms on, 100 ms off)
  fail-safe (health.failsafe)  a short flash once a second (100 ms on, 900 ms off)
  normal                       on; off for 50 ms whenever requests from a master were served
                               (Engine.requests changed), at most every 100 ms: it flickers
                               while the device is polled
A fault shows over fail-safe. A loop timer: the level is worked out from the time and two
counters at each tick, allocating nothing; the loop wakes for the LED only while a pattern
blinks or a flicker is to end.
"""

import time

import machine


class StatusLed:
    def __init__(self, pin, engine, health):
        self.pin = machine.Pin(pin, machine.Pin.OUT, value=1)
        self.engine = engine
        self.health = health
        self.level = 1
        self.seen = engine.requests_lo
        self.t0 = time.ticks_ms()
        self.dark = self.t0  # the flicker is off until then
        self.next = self.t0  # no new flicker before then

    def due_in(self, now):
        h = self.health
        if h.fault:
            return 100 - time.ticks_diff(now, self.t0) % 100
        if h.failsafe:
            ph = time.ticks_diff(now, self.t0) % 1000
            return 100 - ph if ph < 100 else 1000 - ph
        d = time.ticks_diff(self.dark, now)
        if d > 0:
            return d
        if self.engine.requests_lo != self.seen:
            d = time.ticks_diff(self.next, now)
            return d if d > 0 else 0
        return -1

    def tick(self, now):
        h = self.health
        if h.fault:
            level = 1 if time.ticks_diff(now, self.t0) % 200 < 100 else 0
        elif h.failsafe:
            level = 1 if time.ticks_diff(now, self.t0) % 1000 < 100 else 0
        else:
            n = self.engine.requests_lo
            if n != self.seen and time.ticks_diff(now, self.next) >= 0:
                self.seen = n
                self.dark = time.ticks_add(now, 50)
                self.next = time.ticks_add(now, 100)
            level = 0 if time.ticks_diff(self.dark, now) > 0 else 1
        if level != self.level:
            self.level = level
            self.pin.value(level)
