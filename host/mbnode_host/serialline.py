"""Serial line settings and their timing for Modbus RTU, and opening a port for `mbnode probe`.

A port is a device path (/dev/ttyUSB0) or any pyserial URL (rfc2217://host:port,
socket://host:port, ...), opened with serial.serial_for_url.

Timing (docs/probe.md): one character is 1 start + 8 data + parity + stop bits = 11 bits for the
settings the probe uses (8E1, 8O1, 8N2). t3.5 is 3.5 characters, fixed at 1.75 ms above 19200
baud as the Modbus serial line spec says. The time a master waits for an answer is

    wire(request) + t3.5 + wire(longest expected response) + turnaround

where turnaround (default 40 ms) covers the device's processing time and the host's latency
(a USB serial adapter may hold received bytes up to its 16 ms latency timer).
"""

import errno
import os
import stat
import termios
from collections import namedtuple

import serial

from mbnode_host.clitools import UsageError

# The sweep order: the common rates first, the slow ones last (they cost the most per attempt).
SWEEP_BAUDS = (9600, 19200, 38400, 57600, 115200, 1200, 2400, 4800)
PARITIES = ("E", "N", "O")
TURNAROUND = 0.040
POLL = 0.002  # read granularity: how late the probe notices that bytes arrived, at most


class ProbeError(RuntimeError):
    """A problem the user must fix (port missing, busy, no permission): one line, exit 1."""


class Line(namedtuple("Line", "baud parity")):
    """A line setting. Stop bits follow the Modbus spec: 1 with parity, 2 without (8N2)."""

    __slots__ = ()

    @property
    def stopbits(self):
        return 2 if self.parity == "N" else 1

    @property
    def bits(self):
        return 1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def label(self):
        return "%d 8%s%d" % (self.baud, self.parity, self.stopbits)

    def wire(self, nbytes):
        """Seconds nbytes take on the wire."""
        return nbytes * self.bits / self.baud

    @property
    def t35(self):
        return 0.00175 if self.baud > 19200 else 3.5 * self.bits / self.baud

    def timeout(self, req_len, resp_len, turnaround=TURNAROUND):
        """How long to wait for the last byte of a resp_len-byte answer to a req_len-byte request,
        counted from the moment the request was handed to the port."""
        return self.wire(req_len) + self.t35 + self.wire(resp_len) + turnaround


def parse_parities(text):
    """'E,N' or 'EN' or 'e' -> ('E', 'N')."""
    out = []
    for ch in text.upper().replace(",", "").replace(" ", ""):
        if ch not in PARITIES:
            raise UsageError("parity %r: expected E, N or O (several allowed, e.g. E,N)" % text)
        if ch not in out:
            out.append(ch)
    if not out:
        raise UsageError("parity %r: expected E, N or O" % text)
    return tuple(out)


