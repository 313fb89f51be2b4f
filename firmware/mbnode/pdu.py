"""The PDU engine: one Modbus request PDU in, one response PDU out, written in place.

`Engine.handle(req, ro, n, resp, wo)` reads the request PDU req[ro:ro+n] (function code first)
and writes the response PDU to resp[wo:], returning its length. It allocates nothing for the
data function codes, so a transport can call it per request from preallocated buffers.

Checks run in the order libmodbus uses and the serial line spec states:
  01 unsupported function -> 03 quantity / byte count / length / value -> 02 address
  -> 03 values whose limit depends on the address (onboard AO is 10-bit) -> execute (04).
Any unexpected error while executing becomes exception 04, and so does a write whose output
subscribers (DataModel.outputs_written: pins and whatever else follows outputs) did not all take
it: the value is in the data model, every subscriber was called, one failed (its line printed).

Channels that live on other devices (extension modules, mbnode.extension) come through one
hook, `Engine.remote`, set by the part that owns them (the Engine never imports it): reads of a
module that is not online answer exception 0x0B; a write that touches a module's outputs is
handed to `remote.write`, and when the caller passed a `waiter` (handle's last argument: the
transport's context, an object with finish(status, buf, o, n) as mbnode.transaction.Transaction
has) handle returns PENDING and the answer PDU comes later, once, to waiter.finish(OK, buf, o,
n). Without a waiter (a broadcast, a frame that gets no reply) the write goes out all the same
and is answered as done. forget(waiter): the transport no longer wants that answer.

Who asks (handle's `source`): SOURCE_RTU, SOURCE_TCP (SOURCE_TCP_TRUSTED from a client whose
address the guard trusts), SOURCE_MQTT for a master's request that came on a transport, SOURCE_LOCAL (the default) for the device's own parts (MQTT telemetry's
scans, the poller landing values, fail-safe). Requests from a transport are counted
(`requests`, `exceptions`: each a 32-bit count kept in two 16-bit halves, so counting never
allocates) and are what fail-safe watches; writes from a transport are checked by `guard`.

Two more hooks, both None/empty unless an optional part sets them (the Engine imports neither):
- `blocks`: register blocks outside the channel map (the system registers, the custom register
  block). Only a request the map does not have is offered to them, so the map's hot path is
  unchanged: a block claims (table, first, count) when its `holds(table, first, count)` says so
  and then answers `read(table, first, count, buf, off)` / `write(first, count, src, so,
  source)`, each returning 0 or -exception. Whatever no block claims is exception 02.
- `guard`: write protection (mbnode.protect.Guard, with a "protect" section);
  `guard.refuses(table, first, count, source)` true makes a write from a transport exception 02
  before anything is written, to the map, a register block or extension modules' outputs
  (SOURCE_LOCAL is never refused); `guard.trusts(ip)` true makes a TCP client's requests
  SOURCE_TCP_TRUSTED (the TCP slave asks it once per connection).
"""

from mbnode import fast
from mbnode.datamodel import (
    AO_MAX,
    COILS,
    DISCRETE_INPUTS,
    HOLDING,
    INPUT,
    ONBOARD,
)

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ILLEGAL_FUNCTION = const(1)
_ILLEGAL_DATA_ADDRESS = const(2)
_ILLEGAL_DATA_VALUE = const(3)
SERVER_DEVICE_FAILURE = const(4)
_GATEWAY_TARGET_FAILED = const(0x0B)  # an extension module that is not online

# What handle() returns and takes as `source` (see the module docstring). The other modules use
# the numbers themselves, naming them in a comment (`2  # pdu.SOURCE_TCP`), so the names are
# private here (a public one would be a global of this module, RAM for a name nobody reads):
_PENDING = const(0)  # PENDING, handle(): the answer comes later, to the waiter
_SOURCE_LOCAL = const(0)  # SOURCE_LOCAL: the device's own parts: not counted, never refused
# SOURCE_RTU = 1, SOURCE_TCP = 2, SOURCE_MQTT = 3, and SOURCE_TCP_TRUSTED = 4: a TCP client on
# the write allow-list (the guard's `trusts`)

MAX_BITS = const(0x240)  # FC01/02/15 quantity limit (seeds/001)
MAX_READ_REGS = const(0x7D)  # FC03/04, FC23 read
MAX_WRITE_REGS = const(0x7B)  # FC16
_MAX_RW_WRITE_REGS = const(0x79)  # FC23 write


