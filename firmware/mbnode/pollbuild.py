"""Start-up only: the poller's objects (mbnode.poller's Server, Request and Alarm) made from the
checked poller section (mbnode.pollconfig), with their PDUs, transactions, order keys and links.
mbnode.poller.start loads it and unloads it again once the poller is built, so its code takes no
RAM while the device runs; startup.build asks line_slots() for the serial line's queue first."""

import struct
import time

from mbnode import datatypes, typenames
from mbnode.memory32 import mem_register
from mbnode.pdu import put_head
from mbnode.typenames import TABLES
from mbnode.poller import Alarm, Request, Server, _polled, _written, order_key
from mbnode.transaction import ADU, Transaction

_CONDITIONS = (">", "<", "==", "!=", "<=", ">=")  # mbnode.poller's _GT.._GE


def line_slots(p, name):
    """Room the poller (p: the checked poller section) needs in the queue of serial line `name`
    (startup.build sizes each RtuMaster from its users): each enabled server's poll on the line, and
    the write of each one alarms write to (one at a time per server)."""
    if not p["enabled"]:
        return 0
    on = [s["name"] for s in p["servers"] if s.get("line") == name and s["enabled"]]
    return len(on) + len([n for n in on if [a for a in p["alarms"] if "write" in a and a["write"]["server"] == n]])


def request(server, d):
    """A poller.Request for d (a checked request); its fields, used by mbnode.poller and
    mbnode.polltext."""
    self = Request()
    self.server = server
    self.name = d["name"]
    fc = self.fc = d["function"]
    self.number = d["first"]  # the register NUMBER, 1-based (%mr)
    count = self.count = d["count"]
    t = d["type"] if fc >= 3 else "bool"
    typenames.setup(self, t, d.get("byte_order", "BE"), d.get("word_order", "BE"), False, count)
    self.size = typenames.TYPES[t][1]  # bytes of one value (0: bool, text)
    self.order = order(self.fmt)
    self.text = t in typenames.TEXT
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
    self.table = TABLES[d["table"]][0] if "table" in d else -1
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
    return self


def alarm(d, req, targets, name):
    """A poller.Alarm for d (a checked alarm) on req; targets: server name -> Server."""
    self = Alarm()
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
        v = datatypes.check(req, d["value"])  # bool (functions 1, 2 too): 1 byte
        self.key = bytearray([1 if v else 0] if req.type == "bool" else struct.pack(req.fmt, v))
        self.nan = not order_key(self.key, 0, len(self.key), req.order)
    self.write = None  # the write request's PDU
    w = d.get("write")
    if w is not None:
        target = self.target = targets[w["server"]]
        self.write = _write_pdu(w)
        self.pending = False  # queued on its server or on its way
        self.writes = self.write_errors = 0
        target.writers.append(None)  # room in the server's queue of writes
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
    return self


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
    put_head(pdu, fc, a, n)
    return pdu


class _Layout:
    def __init__(self, t, byte_order, word_order):
        typenames.setup(self, t, byte_order, word_order)


def order(fmt):
    """How a number's big-endian bytes order (mbnode.poller.order_key): 0 unsigned (and bool, text), 1 signed,
    2 float."""
    return 0 if fmt is None or fmt[1] in "BHIQ" else 2 if fmt[1] in "fd" else 1


def _transaction(s, done):
    # Over TCP the answer is read into the transaction's own buffer (mbnode.tcpmaster): it holds
    # a whole frame and the request is copied in before each send; over RTU it points at the
    # request's own PDU.
    t = Transaction(done, ADU if s.line is None else 0)
    t.user = s
    t.unit = s.unit
    t.timeout_ms = s.timeout_ms
    t.host = s.host
    t.port = s.port
    return t


def server(poller, d):
    """A poller.Server for d (a checked server), with its enabled requests."""
    self = Server()
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
    self.requests = [request(self, r) for r in d["requests"] if r["enabled"]]
    self.link = None  # TcpLink (polled TCP server), RtuMaster (serial line), or None: the TCP pool
    self.txn = _transaction(self, _polled)
    self.wtxn = None  # the alarms' writes, one at a time (made when an alarm writes to it)
    self.writers = []  # alarms whose writes wait for wtxn, a ring of one place per alarm
    self.wfirst = self.wcount = 0
    self.state = 0  # mbnode.poller._IDLE
    self.due = 0  # ticks_ms: the next round (_IDLE) or the end of delay_ms (_DELAY)
    self.began = 0  # ticks_ms: when this round began
    self.i = 0  # the request of this round on its way
    self.up = None  # True answering, False not, None not asked yet
    self.rounds = self.answers = self.timeouts = self.failures = 0
    return self


def build(poller, p):
    """Fill poller (an empty mbnode.poller.Poller) from p, the checked poller section: its
    enabled servers, their links (a TcpLink of its own for a polled TCP server, the line's
    RtuMaster for an RTU one, none for a TCP server only written to: the pool), and the enabled
    alarms on enabled requests. Every server's first round is due at once."""
    masters = poller.masters
    poller.servers = [server(poller, s) for s in p["servers"] if s["enabled"]]
    targets = {}
    for s in poller.servers:
        targets[s.name] = s
    for i, a in enumerate(p["alarms"]):
        s = targets.get(a["server"])
        req = [r for r in s.requests if r.name == a["request"]] if s is not None else ()
        if a["enabled"] and req:  # an alarm on a request that is off never acts
            x = alarm(a, req[0], targets, a.get("name") or "alarm%d" % (i + 1))
            req[0].alarms.append(x)
            poller.alarms.append(x)
    now = time.ticks_ms()
    for s in poller.servers:
        if s.writers:
            s.wtxn = _transaction(s, _written)
        if s.line is not None:
            s.link = masters.rtu(s.line)
        elif s.requests:
            s.link = masters.tcp().link(2)  # a poll and a write
            s.link.target(s.host, s.port)
            s.link.reset_after = s.reset_after or 0x3FFFFFFF
        s.due = now
