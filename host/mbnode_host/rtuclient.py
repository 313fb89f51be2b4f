"""Request/response links for `mbnode probe`: Modbus RTU over a serial port (device path or
pyserial URL) and Modbus TCP over a plain socket. Both answer `transact(unit, pdu, resp_len)`
with a Reply; neither raises for a silent or garbled line, because while probing that is the
normal case.

RTU has no transaction id, so the link decides which request a frame answers by its content
and its timing (docs/probe.md, "Which request an answer belongs to"):

  * an answer is accepted only when it fits the request (`fits`): the unit, the function code
    (or it with 0x80 and an exception code), the byte count the quantity asked for, the address
    and value a write echoes, the sub-function and data FC08 echoes, the MEI type and read code
    of FC43/14. A valid frame that does not fit is not an answer to this request;
  * before each request the line must be silent for t3.5 of the setting (and our previous
    request must have left the wire): the bytes that arrive meanwhile are read, and a valid
    frame among them that fits one of the recent unanswered requests is a late answer to it
    (a slow device), a frame from the unit asked that fits nothing is a stray (a stale or
    duplicate answer, counted and dropped), any other valid frame is bus traffic;
  * after the timeout, a caller that knows a device is there may keep listening (`late`) for
    an answer to the same request instead of asking again at once.

The end of a response is known from its function code (and its byte count where it has one),
by the firmware's own rule (`mbnode.rtu.response_length`), and checked with the CRC
(`mbnode.crc.crc16`, the firmware's own too). A request echoed back by the
adapter (RS-485 dongles with local echo) is recognised and skipped (see SAME_AS_REQUEST).
"""

import socket
import struct
import time

from mbnode.crc import crc16
from mbnode.rtu import MORE, request_length, response_length  # the firmware's rules: MORE (0), UNKNOWN (-1)
from mbnode_host.serialline import POLL, TURNAROUND, has_fd, reconfigure

GATEWAY_CODES = (0x0A, 0x0B)
# Requests whose normal response is a copy of the request: a copy received is only taken for a
# local echo once the adapter has shown that it echoes (on a request of another kind).
SAME_AS_REQUEST = (5, 6, 8, 22)
MAX_BUF = 600
HISTORY = 16          # unanswered requests remembered, to recognise their late answers
HISTORY_SECONDS = 3.0
QUIET_MARGIN = 0.001  # added to t3.5: the host sees the line a little after the wire does
QUIET_LIMIT = 0.5     # longest wait for a quiet line before sending anyway (a chattering bus)


class Reply:
    """kind: 'ok' (normal response), 'exception', 'odd' (valid CRC from the unit asked with the
    generic function code 0x80, which some slaves send for requests they cannot parse),
    'garbage' (bytes, no valid answer), 'silence'. late: accepted only after the timeout.
    others: valid frames from other addresses seen meanwhile (bus traffic)."""

    __slots__ = ("kind", "pdu", "code", "elapsed", "others", "echo", "late", "frame_len")

    def __init__(self, kind, pdu=b"", code=None, elapsed=0.0, others=(), echo=False, late=False):
        self.kind, self.pdu, self.code, self.elapsed = kind, pdu, code, elapsed
        self.others, self.echo, self.late = list(others), echo, late
        self.frame_len = len(pdu) + 3

    @property
    def answered(self):
        """The unit is there: any valid frame from it, exception included, except the gateway
        codes 0A/0B, which say that something in front of it answered instead."""
        return self.kind in ("ok", "odd") or (self.kind == "exception" and self.code not in GATEWAY_CODES)

    def __repr__(self):
        return "Reply(%s, %s, code=%s%s)" % (self.kind, self.pdu.hex(), self.code, ", late" if self.late else "")


def with_crc(frame):
    c = crc16(frame, 0, len(frame))
    return bytes(frame) + bytes((c & 0xFF, c >> 8))


def crc_ok(buf, start, n):
    if n < 4 or start + n > len(buf):
        return False
    c = crc16(buf, start, n - 2)
    return buf[start + n - 2] == (c & 0xFF) and buf[start + n - 1] == (c >> 8)


