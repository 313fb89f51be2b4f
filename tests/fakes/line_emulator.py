"""An emulated RS-485 line for tests and benchmarks: serial ends that behave like UARTs on one
bus, so baud rate and parity matter and timeouts meet real wire times.

A pty ignores baud rate and parity (any setting "works"), so probing a device over a bare pty
pair proves nothing about line-setting discovery. Here every byte a program writes on one end
is delivered to every other end only

  * after its wire time at the sender's setting: count x (1 start + 8 data + parity + stop bits)
    / baud, the sender's line being busy until its previous bytes have left. Like a UART driver,
    the receiving end gets the bytes in pieces of up to 8 (FIFO), each when its last byte has
    arrived, so a long answer is seen to begin before it ends; and
  * unchanged only when sender and receiver agree on baud rate, data bits and parity. Otherwise
    the receiver gets garbage, as a UART with framing and parity errors does: at another baud
    rate a different number of characters (scaled by the baud ratio), at the same baud rate
    with another parity the characters XORed with 0x5A and every third one lost.

Stop bits do not have to agree: a UART receiver checks only the first stop bit, so 8N1 and 8N2
ends understand each other (the sender's stop bits still count in the wire time).

Two kinds of ends, each created by the emulator:

  * "rfc2217": a TCP port on 127.0.0.1 speaking RFC 2217 (what a network serial server such as
    ser2net offers); the program opens rfc2217://127.0.0.1:PORT with pyserial and its baud
    rate, parity, stop bits and data bits arrive as RFC 2217 commands (parsed by pyserial's own
    PortManager). One client at a time; a new one may connect after the last closed.
  * "pty": a pty pair; the program opens the slave path, the emulator keeps the master and an
    fd of the slave open, and reads the program's settings with termios.tcgetattr on that fd
    (ispeed, CSIZE, PARENB/PARODD, CSTOPB). Some kernels refuse PARENB on a pty (tcsetattr
    EINVAL): there give the end fixed settings (`fixed=`), which are then used instead.

Use in-process (`with LineEmulator(["rfc2217", "rfc2217"]) as line: line.url(0) ...`) or as
a process: `python tests/fakes/line_emulator.py rfc2217 pty` prints `ready URL0 URL1` and runs
until SIGTERM/SIGINT. Bounded: at most 64 KiB waits per end; older bytes are dropped.
"""

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
_SPEEDS = {}
for _b in (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
           57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000):
    if hasattr(termios, "B%d" % _b):
        _SPEEDS[getattr(termios, "B%d" % _b)] = _b
_CSIZE_BITS = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}


class Setting:
    """What a UART is set to; `bits` = bits per character on the wire."""

    def __init__(self, baud=9600, bytesize=8, parity="N", stopbits=1):
        self.baud, self.bytesize, self.parity, self.stopbits = int(baud), int(bytesize), parity, stopbits

    @property
    def bits(self):
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def understands(self, other):
        return (self.baud, self.bytesize, self.parity) == (other.baud, other.bytesize, other.parity)

    def __repr__(self):
        return "%d-%d%s%s" % (self.baud, self.bytesize, self.parity, self.stopbits)


def garble(data, tx, rx):
    """What a receiver set to `rx` makes of `data` sent at `tx` (deterministic, never a valid
    copy: the point is that nothing useful gets through)."""
    if tx.baud != rx.baud:
        n = min(max(1, len(data) * rx.baud // tx.baud), 2 * len(data) + 8)
        out = bytearray(n)
        acc = 0x3C
        for i in range(n):
            acc = (acc * 73 + data[(i * len(data)) // n] + 41) & 0xFF
            out[i] = acc
        return bytes(out)
    return bytes(b ^ 0x5A for i, b in enumerate(data) if i % 3 != 2)


class _Settings(SerialBase):
    """The serial port object PortManager configures: it only stores the client's settings."""

    cts = dsr = ri = cd = False

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


class Rfc2217End:
    kind = "rfc2217"

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.url = "rfc2217://127.0.0.1:%d" % self.listener.getsockname()[1]
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
        return Setting(p.baudrate, p.bytesize, p.parity, 2 if p.stopbits == 2 else 1)

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

    def __init__(self, fixed=None):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or line editing before the program sets its own mode
        os.set_blocking(self.master, False)
        self.url = os.ttyname(self.slave)
        self.fixed = fixed

    def fds(self):
        return [self.master]

    def setting(self):
        if self.fixed is not None:
            return self.fixed
        attrs = termios.tcgetattr(self.slave)
        cflag = attrs[2]
        parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
        return Setting(_SPEEDS.get(attrs[4], 0), _CSIZE_BITS.get(cflag & termios.CSIZE, 8), parity,
                       2 if cflag & termios.CSTOPB else 1)

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
    """ends: list of "rfc2217" | "pty" | PtyEnd(fixed=Setting(...)); .url(i) is what a program
    opens for end i. .stats counts chunks delivered clean and garbled per receiving end."""

    def __init__(self, ends=("rfc2217", "rfc2217")):
        self.ends = []
        for e in ends:
            self.ends.append(e if not isinstance(e, str) else Rfc2217End() if e == "rfc2217" else PtyEnd())
        self.stats = [{"clean": 0, "garbled": 0, "bytes": 0} for _ in self.ends]
        self._busy_until = [0.0] * len(self.ends)
        self._queue = []  # (due, seq, end index, bytes)
        self._pending = [0] * len(self.ends)
        self._seq = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="line-emulator", daemon=True)

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

    def _received(self, src, data, now):
        tx = self.ends[src].setting()
        if tx is None or tx.baud <= 0:
            return
        start = max(now, self._busy_until[src])
        char = tx.bits / tx.baud
        self._busy_until[src] = start + len(data) * char
        for i, end in enumerate(self.ends):
            if i == src:
                continue
            rx = end.setting()
            if rx is None:
                continue
            clean = rx.understands(tx)
            out = data if clean else garble(data, tx, rx)
            self.stats[i]["clean" if clean else "garbled"] += 1
            if not out or self._pending[i] + len(out) > MAX_PENDING:
                continue
            self._pending[i] += len(out)
            # Handed over in pieces of up to FIFO characters, each when its last one is in, as a
            # UART driver does; the piece times are spread over the sender's wire time.
            for k in range(0, len(out), FIFO):
                piece = out[k:k + FIFO]
                due = start + (len(data) * (k + len(piece)) / len(out)) * char
                self._seq += 1
                heapq.heappush(self._queue, (due, self._seq, i, piece))

    def _run(self):
        while not self._stop.is_set():
            fd_end = {self._wake_r: None}
            for i, e in enumerate(self.ends):
                for fd in e.fds():
                    fd_end[fd] = i
            now = time.monotonic()
            wait = 0.05 if not self._queue else max(0.0, min(0.05, self._queue[0][0] - now))
            readable, _, _ = select.select(list(fd_end), [], [], wait)
            now = time.monotonic()
            for fd in readable:
                i = fd_end[fd]
                if i is None:
                    os.read(self._wake_r, 64)
                    continue
                data = self.ends[i].on_readable(fd)
                if data:
                    self._received(i, data, now)
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, i, out = heapq.heappop(self._queue)
                self._pending[i] -= len(out)
                self.stats[i]["bytes"] += len(out)
                self.ends[i].deliver(out)


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
