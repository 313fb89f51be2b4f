"""Modbus RTU frames (Modbus over Serial Line V1.02): how long a request and a response are (the
one definition the slave's link, the masters, the host tools and the tests use), and what the
slave does with a complete frame. No timing and no I/O here; the link (mbnode.rtulink) owns those,
so this part runs, and is tested, under CPython too.

A frame is address, PDU, CRC (low byte first). The CRC of a whole correct frame is 0.
"""

from mbnode.crc import crc16
from mbnode.fast import copy

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_FRAME = const(256)
_BROADCAST = const(0)

UNKNOWN = const(-1)  # the length cannot be told from the bytes: the frame ends at silence
MORE = const(0)  # more bytes are needed to tell the length
MIN_REQUEST = const(4)  # address, function code, CRC (FC07/11/12/17)


# Dropped by app.run once the parts are built: a line's timing is worked out when its link,
# RTU master or board port is made, all at start-up (mbnode.startup opens the ports).
START_ONLY = ("char_times",)


def char_times(baud, parity, stopbits):
    """(one character, t3.5) in microseconds for these line settings: a character is start, 8
    data, parity and stop bits; t3.5 is fixed at 1750 us above 19200 baud (Modbus over Serial
    Line V1.02 2.5.1.1)."""
    bits = 1 + 8 + (parity != "N") + stopbits
    return bits * 1000000 // baud, 1750 if baud > 19200 else 35 * bits * 100000 // baud


def request_length(buf, o, n):
    """Length of the request frame starting at buf[o], from the n bytes received so far:
    MORE, UNKNOWN or the length in bytes (address to CRC)."""
    if n < 2:
        return MORE
    fc = buf[o + 1]
    if 1 <= fc <= 6:
        return 8
    if fc == 15 or fc == 16:
        return 9 + buf[o + 6] if n > 6 else MORE
    if fc == 23:
        return 13 + buf[o + 10] if n > 10 else MORE
    if fc == 22:
        return 10
    if fc == 7 or fc == 11 or fc == 12 or fc == 17:
        return 4
    if fc == 43:
        return 7
    if fc == 8:
        # Sub-function 0000 echoes data of any length; the others carry one word.
        if n < 4:
            return MORE
        return UNKNOWN if buf[o + 2] == 0 and buf[o + 3] == 0 else 8
    return UNKNOWN


def response_length(buf, o, n, req_len=0):
    """Length of the response frame starting at buf[o], from the n bytes received so far:
    MORE, UNKNOWN or the length in bytes (address to CRC), which may exceed MAX_FRAME when a
    byte count lies. req_len: the length of the request it answers, which an FC08/00 answer
    echoes (UNKNOWN without it)."""
    if n < 2:
        return MORE
    fc = buf[o + 1]
    if fc & 0x80:
        return 5  # exception: function code | 0x80, exception code
    if 1 <= fc <= 4 or fc == 12 or fc == 17 or fc == 20 or fc == 21 or fc == 23:
        return 5 + buf[o + 2] if n > 2 else MORE
    if fc == 5 or fc == 6 or fc == 11 or fc == 15 or fc == 16:
        return 8
    if fc == 7:
        return 5
    if fc == 22:
        return 10
    if fc == 8:
        if n < 4:
            return MORE
        if buf[o + 2] or buf[o + 3]:
            return 8
        return req_len if req_len >= 6 else UNKNOWN
    if fc == 24:
        return 6 + (buf[o + 2] << 8 | buf[o + 3]) if n > 3 else MORE
    if fc == 43:
        # MEI type, read code, conformity, more follows, next id, count, then (id, length, value)
        if n < 3:
            return MORE
        if buf[o + 2] != 14:
            return UNKNOWN
        if n < 8:
            return MORE
        i = 8
        k = buf[o + 7]
        while k:
            if n < i + 2:
                return MORE
            i += 2 + buf[o + i + 1]
            k -= 1
        return i + 2
    return UNKNOWN


def changes_state(buf, o):
    """True for a request that writes or changes the line's state (FC05/06/15/16/22/23 and FC08
    01/04/0A/14): the ones a broadcast executes, and the ones the link executes only once t3.5
    of silence has proven the frame over."""
    fc = buf[o + 1]
    if fc == 8:
        sub = buf[o + 3] if buf[o + 2] == 0 else 0
        return sub == 0x01 or sub == 0x04 or sub == 0x0A or sub == 0x14
    return fc == 5 or fc == 6 or fc == 15 or fc == 16 or fc == 22 or fc == 23


class RtuServer:
    """The slave side of one RTU line: counts, filters by address, executes, builds the reply."""

    def __init__(self, engine, diag, address):
        """engine: pdu.Engine; diag: diag.LineDiagnostics; address: the unit id, 1..247."""
        self.engine = engine
        self.diag = diag
        self.address = address
        self.waiter = None  # the link, which sends an answer that comes later (late())
        self.waiting = 0  # the function code of the request whose answer comes later, or 0

    def serve(self, rx, o, n, tx, reply=True):
        """Handle the frame rx[o:o+n] whose CRC is correct; returns the length of the reply frame
        written to tx (256 bytes), 0 when nothing is to be sent (reply=False: never)."""
        diag = self.diag
        diag.frame()
        addr = rx[o]
        if addr != self.address and addr != _BROADCAST:
            return 0
        broadcast = addr == _BROADCAST
        diag.received(broadcast)
        fc = rx[o + 1]
        restart = fc == 8 and rx[o + 2] == 0 and rx[o + 3] == 1
        was_listening = diag.listen_only
        if (was_listening and not restart) or (broadcast and not changes_state(rx, o)):
            diag.ignored()
            return 0
        if fc == 7 or fc == 11 or fc == 12 or (fc == 8 and (rx[o + 2] or rx[o + 3])):
            r = diag.handle(rx, o + 1, n - 3, tx, 1)
            self.engine.count(r < 0)
            if r < 0:
                tx[1] = fc | 0x80
                tx[2] = -r
                r = 2
        else:
            waiter = None if broadcast or was_listening or not reply else self.waiter
            r = self.engine.handle(rx, o + 1, n - 3, tx, 1, waiter, 1)  # pdu.SOURCE_RTU
            if r == 0 and waiter is not None:
                # pdu.PENDING: a write to extension modules; the answer comes to the link, which
                # sends what late() makes of it, unless the line was used meanwhile (drop()).
                self.waiting = fc
                return 0
        code = tx[2] if r and tx[1] & 0x80 else 0
        if broadcast or was_listening or r == 0 or not reply:
            diag.done(fc, code, False)
            return 0
        diag.done(fc, code, True)
        tx[0] = addr
        crc = crc16(tx, 0, r + 1)
        tx[r + 1] = crc & 0xFF
        tx[r + 2] = crc >> 8
        return r + 3

    def late(self, buf, o, n, tx):
        """The reply frame, written to tx, for the answer PDU buf[o:o+n] that came later to the
        request served last (serve returned 0 with self.waiting set); its length."""
        fc = self.waiting
        self.waiting = 0
        copy(tx, 1, buf, o, n)
        self.diag.done(fc, tx[2] if tx[1] & 0x80 else 0, True)
        tx[0] = self.address
        crc = crc16(tx, 0, n + 1)
        tx[n + 1] = crc & 0xFF
        tx[n + 2] = crc >> 8
        return n + 3

    def drop(self):
        """The line carried something else before the answer that comes later: it is not sent
        (the master has moved on); the write itself goes on."""
        if self.waiting:
            self.diag.done(self.waiting, 0, False)
            self.waiting = 0
            self.engine.forget(self.waiter)
