"""Stand-in for network.WLAN (station) on the unix port, behaving as the rp2 port's CYW43 driver
does: connect() returns at once, status() says STAT_CONNECTING until the attempt is decided
JOIN_MS later, then STAT_GOT_IP or the refusal; a failed attempt stays failed until the next
connect(); disconnect() goes idle. The status codes are the rp2 port's (the esp32 port has the
same names with other numbers: code must use the names).

A test scripts the coming attempts in ATTEMPTS ("ok", "no_ap", "wrong_password", "fail", or
"hang": stays connecting) and takes the link away with drop(); joined and LOG record what the
firmware asked for.
"""

import time

STA_IF = 0
AP_IF = 1

STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = -3
STAT_NO_AP_FOUND = -2
STAT_CONNECT_FAIL = -1
STAT_GOT_IP = 3

_OUTCOMES = {"ok": STAT_GOT_IP, "no_ap": STAT_NO_AP_FOUND, "wrong_password": STAT_WRONG_PASSWORD,
             "fail": STAT_CONNECT_FAIL, "hang": STAT_CONNECTING}

ATTEMPTS = []  # outcomes of the coming connect() calls, in order; when empty: "ok"
JOIN_MS = 30
IP = "10.0.0.5"
MAC = b"\x28\xcd\xc1\x0a\x0b\xfe"  # WLAN.config("mac")
joined = []  # (ssid, password) of every connect()
LOG = []  # ("active", on), ("connect", ssid), ("disconnect",)
_interfaces = {}


class WLAN:
    def __new__(cls, iface=STA_IF):  # one object per interface, like the ports
        if iface not in _interfaces:
            w = object.__new__(cls)
            w.iface = iface
            w.on = False
            w.outcome = None
            w.decided_at = 0
            _interfaces[iface] = w
        return _interfaces[iface]

    def __init__(self, iface=STA_IF):
        pass

    def active(self, on=None):
        if on is None:
            return self.on
        LOG.append(("active", bool(on)))
        self.on = bool(on)
        if not on:
            self.outcome = None

    def connect(self, ssid, key=None):
        if not self.on:
            raise OSError("WLAN not active")
        joined.append((ssid, key))
        LOG.append(("connect", ssid))
        self.outcome = _OUTCOMES[ATTEMPTS.pop(0) if ATTEMPTS else "ok"]
        self.decided_at = time.ticks_add(time.ticks_ms(), JOIN_MS)

    def disconnect(self):
        LOG.append(("disconnect",))
        self.outcome = None

    def status(self, param=None):
        if self.outcome is None:
            return STAT_IDLE
        if time.ticks_diff(time.ticks_ms(), self.decided_at) < 0:
            return STAT_CONNECTING
        return self.outcome

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def config(self, key):
        if key == "mac":  # the system registers' MAC text (mbnode.sysregs)
            return MAC
        raise ValueError("unknown config param")

    def ifconfig(self, config=None):
        return (IP if self.isconnected() else "0.0.0.0", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def drop(self):
        """Test helper: the access point goes away (the link fails, as CYW43 reports it)."""
        self.outcome = STAT_CONNECT_FAIL
