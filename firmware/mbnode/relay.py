"""Where a gateway request (mbnode.gateway.Request) is executed, for the MQTT bridge.

Local requests (format 0 to this device's own Modbus TCP address, format 1 to its own unit id
while the serial port is its slave port) go to the Engine and are answered at once. Remote ones
run on the event loop without blocking it: a non-blocking Modbus TCP client (format 0, over a
persistent slot of format 2 when one is open to the same host and port) or the RTU master on
the serial port (rtu.mode "master"). One remote transaction runs at a time: the bridge queues
the rest and calls start() again when done() has handed back the reply of the last.
"""

import errno
import socket
import time

from mbnode import gateway
from mbnode.crc import crc16
from mbnode.fast import copy
from mbnode.gateway import CLOSE, CONN, OPEN, SERIAL, TCP

_ADU = 260
_POLLIN = 1
_POLLOUT = 4
_SLOTS = 8
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN)


def _rtu_response_length(buf, n):
    # The frames a gateway request can get back: exception, FC01-04 with a byte count, or
    # the 8-byte echo of FC05/06/15/16. 0: more bytes needed.
    if n < 3:
        return 0
    fc = buf[1]
    if fc & 0x80:
        return 5
    return 5 + buf[2] if fc <= 4 else 8


class _Conn:
    """A Modbus TCP connection to another server: a slot of format 2, or the one for format-0
    requests to a target without an open slot (closed after each answer)."""

    def __init__(self, relay, slot):
        self.relay = relay
        self.slot = slot
        self.sock = None
        self.host = self.port = None
        self.opening = False
        self.last = None  # (ip_type, host, port, timeout) of the last OPEN with a target (slots)

    def connect(self, req):
        """Start connecting to req's target; an error reply line when that fails at once."""
        self.close()
        self.host, self.port = req.host, req.port
        try:
            ai = socket.getaddrinfo(req.host, req.port)[0]
        except OSError as e:
            return gateway.unreachable(req, "cannot resolve %s (%s)" % (req.host, _why(e)))
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.args[0] not in _IN_PROGRESS:
                s.close()
                return _connect_error(req, e)
        self.sock = s
        self.opening = True
        self.relay.loop.add(s, self, _POLLOUT)
        return None

    def close(self):
        if self.sock is not None:
            self.relay.loop.remove(self.sock)
            self.sock.close()
            self.sock = None
        self.opening = False

    def on_event(self, sock, events):
        relay = self.relay
        mine = relay.conn is self and relay.req is not None
        if self.opening:
            self.opening = False
            if events & 0x18:  # POLLERR | POLLHUP: the connect failed; reading tells why
                try:
                    sock.read(1)
                    e = OSError(errno.ECONNREFUSED)
                except OSError as x:
                    e = x
                self.close()
                if mine:
                    relay.done(_connect_error(relay.req, e))
                return True
            relay.loop.modify(sock, _POLLIN)  # connected: wait for the answer
            if mine:
                relay.connected()
            return mine  # a finished request may have started the next one: the poll set changed
        try:
            n = sock.readinto(relay.scratch, _ADU - relay.fill if mine else _ADU)
        except OSError:
            n = 0
        if n is None:
            return False
        if not n:
            self.close()
            if mine:
                relay.done(gateway.error(relay.req, "connection closed by %s before the response"
                                         % _where(self)))
            return True
        if mine:
            copy(relay.rx, relay.fill, relay.scratch, 0, n)
            relay.fill += n
            relay.tcp_received()
        return mine  # bytes on an idle slot (a late answer) are dropped


def _where(conn):
    return "%s:%d" % (conn.host, conn.port)


def _why(e):
    code = e.args[0] if e.args else 0
    return errno.errorcode.get(code, str(code)) if type(code) is int else str(code)


def _connect_error(req, e):
    if e.args and e.args[0] == errno.ECONNREFUSED:
        return gateway.refused(req)
    return gateway.unreachable(req, _why(e))


