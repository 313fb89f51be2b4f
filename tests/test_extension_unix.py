"""Extension modules end to end: the real firmware on the 32-bit unix port as the master of
modules that are not ours, read and written by clients that are not ours either.

  * emulated slaves (tests/fakes/emulated_slave.py) on tests/fakes/line_emulator.py at 19200 8N2,
    the simulator's end a pty: modules on the serial line, with the wire's own timing;
  * a pymodbus TCP server (tests/mqtttest.PymodbusServer) as a module over Modbus TCP;
  * pymodbus's TCP client and mbpoll (TCP and RTU) as the masters reading and writing the
    extension channels.

Clients never retry (pymodbus retries=0), each request gets exactly one answer, and the modules'
logs account for every request the firmware sent them: its counters (the status registers) are
compared with them where nothing is on its way.
"""

import subprocess
import sys
import time

import pytest

from conftest import ROOT, Sim, need, need_tool
from mbtest import exception_code, ok, pymodbus, pymodbus_client, unit

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from emulated_slave import EmulatedSlave  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Setting  # noqa: E402

SETTING = Setting(19200, parity="N", stopbits=2)
STATUS = 0x1780  # extension.status_position 961: module k's [state, misses, sent, failed] at 0x1780 + 4k
ONLINE, OFFLINE = 1, 2
WAIT = 10.0


def ext_config(modules, rtu=True, **extra):
    cfg = dict({"extension": {"modules": modules}}, **extra)
    if rtu:
        cfg["rtu"] = {"enabled": True, "mode": "master", "baud": 19200, "parity": "N", "stopbits": 2}
    return cfg


def rtu_sim(tmp, line, modules):
    return Sim(tmp_path=tmp, config=ext_config(modules), rtu=line.url(0), parity="N", stopbits=2)


def wait_for(what, fn, timeout=WAIT):
    """fn()'s first true value, asked every 20 ms until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "%s: not within %.0f s" % (what, timeout)
        time.sleep(0.02)


def status(c, k):
    return ok(c.read_holding_registers(STATUS + 4 * k, count=4)).registers


def wait_state(c, k, state):
    return wait_for("module %d %s" % (k, "online" if state == ONLINE else "offline"),
                    lambda: (lambda s: s if s[0] == state else None)(status(c, k)))


def need_pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


# --- two modules on the serial line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Unit 3: 16 DI, 8 AI (map DI 0x40-0x4F, AI 0x40-0x47); unit 4: 8 DO at 100, 4 AO at 200,
    8 DI (map DO 0x40-0x47, AO 0x40-0x43, DI 0x50-0x57)."""
    need_pymodbus()
    a = EmulatedSlave(SETTING, unit=3, discrete=[(0, 15)], inputs=[(0, 7)], name="A")
    b = EmulatedSlave(SETTING, unit=4, coils=[(100, 107)], holding=[(200, 203)], discrete=[(0, 7)], name="B")
    line = LineEmulator([PtyEnd(), a, b]).start()
    sim = None
    try:
        sim = rtu_sim(tmp_path_factory.mktemp("ext"), line, [
            {"unit": 3, "di": 16, "ai": 8},
            {"unit": 4, "do": 8, "do_address": 100, "ao": 4, "ao_address": 200, "di": 8}])
        with pymodbus_client(sim) as c:
            wait_state(c, 0, ONLINE)
            wait_state(c, 1, ONLINE)
        yield sim, a, b
    finally:
        if sim is not None:
            sim.stop()
        line.stop()


def test_ready_line_names_the_modules(chain):
    sim, _, _ = chain
    assert sim.fields["extension"] == "2"
    assert sim.fields["rtu_mode"] == "master"


def test_inputs_are_read_through_the_master(chain):
    sim, a, b = chain
    di = [1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1]
    ai = [11, 22, 33, 44, 55, 66, 77, 65535]
    a.set(2, 0, di)
    a.set(4, 0, ai)
    b.set(2, 0, [1] * 8)
    with pymodbus_client(sim) as c:
        wait_for("the new inputs", lambda: ok(c.read_input_registers(0x40, count=8)).registers == ai)
        want = [bool(v) for v in di] + [True] * 8
        wait_for("the new DI", lambda: ok(c.read_discrete_inputs(0x40, count=24)).bits[:24] == want)


