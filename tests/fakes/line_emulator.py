"""An emulated RS-485 line for tests and benchmarks: serial ends that behave like UARTs on one
bus, bit by bit, so that baud rate, parity and stop bits matter as they do on a wire, and
timeouts meet real wire times.

A pty ignores baud rate and parity (any setting "works"), so probing a device over a bare pty
pair proves nothing about line-setting discovery. Here every byte a program writes on one end
becomes a character on the line: a start bit (0), 8 data bits LSB first, the parity bit if any,
the stop bits (1), at the sender's bit time, after the sender's previous characters (a UART sends
back to back; the line idles at 1). Every other end decodes the line as a UART receiver does,
at its own setting: it waits for a falling edge, checks the start bit at its middle, samples
each data bit, the parity bit and the first stop bit at their middles (its own bit time), and
then hunts for the next falling edge. So, as on a wire:

  * the same baud rate and parity pass every byte unchanged; stop bits need not agree (a
    receiver checks only the first one): 8N1 and 8N2 understand each other;
  * a receiver without parity samples the sender's parity bit as its stop bit: a character
    whose parity bit is 1 passes cleanly, the others are framing errors. A receiver that does
    not check framing (a tty without INPCK: pyserial's default, and `termios.setraw`'s) gets
    every data byte right, so a parity-less device understands a request sent with parity and
    answers it, at its own setting;
  * a receiver with parity reading a parity-less sender samples the first stop bit (1) as the
    parity bit: about half the characters have a parity error; E against O: every character;
  * a slower sender seen by a faster receiver reads as breaks (0x00, all bits 0) and other
    characters made of the sender's long bits; a faster sender seen by a slower receiver as
    fewer, other characters.

What a receiver does with a character in error (parity or framing) is its receive policy:

  * "drop": discarded (termios INPCK | IGNPAR, what `mbnode probe` sets on a local port; a
    microcontroller UART driver that throws away bad characters);
  * "zero": delivered as 0x00 (INPCK without IGNPAR: Linux's n_tty);
  * "keep": delivered as the data bits sampled (no INPCK: errors are not checked).

A break (all zeros, stop bit included) is delivered as 0x00 under every policy (as an FTDI
adapter and n_tty without IGNBRK do) unless the end ignores breaks (IGNBRK). Defaults: an end
with parity "drop"s, an end without parity "keep"s; a pty end reads INPCK, IGNPAR and IGNBRK
from the program's termios.

Received characters are handed to the program in pieces of up to 8 (a UART's receive FIFO),
each when its last character has been sampled, so a long answer is seen to begin before it
ends. Collisions are not modelled: each receiver decodes each sender separately.

Kinds of ends, each created by the emulator or passed in:

  * "rfc2217": a TCP port on 127.0.0.1 speaking RFC 2217 (what a network serial server such as
    ser2net offers); the program opens rfc2217://127.0.0.1:PORT with pyserial and its baud
    rate, parity, stop bits and data bits arrive as RFC 2217 commands (parsed by pyserial's own
    PortManager). One client at a time; a new one may connect after the last closed.
    `Rfc2217End(rx="keep")` sets its receive policy.
  * "pty": a pty pair; the program opens the slave path, the emulator keeps the master and an
    fd of the slave open, and reads the program's settings with termios.tcgetattr on that fd
    (ispeed, CSIZE, PARENB/PARODD, CSTOPB, and the receive flags). Some kernels (this
    sandbox's) do not keep PARENB on a pty: tcsetattr drops it silently, or fails with EINVAL
    when nothing else changes. `PtyEnd(parity="E")` then gives the end the parity its program
    asked for (the baud rate and stop bits are still read from termios); `PtyEnd(fixed=
    Setting(...))` fixes everything.
  * an emulated device (tests/fakes/emulated_slave.py): a Modbus RTU slave living on the
    emulator's own timeline: it frames requests by 3.5 character times of silence measured on
    the emulated wire, not on a host clock, so its timing is exact however busy the machine is.

Use in-process (`with LineEmulator(["rfc2217", "rfc2217"]) as line: line.url(0) ...`) or as
a process: `python tests/fakes/line_emulator.py rfc2217 pty` prints `ready URL0 URL1` and runs
until SIGTERM/SIGINT. Bounded: at most 64 KiB of characters wait per receiving end.
"""

import bisect
import heapq
import os
import select
import signal
import socket
import sys
import termios
import threading
import time
import tty

from serial import SerialBase
from serial.rfc2217 import PortManager

