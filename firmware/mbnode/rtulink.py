"""Modbus RTU on a serial line: bytes in, frames found, replies out at the right moment.

The port (board layer: a UART with its RS-485 driver enable, or a tty/pty on the unix port)
hands over bytes without a time stamp, up to port.latency_us after they were on the wire, and
the loop looks whenever it gets round to it. So nothing here depends on when the software
happened to look; only on what it found (docs/rtu.md, "Frames and timing"):
  * Reading in blocks. While the line is idle the port is polled. The first bytes of a frame
    wake the link; from then on the port is out of the poll set and the link reads it on a
    loop timer set for when the bytes still missing are due (rtu.request_length tells how
    many; while it cannot tell yet, the shortest request), but at most 32 characters ahead,
    and so on until the length is in or the line has fallen silent.
  * End of a request: as soon as its length is in and its CRC is right; the slave does not wait
    for silence to know.
  * Silence ends what the length rule cannot (unknown function codes, FC08/00 echo, garbage, a
    frame cut short): a look that finds nothing new t3.5 + latency after the last bytes were
    seen proves t3.5 of silence on the wire. A correct CRC then serves the frame, else the line
    resynchronises. Noise glued to the front of a frame is skipped if a frame for this unit
    with a correct CRC follows it.
  * t1.5 is not checked: without a time stamp per byte a pause can only be seen between two
    looks, not between two bytes, and a frame with the right length and CRC is served.
  * The reply is prepared at once and sent no earlier than t3.5 after the request's last byte
    was seen (short waits spin, long ones go through the loop's timer); bytes arriving in that
    window mean the request was not over, and the reply is dropped. early_reply sends at once.
"""

import time

from mbnode.fast import copy
from mbnode.crc import crc16
from mbnode.rtu import MAX_FRAME, MIN_REQUEST, MORE, changes_state, request_length
from mbnode.scratch import SCRATCH

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_POLLIN = const(1)
_SPIN_US = const(3000)  # waits up to this long are done in place; longer ones in the loop first
_OVERSLEEP_US = const(250)  # sleep_us may wake this much late (unix: ~60-100 us): spin instead
_BLOCK = const(32)  # characters at most between two looks while a frame comes in


