"""Request/response links for `mbnode probe`: Modbus RTU over a serial port (device path or
pyserial URL) and Modbus TCP over a plain socket. Both answer `transact(unit, pdu, resp_len)`
with a Reply; neither raises for a silent or garbled line, because while probing that is the
normal case.

RTU framing on the master side: the end of a response is known from its function code (and its
byte count where it has one), checked with the CRC (`mbnode.crc.crc16`, the firmware's own).
Before each request the link reads what is still pending on the line: a valid frame from the
unit asked last time is a late answer (a slow device), other valid frames are bus traffic; then
it flushes the input. A request echoed back by the adapter (RS-485 dongles with local echo) is
recognised and skipped (see SAME_AS_REQUEST).
"""

import socket
import struct
import time

from mbnode.crc import crc16
from mbnode.rtu import request_length  # the slave's own rule: 0 = more bytes, -1 = unknown
from mbnode_host.serialline import POLL, TURNAROUND, reconfigure

GATEWAY_CODES = (0x0A, 0x0B)
# Requests whose normal response is a copy of the request: a copy received is only taken for a
# local echo once the adapter has shown that it echoes (on a request of another kind).
SAME_AS_REQUEST = (5, 6, 8, 22)
MAX_BUF = 600


class Reply:
    """kind: 'ok' (normal response), 'exception', 'odd' (valid CRC from the unit asked, but a
    function code that fits neither), 'garbage' (bytes, no valid answer), 'silence'.
    others: valid frames from other addresses seen meanwhile (bus traffic)."""

    __slots__ = ("kind", "pdu", "code", "elapsed", "others", "echo")

    def __init__(self, kind, pdu=b"", code=None, elapsed=0.0, others=(), echo=False):
        self.kind, self.pdu, self.code, self.elapsed = kind, pdu, code, elapsed
        self.others, self.echo = list(others), echo

    @property
    def answered(self):
        """The unit is there: any valid frame from it, exception included, except the gateway
        codes 0A/0B, which say that something in front of it answered instead."""
        return self.kind in ("ok", "odd") or (self.kind == "exception" and self.code not in GATEWAY_CODES)

    def __repr__(self):
        return "Reply(%s, %s, code=%s)" % (self.kind, self.pdu.hex(), self.code)


def with_crc(frame):
    c = crc16(frame, 0, len(frame))
    return bytes(frame) + bytes((c & 0xFF, c >> 8))


def crc_ok(buf, start, n):
    if n < 4 or start + n > len(buf):
        return False
    c = crc16(buf, start, n - 2)
    return buf[start + n - 2] == (c & 0xFF) and buf[start + n - 1] == (c >> 8)


def _devid_length(buf, pos):
    """Length of an FC43/14 response frame at pos, 0 if more bytes are needed to know."""
    # addr fc mei code conformity more next count, then (id, len, value) * count, crc
    if len(buf) < pos + 8:
        return 0
    if buf[pos + 2] != 0x0E:
        return -1
    n = buf[pos + 7]
    i = pos + 8
    for _ in range(n):
        if len(buf) < i + 2:
            return 0
        i += 2 + buf[i + 1]
    return i - pos + 2


def response_length(buf, pos, req_len=0):
    """Length of the response frame starting at buf[pos]: > 0 known, 0 need more bytes,
    -1 unknown function code. req_len: length of the request (FC08 echoes it)."""
    if len(buf) < pos + 2:
        return 0
    fc = buf[pos + 1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4, 12, 17, 20, 21, 23):
        return 0 if len(buf) < pos + 3 else 5 + buf[pos + 2]
    if fc in (5, 6, 15, 16):
        return 8
    if fc == 22:
        return 10
    if fc == 7:
        return 5
    if fc == 11:
        return 8
    if fc == 8:
        return req_len if req_len >= 6 else -1
    if fc == 24:
        return 0 if len(buf) < pos + 4 else 6 + (buf[pos + 2] << 8 | buf[pos + 3])
    if fc == 43:
        return _devid_length(buf, pos)
    return -1


def find_frames(buf, start=0):
    """Valid-CRC frames (offset, bytes) in buf, read either as requests or as responses;
    greedy from the left, skipping a byte where nothing fits."""
    out = []
    pos = start
    while pos + 4 <= len(buf):
        hit = 0
        if 1 <= buf[pos] <= 247:
            for n in (response_length(buf, pos), request_length(buf, pos, len(buf) - pos)):
                if n > 0 and crc_ok(buf, pos, n):
                    hit = n
                    break
        if hit:
            out.append((pos, bytes(buf[pos:pos + hit])))
            pos += hit
        else:
            pos += 1
    return out