def parse_bauds(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 50 <= int(part) <= 4000000:
            raise UsageError("baud rate %r: expected numbers from 50 to 4000000, e.g. 9600,19200" % part)
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def is_url(port):
    return "://" in port


def _errno_of(exc):
    for e in (exc, exc.__cause__, exc.__context__):
        if e is not None and getattr(e, "errno", None):
            return e.errno
        if isinstance(e, termios.error) and e.args and isinstance(e.args[0], int):
            return e.args[0]
    return None


def _other_ports():
    try:
        from serial.tools import list_ports

        names = sorted(p.device for p in list_ports.comports())
    except Exception:  # noqa: BLE001 - only a hint in an error message
        names = []
    return ("serial ports here: %s" % ", ".join(names)) if names else "no serial ports found here"


def describe_open_error(port, exc):
    """The one line telling the user what went wrong with `port` and what to do."""
    code = _errno_of(exc)
    text = str(exc)
    if code == errno.ENOENT or (code is None and "No such file" in text):
        return "no such port: %s (%s)" % (port, _other_ports())
    if code == errno.EACCES or code == errno.EPERM:
        return ("permission denied on %s: add your user to the group owning it (often 'dialout') "
                "and log in again" % port)
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        return "%s is busy: another program has it open; close that program and retry" % port
    if "refused" in text.lower():
        return "cannot connect to %s: connection refused (is the serial server running?)" % port
    if code == errno.ENOTTY:
        return "%s is not a serial port" % port
    return "cannot open %s: %s" % (port, text)


def open_port(port, line, receive_only=False):
    """Open `port` at `line`; ProbeError when it cannot be opened at all, termios.error /
    ValueError (kept as they are) when only this setting is refused (try another).
    receive_only (`mbnode monitor`): RTS is off from the moment the port opens, so an RS-485
    adapter whose driver enable follows RTS stays in receive and never loads the bus."""
    kwargs = dict(baudrate=line.baud, bytesize=8, parity=line.parity, stopbits=line.stopbits,
                  timeout=POLL)
    if not is_url(port):
        kwargs["exclusive"] = True  # flock: two masters on one port only garble each other
    try:
        s = serial.serial_for_url(port, do_not_open=receive_only, **kwargs)
        if receive_only:
            s.rts = False
            s.open()
    except (termios.error, ValueError) as e:
        if _errno_of(e) == errno.EINVAL or isinstance(e, ValueError):
            raise
        raise ProbeError(describe_open_error(port, e))
    except (serial.SerialException, OSError) as e:
        raise ProbeError(describe_open_error(port, e))
    strict_receive(s)
    return s


def reconfigure(s, line):
    """Switch an open port to `line`; raises termios.error / ValueError / SerialException when
    the port refuses it (the old setting is restored first).

    On a local port the new setting goes to the kernel in one tcsetattr: pyserial's
    apply_settings would pass each attribute on its own, through intermediate settings that a
    driver may refuse (a pty answers EINVAL to a change of PARENB alone) although the setting
    asked for is fine."""
    old = s.get_settings()
    try:
        if has_fd(s):
            s._baudrate, s._bytesize, s._parity, s._stopbits = line.baud, 8, line.parity, line.stopbits
            s._reconfigure_port(force_update=True)
        else:
            s.apply_settings(dict(baudrate=line.baud, bytesize=8, parity=line.parity, stopbits=line.stopbits))
    except Exception:
        try:
            s.apply_settings(old)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    strict_receive(s)


def has_fd(s):
    """Is the port a local device with a descriptor (not a pyserial URL such as rfc2217://)?"""
    try:
        s.fileno()
        return True
    except Exception:  # noqa: BLE001 - URL ports have no fd
        return False


def not_held(s, line):
    """What of `line` a local port did not keep after it was set (read back with tcgetattr), as
    words for a note, or None. Some drivers drop what they cannot do without an error: a pty
    takes PARENB and silently clears it. URL ports are taken at their word (RFC 2217 servers
    acknowledge each setting)."""
    if not has_fd(s):
        return None
    try:
        cflag = termios.tcgetattr(s.fileno())[2]
    except termios.error:
        return None
    if line.parity != "N" and not cflag & termios.PARENB:
        return "parity %s (the kernel dropped PARENB)" % line.parity
    if line.parity == "N" and cflag & termios.PARENB:
        return "parity N (PARENB stayed set)"
    if line.parity != "N" and bool(cflag & termios.PARODD) != (line.parity == "O"):
        return "parity %s (PARODD is wrong)" % line.parity
    if bool(cflag & termios.CSTOPB) != (line.stopbits == 2):
        return "%d stop bits" % line.stopbits
    if cflag & termios.CSIZE != termios.CS8:
        return "8 data bits"
    return None


def is_pty(port):
    """True for a pseudo-terminal path (Unix98 pty slaves: major numbers 136-143)."""
    try:
        st = os.stat(port)
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


def strict_receive(s):
    """On a local tty, have the kernel drop characters with parity or framing errors (INPCK,
    IGNPAR) instead of passing them on, as pyserial configures it. Then a device answering at
    another parity is heard as silence or short garbage, not as a plausible frame. URL ports
    have no termios: their server decides."""
    try:
        fd = s.fileno()
    except Exception:  # noqa: BLE001 - URL ports have no fd
        return
    try:
        attrs = termios.tcgetattr(fd)
        attrs[0] = (attrs[0] | termios.INPCK | termios.IGNPAR) & ~termios.PARMRK
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass  # not a tty (or refuses): nothing to tighten
