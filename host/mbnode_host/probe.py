"""`mbnode probe PORT`: find a Modbus device on a serial line (or behind a Modbus TCP address)
without knowing its settings, then identify it and map its address space. docs/probe.md has
the method, the timeout formula, the limits and the JSON schema.

Phases, each bounded in requests:
  listen    (--listen S) read the line at each setting for S seconds; a setting that yields
            at least two frames with valid CRCs goes first, with the addresses seen.
  discover  FC03 address 0 quantity 1 to each (line setting, unit id): the likely combinations
            first, twice, then every id at every setting. Any valid answer that fits the
            request counts, also a late one; bytes without a valid frame send the sweep to the
            other parities at that baud rate. A find is confirmed at the other parities with a
            request whose answer shows the parity bits (FC08/00 with data 0x0001).
  identify  FC08/00 echo, FC17, FC43/14 (all categories, following "more follows"), and which
            function codes answer something other than exception 01. Never writes: write
            codes are tried only with requests a conforming device must refuse before
            executing, and that change nothing even if executed.
  map       per table: 33 sample addresses, then binary search of every island's ends.

Identify and map talk to a device that is known to be there, with waits learnt from its
answers; a request left unanswered is waited for, then asked again, and before the next
request a fence (an FC08 echo with a number of its own) proves that no late answer to it can
still come (docs/probe.md, "Which request an answer belongs to").
"""

import json
import struct
import sys
import time

import serial

from mbnode_host import clitools, serialline
from mbnode_host.clitools import UsageError
from mbnode_host.rtuclient import RtuLink, TcpLink, find_frames
from mbnode_host.serialline import Line, ProbeError

PROBE_PDU = bytes((3, 0, 0, 0, 1))  # read holding register 0: every slave answers, if only 01/02
# FC08/00 return query data 0x0001: its echo (or exception 88 01) carries a byte whose even parity
# bit is 0 (0x00, 0x88) and one whose odd parity bit is 0 (0x01), so an answer sent at another
# parity cannot pass for a valid frame where the receiver checks parity or framing.
PARITY_PDU = bytes((8, 0, 0, 0x00, 0x01))
LIKELY_LINES = (Line(19200, "E"), Line(9600, "N"), Line(9600, "E"), Line(19200, "N"),
                Line(38400, "N"), Line(115200, "N"), Line(57600, "N"), Line(38400, "E"))
LIKELY_IDS = (1, 2, 247)
TCP_LIKELY_IDS = (1, 255, 0, 2, 247)
# Where islands of present addresses usually start or reach: powers of two, round decimal
# bases, the 0x1000 pages and the "Modicon" 30000/40000 conventions, and the top.
SAMPLES = (0, 1, 2, 4, 8, 16, 32, 64, 100, 128, 200, 256, 300, 500, 512, 1000, 1024, 2000, 2048,
           3000, 4000, 4096, 5000, 8192, 10000, 16384, 20000, 30000, 32768, 40000, 40001, 50000,
           65535)
TABLES = (("coils", 1), ("discrete inputs", 2), ("holding registers", 3), ("input registers", 4))
MAX_SPAN = 125      # addresses one verifying read covers (the FC03 limit; FC01/02 allow more)
MAP_BUDGET = 120    # requests per table at most (typically 40-70: 33 samples + the ends)
OBJECT_NAMES = ("VendorName", "ProductCode", "MajorMinorRevision", "VendorUrl", "ProductName",
                "ModelName", "UserApplicationName")
# docs/cli.md: nothing found is "could not do what was asked" (1), with the report still on stdout.
EXIT_FOUND, EXIT_ERROR, EXIT_NONE, EXIT_INTERRUPTED = clitools.OK, clitools.ERROR, clitools.ERROR, clitools.INTERRUPTED
RETRIES = 2          # a device known to be there is asked up to 3 times before a read counts as unanswered
LATE_MIN = 0.050     # after a known device's timeout, wait at least this much more for its answer
FENCE_TRIES = 3
QUIET_FALLBACK = 0.300  # without FC08, silence this long (at least) stands in for a fence
HINTS_PER_SETTING = 3   # garbled answers at one setting that send the sweep to the other parities


def parse_ids(text, lo, hi):
    """'1-10,17' -> [1..10, 17] in the given order, duplicates removed."""
    out = []
    for part in text.split(","):
        part = part.strip()
        a, sep, b = part.partition("-")
        if not a.strip().isdigit() or (sep and not b.strip().isdigit()):
            raise UsageError("ids %r: expected numbers and ranges, e.g. 1-10,17" % text)
        first, last = int(a), int(b) if sep else int(a)
        if not lo <= first <= last <= hi:
            raise UsageError("ids %r: each id must be in %d..%d, ranges low-high" % (text, lo, hi))
        for u in range(first, last + 1):
            if u not in out:
                out.append(u)
    return out


def parse_tcp(port):
    hostport = port[len("tcp://"):].rstrip("/")
    host, sep, p = hostport.rpartition(":")
    if not sep:
        host, p = hostport, "502"
    host = host.strip("[]")
    if not host or not p.isdigit() or not 0 < int(p) < 65536:
        raise UsageError("%r: expected tcp://HOST:PORT, e.g. tcp://192.168.1.20:502" % port)
    return host, int(p)