MAX_PENDING = 65536
FIFO = 8  # characters handed to the receiving program at once (a UART's receive FIFO trigger)
EPS = 1e-9  # samples are taken this much after the exact middle: deterministic at bit edges
_SPEEDS = {}
for _b in (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
           57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000):
    if hasattr(termios, "B%d" % _b):
        _SPEEDS[getattr(termios, "B%d" % _b)] = _b
_CSIZE_BITS = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}
POLICIES = ("drop", "zero", "keep")


class Setting:
    """What a UART is set to. `rx`: its receive policy (None: "drop" with parity, "keep"
    without); `ignbrk`: breaks are discarded instead of read as 0x00."""

    def __init__(self, baud=9600, bytesize=8, parity="N", stopbits=1, rx=None, ignbrk=False):
        if rx not in (None,) + POLICIES:
            raise ValueError("receive policy %r: allowed %s" % (rx, ", ".join(POLICIES)))
        self.baud, self.bytesize, self.parity, self.stopbits = int(baud), int(bytesize), parity, stopbits
        self.rx = rx or ("keep" if parity == "N" else "drop")
        self.ignbrk = ignbrk

    @property
    def bits(self):
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def bit_time(self):
        return 1.0 / self.baud

    @property
    def t35(self):
        """3.5 character times (fixed 1.75 ms above 19200 baud, as the Modbus spec says)."""
        return 0.00175 if self.baud > 19200 else 3.5 * self.bits / self.baud

    def levels(self, byte):
        """The line levels of one character: start, data LSB first, parity, stop bits."""
        data = [(byte >> i) & 1 for i in range(self.bytesize)]
        out = [0] + data
        if self.parity != "N":
            out.append(parity_bit(sum(data), self.parity))
        return tuple(out + [1] * self.stopbits)

    def same_frame(self, other):
        return (self.baud, self.bytesize, self.parity) == (other.baud, other.bytesize, other.parity)

    def __eq__(self, other):
        return isinstance(other, Setting) and (self.baud, self.bytesize, self.parity, self.stopbits, self.rx,
                                               self.ignbrk) == (other.baud, other.bytesize, other.parity,
                                                                other.stopbits, other.rx, other.ignbrk)

    def __repr__(self):
        return "%d-%d%s%s" % (self.baud, self.bytesize, self.parity, self.stopbits)


def parity_bit(ones, parity):
    """The parity bit that makes the count of ones even (E) or odd (O)."""
    return ones & 1 if parity == "E" else (ones & 1) ^ 1


class Waveform:
    """One sender's characters on the line, in time order, never overlapping; the line idles
    at 1 outside them. A character: (start, bit time, levels); times in seconds."""

    def __init__(self):
        self.starts = []
        self.chars = []

    @property
    def end(self):
        if not self.chars:
            return float("-inf")
        start, bit, levels = self.chars[-1]
        return start + bit * len(levels)

    def add(self, start, bit, levels):
        self.starts.append(start)
        self.chars.append((start, bit, levels))

    def level(self, t):
        k = bisect.bisect_right(self.starts, t) - 1
        if k < 0:
            return 1
        start, bit, levels = self.chars[k]
        i = int((t - start) / bit)
        return levels[i] if i < len(levels) else 1

    def falling_edge(self, t):
        """The first time >= t at which the line falls from 1 to 0, or None. Every character
        ends at 1 (its stop bits), so each start bit is an edge, and so is every 1 -> 0 inside."""
        k = max(0, bisect.bisect_right(self.starts, t) - 1)
        while k < len(self.chars):
            start, bit, levels = self.chars[k]
            before = 1
            for i, lv in enumerate(levels):
                at = start + i * bit
                if lv == 0 and before == 1 and at >= t:
                    return at
                before = lv
            k += 1
        return None

    def prune(self, t):
        """Forget characters that ended before t."""
        n = 0
        while n < len(self.chars) - 1:
            start, bit, levels = self.chars[n]
            if start + bit * len(levels) >= t:
                break
            n += 1
        if n:
            del self.starts[:n]
            del self.chars[:n]


