"""`mbnode monitor PORT`: watch a Modbus RTU line without taking part (docs/monitor.md).

Opens the port read-only in effect (nothing is ever written), reads with timestamps, splits the
bytes into frames (mbnode_host.busframes), pairs requests with responses
(mbnode_host.transactions) and prints one line per transaction, CRC error, noise and
unexpected response, or one JSON object per line with --json; on Ctrl-C (exit 130) or when the
port goes away (exit 1) the summary.
"""

import json
import signal
import sys
import termios
import time
from collections import namedtuple

import serial

from mbnode.rtu import char_times
from mbnode_host import serialline
from mbnode_host.busframes import Framer
from mbnode_host.transactions import Pairer

INTERRUPTED = 130  # stopped with Ctrl-C or SIGTERM (the brief of issue 13; docs/monitor.md)
ALLOWANCE = 0.020  # added to t3.5: how much later than the wire a host may see bytes (USB latency timer 16 ms)
LINGER = 0.100     # silence after which bytes that make no frame are reported
SHOWN_VALUES = 16  # values on a text line; --json has them all


class Setting(namedtuple("Setting", "baud parity stopbits")):
    """Line settings with their character time and t3.5 by the firmware's rule (mbnode.rtu)."""

    __slots__ = ()

    @property
    def char(self):
        return char_times(self.baud, self.parity, self.stopbits)[0] / 1e6

    @property
    def t35(self):
        return char_times(self.baud, self.parity, self.stopbits)[1] / 1e6

    def wire(self, n):
        return n * self.char

    @property
    def label(self):
        return "%d 8%s%d" % (self.baud, self.parity, self.stopbits)


class UsageError(ValueError):
    """Arguments refused before the port is opened (the command exits with status 2)."""


def settings(args):
    """The Setting of the arguments, or UsageError."""
    baud = args.baud
    if not 50 <= baud <= 4000000:
        raise UsageError("--baud %d: allowed 50 to 4000000" % baud)
    parity = args.parity.upper()
    if parity not in ("E", "N", "O"):
        raise UsageError("--parity %s: allowed E, N or O" % args.parity)
    stopbits = args.stopbits if args.stopbits is not None else (2 if parity == "N" else 1)
    if stopbits not in (1, 2):
        raise UsageError("--stopbits %d: allowed 1 or 2" % stopbits)
    for name in ("timeout", "gap"):
        v = getattr(args, name)
        if v is not None and not 0 < v <= 60:
            raise UsageError("--%s %g: allowed more than 0 and at most 60 seconds" % (name, v))
    return Setting(baud, parity, stopbits)


def _clock(t):
    lt = time.localtime(t)
    return "%02d:%02d:%02d.%03d" % (lt.tm_hour, lt.tm_min, lt.tm_sec, int(t * 1000) % 1000)


def _hexbytes(text):
    return " ".join(text[i:i + 2] for i in range(0, len(text), 2))


def _values(vals):
    words = " ".join(str(v) for v in vals[:SHOWN_VALUES])
    return words + (" ... (%d values)" % len(vals) if len(vals) > SHOWN_VALUES else "")


def _span(rec):
    if "address" not in rec:
        return ""
    a, n = rec["address"], rec.get("count", 1)
    return " %d" % a if n == 1 else " %d-%d" % (a, a + n - 1) if n > 1 else " %d (0 of them)" % a


def text_line(rec):
    """The text form of a record."""
    kind = rec["kind"]
    head = _clock(rec["time"])
    if kind == "noise":
        return "%s noise: %d bytes %s" % (head, rec["length"], _hexbytes(rec["bytes"]))
    if kind == "crc_error":
        return "%s CRC error: %s (by its length a %s %s unit %d, fc%02d)" % (
            head, _hexbytes(rec["bytes"]), rec["looks_like"], "to" if rec["looks_like"] == "request" else "from",
            rec["unit"], rec["function"])
    if kind == "unexpected_response":
        return "%s response without a request: unit %d fc%02d %s" % (
            head, rec["unit"], rec["function"], _hexbytes(rec["bytes"]))
    what = "%s unit %d fc%02d %s" % (head, rec["unit"], rec["function"], rec["name"])
    what += _span(rec)
    if "sub_function" in rec:
        what += " sub %d data %s" % (rec["sub_function"], rec["data"] or "-")
    if "and_mask" in rec:
        what += " and 0x%04x or 0x%04x" % (rec["and_mask"], rec["or_mask"])
    if "write_address" in rec:
        what += " write %d-%d" % (rec["write_address"], rec["write_address"] + rec["write_count"] - 1)
    if rec.get("values") is not None and rec["function"] in (5, 6, 15, 16, 23):
        what += " = " + _values(rec["values"])
    if rec["broadcast"]:
        return what + ": broadcast, no response expected"
    if not rec["answered"]:
        return what + ": no response"
    ms = "" if rec["turnaround_ms"] is None else " (%.1f ms)" % rec["turnaround_ms"]
    if rec["exception"] is not None:
        return what + ": exception %02d %s%s" % (rec["exception"], rec["exception_name"], ms)
    read = rec.get("read_values") if rec["function"] == 23 else rec.get("values") if rec["function"] <= 4 else None
    if read is not None:
        return what + ": " + _values(read) + ms
    if rec["function"] not in (1, 2, 3, 4, 5, 6, 15, 16, 22, 23):
        return what + ": " + _hexbytes(rec["response"]) + ms
    return what + ": ok" + ms