class Plan:
    """The (line, unit) pairs to try, in order. An item is (line, unit, nth): the nth try of
    that pair, made only while the pair has been tried nth - 1 times and has not answered. The
    likely pairs come twice (a device may miss one request); `prioritize` puts a setting where
    traffic was seen first, `hint` the other parities of a baud rate where bytes came back
    without a valid frame."""

    def __init__(self, lines, ids, likely_lines, likely_ids):
        self.lines, self.ids = list(lines), list(ids)
        likely = [(line, u) for line in likely_lines if line in self.lines for u in likely_ids if u in self.ids]
        self.order = [(line, u, 1) for line, u in likely] + [(line, u, 2) for line, u in likely] + [
            (line, u, 1) for line in self.lines for u in self.ids]
        self.total = len(self.lines) * len(self.ids) + len(likely)
        self.tries = {}
        self.answered = set()
        self.dead = set()
        self.front = []
        self.pos = 0
        self.only = None

    def _next_try(self, line, unit):
        return (line, unit, self.tries.get((line, unit), 0) + 1)

    def prioritize(self, line, units=()):
        """Sweep `line` next, the units seen on it first. Those are asked twice if need be: on a
        bus where another master talks, a request of ours can collide with its traffic."""
        if line in self.dead or self.only not in (None, line):
            return
        first = [u for u in units if u in self.ids]
        again = [(line, u, self.tries.get((line, u), 0) + 2) for u in first]
        self.front = [self._next_try(line, u) for u in first] + again + [
            (line, u, 1) for u in self.ids if u not in first] + self.front

    def hint(self, line, unit, parities):
        """Bytes came back at `line` after a request to `unit`, but no valid frame: ask that unit
        at the other parities of this baud rate next, then once more at this setting."""
        items = []
        for p in parities:
            other = Line(line.baud, p)
            if p != line.parity and other in self.lines:
                items.append(self._next_try(other, unit))
        items.append(self._next_try(line, unit))
        self.front = items + self.front

    def restrict(self, line):
        self.only = line

    def tried(self, line, unit):
        self.tries[(line, unit)] = self.tries.get((line, unit), 0) + 1

    def __iter__(self):
        while True:
            if self.front:
                line, unit, nth = self.front.pop(0)
            elif self.pos < len(self.order):
                line, unit, nth = self.order[self.pos]
                self.pos += 1
            else:
                return
            if (line, unit) in self.answered or line in self.dead or self.only not in (None, line):
                continue
            if self.tries.get((line, unit), 0) != nth - 1:
                continue
            yield line, unit


