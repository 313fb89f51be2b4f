"""Pair the frames seen on an RS-485 line into transactions and say what each one did, for
`mbnode monitor` (docs/monitor.md).

Pairing: a response answers the request before it when it comes from the same unit with the
same function code (or it | 0x80: an exception). A broadcast (unit 0) expects no response. A
request still unanswered when the next request comes, or `timeout` seconds after it, is
reported unanswered; a response that answers nothing seen is reported on its own.

Records are dicts (the JSON lines of `--json`), kind one of: "transaction", "crc_error",
"noise", "unexpected_response". Addresses are the protocol's, 0-based.
"""

import struct

FUNCTIONS = {1: "read coils", 2: "read discrete inputs", 3: "read holding registers",
             4: "read input registers", 5: "write single coil", 6: "write single register",
             7: "read exception status", 8: "diagnostics", 11: "get comm event counter",
             12: "get comm event log", 15: "write multiple coils", 16: "write multiple registers",
             17: "report server id", 20: "read file record", 21: "write file record",
             22: "mask write register", 23: "read/write multiple registers", 24: "read FIFO queue",
             43: "encapsulated interface"}
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 5: "acknowledge", 6: "server device busy",
              8: "memory parity error", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}
TABLES = {1: "coils", 2: "discrete inputs", 3: "holding registers", 4: "input registers",
          5: "coils", 6: "holding registers", 15: "coils", 16: "holding registers",
          22: "holding registers", 23: "holding registers"}


