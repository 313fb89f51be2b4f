"""`mbnode monitor PORT` watching a Modbus RTU line it never writes to.

The line is tests/fakes/line_emulator.py with pty ends: the simulator (slave) on one, pymodbus
(master) on another, the monitor on a third, and a fourth the test writes raw bytes to (noise,
a frame with a broken CRC). Every end hears every other bit by bit at its own setting, so the
monitor receives exactly the characters the master and the slave put on the wire, in pieces of
up to 8 (a UART's FIFO) at the emulated wire times. Every request the master makes is listed and
checked one to one against the monitor's transactions. The framer alone is checked on synthetic
reads too (merged and split reads, junk before frames).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from conftest import need  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Setting as WireSetting  # noqa: E402
from rtutest import adu, hx  # noqa: E402

from mbnode_host.busframes import Framer  # noqa: E402
from mbnode_host.monitor import Setting  # noqa: E402
from mbnode_host.transactions import Pairer  # noqa: E402

BAUD = 19200
# Parity N: a pty here drops PARENB (see tests/test_rtu_pymodbus.py), the emulator reads termios.
LINE_ARGS = ("--baud", str(BAUD), "--parity", "N")
WAIT = 20.0
# What a master waits after a broadcast before its next request (Modbus over Serial Line 2.4.1:
# the slave needs t3.5 of silence to take the frame as ended and execute it): the protocol's
# delay, not a synchronisation; the wait on the slave's end having received it comes first.
BROADCAST_TURNAROUND = 0.1


def need_pymodbus():
    try:
        import pymodbus  # noqa: F401
    except ImportError:
        need("pymodbus", False)


class Monitor:
    """`mbnode monitor` as a process; its stdout lines in a queue, read by a thread."""

    def __init__(self, port, *extra, args=LINE_ARGS):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "mbnode_host.cli", "monitor", port, *args, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        self.err = []
        listening = threading.Event()

        def read_out():
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)

        def read_err():
            for line in self.proc.stderr:
                self.err.append(line.rstrip("\n"))
                if "listening on" in line:
                    listening.set()
            listening.set()

        self.threads = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
        for t in self.threads:
            t.start()
        assert listening.wait(WAIT) and self.proc.poll() is None, "monitor did not start: %s" % self.err
        self.seen = []

    def next(self, want, timeout=WAIT):
        """The next stdout line `want` accepts; the lines before it are kept in .seen."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError("monitor: no awaited line within %g s; seen %s; stderr %s"
                                     % (timeout, self.seen[-5:], self.err))
            if line is None:
                raise AssertionError("monitor ended; seen %s; stderr %s" % (self.seen[-5:], self.err))
            self.seen.append(line)
            if want(line):
                return line

    def rest(self):
        """All remaining stdout lines until the process ends (bounded)."""
        out = []
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                return out
            out.append(line)
        raise AssertionError("monitor did not end; last lines %s" % out[-5:])

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out = self.rest()
        self.seen += out
        status = self.proc.wait(timeout=WAIT)
        for t in self.threads:
            t.join(WAIT)
        return status, out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(cond, what, timeout=WAIT):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "no %s within %g s" % (what, timeout)
        time.sleep(0.005)


def json_records(m):
    return [json.loads(line) for line in m.seen]


@pytest.fixture
def bus(start_sim):
    """(line, sim, master end url, monitor end url, raw writer on the fourth end)."""
    need_pymodbus()
    line = LineEmulator([PtyEnd(), PtyEnd(), PtyEnd(), PtyEnd()]).start()
    try:
        sim = start_sim(rtu=line.url(0), baud=BAUD, parity="N", tcp=False)
        raw = serial.Serial(line.url(3), BAUD, parity="N", stopbits=2, timeout=0)
        try:
            yield line, sim, line.url(1), line.url(2), raw
        finally:
            raw.close()
    finally:
        stop_line(line)


def stop_line(line):
    if not getattr(line, "stopped", False):
        line.stopped = True
        line.stop()


def master(url, timeout=1.0):
    from pymodbus.client import ModbusSerialClient
    from pymodbus import FramerType

    c = ModbusSerialClient(port=url, framer=FramerType.RTU, baudrate=BAUD, parity="N", stopbits=2,
                           timeout=timeout, retries=0)  # no retries: one request per call
    assert c.connect(), "pymodbus could not open %s" % url
    return c


class Master:
    """pymodbus with a list of what it asked: (unit, function, address, count, expected)."""

    def __init__(self, url):
        self.c = master(url)
        self.asked = []

    def call(self, expect, method, *args, broadcast=False, **kw):
        """expect: (unit, function, address, count) the monitor must show for this call."""
        from pymodbus.exceptions import ModbusIOException

        self.asked.append(expect)
        try:
            return getattr(self.c, method)(*args, device_id=expect[0], no_response_expected=broadcast, **kw)
        except ModbusIOException:
            return None  # no answer (the wrong unit): the monitor must say so too

    def close(self):
        self.c.close()


