"""`mbnode probe`: discovery, identification and mapping of Modbus devices it knows nothing
about, against a third-party slave (pymodbus, tests/fakes/pymodbus_rtu_device.py) and against
the mbnode simulator, over tests/fakes/line_emulator.py, where baud rate and parity must really
match and answers take their wire time.

The blind discovery run (every setting and id up to 38400 8O1 unit 17, 1999 attempts) uses a
fixed 12 ms wait per attempt instead of the formula's 46-61 ms, to keep this file fast; the
emulated pymodbus device answers in about 6 ms. bench/probe.py measures the real timeouts.
"""

import fcntl
import importlib.util
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest
import serial

from conftest import ROOT, need
from mbtest import cli

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from line_emulator import LineEmulator  # noqa: E402
from mbnode_host.probe import MAP_BUDGET, TableMapper  # noqa: E402
from mbnode_host.rtuclient import Reply, RtuLink, with_crc  # noqa: E402
from mbnode_host.serialline import Line  # noqa: E402

DEVICE = ROOT / "tests" / "fakes" / "pymodbus_rtu_device.py"
PYMODBUS_IDENTITY = {"VendorName": "PyModbus Fake Devices", "ProductCode": "PMF-RTU-17"}


def need_pymodbus():
    need("pymodbus (the third-party RTU slave)", importlib.util.find_spec("pymodbus"))


class Device:
    """The pymodbus RTU slave as a process on one end of an emulated line."""

    def __init__(self, port, baud=38400, parity="O", unit=17, stopbits=1):
        self.proc = subprocess.Popen(
            [sys.executable, str(DEVICE), "--port", port, "--baud", str(baud), "--parity", parity,
             "--unit", str(unit), "--stopbits", str(stopbits)],
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
    assert r.returncode in (0, 3), "probe failed (%d): %s" % (r.returncode, r.stderr)
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
    assert dev["serial"] == {"baud": 38400, "parity": "O", "stopbits": 1, "label": "38400 8O1"}
    # Documented order: 8 likely settings x ids 1, 2, 247 (24), then every id of 9600 E/N/O,
    # 19200 E/N/O, 38400 E/N (8 x 247, less the 18 likely pairs already tried), then 38400 O
    # ids 1..17. The emulator garbles every other setting, so nothing answers earlier.
    assert res["stats"]["discovery_requests"] == 24 + 8 * 247 - 18 + 17 == 1999
    assert dev["found_after"]["requests"] == 1999
    assert res["traffic"] == []


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
        assert m["complete"] and 0 < m["requests"] <= MAP_BUDGET, (table, m)


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
    assert code == 3 and res["devices"] == []
    assert res["stats"]["discovery_requests"] == 2


def test_ids_outside_the_list_are_not_tried(pymodbus_line):
    r = probe(pymodbus_line.url(0), "--baud", "38400", "--parity", "O", "--ids", "1-5,200",
              "--timeout", "0.03")
    assert r.returncode == 3, r.stderr
    assert re.search(r"^device +none found$", r.stdout, re.M)
    assert re.search(r"^requests +6 in ", r.stdout, re.M), r.stdout


def test_all_keeps_sweeping_the_found_setting_only(pymodbus_line):
    code, res = probe_json(pymodbus_line.url(0), "--parity", "O", "--baud", "38400,19200", "--ids", "16-19",
                           "--all", "--no-identify", "--timeout", "0.03")
    assert code == 0 and [d["unit"] for d in res["devices"]] == [17]
    assert res["stats"]["discovery_requests"] == 4  # 16..19 at 38400; 19200 skipped after the find


# ---- errors and Ctrl-C ----------------------------------------------------------------------

def one_line_error(r):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
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


def test_bad_options_are_one_line_and_exit_1():
    assert "ids '0-9'" in one_line_error(probe("/dev/null", "--ids", "0-9"))
    assert "parity 'X'" in one_line_error(probe("/dev/null", "--parity", "X"))
    assert "connection refused" in one_line_error(probe("rfc2217://127.0.0.1:1")).lower()


def test_ctrl_c_prints_what_was_found_and_exits_130(pymodbus_line):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    p = subprocess.Popen([sys.executable, "-m", "mbnode_host.cli", "probe", pymodbus_line.url(0), "--baud", "38400",
                          "--parity", "O", "--all", "--timeout", "0.03", "--progress", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 20
        seen = ""
        while "found unit 17" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], 1)
            if ready:
                seen += p.stderr.readline()
        assert "found unit 17" in seen, seen
        time.sleep(0.3)  # now sweeping ids 18..247 (about 7 s)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    res = json.loads(out)
    assert res["complete"] is False
    assert [d["unit"] for d in res["devices"]] == [17]
    assert 17 < res["stats"]["discovery_requests"] < 247
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
    assert res["stats"]["discovery_requests"] == 1
    assert res["devices"][0]["serial"]["label"] == "38400 8O1"


# ---- a local serial device path (pty ends, settings read with termios) ------------------------

def test_pty_device_path():
    need_pymodbus()
    with LineEmulator(["pty", "pty"]) as line:
        dev = Device(line.url(1), baud=19200, parity="N", unit=3, stopbits=2)
        try:
            code, res = probe_json(line.url(0), "--parity", "N", "--baud", "9600,19200", "--ids", "1-5",
                                   "--no-map", "--timeout", "0.05")
        finally:
            dev.stop()
    assert code == 0
    assert res["devices"][0]["unit"] == 3
    assert res["devices"][0]["serial"]["label"] == "19200 8N2"
    # likely pairs 9600 N and 19200 N with ids 1, 2 (4), then 9600 N ids 3-5, then 19200 N id 3;
    # at 9600 nothing answers: the emulator read 9600 on one pty and 19200 on the other
    assert res["stats"]["discovery_requests"] == 8
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
    assert wrong == 3 and res_wrong["devices"] == []


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
    assert r.kind == "garbage" and r.others == [other]
    assert [(u, l) for u, l, _ in link.late] == [(7, Line(9600, "N"))]
    assert link.traffic == [(Line(9600, "N"), other)]


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
            garbled = b.read(20)
            assert garbled and garbled != frame
            b.apply_settings({"parity": "E", "baudrate": 19200})
            a.write(frame)
            other_rate = b.read(64)
            assert other_rate and frame not in other_rate
        finally:
            a.close()
            b.close()
        assert line.stats[1]["clean"] == 1 and line.stats[1]["garbled"] == 2
