"""The poller: other Modbus servers read on a period, their values typed and landed in this
device's own map, and alarms on them (seeds/000's Modbus client; docs/master.md, "Poller and
alarms"). Loaded only when poller.enabled is true; app.build hands it the masters, the engine
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
and discrete inputs through DataModel.put_regs/put_bits.

Alarms compare one value of a request with a constant after every answer to it: the value's
bytes and the constant's are compared as order keys (mbnode.datatypes.order_key), so no number
object is made. Frequency "every" acts on each answer that meets the condition, "first" only on
the first after one that did not; redundancy_s keeps an alarm from acting again for that long.
Actions: a Modbus write to a server (one outstanding per alarm), a local output set through the
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
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, mem_register
from mbnode.transaction import BAD, OK, REFUSED, TIMEOUT, Transaction

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
_CONDITIONS = (">", "<", "==", "!=", "<=", ">=")
_TABLE = {"coil": COILS, "discrete": DISCRETE_INPUTS, "holding": HOLDING, "input": INPUT}


def line_slots(p):
    """Room a poller configuration (the checked poller section) needs in a serial line's queue
    (app.build sizes the RtuMaster from its users): each RTU server's poll, and each alarm
    writing to an RTU server."""
    if not p["enabled"]:
        return 0
    rtu = [s["name"] for s in p["servers"] if "line" in s and s["enabled"]]
    return len(rtu) + len([a for a in p["alarms"] if "write" in a and a["write"]["server"] in rtu])


class Request:
    def __init__(self, server, d):
        self.server = server
        self.name = d["name"]
        fc = self.fc = d["function"]
        self.number = d["first"]  # the register NUMBER, 1-based (%mr)
        count = self.count = d["count"]
        t = d["type"] if fc >= 3 else "bool"
        datatypes.setup(self, t, d.get("byte_order", "BE"), d.get("word_order", "BE"), False, count)
        self.text = t in datatypes.TEXT
        self.reg_bool = fc >= 3 and t == "bool"
        if fc <= 2 or t == "bool":
            self.values, self.per = count, 1
        elif self.text:
            self.values, self.per = 1, count
        elif self.size == 1:
            self.values, self.per = 2 * count, 1
        else:
            self.values, self.per = count // self.width, self.width
        a = self.number - 1
        self.pdu = bytearray((fc, a >> 8, a & 0xFF, count >> 8, count & 0xFF))
        self.answer = 2 + ((count + 7) >> 3 if fc <= 2 else 2 * count)  # the answer PDU's length
        self.memory = mem_register(d["memory"]) if "memory" in d else -1
        self.table = _TABLE[d["table"]] if "table" in d else -1
        self.address = d.get("address", 0)
        self.point = d.get("point")
        self.topic = None
        self.every_ms = 1000 * d.get("every_s", 0)
        self.seen = bytearray(self.answer) if self.point else None  # the answer last published
        self.published = None  # ticks_ms of that publish
        self.alarms = []
        self.failing = False  # the last answer was an exception or malformed
        self.warned = False  # a local write of its values was refused (said once)
        self.answers = self.errors = 0


class Alarm:
    def __init__(self, poller, d, req, targets, name):
        self.name = name
        self.req = req
        self.index = d["index"]
        self.cond = _CONDITIONS.index(d["condition"])
        self.first = d["frequency"] == "first"
        self.quiet_ms = 1000 * d["redundancy_s"]
        self.was = False  # the condition at the last answer
        self.acted = None  # ticks_ms of the last action, None: never
        self.fired = self.skipped = 0
        # The constant, as an order key of the value's size (text: as text).
        self.text = None
        self.key = None
        if req.text:
            self.text = d["value"]
        else:
            be = datatypes.big_endian(req, d["value"])  # bool (functions 1, 2 too): 1 byte
            self.key = bytearray(be)
            self.nan = not datatypes.order_key(self.key, 0, len(be), req.order)
        self.write = None
        w = d.get("write")
        if w is not None:
            target = targets[w["server"]]
            self.write = Transaction(_written, 0)
            self.write.user = self
            self.target = target
            self.write.unit = target.unit
            self.write.timeout_ms = target.timeout_ms
            self.write.host = target.host
            self.write.port = target.port
            self.write.pdu = _write_pdu(w)
            self.write.n = len(self.write.pdu)
            self.writes = self.write_errors = 0
            target.writers += 1
        self.out = None
        o = d.get("output")
        if o is not None:
            a = o["address"]
            if o["table"] == "coil":
                self.out = bytearray((5, a >> 8, a & 0xFF, 0 if o["set"] == "off" else 0xFF, 0))
                self.invert = o["set"] == "invert"
            else:
                v = o["value"]
                self.out = bytearray((6, a >> 8, a & 0xFF, v >> 8, v & 0xFF))
                self.invert = False
        self.warned = False  # the output was refused (said once)
        m = d.get("mqtt")
        self.mqtt = m["topic"] if m else None  # the topic, until attach() makes it bytes
        self.message = m["message"] if m else None
        self.retain = m["retain"] if m else False
        self.topic = None


def _write_pdu(w):
    fc = w["function"]
    a = w["first"] - 1
    if "type" in w:
        layout = _Layout(w["type"], w["byte_order"], w.get("word_order", "BE"))
        vals = datatypes.encode(layout, w["value"])
    else:
        vals = w["values"]
    n = len(vals)
    if fc == 5:
        return bytearray((5, a >> 8, a & 0xFF, 0xFF if vals[0] else 0, 0))
    if fc == 6:
        return bytearray((6, a >> 8, a & 0xFF, vals[0] >> 8, vals[0] & 0xFF))
    if fc == 15:
        pdu = bytearray(6 + ((n + 7) >> 3))
        for i, v in enumerate(vals):
            if v:
                pdu[6 + (i >> 3)] |= 1 << (i & 7)
        pdu[5] = (n + 7) >> 3
    else:
        pdu = bytearray(6 + 2 * n)
        for i, v in enumerate(vals):
            pdu[6 + 2 * i] = v >> 8
            pdu[7 + 2 * i] = v & 0xFF
        pdu[5] = 2 * n
    pdu[0] = fc
    pdu[1] = a >> 8
    pdu[2] = a & 0xFF
    pdu[3] = n >> 8
    pdu[4] = n & 0xFF
    return pdu


class _Layout:
    def __init__(self, t, byte_order, word_order):
        datatypes.setup(self, t, byte_order, word_order)


class Server:
    def __init__(self, poller, d):
        self.poller = poller
        self.name = d["name"]
        self.unit = d["unit"]
        self.timeout_ms = d["timeout_ms"]
        self.period_ms = d["period_ms"]
        self.host = d.get("host")
        self.port = d.get("port", 502)
        self.line = d.get("line")
        self.where = self.line if self.line else self.host  # %ma
        self.delay_ms = d.get("delay_ms", 0)
        self.reconnect = d.get("always_reconnect", False)
        self.reset_after = d.get("reset_after", 1)
        self.requests = [Request(self, r) for r in d["requests"] if r["enabled"]]
        self.link = None  # TcpLink (polled TCP server), RtuMaster (serial line), or None: the TCP pool
        self.txn = Transaction(_polled, 0)
        self.txn.user = self
        self.txn.unit = self.unit
        self.txn.timeout_ms = self.timeout_ms
        self.txn.host = self.host
        self.txn.port = self.port
        self.writers = 0  # alarms writing to this server
        self.state = _IDLE
        self.due = 0  # ticks_ms: the next round (_IDLE) or the end of delay_ms (_DELAY)
        self.began = 0  # ticks_ms: when this round began
        self.i = 0  # the request of this round on its way
        self.up = None  # True answering, False not, None not asked yet
        self.rounds = self.answers = self.timeouts = self.failures = 0

    def submit(self, txn):
        """txn on this server's link, line or the TCP pool; False when it could not be queued."""
        link = self.link
        if link is not None:
            return link.submit(txn)
        if self.line is not None:
            return False  # the serial line is not there (it closed)
        return self.poller.masters.tcp().submit(txn)


