"""Shared fixtures: start the real firmware on the MicroPython unix port via `mbnode sim`.

A test that needs the unix port (or mbpoll, mosquitto, ...) fails with a clear message when CI
is set and the dependency is missing; on a developer machine it is skipped instead.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tests" / "core"))

from mbnode_host import paths  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(what, available):
    """Skip locally, fail in CI, when a test dependency is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail("missing test dependency in CI: %s (make setup installs it)" % what, pytrace=False)
    pytest.skip("missing %s (run make setup)" % what)


def micropython_or_fail(bits):
    try:
        return paths.micropython(bits)
    except paths.MissingTool as e:
        need(str(e), False)


def need_tool(name):
    need(name, shutil.which(name))
    return shutil.which(name)


class Sim:
    """A running `mbnode sim`: .host, .port (Modbus TCP), .io (control channel), .stop().

    With rtu="pty" (or a serial device path) it also serves Modbus RTU: .rtu_path is the path a
    master opens and .serial the line settings from the ready line, e.g. "19200-8E1". baud,
    parity and stopbits become --baud/--parity/--stopbits (None: the simulator's default);
    tcp=False passes --no-tcp, and then .host and .port are None.
    """

    # The tests' heap: the protocol tests are not heap tests (those give theirs explicitly). 160K
    # since issue 12: the 64-bit port compiling the firmware from source with RTU starts from 130K.
    def __init__(self, bits=32, config=None, unit=None, heap="160K", mpy=False, tmp_path=None, extra=(),
                 rtu=None, baud=None, parity=None, stopbits=None, tcp=True):
        micropython_or_fail(bits)
        argv = [sys.executable, "-m", "mbnode_host.cli", "sim", "--bits", str(bits), "--heap", heap,
                "--io", "127.0.0.1:0"]
        argv += ["--tcp", "127.0.0.1:0"] if tcp else ["--no-tcp"]
        if rtu is not None:
            argv += ["--rtu", str(rtu)]
        for option, value in (("--baud", baud), ("--parity", parity), ("--stopbits", stopbits)):
            if value is not None:
                argv += [option, str(value)]
        if config is not None:
            cfg_file = Path(tmp_path) / ("config-%d.json" % id(self))
            cfg_file.write_text(json.dumps(config))
            argv += ["--config", str(cfg_file)]
        if unit is not None:
            argv += ["--unit", str(unit)]
        if mpy:
            argv.append("--mpy")
        argv += list(extra)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
        # Own session: if the wrapper hangs, stop() can kill the micropython child with it.
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.ready = self._wait_ready(20)
        words = self.ready.split()
        self.fields = dict(zip(words[1::2], words[2::2]))
        try:
            self.host = self.port = None
            if tcp:
                self.host, port = self.fields["tcp"].rsplit(":", 1)
                self.port = int(port)
            io_host, io_port = self.fields["io"].rsplit(":", 1)
            self.io = (io_host, int(io_port))
            self.rtu_path = self.serial = None
            if rtu is not None:
                self.rtu_path = self.fields["rtu"]
                self.serial = self.fields["serial"]
        except (KeyError, ValueError) as e:
            self.stop()
            raise RuntimeError("ready line %r lacks or garbles %s" % (self.ready, e))

    def _wait_ready(self, timeout):
        # The lines before the ready line are kept in .early (start-up log lines: a restored
        # save, a file created). Read by a thread, as a select() on the pipe cannot see lines
        # the text file's buffer already holds (two lines in one chunk).
        self.early = []
        line = self.next_line(timeout, lambda s: s.startswith("ready"), self.early)
        if line is not None:
            return line
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        err = self.proc.stderr.read()
        raise RuntimeError("simulator did not print ready: %s" % err)

    def next_line(self, timeout, want, others=None):
        """The next stdout line `want` accepts (stripped), the lines before it appended to
        `others`; None at the end of the output or after `timeout` s (the simulator is killed
        then, the only way to end the blocked read)."""
        import threading

        found = []

        def read():
            for line in self.proc.stdout:
                if want(line.strip()):
                    found.append(line.strip())
                    return
                if others is not None:
                    others.append(line.rstrip("\n"))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            t.join(10)
        return found[0] if found else None

    def io_cmd(self, line):
        with socket.create_connection(self.io, timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.decode().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_sim(tmp_path):
    """Factory: start_sim(bits=32, config=None, unit=None, heap='160K', mpy=False) -> Sim."""
    sims = []

    def start(**kw):
        sim = Sim(tmp_path=tmp_path, **kw)
        sims.append(sim)
        return sim

    yield start
    for s in sims:
        s.stop()


@pytest.fixture(params=[32, 64], ids=["32bit", "64bit"])
def bits(request):
    return request.param


@pytest.fixture
def sim(start_sim):
    """The default simulator (32-bit build, default configuration)."""
    return start_sim()


@pytest.fixture(scope="module")
def sim_pool(tmp_path_factory):
    """Module-wide simulators with the default configuration, shared by tests that do not
    interfere with each other: sim_pool(bits=32) starts one per word size on first use."""
    tmp = tmp_path_factory.mktemp("sim-pool")
    sims = {}

    def get(bits=32):
        if bits not in sims:
            sims[bits] = Sim(bits=bits, tmp_path=tmp)
        assert sims[bits].proc.poll() is None, "shared %d-bit simulator died" % bits
        return sims[bits]

    yield get
    for s in sims.values():
        s.stop()


@pytest.fixture(scope="module")
def rtu_pool(tmp_path_factory):
    """Module-wide simulators serving Modbus RTU on a pty (and TCP), shared by tests that leave
    no state behind for the others: rtu_pool(bits=32, baud=19200, parity="E", ...) starts one
    per distinct set of arguments on first use. Keywords are those of Sim."""
    tmp = tmp_path_factory.mktemp("rtu-pool")
    sims = {}

    def get(bits=32, **kw):
        kw.setdefault("rtu", "pty")
        key = (bits,) + tuple(sorted((k, repr(v)) for k, v in kw.items()))
        if key not in sims:
            sims[key] = Sim(bits=bits, tmp_path=tmp, **kw)
        assert sims[key].proc.poll() is None, "shared RTU simulator %r died" % (key,)
        return sims[key]

    yield get
    for s in sims.values():
        s.stop()


@pytest.fixture
def rtu_sim(rtu_pool):
    """The module's RTU simulator with the default line settings (19200 8E1) and TCP."""
    return rtu_pool(32)
