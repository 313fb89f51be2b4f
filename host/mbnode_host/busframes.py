"""Split the bytes read from an RS-485 line into Modbus RTU frames, for `mbnode monitor`.

Input: chunks of bytes as the port hands them over, each with the host time it arrived. Output:
events, in line order: ("frame", kind, bytes, t_start, t_end, (first read, last read)) with kind
"request" or "response" and the numbers of the reads that delivered its first and last byte,
and ("junk", bytes, t_start, t_end, looks) for bytes that are no valid frame: looks is the kind
of frame they would be by their length (a frame with a wrong CRC) or None (noise).

How a frame is found (docs/monitor.md, "How frames are found"):

  * length first: the function code (and byte count) give a frame's length by the firmware's own
    rule (mbnode.rtu.request_length / response_length), and the CRC (mbnode.crc.crc16) checks
    it. A request or a response is tried first as the line makes likely: after a request to
    unit U with function F, a frame from U with F (or F | 0x80) is read as its response.
  * silence second: where the length cannot be told from the bytes (FC08/00 requests, unknown
    function codes) the frame ends where the line fell silent for `gap` seconds, or, where the
    host saw no silence (reads that merge), at the shortest prefix with a valid CRC.
  * bytes that make no valid frame at the start of the buffer are junk up to the next complete
    valid frame, or up to `linger` seconds of silence after them.

Times: a chunk's last byte arrived at the chunk's time, the bytes before it one character time
each earlier (they came back to back). The silence before a chunk is its first byte's start
minus the previous chunk's end. A serial driver, a USB adapter (latency timer, up to 16 ms) or
a pty hands over bytes in pieces, later than the wire carried them: a host can see silence
where the wire had none (so `gap` adds an allowance to t3.5, and a frame of known length is never
cut by silence) and can miss a short silence (two frames in one read: length and CRC still
split them). t1.5 (silence inside a frame) cannot be seen from a host at all.
"""

from mbnode.rtu import MAX_FRAME, MORE, UNKNOWN, request_length, response_length
from mbnode_host.rtuclient import crc_ok  # mbnode.crc.crc16 over a frame: the probe's check too

MAX_ADDRESS = 247


