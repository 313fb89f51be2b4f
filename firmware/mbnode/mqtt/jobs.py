"""The MQTT gateway's remote requests in flight (mbnode.mqtt.relay): the jobs, `parallel`
transactions each with its 260-byte PDU buffer, and the 8 format-2 connection slots. Loaded and
made by the relay at the first request that needs a job (a remote one, a format-2 OPEN, a write
to extension modules' outputs), all at once, and kept: a gateway that only answers this device's
own requests never loads it. A request allocates no job: it takes a free one, and its end (done,
from the master) gives it back before the reply line goes to the relay's finish.
"""

from mbnode.mqtt import refusals, textproto
from mbnode.mqtt.textproto import CONN, SERIAL
from mbnode.transaction import BAD, FAILED, OK, REFUSED, SENT, TIMEOUT, Transaction, UNREACHABLE


class Jobs:
    def __init__(self, relay, parallel):
        """relay: its finish(line) gets each reply (read when the reply is made: the bridge
        sets it after the relay is made)."""
        self.relay = relay
        self.free = [Transaction(self._done) for _ in range(parallel)]  # the jobs not in use
        self.slots = [None] * 8  # TcpLink per format-2 slot (textproto: index 0..7), made when first opened
        self.last = [None] * 8  # (ip_type, host, port, timeout) of each slot's last OPEN

    def tcp(self, req, master):
        """Format 0 to another server: over the slot open to it, if there is one, else over the
        TCP master's pool. Its reply line when known at once, else None."""
        txn = self._job(req)
        for link in self.slots:
            if link is not None and link.is_open and link.host == req.host and link.port == req.port:
                return self._submit(req, txn, link.submit(txn))
        txn.host = req.host
        txn.port = req.port
        return self._submit(req, txn, master.submit(txn))

    def serial(self, req, line):
        """Format 1 to a serial line in master mode (its RtuMaster)."""
        txn = self._job(req)
        return self._submit(req, txn, line.submit(txn))

    def open(self, req, masters):
        """Format 2 OPEN of slot req.index (a reopen with the last target when req.host is None)."""
        i = req.index
        if req.host is None:  # "2 C N 0": reopen with the last OPEN's target, as the seed says
            if self.last[i] is None:
                return refusals.never_opened(req)
            req.ip_type, req.host, req.port, req.timeout = self.last[i]
        else:  # kept whether or not this connect succeeds: a reopen retries it
            self.last[i] = (req.ip_type, req.host, req.port, req.timeout)
        link = self.slots[i]
        if link is None:
            link = self.slots[i] = masters.tcp().link()
        if not link.idle:
            return textproto.error(req, "connection index %d is busy with a request" % i)
        link.close()
        link.target(req.host, req.port)
        txn = self._job(req)
        return self._submit(req, txn, link.submit(txn))

    def _job(self, req):
        txn = self.free[-1]
        txn.user = req
        txn.unit = req.unit
        txn.timeout_ms = 1000 * req.timeout if req.timeout else 1000
        txn.n = textproto.build_pdu(req, txn.pdu, 0) if req.kind != CONN else 0
        return txn

    def _submit(self, req, txn, taken):
        if not taken:
            txn.user = None
            return textproto.error(req, "queue full: the master's queue has no room, try again later")
        self.free.pop()
        return None

    def _done(self, txn, status, buf, o, n):
        req = txn.user
        txn.user = None
        self.free.append(txn)
        if status == OK:
            line = textproto.ok(req) if req.kind == CONN else textproto.format_response(req, buf, n, o)
        elif status == TIMEOUT:
            line = refusals.timeout(req)
        elif status == REFUSED:
            line = refusals.refused(req)
        elif status == UNREACHABLE:
            line = refusals.unreachable(req, txn.why)
        elif status == SENT:
            line = textproto.ok(req)
        elif status == BAD and req.kind == SERIAL:
            line = textproto.error(req, "malformed response on serial device %s: %s" % (req.device, txn.why))
        elif status == BAD or status == FAILED:
            line = textproto.error(req, txn.why)
        else:
            line = textproto.error(req, "not sent")
        self.relay.finish(line)
