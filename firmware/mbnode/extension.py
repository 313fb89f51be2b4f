"""Extension modules (seeds/001's master role): remote I/O modules whose channels fill the
extension ranges of the map (DI/DO 0x0040-0x023F, AI/AO 0x0040-0x013F), on a serial line in
master role (its mbnode.rtumaster.RtuMaster, shared with the other master users) or over Modbus
TCP (a link of their own on mbnode.tcpmaster). Loaded only when extension.modules is configured
(docs/master.md, "Extension modules"); it registers with the Engine as `Engine.remote`, which
never imports it.

Inputs: each module's DI and AI are read with FC02/FC04 every period_ms (split into requests of
at most 0x0240 bits and 125 registers) and copied in wire format into the data model's extension
discrete inputs and input registers, where every master reads them. A poll allocates nothing:
each module owns one transaction and its request is written into it in place.

Outputs: the data model's extension coils and holding registers hold what the modules last
confirmed. A master's write (any transport, MQTT too: they all go through the Engine) that
touches them is written through: the Engine hands it to write(), which sends the modules' parts
with FC15/FC16, one module after the other, each part stored in the data model (and told to the
output subscribers) when its module has answered; then the transport gets the answer: the
normal one, exception 0x0B when a module did not answer, 04 when it answered with an exception.
Channels of the write that are not a module's (onboard ones) are written at once, as usual.

Liveness: a request without a fitting answer (timeout, malformed, an exception answer, no
connection) is a miss; after `misses` in a row the module is offline: every channel of it
answers exception 0x0B (reads and writes), and it is retried after retry_ms, then twice as
long each time up to retry_max_ms. A cycle that is answered makes it online again. When a module
comes online (at start and after being offline) its outputs are first written from the data
model, so that what masters read is what the module does; a module without inputs has its
outputs written every period (that is its poll). No request is ever repeated at once: a miss
waits for the next period (or retry).

Status: module k's state in memory positions status_position + 2k and + 2k + 1, as four 16-bit
registers (docs/master.md): state (0 not answered yet, 1 online, 2 offline), misses in a row,
requests sent and requests failed (both wrap at 65535).
"""

import time

from mbnode import fast
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, MEM_BASE
from mbnode.loop import sooner
from mbnode.pdu import put_head
from mbnode.transaction import ADU, OK, Transaction

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

EXT = const(0x40)  # the first extension channel of every table
STARTING = const(0)  # not answered yet
ONLINE = const(1)
OFFLINE = const(2)

_MAX_BITS = const(0x240)  # bits per FC02/FC15 request
_MAX_READ = const(125)  # registers per FC04 request
_MAX_WRITE = const(123)  # registers per FC16 request
_VALUES = const(246)  # a write job's values: 123 registers, or 0x240 coils packed and a part (_PART)
_PART = const(80)  # where a write job packs the coils of the part on its way (at most 73 bytes)
_SERVER_BUSY = const(6)
_FAILURE = const(4)
_NO_ANSWER = const(0x0B)


def _split(steps, fc, at, count, local, most):
    """Append the requests reading or writing `count` channels from the module's address `at`
    (local channel `local`), at most `most` each: 4 numbers per request."""
    while count > 0:
        q = count if count < most else most
        steps.extend((fc, at, q, local))
        at += q
        local += q
        count -= q