class Framer:
    """Frames from timed chunks. `wire(n)`: seconds n characters take; `gap`: the silence (s)
    that ends a frame of unknown length; `linger`: the silence (s) after which whatever is left
    in the buffer is decided (a truncated frame, noise)."""

    def __init__(self, wire, gap, linger):
        self.wire, self.gap, self.linger = wire, gap, linger
        self.buf = bytearray()
        self.times = []    # per byte: when its last bit arrived (estimated)
        self.reads = []    # per byte: the number of the read that delivered it
        self.bounds = set()  # positions in buf preceded by silence >= gap
        self.nread = 0
        self.scan = 0  # offsets below this (from 1) start no frame: _next_valid skips them
        self.pending = None  # (unit, function, request length) of the request awaiting an answer

    # ---- input ---------------------------------------------------------------------------

    def feed(self, data, t):
        """Bytes that arrived at host time t; returns the events they complete."""
        n = len(data)
        if not n:
            return []
        char = self.wire(1)
        first_end = t - char * (n - 1)
        if self.times:
            silence = first_end - char - self.times[-1]
            if silence >= self.gap:
                self.bounds.add(len(self.buf))
        else:
            self.bounds.add(0)
        self.nread += 1
        for i in range(n):
            self.times.append(max(first_end + char * i, self.times[-1] if self.times else 0.0))
            self.reads.append(self.nread)
        self.buf += data
        return self._parse(False)

    def idle(self, now):
        """Nothing arrived until host time now: decide what the silence ends."""
        if not self.buf:
            return []
        quiet = now - self.times[-1]
        if quiet >= self.linger:
            return self._parse(True)
        if quiet >= self.gap:
            self.bounds.add(len(self.buf))
            return self._parse(False)
        return []

    def flush(self):
        """The end: decide everything left."""
        return self._parse(True)

    # ---- parsing -------------------------------------------------------------------------

    def _order(self):
        """Kinds to try at the start of the buffer, the likely one first."""
        buf = self.buf
        p = self.pending
        if len(buf) >= 2 and (buf[1] & 0x80 or (p and buf[0] == p[0] and buf[1] & 0x7F == p[1])):
            return ("response", "request")
        return ("request", "response")

    def _length(self, kind, o, n):
        buf = self.buf
        if kind == "request":
            return request_length(buf, o, n)
        p = self.pending
        req_len = p[2] if p and n > 1 and buf[o] == p[0] and buf[o + 1] == p[1] else 0
        return response_length(buf, o, n, req_len)

    def _plausible(self, o, kind):
        a = self.buf[o]
        return a <= MAX_ADDRESS and (kind == "request" or a != 0)

    def _valid_at(self, o, end, ends=None):
        """(kind, length) of a complete frame with a valid CRC starting at buf[o] within
        buf[o:end], or None. ends: positions where a frame of unknown length may end (silence);
        None: the shortest valid prefix."""
        n = end - o
        if n < 4:
            return None
        for kind in (self._order() if o == 0 else ("request", "response")):
            if not self._plausible(o, kind):
                continue
            size = self._length(kind, o, n)
            if size == UNKNOWN:
                for e in (ends if ends is not None else range(o + 4, min(end, o + MAX_FRAME) + 1)):
                    if o + 4 <= e <= end and e - o <= MAX_FRAME and crc_ok(self.buf, o, e - o):
                        return kind, e - o
            elif MORE < size <= n and size <= MAX_FRAME and crc_ok(self.buf, o, size):
                return kind, size
        return None

    def _may_complete(self, n, limit=None):
        """Can the bytes at the start still become a frame, as more bytes come? A known length
        not reached yet can (unless silence came after the start, before `limit`); an unknown
        length can until the next valid frame (limit) or the end."""
        for kind in self._order():
            if not self._plausible(0, kind):
                continue
            size = self._length(kind, 0, n)
            if size == MORE:
                return True
            if size == UNKNOWN and limit is None:
                return True
            if n < size <= MAX_FRAME and (limit is None or not any(0 < b <= limit for b in self.bounds)):
                return True
        return False

    def _growing(self, n):
        """A frame of known length at the start still needs bytes, and no silence came since."""
        if any(0 < b <= n for b in self.bounds):
            return False
        for kind in self._order():
            if self._plausible(0, kind) and n < self._length(kind, 0, n) <= MAX_FRAME:
                return True
        return False

    def _dead_at(self, o, n):
        """True when no frame can start at buf[o], however many bytes come."""
        for kind in ("request", "response"):
            if not self._plausible(o, kind):
                continue
            size = self._length(kind, o, n - o)
            if size == MORE or size == UNKNOWN or n - o < size <= MAX_FRAME:
                return False
        return True

    def _next_valid(self, start):
        """Offset of the next complete valid frame after buf[start], or None. A frame of unknown
        length counts only where silence ends it. Offsets known dead are not looked at again."""
        n = len(self.buf)
        bounds = sorted(self.bounds)
        o = max(start, self.scan)
        advancing = True
        while o <= n - 4:
            if self._valid_at(o, n, [b for b in bounds if b > o]):
                return o
            if advancing and self._dead_at(o, n):
                self.scan = o + 1
            else:
                advancing = False
            o += 1
        return None

    def _parse(self, final):
        out = []
        while self.buf:
            n = len(self.buf)
            ends = sorted(b for b in self.bounds if b > 0)
            if final:
                ends.append(n)
            hit = self._valid_at(0, n, ends)
            if hit is not None:
                out.append(self._take_frame(*hit))
                continue
            if not final and self._growing(n):
                break  # a frame of known length on its way: nothing to look for behind its start
            k = self._next_valid(1)
            if k is not None:
                # A frame of unknown length ends, at the latest, where the next one starts.
                hit = self._valid_at(0, k, None)
                if hit is not None:
                    out.append(self._take_frame(*hit))
                elif self._may_complete(n, k):
                    break
                else:
                    out.append(self._take_junk(self._junk_end(k)))
                continue
            if final:
                hit = self._valid_at(0, n, None)
                out.append(self._take_frame(*hit) if hit else self._take_junk(self._junk_end(n)))
                continue
            if not self._may_complete(n) and (self._junk_end(n) < n or n in self.bounds):
                out.append(self._take_junk(self._junk_end(n)))  # silence ended what cannot be a frame
                continue
            if n >= 2 * MAX_FRAME:  # no valid frame in two frames' worth of bytes: let them go
                out.append(self._take_junk(n - MAX_FRAME))
                continue
            break
        return out

    def _junk_end(self, limit):
        """Junk ends at the first silence after its start, at the latest at limit."""
        return min([b for b in self.bounds if 0 < b < limit] + [limit])

    def _take(self, size):
        data = bytes(self.buf[:size])
        t_end = self.times[size - 1]
        t_start = self.times[0] - self.wire(1)
        reads = (self.reads[0], self.reads[size - 1])
        del self.buf[:size]
        del self.times[:size]
        del self.reads[:size]
        self.bounds = {b - size for b in self.bounds if b >= size}
        self.scan = max(0, self.scan - size)
        return data, t_start, t_end, reads

    def _take_frame(self, kind, size):
        data, t_start, t_end, reads = self._take(size)
        if kind == "request":
            self.pending = None if data[0] == 0 else (data[0], data[1], size)
        elif self.pending and data[0] == self.pending[0] and data[1] & 0x7F == self.pending[1]:
            self.pending = None
        return ("frame", kind, data, t_start, t_end, reads)

    def _take_junk(self, size):
        """Junk, with the kind of frame it would be by its length ("request", "response": a
        frame whose CRC is wrong) or None (noise)."""
        o = self._order()
        looks = None
        for kind in o:
            if self._plausible(0, kind) and self._length(kind, 0, size) == size:
                looks = kind
                break
        data, t_start, t_end, _ = self._take(size)
        return ("junk", data, t_start, t_end, looks)
