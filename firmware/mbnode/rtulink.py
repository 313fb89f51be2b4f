"""Modbus RTU on a serial line: bytes in, frames found, replies out at the right moment.

The port (board layer: a UART with its RS-485 driver enable, or a tty/pty on the unix port) is
polled by the shared event loop. Each wake-up reads what arrived and stamps the time.
  * End of a request: as soon as its length (from the function code and byte count, see
    rtu.request_length) is in and its CRC is right; the slave does not wait for silence to know.
  * Silence of t3.5 ends what the length rule cannot (unknown function codes, FC08/00 echo,
    garbage): then a correct CRC serves the frame, else the line resynchronises. Noise glued to
    the front of a frame is skipped if a frame for this unit with a correct CRC follows it.
  * A gap longer than t1.5 inside a frame spoils it: it is dropped at the next silence.
  * The reply is prepared at once and sent no earlier than t3.5 after the request's last byte
    (short waits spin, long ones go through the loop's timer); bytes arriving in that window
    mean the request was not over, and the reply is dropped. early_reply sends at once.
t1.5/t3.5 are 1.5/3.5 character times (start + 8 data + parity + stop bits), fixed at 750 and
1750 us above 19200 baud, per Modbus over Serial Line V1.02 2.5.1.1. The timing is only as fine
as the port lets the loop see bytes arrive; docs/rtu.md gives the limits per board.
"""

import time

from mbnode.fast import copy
from mbnode.crc import crc16
from mbnode.rtu import MAX_FRAME, changes_state, char_times, request_length

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_SPIN_US = const(3000)  # waits up to this long are done in place; longer ones in the loop first
_OVERSLEEP_US = const(250)  # sleep_us may wake this much late (unix: ~60-100 us): spin instead


