"""Fail-safe outputs: when the masters go quiet, every output takes its configured safe value.

Loaded only when the configuration has a "failsafe" section with enabled true (its schema and
checks: mbnode.failsafeconfig; docs/configuration.md, "Fail-safe outputs").

- A valid request is one a transport brought and the Engine answered (Modbus TCP, RTU, the MQTT
  gateway's local requests and /set writes; reads and writes alike, an exception answer too: the
  master is there). The Engine counts them (requests_lo/hi); this loop timer watches the count,
  and the loop ticks every timer after each poll, so a request is seen in the loop step that
  served it. The device's own requests (SOURCE_LOCAL: telemetry scans, the poller, fail-safe
  itself) are not counted and keep nothing alive. The clock starts at boot: a device no master
  ever talks to goes safe timeout_ms after start-up.
- No request for timeout_ms: the safe values are written through Engine.handle as the device's
  own FC15/FC16 requests (prepared at start-up, one per run of consecutive channels), so pins,
  extension modules and every other output subscriber follow as for a master's write; "hold"
  channels are left as they are. health.failsafe becomes 1, `<root>/failsafe` on MQTT "1".
- The next valid request ends fail-safe (health.failsafe 0, MQTT "0"). The outputs STAY at their
  safe values until a master writes them: nothing switches back on by itself when the line
  comes back (the master may have given up on that state; a motor must not restart unasked).
- Extension outputs are written once on entry; a module offline then keeps its own state (its
  write is answered 0x0B, printed on one line).

timeout_ms may be changed at run time (the settings registers): it counts from the last request.
Allocation-free in steady state (a tick compares two counters and a time).
"""

import time


class Failsafe:
    """Its fields are set by mbnode.failsafebuild.start() (start-up code, unloaded once the
    parts are built)."""

    # --- loop timer

    def due_in(self, now):
        if self.health.failsafe:
            return -1  # a request wakes the loop anyway; tick() sees it after that poll
        d = self.timeout_ms - time.ticks_diff(now, self.last)
        return d if d > 0 else 0

    def tick(self, now):
        e = self.engine
        if e.requests_lo != self.lo or e.requests_hi != self.hi:
            self.lo = e.requests_lo
            self.hi = e.requests_hi
            self.last = now
            if self.health.failsafe:
                self._state(0)
        elif not self.health.failsafe and time.ticks_diff(now, self.last) >= self.timeout_ms:
            self.apply()
            self._state(1)

    def apply(self):
        """Write the safe values (the device's own requests: not counted, never refused)."""
        e = self.engine
        resp = self.resp
        for pdu in self.pdus:
            e.handle(pdu, 0, len(pdu), resp, 0)
            if resp[0] & 0x80:
                print("failsafe: safe values from 0x%02X%02X not written: exception %d" % (pdu[1], pdu[2], resp[1]))

    def _state(self, on):
        self.health.failsafe = on
        print("failsafe: no request for timeout_ms: outputs at their safe values" if on else
              "failsafe: a request came: fail-safe over, outputs stay until written")
        if self.publish is not None:
            self.publish(self.topic, b"1" if on else b"0", True)

    # --- the MQTT bridge's seams (mbnode.mqtt.bridge.start: publishers)

    def attach(self, publish, base, root):
        """Publish the state retained on <root>/failsafe; returns that topic's length."""
        self.publish = publish
        self.topic = root + b"failsafe"
        return len(self.topic)

    def connected(self):
        """The bridge (re)connected: the broker gets the current state."""
        self.publish(self.topic, b"1" if self.health.failsafe else b"0", True)