class Receiver:
    """A UART receiver decoding one sender's waveform at its own setting."""

    def __init__(self):
        self.pos = float("-inf")

    def decode(self, wave, rx, known):
        """Characters whose samples all lie before `known` (the time up to which the line is
        certain): a list of (start, sampled, end, value, error) where error is None, "parity",
        "framing" or "break". Returns (chars, time at which the next one can be decided or None)."""
        rb = rx.bit_time
        nbits = rx.bytesize + (0 if rx.parity == "N" else 1)
        out = []
        while True:
            e = wave.falling_edge(self.pos)
            if e is None or e >= known:
                self.pos = max(self.pos, known)
                return out, None
            stop_at = e + rb * (1.5 + nbits) + EPS
            if stop_at >= known:
                self.pos = e  # decide when the line up to the stop bit is known
                return out, stop_at
            if wave.level(e + rb / 2 + EPS) != 0:
                self.pos = e + rb / 2  # a glitch, not a start bit
                continue
            value = 0
            ones = 0
            for i in range(rx.bytesize):
                b = wave.level(e + rb * (1.5 + i) + EPS)
                value |= b << i
                ones += b
            error = None
            par = 0
            if rx.parity != "N":
                par = wave.level(e + rb * (1.5 + rx.bytesize) + EPS)
                if par != parity_bit(ones, rx.parity):
                    error = "parity"
            if wave.level(stop_at) == 0:
                error = "break" if value == 0 and par == 0 else "framing"
            out.append((e, stop_at, e + rb * rx.bits, value, error))
            self.pos = stop_at


def received_byte(value, error, rx):
    """What a receiver with setting `rx` hands its program for a decoded character, or None."""
    if error is None:
        return value
    if error == "break":
        return None if rx.ignbrk else 0
    if rx.rx == "drop":
        return None
    return 0 if rx.rx == "zero" else value


class _Settings(SerialBase):
    """The serial port object PortManager configures: it only stores the client's settings."""

    cts = dsr = ri = cd = False

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


class Rfc2217End:
    kind = "rfc2217"

    def __init__(self, rx=None):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.url = "rfc2217://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.rx = rx
        self.conn = None
        self.manager = None
        self.port = None
        self._lock = threading.Lock()

    def fds(self):
        return [self.conn or self.listener]

    def setting(self):
        p = self.port
        if p is None:
            return None
        return Setting(p.baudrate, p.bytesize, p.parity, 2 if p.stopbits == 2 else 1, rx=self.rx)

    def on_readable(self, fd):
        """Bytes the program sent (telnet stripped), or b''."""
        if fd is self.listener:
            conn, _ = self.listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn, self.port = conn, _Settings()
            self.manager = PortManager(self.port, self)
            return b""
        try:
            raw = self.conn.recv(4096)
        except OSError:
            raw = b""
        if not raw:
            self.conn.close()
            self.conn = self.manager = self.port = None
            return b""
        return b"".join(self.manager.filter(raw))

    def write(self, data):
        """PortManager's connection interface (telnet replies) and the delivery path."""
        conn = self.conn
        if conn is None:
            return
        try:
            with self._lock:
                conn.sendall(data)
        except OSError:
            pass

    def deliver(self, data):
        if self.manager is not None:
            self.write(b"".join(self.manager.escape(data)))

    def close(self):
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()


class PtyEnd:
    kind = "pty"

    def __init__(self, fixed=None, parity=None):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or line editing before the program sets its own mode
        os.set_blocking(self.master, False)
        self.url = os.ttyname(self.slave)
        self.fixed, self.parity = fixed, parity

    def fds(self):
        return [self.master]

    def setting(self):
        if self.fixed is not None:
            return self.fixed
        iflag, _, cflag, _, ispeed, _, _ = termios.tcgetattr(self.slave)
        parity = self.parity or ("N" if not cflag & termios.PARENB else "O" if cflag & termios.PARODD else "E")
        if not iflag & termios.INPCK:
            rx = "keep"
        else:
            rx = "drop" if iflag & termios.IGNPAR else "zero"
        return Setting(_SPEEDS.get(ispeed, 0), _CSIZE_BITS.get(cflag & termios.CSIZE, 8), parity,
                       2 if cflag & termios.CSTOPB else 1, rx=rx, ignbrk=bool(iflag & termios.IGNBRK))

    def on_readable(self, fd):
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def deliver(self, data):
        try:
            os.write(self.master, data)
        except OSError:
            pass  # the program is not reading and the pty is full: a real line loses it too

    def close(self):
        os.close(self.master)
        os.close(self.slave)