def _words(data):
    return list(struct.unpack(">%dH" % (len(data) // 2), data[:len(data) // 2 * 2]))


def _bits(data, count):
    return [(data[i // 8] >> (i % 8)) & 1 for i in range(min(count, 8 * len(data)))]


def describe_request(pdu):
    """What a request asks: dict with table, address, count, values (written) where it has them."""
    fc = pdu[0]
    d = {}
    try:
        if fc in (1, 2, 3, 4):
            addr, count = struct.unpack(">HH", pdu[1:5])
            d.update(table=TABLES[fc], address=addr, count=count)
        elif fc == 5:
            addr, value = struct.unpack(">HH", pdu[1:5])
            d.update(table="coils", address=addr, count=1,
                     values=[1 if value == 0xFF00 else 0 if value == 0 else value])
        elif fc == 6:
            addr, value = struct.unpack(">HH", pdu[1:5])
            d.update(table="holding registers", address=addr, count=1, values=[value])
        elif fc == 15:
            addr, count = struct.unpack(">HH", pdu[1:5])
            d.update(table="coils", address=addr, count=count, values=_bits(pdu[6:], count))
        elif fc == 16:
            addr, count = struct.unpack(">HH", pdu[1:5])
            d.update(table="holding registers", address=addr, count=count, values=_words(pdu[6:]))
        elif fc == 22:
            addr, and_mask, or_mask = struct.unpack(">HHH", pdu[1:7])
            d.update(table="holding registers", address=addr, count=1, and_mask=and_mask, or_mask=or_mask)
        elif fc == 23:
            raddr, rcount, waddr, wcount = struct.unpack(">HHHH", pdu[1:9])
            d.update(table="holding registers", address=raddr, count=rcount, write_address=waddr,
                     write_count=wcount, values=_words(pdu[10:]))
        elif fc == 8:
            d.update(sub_function=struct.unpack(">H", pdu[1:3])[0], data=pdu[3:].hex())
        elif fc == 43 and len(pdu) >= 4:
            d.update(mei_type=pdu[1], read_code=pdu[2], object_id=pdu[3])
    except (struct.error, IndexError):
        d["malformed"] = True
    return d


def describe_response(pdu, request):
    """The values a normal response carries (reads), as a list, or None."""
    fc = pdu[0]
    if fc in (1, 2) and len(pdu) >= 2:
        return _bits(pdu[2:2 + pdu[1]], request.get("count", 8 * pdu[1]))
    if fc in (3, 4, 23) and len(pdu) >= 2:
        return _words(pdu[2:2 + pdu[1]])
    return None


class Pairer:
    """Frames in, records out; counts for the summary."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.pending = None  # (request frame, t_start, t_end, reads)
        self.counts = {"transactions": 0, "answered": 0, "exceptions": 0, "broadcasts": 0,
                       "unanswered": 0, "crc_errors": 0, "noise_bytes": 0, "noise": 0,
                       "unexpected_responses": 0}
        self.per_unit_function = {}  # (unit, fc) -> transactions

    def _transaction(self, req, t0, rsp=None, t_rsp=None, turnaround=None):
        unit, fc = req[0], req[1]
        rec = {"kind": "transaction", "time": t0, "unit": unit, "function": fc,
               "name": FUNCTIONS.get(fc, "function %d" % fc), "broadcast": unit == 0}
        rec.update(describe_request(req[1:-2]))
        rec["request"] = req.hex()
        rec["response"] = rsp.hex() if rsp is not None else None
        rec["exception"] = None
        if rsp is not None:
            if rsp[1] & 0x80:
                rec["exception"] = rsp[2]
                rec["exception_name"] = EXCEPTIONS.get(rsp[2], "exception %d" % rsp[2])
                self.counts["exceptions"] += 1
            else:
                read = describe_response(rsp[1:-2], rec)
                if read is not None:
                    rec["values" if fc != 23 else "read_values"] = read
            self.counts["answered"] += 1
        elif unit == 0:
            self.counts["broadcasts"] += 1
        else:
            self.counts["unanswered"] += 1
        rec["answered"] = rsp is not None
        rec["turnaround_ms"] = None if turnaround is None else round(turnaround * 1000, 1)
        self.counts["transactions"] += 1
        key = (unit, fc)
        self.per_unit_function[key] = self.per_unit_function.get(key, 0) + 1
        return rec

    def _close_pending(self):
        req, t0, _, _ = self.pending
        self.pending = None
        return self._transaction(req, t0)

    def event(self, ev):
        """One event of busframes.Framer: the records it completes."""
        out = []
        if ev[0] == "junk":
            _, data, t0, _, looks = ev
            if looks is not None:
                self.counts["crc_errors"] += 1
                out.append({"kind": "crc_error", "time": t0, "looks_like": looks, "unit": data[0],
                            "function": data[1], "bytes": data.hex()})
            else:
                self.counts["noise"] += 1
                self.counts["noise_bytes"] += len(data)
                out.append({"kind": "noise", "time": t0, "length": len(data), "bytes": data.hex()})
            return out
        _, kind, data, t0, t1, reads = ev
        if kind == "request":
            if self.pending is not None:
                out.append(self._close_pending())
            if data[0] == 0:
                out.append(self._transaction(data, t0))
            else:
                self.pending = (data, t0, t1, reads)
            return out
        p = self.pending
        if p is not None and data[0] == p[0][0] and data[1] & 0x7F == p[0][1]:
            self.pending = None
            # Both ends in one read: the host cannot tell the time between them.
            turnaround = None if reads[0] == p[3][1] else max(0.0, t0 - p[2])
            out.append(self._transaction(p[0], p[1], data, t0, turnaround))
            return out
        self.counts["unexpected_responses"] += 1
        out.append({"kind": "unexpected_response", "time": t0, "unit": data[0], "function": data[1],
                    "bytes": data.hex()})
        return out

    def tick(self, now):
        """Records due because time passed: a request left unanswered for `timeout`."""
        if self.pending is not None and now - self.pending[2] >= self.timeout:
            return [self._close_pending()]
        return []

    def flush(self):
        return [self._close_pending()] if self.pending is not None else []

    def summary(self):
        s = dict(kind="summary", **self.counts)
        s["per_unit_function"] = [{"unit": u, "function": f, "transactions": n}
                                  for (u, f), n in sorted(self.per_unit_function.items())]
        return s