class Poller:
    def __init__(self, loop, engine, model, masters, p, device_name):
        """p: the checked poller section; masters: mbnode.masters.Masters."""
        self.loop = loop
        self.engine = engine
        self.model = model
        self.masters = masters
        self.device_name = device_name
        self.servers = [Server(self, s) for s in p["servers"] if s["enabled"]]
        targets = {}
        for s in self.servers:
            targets[s.name] = s
        self.alarms = []
        for i, a in enumerate(p["alarms"]):
            s = targets.get(a["server"])
            req = [r for r in s.requests if r.name == a["request"]] if s is not None else ()
            if a["enabled"] and req:  # an alarm on a request that is off never acts
                alarm = Alarm(self, a, req[0], targets, a.get("name") or "alarm%d" % (i + 1))
                req[0].alarms.append(alarm)
                self.alarms.append(alarm)
        now = time.ticks_ms()
        for s in self.servers:
            if s.line is not None:
                s.link = masters.rtu(s.line)
            elif s.requests:
                s.link = masters.tcp().link(1 + s.writers)
                s.link.target(s.host, s.port)
                s.link.reset_after = s.reset_after or 0x3FFFFFFF
            s.due = now
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
                t = time.ticks_diff(s.due, now)
                if t < 0:
                    t = 0
                if d < 0 or t < d:
                    d = t
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
            txn.pdu = s.requests[s.i].pdu
            txn.n = 0  # connect only
            s.state = _CONNECTING
            if not link.submit(txn):
                self._failed(s, -1)
            return
        self._send(s)

    def _send(self, s):
        txn = s.txn
        req = s.requests[s.i]
        txn.pdu = req.pdu
        txn.off = 0
        txn.n = 5
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
            self.model.put_bits(DISCRETE_INPUTS, req.address, buf, d, count)
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
            self.model.put_regs(INPUT, req.address, c, 0, count)
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
                ok = datatypes.order_key(kb, 0, n, req.order)
            if not ok or a.nan:
                met = a.cond == _NE
            else:
                r = datatypes.compare(kb, 0, a.key, 0, n)
                cond = a.cond
                met = (r > 0 if cond == _GT else r < 0 if cond == _LT else r == 0 if cond == _EQ else
                       r != 0 if cond == _NE else r <= 0 if cond == _LE else r >= 0)
        was = a.was
        a.was = met
        if not met or (a.first and was):
            return
        now = time.ticks_ms()
        if a.quiet_ms and a.acted is not None and time.ticks_diff(now, a.acted) < a.quiet_ms:
            a.skipped += 1
            return
        a.acted = now
        a.fired += 1
        if a.write is not None:
            if a.write.busy or not a.target.submit(a.write):
                a.write_errors += 1
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
    if status == OK and n >= 1 and not buf[o] & 0x80:
        a.writes += 1
        return
    a.write_errors += 1
    print("poller: alarm %s: write to server %s: %s" % (a.name, a.target.name, "exception %d" % buf[o + 1]
                                                         if status == OK and n >= 2 else
                                                         _status_text(a.target, status, txn)))


def start(loop, engine, model, masters, cfg):
    """The poller of the checked configuration on the loop; returns it."""
    return Poller(loop, engine, model, masters, cfg["poller"], cfg["identity"]["device_name"])
