"""The Modbus RTU master of one serial line: one transaction queue that every user shares (the
MQTT gateway's format 1, the TCP-to-RTU gateway, extension modules, the poller).

One request is on the line at a time (Modbus over Serial Line V1.02 2.4: a master waits for
the answer or the response timeout before the next request). The rules:
  * A request goes out only after t3.5 of silence on the line: t3.5 after the last byte of the
    previous answer, or t3.5 plus the port's latency after any other bytes seen (what came
    late or unasked: the port is drained and the wait starts again).
  * The answer is found by its length (mbnode.rtu.response_length) and CRC, and must come from
    the unit asked with the function asked (or its exception). A frame that fails is counted,
    dropped, and the wait goes on: a late answer to an earlier request, or noise, is never
    taken for this request's answer. Noise before the answer is skipped when a whole, correct
    answer follows it; bytes that stop short of a frame are dropped once a look finds the line
    silent for t3.5 plus the port's latency (only a look that finds nothing proves silence:
    the loop may read late what came early).
  * After a timeout, the unit that did not answer is not asked again until its late answer
    has come (any bytes on the line end the wait) or timeout_ms more have passed; requests to
    other units go first meanwhile (their answers carry another address). A late answer from
    the same unit to the same function with the same length is otherwise indistinguishable
    from the next answer: so an answer later than twice timeout_ms can still be mistaken, and
    a device that slow needs a longer timeout_ms (docs/master.md).
  * timeout_ms runs from the end of the request on the wire. If an answer is still arriving
    when it runs out, it is given until the line falls silent (never more than a whole frame's
    time), so a long answer at a slow baud rate is not cut in the middle.
  * Unit 0 is a broadcast: nothing is awaited; the line is held for turnaround_ms after it
    (the spec's turnaround delay), then the transaction ends with SENT.
  * A save to flash (mbnode.retain) holds the line between two transactions: hold(True) lets
    the one on the line end as it would and starts no other until hold(False); busy() tells
    the saver whether an answer (or a broadcast's turnaround) is still awaited. On the RP2040
    a flash write stops the UART's interrupts: an answer arriving then would lose its bytes
    beyond the FIFO's 32 (docs/reliability.md, "Flash writes and the UART").
No call waits for the line or for a peer: waits are loop timers, except that a wait of less
than _SPIN_US before a send spins (the loop's timers count milliseconds). A port's send holds
the loop for the frame's own time on the wire (a pin board's UART flush: at most 256
characters, 293 ms at 9600 baud); nothing a peer does makes that longer.
"""

import time

from mbnode.crc import crc16
from mbnode.fast import copy
from mbnode.rtu import MAX_FRAME, MORE, char_times, response_length
from mbnode.transaction import BAD, FAILED, OK, SENT, TIMEOUT

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_SPIN_US = const(1000)
# What was wrong with a frame that was not the answer (RtuMaster.bad).
_CRC = const(1)
_UNKNOWN_FC = const(2)
_OTHER_UNIT = const(3)
_OTHER_FC = const(4)
_TOO_LONG = const(5)
_CUT_SHORT = const(6)