class Prober:
    def __init__(self, args, out=None):
        self.args = args
        self.out = out or sys.stdout
        self.progress = clitools.Progress(args.progress, off_tty="off")
        self.t0 = time.monotonic()
        self.link = None
        self.parities = ()
        self.lines_all = ()
        self._dead = {}        # line setting -> why the port cannot hold it
        self._traffic = {}     # line label -> traffic seen while sweeping
        self._hints = {}       # line -> garbled answers that sent the sweep elsewhere
        self._timing = {}      # unit -> {"turnaround": worst seen, seconds}
        self._echo = {}        # unit -> True when FC08/00 echoes (fences possible)
        self._stale = False    # an answer to an earlier request of a conversation may still come
        self._nonce = 0
        self.result = {"port": args.port, "transport": "tcp" if args.port.startswith("tcp://") else "rtu",
                       "complete": False, "devices": [], "traffic": [], "garbled": [], "notes": [],
                       "stats": {"requests": 0, "discovery_requests": 0, "discovery_seconds": None,
                                 "seconds": 0.0, "timeouts": {}, "retries": 0, "late_answers": 0,
                                 "stray_frames": 0, "fences": 0}}

    def note(self, text):
        if text not in self.result["notes"]:
            self.result["notes"].append(text)

    @property
    def tcp(self):
        return self.result["transport"] == "tcp"

    # ---- setup ----------------------------------------------------------------------------

    def lines(self):
        a = self.args
        bauds = serialline.parse_bauds(a.baud) if a.baud else serialline.SWEEP_BAUDS
        self.parities = serialline.parse_parities(a.parity) if a.parity else serialline.PARITIES
        return [Line(b, p) for b in bauds for p in self.parities]

    def open(self):
        a = self.args
        if self.tcp:
            host, port = parse_tcp(a.port)
            try:
                self.link = TcpLink(host, port, a.timeout, a.turnaround)
            except OSError as e:
                raise ProbeError("cannot connect to %s:%d: %s" % (host, port, e.strerror or e))
            return [None]
        lines = self.lines()
        self.lines_all = tuple(lines)
        if a.port.startswith("socket://"):
            self.note("socket:// carries no line settings: only unit ids are scanned, at the far "
                      "end's setting; timeouts assume %s" % lines[0].label)
            lines = lines[:1]
            self.parities = lines[0].parity,
        elif serialline.is_pty(a.port):
            self.note("%s is a pseudo-terminal: it takes any baud rate and passes every byte, so the "
                      "setting reported is the first one at which the other end answered (a bare pty "
                      "checks none)" % a.port)
        port, refused = None, None
        for line in lines:  # the first setting the port takes; a refused one is tried again later
            try:
                port = serialline.open_port(a.port, line)
                break
            except ProbeError:
                raise
            except Exception as e:  # noqa: BLE001 - termios.error / ValueError: this setting only
                refused = "%s: %s" % (line.label, e)
        if port is None:
            raise ProbeError("%s refuses every line setting asked for (%s)" % (a.port, refused))
        self.link = RtuLink(port, line, a.turnaround, a.timeout)
        why = serialline.not_held(port, line)
        if why:
            self._cannot_hold(line, why)
        return lines

    def _cannot_hold(self, line, why, plan=None):
        """The port cannot be at `line`: never report it. A parity the kernel drops (a pty's
        PARENB) is given up at every baud rate."""
        dead = [line]
        if "PARENB" in why:
            dead += [ln for ln in self.lines_all if ln.parity == line.parity]
            self.note("%s does not keep %s: no setting with parity %s was tried"
                      % (self.args.port, why, line.parity))
        else:
            self.note("%s cannot be set to %s: it does not keep %s" % (self.args.port, line.label, why))
        for ln in dead:
            self._dead.setdefault(ln, why)
            if plan is not None:
                plan.dead.add(ln)
        self.link.line = None

    def set_line(self, line, plan=None):
        """Put the port at `line`. A refused transition is not a refused setting: the port is then
        reopened at `line`; only when that fails too, or the port does not keep what was set,
        is the setting given up (with a note)."""
        if line is None or line == self.link.line:
            return True
        if line in self._dead:
            return False
        self.leave_line()
        try:
            self.link.set_line(line)
        except Exception as first:  # noqa: BLE001 - termios.error, ValueError, SerialException
            try:
                self.link.close()
                self.link.replace_port(serialline.open_port(self.args.port, line), line)
            except ProbeError:
                raise
            except Exception as e:  # noqa: BLE001 - this setting only
                self._refuse(line, "%s (switching to it: %s)" % (e, first), plan)
                self._reopen_any(plan)
                return False
        why = serialline.not_held(self.link.port, line)
        if why:
            self._cannot_hold(line, why, plan)
            return False
        return True

    def _refuse(self, line, why, plan):
        self._dead[line] = why
        if plan is not None:
            plan.dead.add(line)
        self.link.line = None
        self.note("%s refused %s: %s" % (self.args.port, line.label, why))

    def _reopen_any(self, plan):
        """After a failed reopen the port is closed: open it at any setting it takes."""
        if getattr(self.link.port, "is_open", False):
            return
        for line in self.lines_all:
            if line in self._dead:
                continue
            try:
                self.link.replace_port(serialline.open_port(self.args.port, line), line)
                return
            except ProbeError:
                raise
            except Exception:  # noqa: BLE001 - try the next one
                continue
        raise ProbeError("%s refuses every line setting asked for" % self.args.port)

    def leave_line(self):
        """Before the port changes setting: an answer still on its way at the old setting would be
        lost, so after an unanswered request wait one more timeout for it (LATE_MIN at most)."""
        link = self.link
        if self.tcp or link.line is None:
            return
        last = link.last_unanswered()
        if last is None or last[2] != link.line:
            return
        timeout = link.timeout(8, 7)
        until = last[3] + timeout + min(timeout, LATE_MIN)
        if until > time.monotonic():
            link.wait_quiet(until=until, limit=until - time.monotonic())

    # ---- listen ---------------------------------------------------------------------------

    def listen(self, lines, plan):
        """Read the line at each setting. At the first baud rate where a parity yields >= 2 valid
        frames, all its parities are heard; traffic valid at N and at E or O is E or O (a
        receiver without parity that takes frames with parity bits checks no framing)."""
        secs = self.args.listen
        bauds = []
        for line in lines:
            if line.baud not in bauds:
                bauds.append(line.baud)
        for baud in bauds:
            heard = {}
            for line in [ln for ln in lines if ln.baud == baud]:
                if not self.set_line(line, plan):
                    continue
                self.progress.status("listening at %s" % line.label, force=True)
                self.link.drain()
                self.link.traffic.clear()
                port = self.link.port
                buf = bytearray()
                end = time.monotonic() + secs
                while time.monotonic() < end and len(buf) < 8192:
                    n = port.in_waiting
                    buf += port.read(n if n else 1)
                frames = [f for _, f in find_frames(buf)]
                if len(frames) >= 2:
                    heard[line.parity] = frames
            if not heard:
                continue
            yes = [p for p in self.parities if p in heard]
            if len(yes) == 2 and "N" in yes:
                yes = [p for p in yes if p != "N"]
            elif len(yes) > 1:
                self.note("traffic at parities %s of %d baud: this port does not check parity, so its "
                          "parity was not determined" % (", ".join(yes), baud))
            first = []
            for p in yes:
                line, frames = Line(baud, p), heard[p]
                units = sorted({f[0] for f in frames})
                first.append((line, units))
                self.result["traffic"].append({"serial": line.label, "frames": len(frames), "units": units,
                                               "how": "listen"})
                self.progress.event("traffic at %s: %d frames, addresses %s" % (
                    line.label, len(frames), ",".join(map(str, units))))
            for line, units in reversed(first):
                plan.prioritize(line, units)
            return first[0][0]
        self.note("listened %.2f s at each of %d settings: no frames with a valid CRC" % (secs, len(lines)))
        return None

    # ---- discover -------------------------------------------------------------------------

    def discover(self, lines, ids):
        tcp = self.tcp
        plan = Plan(lines, ids, [None] if tcp else LIKELY_LINES, TCP_LIKELY_IDS if tcp else LIKELY_IDS)
        plan.dead.update(self._dead)
        if self.args.listen and not tcp:
            self.listen(lines, plan)
        self._start_requests = self.link.requests
        self._t0 = time.monotonic()
        try:
            self._sweep(plan)
        finally:
            self.result["stats"]["discovery_requests"] = self.link.requests - self._start_requests
            self.result["stats"]["discovery_seconds"] = round(time.monotonic() - self._t0, 3)
            self.progress.clear()
        found = self.result["devices"]
        if found and not self.args.all and not tcp:
            self.note("stopped at the first device found; --all asks the other ids at %s too"
                      % found[0]["serial"]["label"])
        elif found and not self.args.all:
            self.note("stopped at the first device found; --all asks the other ids too")

    def _sweep(self, plan):
        found = self.result["devices"]
        tried = 0
        for line, unit in plan:
            if not self.set_line(line, plan):
                continue
            self._collect(plan)
            if found and not self.args.all:
                break
            # a late find may have moved the port (the parity check) and restricted the sweep
            if plan.only not in (None, line) or not self.set_line(line, plan):
                continue
            label = line.label if line else "tcp"
            if label not in self.result["stats"]["timeouts"]:
                self.result["stats"]["timeouts"][label] = round(self.link.timeout(8, 7), 4)
            r = self.link.transact(unit, PROBE_PDU, 7)
            plan.tried(line, unit)
            tried += 1
            self.result["stats"]["discovery_requests"] = self.link.requests - self._start_requests
            if r.answered:
                self._found(plan, line, unit, r, None)
            elif r.kind == "exception":
                self.note("unit %d%s: gateway exception %02X (nothing behind it answered)"
                          % (unit, "" if self.tcp else " at " + line.label, r.code))
            elif r.kind == "garbage" and line is not None:
                self._garbled(plan, line, unit, r.pdu)
            self._collect(plan)
            if found and not self.args.all:
                break
            self.progress.bar(tried, plan.total, "%s unit %3d  %d/%d tried  %.0f s" % (
                line.label if line else "tcp", unit, tried, plan.total, time.monotonic() - self._t0))

    def _collect(self, plan):
        """Late answers and traffic the link saw: finds, and settings to sweep next."""
        link = self.link
        late, link.late = link.late, []
        for late_unit, late_line, delay, req, number in late:
            self.result["stats"]["late_answers"] += 1
            if req == PROBE_PDU:
                self._found(plan, late_line, late_unit, None, delay, number)
        traffic = self._traffic
        for tline, frame in link.traffic:
            key = tline.label if tline else "tcp"
            if key not in traffic:
                traffic[key] = {"serial": key, "frames": 0, "units": [], "how": "while probing"}
                self.progress.event("bus traffic at %s (frame from address %d)" % (key, frame[0]))
                plan.prioritize(tline, [frame[0]])
            traffic[key]["frames"] += 1
            if frame[0] not in traffic[key]["units"]:
                traffic[key]["units"].append(frame[0])
        link.traffic.clear()

    def _garbled(self, plan, line, unit, data):
        """Bytes but no valid frame: say so, and try the other parities at this baud rate."""
        n = self._hints.get(line, 0)
        self._hints[line] = n + 1
        if len(self.result["garbled"]) < 20:
            self.result["garbled"].append({"serial": line.label, "unit": unit, "bytes": bytes(data[:16]).hex()})
        if n == 0:
            why = ("all zero bytes: breaks, a device at a lower baud rate?" if not any(data)
                   else "parity or stop bits?")
            self.note("bytes at %s but no valid frame (after a request to unit %d): %s" % (line.label, unit, why))
            self.progress.event("bytes at %s but no valid frame: trying the other parities" % line.label)
        if n < HINTS_PER_SETTING:
            plan.hint(line, unit, self.parities)

    def _found(self, plan, line, unit, reply, delay, number=None):
        """A unit answered the discovery request (number: the request it answered, counted by
        the link; default the last one sent)."""
        found = self.result["devices"]
        plan.answered.add((line, unit))
        if any(d["unit"] == unit for d in found):
            return  # seen again (a late answer after an answer, or one bus at one setting)
        elapsed = reply.elapsed if reply is not None else delay
        self._learn(unit, line, elapsed, 8, reply.frame_len if reply is not None else 7)
        dev = {"unit": unit, "_line": line, "serial": None,
               "found_after": {"requests": (self.link.requests if number is None else number) - self._start_requests,
                               "seconds": round(time.monotonic() - self._t0, 3)},
               "answer": None if reply is None else reply.pdu.hex(),
               "late_by": None if delay is None else round(delay, 4)}
        found.append(dev)
        if line is not None:
            self._confirm_parity(dev)
            line = dev["_line"]
            dev["serial"] = {"baud": line.baud, "parity": line.parity, "stopbits": line.stopbits,
                             "label": line.label, "parity_confirmed": dev.pop("_confirmed")}
        self.progress.event("found unit %d%s after %d requests, %.1f s%s" % (
            unit, "" if line is None else " at " + line.label, dev["found_after"]["requests"],
            time.monotonic() - self._t0, "" if delay is None else " (slow: answered after %.0f ms)" % (delay * 1000)))
        if delay is not None:
            self.note("unit %d answered only after %.0f ms, later than the timeout: the waits for it "
                      "were lengthened (--turnaround sets the allowance)" % (unit, delay * 1000))
        if self.args.all:
            plan.restrict(line)

    def _confirm_parity(self, dev):
        """Ask the unit found at the other parities of its baud rate too, with PARITY_PDU, whose
        answer a receiver at another parity cannot take for a valid frame. Answers at E and O
        both mean the port does not check parity: the parity is then reported as unconfirmed."""
        line, unit = dev["_line"], dev["unit"]
        others = [Line(line.baud, p) for p in self.parities if p != line.parity]
        others = [o for o in others if o not in self._dead]
        answered = {}
        if not others:
            dev["_confirmed"] = None
            return
        for ln in [line] + others:
            if not self.set_line(ln):
                continue
            # the device is known to answer (at one of these): waits learnt from its first answer
            timeout = self.wait_for(unit, len(PARITY_PDU) + 3, len(PARITY_PDU) + 3)
            for _ in range(2 if ln == line else 1):
                r = self.link.transact(unit, PARITY_PDU, len(PARITY_PDU) + 3, timeout=timeout,
                                       late=max(timeout, LATE_MIN))
                answered[ln.parity] = r.answered
                if r.answered:
                    break
            for late in list(self.link.late):
                if late[0] == unit and late[3] == PARITY_PDU:
                    self.link.late.remove(late)
                    answered[late[1].parity] = True
                    self.result["stats"]["late_answers"] += 1
        yes = sorted(p for p, ok in answered.items() if ok)
        chosen = line.parity
        if not yes:  # no answer to FC08 at any parity: the find stands, unconfirmed
            dev["_confirmed"] = None
        elif len(yes) == 1:
            chosen, dev["_confirmed"] = yes[0], True
        elif len(yes) == 2 and "N" in yes:
            # The parity bits were checked at E or O; a receiver without parity that takes an
            # answer sent with parity bits for a valid frame checks no framing.
            chosen, dev["_confirmed"] = [p for p in yes if p != "N"][0], True
        else:
            dev["_confirmed"] = False
            self.note("unit %d answered at parities %s of %d baud: this port does not check parity, so "
                      "the parity was not determined (%s is reported)" % (unit, ", ".join(yes), line.baud,
                                                                          line.label))
        if chosen != line.parity:
            dev["_line"] = Line(line.baud, chosen)
            self.note("unit %d answered the discovery request at %s, but the request that shows the "
                      "parity bits only at %s: it is at %s" % (unit, line.label, dev["_line"].label,
                                                              dev["_line"].label))
        self.set_line(dev["_line"])

    # ---- talking to a device known to be there ----------------------------------------------

    def _learn(self, unit, line, elapsed, req_len, resp_len):
        """The device's turnaround: an answer's time less the wire times, the worst one seen."""
        if elapsed is None:
            return
        wire = 0.0 if line is None else line.wire(req_len) + line.wire(resp_len)
        t = self._timing.setdefault(unit, {"turnaround": 0.0})
        t["turnaround"] = max(t["turnaround"], elapsed - wire, 0.0)

    def wait_for(self, unit, req_len, resp_len):
        """How long to wait for a known device: the discovery wait, or twice the slowest
        turnaround it showed plus the wire times, whichever is longer."""
        base = self.link.timeout(req_len, resp_len)
        t = self._timing.get(unit)
        if t is None:
            return base
        line = self.link.line
        wire = 0.0 if line is None else line.wire(req_len) + line.t35 + line.wire(resp_len)
        return max(base, wire + 2 * t["turnaround"] + 0.005)

    def ask(self, unit, pdu, resp_len, retries=RETRIES):
        """One request to a device known to be there: an answer that fits it, or, after 1 +
        retries attempts each waited for the timeout and then a late window, the last reply."""
        r = None
        for attempt in range(1 + retries):
            if self._stale and not attempt:
                # An answer to an earlier, other request may still come. Another attempt at this
                # request needs no fence: an earlier attempt's answer is an answer to it too.
                self.fence(unit)
            timeout = self.wait_for(unit, len(pdu) + 3, resp_len)
            late = 0.0 if self.tcp else max(timeout, LATE_MIN)
            r = self.link.transact(unit, pdu, resp_len, timeout=timeout, late=late)
            self.result["stats"]["late_answers"] += len(self.link.late)  # to earlier requests: dropped
            self.link.late.clear()
            if r.kind in ("ok", "exception", "odd"):
                self._learn(unit, self.link.line, r.elapsed, len(pdu) + 3, r.frame_len)
                if r.late:
                    self.result["stats"]["late_answers"] += 1
                if attempt and not self.tcp:
                    self._stale = True  # an earlier attempt's answer may still be on its way
                return r
            if attempt < retries:
                self.result["stats"]["retries"] += 1
        if not self.tcp:
            self._stale = True
        return r

    def fence(self, unit):
        """Make sure no answer to an earlier request can still arrive: an FC08/00 echo with a
        number of its own, answered, proves that the device has dealt with everything sent
        before it (a slave answers in order). Without FC08, a long silence stands in."""
        self._stale = False
        timeout = self.wait_for(unit, 8, 8)
        late = max(timeout, LATE_MIN)
        if self._echo.get(unit):
            for _ in range(FENCE_TRIES):
                self._nonce = self._nonce % 0xFFFF + 1
                pdu = bytes((8, 0, 0)) + struct.pack(">H", self._nonce)
                self.result["stats"]["fences"] += 1
                r = self.link.transact(unit, pdu, 8, timeout=timeout, late=late)
                self.result["stats"]["late_answers"] += len(self.link.late)
                self.link.late.clear()
                if r.kind == "ok":
                    return
        self.link.wait_quiet(gap=max(QUIET_FALLBACK, 2 * (timeout + late)), limit=10.0)

    def begin(self, dev):
        """Start a conversation with a found device: at its setting, once the line is quiet for as
        long as a late answer to anything sent before could take."""
        self.set_line(dev["_line"])
        unit = dev["unit"]
        self._stale = False
        if not self.tcp:
            timeout = self.wait_for(unit, 8, 7)
            self.link.wait_quiet(gap=timeout + max(timeout, LATE_MIN), limit=5.0)

    @staticmethod
    def support(r):
        if r is None:
            return "not tested"
        if r.kind == "exception":
            return "no" if r.code == 1 else ("?" if r.code in (0x0A, 0x0B) else "yes")
        if r.kind == "ok":
            return "yes"
        if r.kind == "odd":
            return "?"
        return "no reply"

    def device_id(self, unit):
        """FC43/14: basic objects, then regular and extended as the conformity level allows,
        each category streamed to its end ("more follows" / next object id)."""
        objects, conformity, error = {}, None, None
        for code, first in ((1, 0x00), (2, 0x03), (3, 0x80)):
            if code > 1 and (conformity is None or (conformity & 0x7F) < code):
                break
            obj = first
            for _ in range(8):
                r = self.ask(unit, bytes((0x2B, 0x0E, code, obj)), 256)
                if r.kind == "exception":
                    error = error or "exception %02X" % r.code
                    break
                if r.kind != "ok" or len(r.pdu) < 7 or r.pdu[1] != 0x0E:
                    error = error or ("no reply" if r.kind == "silence" else "malformed answer")
                    break
                p = r.pdu
                conformity = p[3] if conformity is None else conformity
                i, n = 7, p[6]
                for _ in range(n):
                    if i + 2 > len(p):
                        break
                    oid, ln = p[i], p[i + 1]
                    objects[oid] = bytes(p[i + 2:i + 2 + ln]).decode("utf-8", "replace")
                    i += 2 + ln
                if p[4] == 0xFF and p[5] != obj and p[5] >= first:
                    obj = p[5]
                    continue
                break
        if not objects:
            return {"supported": False, "error": error or "no objects"}
        named = {(OBJECT_NAMES[k] if k < len(OBJECT_NAMES) else "0x%02X" % k): v for k, v in sorted(objects.items())}
        return {"supported": True, "conformity": conformity, "objects": named}

    def identify(self, dev):
        unit = dev["unit"]
        fcs = {}
        ident = {}
        echo = bytes((0x08, 0x00, 0x00, 0xA5, 0x37))
        r = self.ask(unit, echo, len(echo) + 3)
        fcs[8] = self.support(r)
        ident["echo"] = "ok" if r.kind == "ok" else (
            "exception %02X" % r.code if r.kind == "exception" else r.kind)
        self._echo[unit] = r.kind == "ok"
        r = self.ask(unit, bytes((0x11,)), 256)
        fcs[17] = self.support(r)
        if r.kind == "ok" and len(r.pdu) >= 2:
            data = bytes(r.pdu[2:2 + r.pdu[1]])
            text = "".join(chr(b) if 32 <= b < 127 else " " for b in data).split()
            ident["server_id"] = {"hex": data.hex(), "text": " ".join(text)}
            ident["server_id_error"] = None
        else:
            ident["server_id"] = None
            ident["server_id_error"] = ("exception %02X" % r.code if r.kind == "exception" else
                                        "no reply" if r.kind == "silence" else r.kind)
        ident["device_id"] = self.device_id(unit)
        did = ident["device_id"]
        err = did.get("error") or ""
        fcs[43] = ("yes" if did["supported"] else "no" if err == "exception 01" else
                   "yes" if err.startswith("exception") else "no reply" if err == "no reply" else "?")
        for fc, pdu, n in ((1, (1, 0, 0, 0, 1), 6), (2, (2, 0, 0, 0, 1), 6), (3, PROBE_PDU, 7),
                           (4, (4, 0, 0, 0, 1), 7), (7, (7,), 5), (11, (11,), 8), (12, (12,), 80),
                           (24, (24, 0, 0), 80)):
            fcs[fc] = self.support(self.ask(unit, bytes(pdu), n))
        dev["identification"] = ident
        dev["functions"] = fcs

    def write_support(self, dev, maps):
        """Write codes, only with requests that cannot change anything (docs/probe.md)."""
        unit, fcs = dev["unit"], dev["functions"]
        coil = maps.get("coils", {}).get("_absent")
        hold = maps.get("holding registers", {}).get("_absent")
        tests = {
            5: None if coil is None else struct.pack(">BHH", 5, coil, 0x5A5A),
            15: struct.pack(">BHHB", 15, coil or 0, 0, 0),
            6: None if hold is None else struct.pack(">BHH", 6, hold, 0),
            16: struct.pack(">BHHB", 16, hold or 0, 0, 0),
            22: None if hold is None else struct.pack(">BHHH", 22, hold, 0xFFFF, 0x0000),
            23: struct.pack(">BHHHHB", 23, hold or 0, 1, hold or 0, 0, 0),
        }
        for fc, pdu in tests.items():
            fcs[fc] = "not tested" if pdu is None else self.support(self.ask(unit, pdu, 8))

    # ---- map --------------------------------------------------------------------------------

    def map_device(self, dev):
        maps = {}
        dev["map"] = maps
        for name, fc in TABLES:
            if dev["functions"].get(fc) != "yes":
                maps[name] = {"ranges": [], "complete": True, "requests": 0,
                              "skipped": "function %02d: %s" % (fc, dev["functions"].get(fc))}
                continue
            maps[name] = {"ranges": [], "complete": False, "requests": 0}
            TableMapper(self, dev["unit"], fc, maps[name]).run()
        return maps

    # ---- run --------------------------------------------------------------------------------

    def run(self):
        a = self.args
        for name, value, hi in (("timeout", a.timeout, 60), ("turnaround", a.turnaround, 10), ("listen", a.listen, 60)):
            if value is not None and not (0 < value <= hi or (name == "turnaround" and value == 0)):
                raise UsageError("--%s %s: expected seconds, more than 0 and at most %d" % (name, value, hi))
        if a.ids:
            ids = parse_ids(a.ids, 0 if self.tcp else 1, 255 if self.tcp else 247)
        else:  # over TCP also 0 and 255, which many TCP-only devices expect
            ids = list(range(1, 248)) + ([0, 255] if self.tcp else [])
        lost = None
        try:
            lines = self.open()
            self.discover([ln for ln in lines if ln not in self._dead], ids)
            for dev in self.result["devices"]:
                if a.no_identify:
                    continue
                self.begin(dev)
                self.progress.status("identifying unit %d" % dev["unit"], force=True)
                self.identify(dev)
                maps = {}
                if not a.no_map:
                    self.progress.status("mapping unit %d" % dev["unit"], force=True)
                    maps = self.map_device(dev)
                self.write_support(dev, maps)
                t = self._timing.get(dev["unit"])
                dev["reply_time"] = None if t is None else round(t["turnaround"], 4)
                dev["timeout"] = round(self.wait_for(dev["unit"], 8, 7), 4)
            self.result["complete"] = True
            code = EXIT_FOUND if self.result["devices"] else EXIT_NONE
        except KeyboardInterrupt:
            self.note("interrupted: results so far")
            code = EXIT_INTERRUPTED
        except (OSError, serial.SerialException) as e:  # the port went away while probing
            lost = "lost %s while probing: %s" % (a.port, e)
            self.note(lost)
            code = EXIT_ERROR
        finally:
            self.progress.clear()
            if self.link is not None:
                st = self.result["stats"]
                st["requests"] = self.link.requests
                st["stray_frames"] = self.link.strays
                if self.link.echo_seen:
                    self.note("the adapter echoes what it sends (local echo); echoed requests were skipped")
                self.link.close()
            self.result["stats"]["seconds"] = round(time.monotonic() - self.t0, 3)
        self.print()
        if lost is not None:
            clitools.fail("probe", lost)
        elif code == EXIT_NONE and not self.result["devices"]:
            clitools.fail("probe", "no device answered (%d requests); the report is on stdout"
                          % self.result["stats"]["requests"])
        return code

    # ---- output -------------------------------------------------------------------------------

    def public(self):
        traffic = self.result["traffic"] + list(self._traffic.values())
        devices = [{k: v for k, v in dev.items() if not k.startswith("_")} for dev in self.result["devices"]]
        res = json.loads(json.dumps(dict(self.result, traffic=traffic, devices=devices), default=lambda o: None))
        for dev in res["devices"]:
            for m in dev.get("map", {}).values():
                m.pop("_absent", None)
        return res

    def print(self):
        res = self.public()
        if self.args.json:
            clitools.print_json(res, self.out)
        else:
            self.out.write(format_text(res))
        self.out.flush()