def put_head(b, fc, first, n):
    """A request PDU's first five bytes in b: the function code, then two 16-bit fields high
    byte first (the address, then the quantity or the value): what the device's own parts
    (io modes, extension modules, the poller) send."""
    b[0] = fc
    b[1] = first >> 8
    b[2] = first & 0xFF
    b[3] = n >> 8
    b[4] = n & 0xFF


def _u16(b, o):
    return (b[o] << 8) | b[o + 1]


class Engine:
    # Class defaults, an attribute of the engine's own only when the part that owns it sets it
    # (fewer members per engine):
    remote = None  # extension modules' channels (see the module docstring), or None
    guard = None  # write protection (see the module docstring), or None

    def __init__(self, model, ident):
        """model: DataModel; ident: DeviceIdentification (FC43/14, FC17)."""
        self.model = model
        self.ident = ident
        self.waiter = None  # handle()'s waiter, for the request being handled
        self.source = _SOURCE_LOCAL  # handle()'s source, for the request being handled
        self.blocks = []  # register blocks outside the map (see the module docstring)
        # Requests from transports and the exception answers among them, 32-bit counts in
        # 16-bit halves (a small int never grows into a long one on a 32-bit port).
        self.requests_lo = 0
        self.requests_hi = 0
        self.exceptions_lo = 0
        self.exceptions_hi = 0

    def count(self, exception):
        """One request from a transport answered (exception: with an exception). handle() counts
        its own; the RTU line calls this for the requests its diagnostics answer."""
        n = self.requests_lo + 1
        if n > 0xFFFF:
            n = 0
            self.requests_hi = (self.requests_hi + 1) & 0xFFFF
        self.requests_lo = n
        if exception:
            self.exception_late()

    def exception_late(self):
        """One more exception answer to a request from a transport: count() calls it, and so
        does the part that answers a PENDING request with an exception later (extension
        modules' write-through: 0x0B, 04), the request itself counted when handle() ran."""
        n = self.exceptions_lo + 1
        if n > 0xFFFF:
            n = 0
            self.exceptions_hi = (self.exceptions_hi + 1) & 0xFFFF
        self.exceptions_lo = n

    def block(self, table, first, count):
        """The register block outside the map that holds table[first:first + count], or None."""
        for b in self.blocks:
            if b.holds(table, first, count):
                return b
        return None

    def refused(self, table, first, count):
        """Does the guard refuse this write from the request's source?"""
        return self.source != _SOURCE_LOCAL and self.guard is not None and self.guard.refuses(
            table, first, count, self.source)

    def forget(self, waiter):
        """The transport no longer wants the answer it waits for with `waiter` (a connection
        closed): the write goes on, its answer is dropped."""
        if self.remote is not None:
            self.remote.forget(waiter)

    def handle(self, req, ro, n, resp, wo, waiter=None, source=_SOURCE_LOCAL):
        self.waiter = waiter
        self.source = source
        fc = req[ro]
        try:
            if fc == 3 or fc == 4:
                r = self._read_regs(fc, req, ro, n, resp, wo)
            elif fc == 1 or fc == 2:
                r = self._read_bits(fc, req, ro, n, resp, wo)
            elif fc == 16 or fc == 6:
                r = self._write_regs(fc, req, ro, n, resp, wo)
            elif fc == 5 or fc == 15:
                r = self._write_coils(fc, req, ro, n, resp, wo)
            elif fc == 23:
                r = self._read_write_regs(req, ro, n, resp, wo)
            elif fc == 22:
                r = self._mask_write(req, ro, n, resp, wo)
            elif fc == 43 or fc == 17:
                r = self.ident.handle(req, ro, n, resp, wo)
            elif fc == 8:
                r = self._echo(req, ro, n, resp, wo)
            else:
                r = -_ILLEGAL_FUNCTION
        except Exception:  # noqa: BLE001 - the slave answers 04 and keeps serving
            r = -SERVER_DEVICE_FAILURE
        if source != _SOURCE_LOCAL:
            self.count(r < 0)
        if r < 0:
            resp[wo] = fc | 0x80
            resp[wo + 1] = -r
            return 2
        return r

    def _echo(self, req, ro, n, resp, wo):
        # FC08 sub-function 0000 (return query data) answers on every transport; the serial
        # line's other sub-functions are LineDiagnostics' (mbnode.diag).
        if n < 3:
            return -_ILLEGAL_DATA_VALUE
        if req[ro + 1] or req[ro + 2]:
            return -_ILLEGAL_FUNCTION
        fast.copy(resp, wo, req, ro, n)
        return n

    def _read_bits(self, fc, req, ro, n, resp, wo):
        if n != 5:
            return -_ILLEGAL_DATA_VALUE
        qty = _u16(req, ro + 3)
        if qty < 1 or qty > MAX_BITS:
            return -_ILLEGAL_DATA_VALUE
        first = _u16(req, ro + 1)
        table = COILS if fc == 1 else DISCRETE_INPUTS
        model = self.model
        if not model.is_present(table, first, qty):
            return -_ILLEGAL_DATA_ADDRESS
        if self.remote is not None and self.remote.down(table, first, qty):
            return -_GATEWAY_TARGET_FAILED
        nbytes = fast.get_bits(resp, wo + 2, model.bits[table], first, qty)
        resp[wo] = fc
        resp[wo + 1] = nbytes
        return nbytes + 2

    def _read_regs(self, fc, req, ro, n, resp, wo):
        if n != 5:
            return -_ILLEGAL_DATA_VALUE
        qty = _u16(req, ro + 3)
        if qty < 1 or qty > MAX_READ_REGS:
            return -_ILLEGAL_DATA_VALUE
        first = _u16(req, ro + 1)
        table = HOLDING if fc == 3 else INPUT
        model = self.model
        if not model.is_present(table, first, qty):
            b = self.block(table, first, qty) if self.blocks else None
            if b is None:
                return -_ILLEGAL_DATA_ADDRESS
            r = b.read(table, first, qty, resp, wo + 2)
            if r < 0:
                return r
        else:
            if self.remote is not None and self.remote.down(table, first, qty):
                return -_GATEWAY_TARGET_FAILED
            fast.copy(resp, wo + 2, model.regs, model.reg_offset(table, first), 2 * qty)
        resp[wo] = fc
        resp[wo + 1] = 2 * qty
        return 2 * qty + 2

    def _write_coils(self, fc, req, ro, n, resp, wo):
        # FC05 (one coil: 0x0000 or 0xFF00) and FC15 (qty coils, packed LSB first from ro + 6).
        if fc == 5:
            if n != 5:
                return -_ILLEGAL_DATA_VALUE
            qty = 1
            value = _u16(req, ro + 3)
            if value != 0 and value != 0xFF00:
                return -_ILLEGAL_DATA_VALUE
        else:
            if n < 6:
                return -_ILLEGAL_DATA_VALUE
            qty = _u16(req, ro + 3)
            count = req[ro + 5]
            if qty < 1 or qty > MAX_BITS or count != (qty + 7) >> 3 or n != 6 + count:
                return -_ILLEGAL_DATA_VALUE
        first = _u16(req, ro + 1)
        model = self.model
        if not model.is_present(COILS, first, qty) or self.guard is not None and self.refused(COILS, first, qty):
            return -_ILLEGAL_DATA_ADDRESS
        if self.remote is not None and self.remote.claims(COILS, first, qty):
            # The values: FC15's bits at req[ro + 6:]; FC05's, the request itself (src None).
            k = self._remote(COILS, first, qty, None if fc == 5 else req, ro + 6 if fc == 15 else 0, req, ro)
            if k < 1:
                return k
        else:
            if fc == 5:
                model.set_bit(COILS, first, value)
            else:
                fast.put_bits(model.bits[COILS], first, req, ro + 6, qty)
            if not model.outputs_written(COILS, first, qty):
                return -SERVER_DEVICE_FAILURE
        fast.copy(resp, wo, req, ro, 5)
        return 5

    def _check_ao(self, addr, qty, buf, off):
        # Onboard AO (holding 0x0000-0x003F) is 10-bit; the rest takes 0x0000-0xFFFF.
        if addr < ONBOARD:
            k = ONBOARD - addr
            return fast.any_above(buf, off, qty if qty < k else k, AO_MAX) == 0
        return True

    def _remote(self, table, first, qty, src, so, req, ro):
        """A write that touches extension modules' outputs, handed to self.remote: PENDING (the
        waiter gets the answer), 1 (sent, nobody waits: answered as done) or -exception (0x0B:
        a module is not online; 06: no room for another write)."""
        k = self.remote.write(table, first, qty, src, so, req, ro, self.waiter)
        if k < 0:
            return k
        return _PENDING if self.waiter is not None else 1

    def _store(self, first, qty, src, so, req, ro):
        """Write holding registers and tell the output subscribers: 1, or -04 when one failed;
        for extension modules' outputs what _remote returns."""
        if self.remote is not None and self.remote.claims(HOLDING, first, qty):
            return self._remote(HOLDING, first, qty, src, so, req, ro)
        model = self.model
        fast.copy(model.regs, model.reg_offset(HOLDING, first), src, so, 2 * qty)
        return 1 if model.outputs_written(HOLDING, first, qty) else -SERVER_DEVICE_FAILURE

    def _target(self, first, qty):
        """Where a write of holding registers first..first + qty - 1 goes: None (the map), a
        register block, or -02 (neither has them all, or the guard refuses the write)."""
        if self.guard is not None and self.refused(HOLDING, first, qty):
            return -_ILLEGAL_DATA_ADDRESS
        if self.model.is_present(HOLDING, first, qty):
            return None
        b = self.block(HOLDING, first, qty) if self.blocks else None
        return -_ILLEGAL_DATA_ADDRESS if b is None else b

    def _write_regs(self, fc, req, ro, n, resp, wo):
        # FC06 (one register, its value at ro + 3) and FC16 (qty registers from ro + 6).
        if fc == 6:
            if n != 5:
                return -_ILLEGAL_DATA_VALUE
            qty = 1
            so = ro + 3
        else:
            if n < 6:
                return -_ILLEGAL_DATA_VALUE
            qty = _u16(req, ro + 3)
            count = req[ro + 5]
            if qty < 1 or qty > MAX_WRITE_REGS or count != 2 * qty or n != 6 + count:
                return -_ILLEGAL_DATA_VALUE
            so = ro + 6
        first = _u16(req, ro + 1)
        t = self._target(first, qty)
        if t is None:
            if not self._check_ao(first, qty, req, so):
                return -_ILLEGAL_DATA_VALUE
            k = self._store(first, qty, req, so, req, ro)
            if k < 1:
                return k
        elif type(t) is int:
            return t
        else:
            k = t.write(first, qty, req, so, self.source)
            if k < 0:
                return k
        fast.copy(resp, wo, req, ro, 5)
        return 5

    def _mask_write(self, req, ro, n, resp, wo):
        if n != 7:
            return -_ILLEGAL_DATA_VALUE
        addr = _u16(req, ro + 1)
        t = self._target(addr, 1)
        if type(t) is int:
            return t
        if t is None:
            current = self.model.get_reg(HOLDING, addr)
        else:
            k = t.read(HOLDING, addr, 1, resp, wo)
            if k < 0:
                return k
            current = _u16(resp, wo)
        and_mask = _u16(req, ro + 3)
        value = (current & and_mask) | (_u16(req, ro + 5) & (0xFFFF ^ and_mask))
        if t is None and addr < ONBOARD and value > AO_MAX:
            return -_ILLEGAL_DATA_VALUE
        # The result goes through the response buffer so the write sees wire format.
        resp[wo] = value >> 8
        resp[wo + 1] = value & 0xFF
        k = self._store(addr, 1, resp, wo, req, ro) if t is None else t.write(addr, 1, resp, wo, self.source)
        if k < 1 and (t is None or k < 0):
            return k
        fast.copy(resp, wo, req, ro, 7)
        return 7

    def _read_write_regs(self, req, ro, n, resp, wo):
        if n < 10:
            return -_ILLEGAL_DATA_VALUE
        rqty = _u16(req, ro + 3)
        wqty = _u16(req, ro + 7)
        count = req[ro + 9]
        if (
            rqty < 1
            or rqty > MAX_READ_REGS
            or wqty < 1
            or wqty > _MAX_RW_WRITE_REGS
            or count != 2 * wqty
            or n != 10 + count
        ):
            return -_ILLEGAL_DATA_VALUE
        rfirst = _u16(req, ro + 1)
        wfirst = _u16(req, ro + 5)
        model = self.model
        t = self._target(wfirst, wqty)
        if type(t) is int:
            return t
        rb = None
        if not model.is_present(HOLDING, rfirst, rqty):
            rb = self.block(HOLDING, rfirst, rqty) if self.blocks else None
            if rb is None:
                return -_ILLEGAL_DATA_ADDRESS
        if t is None and not self._check_ao(wfirst, wqty, req, ro + 10):
            return -_ILLEGAL_DATA_VALUE
        if rb is None and self.remote is not None and self.remote.down(HOLDING, rfirst, rqty):
            return -_GATEWAY_TARGET_FAILED
        # Write before read (spec).
        if t is None:
            k = self._store(wfirst, wqty, req, ro + 10, req, ro)
            if k < 1:
                return k
        else:
            k = t.write(wfirst, wqty, req, ro + 10, self.source)
            if k < 0:
                return k
        if rb is None:
            fast.copy(resp, wo + 2, model.regs, model.reg_offset(HOLDING, rfirst), 2 * rqty)
        else:
            k = rb.read(HOLDING, rfirst, rqty, resp, wo + 2)
            if k < 0:
                return k
        resp[wo] = 23
        resp[wo + 1] = 2 * rqty
        return 2 * rqty + 2
