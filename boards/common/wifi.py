"""Joining a Wi-Fi network as a station without ever holding the event loop.

WifiJoin is a loop timer (mbnode.loop): it asks the radio to connect (network.WLAN.connect
returns at once), looks at WLAN.status() every POLL_MS while joining and every WATCH_MS once
joined, and after a failure (a refusal the radio reports, or no address after wifi_timeout)
disconnects and tries again after a back-off of RETRY_MS, doubling up to RETRY_MAX_MS. Modbus
RTU and TCP keep being served throughout: the TCP slave is bound to 0.0.0.0 before the link is
up, and a tick holds the loop only for one WLAN call (connect/disconnect: a few ms).

One line is printed per change of state: the address when it comes, each failure with the next
attempt's delay, a lost link. The board's address list (PinBoard.ips) is kept up to date in
place, so whoever holds it (the MQTT gateway's own-address check) sees the current address.
"""

import time

import network

POLL_MS = 200
WATCH_MS = 1000
RETRY_MS = 1000
RETRY_MAX_MS = 60000

_JOINING = 0
_WAITING = 1
_UP = 2

# status() codes that end an attempt (the names exist on the esp32 and rp2 ports).
_REFUSALS = (("STAT_WRONG_PASSWORD", "wrong password"), ("STAT_NO_AP_FOUND", "no access point found"),
             ("STAT_CONNECT_FAIL", "connection failed"))


class WifiJoin:
    def __init__(self, loop, ssid, password, timeout_s, ips):
        self.ssid = ssid
        self.password = password
        self.timeout = 1000 * timeout_s
        self.ips = ips
        self.delay = RETRY_MS
        self.refusals = {}
        for name, words in _REFUSALS:
            code = getattr(network, name, None)
            if code is not None:
                self.refusals[code] = words
        self.wlan = network.WLAN(network.STA_IF)
        now = time.ticks_ms()
        self.state = _WAITING
        self.next = now
        self.started = now
        try:
            self.wlan.active(True)  # at start-up: the radio's driver comes up (100s of ms)
            if self.wlan.isconnected():  # still joined from before a soft reset
                self._up(now)
            else:
                self._join(now)
        except Exception as e:  # noqa: BLE001 - no radio yet: the timer tries again
            self._retry(now, "radio: %r" % e)
        loop.add_timer(self)

    def due_in(self, now):
        d = time.ticks_diff(self.next, now)
        return d if d > 0 else 0

    def tick(self, now):
        if time.ticks_diff(now, self.next) < 0:
            return
        try:
            self._step(now)
        except Exception as e:  # noqa: BLE001 - the radio refused a call: start over later
            self._retry(now, "radio: %r" % e)

    def _step(self, now):
        wlan = self.wlan
        if self.state == _WAITING:
            self._join(now)
        elif self.state == _JOINING:
            status = wlan.status()
            if wlan.isconnected():
                self._up(now)
            elif status in self.refusals:
                self._retry(now, self.refusals[status])
            elif time.ticks_diff(now, self.started) >= self.timeout:
                self._retry(now, "not connected after %d s (status %d)" % (self.timeout // 1000, status))
            else:
                self.next = time.ticks_add(now, POLL_MS)
        elif wlan.isconnected():
            self.next = time.ticks_add(now, WATCH_MS)
        else:
            print("wifi: lost %s; joining again" % self.ssid)
            self.ips.clear()
            self.delay = RETRY_MS
            try:
                wlan.disconnect()
            except OSError:
                pass
            self._join(now)

    def _join(self, now):
        self.state = _JOINING
        self.started = now
        self.next = time.ticks_add(now, POLL_MS)
        self.wlan.connect(self.ssid, self.password)

    def _up(self, now):
        ip = self.wlan.ifconfig()[0]
        print("wifi: connected to %s, ip %s" % (self.ssid, ip))
        self.ips.clear()
        self.ips.append(ip)
        self.state = _UP
        self.delay = RETRY_MS
        self.next = time.ticks_add(now, WATCH_MS)

    def _retry(self, now, why):
        print("wifi: %s: %s; retrying in %d s" % (self.ssid, why, (self.delay + 999) // 1000))
        try:
            self.wlan.disconnect()  # the esp32 port would otherwise keep retrying on its own
        except OSError:
            pass
        self.state = _WAITING
        self.next = time.ticks_add(now, self.delay)
        self.delay = min(2 * self.delay, RETRY_MAX_MS)
