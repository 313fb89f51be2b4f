"""The poller: other Modbus servers read on a period, their values typed and landed in this
device's own map, and alarms on them (seeds/000's Modbus client; docs/master.md, "Poller and
alarms"). Loaded only when poller.enabled is true; startup.build hands it the masters, the engine
and the data model, and the MQTT bridge, when on, attaches to it (attach()).

Servers. A Modbus TCP server has a TcpLink of its own (mbnode.tcpmaster), so a dead or silent
server delays nobody but itself; servers on a serial line share the line's RtuMaster queue
(mbnode.rtumaster), which asks other units first while one that timed out may still answer late.
Every period_ms a server's requests go out one after the other, each when the one before it is
done. Before the first request on a new connection the poller waits delay_ms (a connect alone
first, then the pause); always_reconnect closes the connection after each request; after
reset_after timeouts in a row the link makes the connection anew. A connection that cannot be
made ends the round: the next is due a period after the failed one began.

Values. An answer is checked (function, byte count) and its values land where the request says:
  * memory positions: one 32-bit position per value, as its type reads: integers sign- or
    zero-extended, float32 as its IEEE-754 bits, 64-bit types in two positions (the lower 32 bits
    first), bool 0 or 1, ascii and hex one register per position;
  * registers of the local map (holding or input; coils or discrete inputs for functions 1 and
    2): the values' bytes in standard order (byte_order and word_order undone), bool 0 or 1;
  * an MQTT point: published by the bridge on <root>/<point> when the answer changed (or
    every_s is due).
Holding registers, coils and memory (outputs) are written through the Engine, as a master's write
would be, so limits and exceptions apply and the output subscribers hear of it; input registers
and discrete inputs through DataModel.put.

Alarms compare one value of a request with a constant after every answer to it: the value's
bytes and the constant's are compared as order keys (order_key() below), so no number
object is made. Frequency "every" acts on each answer that meets the condition, "first" only on
the first after one that did not; redundancy_s keeps an alarm from acting again for that long.
Actions: a Modbus write to a server (one at a time per server, the others waiting their turn; an
alarm whose last write has not ended skips one), a local output set through the
Engine, an MQTT message with %-codes.

Memory: the steady state (a poll, its answer, values landed, alarms compared, a write or an
output action) allocates nothing: PDUs are built once, answers are read in the master's buffer
and converted through two preallocated buffers (tests/core/alloc_poller.py proves it under
heap_lock). What allocates: a connect (the socket), a line printed when a server or request
changes between answering and failing, an MQTT point's payload and an alarm's MQTT message
(their text), and the decoding of ascii and hex values for an alarm's comparison.
"""

import time

from mbnode import datatypes
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT
from mbnode.loop import sooner
from mbnode.transaction import BAD, OK, REFUSED, TIMEOUT

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_IDLE = const(0)  # waiting for the next round
_CONNECTING = const(1)  # a connect alone, before delay_ms
_DELAY = const(2)  # delay_ms after the connect
_BUSY = const(3)  # a request on its way
_CHUNK = const(60)  # memory positions per FC16 to the engine (120 registers of 123)
_REGS = const(120)  # registers per FC16 to the engine
_GT = const(0)
_LT = const(1)
_EQ = const(2)
_NE = const(3)
_LE = const(4)
_GE = const(5)


class Request:
    """One request of a server (its fields: mbnode.pollbuild.request)."""


class Alarm:
    """One alarm on a request's value (its fields: mbnode.pollbuild.alarm)."""


class Server:
    """One polled (or written) server (its fields: mbnode.pollbuild.server)."""

    def submit(self, txn):
        """txn on this server's link, line or the TCP pool; False when it could not be queued."""
        link = self.link
        if link is not None:
            return link.submit(txn)
        if self.line is not None:
            return False  # the serial line is not there (it closed)
        return self.poller.masters.tcp().submit(txn)


