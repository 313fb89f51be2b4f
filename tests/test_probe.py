"""`mbnode probe`: discovery, identification and mapping of Modbus devices it knows nothing
about, against a third-party slave (pymodbus, tests/fakes/pymodbus_rtu_device.py) and against
the mbnode simulator, over tests/fakes/line_emulator.py, where baud rate and parity must really
match and answers take their wire time.

The blind discovery run (every setting and id up to 38400 8O1 unit 17, 2023 attempts) uses a
fixed 12 ms wait per attempt instead of the formula's 46-61 ms, to keep this file fast; the
emulated pymodbus device answers in about 6 ms, and on a busy machine later than 12 ms: the
probe must then still find it and map it exactly. bench/probe.py measures the real timeouts.

Third-party-like devices with the habits that trouble a master (slow, missing requests, a UART
that checks no parity, refusing FC17) are tests/fakes/emulated_slave.py, on the emulator's own
timeline.
"""

import argparse
import fcntl
import importlib.util
import io
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest
import serial

from conftest import ROOT, need
from mbtest import cli

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from emulated_slave import EmulatedSlave  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Receiver, Rfc2217End, Setting, Waveform, received_byte  # noqa: E402
from mbnode_host import probe as probe_module  # noqa: E402
from mbnode_host import serialline  # noqa: E402
from mbnode_host.probe import MAP_BUDGET, TableMapper  # noqa: E402
from mbnode_host.rtuclient import Reply, RtuLink, fits, with_crc  # noqa: E402
from mbnode_host.serialline import Line  # noqa: E402

DEVICE = ROOT / "tests" / "fakes" / "pymodbus_rtu_device.py"
PYMODBUS_IDENTITY = {"VendorName": "PyModbus Fake Devices", "ProductCode": "PMF-RTU-17"}


def need_pymodbus():
    need("pymodbus (the third-party RTU slave)", importlib.util.find_spec("pymodbus"))