def exception_code(rr):
    assert rr is not None and rr.isError(), rr
    return rr.exception_code


def test_monitor_sees_every_transaction_as_json(bus):
    line, sim, master_url, monitor_url, raw = bus
    mon = Monitor(monitor_url, "--json")
    m = Master(master_url)
    try:
        assert not m.call((1, 16, 0x40, 3), "write_registers", 0x40, [1, 2, 3]).isError()
        assert m.call((1, 3, 0x40, 3), "read_holding_registers", 0x40, count=3).registers == [1, 2, 3]
        assert not m.call((1, 5, 0x3B, 1), "write_coil", 0x3B, True).isError()
        assert not m.call((1, 15, 0x3A, 1), "write_coils", 0x3A, [True]).isError()
        assert m.call((1, 1, 0x3A, 4), "read_coils", 0x3A, count=4).bits[:4] == [True, True, False, False]
        assert not m.call((1, 6, 0x3F, 1), "write_register", 0x3F, 0x3FF).isError()
        assert len(m.call((1, 4, 0x13E, 2), "read_input_registers", 0x13E, count=2).registers) == 2
        assert len(m.call((1, 2, 0, 4), "read_discrete_inputs", 0, count=4).bits) >= 4
        assert exception_code(m.call((1, 3, 0x140, 1), "read_holding_registers", 0x140, count=1)) == 2
        assert exception_code(m.call((1, 6, 0x3F, 1), "write_register", 0x3F, 0x400)) == 3
        assert not m.call((1, 22, 0x100, 1), "mask_write_register", address=0x100, and_mask=0xF2,
                          or_mask=0x25).isError()
        rr = m.call((1, 23, 0x40, 2), "readwrite_registers", read_address=0x40, read_count=2,
                    write_address=0x42, values=[9])
        assert rr.registers == [1, 2]
        assert m.call((1, 8, None, None), "diag_query_data", b"\xa5\x5a") is not None  # FC08/00: length unknown
        # noise, then a request with a broken CRC, from the fourth end: nobody answers them
        raw.write(b"\x00\xff\xfe")
        mon.next(lambda s: json.loads(s)["kind"] == "noise")
        raw.write(adu(1, hx("03 0000 0001"), bad_crc=True))
        mon.next(lambda s: json.loads(s)["kind"] == "crc_error")
        # a broadcast write (executed, never answered), then read back once the slave has it
        # and the master's turnaround delay after a broadcast has passed
        before = line.stats[0]["bytes"]
        assert m.call((0, 6, 0x41, 1), "write_register", 0x41, 7, broadcast=True) is None
        wait_for(lambda: line.stats[0]["bytes"] >= before + 8, "the broadcast reaching the slave")
        time.sleep(BROADCAST_TURNAROUND)
        assert m.call((1, 3, 0x41, 1), "read_holding_registers", 0x41, count=1).registers == [7]
        assert m.call((9, 3, 0, 1), "read_holding_registers", 0, count=1) is None  # nobody is unit 9
        assert m.call((1, 3, 0, 2), "read_holding_registers", 0, count=2) is not None
        # the last transaction shown: everything before it was seen
        mon.next(lambda s: json.loads(s).get("request") == adu(1, hx("03 0000 0002")).hex())
    finally:
        m.close()
        status, _ = mon.stop()
        mon.kill()
    assert status == 130, mon.err
    recs = json_records(mon)
    tx = [r for r in recs if r["kind"] == "transaction"]
    assert [(r["unit"], r["function"], r.get("address"), r.get("count")) for r in tx] == m.asked
    by_fc = {}
    for r in tx:
        by_fc.setdefault((r["unit"], r["function"]), []).append(r)
    write16, read_back = by_fc[(1, 16)][0], by_fc[(1, 3)][0]
    assert write16["values"] == [1, 2, 3] and write16["answered"] and write16["exception"] is None
    assert read_back["values"] == [1, 2, 3] and read_back["name"] == "read holding registers"
    assert by_fc[(1, 1)][0]["values"] == [1, 1, 0, 0]
    assert by_fc[(1, 5)][0]["values"] == [1]
    assert [r["exception"] for r in by_fc[(1, 3)]] == [None, 2, None, None]
    assert by_fc[(1, 3)][1]["exception_name"] == "illegal data address"
    assert [r["exception"] for r in by_fc[(1, 6)]] == [None, 3]
    assert by_fc[(1, 22)][0]["and_mask"] == 0xF2 and by_fc[(1, 22)][0]["or_mask"] == 0x25
    assert by_fc[(1, 23)][0]["read_values"] == [1, 2] and by_fc[(1, 23)][0]["values"] == [9]
    diag = by_fc[(1, 8)][0]
    assert diag["sub_function"] == 0 and diag["data"] == "a55a" and diag["response"] == diag["request"]
    [bc] = by_fc[(0, 6)]
    assert bc["broadcast"] and not bc["answered"] and bc["values"] == [7]
    [lost] = by_fc[(9, 3)]
    assert not lost["answered"] and not lost["broadcast"] and lost["response"] is None
    for r in tx:
        assert r["turnaround_ms"] is None or r["turnaround_ms"] >= 0
        if r["answered"]:
            assert r["response"][:2] == r["request"][:2]
    [noise] = [r for r in recs if r["kind"] == "noise"]
    assert noise["bytes"] == "00fffe" and noise["length"] == 3
    [crc] = [r for r in recs if r["kind"] == "crc_error"]
    assert crc["bytes"] == adu(1, hx("03 0000 0001"), bad_crc=True).hex() and crc["looks_like"] == "request"
    assert not [r for r in recs if r["kind"] == "unexpected_response"]
    [summary] = [r for r in recs if r["kind"] == "summary"]
    assert recs[-1] is summary
    answered = len(m.asked) - 2
    assert summary["transactions"] == len(m.asked) and summary["answered"] == answered
    assert (summary["broadcasts"], summary["unanswered"], summary["exceptions"]) == (1, 1, 2)
    assert (summary["crc_errors"], summary["noise"], summary["noise_bytes"]) == (1, 1, 3)
    per = {(e["unit"], e["function"]): e["transactions"] for e in summary["per_unit_function"]}
    assert per == {k: len(v) for k, v in by_fc.items()}
    assert sum(per.values()) == len(m.asked)