class RtuLink:
    """Modbus RTU master on an open pyserial port (timeout = POLL)."""

    def __init__(self, port, line, turnaround=TURNAROUND, fixed_timeout=None):
        self.port, self.line = port, line
        self.turnaround, self.fixed_timeout = turnaround, fixed_timeout
        self.requests = 0
        self.late = []      # (unit, line, seconds after the request): answers that came too late
        self.traffic = []   # (line, frame): valid frames from others
        self.echo_seen = False
        self._last = None   # (unit, fc, line, time sent) of the last request left unanswered
        self._match_pos = 0
        # pyserial's RFC 2217 client waits for the server's acknowledgement of a purge in 50 ms
        # sleeps: on URL ports reading what is pending is the whole flush.
        try:
            port.fileno()
            self._local = True
        except Exception:  # noqa: BLE001 - URL ports have no fd
            self._local = False

    def set_line(self, line):
        if line != self.line:
            self.drain()
            reconfigure(self.port, line)
            self.line = line

    def timeout(self, req_len, resp_len):
        if self.fixed_timeout is not None:
            return self.fixed_timeout
        return self.line.timeout(req_len, resp_len, self.turnaround)

    def drain(self):
        """Look at what is pending (late answers, traffic), then discard it."""
        buf = b""
        for _ in range(64):
            n = self.port.in_waiting
            if not n:
                break
            buf += self.port.read(n)
        if buf:
            self._sort_frames(find_frames(buf), None)
        if self._local:
            self.port.reset_input_buffer()  # tcflush: also what the kernel has not handed over yet

    def _sort_frames(self, frames, current_unit):
        """Frames not answering the current request: a late answer to the previous unanswered
        request, or traffic; returns the others, for the Reply."""
        others = []
        for _, frame in frames:
            if frame[0] == current_unit:
                continue
            last = self._last
            if last is not None and frame[0] == last[0] and frame[1] & 0x7F == last[1]:
                self.late.append((last[0], last[2], time.monotonic() - last[3]))
                self._last = None
                continue
            self.traffic.append((self.line, frame))
            others.append(frame)
        return others

    def transact(self, unit, pdu, resp_len=256):
        """Send one request to `unit`, wait for its answer at most the timeout for a resp_len-byte
        response (a response that has begun is read to its end)."""
        self.drain()
        frame = with_crc(bytes((unit,)) + bytes(pdu))
        timeout = self.timeout(len(frame), resp_len)
        fc = pdu[0]
        self.port.write(frame)
        sent = time.monotonic()
        self.requests += 1
        deadline = sent + timeout
        # An answer that has begun is read to its end, as long as its bytes keep coming (a gap of
        # more than 8 characters, or a total longer than a 256-byte frame, ends it).
        limit = deadline + self.line.wire(260) + 0.1
        last_rx = sent
        buf = bytearray()
        echo = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                more = self._missing(buf, unit, fc, len(frame))
                slack = self.line.wire(8) + 2 * POLL + 0.005
                if more and now < limit and now - last_rx < slack:
                    deadline = min(limit, now + self.line.wire(min(more, 8)) + slack)
                    continue
                break
            n = self.port.in_waiting
            chunk = self.port.read(n if n else 1)
            if not chunk:
                continue
            last_rx = time.monotonic()
            buf += chunk
            if not echo and len(buf) >= len(frame) and buf.startswith(frame) and (
                    fc not in SAME_AS_REQUEST or self.echo_seen):
                del buf[:len(frame)]
                echo = self.echo_seen = True
            reply = self._match(buf, unit, fc, len(frame))
            if reply is not None:
                reply.elapsed, reply.echo = time.monotonic() - sent, echo
                reply.others = self._sort_frames(find_frames(buf[:self._match_pos]), unit)
                self._last = None
                return reply
            if len(buf) > MAX_BUF:
                break
        elapsed = time.monotonic() - sent
        frames = find_frames(buf)
        others = self._sort_frames(frames, unit)
        self._last = (unit, fc, self.line, sent)
        # From the unit asked, a valid frame that is no answer to this function: 'odd' (e.g. a
        # generic exception with function code 0x80); other function codes are late answers.
        mine = [f for _, f in frames if f[0] == unit and f[1] & 0x7F in (fc, 0)]
        if mine:
            self._last = None
            return Reply("odd", mine[0][1:-2], elapsed=elapsed, others=others, echo=echo)
        if not buf:
            return Reply("silence", elapsed=elapsed, echo=echo)
        return Reply("garbage", bytes(buf), elapsed=elapsed, others=others, echo=echo)

    @staticmethod
    def _candidates(buf, unit, fc):
        for pos in range(len(buf) - 1):
            if buf[pos] == unit and buf[pos + 1] in (fc, fc | 0x80):
                yield pos

    def _match(self, buf, unit, fc, req_len):
        for pos in self._candidates(buf, unit, fc):
            n = response_length(buf, pos, req_len)
            if n > 0 and crc_ok(buf, pos, n):
                self._match_pos = pos
                pdu = bytes(buf[pos + 1:pos + n - 2])
                if pdu[0] & 0x80:
                    return Reply("exception", pdu, code=pdu[1])
                return Reply("ok", pdu)
        return None

    def _missing(self, buf, unit, fc, req_len):
        """Bytes still to come of an answer that has begun (8 when its length is not known yet),
        0 if none has."""
        for pos in self._candidates(buf, unit, fc):
            n = response_length(buf, pos, req_len)
            if n == 0 or n < 0:
                return 8
            if pos + n > len(buf):
                return pos + n - len(buf)
        if buf and buf[-1] == unit:
            return 8
        return 0

    def close(self):
        try:
            self.port.close()
        except Exception:  # noqa: BLE001 - closing a broken port must not hide the result
            pass


