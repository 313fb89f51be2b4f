"""The Modbus TCP-to-RTU gateway: Modbus TCP requests for other unit ids go out on the serial
line's RTU master and come back with the original MBAP header (transaction id and unit id as
the client sent them). Loaded only when gateway.enabled is true (docs/master.md).

Which requests: those whose unit id is in gateway.units; with gateway.units empty, every unit
id that is not this device's own (tcp.py's rules: unit_id, and 255 unless tcp.unit_255 is false).
Unit 0 (broadcast) only with gateway.broadcast: it goes out as an RTU broadcast and, as on a
serial line, nothing is answered.

How: the connection's request stays in its slot's buffer (the transaction points into it, so
a forwarded request costs no buffer of its own) and the connection is not read until it is
answered: at most one request per client waits for the bus, and the RTU master's FIFO serves
clients in turn. Answers:
  * the field device's answer PDU, exceptions included, as it came;
  * exception 0x0B (gateway target device failed to respond): no answer within
    gateway.timeout_ms, or only malformed ones (CRC, length);
  * exception 0x06 (server device busy): the master's queue is full;
  * exception 0x0A (gateway path unavailable): the serial line has gone.
A client that disconnects while its request waits takes it out of the queue (or, on the wire,
its answer is dropped).
"""

from mbnode.fast import copy
from mbnode.transaction import OK, SENT, FAILED, Transaction

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_POLLIN = const(1)
_BUSY = const(0x06)
_PATH_UNAVAILABLE = const(0x0A)
_NO_RESPONSE = const(0x0B)


class TcpGateway:
    def __init__(self, slave, master, cfg):
        """slave: the mbnode.tcp.TcpSlave; master: the line's mbnode.rtumaster.RtuMaster;
        cfg: the checked "gateway" section."""
        self.slave = slave
        self.master = master
        self.timeout_ms = cfg["timeout_ms"]
        self.broadcast = cfg["broadcast"]
        self.units = bytearray(256)  # 1: forwarded
        for u in cfg["units"]:
            self.units[u] = 1
        self.listed = bool(cfg["units"])
        for conn in slave.conns:
            conn.fwd = Transaction(self._done, 0)
            conn.fwd.user = conn
        # Counters (docs/master.md): forwarded, answered, exception 0x0B, 0x06, 0x0A.
        self.forwarded = self.answered = self.no_response = self.busy = self.unavailable = 0
        slave.forward = self

    def takes(self, unit, own):
        """Is a request for `unit` forwarded? own: it is this device's unit id."""
        if unit == 0:
            return self.broadcast
        if self.listed:
            return self.units[unit] == 1
        return not own

    def start(self, conn, length):
        """Forward the request in conn.rx[0:6 + length]."""
        txn = conn.fwd
        txn.pdu = conn.rx
        txn.off = 7
        txn.n = length - 1
        txn.unit = conn.rx[6]
        txn.timeout_ms = self.timeout_ms
        if not self.master.submit(txn):
            self._exception(conn, _BUSY if not self.master.closed else _PATH_UNAVAILABLE)
            return
        self.forwarded += 1
        self.slave.poll_for(conn, 0)  # not read until answered (a hang-up still reports)

    def cancel(self, conn):
        """conn closes: its request no longer waits for the bus."""
        if conn.fwd.busy:
            self.master.cancel(conn.fwd)

    def _done(self, txn, status, buf, o, n):
        conn = txn.user
        if conn.sock is None:
            return
        self.slave.poll_for(conn, _POLLIN)
        if status == SENT:  # a broadcast: no answer, as on the line
            return
        if status != OK:
            self._exception(conn, _PATH_UNAVAILABLE if status == FAILED else _NO_RESPONSE)
            return
        self.answered += 1
        tx = self.slave.tx
        copy(tx, 7, buf, o, n)
        self.slave.reply(conn, n)

    def _exception(self, conn, code):
        if code == _BUSY:
            self.busy += 1
        elif code == _NO_RESPONSE:
            self.no_response += 1
        else:
            self.unavailable += 1
        tx = self.slave.tx
        tx[7] = conn.rx[7] | 0x80
        tx[8] = code
        self.slave.reply(conn, 2)
