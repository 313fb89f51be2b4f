"""One Modbus request that a master (mbnode.rtumaster, mbnode.tcpmaster) sends for one of its
users (the MQTT gateway, the TCP-to-RTU gateway, extension modules, the poller), and how it ended.

A user owns its transactions and reuses them: the request PDU is written into `pdu` in place
and the answer is handed to `done` in the master's own buffer, to be read there and then, so a
request allocates nothing. A transaction is in at most one master's queue at a time.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_PDU = const(253)
ADU = const(260)  # the largest Modbus TCP frame: what a transaction for the TCP master must hold

# How a transaction ended (the `status` given to done):
OK = const(0)  # an answer came: the PDU, an exception response included (pdu[0] & 0x80)
TIMEOUT = const(1)  # no fitting answer within timeout_ms
BAD = const(2)  # only malformed answers came (why says what was wrong: CRC, length, header)
FAILED = const(3)  # the request could not be sent (why: refused, unreachable, closed, ...)
FULL = const(4)  # the master's queue was full: never sent
SENT = const(5)  # a broadcast (unit 0 on RTU): sent, and no answer is to be had
REFUSED = const(6)  # TCP: the server refused the connection
UNREACHABLE = const(7)  # TCP: the connection could not be made otherwise (why: how)


class Transaction:
    """unit: 0..255 (0 on RTU: broadcast); pdu[off:off+n]: the request PDU, read when the
    request is sent (not when it is queued); timeout_ms: how long the
    answer may take once the request is on the wire (or, over TCP, from the connect on);
    host/port: the Modbus TCP server (TCP master only); done(txn, status, buf, o, n): called
    once, from the loop, with the answer PDU in buf[o:o+n] when status is OK."""

    def __init__(self, done, size=ADU):
        self.done = done
        # The request, and for the TCP master the answer too (read into it once the request
        # has gone); or a user's own buffer (e.g. a TCP connection's request, for RTU).
        self.pdu = bytearray(size)
        self.off = 0  # where the PDU starts in pdu
        self.n = 0
        self.unit = 0
        self.timeout_ms = 1000
        self.host = None
        self.port = 502
        self.why = None  # for BAD and FAILED: a short text saying what went wrong
        self.busy = False  # queued or on the wire: owned by a master until done is called
        self.user = None  # free for the transaction's owner (e.g. the request it serves)

    def finish(self, status, buf=None, o=0, n=0):
        """The master's last word on this transaction (the user's done, once)."""
        self.busy = False
        self.done(self, status, buf, o, n)