class Poller:
    def __init__(self, loop, engine, model, masters, device_name):
        """masters: mbnode.masters.Masters; servers and alarms: mbnode.pollbuild fills them in."""
        self.loop = loop
        self.engine = engine
        self.model = model
        self.masters = masters
        self.device_name = device_name
        self.servers = []
        self.alarms = []
        self.wbuf = bytearray(6 + 2 * _REGS)  # FC15/FC16 requests to the engine
        self.resp = bytearray(260)  # the engine's answers
        self.canon = bytearray(256)  # a register answer's values in standard byte order
        self.kbuf = bytearray(8)  # one value as an order key
        self.publish = None  # the MQTT bridge's publish(topic, payload, retain), attach()
        self.text = None  # mbnode.polltext, loaded by attach() when something is published
        loop.add_timer(self)

    def attach(self, publish, base, root):
        """The MQTT bridge's seam: publish(topic, payload, retain) -> False when not connected;
        base: b"<prefix>/" (or b""), root: b"<base><root>/". Returns the longest topic the
        poller publishes on (the bridge sizes its header buffer for it)."""
        self.publish = publish
        longest = 0
        for s in self.servers:
            for r in s.requests:
                if r.point:
                    r.topic = root + r.point.encode()
                    longest = max(longest, len(r.topic))
        for a in self.alarms:
            if a.mqtt is not None:
                a.topic = base + a.mqtt.encode()
                longest = max(longest, len(a.topic))
        if longest:
            from mbnode import polltext

            self.text = polltext
        return longest

    # --- the rounds (loop timer)

    def due_in(self, now):
        d = -1
        for s in self.servers:
            if s.requests and (s.state == _IDLE or s.state == _DELAY):
                d = sooner(d, time.ticks_diff(s.due, now))
        return d

    def tick(self, now):
        for s in self.servers:
            if s.requests and (s.state == _IDLE or s.state == _DELAY) and time.ticks_diff(now, s.due) >= 0:
                if s.state == _IDLE:
                    s.rounds += 1
                    s.began = now
                    s.i = 0
                    self._next(s)
                else:
                    self._send(s)

    def _next(self, s):
        """Start request s.i of the round, or end the round."""
        if s.i >= len(s.requests):
            self._rest(s)
            return
        link = s.link
        if s.delay_ms and s.line is None and not link.is_open:
            txn = s.txn
            txn.n = 0  # connect only
            s.state = _CONNECTING
            if not link.submit(txn):
                self._failed(s, -1)
            return
        self._send(s)

    def _send(self, s):
        txn = s.txn
        req = s.requests[s.i]
        _load(txn, req.pdu, s.line is None)
        s.state = _BUSY
        if not s.submit(txn):
            self._failed(s, -1)

    def _rest(self, s):
        s.state = _IDLE
        now = time.ticks_ms()
        s.due = time.ticks_add(s.began, s.period_ms)
        if time.ticks_diff(s.due, now) < 0:
            s.due = now

    def _failed(self, s, status):
        """The round ends: the server could not be reached (status -1: not even queued)."""
        s.failures += 1
        self._down(s, status)
        self._rest(s)

    def _down(self, s, status):
        if s.up is not False:
            s.up = False
            print("poller: server %s: %s" % (s.name, _status_text(s, status, s.txn)))

    def done(self, s, status, buf, o, n):
        """The end of s.txn (the loop, through its master)."""
        if s.state == _CONNECTING:
            if status == OK:
                s.state = _DELAY
                s.due = time.ticks_add(time.ticks_ms(), s.delay_ms)
            else:
                self._failed(s, status)
            return
        req = s.requests[s.i]
        if status == OK:
            s.answers += 1
            if s.up is not True:
                if s.up is False:
                    print("poller: server %s answers again" % s.name)
                s.up = True
            self._answer(req, buf, o, n)
        elif status == TIMEOUT or status == BAD:  # the next request may fare better
            if status == TIMEOUT:
                s.timeouts += 1
            req.errors += 1
            self._down(s, status)
        else:
            if s.reconnect:
                s.link.close()
            self._failed(s, status)
            return
        if s.reconnect:
            s.link.close()
        s.i += 1
        self._next(s)

    # --- alarms' writes: one at a time per server, the others wait in its ring

    def _write(self, a):
        if a.pending:  # its last write has not ended yet
            a.write_errors += 1
            return
        a.pending = True
        s = a.target
        if s.wtxn.busy or s.wcount:
            w = s.writers
            w[(s.wfirst + s.wcount) % len(w)] = a
            s.wcount += 1
            return
        self._start_write(s, a)

    def _start_write(self, s, a):
        t = s.wtxn
        _load(t, a.write, s.line is None)
        t.user = a
        if not s.submit(t):
            a.pending = False
            a.write_errors += 1
            self._next_write(s)

    def _next_write(self, s):
        if s.wcount and not s.wtxn.busy:
            w = s.writers
            a = w[s.wfirst]
            w[s.wfirst] = None
            s.wfirst = (s.wfirst + 1) % len(w)
            s.wcount -= 1
            self._start_write(s, a)

    # --- an answer

    def _answer(self, req, buf, o, n):
        if n != req.answer or buf[o] != req.fc or buf[o + 1] != req.answer - 2:
            req.errors += 1
            if not req.failing:
                req.failing = True
                print("poller: server %s, request %s: %s" % (req.server.name, req.name, "exception %d" % buf[o + 1]
                                                             if n == 2 and buf[o] == req.fc | 0x80 else
                                                             "malformed answer of %d bytes" % n))
            return
        if req.failing:
            req.failing = False
            print("poller: server %s, request %s answers" % (req.server.name, req.name))
        req.answers += 1
        d = o + 2
        if req.fc <= 2:
            self._bits(req, buf, d)
        else:
            self._registers(req, buf, d)
        for a in req.alarms:
            self._alarm(a, req, buf, d)
        if req.topic is not None and self.publish is not None:
            self.text.point(self, req, buf, o)

    def _bits(self, req, buf, d):
        count = req.count
        if req.table == COILS:
            w = self.wbuf
            nb = (count + 7) >> 3
            w[0] = 15
            w[1] = req.address >> 8
            w[2] = req.address & 0xFF
            w[3] = count >> 8
            w[4] = count & 0xFF
            w[5] = nb
            for i in range(nb):
                w[6 + i] = buf[d + i]
            self._engine(req, 6 + nb)
        elif req.table == DISCRETE_INPUTS:
            self.model.put(DISCRETE_INPUTS, req.address, buf, d, count)
        if req.memory >= 0:
            w = self.wbuf
            k = 0
            a = req.memory
            for i in range(count):
                j = 6 + 4 * k
                w[j] = 0
                w[j + 1] = (buf[d + (i >> 3)] >> (i & 7)) & 1
                w[j + 2] = 0
                w[j + 3] = 0
                k += 1
                if k == _CHUNK:
                    self._positions(req, a, k)
                    a += 2 * k
                    k = 0
            if k:
                self._positions(req, a, k)

    def _registers(self, req, buf, d):
        """The values in standard byte order into canon, then to the destinations."""
        c = self.canon
        count = req.count
        if req.reg_bool:
            for i in range(count):
                c[2 * i] = 0
                c[2 * i + 1] = 1 if buf[d + 2 * i] or buf[d + 2 * i + 1] else 0
        elif req.text or req.size == 1:
            for i in range(2 * count):
                c[i] = buf[d + i]
        else:
            w = req.width
            bs = req.bswap
            ws = req.wswap
            for i in range(req.values):
                datatypes.reorder(buf, d + 2 * w * i, c, 2 * w * i, w, bs, ws)
        if req.table == HOLDING:
            w = self.wbuf
            first = 0
            while first < count:
                k = count - first
                if k > _REGS:
                    k = _REGS
                a = req.address + first
                w[0] = 16
                w[1] = a >> 8
                w[2] = a & 0xFF
                w[3] = 0
                w[4] = k
                w[5] = 2 * k
                for i in range(2 * k):
                    w[6 + i] = c[2 * first + i]
                self._engine(req, 6 + 2 * k)
                first += k
        elif req.table == INPUT:
            self.model.put(INPUT, req.address, c, 0, count)
        if req.memory >= 0:
            self._memory(req, c)

    def _memory(self, req, c):
        """Each value of canon into its memory position(s), through the engine (FC16)."""
        w = self.wbuf
        size = req.size
        signed = req.order == 1
        a = req.memory
        k = 0
        n = req.count if req.text or req.reg_bool else req.values
        for i in range(n):
            j = 6 + 4 * k
            # The position's registers on the wire: lower half first, each high byte first.
            if req.text or req.reg_bool:
                w[j] = c[2 * i]
                w[j + 1] = c[2 * i + 1]
                w[j + 2] = w[j + 3] = 0
            elif size == 1:
                b = c[i]
                x = 0xFF if signed and b & 0x80 else 0
                w[j] = x
                w[j + 1] = b
                w[j + 2] = w[j + 3] = x
            elif size == 2:
                x = 0xFF if signed and c[2 * i] & 0x80 else 0
                w[j] = c[2 * i]
                w[j + 1] = c[2 * i + 1]
                w[j + 2] = w[j + 3] = x
            elif size == 4:
                s = 4 * i
                w[j] = c[s + 2]
                w[j + 1] = c[s + 3]
                w[j + 2] = c[s]
                w[j + 3] = c[s + 1]
            else:  # 64-bit: the lower 32 bits, then the upper
                s = 8 * i
                w[j] = c[s + 6]
                w[j + 1] = c[s + 7]
                w[j + 2] = c[s + 4]
                w[j + 3] = c[s + 5]
                k += 1
                if k == _CHUNK:
                    self._positions(req, a, k)
                    a += 2 * k
                    k = 0
                j = 6 + 4 * k
                w[j] = c[s + 2]
                w[j + 1] = c[s + 3]
                w[j + 2] = c[s]
                w[j + 3] = c[s + 1]
            k += 1
            if k == _CHUNK:
                self._positions(req, a, k)
                a += 2 * k
                k = 0
        if k:
            self._positions(req, a, k)

    def _positions(self, req, a, k):
        """wbuf[6:6 + 4k] into k memory positions from register a."""
        w = self.wbuf
        w[0] = 16
        w[1] = a >> 8
        w[2] = a & 0xFF
        w[3] = 0
        w[4] = 2 * k
        w[5] = 4 * k
        self._engine(req, 6 + 4 * k)

    def _engine(self, req, n):
        r = self.engine.handle(self.wbuf, 0, n, self.resp, 0)
        if r == 2 and self.resp[0] & 0x80:
            req.errors += 1
            if not req.warned:  # said once: the configuration (channels, onboard AO) decides it
                req.warned = True
                print("poller: server %s, request %s: this device refused the values (exception %d)"
                      % (req.server.name, req.name, self.resp[1]))

    # --- alarms

    def _alarm(self, a, req, buf, d):
        i = a.index
        if a.text is not None:
            v = datatypes.decode(req, buf, d)  # allocates: text
            met = (v == a.text) == (a.cond == _EQ)
        else:
            kb = self.kbuf
            if req.fc <= 2:
                kb[0] = (buf[d + (i >> 3)] >> (i & 7)) & 1
                n = 1
                ok = True
            elif req.reg_bool:
                kb[0] = 1 if self.canon[2 * i] or self.canon[2 * i + 1] else 0
                n = 1
                ok = True
            else:
                n = req.size
                c = self.canon
                for j in range(n):
                    kb[j] = c[n * i + j]
                ok = order_key(kb, 0, n, req.order)
            if not ok or a.nan:
                met = a.cond == _NE
            else:
                r = compare(kb, 0, a.key, 0, n)
                cond = a.cond
                met = (r > 0 if cond == _GT else r < 0 if cond == _LT else r == 0 if cond == _EQ else
                       r != 0 if cond == _NE else r <= 0 if cond == _LE else r >= 0)
        was = a.was
        a.was = met
        now = time.ticks_ms()
        if a.acted is not None and not 0 <= time.ticks_diff(now, a.acted) < a.quiet_ms:
            a.acted = None  # the period is over (forgotten now, before ticks_ms wraps round)
        if not met or (a.first and was):
            return
        if a.acted is not None:
            a.skipped += 1
            return
        a.acted = now
        a.fired += 1
        if a.write is not None:
            self._write(a)
        if a.out is not None:
            out = a.out
            if a.invert:
                a2 = (out[1] << 8) | out[2]
                out[3] = 0 if self.model.get_bit(COILS, a2) else 0xFF
            r = self.engine.handle(out, 0, 5, self.resp, 0)
            if r == 2 and not a.warned:
                a.warned = True
                print("poller: alarm %s: this device refused the output (exception %d)" % (a.name, self.resp[1]))
        if a.topic is not None and self.publish is not None:
            self.publish(a.topic, self.text.message(self, a, req, buf, d).encode(), a.retain)