class RtuLink:
    def __init__(self, loop, server, port, t15, t35, early_reply):
        self.loop = loop
        self.server = server
        self.diag = server.diag
        self.port = port
        self.t15 = t15
        self.t35 = t35
        self.early = early_reply
        self.rx = bytearray(MAX_FRAME)
        self.scratch = bytearray(MAX_FRAME)
        self.tx = bytearray(MAX_FRAME)
        self.fill = 0
        self.last = 0  # ticks_us when the last bytes were seen
        self.spoilt = False  # a t1.5 gap or input during the reply wait: drop at silence
        self.overrun = False
        self.pending = 0  # length of a reply in tx waiting for t3.5
        self.held = 0  # length of a write request in rx waiting for t3.5 before it executes
        loop.add(port.stream, self)
        loop.timers.append(self)

    def on_event(self, stream, events):
        if events & 0x18:  # POLLHUP | POLLERR: the line went away (the pty's other end closed)
            print("mbnode: rtu line %s closed; RTU stopped" % self.port.name)
            self.loop.remove(stream)
            self.loop.timers.remove(self)
            return True
        now = time.ticks_us()
        gap = self.fill and time.ticks_diff(now, self.last) > self.t15
        if not self._read():
            return False
        if self.pending or self.held:
            self._cancel()  # input before t3.5 had passed: the request was not over
        elif gap:
            self.spoilt = True
        self.last = now
        if not self.spoilt and not self.overrun:
            n = self.fill
            if request_length(self.rx, 0, n) == n and crc16(self.rx, 0, n) == 0:
                self._complete(n)
        return False

    def _read(self):
        # Everything waiting, into rx; bytes past MAX_FRAME are dropped as an overrun.
        port = self.port
        got = 0
        while True:
            fill = self.fill
            if fill == 0:
                n = port.readinto(self.rx, MAX_FRAME)
            else:
                n = port.readinto(self.scratch, MAX_FRAME)
                if n:
                    room = MAX_FRAME - fill
                    if n > room:
                        self.overrun = True
                        n = room
                    copy(self.rx, fill, self.scratch, 0, n)
            if not n:
                return got
            self.fill += n
            got += n

    def _complete(self, n):
        """rx[0:n] is a whole request by its length and CRC. A read is answered into tx at once,
        while the line must stay silent; a write waits for t3.5 to prove the frame over."""
        self.fill = 0
        if self.early:
            r = self.server.serve(self.rx, 0, n, self.tx)
            if r:
                self.port.send(self.tx, r)
            return
        if changes_state(self.rx, 0):
            self.held = n
        else:
            self.pending = self.server.serve(self.rx, 0, n, self.tx)
            if not self.pending:
                return
        if time.ticks_diff(time.ticks_add(self.last, self.t35), time.ticks_us()) <= _SPIN_US:
            self._when_due()

    def _cancel(self):
        # The bytes just read belong to the frame thought complete: drop it, and them at silence.
        self.pending = self.held = 0
        self.spoilt = True

    def _when_due(self):
        due = time.ticks_add(self.last, self.t35)
        wait = time.ticks_diff(due, time.ticks_us())
        if wait > _OVERSLEEP_US:
            time.sleep_us(wait - _OVERSLEEP_US)
        while time.ticks_diff(due, time.ticks_us()) > 0:
            pass  # the last stretch spins: a sleep may overshoot by more than the spec allows
        if self.held:
            # Check before executing: held bytes stay at rx[0:held] only while nothing came.
            self.fill = self.port.readinto(self.scratch, MAX_FRAME)
            if self.fill:
                copy(self.rx, 0, self.scratch, 0, self.fill)
        else:
            self.fill = self.port.readinto(self.rx, MAX_FRAME)
        if self.fill:
            self._cancel()
            self.last = time.ticks_us()
            return
        r = self.pending
        if self.held:
            r = self.server.serve(self.rx, 0, self.held, self.tx)
        self.pending = self.held = 0
        if r:
            self.port.send(self.tx, r)

    def _silence(self):
        n = self.fill
        self.fill = 0
        diag = self.diag
        if self.overrun:
            self.overrun = self.spoilt = False
            diag.overrun_frame()
            return
        if self.spoilt:
            self.spoilt = False
            diag.bad_frame()
            return
        rx = self.rx
        # Frames sent back to back without the t3.5 pause (pymodbus does so after a request
        # that gets no reply): execute each whole one; only the last may be answered.
        o = 0
        while n - o >= 4:
            length = request_length(rx, o, n - o)
            if length < 4 or length >= n - o or crc16(rx, o, length):
                break
            self.server.serve(rx, o, length, self.tx, False)
            o += length
        if o:
            copy(rx, 0, rx, o, n - o)
            n -= o
        if n >= 4 and crc16(rx, 0, n) == 0:
            self._serve_now(n)
            return
        if n == 0:
            return
        diag.bad_frame()
        # Noise glued to the front of a frame: look for a frame for us that ends here.
        k = 1
        address = self.server.address
        while k <= n - 4:
            if (rx[k] == address or rx[k] == 0) and crc16(rx, k, n - k) == 0:
                copy(rx, 0, rx, k, n - k)
                self._serve_now(n - k)
                return
            k += 1

    def _serve_now(self, n):
        # At silence: t3.5 has passed already.
        r = self.server.serve(self.rx, 0, n, self.tx)
        if r:
            self.port.send(self.tx, r)

    # --- loop timer: the silence that ends a frame, and replies waiting for t3.5

    def due_in(self, now):
        if self.pending or self.held:
            d = time.ticks_diff(time.ticks_add(self.last, self.t35), time.ticks_us()) - _SPIN_US
        elif self.fill:
            d = time.ticks_diff(time.ticks_add(self.last, self.t35), time.ticks_us()) + 999
        else:
            return -1
        return d // 1000 if d > 0 else 0

    def tick(self, now):
        if self.pending or self.held:
            if time.ticks_diff(time.ticks_add(self.last, self.t35), time.ticks_us()) <= _SPIN_US:
                self._when_due()
        elif self.fill and time.ticks_diff(time.ticks_us(), self.last) >= self.t35:
            self._silence()


def start(loop, engine, cfg, board):
    """Modbus RTU slave on the board's serial port; returns the words for the ready line."""
    from mbnode.diag import LineDiagnostics
    from mbnode.rtu import RtuServer, open_port

    rtu = cfg["rtu"]
    port, words = open_port(board, cfg)
    t15, t35 = char_times(rtu["baud"], rtu["parity"], rtu["stopbits"])
    RtuLink(loop, RtuServer(engine, LineDiagnostics(), cfg["unit_id"]), port, t15, t35, rtu["early_reply"])
    return words