def fits(req, rsp):
    """True when the response PDU `rsp` can be the answer to the request PDU `req` (both without
    address and CRC): what a late answer to another request, or a device's confusion, cannot
    pass. Function codes the probe does not send are taken on their function code alone."""
    if not rsp or not req:
        return False
    fc = req[0]
    if rsp[0] == fc | 0x80:
        return len(rsp) == 2
    if rsp[0] != fc:
        return False
    if fc in (1, 2, 3, 4):
        if len(req) != 5 or len(rsp) < 2:
            return False
        qty = req[3] << 8 | req[4]
        want = (qty + 7) // 8 if fc in (1, 2) else 2 * qty
        return rsp[1] == want and len(rsp) == 2 + want
    if fc in (5, 6, 22):
        return bytes(rsp) == bytes(req)
    if fc in (15, 16):
        return len(rsp) == 5 and bytes(rsp[1:5]) == bytes(req[1:5])
    if fc == 23:
        if len(req) < 10 or len(rsp) < 2:
            return False
        return rsp[1] == 2 * (req[3] << 8 | req[4]) and len(rsp) == 2 + rsp[1]
    if fc == 8:
        if len(rsp) < 3 or bytes(rsp[1:3]) != bytes(req[1:3]):
            return False
        return bytes(rsp) == bytes(req) if req[1:3] == b"\x00\x00" else len(rsp) == 5
    if fc == 7:
        return len(rsp) == 2
    if fc == 11:
        return len(rsp) == 5
    if fc in (12, 17):
        return len(rsp) >= 2 and len(rsp) == 2 + rsp[1]
    if fc == 24:
        return len(rsp) >= 3 and len(rsp) == 3 + (rsp[1] << 8 | rsp[2])
    if fc == 43:
        return len(req) >= 3 and len(rsp) >= 7 and rsp[1] == req[1] == 0x0E and rsp[2] == req[2]
    return True


def find_frames(buf, start=0, kinds=False):
    """Valid-CRC frames (offset, bytes) in buf, read either as requests or as responses;
    greedy from the left, skipping a byte where nothing fits. kinds: (offset, bytes, "response"
    or "request") instead."""
    out = []
    pos = start
    while pos + 4 <= len(buf):
        hit, kind = 0, None
        if 1 <= buf[pos] <= 247:
            for n, k in ((response_length(buf, pos, len(buf) - pos), "response"),
                         (request_length(buf, pos, len(buf) - pos), "request")):
                if n > 0 and crc_ok(buf, pos, n):
                    hit, kind = n, k
                    break
        if hit:
            frame = bytes(buf[pos:pos + hit])
            out.append((pos, frame, kind) if kinds else (pos, frame))
            pos += hit
        else:
            pos += 1
    return out


def claimed(buf, unit):
    """Offsets of the responses from `unit` in buf that follow a request to `unit` also in buf:
    another master's request (ours is never in buf, unless echoed and removed), so the answer
    is that master's, not ours."""
    out = set()
    pending = 0
    for pos, frame, kind in find_frames(buf, kinds=True):
        if frame[0] != unit:
            continue
        if kind == "request":
            pending += 1
        elif pending:
            pending -= 1
            out.add(pos)
    return out