def test_monitor_text_lines_and_the_port_going_away(bus):
    line, sim, master_url, monitor_url, raw = bus
    mon = Monitor(monitor_url)
    m = Master(master_url)
    try:
        assert not m.call((1, 16, 0x40, 2), "write_registers", 0x40, [1023, 42]).isError()
        assert m.call((1, 3, 0x40, 2), "read_holding_registers", 0x40, count=2).registers == [1023, 42]
        assert exception_code(m.call((1, 3, 0x140, 1), "read_holding_registers", 0x140, count=1)) == 2
        mon.next(lambda s: "illegal data address" in s)
    finally:
        m.close()
    try:
        stop_line(line)  # the line's ends close: the monitor's port goes away
        mon.seen += mon.rest()
        status = mon.proc.wait(timeout=WAIT)
    finally:
        mon.kill()
    assert status == 1
    assert any("went away" in e for e in mon.err), mon.err
    tx = [s for s in mon.seen if " unit " in s and not s.startswith(" ")]
    assert len(tx) == len(m.asked) == 3
    assert "unit 1 fc16 write multiple registers 64-65 = 1023 42: ok" in tx[0]
    assert "unit 1 fc03 read holding registers 64-65: 1023 42" in tx[1]
    assert "unit 1 fc03 read holding registers 320: exception 02 illegal data address" in tx[2]
    assert ("summary: 3 transactions (3 answered, 1 exception, 0 broadcasts, 0 unanswered), 0 CRC errors, "
            "0 noise bursts (0 bytes), 0 responses without a request") in mon.seen, mon.seen
    assert "  unit 1 fc03 read holding registers: 2" in mon.seen


def test_monitor_over_rfc2217_hears_only_at_the_line_setting(start_sim):
    # 19200 8E1, the defaults of the simulator, pymodbus's call below and the monitor; a pty here
    # drops PARENB, so the simulator's pty end is given parity E (line_emulator.PtyEnd), the
    # master's the whole setting (pymodbus opens its pty at N, which the pty keeps), and the
    # monitors are on RFC 2217 ends, where parity is a setting like any other. A second monitor at
    # parity O hears every character with a parity error: the kernel-side policy drops them all.
    need_pymodbus()
    master_end = PtyEnd(fixed=WireSetting(BAUD, 8, "E", 1))
    with LineEmulator([PtyEnd(parity="E"), master_end, "rfc2217", "rfc2217"]) as line:
        start_sim(rtu=line.url(0), tcp=False)
        right = Monitor(line.url(2), "--json", args=())
        wrong = Monitor(line.url(3), "--json", "--parity", "O", args=())
        from pymodbus.client import ModbusSerialClient
        from pymodbus import FramerType

        c = ModbusSerialClient(port=line.url(1), framer=FramerType.RTU, baudrate=BAUD, parity="N", stopbits=1,
                               timeout=1.0, retries=0)
        try:
            assert c.connect()
            assert not c.write_registers(0x40, [5, 6], device_id=1).isError()
            assert c.read_holding_registers(0x40, count=2, device_id=1).registers == [5, 6]
            right.next(lambda s: json.loads(s).get("function") == 3)
        finally:
            c.close()
            status, _ = right.stop()
            wrong_status, _ = wrong.stop()
            right.kill()
            wrong.kill()
    assert status == wrong_status == 130
    recs = json_records(right)
    assert [(r["kind"], r.get("function")) for r in recs] == [("transaction", 16), ("transaction", 3),
                                                              ("summary", None)]
    assert recs[1]["values"] == [5, 6]
    [summary] = json_records(wrong)
    assert summary["transactions"] == summary["noise_bytes"] == summary["crc_errors"] == 0