class Module:
    def __init__(self, ext, k, d, first, status):
        """d: the checked module object; first: per table, the local channel of its first one;
        status: the register address of its status block, or -1."""
        self.ext = ext
        self.model = ext.model
        self.first = first
        self.count = [d["do"], d["di"], d["ao"], d["ai"]]
        at = self.at = [d["do_address"], d["di_address"], d["ao_address"], d["ai_address"]]  # the module's own
        self.period = d["period_ms"]
        self.limit = d["misses"]
        self.retry_first = d["retry_ms"]
        self.retry_max = d["retry_max_ms"]
        self.retry = self.retry_first  # the wait before the next retry while offline
        self.status = status
        steps = []  # the cycle's requests: function code, module address, quantity, local channel
        _split(steps, 15, at[COILS], self.count[COILS], first[COILS], _MAX_BITS)
        _split(steps, 16, at[HOLDING], self.count[HOLDING], first[HOLDING], _MAX_WRITE)
        self.inputs = len(steps) // 4  # the steps before this one write the outputs
        _split(steps, 2, at[DISCRETE_INPUTS], self.count[DISCRETE_INPUTS], first[DISCRETE_INPUTS], _MAX_BITS)
        _split(steps, 4, at[INPUT], self.count[INPUT], first[INPUT], _MAX_READ)
        self.steps = steps
        self.nsteps = len(steps) // 4
        size = 5
        for j in range(0, len(steps), 4):
            q = steps[j + 2]
            n = 6 + (q + 7) // 8 if steps[j] == 15 else 6 + 2 * q if steps[j] == 16 else 5
            if n > size:
                size = n
        txn = self.txn = Transaction(self._done, ADU if d["tcp"] else size)  # TCP: the answer comes into it
        txn.unit = d["unit"]
        txn.timeout_ms = d["timeout_ms"]
        self.via = None  # the RtuMaster or TcpLink its requests go to
        self.state = STARTING
        self.sync = True  # its outputs are to be written from the data model
        self.synced = False  # the cycle running writes them
        self.misses = 0  # requests in a row without a fitting answer
        self.sent = self.failed = 0  # requests handed to the master, and those that failed (16-bit)
        self.writing = 0  # parts of write-throughs to it on their way
        self.i = 0  # the step on its way
        self.began = self.due = time.ticks_ms()

    def overlaps(self, table, first, last):
        c = self.count[table]
        f = self.first[table]
        return c and first < f + c and last >= f

    # --- the poll cycle

    def cycle(self, now):
        """Start a cycle (its transaction is free): the outputs when they are to be brought in
        line (or it has no inputs), then the inputs."""
        self.began = now
        i = 0 if self.sync or self.inputs == self.nsteps else self.inputs
        if i < self.inputs and self.writing:
            # A write-through to it is on its way: written from the data model now, its older
            # values could overtake the new ones. Its answer tells whether the module is there.
            i = self.inputs
        if i == self.nsteps:  # nothing to send this time (never at once again: period 0 would spin)
            self.due = time.ticks_add(now, self.period if self.period > 10 else 10)
            return
        self.synced = i < self.inputs
        self.i = i
        self._send()

    def _send(self):
        txn = self.txn
        s = self.steps
        j = 4 * self.i
        fc = s[j]
        at = s[j + 1]
        q = s[j + 2]
        pdu = txn.pdu
        put_head(pdu, fc, at, q)
        n = 5
        model = self.model
        if fc == 15:
            k = fast.get_bits(pdu, 6, model.bits[COILS], s[j + 3], q)
            pdu[5] = k
            n = 6 + k
        elif fc == 16:
            pdu[5] = 2 * q
            fast.copy(pdu, 6, model.regs, model.reg_offset(HOLDING, s[j + 3]), 2 * q)
            n = 6 + 2 * q
        txn.n = n
        if self.via.submit(txn):
            self.sent = (self.sent + 1) & 0xFFFF
            self._show()
        else:
            self._end(False)

    def _done(self, txn, status, buf, o, n):
        s = self.steps
        j = 4 * self.i
        fc = s[j]
        q = s[j + 2]
        if status != OK or buf[o] != fc:
            self._end(False)
            return
        model = self.model
        if fc == 2:
            k = (q + 7) >> 3
            if n != 2 + k or buf[o + 1] != k:
                self._end(False)
                return
            fast.put_bits(model.bits[DISCRETE_INPUTS], s[j + 3], buf, o + 2, q)
        elif fc == 4:
            if n != 2 + 2 * q or buf[o + 1] != 2 * q:
                self._end(False)
                return
            fast.copy(model.regs, model.reg_offset(INPUT, s[j + 3]), buf, o + 2, 2 * q)
        elif n != 5:
            self._end(False)
            return
        self.i += 1
        if self.i < self.nsteps:
            self._send()
        else:
            self._end(True)

    def _end(self, ok):
        """The cycle is over (ok: every request answered); when the next one starts."""
        now = time.ticks_ms()
        was = self.state
        self.result(ok, now)
        if ok:
            if self.state != ONLINE:
                self.state = ONLINE
                self.ext.offline -= 1
            if self.synced:
                self.sync = False
            self.retry = self.retry_first
            self.due = time.ticks_add(self.began, self.period)
        elif was == OFFLINE:  # a retry failed: wait longer
            self.due = time.ticks_add(now, self.retry)
            self.retry = min(2 * self.retry, self.retry_max)
        elif self.state != OFFLINE:  # a miss, not yet offline: the next period as usual
            self.due = time.ticks_add(self.began, self.period)
        self._show()

    # --- every request's end (polls and write-throughs)

    def result(self, ok, now):
        """Count the end of a request to this module: ok = answered as asked."""
        if ok:
            self.misses = 0
            return
        self.failed = (self.failed + 1) & 0xFFFF
        if self.misses < 0xFFFF:
            self.misses += 1
        if self.misses >= self.limit and self.state != OFFLINE:
            if self.state == ONLINE:
                self.ext.offline += 1
            self.state = OFFLINE
            self.sync = True
            self.due = time.ticks_add(now, self.retry_first)
            self.retry = min(2 * self.retry_first, self.retry_max)

    def _show(self):
        """The status registers (state, misses in a row, sent, failed)."""
        a = self.status
        if a >= 0:
            model = self.model
            model.set_reg(HOLDING, a, self.state)
            model.set_reg(HOLDING, a + 1, self.misses)
            model.set_reg(HOLDING, a + 2, self.sent)
            model.set_reg(HOLDING, a + 3, self.failed)