def test_outputs_are_written_through_and_answered_once_the_module_has_them(chain):
    sim, _, b = chain
    with pymodbus_client(sim) as c:
        ok(c.write_registers(0x40, [5, 6, 7, 8]))
        assert [b.value(3, 200 + i) for i in range(4)] == [5, 6, 7, 8]  # already there when answered
        ok(c.write_coils(0x40, [True, False, True, True, False, False, False, True]))
        assert [b.value(1, 100 + i) for i in range(8)] == [1, 0, 1, 1, 0, 0, 0, 1]
        ok(c.write_coil(0x47, False))  # FC05: the module gets FC15 of one coil
        assert b.value(1, 107) == 0
        ok(c.write_register(0x43, 999))  # FC06: FC16 of one register
        assert b.value(3, 203) == 999
        assert ok(c.read_holding_registers(0x40, count=4)).registers == [5, 6, 7, 999]
        assert ok(c.read_coils(0x40, count=8)).bits[:8] == [True, False, True, True, False, False, False, False]
    writes = [pdu for _, pdu, what in b.log if pdu[:2] in ("0f", "10")]
    assert writes[-4:] == ["1000c80004080005000600070008", "0f0064000801" + "8d", "0f006b000101" + "00",
                           "1000cb00010203e7"]  # each write went out once


def test_channels_of_no_module_answer_02(chain):
    sim, _, _ = chain
    with pymodbus_client(sim) as c:
        assert exception_code(c.read_discrete_inputs(0x58, count=1)) == 2
        assert exception_code(c.read_discrete_inputs(0x50, count=9)) == 2  # one past module 4's
        assert exception_code(c.read_input_registers(0x48, count=1)) == 2
        assert exception_code(c.read_coils(0x48, count=1)) == 2
        assert exception_code(c.read_holding_registers(0x44, count=1)) == 2
        assert exception_code(c.write_register(0x44, 1)) == 2
        assert exception_code(c.read_input_registers(0x13F, count=1)) == 2
        ok(c.read_input_registers(0x00, count=0x48))  # onboard and module AI in one request


