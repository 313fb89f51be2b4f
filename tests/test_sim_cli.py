"""One clear line, never a traceback: `mbnode sim` and the other commands as a new user meets
them (issue 10, section 3). The real firmware on the 32-bit unix port; raw sockets and pymodbus
as the other side.

Contract (docs/cli.md): a configuration error is exactly one `config: FILE: key ...` line and
exit status 2; a start-up that cannot have its address, or a heap too small, is one line and exit
status 1; arguments refused before anything is sent (a malformed HOST:PORT or --heap included)
are one line and status 2; Ctrl-C is status 130 (the simulator: 0, stopping is how it ends);
SIGTERM after the ready line is status 0 with nothing on stderr.
"""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import configfuzz
import mbtest
from conftest import ROOT, micropython_or_fail, need
from mbtest import cli, fc03, pymodbus_client, request, unit

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
MBNODE = [sys.executable, "-m", "mbnode_host.cli"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listener(port=0):
    """A socket listening on 127.0.0.1:port (another program holding the port)."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(1)
    return s


class Run:
    """`mbnode ARGS` started in its own session: .wait_ready() -> ready line or None when it
    exited first; .stop(sig) -> exit status; .out, .err collected as they come."""

    def __init__(self, args, env=None, cwd=None, argv=None):
        self.proc = subprocess.Popen((argv or MBNODE) + [str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env or ENV, cwd=cwd, start_new_session=True)
        self.out = b""
        self.err = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self.sel.register(self.proc.stderr, selectors.EVENT_READ, "err")

    def _pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                self.sel.unregister(key.fileobj)
            elif key.data == "out":
                self.out += data
            else:
                self.err += data

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.sel.get_map():
            for line in self.out.decode(errors="replace").splitlines():
                if line.startswith("ready"):
                    return line
            self._pump(0.2)
        for line in self.out.decode(errors="replace").splitlines():
            if line.startswith("ready"):
                return line
        if self.sel.get_map():
            self.kill()
            raise AssertionError("no ready line within %d s: %r %r" % (timeout, self.out, self.err))
        return None

    def finish(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.sel.get_map() and time.monotonic() < deadline:
            self._pump(0.2)
        try:
            self.proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("still running after %d s: %r %r" % (timeout, self.out, self.err))
        self.sel.close()
        return self.proc.returncode

    def stop(self, sig=signal.SIGTERM, group=False):
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        return self.finish(20)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def err_lines(self):
        return self.err.decode(errors="replace").splitlines()


def fields(ready):
    words = ready.split()
    return dict(zip(words[1::2], words[2::2]))


def sim(*args):
    micropython_or_fail(32)
    return Run(["sim"] + list(args))


def refused(run, status):
    """The run ends with `status` and one line on stderr, no ready line: that line."""
    assert run.wait_ready() is None, run.out
    code = run.finish()
    assert code == status, (code, run.out, run.err)
    lines = run.err_lines
    assert len(lines) == 1, run.err
    assert "Traceback" not in lines[0] and "Error:" not in lines[0], lines[0]
    assert run.out == b"", run.out
    return lines[0]


def io_cmd(address, line, timeout=5):
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            assert chunk, "the control channel closed without a reply to %r" % line
            reply += chunk
    return reply.decode().strip()


def modbus_poll(address, tid=1, timeout=3.0):
    with socket.create_connection(address, timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return request(s, fc03(0, 1), tid=tid, timeout=timeout)


# --- addresses -------------------------------------------------------------------------------


def test_tcp_port_in_use_is_one_line_naming_it():
    with listener() as held:
        port = held.getsockname()[1]
        line = refused(sim("--tcp", "127.0.0.1:%d" % port, "--io", "127.0.0.1:0"), 1)
    assert line == "tcp: cannot listen on 127.0.0.1:%d: the address is in use (another program listens there)" % port


def test_io_port_in_use_is_one_line_naming_it():
    with listener() as held:
        port = held.getsockname()[1]
        line = refused(sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:%d" % port), 1)
    assert line == "io: cannot listen on 127.0.0.1:%d: the address is in use (another program listens there)" % port


def test_default_io_port_taken_picks_a_free_one():
    """The I/O channel's default is the TCP port + 1; when another program has it, the simulator
    takes a free port and says which in the ready line."""
    for _ in range(20):  # a TCP port whose next one can be held here
        tcp = free_port()
        try:
            held = listener(tcp + 1)
            break
        except OSError:
            continue
    with held:
        run = sim("--tcp", "127.0.0.1:%d" % tcp)
        try:
            ready = run.wait_ready()
            assert ready, run.err
            f = fields(ready)
            assert f["tcp"] == "127.0.0.1:%d" % tcp
            host, port = f["io"].rsplit(":", 1)
            assert int(port) != tcp + 1
            assert io_cmd((host, int(port)), "get do 0") == "ok 0"
            assert modbus_poll(("127.0.0.1", tcp))[:2] == b"\x03\x02"
        finally:
            assert run.stop() == 0, run.err
    assert run.err == b""


@pytest.mark.parametrize("args, named, status", [
    (["--tcp", "192.0.2.1:5020", "--io", "127.0.0.1:0"], "192.0.2.1", 1),  # TEST-NET-1: never this machine's
    (["--tcp", "127.0.0.1:0", "--io", "192.0.2.1:5021"], "192.0.2.1:5021", 1),
    (["--tcp", "pump.invalid:5020"], "pump.invalid:5020", 2),  # not HOST:PORT with an IPv4 host: usage
    (["--tcp", "127.0.0.1:70000"], "127.0.0.1:70000", 2),
])
def test_unusable_host_is_one_line_naming_it(args, named, status):
    line = refused(sim(*args), status)
    assert named in line, line


@pytest.mark.parametrize("address", ["127.0.0.1", "pump.invalid:5021", "127.0.0.1:99999"])
def test_unusable_address_of_sim_io_is_one_line_naming_it(address):
    r = cli("sim-io", "--io", address, "get", "do", "0")
    assert (r.returncode, r.stdout, r.stderr.count("\n")) == (2, "", 1), r
    assert r.stderr.startswith("mbnode sim-io: --io %s: allowed HOST:PORT" % address), r.stderr


# --- configuration files ---------------------------------------------------------------------

LONG = "x" * 100000


def deep(depth):
    return "[" * depth + "]" * depth


# (id, file bytes, words the one line must hold besides "config: FILE")
CONFIG_CASES = [
    ("invalid JSON", b"{unit_id: 1}", ["is not valid JSON", "line 1 column 2"]),
    ("BOM", b"\xef\xbb\xbf" + json.dumps({"unit_id": 1}).encode(), ["byte order mark"]),
    ("not UTF-8", b'{"identity": {"device_name": "pump \xff"}}', ["is not valid JSON", "utf-8"]),
    ("cut short", b'{"unit_id": 7, "tcp": {"port": 5020}', ["ends before its last closing bracket"]),
    ("top level a list", b"[1, 2]", ["(top level) = [1, 2]", "allowed a JSON object"]),
    ("top level a number", b"5", ["(top level) = 5", "allowed a JSON object"]),
    ("section a list", json.dumps({"tcp": [{"port": 5020}]}).encode(), ["tcp = [{", "allowed a JSON object"]),
    ("section null", json.dumps({"board": None}).encode(), ["board = null", "allowed a JSON object"]),
    ("100,000 characters", json.dumps({"identity": {"vendor_name": LONG}}).encode(),
     ["identity.vendor_name = \"xxxx", "...\"", "at most 100 characters"]),
    ("100,000 characters of key", json.dumps({"tcp": {LONG: 1}}).encode(), ["tcp.\"xxxx", "unknown key"]),
    ("800 deep", ('{"unit_id": %s}' % deep(800)).encode(), ["unit_id = [[[[...]]]]", "allowed an integer 0..247"]),
    ("800 deep in a list", ('{"tcp": {"allow": %s}}' % deep(800)).encode(), ["tcp.allow = [[[[...]]]]"]),
    ("unhashable in a set", json.dumps({"mqtt": {"serial_devices": [["rs485"]]}}).encode(),
     ["mqtt.serial_devices = [[\"rs485\"]]", "allowed a list"]),
    ("unhashable choice", json.dumps({"rtu": {"parity": {"E": 1}}}).encode(), ["rtu.parity = {\"E\": 1}"]),
    ("host:port without a colon", json.dumps({"board": {"io": "127.0.0.1"}}).encode(),
     ["board.io = \"127.0.0.1\"", "HOST:PORT"]),
    ("a missing file", None, ["not found"]),
]


@pytest.mark.parametrize("text, words", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_error_is_one_line_naming_file_and_key(tmp_path, text, words):
    f = tmp_path / "plant config.json"
    if text is not None:
        f.write_bytes(text)
    line = refused(sim("--config", f, "--tcp", "127.0.0.1:0"), 2)  # --io would override board.io
    assert line.startswith("config: %s" % f), line
    for w in words:
        assert w in line, (w, line)
    assert len(line) < 400, line  # a bounded quote of a 100,000-character value


@pytest.mark.parametrize("text, words", [c[1:] for c in CONFIG_CASES if c[1] is not None],
                         ids=[c[0] for c in CONFIG_CASES if c[1] is not None])
def test_config_error_on_a_board_is_the_same_line(tmp_path, text, words):
    """The firmware's own loader (as a board reads its config.json) on the unix port: the
    same classes give the same kind of line, at the simulator's smallest heaps too."""
    f = tmp_path / "config.json"
    f.write_bytes(text)
    script = ("import board\nfrom mbnode import config\ntry:\n    config.load(%r, *board.config_rules())\n"
              "except config.ConfigError as e:\n    print(e)\n" % str(f))
    env = dict(os.environ, MICROPYPATH=":".join([str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    for heap in ("64K", "256K"):
        r = subprocess.run([micropython_or_fail(32), "-X", "heapsize=" + heap, "-c", script], capture_output=True,
                           timeout=60, env=env)
        out = r.stdout.decode(errors="replace").strip()
        assert r.returncode == 0 and r.stderr == b"", (heap, r.stdout, r.stderr)
        assert len(out.splitlines()) == 1 and out.startswith("config: %s" % f), (heap, out)
        assert len(out) < 400, out


def test_config_mutations_on_the_firmware_and_cpython(tmp_path):
    """2,000 mutated configuration files through the firmware's loader on the 32-bit unix port
    (one process, 128K heap) and through the same module on CPython: each is accepted or
    refused with one `config: FILE...` line, nothing else (no exception of another kind)."""
    from mbnode import config
    from mbnode_host import boards

    rules = boards.rules("unix")
    files = []
    for i, (what, data) in enumerate(configfuzz.mutations(2000, seed=10)):
        f = tmp_path / ("m%04d.json" % i)
        f.write_bytes(data)
        files.append((f, what))
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(str(f) for f, _ in files) + "\n")
    script = """
import board, gc
from mbnode import config
rules = board.config_rules()
f = open(%r)
while True:
    p = f.readline().strip()
    if not p:
        break
    gc.collect()
    try:
        config.load(p, *rules)
        print("ok")
    except config.ConfigError as e:
        print("refused", "\\n" not in str(e) and str(e).startswith("config: " + p))
    except Exception as e:
        print("BROKEN", type(e).__name__, e)
""" % str(listing)
    env = dict(os.environ, MICROPYPATH=":".join([str(ROOT / "boards" / "unix"), str(ROOT / "firmware")]))
    r = subprocess.run([micropython_or_fail(32), "-X", "heapsize=128K", "-c", script], capture_output=True,
                       timeout=300, env=env)
    results = r.stdout.decode(errors="replace").splitlines()
    assert r.returncode == 0 and len(results) == len(files), (r.returncode, len(results), r.stderr[-2000:])
    broken = [(what, res) for (f, what), res in zip(files, results) if res not in ("ok", "refused True")]
    assert not broken, broken[:10]
    accepted = 0
    for f, what in files:
        try:
            config.load(str(f), *rules)
            accepted += 1
        except config.ConfigError as e:
            assert "\n" not in str(e) and str(e).startswith("config: %s" % f), (what, str(e)[:300])
    assert 0 < accepted < len(files) // 2 and 0 < results.count("ok") < len(files) // 2


def test_config_mutations_through_mbnode_sim(tmp_path):
    """A bounded sample of the same mutations through `mbnode sim --config`: it starts (and stops
    with status 0 on SIGTERM, saying nothing), or it exits 2 with one `config: FILE` line."""
    micropython_or_fail(32)
    cases = list(configfuzz.mutations(48, seed=11))

    def one(i):
        what, data = cases[i]
        f = tmp_path / ("s%02d.json" % i)
        f.write_bytes(data)
        run = Run(["sim", "--config", f, "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0"])
        ready = run.wait_ready()
        if ready:
            code = run.stop()
            return what, "started", code == 0 and run.err == b"", run.err
        code = run.finish()
        lines = run.err_lines
        ok = code == 2 and len(lines) == 1 and lines[0].startswith("config: %s" % f)
        return what, "refused", ok, run.err[-500:]

    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(one, range(len(cases))))
    bad = [r for r in results if not r[2]]
    assert not bad, bad[:5]
    kinds = [r[1] for r in results]
    assert "started" in kinds and "refused" in kinds, kinds


def test_sim_config_honours_tcp_and_io_from_the_file(tmp_path):
    tcp, io = free_port(), free_port()
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"tcp": {"host": "127.0.0.1", "port": tcp}, "board": {"io": "127.0.0.1:%d" % io}}))
    run = sim("--config", f)
    try:
        ready = run.wait_ready()
        assert ready, run.err
        assert (fields(ready)["tcp"], fields(ready)["io"]) == ("127.0.0.1:%d" % tcp, "127.0.0.1:%d" % io)
        assert modbus_poll(("127.0.0.1", tcp))[:2] == b"\x03\x02"
        assert io_cmd(("127.0.0.1", io), "get di 0") == "ok 0"
    finally:
        assert run.stop() == 0, run.err
    # The command line overrides the file, key by key.
    tcp2 = free_port()
    run = sim("--config", f, "--tcp", "127.0.0.1:%d" % tcp2)
    try:
        ready = run.wait_ready()
        assert ready, run.err
        assert (fields(ready)["tcp"], fields(ready)["io"]) == ("127.0.0.1:%d" % tcp2, "127.0.0.1:%d" % io)
    finally:
        assert run.stop() == 0, run.err


