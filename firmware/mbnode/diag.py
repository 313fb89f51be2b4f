"""Serial-line diagnostics: the counters, event log and listen-only mode of one RTU line, and
the functions that read them: FC07, FC08 (all sub-functions but 0000), FC11 and FC12
(Modbus Application Protocol V1.1b3 6.7-6.10, Modbus over Serial Line V1.02 6.1).

The RTU link counts as frames arrive, before they are executed, so a counter read includes the
request that reads it. Counters wrap at 0xFFFF. What each counts (docs/rtu.md):
  bus      08/0B  frames with a correct CRC, whatever their address
  comm     08/0C  frames dropped for a bad CRC or cut by a gap longer than t1.5
  exc      08/0D  exception responses sent
  server   08/0E  frames for this unit or broadcast
  noresp   08/0F  of those, the ones not answered (broadcast, listen-only mode)
  overrun  08/12  frames longer than 256 bytes (or input lost by the port)
  events   FC11   requests for this unit completed without exception, FC11 itself excepted
NAK (08/10) and busy (08/11) stay 0: the slave never answers exception 05, 06 or 07.

The diagnostic register (08/02; its low byte is FC07's exception status) has one bit per kind of
trouble seen since it was last cleared: 0 CRC error, 1 overrun, 2 exception sent, 3 broadcast.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_DIAG_CRC = const(1)
_DIAG_OVERRUN = const(2)
_DIAG_EXCEPTION = const(4)
_DIAG_BROADCAST = const(8)

# Event log bytes (FC12).
_EV_RECEIVE = const(0x80)  # | 0x02 communication error, 0x10 overrun, 0x20 listen-only, 0x40 broadcast
_EV_SEND = const(0x40)  # | 0x01 exception 1-3, 0x02 exception 04, 0x04 busy, 0x08 NAK, 0x20 listen-only
_EV_LISTEN_ONLY = const(0x04)
_EV_RESTART = const(0x00)
_LOG_SIZE = const(64)

_RESTART = const(0x01)
_DIAG_REGISTER = const(0x02)
_FORCE_LISTEN_ONLY = const(0x04)
_CLEAR = const(0x0A)
_FIRST_COUNTER = const(0x0B)
_LAST_COUNTER = const(0x12)
_CLEAR_OVERRUN = const(0x14)


class LineDiagnostics:
    def __init__(self):
        self.log = bytearray(_LOG_SIZE)  # ring, newest at log[head - 1]
        self.head = 0
        self.logged = 0
        self.listen_only = False
        # Frames dropped for a bad CRC (or cut by a gap) since boot, 32-bit in 16-bit halves: the
        # status registers' RTU CRC errors (mbnode.sysregs); FC08's clear leaves them.
        self.crc_lo = self.crc_hi = 0
        self.clear()

    def clear(self):
        """08/0A, 08/01 and power-up: every counter and the diagnostic register to 0."""
        self.bus = self.comm = self.exc = self.server = self.noresp = self.overrun = 0
        self.events = 0
        self.register = 0

    def event(self, byte):
        self.log[self.head] = byte
        self.head = (self.head + 1) % _LOG_SIZE
        if self.logged < _LOG_SIZE:
            self.logged += 1

    # --- counting, called by the RTU link

    def bad_frame(self):
        self.comm = (self.comm + 1) & 0xFFFF
        n = self.crc_lo + 1
        if n > 0xFFFF:
            n = 0
            self.crc_hi = (self.crc_hi + 1) & 0xFFFF
        self.crc_lo = n
        self.register |= _DIAG_CRC
        self.event(_EV_RECEIVE | 0x02)

    def overrun_frame(self):
        self.overrun = (self.overrun + 1) & 0xFFFF
        self.register |= _DIAG_OVERRUN
        self.event(_EV_RECEIVE | 0x10)

    def frame(self):
        """A frame with a correct CRC was seen on the line."""
        self.bus = (self.bus + 1) & 0xFFFF

    def received(self, broadcast):
        """A frame for this unit (or broadcast) arrived; logged before it is executed."""
        self.server = (self.server + 1) & 0xFFFF
        if broadcast:
            self.register |= _DIAG_BROADCAST
        self.event(_EV_RECEIVE | (0x40 if broadcast else 0) | (0x20 if self.listen_only else 0))

    def ignored(self):
        """A request for this unit that is not executed (a broadcast read, listen-only mode)."""
        self.noresp = (self.noresp + 1) & 0xFFFF
        self.event(_EV_SEND | (0x20 if self.listen_only else 0))

    def done(self, fc, code, answered):
        """A request for this unit was handled: code = exception code or 0, answered = a reply
        went out."""
        bits = 0x20 if self.listen_only else 0
        if not answered:
            self.noresp = (self.noresp + 1) & 0xFFFF
        if code:
            if answered:
                self.exc = (self.exc + 1) & 0xFFFF
                self.register |= _DIAG_EXCEPTION
            bits |= 0x01 if code <= 3 else 0x02 if code == 4 else 0x04 if code <= 6 else 0x08
        elif fc != 11:
            self.events = (self.events + 1) & 0xFFFF
        self.event(_EV_SEND | bits)

    # --- the functions, same signature as the PDU engine's handlers

    def handle(self, req, ro, n, resp, wo):
        """FC07, FC08 (not 0000), FC11, FC12: response length, or -exception code."""
        fc = req[ro]
        if fc == 8:
            return self._diagnostics(req, ro, n, resp, wo)
        if n != 1:
            return -3
        resp[wo] = fc
        if fc == 7:
            resp[wo + 1] = self.register & 0xFF
            return 2
        if fc == 11:
            _put16(resp, wo + 1, 0)  # status: never busy with an earlier command
            _put16(resp, wo + 3, self.events)
            return 5
        # FC12: status, event count, message count, then the events newest first.
        count = self.logged
        resp[wo + 1] = 6 + count
        _put16(resp, wo + 2, 0)
        _put16(resp, wo + 4, self.events)
        _put16(resp, wo + 6, self.bus)
        i = 0
        while i < count:
            resp[wo + 8 + i] = self.log[(self.head - 1 - i) % _LOG_SIZE]
            i += 1
        return 8 + count

    def _diagnostics(self, req, ro, n, resp, wo):
        if n != 5:
            return -3
        sub = (req[ro + 1] << 8) | req[ro + 2]
        data = (req[ro + 3] << 8) | req[ro + 4]
        if sub == _RESTART:
            if data != 0 and data != 0xFF00:
                return -3
            self.listen_only = False
            self.clear()
            if data:
                self.logged = 0
            self.event(_EV_RESTART)
            return _echo(req, ro, resp, wo)
        if (
            sub != _DIAG_REGISTER
            and sub != _FORCE_LISTEN_ONLY
            and sub != _CLEAR
            and sub != _CLEAR_OVERRUN
            and not _FIRST_COUNTER <= sub <= _LAST_COUNTER
        ):
            return -1
        if data:
            return -3
        if sub == _FORCE_LISTEN_ONLY:
            self.listen_only = True
            self.event(_EV_LISTEN_ONLY)
            return 0  # never answered
        if sub == _CLEAR:
            self.clear()
            return _echo(req, ro, resp, wo)
        if sub == _CLEAR_OVERRUN:
            self.overrun = 0
            self.register &= 0xFFFF ^ _DIAG_OVERRUN
            return _echo(req, ro, resp, wo)
        if sub == _DIAG_REGISTER:
            value = self.register
        elif sub == 0x0B:
            value = self.bus
        elif sub == 0x0C:
            value = self.comm
        elif sub == 0x0D:
            value = self.exc
        elif sub == 0x0E:
            value = self.server
        elif sub == 0x0F:
            value = self.noresp
        elif sub == 0x12:
            value = self.overrun
        else:  # 0x10 NAK, 0x11 busy
            value = 0
        _echo(req, ro, resp, wo)
        _put16(resp, wo + 3, value)
        return 5


def _put16(buf, o, v):
    buf[o] = v >> 8
    buf[o + 1] = v & 0xFF


def _echo(req, ro, resp, wo):
    i = 0
    while i < 5:
        resp[wo + i] = req[ro + i]
        i += 1
    return 5