class Device:
    """The pymodbus RTU slave as a process on one end of an emulated line."""

    def __init__(self, port, baud=38400, parity="O", unit=17, stopbits=1, delay=0.0):
        self.proc = subprocess.Popen(
            [sys.executable, str(DEVICE), "--port", port, "--baud", str(baud), "--parity", parity,
             "--unit", str(unit), "--stopbits", str(stopbits), "--delay", str(delay)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError("pymodbus device did not start: %s" % self.proc.stderr.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def pymodbus_line():
    """Emulated line: end 0 for the probe (rfc2217://), end 1 the pymodbus device at 38400 8O1,
    unit 17, holding registers 100-199 only."""
    need_pymodbus()
    line = LineEmulator(["rfc2217", "rfc2217"]).start()
    dev = None
    try:
        dev = Device(line.url(1))
        yield line
    finally:
        if dev is not None:
            dev.stop()
        line.stop()


def probe(*args, timeout=60):
    return cli("probe", *args, timeout=timeout)


def probe_json(*args, timeout=60):
    r = probe(*(args + ("--json",)), timeout=timeout)
    assert r.returncode in (0, 1), "probe failed (%d): %s" % (r.returncode, r.stderr)
    if r.returncode == 1:  # nothing found (docs/cli.md): the report, and the verdict on stderr
        assert r.stderr.startswith("mbnode probe: no device answered"), r.stderr
    return r.returncode, json.loads(r.stdout)


@pytest.fixture(scope="module")
def blind(pymodbus_line):
    """One probe that knows nothing: no baud rate, parity or id given."""
    t0 = time.monotonic()
    code, res = probe_json(pymodbus_line.url(0), "--timeout", "0.012", timeout=150)
    return code, res, time.monotonic() - t0


# ---- against a third-party device, from no knowledge ----------------------------------------

def test_blind_probe_finds_the_pymodbus_device(blind):
    code, res, _ = blind
    assert code == 0 and res["complete"] is True
    [dev] = res["devices"]
    assert dev["unit"] == 17
    assert dev["serial"] == {"baud": 38400, "parity": "O", "stopbits": 1, "label": "38400 8O1",
                             "parity_confirmed": True}
    # Documented order: 8 likely settings x ids 1, 2, 247 (24), twice, then every id of 9600
    # E/N/O, 19200 E/N/O, 38400 E/N (8 x 247, less the 18 likely pairs already tried twice),
    # then 38400 O ids 1..17: the 2023rd request is the one unit 17 answers (on a busy machine
    # maybe only after the 2024th was sent: it is still counted for the request it answers).
    # Then the parity check: FC08 at 38400 O (asked again if need be), E and N.
    assert dev["found_after"]["requests"] == 48 + 8 * 247 - 18 + 17 == 2023
    assert 2023 + 3 <= res["stats"]["discovery_requests"] <= 2023 + 5
    assert res["traffic"] == [] and res["garbled"] == []


def test_blind_probe_identifies_the_pymodbus_device(blind):
    dev = blind[1]["devices"][0]
    ident = dev["identification"]
    did = ident["device_id"]
    assert did["supported"] and did["conformity"] & 0x7F == 3
    for key, value in PYMODBUS_IDENTITY.items():
        assert did["objects"][key] == value
    assert "PyModbus Fake Devices" in ident["server_id"]["text"]
    assert ident["echo"] == "ok"
    fcs = dev["functions"]
    for fc in ("1", "2", "3", "4", "8", "17", "43"):
        assert fcs[fc] == "yes", (fc, fcs)


def test_blind_probe_maps_holding_registers_100_to_199_only(blind):
    maps = blind[1]["devices"][0]["map"]
    assert maps["holding registers"]["ranges"] == [[100, 199]]
    for table in ("coils", "discrete inputs", "input registers"):
        assert maps[table]["ranges"] == [], table
    for table, m in maps.items():
        assert m["complete"] and 0 < m["requests"] <= MAP_BUDGET and "unanswered" not in m, (table, m)


def test_probe_text_output(pymodbus_line):
    r = probe(pymodbus_line.url(0), "--baud", "38400", "--parity", "O", "--ids", "15-20")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"^device +unit 17, 38400 8O1$", out, re.M), out
    assert re.search(r"^found +after 3 requests", out, re.M), out
    assert re.search(r"^ +holding registers +0x0064-0x00C7 \(100-199, 100 addresses\)$", out, re.M), out
    assert re.search(r"^identity +VendorName +PyModbus Fake Devices$", out, re.M), out
    assert r.stderr == ""  # no progress when stderr is not a terminal


# ---- narrowing ------------------------------------------------------------------------------

def test_narrowed_ids_and_setting(pymodbus_line):
    code, res = probe_json(pymodbus_line.url(0), "--baud", "38400", "--parity", "O", "--ids", "10-20",
                           "--no-identify")
    assert code == 0
    assert [d["unit"] for d in res["devices"]] == [17]
    assert res["stats"]["discovery_requests"] == 8  # ids 10..17, nothing else
    assert "identification" not in res["devices"][0] and "map" not in res["devices"][0]
    assert list(res["stats"]["timeouts"]) == ["38400 8O1"]
    # The formula: 8-byte request + t3.5 + 7-byte answer at 38400 8O1 + 40 ms turnaround.
    assert res["stats"]["timeouts"]["38400 8O1"] == pytest.approx(0.0460, abs=0.0001)


def test_wrong_parity_finds_nothing(pymodbus_line):
    code, res = probe_json(pymodbus_line.url(0), "--baud", "38400", "--parity", "E,N", "--ids", "17",
                           "--timeout", "0.05")
    assert code == 1 and res["devices"] == []
    assert res["stats"]["discovery_requests"] == 2


def test_ids_outside_the_list_are_not_tried(pymodbus_line):
    r = probe(pymodbus_line.url(0), "--baud", "38400", "--parity", "O", "--ids", "1-5,200",
              "--timeout", "0.03")
    assert r.returncode == 1, r.stderr
    assert re.search(r"^device +none found$", r.stdout, re.M)
    assert re.search(r"^requests +6 in ", r.stdout, re.M), r.stdout


def test_all_keeps_sweeping_the_found_setting_only(pymodbus_line):
    code, res = probe_json(pymodbus_line.url(0), "--parity", "O", "--baud", "38400,19200", "--ids", "16-19",
                           "--all", "--no-identify", "--timeout", "0.03")
    assert code == 0 and [d["unit"] for d in res["devices"]] == [17]
    assert res["stats"]["discovery_requests"] == 4  # 16..19 at 38400; 19200 skipped after the find


# ---- errors and Ctrl-C ----------------------------------------------------------------------

def one_line_error(r, status=1):
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert r.stdout == ""
    return lines[0]


def test_missing_port_is_one_line_and_exit_1(tmp_path):
    msg = one_line_error(probe(str(tmp_path / "ttyUSB9")))
    assert msg.startswith("mbnode probe: no such port: %s" % (tmp_path / "ttyUSB9")), msg


def test_busy_port_is_one_line_and_exit_1():
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        holder = os.open(path, os.O_RDWR | os.O_NOCTTY)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive=True does
        try:
            msg = one_line_error(probe(path, "--parity", "N"))
        finally:
            os.close(holder)
        assert msg == "mbnode probe: %s is busy: another program has it open; close that program and retry" % path
    finally:
        os.close(master)
        os.close(slave)


def test_bad_options_are_one_line_and_exit_2_a_refused_connection_1():
    assert "ids '0-9'" in one_line_error(probe("/dev/null", "--ids", "0-9"), 2)
    assert "parity 'X'" in one_line_error(probe("/dev/null", "--parity", "X"), 2)
    assert "connection refused" in one_line_error(probe("rfc2217://127.0.0.1:1")).lower()


def test_ctrl_c_prints_what_was_found_and_exits_130(pymodbus_line):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    p = subprocess.Popen([sys.executable, "-m", "mbnode_host.cli", "probe", pymodbus_line.url(0), "--baud", "38400",
                          "--parity", "O", "--all", "--timeout", "0.03", "--progress", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 20
        seen = ""
        # Read the descriptor itself: lines left in the text wrapper's buffer would not wake
        # select, and on a busy machine the sweep could end before they were looked at.
        while "found unit 17" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], 1)
            if ready:
                chunk = os.read(p.stderr.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
        assert "found unit 17" in seen, seen
        p.send_signal(signal.SIGINT)  # while it sweeps ids 18..247 (about 7 s)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    res = json.loads(out)
    assert res["complete"] is False
    assert [d["unit"] for d in res["devices"]] == [17]
    assert 17 <= res["stats"]["discovery_requests"] < 247  # stopped in the sweep, after unit 17
    assert "interrupted: results so far" in res["notes"]
    assert "Traceback" not in err


# ---- bus traffic: --listen --------------------------------------------------------------------

def test_listen_starts_where_the_bus_talks():
    need_pymodbus()
    with LineEmulator(["rfc2217", "rfc2217", "rfc2217"]) as line:
        dev = Device(line.url(1))
        stop = threading.Event()
        master = serial.serial_for_url(line.url(2), baudrate=38400, parity="O", timeout=0.01)

        def poll_unit_17():  # another master on the bus, reading holding register 150
            for _ in range(500):
                if stop.wait(0.06):
                    break
                master.write(with_crc(bytes((17, 3, 0, 150, 0, 1))))
                master.read(64)

        t = threading.Thread(target=poll_unit_17, daemon=True)
        t.start()
        try:
            code, res = probe_json(line.url(0), "--baud", "9600,38400", "--listen", "0.25", "--no-map")
        finally:
            stop.set()
            t.join(5)
            master.close()
            dev.stop()
    assert code == 0
    [traffic] = [t for t in res["traffic"] if t["how"] == "listen"]
    assert traffic["serial"] == "38400 8O1" and traffic["units"] == [17] and traffic["frames"] >= 2
    # 17 first; asked twice, as our request can collide with the other master's
    found_after = res["devices"][0]["found_after"]["requests"]
    assert found_after in (1, 2)
    assert 3 <= res["stats"]["discovery_requests"] - found_after <= 5  # the parity check at O (twice at most), E, N
    assert res["devices"][0]["serial"]["label"] == "38400 8O1"


# ---- a local serial device path (pty ends, settings read with termios) ------------------------

def test_pty_device_path():
    need_pymodbus()
    with LineEmulator(["pty", "pty"]) as line:
        line_url = line.url(0)
        dev = Device(line.url(1), baud=19200, parity="N", unit=3, stopbits=2)
        try:
            code, res = probe_json(line.url(0), "--parity", "N", "--baud", "9600,19200", "--ids", "1-5",
                                   "--no-map", "--timeout", "0.05")
        finally:
            dev.stop()
    assert code == 0
    assert res["devices"][0]["unit"] == 3
    assert res["devices"][0]["serial"]["label"] == "19200 8N2"
    # likely pairs 9600 N and 19200 N with ids 1, 2 (4), twice, then 9600 N ids 3-5, then 19200
    # N id 3; at 9600 nothing answers: the emulator read 9600 on one pty and 19200 on the other
    assert res["devices"][0]["found_after"]["requests"] == res["stats"]["discovery_requests"] == 12
    assert any(n.startswith("%s is a pseudo-terminal" % line_url) for n in res["notes"]), res["notes"]
    assert res["devices"][0]["identification"]["device_id"]["objects"]["VendorName"] == "PyModbus Fake Devices"


# ---- the mbnode simulator -----------------------------------------------------------------------

MBNODE_MAP = {"coils": [[0, 0x23F]], "discrete inputs": [[0, 0x23F]],
              "holding registers": [[0, 0x13F], [0x1000, 0x17FF]],
              "input registers": [[0, 0x13F], [0x1000, 0x17FF]]}


def test_tcp_probe_of_the_simulator(start_sim):
    sim = start_sim()
    code, res = probe_json("tcp://%s:%d" % (sim.host, sim.port))
    assert code == 0
    [dev] = res["devices"]
    assert dev["unit"] == 1 and dev["serial"] is None
    assert res["stats"]["discovery_requests"] == 1
    assert dev["identification"]["device_id"]["objects"]["VendorName"] == "mbnode"
    assert dev["identification"]["server_id"]["text"] == "mbnode"
    assert {k: v["ranges"] for k, v in dev["map"].items()} == MBNODE_MAP
    fcs = dev["functions"]
    for fc in (1, 2, 3, 4, 5, 6, 8, 15, 16, 17, 22, 23, 43):
        assert fcs[str(fc)] == "yes", (fc, fcs)
    for fc in (7, 11, 12, 24):  # serial-line only over TCP, and FC24 not implemented: exception 01
        assert fcs[str(fc)] == "no", (fc, fcs)


def test_rtu_probe_of_the_simulator_through_the_emulator(start_sim):
    # pty end for the simulator (it opens a path); its settings are read with termios. Parity N:
    # some kernels (this sandbox's) do not keep PARENB on a pty, so E/O cannot be seen there.
    with LineEmulator(["rfc2217", "pty"]) as line:
        start_sim(extra=("--rtu", line.url(1), "--baud", "57600", "--parity", "N"))
        code, res = probe_json(line.url(0), "--baud", "57600", "--parity", "N", "--ids", "1-3")
        wrong, res_wrong = probe_json(line.url(0), "--baud", "38400", "--parity", "N", "--ids", "1",
                                      "--no-identify")
    assert code == 0
    [dev] = res["devices"]
    assert dev["unit"] == 1 and dev["serial"]["label"] == "57600 8N2"
    assert dev["identification"]["device_id"]["objects"]["VendorName"] == "mbnode"
    assert {k: v["ranges"] for k, v in dev["map"].items()} == MBNODE_MAP
    for fc in (7, 8, 11, 12, 17, 43):  # serial-line diagnostics answer over RTU
        assert dev["functions"][str(fc)] == "yes", (fc, dev["functions"])
    assert wrong == 1 and res_wrong["devices"] == []


# ---- pieces, without processes ------------------------------------------------------------------

def test_timeout_formula():
    l = Line(38400, "O")
    assert (l.bits, l.stopbits, l.label) == (11, 1, "38400 8O1")
    assert l.t35 == 0.00175
    assert l.timeout(8, 7, 0.040) == pytest.approx(8 * 11 / 38400 + 0.00175 + 7 * 11 / 38400 + 0.040)
    n = Line(9600, "N")
    assert (n.bits, n.stopbits, n.label) == (11, 2, "9600 8N2")
    assert n.t35 == pytest.approx(3.5 * 11 / 9600)


class _FakeTable:
    """Answers FC01-04 reads from a set of present addresses, like a conforming slave."""

    def __init__(self, islands):
        self.present = set()
        for a, b in islands:
            self.present.update(range(a, b + 1))
        self.notes = []

    def ask(self, unit, pdu, resp_len, retries=1):
        fc, addr, qty = struct.unpack(">BHH", pdu)
        if all(a in self.present for a in range(addr, addr + qty)):
            return Reply("ok", bytes((fc, 2, 0, 0)))
        return Reply("exception", bytes((fc | 0x80, 2)), code=2)

    def note(self, text):
        self.notes.append(text)


@pytest.mark.parametrize("islands", [
    [[10, 20], [100, 130], [140, 199], [4096, 4100], [65530, 65535]],  # holes between near samples
    [[0, 0x23F]],
    [[0, 0x13F], [0x1000, 0x17FF]],
    [[0, 65535]],
    [],
])
def test_mapper_finds_islands_exactly(islands):
    table = _FakeTable(islands)
    out = {"ranges": [], "complete": False, "requests": 0}
    TableMapper(table, 1, 3, out).run()
    assert out["ranges"] == islands
    assert out["complete"] and out["requests"] <= MAP_BUDGET


def test_mapper_stops_at_its_budget():
    islands = [[a, a + 2] for a in range(100, 100 + 40 * 50, 50)]  # 40 small islands
    table = _FakeTable(islands)
    out = {"ranges": [], "complete": False, "requests": 0}
    TableMapper(table, 1, 1, out).run()
    assert out["requests"] == MAP_BUDGET and not out["complete"]
    assert out["ranges"] and all(r in islands for r in out["ranges"])
    assert table.notes == ["coils: stopped after %d requests (budget); ranges may be incomplete" % MAP_BUDGET]


class _ScriptedPort:
    """A pyserial stand-in: what the 'line' sends back for each written frame."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.rx = bytearray()

    def write(self, frame):
        self.rx += self.answers.pop(0)(frame) if self.answers else b""

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n):
        out = bytes(self.rx[:n])
        del self.rx[:n]
        if not out:
            time.sleep(0.0005)
        return out

    def reset_input_buffer(self):
        self.rx.clear()


def test_link_skips_local_echo_and_garbage():
    reply = with_crc(bytes((5, 3, 2, 0x12, 0x34)))
    port = _ScriptedPort([lambda f: f + b"\x00\xff" + reply])
    link = RtuLink(port, Line(19200, "E"), fixed_timeout=0.05)
    r = link.transact(5, bytes((3, 0, 0, 0, 1)), 7)
    assert (r.kind, r.pdu, r.echo, link.echo_seen) == ("ok", bytes((3, 2, 0x12, 0x34)), True, True)


def test_link_takes_an_echo_like_answer_for_an_answer_until_the_adapter_echoes():
    port = _ScriptedPort([lambda f: f])  # FC08/00: the normal answer is a copy of the request
    link = RtuLink(port, Line(19200, "E"), fixed_timeout=0.05)
    r = link.transact(5, bytes((8, 0, 0, 0xA5, 0x37)), 9)
    assert (r.kind, r.pdu, link.echo_seen) == ("ok", bytes((8, 0, 0, 0xA5, 0x37)), False)


def test_link_notices_late_answers_and_traffic():
    late = with_crc(bytes((7, 0x83, 2)))
    other = with_crc(bytes((9, 3, 2, 0, 1)))
    port = _ScriptedPort([lambda f: b"", lambda f: late + other])
    link = RtuLink(port, Line(9600, "N"), fixed_timeout=0.03)
    assert link.transact(7, bytes((3, 0, 0, 0, 1)), 7).kind == "silence"
    r = link.transact(8, bytes((3, 0, 0, 0, 1)), 7)
    assert r.kind == "silence" and r.others == [other]  # every byte is explained by a valid frame
    assert [(u, l, n) for u, l, _, _, n in link.late] == [(7, Line(9600, "N"), 1)]
    assert link.traffic == [(Line(9600, "N"), other)]


def test_link_never_takes_an_answer_that_does_not_fit_the_request():
    """A late answer to the previous read (same unit, same function, another quantity) and a
    write echo of another address arrive first: neither is taken for the answer."""
    stale = with_crc(bytes((5, 3, 4, 0, 1, 0, 2)))       # 2 registers: answers a quantity-2 read
    right = with_crc(bytes((5, 3, 2, 0x12, 0x34)))
    port = _ScriptedPort([lambda f: stale + right])
    link = RtuLink(port, Line(19200, "E"), fixed_timeout=0.05)
    r = link.transact(5, bytes((3, 0, 9, 0, 1)), 7)
    assert (r.kind, r.pdu) == ("ok", bytes((3, 2, 0x12, 0x34)))
    assert link.strays == 1
    port = _ScriptedPort([lambda f: with_crc(bytes((5, 6, 0, 8, 0, 0)))])
    link = RtuLink(port, Line(19200, "E"), fixed_timeout=0.03)
    assert link.transact(5, bytes((6, 0, 7, 0, 0)), 8).kind == "silence"  # echo of address 8, not 7


@pytest.mark.parametrize("req,rsp,ok", [
    ("0300000001", "830" "2", True), ("0300000001", "03020001", True), ("0300000002", "03020001", False),
    ("0100000009", "01020000", True), ("0100000009", "010100", False), ("0400000001", "03020001", False),
    ("0600070000", "0600070000", True), ("0600070000", "0600080000", False),
    ("0f00000000" "00", "0f00000000", True), ("1000000001" "020000", "1000010001", False),
    ("080000a537", "080000a537", True), ("080000a537", "080000a538", False),
    ("2b0e0100", "2b0e01830000" "00", True), ("2b0e0200", "2b0e01830000" "00", False),
    ("11", "110100", True), ("11", "1102", False),
])
def test_fits(req, rsp, ok):
    assert fits(bytes.fromhex(req), bytes.fromhex(rsp)) is ok


def test_emulator_delivers_only_at_matching_settings_after_the_wire_time():
    with LineEmulator(["rfc2217", "rfc2217"]) as line:
        a = serial.serial_for_url(line.url(0), baudrate=9600, parity="E", timeout=0.2)
        b = serial.serial_for_url(line.url(1), baudrate=9600, parity="E", timeout=0.2)
        try:
            frame = bytes(range(20))
            t0 = time.monotonic()
            a.write(frame)
            got = b.read(20)
            took = time.monotonic() - t0
            assert got == frame
            assert took >= 20 * 11 / 9600 * 0.95  # 22.9 ms on the wire
            b.apply_settings({"parity": "O"})
            a.write(frame)
            assert b.read(20) == b""  # E against O: every character has a parity error, dropped
            b.apply_settings({"parity": "E", "baudrate": 19200})
            a.write(frame)
            other_rate = b.read(64)
            assert other_rate and frame not in other_rate
        finally:
            a.close()
            b.close()
        assert line.stats[1]["clean"] >= 20 and line.stats[1]["error"] >= 20


def decode(tx, rx, data):
    """(value, error, byte handed over) for each character `rx` decodes from `data` sent at `tx`."""
    wave, t = Waveform(), 0.0
    for b in data:
        levels = tx.levels(b)
        wave.add(t, tx.bit_time, levels)
        t += tx.bit_time * len(levels)
    chars, _ = Receiver().decode(wave, rx, t + 1.0)
    return [(value, error, received_byte(value, error, rx)) for _, _, _, value, error in chars]


REQUEST = with_crc(bytes((1, 3, 0, 0, 0, 1)))


def test_emulator_a_parity_less_receiver_takes_a_request_sent_with_parity():
    """8E1 into 8N: the parity bit is sampled as the stop bit; where it is 0 that is a framing
    error, which a receiver that checks nothing ignores: every data byte arrives intact."""
    out = decode(Setting(19200, parity="E"), Setting(19200, parity="N", stopbits=2), REQUEST)
    assert bytes(b for _, _, b in out) == REQUEST
    assert any(err == "framing" for _, err, _ in out)
    strict = decode(Setting(19200, parity="E"), Setting(19200, parity="N", rx="drop"), REQUEST)
    assert bytes(b for _, _, b in strict if b is not None) != REQUEST


def test_emulator_e_against_o_passes_nothing():
    out = decode(Setting(9600, parity="O"), Setting(9600, parity="E"), REQUEST)
    assert len(out) == len(REQUEST) and all(err == "parity" for _, err, _ in out)
    assert [b for _, _, b in out if b is not None] == []


def test_emulator_n_into_e_loses_about_half():
    """8N2 into 8E1: the first stop bit (1) is taken for the parity bit: right for bytes with an
    odd number of ones, a parity error for the others."""
    out = decode(Setting(9600, parity="N", stopbits=2), Setting(9600, parity="E"), REQUEST)
    kept = [v for v, err, b in out if b is not None]
    assert kept == [v for v in REQUEST if bin(v).count("1") % 2 == 1]


def test_emulator_a_slower_sender_reads_as_breaks():
    out = decode(Setting(9600, parity="N", stopbits=2), Setting(115200, parity="N", stopbits=2), REQUEST)
    assert len(out) > len(REQUEST)
    assert all(err == "break" and b == 0 for _, err, b in out[:3])
    assert sum(1 for _, err, _ in out if err == "break") >= len(REQUEST)
    ignored = decode(Setting(9600, parity="N"), Setting(115200, parity="N", ignbrk=True), REQUEST)
    assert all(b is None for _, err, b in ignored if err == "break")


def test_emulator_stop_bits_need_not_agree():
    for tx, rx in ((Setting(9600, stopbits=1), Setting(9600, stopbits=2)),
                   (Setting(9600, stopbits=2), Setting(9600, stopbits=1))):
        assert bytes(b for _, _, b in decode(tx, rx, REQUEST)) == REQUEST


def test_emulated_slave_needs_t35_of_silence_to_resynchronise():
    """Garbage followed by a request with less than t3.5 between them is one spoiled frame; with
    t3.5 of silence the request is answered."""
    slave = EmulatedSlave(Setting(19200, parity="E"), unit=1, holding=[(0, 9)])
    with LineEmulator(["rfc2217", slave]) as line:
        p = serial.serial_for_url(line.url(0), baudrate=19200, parity="E", timeout=0.2)
        try:
            p.write(b"\x55\xaa\x01" + REQUEST)  # no gap: one frame
            assert p.read(7) == b""
            p.write(b"\x55\xaa\x01")
            deadline = time.monotonic() + 10
            while slave.spoiled < 2 and time.monotonic() < deadline:  # t3.5 of silence after it
                time.sleep(0.005)
            p.write(REQUEST)
            assert p.read(7) == with_crc(bytes((1, 3, 2, 0x03, 0xE8)))
        finally:
            p.close()
    assert slave.spoiled == 2 and slave.counts()["requests"] == 1


# ---- third-party-like devices: slow, missing requests, no parity check (emulated slaves) ------

def with_slave(slave, *args, probe_end="rfc2217", text=False):
    """Run the probe (a process, as a user would) on end 0 of an emulated line whose end 1 is
    `slave`; returns (exit code, JSON result or text output)."""
    with LineEmulator([probe_end, slave]) as line:
        if text:
            r = probe(line.url(0), *args, timeout=300)
            return r.returncode, r.stdout
        return probe_json(line.url(0), *args, timeout=300)


def ranges(dev):
    return {k: v["ranges"] for k, v in dev["map"].items()}


def test_slow_device_is_mapped_exactly():
    """Answers 30-46 ms after each request at 19200 8E1, around the 50.6 ms wait: some answers
    come after the timeout. Each must be credited to the request it answers."""
    rnd = random.Random(10)
    slave = EmulatedSlave(Setting(19200, parity="E"), unit=1, holding=[(0, 99)],
                          reply_delay=lambda n: rnd.uniform(0.030, 0.046))
    code, res = with_slave(slave, "--baud", "19200", "--parity", "E", "--ids", "1-3")
    assert code == 0, res
    [dev] = res["devices"]
    assert (dev["unit"], dev["serial"]["label"]) == (1, "19200 8E1")
    assert dev["found_after"]["requests"] == 1
    assert ranges(dev) == {"coils": [], "discrete inputs": [], "holding registers": [[0, 99]], "input registers": []}
    assert all(m["complete"] for m in dev["map"].values()), dev["map"]
    assert dev["reply_time"] >= 0.030  # learnt, and the waits for the map lengthened from it
    assert dev["timeout"] > 0.0506
    counts = slave.counts()
    # No request was sent before the line was quiet (a frame spoiled by one following too
    # closely), and every request reached the device and was answered.
    assert counts["spoiled"] == 0 and counts["missed"] == 0
    assert counts["requests"] <= res["stats"]["requests"] <= counts["requests"] + 2  # + ids 2, 3


def test_slow_pymodbus_device_with_a_short_timeout_is_mapped_exactly():
    """What a busy machine does to the blind test, on purpose: the device answers after 30 ms,
    the probe is told to wait 12 ms."""
    need_pymodbus()
    with LineEmulator(["rfc2217", "rfc2217"]) as line:
        dev = Device(line.url(1), delay=0.030)
        try:
            code, res = probe_json(line.url(0), "--baud", "38400", "--parity", "O", "--ids", "15-20",
                                   "--timeout", "0.012", timeout=300)
        finally:
            dev.stop()
    assert code == 0
    [found] = res["devices"]
    assert found["unit"] == 17 and found["found_after"]["requests"] == 3 and found["late_by"] > 0.012
    assert ranges(found) == {"coils": [], "discrete inputs": [], "holding registers": [[100, 199]],
                             "input registers": []}
    assert all(m["complete"] for m in found["map"].values()), found["map"]
    assert found["identification"]["device_id"]["objects"]["VendorName"] == "PyModbus Fake Devices"


def test_device_that_misses_requests_is_found_and_mapped():
    """Misses the first request it gets (at a likely setting), and every 5th after (fences
    included): found on the second round of likely pairs, and mapped exactly by asking again."""
    slave = EmulatedSlave(Setting(38400, parity="N", stopbits=2), unit=2, holding=[(0, 99)],
                          miss=lambda n: n == 1 or n % 5 == 0)
    code, res = with_slave(slave, "--baud", "38400", "--parity", "N", "--ids", "1-3")
    assert code == 0, res
    [dev] = res["devices"]
    assert (dev["unit"], dev["serial"]["label"]) == (2, "38400 8N2")
    # 38400 N ids 1, 2 (2 is missed), then the likely pairs again: id 1, id 2 answers
    assert dev["found_after"]["requests"] == 4
    assert ranges(dev)["holding registers"] == [[0, 99]]
    assert all(m["complete"] for m in dev["map"].values()), dev["map"]
    counts = slave.counts()
    assert counts["missed"] >= 10 and counts["spoiled"] == 0
    # Every request the device missed was asked again (a fence by another fence): nothing lost.
    log = slave.log
    for (n, pdu, what), (_, after, _) in zip(log[1:], log[2:]):
        if what == "missed":
            assert after == pdu or (after[:6] == pdu[:6] == "080000"), (n, pdu, after)
    fence = [pdu.startswith("080000") and pdu != "080000a537" for _, pdu, _ in log]  # FC08 nonces
    assert res["stats"]["retries"] == sum(1 for (_, _, what), f in zip(log[1:], fence[1:]) if what == "missed" and not f)
    assert res["stats"]["fences"] == sum(fence)


def test_bytes_without_a_valid_frame_lead_to_the_other_parities():
    """A parity-less device (its UART checks nothing) understands a request sent with parity and
    answers it at 8N2: at 8E1 the probe gets bytes but no valid frame. It says so and tries the
    other parities of that baud rate for that unit at once."""
    slave = EmulatedSlave(Setting(19200, parity="N", stopbits=2), unit=5, holding=[(0, 9)])
    code, res = with_slave(slave, "--baud", "19200", "--ids", "1-10", "--no-map")
    assert code == 0, res
    [dev] = res["devices"]
    assert dev["serial"]["label"] == "19200 8N2" and dev["serial"]["parity_confirmed"] is True
    # likely pairs (19200 E and N, ids 1 and 2) twice: 8; 19200 E ids 3, 4, 5 (garbled): 11;
    # then 19200 N id 5
    assert dev["found_after"]["requests"] == 12
    assert "bytes at 19200 8E1 but no valid frame (after a request to unit 5): parity or stop bits?" in res["notes"]
    assert {"serial": "19200 8E1", "unit": 5} == {k: res["garbled"][0][k] for k in ("serial", "unit")}


def test_an_answer_at_the_wrong_parity_is_not_reported():
    """A device at 38400 8E1 whose UART does not check parity answers the probe's 8N2 request;
    the probe's parity-less receiver (an RFC 2217 server that checks no framing) takes the
    answer for a valid frame. The parity check (FC08 0x0001 at E, N, O) finds it at E."""
    slave = EmulatedSlave(Setting(38400, parity="E", rx="keep"), unit=1, holding=[(0, 9)])
    code, res = with_slave(slave, "--baud", "38400", "--ids", "1", "--no-map")
    assert code == 0, res
    [dev] = res["devices"]
    assert dev["serial"]["label"] == "38400 8E1" and dev["serial"]["parity_confirmed"] is True
    assert dev["found_after"]["requests"] == 1  # first at 38400 8N2, the first likely setting
    assert any("it is at 38400 8E1" in n for n in res["notes"]), res["notes"]


def test_parity_not_checked_anywhere_is_reported_as_undetermined():
    """Neither the device nor the probe's port checks parity: it answers at every parity, and
    the probe says that it cannot tell instead of naming one."""
    slave = EmulatedSlave(Setting(38400, parity="E", rx="keep"), unit=1, holding=[(0, 9)])
    code, out = with_slave(slave, "--baud", "38400", "--ids", "1", "--no-map", "--no-identify",
                           probe_end=Rfc2217End(rx="keep"), text=True)
    assert code == 0, out
    assert re.search(r"^device +unit 1, 38400 8N2 \(parity not determined: see the notes\)$", out, re.M), out
    assert "answered at parities E, N, O of 38400 baud: this port does not check parity" in out


def test_text_output_of_a_device_without_fc17_and_the_first_find():
    slave = EmulatedSlave(Setting(19200, parity="E"), unit=1, holding=[(0, 9)])
    code, out = with_slave(slave, "--baud", "19200", "--parity", "E", "--ids", "1-5", text=True)
    assert code == 0, out
    assert re.search(r"^server id +not supported \(exception 01\)$", out, re.M), out
    assert re.search(r"^identity +FC43/14 not supported \(exception 01\)$", out, re.M), out
    assert re.search(r"^note +stopped at the first device found; --all asks the other ids at 19200 8E1 too$",
                     out, re.M), out
    assert re.search(r"^ +holding registers +0x0000-0x0009 \(0-9, 10 addresses\)$", out, re.M), out


# ---- parity on a pty -------------------------------------------------------------------------

def kernel_drops_parenb_on_a_pty():
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[2] |= termios.PARENB
        attrs[2] ^= termios.CSTOPB  # change something else too: then no EINVAL, a silent drop
        try:
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        except termios.error:
            return True
        return not termios.tcgetattr(slave)[2] & termios.PARENB
    finally:
        os.close(master)
        os.close(slave)


def test_a_parity_the_pty_cannot_keep_is_never_reported():
    """The probe on a pty (the emulator reads the settings it gets through termios) asked for E
    and N; the device is at 19200 8N2. Where the kernel drops PARENB, E is never reported (the
    port was at N when it seemed to be at E) and the note says why."""
    slave = EmulatedSlave(Setting(19200, parity="N", stopbits=2), unit=1, holding=[(0, 9)])
    pty_end = PtyEnd()
    code, res = with_slave(slave, "--baud", "19200", "--parity", "E,N", "--ids", "1", "--no-map",
                           probe_end=pty_end)
    assert code == 0, res
    [dev] = res["devices"]
    assert dev["serial"]["label"] == "19200 8N2"
    if kernel_drops_parenb_on_a_pty():
        assert any(n.startswith("%s does not keep parity E (the kernel dropped PARENB)" % pty_end.url)
                   for n in res["notes"]), res["notes"]
        assert dev["found_after"]["requests"] == 1 and res["stats"]["discovery_requests"] == 1
    assert not any("refused" in n for n in res["notes"]), res["notes"]


class _PickyPort(_ScriptedPort):
    """A serial port stand-in that, like some drivers, refuses the move from 8N2 straight to 8E1
    at the same baud rate (EINVAL), although it opens at 8E1 without complaint; a device at
    19200 8E1 unit 1 answers FC03 and FC08 behind it."""

    def __init__(self, line):
        self.line, self.rx, self.is_open = line, bytearray(), True

    def fileno(self):
        raise OSError("an URL port")  # settings go through apply_settings

    def get_settings(self):
        return {"baudrate": self.line.baud, "parity": self.line.parity, "stopbits": self.line.stopbits}

    def apply_settings(self, d):
        new = Line(d.get("baudrate", self.line.baud), d.get("parity", self.line.parity))
        if self.line.parity == "N" and new.parity == "E" and new.baud == self.line.baud:
            raise termios.error(22, "Invalid argument")
        self.line = new

    def write(self, frame):
        if self.line == Line(19200, "E") and frame[0] == 1:
            pdu = bytes(frame[1:-2])
            self.rx += with_crc(bytes((1,)) + (pdu if pdu[0] == 8 else bytes((3, 2, 0, 7))))

    # in_waiting and read: _ScriptedPort's

    def close(self):
        self.is_open = False


def test_a_refused_transition_is_not_a_refused_setting(monkeypatch):
    monkeypatch.setattr(serialline, "open_port", lambda port, line: _PickyPort(line))
    args = argparse.Namespace(port="rfc2217://picky", baud="19200", parity="N,E", ids="1", timeout=0.02,
                              turnaround=0.04, listen=None, all=False, no_identify=True, no_map=True,
                              json=True, progress=False)
    out = io.StringIO()
    assert probe_module.Prober(args, out=out).run() == 0
    res = json.loads(out.getvalue())
    assert res["devices"][0]["serial"]["label"] == "19200 8E1"
    assert not any("refused" in n for n in res["notes"]), res["notes"]


def test_the_simulator_on_its_own_pty(rtu_pool):
    """The real firmware on a bare pty (`mbnode sim --rtu pty`, at 19200 8E1): a pty passes
    bytes at any setting, so the setting found is where it answered first, and the probe says
    so; identity and map are the firmware's."""
    sim = rtu_pool(bits=32, baud=19200, parity="E")
    code, res = probe_json(sim.rtu_path, "--baud", "19200", "--ids", "1")
    assert code == 0, res
    [dev] = res["devices"]
    assert dev["unit"] == 1
    assert any(n.startswith("%s is a pseudo-terminal" % sim.rtu_path) for n in res["notes"]), res["notes"]
    if kernel_drops_parenb_on_a_pty():
        assert dev["serial"]["parity"] == "N"  # E and O could not be set: never reported
    assert dev["identification"]["device_id"]["objects"]["VendorName"] == "mbnode"
    assert ranges(dev) == MBNODE_MAP
    assert all(m["complete"] for m in dev["map"].values())
    assert res["stats"]["retries"] == 0 and res["stats"]["stray_frames"] == 0