class TableMapper:
    """Islands of present addresses in one table with a bounded number of reads."""

    def __init__(self, prober, unit, fc, out):
        self.p, self.unit, self.fc, self.out = prober, unit, fc, out
        self.known = {}
        self.span = MAX_SPAN
        self.assumed = []

    def _resp_len(self, qty):
        return 5 + ((qty + 7) // 8 if self.fc in (1, 2) else 2 * qty)

    def _read(self, addr, qty):
        if self.out["requests"] >= MAP_BUDGET:
            raise _Budget()
        self.out["requests"] += 1
        return self.p.ask(self.unit, struct.pack(">BHH", self.fc, addr, qty), self._resp_len(qty))

    def present(self, addr):
        if addr not in self.known:
            r = self._read(addr, 1)
            self.known[addr] = r.kind == "ok"
            if r.kind == "exception" and r.code == 2 and "_absent" not in self.out:
                self.out["_absent"] = addr
            if r.kind not in ("ok", "exception"):
                self._unanswered(addr, r)
        return self.known[addr]

    def _unanswered(self, addr, r):
        """A read the device never answered (all tries): not evidence of anything. It is taken as
        absent for the search, and the table is marked incomplete."""
        self.out.setdefault("unanswered", [])
        if addr not in self.out["unanswered"]:
            self.out["unanswered"].append(addr)
        self.p.note("%s: no answer at %d after %d tries (%s): the map of this table is incomplete"
                    % (self._name(), addr, 1 + RETRIES, r.kind))

    def span_ok(self, first, last):
        """True when every address first..last is present (one read when it fits)."""
        while True:
            qty = last - first + 1
            if qty <= 1:
                return self.present(first)
            if qty > self.span:
                return all(self.span_ok(a, min(a + self.span - 1, last))
                           for a in range(first, last + 1, self.span))
            r = self._read(first, qty)
            if r.kind == "ok":
                return True
            if r.kind == "exception" and r.code == 2:
                return False
            if r.kind not in ("ok", "exception"):
                self._unanswered(first, r)
            if self.span <= 8:  # the device refuses long reads: trust the samples
                return True
            self.span //= 2  # exception 03 and the like: a smaller quantity limit

    def _name(self):
        return dict((fc, n) for n, fc in TABLES)[self.fc]

    def first_present(self, absent, present):
        """Lowest address a in (absent, present] with a..present present (point probes)."""
        lo, hi = absent, present
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.present(mid):
                hi = mid
            else:
                lo = mid
        return hi

    def last_present(self, present, absent):
        lo, hi = present, absent
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.present(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def last_span(self, first, last):
        """Largest x in [first, last] with first..x all present, knowing that not all of
        first..last are: walk one read at a time to the failing read, then bisect inside it."""
        a = first
        while True:
            b = min(a + self.span - 1, last)
            if b <= a:
                return a
            if not self.span_ok(a, b):
                break
            if b == last:
                return last
            a = b
        lo, hi = a, b
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.span_ok(a, mid):
                lo = mid
            else:
                hi = mid
        return lo

    def run(self):
        """Sample, then for every run of present samples: bisect its two ends, and check with
        reads of up to `span` addresses that the points in between are one island (a failing
        read splits it where the hole is)."""
        known = self.known
        try:
            for s in SAMPLES:
                self.present(s)
            k = 0
            while k < len(SAMPLES):
                if not known[SAMPLES[k]]:
                    k += 1
                    continue
                b = k
                while b + 1 < len(SAMPLES) and known[SAMPLES[b + 1]]:
                    b += 1
                start = 0 if k == 0 else self.first_present(SAMPLES[k - 1], SAMPLES[k])
                end = 65535 if b + 1 == len(SAMPLES) else self.last_present(SAMPLES[b], SAMPLES[b + 1])
                self.walk(sorted({start, end, *SAMPLES[k:b + 1]}))
                k = b + 1
            self.out["complete"] = not self.out.get("unanswered")
        except _Budget:
            self.p.note("%s: stopped after %d requests (budget); ranges may be incomplete"
                        % (self._name(), MAP_BUDGET))
        if self.assumed:
            self.out["assumed_contiguous"] = self.assumed

    def walk(self, points):
        """points: known-present addresses, the first and last being an island's ends."""
        islands = self.out["ranges"]
        seg_start = cur = points[0]
        while cur < points[-1]:
            i = points.index(cur)
            m = i + 1
            while m + 1 < len(points) and points[m + 1] - cur < self.span:
                m += 1
            target = points[m]
            if target - cur >= 2 * MAX_SPAN:
                self.assumed.append([cur, target])  # too far apart to check cheaply
                cur = target
            elif self.span_ok(cur, target):
                cur = target
            else:  # a hole between two present points
                end = self.last_span(cur, target)
                islands.append([seg_start, end])
                nxt = next(p for p in points if p > end)
                seg_start = cur = self.first_present(end + 1, nxt)
                if cur not in points:
                    points = sorted(set(points) | {cur})
        islands.append([seg_start, points[-1]])


class _Budget(Exception):
    pass


def _hexrange(a, b, regs):
    w = 4
    n = b - a + 1
    return "0x%0*X-0x%0*X (%d-%d, %d %s)" % (w, a, w, b, a, b, n, "address" if n == 1 else "addresses")


def format_text(res):
    rows = [("port", res["port"])]
    if not res["devices"]:
        rows.append(("device", "none found"))
    for dev in res["devices"]:
        where = "" if dev["serial"] is None else ", " + dev["serial"]["label"]
        if dev["serial"] is not None and dev["serial"].get("parity_confirmed") is False:
            where += " (parity not determined: see the notes)"
        rows.append(("device", "unit %d%s" % (dev["unit"], where)))
        fa = dev["found_after"]
        rows.append(("found", "after %d requests, %.1f s%s" % (
            fa["requests"], fa["seconds"], "" if dev["late_by"] is None else
            " (answered late, after %.0f ms)" % (dev["late_by"] * 1000))))
        ident = dev.get("identification")
        if ident:
            did = ident["device_id"]
            if did["supported"]:
                first = True
                for k, v in did["objects"].items():
                    rows.append(("identity" if first else "", "%-20s %s" % (k, v)))
                    first = False
                rows.append(("", "conformity level 0x%02X" % did["conformity"]))
            else:
                err = did.get("error")
                rows.append(("identity", "FC43/14 not supported (%s)" % err if err == "exception 01" else
                             "FC43/14 not answered (%s)" % err))
            sid = ident["server_id"]
            if sid is not None:
                text = "%s  (hex %s)" % (sid["text"] or "-", sid["hex"])
            else:
                err = ident.get("server_id_error") or "no answer"
                text = "not supported (%s)" % err if err == "exception 01" else err
            rows.append(("server id", text))
            rows.append(("echo", "FC08/00 %s" % ident["echo"]))
        if dev.get("functions"):
            items = sorted(dev["functions"].items(), key=lambda kv: int(kv[0]))
            line = []
            first = True
            for fc, what in items:
                line.append("%02d %s" % (int(fc), what))
                if len(line) == 6:
                    rows.append(("functions" if first else "", "  ".join(line)))
                    first, line = False, []
            if line:
                rows.append(("functions" if first else "", "  ".join(line)))
        for name, m in dev.get("map", {}).items():
            if m.get("skipped"):
                text = "not mapped (%s)" % m["skipped"]
            elif not m["ranges"]:
                text = "none"
            else:
                text = ", ".join(_hexrange(a, b, True) for a, b in m["ranges"])
            if not m["complete"]:
                text += "  [incomplete]"
            rows.append(("map" if name == "coils" else "", "%-18s %s" % (name, text)))
    for t in res["traffic"]:
        rows.append(("traffic", "%s: %d frames, addresses %s (%s)" % (
            t["serial"], t["frames"], ",".join(map(str, t["units"])), t["how"])))
    for n in res["notes"]:
        rows.append(("note", n))
    st = res["stats"]
    extra = ["%d %s" % (st[k], what) for k, what in (("retries", "retried"), ("late_answers", "late"),
                                                      ("stray_frames", "stray"), ("fences", "fences")) if st.get(k)]
    rows.append(("requests", "%d in %.1f s; discovery %d in %s s%s%s" % (
        st["requests"], st["seconds"], st["discovery_requests"], st["discovery_seconds"],
        "; " + ", ".join(extra) if extra else "", "" if res["complete"] else "  INTERRUPTED")))
    if st["timeouts"]:
        waits = ["%s %.1f ms" % (k, v * 1000) for k, v in st["timeouts"].items()]
        for j in range(0, len(waits), 4):
            rows.append(("timeouts" if j == 0 else "", ", ".join(waits[j:j + 4])))
    return "".join("%-10s %s\n" % r for r in rows)


def run(args):
    """Entry point of `mbnode probe` (cli.py): exit code 0 found, 1 none found (or the port lost),
    130 interrupted; UsageError (bad options) and ProbeError go to clitools.guard (one line,
    exit 2 and 1)."""
    return Prober(args).run()