class _Write:
    """One write-through on its way. `values` holds what it was given (registers in wire format
    from 0, or coils packed from bit 0, and the part on its way packed again at _PART); each
    module's part is sent from there, its request written into the transaction's buffer (which
    the TCP master also reads the answer into), and stored in the map from there once answered.
    At the end the transaction's buffer holds the answer for the waiter."""

    def __init__(self, ext):
        self.ext = ext
        self.txn = Transaction(self._done)  # transaction.ADU bytes: a TCP module's answer fits
        self.values = bytearray(_VALUES)
        self.head = bytearray(7)  # the request's first bytes: the answer echoes them
        self.busy = False
        self.waiter = None
        self.counted = False  # the request came from a transport (the Engine counted it)
        self.table = self.first = self.last = 0
        self.k = 0  # the module whose part is on its way
        self.a = self.q = 0  # that part: first local channel, count
        self.code = 0  # the exception to answer, 0 none

    def start(self, table, first, qty, src, so, req, ro, waiter):
        """Begin the write; the waiter is told of its end only when that comes after this call
        (busy still set on return). One that ends in it (a master refused it, or ended it at
        once) is answered by the Engine there and then: Extension.write returns its exception."""
        self.busy = True
        self.waiter = None
        engine = self.ext.engine
        self.counted = engine is not None and engine.source != 0  # handle() counted it (not SOURCE_LOCAL)
        self.table = table
        self.first = first
        self.last = first + qty - 1
        self.code = 0
        self.k = 0
        fast.copy(self.head, 0, req, ro, 7)
        values = self.values
        model = self.ext.model
        if src is None:  # FC05: its value, 0xFF00 or 0
            values[0] = 1 if req[ro + 3] else 0
        elif table == COILS:
            fast.get_bits(values, 0, src, 8 * so, qty)
        else:
            fast.copy(values, 0, src, so, 2 * qty)
        if first < EXT:  # onboard channels: written at once, as the Engine does
            k = (self.last if self.last < EXT else EXT - 1) - first + 1
            if table == COILS:
                fast.put_bits(model.bits[COILS], first, values, 0, k)
            else:
                fast.copy(model.regs, model.reg_offset(HOLDING, first), values, 0, 2 * k)
            if not model.outputs_written(table, first, k):
                self.code = _FAILURE
        self._next()
        if self.busy:
            self.waiter = waiter

    def _next(self):
        """Send the next module's part; the end when there is none."""
        mods = self.ext.modules
        t = self.table
        while self.k < len(mods):
            m = mods[self.k]
            if m.overlaps(t, self.first, self.last):
                f = m.first[t]
                a = self.first if self.first > f else f
                b = f + m.count[t] - 1
                if self.last < b:
                    b = self.last
                q = b - a + 1
                d = a - self.first
                self.a = a
                self.q = q
                txn = self.txn
                pdu = txn.pdu
                values = self.values
                if t == COILS:
                    k = fast.get_bits(values, _PART, values, d, q)
                    fast.copy(pdu, 6, values, _PART, k)
                    fc = 15
                else:
                    k = 2 * q
                    fast.copy(pdu, 6, values, 2 * d, k)
                    fc = 16
                at = m.at[t] + a - f
                put_head(pdu, fc, at, q)
                pdu[5] = k
                txn.off = 0
                txn.n = 6 + k
                txn.unit = m.txn.unit
                txn.timeout_ms = m.txn.timeout_ms
                if not m.via.submit(txn):
                    self.code = _SERVER_BUSY
                    break
                m.sent = (m.sent + 1) & 0xFFFF
                m.writing += 1
                m._show()
                return
            self.k += 1
        self._finish()

    def _done(self, txn, status, buf, o, n):
        m = self.ext.modules[self.k]
        m.writing -= 1
        ok = status == OK and n == 5 and buf[o] == (15 if self.table == COILS else 16)
        m.result(ok, time.ticks_ms())
        m._show()
        if not ok:
            self.code = _FAILURE if status == OK else _NO_ANSWER
            self._finish()
            return
        model = self.ext.model
        t = self.table
        if t == COILS:
            fast.put_bits(model.bits[COILS], self.a, self.values, _PART, self.q)
        else:
            fast.copy(model.regs, model.reg_offset(HOLDING, self.a), self.values, 2 * (self.a - self.first), 2 * self.q)
        if not model.outputs_written(t, self.a, self.q) and not self.code:
            self.code = _FAILURE
        self.k += 1
        self._next()

    def _finish(self):
        w = self.waiter
        self.waiter = None
        if w is not None:
            pdu = self.txn.pdu
            h = self.head
            fc = h[0]
            if self.code:
                pdu[0] = fc | 0x80
                pdu[1] = self.code
                n = 2
                if self.counted:  # the exception answers of the status registers (0x2008)
                    self.ext.engine.exception_late()
            elif fc == 23:  # the read after the write: from the data model, now
                first = (h[1] << 8) | h[2]
                q = (h[3] << 8) | h[4]
                model = self.ext.model
                pdu[0] = 23
                pdu[1] = 2 * q
                fast.copy(pdu, 2, model.regs, model.reg_offset(HOLDING, first), 2 * q)
                n = 2 + 2 * q
            else:
                n = 7 if fc == 22 else 5
                fast.copy(pdu, 0, h, 0, n)
            self.busy = False  # free even if finish raises; every waiter reads the answer first
            w.finish(OK, pdu, 0, n)
        self.busy = False