class RtuMaster:
    def __init__(self, loop, port, baud, parity, stopbits, queue=16, turnaround_ms=100):
        self.loop = loop
        self.port = port
        self.name = port.name
        self.char, self.t35 = char_times(baud, parity, stopbits)
        self.quiet = self.t35 + port.latency_us  # a pause this long proves t3.5 of silence
        self.turnaround = turnaround_ms
        self.rx = bytearray(MAX_FRAME)
        self.tx = bytearray(MAX_FRAME)  # the request frame; once out, where dropped bytes go
        self.queue = [None] * queue
        self.head = 0
        self.count = 0
        self.cur = None  # the transaction on the line
        self.cancelled = False  # its user gave up on it: its answer is awaited and dropped
        self.req_len = 0  # its frame's length (FC08/00's answer echoes it)
        self.fc = 0  # its function code
        self.fill = 0
        self.bad = 0  # what was wrong with the last frame dropped while waiting (_CRC...), or 0
        self.bad_arg = 0
        self.arg = 0  # _wrong's number of the frame it looked at
        self.deadline = 0  # ticks_ms: the answer's timeout (or the broadcast's turnaround)
        self.late = False  # the deadline passed while an answer was arriving
        now = time.ticks_us()
        self.seen = now  # ticks_us just after bytes were last read (or the request went out)
        self.free = now  # ticks_us from which the next request may go
        self.closed = False
        self.held = False  # hold(): no new request goes out (a save to flash waits for the line)
        # After a timeout, the unit that did not answer (-1: none) and until when (ticks_ms) its
        # late answer is waited for before it is asked again: no request goes out for it while
        # the answer to its last one may still come and be taken for the new one's.
        self.suspect = -1
        self.suspect_until = 0
        # Counters (docs/master.md): requests sent, answers, exception answers, timeouts,
        # malformed frames dropped, broadcasts, bytes that came while nothing was asked.
        self.sent = self.answers = self.exceptions = self.timeouts = 0
        self.malformed = self.broadcasts = self.stray = 0
        loop.add(port.stream, self)
        loop.add_timer(self)

    # --- the users' side

    def submit(self, txn):
        """Queue txn (its unit, pdu[0:n], timeout_ms); False when the queue is full (the caller
        answers that: MQTT "queue full", TCP exception 06) or the line is gone."""
        if self.closed or self.count == len(self.queue) or txn.busy:
            return False
        q = self.queue
        q[(self.head + self.count) % len(q)] = txn
        self.count += 1
        txn.busy = True
        if self.cur is None:
            self._next(time.ticks_us())
        return True

    def cancel(self, txn):
        """Its user no longer wants txn's answer (a TCP client went away): out of the queue, or,
        on the line, its answer is still awaited (the line must fall quiet) and dropped. done
        is not called."""
        if txn is self.cur:
            self.cancelled = True
            txn.busy = False
            return
        q = self.queue
        size = len(q)
        for i in range(self.count):
            if q[(self.head + i) % size] is txn:
                for j in range(i, self.count - 1):
                    q[(self.head + j) % size] = q[(self.head + j + 1) % size]
                self.count -= 1
                q[(self.head + self.count) % size] = None
                txn.busy = False
                return

    # --- saves to flash (mbnode.retain): the line's part

    def busy(self):
        """A request of ours is on the line: its answer (or a broadcast's turnaround) is awaited."""
        return self.cur is not None

    def hold(self, on):
        """on: start no new request (the one on the line ends as it would) until hold(False)."""
        self.held = on

    @property
    def waiting(self):
        """Transactions queued, the one on the line not counted."""
        return self.count

    # --- sending

    def _next(self, now):
        """Send the next queued request if the line is free (else the timer comes back)."""
        if self.cur is not None or not self.count or self.held:
            return
        if time.ticks_diff(self.free, now) > 0:
            return
        port = self.port
        tx = self.tx
        k = port.readinto(tx, MAX_FRAME)
        if k:  # the line was not quiet after all: wait again from these bytes
            self._stray(k, time.ticks_us())
            return
        txn = self._take()
        if txn is None:
            return
        n = txn.n
        tx[0] = txn.unit
        copy(tx, 1, txn.pdu, txn.off, n)
        c = crc16(tx, 0, n + 1)
        tx[n + 1] = c & 0xFF
        tx[n + 2] = c >> 8
        self.cur = txn
        self.cancelled = False
        self.req_len = n + 3
        self.fc = tx[1]
        self.fill = 0
        self.bad = 0
        self.late = False
        try:
            port.send(tx, n + 3)
        except OSError as e:
            self.cur = None
            txn.why = "cannot send on %s: %s" % (self.name, e)
            self._done(txn, FAILED)
            return
        self.sent += 1
        self.seen = time.ticks_us()
        # The frame may still be going out (a pty takes it at once; a UART's send returns when
        # it is out): the timeout runs from its end on the wire.
        wire_ms = (n + 3) * self.char // 1000 + 1
        if txn.unit == 0:
            self.broadcasts += 1
            self.deadline = time.ticks_add(time.ticks_ms(), wire_ms + self.turnaround)
        else:
            self.deadline = time.ticks_add(time.ticks_ms(), wire_ms + txn.timeout_ms)

    def _take(self):
        """The next transaction out of the queue: the oldest, except that while an answer from
        the unit whose last request timed out may still come (the suspect window), requests
        to that unit wait and others go first; None when only those are queued."""
        q = self.queue
        size = len(q)
        i = 0
        if self.suspect >= 0:
            if time.ticks_diff(self.suspect_until, time.ticks_ms()) <= 0:
                self.suspect = -1
            else:
                while i < self.count and q[(self.head + i) % size].unit == self.suspect:
                    i += 1
                if i == self.count:
                    return None
        k = (self.head + i) % size
        txn = q[k]
        for j in range(i, 0, -1):  # the ones skipped keep their order
            q[(self.head + j) % size] = q[(self.head + j - 1) % size]
        q[self.head] = None
        self.head = (self.head + 1) % size
        self.count -= 1
        return txn

    def _stray(self, k, now):
        self.stray += k
        self.suspect = -1  # the late answer (or something) came: the line rules decide now
        self.seen = now
        self.free = time.ticks_add(now, self.quiet)

    # --- receiving (the loop's handler for the port)

    def on_event(self, stream, events):
        if events & 0x18:  # POLLHUP | POLLERR: the line went away
            self._close("the serial line %s closed" % self.name)
            return
        self._read()

    def _read(self):
        """Take what the port has; True when bytes came."""
        cur = self.cur
        k = self.port.readinto(self.tx, MAX_FRAME)
        if not k:
            return False
        now = time.ticks_us()
        if cur is None or cur.unit == 0:
            self._stray(k, now)
            return True
        self.seen = now
        if self.fill + k > MAX_FRAME:
            self._drop(_TOO_LONG)
            self.free = time.ticks_add(now, self.quiet)
            return True
        copy(self.rx, self.fill, self.tx, 0, k)
        self.fill += k
        self._check(now)
        return True

    def _check(self, now):
        """Is the answer in rx? A frame that cannot be it is dropped; bytes before the answer
        (noise glued to its front) are skipped when a whole, correct answer follows them."""
        rx = self.rx
        o = 0
        while o < self.fill:
            n = self.fill - o
            want = response_length(rx, o, n, self.req_len)
            if want == MORE or 0 < want and n < want:
                if o:  # keep what may be the answer's beginning
                    self.fill = n
                    copy(rx, 0, rx, o, n)
                return
            whole = want > 0 and crc16(rx, o, want) == 0  # a correct frame, if not the answer
            why = self._wrong(rx, o, want, whole)
            if not why:
                txn = self.cur
                self.answers += 1
                if rx[o + 1] & 0x80:
                    self.exceptions += 1
                self.free = time.ticks_add(now, self.t35)
                self.cur = None
                self.fill = 0
                if not self.cancelled:
                    self._done(txn, OK, rx, o + 1, want - 3)
                self._next(time.ticks_us())
                return
            if o == 0:
                self.malformed += 1
                self.bad = why
                self.bad_arg = self.arg
            # Look for the answer further on: after this frame when it is a correct one (another
            # unit's, another function's), else from the next byte with the unit's address.
            o += want if whole else 1
            while o < self.fill and rx[o] != self.cur.unit:
                o += 1
        self.fill = 0
        self.free = time.ticks_add(now, self.quiet)

    def _wrong(self, rx, o, want, whole):
        """What is wrong with the frame of `want` bytes at rx[o] as the answer: 0 nothing, else
        a reason (_why's) its number in self.arg. Allocates nothing: a noisy line
        costs no heap; the text is made once, if the transaction ends BAD."""
        if want < 0:
            self.arg = rx[o + 1]
            return _UNKNOWN_FC
        if not whole:
            return _CRC
        if rx[o] != self.cur.unit:
            self.arg = rx[o]
            return _OTHER_UNIT
        if rx[o + 1] & 0x7F != self.fc:
            self.arg = rx[o + 1]
            return _OTHER_FC
        return 0

    def _why(self):
        bad = self.bad
        if bad == _CRC:
            return "CRC error"
        if bad == _UNKNOWN_FC:
            return "function %d of unknown length" % self.bad_arg
        if bad == _OTHER_UNIT:
            return "answer from unit %d" % self.bad_arg
        if bad == _OTHER_FC:
            return "function %d to function %d" % (self.bad_arg, self.fc)
        if bad == _TOO_LONG:
            return "longer than 256 bytes"
        return "frame cut short"

    def _drop(self, why):
        self.malformed += 1
        self.bad = why
        self.fill = 0

    def _done(self, txn, status, buf=None, o=0, n=0):
        if status == TIMEOUT:
            self.timeouts += 1
        txn.finish(status, buf, o, n)

    def _close(self, why):
        """The port is gone: every transaction ends FAILED, later ones are refused."""
        self.closed = True
        self.loop.remove(self.port.stream)
        self.loop.remove_timer(self)
        print("mbnode: %s; its RTU master stopped" % why)
        txn, self.cur = self.cur, None
        if txn is not None and not self.cancelled:
            txn.why = why
            self._done(txn, FAILED)
        while self.count:
            txn = self.queue[self.head]
            self.queue[self.head] = None
            self.head = (self.head + 1) % len(self.queue)
            self.count -= 1
            txn.why = why
            self._done(txn, FAILED)

    # --- loop timer: timeouts, turnaround, t3.5 before the next request

    def due_in(self, now):
        if self.cur is not None:
            d = time.ticks_diff(self.deadline, now)
            if self.fill:  # a look when silence would prove the frame in hand cut short
                q = (time.ticks_diff(time.ticks_add(self.seen, self.quiet), time.ticks_us()) + 999) // 1000
                if q < d:
                    d = q
            return d if d > 0 else 0
        if not self.count or self.held:
            return -1
        d = time.ticks_diff(self.free, time.ticks_us())
        d = 0 if d <= _SPIN_US else (d + 999) // 1000
        if self.suspect >= 0:  # perhaps only the suspect unit's requests are queued
            s = time.ticks_diff(self.suspect_until, now)
            if s > d:
                for i in range(self.count):
                    if self.queue[(self.head + i) % len(self.queue)].unit != self.suspect:
                        return d
                return s
        return d

    def tick(self, now):
        txn = self.cur
        if txn is not None and self.fill and not self._read() and \
                time.ticks_diff(time.ticks_us(), self.seen) >= self.quiet:
            # Silent since bytes that are not a whole answer: they never will be.
            self._drop(_CUT_SHORT)
            self.free = time.ticks_us()
        txn = self.cur
        if txn is not None and time.ticks_diff(now, self.deadline) >= 0:
            us = time.ticks_us()
            if txn.unit == 0:
                self.cur = None
                self.free = time.ticks_add(us, self.t35)
                if not self.cancelled:
                    self._done(txn, SENT)
            elif self.fill and not self.late and time.ticks_diff(us, self.seen) < self.quiet:
                # An answer is arriving: let it finish (at most a whole frame's time more).
                self.late = True
                self.deadline = time.ticks_add(now, MAX_FRAME * self.char // 1000 + 1)
                return
            else:
                self.cur = None
                self.free = time.ticks_add(self.seen, self.quiet)
                if not self.bad:
                    self.suspect = txn.unit
                    self.suspect_until = time.ticks_add(now, txn.timeout_ms)
                if not self.cancelled:
                    if self.bad:
                        txn.why = self._why()
                        self._done(txn, BAD)
                    else:
                        self._done(txn, TIMEOUT)
                else:
                    self.timeouts += 1
        if self.cur is None and self.count:
            us = time.ticks_us()
            d = time.ticks_diff(self.free, us)
            if 0 < d <= _SPIN_US:
                time.sleep_us(d)
                us = time.ticks_add(us, d)
            self._next(us)