def test_monitor_refuses_bad_arguments_and_missing_ports(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    cmd = [sys.executable, "-m", "mbnode_host.cli", "monitor"]
    r = subprocess.run(cmd + [str(tmp_path / "nope")], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("mbnode monitor: no such port") and "Traceback" not in r.stderr
    r = subprocess.run(cmd + [str(tmp_path / "nope"), "--baud", "7"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 2 and "--baud 7: allowed" in r.stderr and len(r.stderr.splitlines()) == 1


# ---- the framer and the pairing on synthetic reads ----------------------------------------------

SET = Setting(BAUD, "N", 2)


def frames_of(chunks, gap=SET.t35 + 0.020, linger=0.1):
    """Records for reads [(bytes, host time)], then idle and the end."""
    f = Framer(SET.wire, gap, linger)
    p = Pairer(1.0)
    out = []
    t = 0.0
    for data, t in chunks:
        for ev in f.feed(data, t):
            out += p.event(ev)
    for ev in f.idle(t + 1.0) + f.flush():
        out += p.event(ev)
    out += p.flush()
    return out, p.summary()


REQ = adu(1, hx("03 0000 0002"))
RSP = adu(1, hx("03 04 0001 0002"))
ECHO = adu(1, hx("08 0000 1234"))


@pytest.mark.parametrize("cut", [None, 1, 3, 8, 11])
def test_framer_splits_merged_and_split_reads(cut):
    stream = REQ + RSP + ECHO + ECHO + adu(0, hx("06 0041 0007")) + REQ + RSP
    chunks = [(stream, 1.0)] if cut is None else [
        (stream[i:i + cut], 1.0 + i * SET.char) for i in range(0, len(stream), cut)]
    recs, s = frames_of(chunks)
    assert [(r["kind"], r["function"], r["answered"]) for r in recs] == [
        ("transaction", 3, True), ("transaction", 8, True), ("transaction", 6, False), ("transaction", 3, True)]
    assert recs[0]["values"] == [1, 2] and recs[2]["broadcast"]
    assert s["transactions"] == 4 and s["noise"] == s["crc_errors"] == 0


def test_framer_junk_before_frames_and_silence():
    bad = adu(1, hx("03 0000 0001"), bad_crc=True)
    recs, s = frames_of([(b"\x00\xff\xfe" + REQ, 1.0), (RSP, 1.01), (bad, 2.0), (b"\x07", 3.0), (REQ, 4.0),
                         (adu(2, hx("03 0000 0001")), 6.0), (RSP, 7.0)])
    kinds = [(r["kind"], r.get("answered")) for r in recs]
    assert kinds == [("noise", None), ("transaction", True), ("crc_error", None), ("noise", None),
                     ("transaction", False), ("unexpected_response", None), ("transaction", False)]
    assert recs[2]["looks_like"] == "request" and recs[3]["bytes"] == "07"
    assert s["unanswered"] == 2 and s["noise_bytes"] == 4 and s["unexpected_responses"] == 1


def test_turnaround_only_where_the_reads_tell_it():
    recs, _ = frames_of([(REQ, 1.0), (RSP, 1.0 + 0.005 + SET.wire(len(RSP)))])
    assert recs[0]["turnaround_ms"] == pytest.approx(5.0, abs=0.2)
    recs, _ = frames_of([(REQ + RSP, 1.0)])
    assert recs[0]["turnaround_ms"] is None


def test_monitor_stops_on_sigterm_with_its_summary():
    master_fd, slave_fd = os.openpty()
    try:
        mon = Monitor(os.ttyname(slave_fd), "--json")
        try:
            status, out = mon.stop(signal.SIGTERM)
        finally:
            mon.kill()
    finally:
        os.close(master_fd)
        os.close(slave_fd)
    assert status == 130
    [summary] = [json.loads(s) for s in out]
    assert summary["kind"] == "summary" and summary["transactions"] == 0 and summary["per_unit_function"] == []
    assert any("pseudo-terminal" in e for e in mon.err), mon.err
