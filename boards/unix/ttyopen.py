"""Start-up only: the unix board's serial port opened and set up (open_tty), a TtyPort
(ttyport.py) made of it. Unloaded with the other start-up modules once the parts are built
(START_ONLY = True: mbnode.startup.forget), so its termios numbers, speed table and texts take no
RAM while the simulator serves.
"""

import termios

from ttyport import TtyPort

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Linux termios numbers (the unix port's termios module names only some of them).
_SPEEDS = {300: 7, 600: 8, 1200: 9, 1800: 10, 2400: 11, 4800: 12, 9600: 13, 19200: 14,
           38400: 15, 57600: 0o10001, 115200: 0o10002, 230400: 0o10003, 460800: 0o10004,
           500000: 0o10005, 576000: 0o10006, 921600: 0o10007, 1000000: 0o10010}
_CSTOPB = const(0o100)
_PARENB = const(0o400)
_PARODD = const(0o1000)
_VTIME = const(5)
_VMIN = const(6)

START_ONLY = True  # unloaded once the parts are built (mbnode.startup.forget)


def open_tty(device, peer, baud, parity, stopbits):
    """The TtyPort of `device`: a tty path, set up raw with the line's settings, or "fd:N", a
    descriptor the process inherited (the simulator's pty); `peer`, when set, is its name."""
    from mbnode.rtu import char_times  # start-up only (rtu.START_ONLY)

    if device.startswith("fd:"):
        return _port(open(int(device[3:]), "r+b"), peer or device, char_times(baud, parity, stopbits)[0] + 2000)
    if baud not in _SPEEDS:
        raise ValueError("rtu.baud = %d: a tty on the unix port takes one of %s"
                         % (baud, ", ".join(str(b) for b in sorted(_SPEEDS))))
    try:
        file = open(device, "r+b")
    except OSError as e:
        raise OSError("%s: %s" % (device, e))
    fd = file.fileno()
    termios.setraw(fd)
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2] & ~(_CSTOPB | _PARENB | _PARODD)
    if parity != "N":
        cflag |= _PARENB | (_PARODD if parity == "O" else 0)
    if stopbits == 2:
        cflag |= _CSTOPB
    attrs[2] = cflag
    attrs[4] = attrs[5] = _SPEEDS[baud]
    attrs[6][_VMIN] = 0
    attrs[6][_VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return _port(file, peer or device, char_times(baud, parity, stopbits)[0] + 16000)


def _port(file, name, latency_us):
    p = TtyPort()
    p.file = file
    # What the loop polls: the descriptor's number. poll.modify() finds an object by id(), which
    # on the 32-bit unix port (heap above 2 GB) is a new long int each time; a small int is none,
    # and the RTU link modifies its port's events on every request.
    p.stream = file.fileno()
    p.name = name
    p.latency_us = latency_us
    return p