class Extension:
    def __init__(self, loop, model, masters, ext):
        """ext: the checked "extension" section."""
        self.engine = None  # the Engine, set by start(): it counts the exception answers that come later
        self.model = model
        mods = ext["modules"]
        self.offline = len(mods)  # modules not online: their channels answer 0x0B
        self.modules = []
        first = [EXT, EXT, EXT, EXT]
        p = ext["status_position"]
        writes = ext["writes"]
        for k, d in enumerate(mods):
            m = Module(self, k, d, list(first), MEM_BASE + 2 * (p - 1) + 4 * k if p else -1)
            for t in range(4):
                first[t] += m.count[t]
            if d["tcp"]:
                host, port = d["tcp"].rsplit(":", 1)
                m.via = masters.tcp().link(1 + writes)
                m.via.target(host, int(port))
            else:
                m.via = masters.rtu(d["line"]) if d["line"] else masters.first()
            m._show()
            self.modules.append(m)
        self.last = [f - 1 for f in first]  # per table, the last channel of a module (EXT - 1: none)
        self.jobs = [_Write(self) for _ in range(writes)]
        loop.add_timer(self)

    # --- the Engine's hook (Engine.remote)

    def down(self, table, first, qty):
        """Is a channel of first..first+qty-1 a module's that is not online?"""
        if not self.offline:
            return False
        last = first + qty - 1
        for m in self.modules:
            if m.state != ONLINE and m.overlaps(table, first, last):
                return True
        return False

    def claims(self, table, first, qty):
        """Does a write of table (COILS or HOLDING) first..first+qty-1 touch a module's output?"""
        return first <= self.last[table] and first + qty > EXT

    def waits(self, fc, first, qty):
        """Would a write with function code fc be answered later (it touches modules' outputs)?"""
        if fc == 5 or fc == 15:
            return self.claims(COILS, first, qty)
        if fc == 6 or fc == 16 or fc == 22 or fc == 23:
            return self.claims(HOLDING, first, qty)
        return False

    def write(self, table, first, qty, src, so, req, ro, waiter):
        """Start the write of qty values at src[so:] (packed bits, or registers in wire format;
        src None: FC05's value in req) to table first..; req[ro:]: the request PDU (its answer
        echoes it). 0 when started (the
        waiter, if any, gets the answer), -0x0B when a module it touches is not online, -06
        when every write job is busy; when it ended at once, the exception it ended with (06:
        a master's queue was full; 0x0B: a master could not send it), the waiter never told."""
        last = first + qty - 1
        for m in self.modules:
            if m.state != ONLINE and m.overlaps(table, first, last):
                return -_NO_ANSWER
        for job in self.jobs:
            if not job.busy:
                job.start(table, first, qty, src, so, req, ro, waiter)
                # Ended at once: it touched a module (claims), so its end set an exception.
                return 0 if job.busy else -job.code
        return -_SERVER_BUSY

    def forget(self, waiter):
        for job in self.jobs:
            if job.waiter is waiter:
                job.waiter = None

    # --- loop timer: the poll cycles

    def due_in(self, now):
        d = -1
        for m in self.modules:
            if not m.txn.busy:
                d = sooner(d, time.ticks_diff(m.due, now))
        return d

    def tick(self, now):
        for m in self.modules:
            if not m.txn.busy and time.ticks_diff(now, m.due) >= 0:
                m.cycle(now)


def start(loop, engine, model, cfg, masters):
    """The modules on the loop, registered with the engine; the ready line's words."""
    ext = Extension(loop, model, masters, cfg["extension"])
    engine.remote = ext
    ext.engine = engine  # its exception answers that come later are counted there
    return ["extension", "%d" % len(ext.modules)]
