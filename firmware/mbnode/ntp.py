"""Setting the clock of the status registers (mbnode.sysregs.Status.set_time) from an NTP server (SNTP,
RFC 4330), without ever waiting for the server on the event loop.

The status block's timer calls tick() once a second. When a question is due (at start-up once
the board has an address, then every system.ntp_interval s; 60 s after a failure) one UDP
datagram goes out from a non-blocking socket, which joins the loop; the answer is read when the
socket is readable, and a question unanswered after TIMEOUT_MS is given up. The one call that
can take longer is getaddrinfo for a server given by name (the port's DNS query, bounded by its
own time limit; esp32 and rp2: a few seconds at worst, once per question); a server given as
an IPv4 address (docs/configuration.md, system.ntp) never waits.

Loaded only when system.ntp names a server (or "auto" on a board with Wi-Fi).
"""

import socket
import sys
import time

TIMEOUT_MS = 2000
RETRY_MS = 60000
_NTP_TO_UNIX = 2208988800  # seconds from 1900 to 1970
_UNIX = sys.platform in ("linux", "darwin")  # the unix port's poll takes descriptor numbers (tcp.py)


class Ntp:
    def __init__(self, loop, status, server, interval_s, needs_address):
        """server: "HOST" or "HOST:PORT" (port 123 by default); needs_address: wait until the
        board has an IP address (a board with Wi-Fi) before asking."""
        host, port = server.rsplit(":", 1) if ":" in server else (server, "123")
        self.host = host
        self.port = int(port)
        self.loop = loop
        self.status = status
        self.interval = 1000 * interval_s
        self.needs_address = needs_address
        self.sock = None
        self.key = None
        self.sent = 0
        self.next = time.ticks_ms()
        self.answers = 0  # answers taken (the tests' view)

    def tick(self, now, ip):
        if self.sock is not None:
            if time.ticks_diff(now, self.sent) >= TIMEOUT_MS:
                print("ntp: no answer from %s:%d in %d ms; next try in %d s"
                      % (self.host, self.port, TIMEOUT_MS, RETRY_MS // 1000))
                self._close(now, RETRY_MS)
            return
        if time.ticks_diff(now, self.next) < 0 or self.needs_address and not ip:
            return
        try:
            addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_DGRAM)[0][-1]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            self.sock = s
            q = bytearray(48)
            q[0] = 0x1B  # leap 0, version 3, mode 3 (client)
            s.sendto(q, addr)
        except (OSError, IndexError) as e:
            print("ntp: cannot ask %s:%d: %s; next try in %d s" % (self.host, self.port, e, RETRY_MS // 1000))
            self._close(now, RETRY_MS)
            return
        self.sent = now
        self.key = s.fileno() if _UNIX else s
        self.loop.add(self.key, self)

    def on_event(self, key, events):
        now = time.ticks_ms()
        try:
            data = self.sock.recv(64)
        except OSError:
            return
        # A server's answer (mode 4) with a transmit time; anything else is ignored.
        if len(data) >= 48 and data[0] & 7 == 4 and data[1]:
            secs = int.from_bytes(data[40:44], "big") - _NTP_TO_UNIX
            if secs > 0:
                self.status.set_time((secs >> 16) & 0xFFFF, secs & 0xFFFF)
                self.answers += 1
                self._close(now, self.interval)

    def on_error(self, key):
        self._close(time.ticks_ms(), RETRY_MS)

    def _close(self, now, after):
        if self.sock is not None:
            if self.key is not None:
                self.loop.remove(self.key)
            self.sock.close()
            self.sock = self.key = None
        self.next = time.ticks_add(now, after)