class RtuLink:
    after_reply = None  # called right after each reply left the wire, when set (mbnode.retain's saves)

    def __init__(self, loop, server, port, char_us, t35, early_reply):
        self.loop = loop
        self.server = server
        self.port = port
        self.char = char_us
        self.t35 = t35
        self.quiet = t35 + port.latency_us  # a look this long after the last bytes proves t3.5
        self.early = early_reply
        self.rx = bytearray(MAX_FRAME)
        self.tx = bytearray(MAX_FRAME)
        self.fill = 0
        self.seen = 0  # ticks_us just after the last read that returned bytes
        self.due = 0  # ticks_us of the next look (or of the reply's t3.5 wait), when waiting
        self.waiting = False  # a timer look is due: the port is out of the poll set (else in it, POLLIN)
        self.spoilt = False  # input during the reply wait: drop at silence
        self.overrun = False
        self.pending = 0  # length of a reply in tx waiting for t3.5
        self.held = 0  # length of a write request in rx waiting for t3.5 before it executes
        server.waiter = self  # answers that come later (writes to extension modules): finish()
        loop.add(port.stream, self)
        loop.add_timer(self)

    def on_event(self, stream, events):
        if events & 0x18:  # POLLHUP | POLLERR: the line went away (the pty's other end closed)
            print("mbnode: rtu line %s closed; RTU stopped" % self.port.name)
            self.loop.remove(stream)
            self.loop.remove_timer(self)
        elif not self.waiting:
            self._look()

    def on_error(self, stream):
        # The loop's call after on_event or tick raised: drop the frame in hand, listen again.
        self.fill = self.pending = self.held = 0
        self.spoilt = self.overrun = False
        self._listen()

    # --- receiving

    def _look(self):
        """Read what is there and decide: a complete request, bytes still due, or silence."""
        before = time.ticks_us()
        got = self._read()
        if got:
            self.seen = time.ticks_us()
            if self.server.waiting:
                self.server.drop()  # the line is in use again: an answer awaited is not sent
        elif not self.fill:
            self._listen()  # woken with nothing to read
            return
        n = self.fill
        need = 0  # bytes the length says are still missing; 0: only silence can end the frame
        if not self.spoilt and not self.overrun:
            length = request_length(self.rx, 0, n)
            if length == n and crc16(self.rx, 0, n) == 0:
                self._complete(n)
                return
            if length > n:
                need = length - n
            elif length == MORE:
                need = MIN_REQUEST - n if n < MIN_REQUEST else 1
        if got and need:
            # When the rest is due on the wire, but at most _BLOCK characters (or t3.5 + latency,
            # if longer) after these bytes: a frame whose length field promises more than comes
            # (FC15/16/23 with a byte count too large, a frame cut short) ends at t3.5 of
            # silence like any other, seen at the next look, not when its missing bytes would
            # have come (up to 255 characters later).
            self._wait(min(need, _BLOCK) * self.char + self.quiet - self.t35)  # + the port's latency
        elif got or time.ticks_diff(before, self.seen) < self.quiet:
            self._wait(self.quiet)  # nothing new is due: look again when silence would be proven
        else:
            self._silence()

    def _read(self):
        # Everything waiting, appended to rx[0:fill]; returns how many bytes came. Bytes past
        # MAX_FRAME are dropped as an overrun. A held request stays at rx[0:held] until
        # something arrives.
        port = self.port
        got = 0
        while True:
            fill = self.fill
            if fill == 0 and not self.held:
                n = port.readinto(self.rx, MAX_FRAME)
                self.fill = n
            else:
                n = port.readinto(SCRATCH, MAX_FRAME)  # the device's scratch (mbnode.scratch)
                keep = MAX_FRAME - fill
                if n > keep:
                    self.overrun = True
                else:
                    keep = n
                copy(self.rx, fill, SCRATCH, 0, keep)
                self.fill = fill + keep
            if not n:
                return got
            got += n

    def _wait(self, us):
        # Look again `us` after the last bytes were seen, with the port out of the poll set:
        # bytes wait in the driver meanwhile and are read in one go.
        self.due = time.ticks_add(self.seen, us)
        if not self.waiting:
            self.waiting = True
            self.loop.modify(self.port.stream, 0)

    def _listen(self):
        if self.waiting:
            self.waiting = False
            self.loop.modify(self.port.stream, _POLLIN)

    # --- a request complete by its length

    def _complete(self, n):
        """rx[0:n] is a whole request by its length and CRC. A read is answered into tx at once,
        while the line must stay silent; a write waits for t3.5 to prove the frame over."""
        self.fill = 0
        if self.early:
            r = self.server.serve(self.rx, 0, n, self.tx)
            if r:
                self._reply(r)
            self._listen()
            return
        if changes_state(self.rx, 0):
            self.held = n
        else:
            self.pending = self.server.serve(self.rx, 0, n, self.tx)
            if not self.pending:
                self._listen()
                return
        if time.ticks_diff(time.ticks_add(self.seen, self.t35), time.ticks_us()) <= _SPIN_US:
            self._when_due()
        else:
            self._wait(self.t35 - _SPIN_US)

    def _when_due(self):
        due = time.ticks_add(self.seen, self.t35)
        wait = time.ticks_diff(due, time.ticks_us())
        if wait > _OVERSLEEP_US:
            time.sleep_us(wait - _OVERSLEEP_US)
        while time.ticks_diff(due, time.ticks_us()) > 0:
            pass  # the last stretch spins: a sleep may overshoot by more than the spec allows
        if self._read():
            # The request was not over: drop it (and, held, unexecuted), the rest at silence.
            self.pending = self.held = 0
            self.spoilt = True
            self.seen = time.ticks_us()
            self._wait(self.quiet)
            return
        r = self.pending
        if self.held:
            r = self.server.serve(self.rx, 0, self.held, self.tx)
        self.pending = self.held = 0
        if r:
            self._reply(r)
        self._listen()

    def _reply(self, n):
        self.port.send(self.tx, n)
        if self.after_reply is not None:
            self.after_reply()

    def finish(self, status, buf, o, n):
        """The Engine's later answer (pdu.PENDING: a write to extension modules) to the request
        served last, sent now: the line has been silent since that request (else drop() came
        first), so t3.5 has passed unless the modules answered within it (then it is waited)."""
        server = self.server
        if not server.waiting:
            return
        r = server.late(buf, o, n, self.tx)
        due = time.ticks_add(self.seen, self.t35)
        while time.ticks_diff(due, time.ticks_us()) > 0:
            pass
        self._reply(r)

    # --- silence

    def _silence(self):
        n = self.fill
        self.fill = 0
        self._listen()
        diag = self.server.diag
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
        if n < 4 or crc16(rx, 0, n):
            if n == 0:
                return
            diag.bad_frame()
            # Noise glued to the front of a frame: look for a frame for us that ends here.
            k = 1
            address = self.server.address
            while k <= n - 4 and ((rx[k] != address and rx[k] != 0) or crc16(rx, k, n - k)):
                k += 1
            if k > n - 4:
                return
            copy(rx, 0, rx, k, n - k)
            n -= k
        # At silence: t3.5 has passed already.
        r = self.server.serve(rx, 0, n, self.tx)
        if r:
            self._reply(r)

    def busy(self):
        """A frame is coming in or in hand (mbnode.retain takes a save's step only when not)."""
        return self.waiting or self.fill > 0

    # --- loop timer: the next look, or the reply's t3.5 wait

    def due_in(self, now):
        if not self.waiting:
            return -1
        d = time.ticks_diff(self.due, time.ticks_us())
        return (d + 999) // 1000 if d > 0 else 0

    def tick(self, now):
        if self.waiting and time.ticks_diff(time.ticks_us(), self.due) >= 0:
            if self.pending or self.held:
                self._when_due()
            else:
                self._look()