class Relay:
    def __init__(self, loop, engine, unit_id, own_tcp, port, t35_us, finish):
        """own_tcp: the (hosts, port, board addresses) that are this device's Modbus TCP slave,
        or None; the board's address list is the board's own, updated in place (Wi-Fi comes late);
        port: the serial port in master mode (board.open_rtu), or None, and t35_us its t3.5;
        finish(line): called with the reply of a remote request."""
        self.loop = loop
        self.engine = engine
        self.unit_id = unit_id
        self.own_tcp = own_tcp
        self.port = port
        self.finish = finish
        self.tx = bytearray(_ADU)
        self.rx = bytearray(_ADU)
        # Bytes read and used (copied or dropped) at once, never kept across calls: also where
        # the MQTT bridge drops the bytes of a message it refuses (mbnode.mqtt._Wire).
        self.scratch = bytearray(_ADU)
        self.fill = 0
        self.tid = 0
        self.req = None
        self.conn = None
        self.deadline = 0
        self.slots = [_Conn(self, i) for i in range(_SLOTS)]
        self.transient = _Conn(self, -1)
        self.master = port is not None
        self.t35_us = t35_us
        self.line_free = 0  # ticks_us from which the next RTU request may go
        if port is not None:
            loop.add(port.stream, _SerialReader(self))
        loop.add_timer(self)

    @property
    def busy(self):
        return self.req is not None

    def start(self, req):
        """Execute req: its reply line when known at once, else None (done() follows)."""
        if req.kind == CONN:
            slot = self.slots[req.index]
            if req.action == CLOSE:
                slot.close()
                return gateway.ok(req)
            if req.action != OPEN:
                return gateway.status(req, slot.sock is not None and not slot.opening)
            if req.host is None:  # "2 C N 0": reopen with the last OPEN's target, as the seed says
                if slot.last is None:
                    return gateway.never_opened(req)
                req.ip_type, req.host, req.port, req.timeout = slot.last
            else:  # kept whether or not this connect succeeds: a reopen retries it
                slot.last = (req.ip_type, req.host, req.port, req.timeout)
            return self._remote(req, slot)
        if req.count == 0:
            return gateway.format_response(req, None, 0)
        if req.kind == TCP:
            own = self.own_tcp
            if own is not None and req.port == own[1] and (req.host in own[0] or req.host in own[2]):
                return self._local(req)
            for slot in self.slots:
                if slot.sock is not None and slot.host == req.host and slot.port == req.port:
                    return self._remote(req, slot)
            return self._remote(req, self.transient)
        if not self.master:
            return self._local(req)
        if self.port is None:
            return gateway.no_serial_device(req)
        return self._remote(req, None)

    def _local(self, req):
        if self.unit_id and req.unit != self.unit_id:
            if req.kind == SERIAL:
                return gateway.slave_port(req, self.unit_id)
            return gateway.no_such_server(req, self.unit_id)
        n = gateway.build_pdu(req, self.tx, 0)
        n = self.engine.handle(self.tx, 0, n, self.rx, 0)
        return gateway.format_response(req, self.rx, n, 0)

    def _remote(self, req, conn):
        self.req = req
        self.conn = conn
        self.fill = 0
        self.deadline = time.ticks_add(time.ticks_ms(), 1000 * req.timeout)
        if conn is None:
            return self._send_rtu()
        if conn.sock is None or req.kind == CONN:
            line = conn.connect(req)
            if line is not None:
                self.req = None
                return line
            return None
        if conn.opening:
            return None
        return self._send_tcp()

    def done(self, line):
        if self.port is not None and self.req.kind == SERIAL:
            self.line_free = time.ticks_add(time.ticks_us(), self.t35_us)
        if self.conn is self.transient:
            self.transient.close()
        self.req = self.conn = None
        self.finish(line)

    def connected(self):
        if self.req.kind == CONN:
            self.done(gateway.ok(self.req))
            return
        line = self._send_tcp()
        if line is not None:
            self.done(line)

    def _send_tcp(self):
        req = self.req
        n = gateway.build_pdu(req, self.tx, 7)
        self.tid = (self.tid + 1) & 0xFFFF
        tx = self.tx
        tx[0] = self.tid >> 8
        tx[1] = self.tid & 0xFF
        tx[2] = tx[3] = 0
        tx[4] = (n + 1) >> 8
        tx[5] = (n + 1) & 0xFF
        tx[6] = req.unit
        try:
            sent = self.conn.sock.write(tx, n + 7) or 0
        except OSError as e:
            sent = -1
            why = _why(e)
        if sent != n + 7:
            self.conn.close()
            self.req = None
            return gateway.error(req, "cannot send to %s: %s" % (_where(self.conn),
                                                                   why if sent < 0 else "send buffer full"))
        return None

    def tcp_received(self):
        rx = self.rx
        while self.fill >= 7:
            length = (rx[4] << 8) | rx[5]
            if rx[2] or rx[3] or length < 2 or length > 254:
                self.conn.close()
                self.done(gateway.error(self.req, "malformed Modbus TCP response from %s" % _where(self.conn)))
                return
            end = 6 + length
            if self.fill < end:
                return
            if ((rx[0] << 8) | rx[1]) == self.tid:
                self.done(gateway.format_response(self.req, rx, length - 1, 7))
                return
            # An answer to an earlier request that timed out on this slot: skip it.
            self.fill -= end
            copy(rx, 0, rx, end, self.fill)

    # --- RTU master on the serial port

    def _send_rtu(self):
        req = self.req
        tx = self.tx
        tx[0] = req.unit
        n = 1 + gateway.build_pdu(req, tx, 1)
        c = crc16(tx, 0, n)
        tx[n] = c & 0xFF
        tx[n + 1] = c >> 8
        port = self.port
        while port.readinto(self.scratch, _ADU):
            pass  # whatever came late or unasked is not this request's answer
        wait = time.ticks_diff(self.line_free, time.ticks_us())
        if 0 < wait <= self.t35_us:  # t3.5 after the last frame on the line
            time.sleep_us(wait)
        port.send(tx, n + 2)
        return None

    def serial_received(self, n):
        """n bytes from the port are in scratch."""
        if self.req is None or self.req.kind != SERIAL or self.fill + n > _ADU:
            return  # nobody asked (a late answer, noise) or too long: dropped
        copy(self.rx, self.fill, self.scratch, 0, n)
        self.fill += n
        rx = self.rx
        want = _rtu_response_length(rx, self.fill)
        if want == 0 or self.fill < want:
            return
        if rx[0] != self.req.unit or crc16(rx, 0, want) != 0:
            line = gateway.error(self.req, "malformed response on serial device %s: %s" % (
                self.req.device, "wrong address" if rx[0] != self.req.unit else "CRC error"))
        else:
            line = gateway.format_response(self.req, rx, want - 3, 1)
        self.done(line)

    # --- loop timer: the request's TIMEOUT

    def due_in(self, now):
        if self.req is None:
            return -1
        d = time.ticks_diff(self.deadline, now)
        return d if d > 0 else 0

    def tick(self, now):
        req = self.req
        if req is not None and time.ticks_diff(now, self.deadline) >= 0:
            conn = self.conn
            if conn is not None and (conn.opening or req.kind == CONN):
                conn.close()  # a connect that did not finish in time
            self.done(gateway.timeout(req))


class _SerialReader:
    # The serial port's poll handler in master mode.
    def __init__(self, relay):
        self.relay = relay

    def on_event(self, stream, events):
        relay = self.relay
        if events & 0x18:
            relay.loop.remove(stream)
            relay.port = None
            return True
        n = relay.port.readinto(relay.scratch, _ADU)
        if n:
            relay.serial_received(n)
        return n > 0
