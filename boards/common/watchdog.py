"""The hardware watchdog (machine.WDT), fed from the event loop (board.wdt_ms, docs/boards.md).

A loop timer: it starts the WDT wdt_delay_s after boot (until then mpremote can interrupt the
firmware and stay at the REPL; a started WDT cannot be stopped, so a REPL left open after that
resets the board wdt_ms later) and feeds it every wdt_ms // 4. The loop wakes for each feed
even when idle; a feed comes late by at most what one loop step holds the loop, and the
configuration check (pinrules.loop_hold_ms) refuses a wdt_ms that this could exceed
(docs/reliability.md, "How long the loop can be held"). A loop that stops turning (a handler
that hangs, an exception that ends app.run) stops feeding: the chip resets.
"""

import time

import machine


class Watchdog:
    def __init__(self, timeout_ms, delay_s):
        self.timeout = timeout_ms
        self.every = timeout_ms // 4
        self.wdt = None
        self.at = time.ticks_add(time.ticks_ms(), 1000 * delay_s)  # the start, then the next feed

    def due_in(self, now):
        d = time.ticks_diff(self.at, now)
        return d if d > 0 else 0

    def tick(self, now):
        if time.ticks_diff(now, self.at) < 0:
            return
        if self.wdt is None:
            self.wdt = machine.WDT(timeout=self.timeout)
        self.wdt.feed()
        self.at = time.ticks_add(now, self.every)
