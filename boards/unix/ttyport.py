"""A tty (or pty) as the RTU port of the unix port: what a UART with its RS-485 driver is on a
board. Reads never block: the tty is set raw with VMIN = VTIME = 0 (ttyopen.py, which opens it at
start-up and is unloaded then), and a descriptor handed over by the simulator is already
non-blocking, so readinto() returns what is there.

latency_us (how long after its start bit a character can be read at most, mbnode.rtulink):
a descriptor handed over (the simulator's pty) gets its bytes from the kernel's tty worker
within microseconds, 2 ms allowed; a device may be a USB adapter that forwards bytes once its
latency timer (16 ms on FTDI chips) or its packet runs out.
"""


class TtyPort:
    """Its fields, set by ttyopen.open_tty (start-up only, so this class has no __init__ taking
    RAM): file, the tty opened; stream, what the loop polls (its descriptor's number); name, what
    the ready line shows; latency_us (module docstring)."""

    def readinto(self, buf, n):
        return self.file.readinto(buf, n) or 0

    def send(self, buf, n):
        """The whole frame in one write; a pty has no driver enable and no echo."""
        sent = 0
        tries = 0
        while sent < n and tries < 100:
            sent += self.file.write(buf, sent, n - sent) or 0
            tries += 1