def test_command_line_values_are_checked_and_named(tmp_path):
    line = refused(sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--unit", "300"), 2)
    assert line == "config: command line: unit_id = 300: allowed an integer 0..247", line


# --- heap ------------------------------------------------------------------------------------


def test_heap_too_small_says_the_measured_minimum():
    line = refused(sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--mpy", "--heap", "8K"), 1)
    prefix = "mbnode sim: --heap 8K is too small for this configuration: it starts with "
    assert line.startswith(prefix) and "K or more (measured just now; 32-bit unix port, firmware as .mpy)" in line, line
    need_k = int(line[len(prefix):].split("K", 1)[0])
    # The figure is right: it starts with it, and one KiB less is too small. (Measured again from
    # there, the figure may differ: near the limit, start-up does not succeed for every larger
    # heap either, docs/simulator.md.)
    run = sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--mpy", "--heap", "%dK" % need_k)
    try:
        assert run.wait_ready(), run.err
    finally:
        assert run.stop() == 0, run.err
    line = refused(sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--mpy", "--heap", "%dK" % (need_k - 1)), 1)
    assert line.startswith("mbnode sim: --heap %dK is too small for this configuration: it starts with " % (
        need_k - 1)), line


def test_a_config_the_heap_cannot_hold_is_the_heap_message_not_the_firmware_s(tmp_path):
    # The firmware says `config: <its temporary copy> is too large for the free memory`, exit 2,
    # when the heap runs out while it reads the file (CI met it one KiB under the minimum): with a
    # heap the user chose, that is --heap being too small, and the temporary path means nothing.
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"tcp": {"allow": ["127.0.%d.%d" % (i // 250, i % 250) for i in range(3000)]}}))
    line = refused(sim("--config", str(f), "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--mpy",
                       "--heap", "48K"), 1)
    assert line.startswith("mbnode sim: --heap 48K is too small for this configuration: it starts with "), line
    assert "mbnode-sim-" not in line, line


@pytest.mark.parametrize("heap, words, status", [
    ("1", ["--heap 1 is too small", "it starts with"], 1),  # MicroPython itself refuses < 700 bytes: measured
    ("4000M", ["--heap 4000M: allowed up to 2047M"], 2),  # beyond the 32-bit port's C long
    ("12Q", ["--heap 12Q: allowed a number of bytes"], 2),
    ("0", ["--heap 0: allowed a number of bytes"], 2),
])
def test_heap_values_micropython_cannot_take_are_one_line(heap, words, status):
    line = refused(sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0", "--mpy", "--heap", heap), status)
    for w in words:
        assert w in line, line


# --- stopping --------------------------------------------------------------------------------


def test_sigterm_right_after_the_ready_line_exits_0_quietly():
    """Many tries, each SIGTERM sent the moment the ready line is read (7 of 40 failed before)."""
    micropython_or_fail(32)
    deadline = time.monotonic() + 150
    tries = 0
    while tries < 40 and time.monotonic() < deadline:
        run = sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0")
        assert run.wait_ready(), run.err
        code = run.stop(signal.SIGTERM)
        assert (code, run.err) == (0, b""), (tries, code, run.err)
        tries += 1
    assert tries >= 10, "only %d tries in the time allowed" % tries


@pytest.mark.parametrize("group", [False, True], ids=["SIGINT to mbnode", "Ctrl-C to the process group"])
def test_sigint_exits_0_quietly(group):
    for _ in range(5):
        run = sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0")
        assert run.wait_ready(), run.err
        code = run.stop(signal.SIGINT, group=group)
        assert (code, run.err) == (0, b""), (code, run.err)


def test_sigterm_to_the_process_group_exits_0_quietly():
    """timeout(1) and service managers signal the whole group, MicroPython included."""
    run = sim("--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0")
    assert run.wait_ready(), run.err
    assert (run.stop(signal.SIGTERM, group=True), run.err) == (0, b"")


# --- sim-io and mem --------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["sim-io", "--io", "127.0.0.1:{port}", "get", "do", "0"],
    ["mem", "--tcp", "127.0.0.1:{port}", "get", "1"],
])
def test_no_simulator_at_the_address_says_so(args):
    port = free_port()
    r = cli(*[a.format(port=port) for a in args])
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("at 127.0.0.1:%d (nothing listens there); start the simulator with `mbnode sim`" % port) in r.stderr


BAD_ARGS = [
    (["sim-io", "get", "do", "0", "2", "3"], "allowed: get TABLE ADDR [COUNT]"),
    (["sim-io", "get", "do", "0", "-1"], "COUNT -1: allowed 1 or more"),
    (["sim-io", "get", "do", "-3"], "ADDR -3: allowed 0 or more"),
    (["sim-io", "get", "do", "abc"], "ADDR abc: allowed a decimal or 0x hex integer"),
    (["sim-io", "set", "do", "0"], "set needs at least one value"),
    (["sim-io", "set", "ao", "0", "1.5"], "value 1.5: allowed a decimal or 0x hex integer"),
    (["sim-io", "get", "xx", "0"], "allowed: get TABLE ADDR [COUNT]"),
    (["sim-io", "heap", "now"], "heap takes no arguments"),
    (["sim-io"], "no request: allowed"),
    (["mem", "get", "1", "5"], "get 1 5: allowed: get POSITION | set POSITION VALUE"),
    (["mem", "set", "1"], "set 1: allowed: get POSITION | set POSITION VALUE"),
    (["mem", "set", "1", "abc"], "VALUE abc: allowed a decimal or 0x hex integer"),
    (["mem", "set", "1", "4294967296"], "VALUE 4294967296: allowed -2147483648..4294967295"),
    (["mem", "get", "0"], "POSITION 0: allowed 1..1024"),
    (["mem", "--unit", "300", "get", "1"], "--unit 300: allowed 0..255"),
    (["mem", "--unit", "x", "get", "1"], "invalid int value: 'x'"),
    (["mem"], "no request: allowed"),
    (["mem", "--timeout", "0", "get", "1"], "--timeout 0: allowed more than 0 and at most 3600 seconds"),
    (["sim-io", "--timeout", "-1", "get", "do", "0"], "--timeout -1: allowed more than 0 and at most 3600 seconds"),
    (["sim", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args, words", BAD_ARGS, ids=[" ".join(a[0]) for a in BAD_ARGS])
def test_bad_arguments_are_one_line_with_the_allowed_forms(args, words):
    r = cli(*args)
    assert r.returncode == 2, r
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert words in r.stderr, r.stderr
    for python_text in ("Traceback", "invalid literal", "invalid syntax", "struct.error", "Error:"):
        assert python_text not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["sim-io", "--io", "127.0.0.1:{port}", "--timeout", "600", "get", "do", "0"],
                                  ["mem", "--tcp", "127.0.0.1:{port}", "--timeout", "600", "get", "1"]],
                         ids=["sim-io", "mem"])
def test_ctrl_c_exits_130_without_a_traceback(args):
    """A peer that accepts and never answers; Ctrl-C while the command waits for it (a wait of
    600 s: a busy machine that holds this test back must not let the command give up first)."""
    with listener() as srv:
        port = srv.getsockname()[1]
        run = Run([a.format(port=port) for a in args])
        srv.settimeout(10)
        conn, _ = srv.accept()  # the command is connected and waiting for its reply now
        with conn:
            os.killpg(run.proc.pid, signal.SIGINT)
            assert run.finish(20) == 130, (run.out, run.err)
    assert run.err == b"" and run.out == b""


def test_sim_io_and_mem_against_a_simulator(sim_pool):
    s = sim_pool(32)
    io = "%s:%d" % s.io
    tcp = "%s:%d" % (s.host, s.port)
    r = cli("sim-io", "--io", io, "heap")
    alloc, free = (int(v) for v in r.stdout.split())
    assert r.returncode == 0 and alloc > 10000 and free > 0, r
    assert cli("mem", "--tcp", tcp, "set", "7", "-5").returncode == 0
    r = cli("mem", "--tcp", tcp, "--signed", "get", "7")
    assert (r.returncode, r.stdout.strip()) == (0, "-5"), r.stderr
    r = cli("sim-io", "--io", io, "get", "mem", "7", "1")
    assert (r.returncode, r.stdout.strip()) == (0, str(2 ** 32 - 5)), r.stderr
    r = cli("sim-io", "--io", io, "get", "do", "600")
    assert (r.returncode, r.stderr) == (1, "mbnode sim-io: addresses 600..600 outside do 0..575\n"), r
    r = cli("mem", "--tcp", tcp, "--unit", "9", "get", "1")  # the simulator is unit 1
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r
    assert "no reply from unit 9 at %s within 3 s (is the unit id right?)" % tcp in r.stderr, r.stderr


# --- the I/O control channel never blocks the firmware ----------------------------------------


def test_control_channel_client_that_never_reads_does_not_stop_modbus(start_sim):
    need("pymodbus", mbtest.pymodbus is not None)
    s = start_sim()
    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.connect(s.io)
    hog.setblocking(False)
    # Requests with large replies until the kernel takes no more (the firmware stopped reading
    # them: its replies wait, unread), bounded in time.
    request_line = b"get mem 1 1024\n" * 64
    sent, full, deadline = 0, 0, time.monotonic() + 10
    while time.monotonic() < deadline and full < 20:
        try:
            sent += hog.send(request_line)
            full = 0
        except BlockingIOError:
            full += 1
            time.sleep(0.05)
    assert sent > 100000, sent
    with pymodbus_client(s, timeout=2.0) as c:
        for i in range(50):
            t = time.monotonic()
            rr = c.read_holding_registers(0, count=2, **unit())
            assert not rr.isError(), (i, rr)
            assert time.monotonic() - t < 2.0
    # The channel still serves other clients meanwhile; the stuck one is the oldest of five.
    for _ in range(5):
        assert io_cmd(s.io, "get di 0") == "ok 0"
    assert s.proc.poll() is None
    hog.close()


def test_control_channel_bad_bytes_get_an_error_and_the_connection_stays(start_sim):
    s = start_sim()
    with socket.create_connection(s.io, timeout=5) as c:
        f = c.makefile("rb")
        c.sendall(b"get ao \xff\xfe 1\n")
        assert f.readline() == b"err requests are ASCII text\n"
        c.sendall(b"x" * 3000 + b"\nget ao 0\n")
        assert f.readline() == b"err request longer than 1024 characters\n"  # once
        assert f.readline() == b"ok 0\n"
        c.sendall(b"set ao 0 " + b"7 " * 600 + b"\nget ao 0\n")  # long, its newline in the same read
        assert f.readline() == b"err request longer than 1024 characters\n"
        assert f.readline() == b"ok 0\n"
        c.sendall(b"heap\n")
        assert f.readline().startswith(b"ok ")
    assert modbus_poll((s.host, s.port))[:2] == b"\x03\x02"
    assert s.proc.poll() is None


# --- installed with pip ----------------------------------------------------------------------


def test_pip_install_gives_working_tools(tmp_path):
    """`pip install .` of the checkout (not editable) into a new venv: --version, a board build
    and a simulator that serves, with the firmware files from the installed package."""
    binary = micropython_or_fail(32)
    mpy_cross = ROOT / ".cache" / "bin" / "mpy-cross"
    need("mpy-cross (make setup)", mpy_cross.exists())
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".cache", "build", ".git", "*.egg-info", "__pycache__",
                                                           ".pytest_cache", "node_modules"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.rmtree(src)  # nothing may come from the copy now
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), str(mpy_cross.parent), env.get("PATH", "")]),
               MICROPYTHON=binary, XDG_CACHE_HOME=str(tmp_path / "cache"))
    mbnode = str(venv / "bin" / "mbnode")
    from mbnode import VERSION

    r = subprocess.run([mbnode, "--version"], capture_output=True, text=True, env=env, cwd=work, timeout=60)
    assert (r.returncode, r.stdout) == (0, "mbnode %s\n" % VERSION), r
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "from mbnode_host import paths; print(paths.ROOT, "
                        "paths.FIRMWARE)"], capture_output=True, text=True, env=env, cwd=work, timeout=60)
    root, firmware = r.stdout.split()
    assert root == "None" and firmware.startswith(str(venv)), r
    out = tmp_path / "pico"
    r = subprocess.run([mbnode, "build", "--board", "pico", "--out", str(out)], capture_output=True, text=True,
                       env=env, cwd=work, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / "device" / "main.py").exists() and (out / "device" / "mbnode" / "pdu.mpy").exists()
    assert (out / "device" / "mbnode" / "mqtt" / "bridge.mpy").exists()  # the subpackage travels too
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "from mbnode import config; from mbnode.mqtt import "
                        "textproto; print(config.validate({'mqtt': {}})['mqtt']['queue'], textproto.HEAD > 0)"],
                       capture_output=True, text=True, env=env, cwd=work, timeout=60)
    assert r.stdout.split() == ["8", "True"], r
    assert (out / "frozen" / "manifest.py").exists()
    run = Run(["sim", "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0"], env=env, cwd=work, argv=[mbnode])
    try:
        ready = run.wait_ready()
        assert ready, run.err
        f = fields(ready)
        host, port = f["tcp"].rsplit(":", 1)
        assert modbus_poll((host, int(port)))[:2] == b"\x03\x02"
    finally:
        assert run.stop() == 0, run.err


def test_version_matches_the_package():
    from mbnode import VERSION

    r = cli("--version")
    assert (r.returncode, r.stdout) == (0, "mbnode %s\n" % VERSION)