def test_mbpoll_reads_the_extension_inputs(chain):
    sim, a, _ = chain
    exe = need_tool("mbpoll")
    a.set(4, 0, [1000, 2000])
    with pymodbus_client(sim) as c:
        wait_for("the new inputs", lambda: ok(c.read_input_registers(0x40, count=2)).registers == [1000, 2000])
    r = subprocess.run([exe, "-m", "tcp", "-p", str(sim.port), "-a", "1", "-0", "-1", "-t", "3", "-r", str(0x40),
                        "-c", "2", sim.host], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[64]: \t1000" in r.stdout and "[65]: \t2000" in r.stdout, r.stdout


def test_the_status_registers_count_what_the_modules_saw(chain):
    sim, a, b = chain
    with pymodbus_client(sim) as c:
        for k, slave in enumerate((a, b)):
            before = len(slave.log)
            state, misses, sent, failed = status(c, k)
            after = len(slave.log)
            assert (state, misses) == (ONLINE, 0)
            assert before <= sent <= after + 1  # + the one request that may be on its way
            assert failed == sum(1 for _, _, what in slave.log if what == "missed") == 0


# --- a module that stops answering --------------------------------------------------------------------


def test_a_module_that_stops_answering_goes_offline_and_every_request_is_counted(tmp_path):
    """Unit 5 (4 AI, 2 AO) stops answering: after 2 misses (polls 100 ms apart, never repeated at
    once) its channels answer 0x0B, reads and writes, while unit 3's are served; with a 60 s
    retry nothing more is sent, so its log and the status registers must agree exactly."""
    need_pymodbus()
    a = EmulatedSlave(SETTING, unit=3, discrete=[(0, 7)], name="A")
    quiet = []
    c5 = EmulatedSlave(SETTING, unit=5, inputs=[(0, 3)], holding=[(10, 11)], miss=lambda n: bool(quiet), name="C")
    with LineEmulator([PtyEnd(), a, c5]) as line:
        sim = rtu_sim(tmp_path, line, [
            {"unit": 3, "di": 8},
            {"unit": 5, "ai": 4, "ao": 2, "ao_address": 10, "misses": 2, "retry_ms": 60000, "retry_max_ms": 60000}])
        try:
            with pymodbus_client(sim) as c:
                wait_state(c, 1, ONLINE)
                assert ok(c.read_input_registers(0x40, count=4)).registers == [1000, 1001, 1002, 1003]
                quiet.append(True)
                state, misses, sent, failed = wait_state(c, 1, OFFLINE)
                assert exception_code(c.read_input_registers(0x40, count=1)) == 0x0B
                assert exception_code(c.read_holding_registers(0x40, count=2)) == 0x0B
                assert exception_code(c.write_register(0x41, 5)) == 0x0B
                assert exception_code(c.read_input_registers(0x00, count=0x44)) == 0x0B  # onboard + its AI
                ok(c.read_input_registers(0x00, count=0x40))  # onboard alone
                ok(c.read_discrete_inputs(0x40, count=8))  # unit 3 is served
                assert status(c, 1) == [OFFLINE, 2, sent, failed]  # nothing sent since
        finally:
            sim.stop()
    assert (misses, failed) == (2, 2)
    assert sent == len(c5.log)
    assert [what for _, _, what in c5.log].count("missed") == 2
    assert [what for _, _, what in c5.log][-2:] == ["missed", "missed"]
    assert c5.log[0][1] == "10000a000204" + "00000000"  # its outputs first, from the map
    assert all(pdu == "0400000004" for _, pdu, _ in c5.log[1:])  # then its inputs, every period
    gap = c5.times[-1] - c5.times[-2]
    assert gap > 0.08, "the poll after a miss came %.3f s later: retried at once?" % gap


def test_a_module_that_comes_back_gets_its_outputs_again(tmp_path):
    """Unit 6 stops answering and loses its outputs (a power cut); when it answers again it is
    online after its outputs were written from the map, then its inputs read."""
    need_pymodbus()
    quiet = []
    d = EmulatedSlave(SETTING, unit=6, inputs=[(0, 1)], holding=[(20, 21)], miss=lambda n: bool(quiet), name="D")
    with LineEmulator([PtyEnd(), d]) as line:
        sim = rtu_sim(tmp_path, line, [{"unit": 6, "ai": 2, "ao": 2, "ao_address": 20, "misses": 2,
                                        "retry_ms": 200, "retry_max_ms": 400}])
        try:
            with pymodbus_client(sim) as c:
                wait_state(c, 0, ONLINE)
                ok(c.write_registers(0x40, [111, 222]))
                quiet.append(True)
                wait_state(c, 0, OFFLINE)
                assert exception_code(c.read_input_registers(0x40, count=2)) == 0x0B
                d.set(3, 20, [0, 0])  # what it has after the power cut
                d.set(4, 0, [7, 8])
                n = len(d.log)
                quiet.clear()
                wait_state(c, 0, ONLINE)
                assert [d.value(3, 20), d.value(3, 21)] == [111, 222]
                assert ok(c.read_input_registers(0x40, count=2)).registers == [7, 8]
                assert ok(c.read_holding_registers(0x40, count=2)).registers == [111, 222]
        finally:
            sim.stop()
    back = [(pdu, what) for _, pdu, what in d.log[n:] if what == "answered"]
    assert back[0] == ("10001400020400" + "6f00de", "answered")  # the outputs first
    assert back[1] == ("0400000002", "answered")


# --- a module over Modbus TCP --------------------------------------------------------------------------


def tcp_module(port, **kw):
    return dict({"unit": 5, "tcp": "127.0.0.1:%d" % port, "di": 32, "ai": 20, "do": 8, "ao": 4, "ao_address": 10,
                 "misses": 2, "retry_ms": 200, "retry_max_ms": 200}, **kw)


def test_a_module_over_tcp_read_written_lost_and_back(tmp_path):
    """A pymodbus TCP server is the module: its DI (odd ones set) and input registers (700 + i)
    are read through the simulator, its coils and holding registers written through; stopped,
    it is offline (0x0B); a new server on its port gets the outputs again and it is online."""
    need_pymodbus()
    from mqtttest import PymodbusServer

    server = PymodbusServer(unit=5)
    port = server.port
    sim = Sim(tmp_path=tmp_path, config=ext_config([tcp_module(port)], rtu=False))
    try:
        assert sim.fields["extension"] == "1"
        with pymodbus_client(sim) as c:
            wait_state(c, 0, ONLINE)
            assert ok(c.read_discrete_inputs(0x40, count=32)).bits[:32] == PymodbusServer.DISCRETE
            assert ok(c.read_input_registers(0x40, count=20)).registers == PymodbusServer.INPUT
            ok(c.write_registers(0x40, [1, 2, 3, 4]))
            ok(c.write_coils(0x40, [True] * 8))
            direct = server.client()
            try:
                assert ok(direct.read_holding_registers(10, count=4, **unit(5))).registers == [1, 2, 3, 4]
                assert ok(direct.read_coils(0, count=8, **unit(5))).bits[:8] == [True] * 8
            finally:
                direct.close()
            server.stop()
            wait_state(c, 0, OFFLINE)
            assert exception_code(c.read_input_registers(0x40, count=1)) == 0x0B
            assert exception_code(c.write_register(0x40, 9)) == 0x0B
            server = PymodbusServer(unit=5, port=port)
            wait_state(c, 0, ONLINE)
            direct = server.client()
            try:
                assert ok(direct.read_holding_registers(10, count=4, **unit(5))).registers == [1, 2, 3, 4]
            finally:
                direct.close()
            assert ok(c.read_input_registers(0x40, count=2)).registers == [700, 701]
    finally:
        sim.stop()
        server.stop()


def test_an_rtu_master_writes_through_to_a_module_over_tcp(tmp_path):
    """The simulator is an RTU slave on its pty and the master of a module over TCP: mbpoll's
    writes over RTU wait for the module's answer, and a module that is gone is exception 0x0B."""
    need_pymodbus()
    exe = need_tool("mbpoll")
    from mqtttest import PymodbusServer

    server = PymodbusServer(unit=5)
    sim = Sim(tmp_path=tmp_path, config=ext_config([tcp_module(server.port)], rtu=False), rtu="pty")
    try:
        with pymodbus_client(sim) as c:
            wait_state(c, 0, ONLINE)

        def mbpoll(*args):
            argv = [exe, "-m", "rtu", "-b", "19200", "-P", "even", "-s", "1", "-a", "1", "-0", "-1", "-o", "2"]
            return subprocess.run(argv + [str(a) for a in args[:-1]] + [sim.rtu_path, "--"] + args[-1],
                                  capture_output=True, text=True, timeout=30)

        r = mbpoll("-t", "4", "-r", 0x40, ["4321"])
        assert r.returncode == 0, r.stdout + r.stderr
        direct = server.client()
        try:
            assert ok(direct.read_holding_registers(10, count=1, **unit(5))).registers == [4321]
        finally:
            direct.close()
        r = mbpoll("-t", "4", "-r", 0x41, ["7", "8", "9"])  # FC16
        assert r.returncode == 0, r.stdout + r.stderr
        direct = server.client()
        try:
            assert ok(direct.read_holding_registers(11, count=3, **unit(5))).registers == [7, 8, 9]
        finally:
            direct.close()
        r = mbpoll("-t", "3", "-r", 0x40, "-c", 2, [])  # FC04 of its inputs over RTU
        assert r.returncode == 0 and "[64]: \t700" in r.stdout, r.stdout + r.stderr
        server.stop()
        with pymodbus_client(sim) as c:
            wait_state(c, 0, OFFLINE)
        r = mbpoll("-t", "4", "-r", 0x40, ["1"])
        assert r.returncode != 0 and "target device failed to respond" in (r.stdout + r.stderr).lower(), r.stdout
    finally:
        sim.stop()
        server.stop()


def test_the_seed_rtu_slave_on_one_line_and_master_of_modules_on_the_other(tmp_path):
    """seeds/001 whole: the device is a slave on rtu (mbpoll is its master) and the master of a
    module on rtu2; mbpoll reads the module's inputs and writes its outputs over the slave line,
    each write answered once the module on the other line has it."""
    exe = need_tool("mbpoll")
    mod = EmulatedSlave(SETTING, unit=7, discrete=[(0, 7)], inputs=[(0, 3)], holding=[(0, 3)], name="E")
    with LineEmulator([PtyEnd(), mod]) as line:
        cfg = {"rtu2": {"enabled": True, "mode": "master", "baud": 19200, "parity": "N", "stopbits": 2},
               "board": {"rtu2_device": line.url(0)},
               "extension": {"modules": [{"unit": 7, "di": 8, "ai": 4, "ao": 4}]}}
        sim = Sim(tmp_path=tmp_path, config=cfg, rtu="pty")
        try:
            assert sim.fields["rtu2_mode"] == "master" and sim.fields["extension"] == "1"
            with pymodbus_client(sim) as c:
                wait_state(c, 0, ONLINE)

            def mbpoll(*args):
                argv = [exe, "-m", "rtu", "-b", "19200", "-P", "even", "-s", "1", "-a", "1", "-0", "-1", "-o", "2"]
                return subprocess.run(argv + [str(a) for a in args[:-1]] + [sim.rtu_path, "--"] + args[-1],
                                      capture_output=True, text=True, timeout=30)

            r = mbpoll("-t", "3", "-r", 0x40, "-c", 4, [])
            assert r.returncode == 0, r.stdout + r.stderr
            assert [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("[")] == \
                ["1000", "1001", "1002", "1003"], r.stdout
            r = mbpoll("-t", "4", "-r", 0x40, ["11", "12", "13", "14"])
            assert r.returncode == 0, r.stdout + r.stderr
            assert [mod.value(3, a) for a in range(4)] == [11, 12, 13, 14]
        finally:
            sim.stop()


def test_a_write_through_answered_0x0b_later_counts_as_an_exception_answer(tmp_path):
    """A write to an online module that does not answer is answered 0x0B once its timeout has
    passed (pdu.PENDING, then the job's answer): the status registers count it among the
    exception answers (0x2008), as they count the request itself (0x2006)."""
    need_pymodbus()
    quiet = []
    c5 = EmulatedSlave(SETTING, unit=5, holding=[(10, 11)], miss=lambda n: bool(quiet), name="C")
    with LineEmulator([PtyEnd(), c5]) as line:
        cfg = ext_config([{"unit": 5, "ao": 2, "ao_address": 10, "misses": 1000, "period_ms": 3600000}])
        cfg["system"] = {"settings": str(tmp_path / "settings.bin"), "ntp": ""}
        sim = Sim(tmp_path=tmp_path, config=cfg, rtu=line.url(0), parity="N", stopbits=2)
        try:
            with pymodbus_client(sim) as c:
                wait_state(c, 0, ONLINE)
                quiet.append(True)
                before = ok(c.read_input_registers(0x2006, count=4)).registers  # requests, exceptions
                assert exception_code(c.write_register(0x41, 5)) == 0x0B
                after = ok(c.read_input_registers(0x2006, count=4)).registers
        finally:
            sim.stop()
    requests = lambda r: r[0] | r[1] << 16  # noqa: E731 - lower half first
    exceptions = lambda r: r[2] | r[3] << 16  # noqa: E731
    # Between the two reads: the first read itself, the write; the second read is counted after
    # its answer was made.
    assert requests(after) - requests(before) == 2, (before, after)
    assert exceptions(after) - exceptions(before) == 1, (before, after)
