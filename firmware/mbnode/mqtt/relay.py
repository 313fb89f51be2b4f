"""Where the MQTT gateway's requests (mbnode.mqtt.textproto.Request) are executed.

Local requests (format 0 to this device's own Modbus TCP address, format 1 to its own unit id
while the serial port is its slave port) go to the Engine and are answered at once: they never
wait behind remote ones. Remote requests run on the shared masters (mbnode.masters), up to
`jobs` at once, each in a job (a transaction with its PDU buffer; mbnode.mqtt.jobs, loaded and
made, all of them at once, at the first request that needs one, and kept: a gateway that only
answers this device's own requests never loads it):
  * format 0: the TCP master (mbnode.tcpmaster, made at the first remote format-0 or format-2
    request: a device whose gateway only answers its own requests never loads it); requests to
    different servers run at the same time, requests to one server one after the other (over the
    format-2 connection slot open to that server, if there is one, else over a pool connection);
  * format 1: the RTU master of the serial line (mbnode.rtumaster), whose queue every master
    user of the line shares;
  * format 2: connection slot N is a TcpLink of its own, made when first opened.
A reply is handed to finish(line) when its request is done, in the order they finish.
"""

from mbnode.mqtt import textproto
from mbnode.mqtt.textproto import CLOSE, CONN, OPEN, SERIAL, TCP
from mbnode.scratch import SCRATCH


class Relay:
    def __init__(self, engine, unit_id, own_tcp, masters, slave_line, finish, jobs=4, loop=None):
        """own_tcp: the (hosts, port, board addresses) that are this device's Modbus TCP slave,
        or None; the board's address list is the board's own, updated in place (Wi-Fi comes late);
        masters: mbnode.masters.Masters (format 1 to a line in master mode goes to its RTU
        master), or None when no other part needed one (no line in master mode): then it is
        made on loop at the first remote format-0 or format-2 request (_masters); slave_line: the name of the line this device is a slave on, or None (not kept:
        format 1 to any device that is not a master line's, that one included, is answered
        locally as on a slave port, as before there were lines); finish(line): called with a
        remote request's reply; jobs: remote requests at once."""
        self.engine = engine
        self.unit_id = unit_id
        self.own_tcp = own_tcp
        self.masters = masters
        self.loop = loop
        self.finish = finish
        # Where the MQTT bridge drops the bytes of a message it refuses (mbnode.mqtt.bridge._Wire):
        # the device's scratch buffer (mbnode.scratch), read and dropped at once.
        self.scratch = SCRATCH
        self.parallel = jobs
        self.jobs = None  # mbnode.mqtt.jobs.Jobs, made at the first request that needs a job (_jobs)

    @property
    def busy(self):
        """No job is free: a remote request has to wait (never before the jobs are made)."""
        jobs = self.jobs
        return jobs is not None and not jobs.free

    def _masters(self):
        """The masters; made at the first call when startup.build had none (the gateway of a device
        without a master line reaches other devices only over TCP). A MemoryError here leaves
        nothing made: the request is answered "out of memory" (the bridge)."""
        masters = self.masters
        if masters is None:
            from mbnode.masters import Masters

            masters = self.masters = Masters(self.loop)
        return masters

    def _line(self, req):
        # The RTU master of req's serial device, or None (no masters yet: no master line either).
        masters = self.masters
        return None if masters is None else masters.rtu(req.device)

    def _jobs(self):
        """The jobs; at the first call their module is loaded and all of them are made, and
        kept. A MemoryError here leaves none made: the request that asked is answered "out of
        memory" (the bridge) and the next one tries again."""
        jobs = self.jobs
        if jobs is None:
            from mbnode.mqtt.jobs import Jobs

            jobs = self.jobs = Jobs(self, self.parallel)
        return jobs

    def is_remote(self, req):
        """req needs a job (it goes to another device, or writes extension modules' outputs)."""
        if req.kind == CONN:
            return req.action == OPEN
        if req.count == 0:
            return False
        if req.kind == TCP:
            other = not self._own(req)  # another server
        else:
            other = self._line(req) is not None  # a field device on a master line
        if other:
            return True
        # A write to extension modules' outputs (mbnode.extension) is answered once they have.
        remote = self.engine.remote
        return remote is not None and remote.waits(req.fc, req.address, req.count)

    def _own(self, req):
        own = self.own_tcp
        return own is not None and req.port == own[1] and (req.host in own[0] or req.host in own[2])

    def start(self, req):
        """Execute req: its reply line when known at once, else None (finish() follows).
        A remote request needs a free job (is_remote, busy)."""
        if req.kind == CONN:
            return self._conn(req)
        if req.count == 0:
            return textproto.format_response(req, None, 0)
        if req.kind == TCP:
            if self._own(req):
                return self._local(req)
            # The TCP master first (made at the first remote request): its MemoryError, answered
            # by the bridge, leaves the jobs as they were.
            master = self._masters().tcp()
            return self._jobs().tcp(req, master)
        line = self._line(req)
        if line is None:
            if self.masters is not None and req.device in self.masters.lines:  # a master line that has gone
                from mbnode.mqtt.refusals import no_serial_device

                return no_serial_device(req)
            return self._local(req)
        return self._jobs().serial(req, line)

    def _local(self, req):
        if self.unit_id and req.unit != self.unit_id:
            from mbnode.mqtt import refusals  # its MemoryError: "out of memory" (the bridge)

            if req.kind == SERIAL:
                return refusals.slave_port(req, self.unit_id)
            return refusals.no_such_server(req, self.unit_id)
        txn = None
        if self.engine.remote is not None:  # a write to extension modules: a job waits for it
            free = self._jobs().free
            if free:
                txn = free[-1]
        # The request PDU and, behind it, its answer in the device's scratch buffer
        # (mbnode.scratch): built and used up in this call; the Engine reads no socket or port
        # meanwhile. They fit together: a request the text protocol makes and its answer (or
        # exception) are at most 257 bytes (a read: 5 + 252; a write: 252 + 5).
        k = textproto.build_pdu(req, SCRATCH, 0)
        n = self.engine.handle(SCRATCH, 0, k, SCRATCH, k, txn, 3)  # pdu.SOURCE_MQTT
        if n == 0:  # pdu.PENDING: a write to extension modules; the job's done gets the answer
            txn.user = req
            self.jobs.free.pop()
            return None
        return textproto.format_response(req, SCRATCH, n, k)

    def _conn(self, req):
        if req.action == OPEN:
            return self._jobs().open(req, self._masters())
        link = None if self.jobs is None else self.jobs.slots[req.index]
        if req.action == CLOSE:
            if link is not None:
                link.close()
            return textproto.ok(req)
        return textproto.status(req, link is not None and link.is_open)