class LineEmulator:
    """ends: list of "rfc2217" | "pty" | an end object (Rfc2217End, PtyEnd, an emulated device);
    .url(i) is what a program opens for end i. .stats counts, per receiving end, the characters
    received "clean", in "error" (parity, framing, break) and the bytes handed over."""

    def __init__(self, ends=("rfc2217", "rfc2217")):
        self.ends = []
        for e in ends:
            self.ends.append(e if not isinstance(e, str) else Rfc2217End() if e == "rfc2217" else PtyEnd())
        n = len(self.ends)
        self.stats = [{"clean": 0, "error": 0, "bytes": 0} for _ in self.ends]
        self.waves = [Waveform() for _ in self.ends]
        self.receivers = {(s, r): Receiver() for s in range(n) for r in range(n) if s != r}
        self._busy_until = [0.0] * n
        self._queue = []  # (due, seq, what, args)
        self._pending = [0] * n
        self._seq = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="line-emulator", daemon=True)
        for i, e in enumerate(self.ends):
            if hasattr(e, "attach"):
                e.attach(self, i)

    def url(self, i):
        return self.ends[i].url

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for e in self.ends:
            e.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- the timeline ----------------------------------------------------------------------

    def now(self):
        return time.monotonic()

    def _push(self, due, what, *args):
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, what, args))

    def call_at(self, due, fn):
        """Run fn(now) in the emulator's thread once `due` has come (emulated devices' timers)."""
        with self._lock:
            self._push(due, "call", fn)
        if threading.current_thread() is not self._thread:
            os.write(self._wake_w, b"c")

    def transmit(self, src, data, at=None):
        """Put `data` on the line from end `src`, starting at `at` (not before now, nor before
        the end's previous characters have left). Returns the time the last one ends."""
        with self._lock:
            tx = self.ends[src].setting()
            if tx is None or tx.baud <= 0:
                return None
            now = self.now()
            t = max(now, self._busy_until[src], at if at is not None else now)
            wave = self.waves[src]
            bit = tx.bit_time
            for b in data:
                levels = tx.levels(b)
                wave.add(t, bit, levels)
                t += bit * len(levels)
            self._busy_until[src] = t
            for dst in range(len(self.ends)):
                if dst != src:
                    self._decode(src, dst, now)
            return t

    def _decode(self, src, dst, now):
        rx = self.ends[dst].setting()
        rcv = self.receivers[(src, dst)]
        wave = self.waves[src]
        if rx is None or rx.baud <= 0:
            rcv.pos = max(rcv.pos, wave.end)  # nobody listening there: lost
            return
        chars, again = rcv.decode(wave, rx, max(now, wave.end))
        if again is not None:
            self._push(again, "decode", src, dst)
        wave.prune(min(r.pos for (s, _), r in self.receivers.items() if s == src) - 1.0)
        if not chars:
            return
        st = self.stats[dst]
        end = self.ends[dst]
        if hasattr(end, "on_chars"):  # an emulated device: the characters with their times
            for c in chars:
                st["clean" if c[4] is None else "error"] += 1
            end.on_chars([(start, stop, value, error, received_byte(value, error, rx))
                          for start, stop, _, value, error in chars])
            return
        piece, last = bytearray(), None
        for start, sampled, _, value, error in chars:
            st["clean" if error is None else "error"] += 1
            b = received_byte(value, error, rx)
            if b is None:
                continue
            piece.append(b)
            last = sampled
            if len(piece) == FIFO:
                self._hand_over(dst, bytes(piece), last)
                piece = bytearray()
        if piece:
            self._hand_over(dst, bytes(piece), last)

    def _hand_over(self, dst, data, due):
        if self._pending[dst] + len(data) > MAX_PENDING:
            return
        self._pending[dst] += len(data)
        self._push(due, "deliver", dst, data)

    def _run(self):
        while not self._stop.is_set():
            fd_end = {self._wake_r: None}
            for i, e in enumerate(self.ends):
                for fd in e.fds():
                    fd_end[fd] = i
            with self._lock:
                now = self.now()
                wait = 0.05 if not self._queue else max(0.0, min(0.05, self._queue[0][0] - now))
            readable, _, _ = select.select(list(fd_end), [], [], wait)
            for fd in readable:
                i = fd_end[fd]
                if i is None:
                    os.read(self._wake_r, 64)
                    continue
                data = self.ends[i].on_readable(fd)
                if data:
                    self.transmit(i, data)
            while True:
                with self._lock:
                    now = self.now()
                    if not self._queue or self._queue[0][0] > now:
                        break
                    _, _, what, args = heapq.heappop(self._queue)
                    if what == "decode":
                        self._decode(args[0], args[1], now)
                        continue
                    if what == "deliver":
                        dst, data = args
                        self._pending[dst] -= len(data)
                        self.stats[dst]["bytes"] += len(data)
                if what == "deliver":
                    self.ends[dst].deliver(data)
                else:
                    args[0](now)


def main(argv):
    kinds = argv or ["rfc2217", "rfc2217"]
    bad = [k for k in kinds if k not in ("rfc2217", "pty")]
    if bad:
        print("line_emulator: unknown end kind %r (rfc2217 or pty)" % bad[0], file=sys.stderr)
        return 2
    line = LineEmulator(kinds).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: done.set())
    print("ready " + " ".join(line.url(i) for i in range(len(kinds))), flush=True)
    while not done.wait(1.0):
        pass
    line.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