def _n(count, word, plural=None):
    return "%d %s" % (count, word if count == 1 else plural or word + "s")


def summary_lines(s):
    out = ["summary: %s (%d answered, %s, %s, %d unanswered), %s, %s (%s), %s"
           % (_n(s["transactions"], "transaction"), s["answered"], _n(s["exceptions"], "exception"),
              _n(s["broadcasts"], "broadcast"), s["unanswered"], _n(s["crc_errors"], "CRC error"),
              _n(s["noise"], "noise burst"), _n(s["noise_bytes"], "byte"),
              _n(s["unexpected_responses"], "response without a request", "responses without a request"))]
    from mbnode_host.transactions import FUNCTIONS

    for e in s["per_unit_function"]:
        out.append("  unit %d fc%02d %s: %d" % (e["unit"], e["function"],
                                               FUNCTIONS.get(e["function"], "function %d" % e["function"]),
                                               e["transactions"]))
    return out


class Output:
    def __init__(self, as_json, wall0, mono0):
        self.as_json = as_json
        self.offset = wall0 - mono0

    def record(self, rec):
        rec = dict(rec, time=round(rec["time"] + self.offset, 4))
        print(json.dumps(rec, separators=(",", ":")) if self.as_json else text_line(rec), flush=True)

    def summary(self, s):
        if self.as_json:
            print(json.dumps(s, separators=(",", ":")), flush=True)
        else:
            for line in summary_lines(s):
                print(line, flush=True)


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the monitor as Ctrl-C does: with the summary


def _open(port, line):
    try:
        return serialline.open_port(port, line, receive_only=True)
    except (termios.error, ValueError) as e:
        raise serialline.ProbeError("%s refuses %s: %s" % (port, line.label, e))


def run(args):
    line = settings(args)
    gap = args.gap if args.gap is not None else line.t35 + ALLOWANCE
    port = _open(args.port, line)
    framer = Framer(line.wire, gap, max(LINGER, gap))
    pairer = Pairer(args.timeout)
    out = Output(args.json, time.time(), time.monotonic())
    status, lost = INTERRUPTED, None
    old_term = signal.signal(signal.SIGTERM, _stop)  # before the ready line: a stop then still summarises
    try:
        try:
            port.timeout = min(0.010, gap / 2)
            if serialline.is_pty(args.port):
                print("mbnode monitor: %s is a pseudo-terminal: baud rate and parity mean nothing on it and "
                      "bytes arrive as the other end wrote them, so the silence seen is the writer's"
                      % args.port, file=sys.stderr, flush=True)
            print("mbnode monitor: listening on %s at %s (t3.5 %.2f ms, silence ends a frame after %.1f ms), "
                  "never sending; Ctrl-C stops" % (args.port, line.label, line.t35 * 1000, gap * 1000),
                  file=sys.stderr, flush=True)
            while True:
                try:
                    data = port.read(1)
                    if data:
                        n = port.in_waiting
                        if n:
                            data += port.read(n)
                except (serial.SerialException, OSError) as e:
                    lost = str(e) or e.__class__.__name__
                    status = 1
                    break
                now = time.monotonic()
                for ev in framer.feed(data, now) if data else framer.idle(now):
                    for rec in pairer.event(ev):
                        out.record(rec)
                for rec in pairer.tick(now):
                    out.record(rec)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, old_term)
        for ev in framer.flush():
            for rec in pairer.event(ev):
                out.record(rec)
        for rec in pairer.flush():
            out.record(rec)
        out.summary(pairer.summary())
        if lost is not None:
            print("mbnode monitor: %s went away: %s" % (args.port, lost), file=sys.stderr, flush=True)
        return status
    finally:
        try:
            port.close()
        except Exception:  # noqa: BLE001 - closing a port that went away
            pass