def order_key(buf, off, n, order):
    """Turn the n big-endian bytes of a number at buf[off:] into bytes that compare (unsigned,
    first byte first) as the numbers do; in place, allocation-free. order: the type's
    (mbnode.pollbuild.order: 0 unsigned, 1 signed, 2 float).
    Signed integers: the sign bit flipped. Floats (n 4 or 8): negative ones all bits inverted,
    the others the sign bit set; -0.0 becomes +0.0. Returns False for a NaN (it compares with
    nothing)."""
    if order == 2:
        e = buf[off] & 0x7F
        if n == 4:
            top = e == 0x7F and buf[off + 1] & 0x80
            rest = buf[off + 1] & 0x7F
        else:
            top = e == 0x7F and buf[off + 1] & 0xF0 == 0xF0
            rest = buf[off + 1] & 0x0F
        for i in range(off + 2, off + n):
            rest |= buf[i]
        if top and rest:
            return False  # NaN
        if buf[off] & 0x80:
            if e == 0 and not rest and not (buf[off + 1] & (0x80 if n == 4 else 0xF0)):
                buf[off] = 0  # -0.0: +0.0
            else:
                for i in range(off, off + n):
                    buf[i] ^= 0xFF
                return True
        buf[off] ^= 0x80
    elif order == 1:
        buf[off] ^= 0x80
    return True