class RtuLink:
    """Modbus RTU master on an open pyserial port (timeout = POLL)."""

    def __init__(self, port, line, turnaround=TURNAROUND, fixed_timeout=None):
        self.port, self.line = port, line
        self.turnaround, self.fixed_timeout = turnaround, fixed_timeout
        self.requests = 0
        self.late = []      # (unit, line, seconds after the request, request pdu, request number)
        self.traffic = []   # (line, frame): valid frames from others
        self.strays = 0     # valid frames from the unit asked that answer nothing pending
        self.echo_seen = False
        self._unanswered = []  # (unit, pdu, line, time sent, request number), most recent last
        self._quiet_from = 0.0  # when the line last carried something: our request's end, a byte
        self._match_pos = 0
        # pyserial's RFC 2217 client waits for the server's acknowledgement of a purge in 50 ms
        # sleeps: on URL ports reading what is pending is the whole flush.
        self._local = has_fd(port)

    def set_line(self, line):
        if line != self.line:
            self.drain()
            self.line = None  # unknown until the port has taken the new setting
            reconfigure(self.port, line)
            self.line = line

    def replace_port(self, port, line):
        """The port reopened at `line` (when a transition between two settings was refused)."""
        self.port, self.line = port, line
        self._local = has_fd(port)

    def timeout(self, req_len, resp_len):
        if self.fixed_timeout is not None:
            return self.fixed_timeout
        return self.line.timeout(req_len, resp_len, self.turnaround)

    def _read_pending(self):
        buf = b""
        for _ in range(64):
            n = self.port.in_waiting
            if not n:
                break
            buf += self.port.read(n)
        if buf:
            self._quiet_from = time.monotonic()
        return buf

    def drain(self):
        """Look at what is pending (late answers, traffic), then discard it."""
        buf = self._read_pending()
        if buf:
            self._sort_frames(find_frames(buf), None, None, self._quiet_from)
        if self._local:
            self.port.reset_input_buffer()  # tcflush: also what the kernel has not handed over yet

    def last_unanswered(self):
        """(unit, pdu, line, time sent, request number) of the latest request left unanswered."""
        return self._unanswered[-1] if self._unanswered else None

    def wait_quiet(self, gap=None, limit=QUIET_LIMIT, until=0.0):
        """Return once the line has been silent for `gap` (default t3.5 of the setting): our own
        last request has left the wire and nothing arrives; and not before `until`. A request
        from another master seen last is given the time of an answer first (its answer could
        otherwise be taken for ours). What arrives meanwhile is read and sorted (late answers,
        strays, traffic). Bounded by `limit` seconds; returns the bytes read."""
        if gap is None:
            gap = self.line.t35 + QUIET_MARGIN
        end = time.monotonic() + limit
        buf = bytearray()
        foreign_until = 0.0
        seen = 0
        while True:
            buf += self._read_pending()
            if len(buf) != seen:
                seen = len(buf)
                frames = find_frames(buf, kinds=True)
                if frames and frames[-1][2] == "request":
                    foreign_until = self._quiet_from + self.timeout(8, 256)
                else:
                    foreign_until = 0.0
            now = time.monotonic()
            if (now >= self._quiet_from + gap and now >= until and now >= foreign_until) or now >= end:
                break
            chunk = self.port.read(1)  # waits up to POLL
            if chunk:
                buf += chunk
                self._quiet_from = time.monotonic()
        if buf:
            self._sort_frames(find_frames(buf), None, None, self._quiet_from)
        # No flush here: what the adapter still holds back after the silence is better seen (and
        # sorted, in the next exchange) than thrown away.
        return bytes(buf)

    def _sort_frames(self, frames, current_unit, current_pdu, at=None):
        """Frames that do not answer the current request: a late answer to a recent unanswered
        request, a stray from the unit asked, or traffic; returns the traffic, for the Reply.
        at: when the bytes arrived (default now)."""
        others = []
        now = time.monotonic() if at is None else at
        self._unanswered = [u for u in self._unanswered if now - u[3] < HISTORY_SECONDS]
        for _, frame in frames:
            pdu = frame[1:-2]
            if current_unit is not None and frame[0] == current_unit and fits(current_pdu, pdu):
                continue
            hit = None
            for k in range(len(self._unanswered) - 1, -1, -1):
                unit, req, line, sent, _ = self._unanswered[k]
                if frame[0] == unit and line == self.line and fits(req, pdu):
                    hit = k
                    break
            if hit is not None:
                unit, req, line, sent, number = self._unanswered.pop(hit)
                self.late.append((unit, line, now - sent, req, number))
                continue
            if frame[0] == current_unit:
                self.strays += 1
                continue
            self.traffic.append((self.line, frame))
            others.append(frame)
        return others

    def transact(self, unit, pdu, resp_len=256, timeout=None, late=0.0):
        """Send one request to `unit` once the line is quiet, wait for an answer that fits it
        at most `timeout` (default: the timeout for a resp_len-byte response; a response that
        has begun is read to its end), then up to `late` seconds more."""
        self.wait_quiet()
        frame = with_crc(bytes((unit,)) + bytes(pdu))
        if timeout is None:
            timeout = self.timeout(len(frame), resp_len)
        fc = pdu[0]
        self.port.write(frame)
        sent = time.monotonic()
        self._quiet_from = sent + self.line.wire(len(frame))
        self.requests += 1
        first_deadline = deadline = sent + timeout
        late_deadline = deadline + late
        # An answer that has begun is read to its end, as long as its bytes keep coming (a gap of
        # more than 8 characters, or a total longer than a 256-byte frame, ends it).
        last_rx = sent
        buf = bytearray()
        echo = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                more = self._missing(buf, unit, fc, len(frame))
                slack = self.line.wire(8) + 2 * POLL + 0.005
                limit = deadline + self.line.wire(260) + 0.1
                if more and now < limit and now - last_rx < slack:
                    deadline = min(limit, now + self.line.wire(min(more, 8)) + slack)
                    continue
                if now < late_deadline:
                    deadline = late_deadline
                    continue
                break
            n = self.port.in_waiting
            chunk = self.port.read(n if n else 1)
            if not chunk:
                continue
            last_rx = self._quiet_from = time.monotonic()
            buf += chunk
            if not echo and len(buf) >= len(frame) and buf.startswith(frame) and (
                    fc not in SAME_AS_REQUEST or self.echo_seen):
                del buf[:len(frame)]
                echo = self.echo_seen = True
            reply = self._match(buf, unit, pdu, len(frame))
            if reply is not None:
                reply.elapsed, reply.echo = last_rx - sent, echo
                reply.late = last_rx > first_deadline
                reply.others = self._sort_frames(find_frames(buf[:self._match_pos]), unit, pdu, last_rx)
                return reply
            if len(buf) > MAX_BUF:
                break
        elapsed = time.monotonic() - sent
        frames = find_frames(buf)
        others = self._sort_frames(frames, unit, pdu, last_rx)
        self._unanswered = (self._unanswered + [(unit, bytes(pdu), self.line, sent, self.requests)])[-HISTORY:]
        rest = bytearray(buf)  # the bytes no valid frame explains
        for pos, f in reversed(frames):
            del rest[pos:pos + len(f)]
        if not rest:
            return Reply("silence", elapsed=elapsed, others=others, echo=echo)
        return Reply("garbage", bytes(rest), elapsed=elapsed, others=others, echo=echo)

    @staticmethod
    def _candidates(buf, unit, fc):
        for pos in range(len(buf) - 1):
            if buf[pos] == unit and buf[pos + 1] in (fc, fc | 0x80, 0x80):
                yield pos

    def _match(self, buf, unit, pdu, req_len):
        foreign = None
        for pos in self._candidates(buf, unit, pdu[0]):
            n = response_length(buf, pos, len(buf) - pos, req_len)
            if n > 0 and crc_ok(buf, pos, n):
                if foreign is None:
                    foreign = claimed(buf, unit)
                if pos in foreign:
                    continue  # answers another master's request seen just before it
                rsp = bytes(buf[pos + 1:pos + n - 2])
                if rsp[0] == 0x80 and len(rsp) == 2:
                    self._match_pos = pos
                    return Reply("odd", rsp, code=rsp[1])
                if not fits(pdu, rsp):
                    continue  # a stray: sorted with the rest once this exchange ends
                self._match_pos = pos
                if rsp[0] & 0x80:
                    return Reply("exception", rsp, code=rsp[1])
                return Reply("ok", rsp)
        return None

    def _missing(self, buf, unit, fc, req_len):
        """Bytes still to come of an answer that has begun (8 when its length is not known yet),
        0 if none has."""
        for pos in self._candidates(buf, unit, fc):
            n = response_length(buf, pos, len(buf) - pos, req_len)
            if n <= MORE:  # MORE or UNKNOWN
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
    """Modbus TCP master: MBAP framing, one connection, reconnect once when the server closes.
    The transaction id tells which request an answer belongs to; its content must fit too."""

    line = None

    def __init__(self, host, port, timeout=None, turnaround=TURNAROUND, connect_timeout=3.0):
        self.host, self.port_no = host, port
        self.connect_timeout = connect_timeout
        self.requests = 0
        self.late, self.traffic = [], []
        self.strays = 0
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

    def transact(self, unit, pdu, resp_len=256, timeout=None, late=0.0):
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
        first = sent + (self.timeout() if timeout is None else timeout)
        deadline = first + late
        buf = b""
        while True:
            while len(buf) >= 7:
                tid, proto, length, r_unit = struct.unpack(">HHHB", buf[:7])
                if len(buf) < 6 + length:
                    break
                body, buf = buf[7:6 + length], buf[6 + length:]
                if tid != self.tid or proto != 0 or not body:
                    continue  # a late answer to an earlier request
                now = time.monotonic()
                elapsed = now - sent
                if body[0] == 0x80 and len(body) == 2:
                    return Reply("odd", body, elapsed=elapsed, late=now > first)
                if not fits(pdu, body):
                    self.strays += 1
                    continue
                if body[0] & 0x80:
                    return Reply("exception", body, code=body[1], elapsed=elapsed, late=now > first)
                return Reply("ok", body, elapsed=elapsed, late=now > first)
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

    def wait_quiet(self, gap=None, limit=QUIET_LIMIT, until=0.0):
        return b""

    def last_unanswered(self):
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