class TcpLink:
    """Modbus TCP master: MBAP framing, one connection, reconnect once when the server closes."""

    line = None

    def __init__(self, host, port, timeout=None, turnaround=TURNAROUND, connect_timeout=3.0):
        self.host, self.port_no = host, port
        self.connect_timeout = connect_timeout
        self.requests = 0
        self.late, self.traffic = [], []
        self.echo_seen = False
        self.closes = 0
        self.tid = 0
        self.sock = None
        self.rtt = self._connect()
        # Without a serial line the wait is the network round trip (measured by connect) plus
        # the same turnaround allowance as on a line.
        self.fixed_timeout = timeout
        self.default_timeout = 4 * self.rtt + turnaround + 0.010

    def _connect(self):
        t0 = time.monotonic()
        self.sock = socket.create_connection((self.host, self.port_no), timeout=self.connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return time.monotonic() - t0

    def set_line(self, line):
        pass

    def timeout(self, req_len=0, resp_len=0):
        return self.fixed_timeout if self.fixed_timeout is not None else self.default_timeout

    def transact(self, unit, pdu, resp_len=256):
        self.tid = (self.tid + 1) & 0xFFFF
        adu = struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + bytes(pdu)
        self.requests += 1
        sent = time.monotonic()
        try:
            self.sock.sendall(adu)
        except OSError:
            self._reconnect()
            self.sock.sendall(adu)
            sent = time.monotonic()
        deadline = sent + self.timeout()
        buf = b""
        while True:
            while len(buf) >= 7:
                tid, proto, length, r_unit = struct.unpack(">HHHB", buf[:7])
                if len(buf) < 6 + length:
                    break
                body, buf = buf[7:6 + length], buf[6 + length:]
                if tid != self.tid or proto != 0 or not body:
                    continue  # a late answer to an earlier request
                elapsed = time.monotonic() - sent
                if body[0] == pdu[0] | 0x80 and len(body) >= 2:
                    return Reply("exception", body, code=body[1], elapsed=elapsed)
                if body[0] == pdu[0]:
                    return Reply("ok", body, elapsed=elapsed)
                return Reply("odd", body, elapsed=elapsed)
            left = deadline - time.monotonic()
            if left <= 0:
                return Reply("silence" if not buf else "garbage", buf, elapsed=time.monotonic() - sent)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # the server closed: some do that for an unknown unit id
                self._reconnect()
                return Reply("silence", elapsed=time.monotonic() - sent)
            buf += chunk

    def _reconnect(self):
        self.closes += 1
        try:
            self.sock.close()
        except OSError:
            pass
        self._connect()

    def drain(self):
        pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