def compare(a, ao, b, bo, n):
    """-1, 0 or 1: a[ao:ao+n] against b[bo:bo+n], unsigned bytes, first byte first."""
    for i in range(n):
        x = a[ao + i]
        y = b[bo + i]
        if x != y:
            return -1 if x < y else 1
    return 0


def _load(txn, pdu, tcp):
    """The request pdu into txn: copied into its own buffer over TCP (the answer is read into
    it), pointed at over RTU."""
    if tcp:
        p = txn.pdu
        for i in range(len(pdu)):
            p[i] = pdu[i]
    else:
        txn.pdu = pdu
    txn.off = 0
    txn.n = len(pdu)


def _status_text(s, status, txn):
    if status == -1:
        return "not sent: the serial line is gone or a queue is full"
    if status == REFUSED:
        return "connection refused"
    if status == TIMEOUT:
        return "no answer within %d ms" % s.timeout_ms
    if status == BAD:
        return "malformed answers (%s)" % txn.why
    return txn.why or "not sent (status %d)" % status


def _polled(txn, status, buf, o, n):
    s = txn.user
    s.poller.done(s, status, buf, o, n)


def _written(txn, status, buf, o, n):
    a = txn.user
    a.pending = False
    s = a.target
    if status == OK and n >= 1 and not buf[o] & 0x80:
        a.writes += 1
    else:
        a.write_errors += 1
        print("poller: alarm %s: write to server %s: %s" % (a.name, s.name, "exception %d" % buf[o + 1]
                                                             if status == OK and n >= 2 else
                                                             _status_text(s, status, txn)))
    s.poller._next_write(s)


def start(loop, engine, model, masters, cfg):
    """The poller of the checked configuration on the loop; returns it. Its objects are made by
    mbnode.pollbuild, unloaded again afterwards (start-up code only: its RAM comes back)."""
    import sys

    import mbnode

    p = Poller(loop, engine, model, masters, cfg["identity"]["device_name"])
    from mbnode import pollbuild

    pollbuild.build(p, cfg["poller"])
    del sys.modules["mbnode.pollbuild"]
    delattr(mbnode, "pollbuild")
    return p
