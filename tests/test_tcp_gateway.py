"""The Modbus TCP-to-RTU gateway (mbnode.tcpgateway over mbnode.rtumaster) end to end: the
real firmware on the 32-bit unix port as RTU master, Modbus TCP clients that are not ours
(pymodbus, mbpoll, raw sockets where the bytes are the point) and field devices that are not
ours either:

  * a pymodbus RTU server (tests/fakes/pymodbus_rtu_device.py, unit 17: holding registers
    100..199 = 1000 + address, writable) on a socat pty pair;
  * emulated slaves (tests/fakes/emulated_slave.py) on tests/fakes/line_emulator.py, which
    keeps the wire's time: a slow device whose answer comes after the gateway's timeout, a
    device that misses requests, and a broadcast listener.

Every request is counted: each gets exactly one answer, the right one, and nothing is retried.
"""

import socket
import struct
import sys
import threading

import pytest

from conftest import ROOT, Sim, need
from mbtest import exception_code, mbap, ok, pymodbus_client, read_adu, silent_for, unit
from mqtttest import PtyPair, RtuDevice

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from emulated_slave import EmulatedSlave  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Setting  # noqa: E402

TIMEOUT_MS = 300  # gateway.timeout_ms of these simulators


def gateway_sim(tmp_path, rtu_path, units=(), broadcast=False, stopbits=2, **gw):
    cfg = {"unit_id": 1, "rtu": {"enabled": True, "mode": "master", "baud": 19200, "parity": "N",
                                 "stopbits": stopbits},
           "gateway": dict({"enabled": True, "units": list(units), "timeout_ms": TIMEOUT_MS,
                            "broadcast": broadcast}, **gw)}
    return Sim(tmp_path=tmp_path, config=cfg, rtu=rtu_path, parity="N", stopbits=stopbits)


@pytest.fixture(scope="module")
def pymodbus_chain(tmp_path_factory):
    """The simulator as gateway in front of the pymodbus RTU device (unit 17)."""
    need("pymodbus", __import__("importlib").util.find_spec("pymodbus"))
    tmp = tmp_path_factory.mktemp("gw")
    pair = PtyPair(tmp)
    dev = sim = None
    try:
        dev = RtuDevice(pair.b, unit=17, baud=19200, parity="N", stopbits=2)
        sim = gateway_sim(tmp, pair.a, stopbits=2)
        yield sim
    finally:
        if sim is not None:
            sim.stop()
        if dev is not None:
            dev.stop()
        pair.stop()


def test_ready_line_names_the_gateway(pymodbus_chain):
    assert "rtu_mode master" in pymodbus_chain.ready
    assert "gateway other-units" in pymodbus_chain.ready


def test_pymodbus_reads_and_writes_a_pymodbus_rtu_device_through_the_gateway(pymodbus_chain):
    with pymodbus_client(pymodbus_chain) as c:
        rr = ok(c.read_holding_registers(100, count=3, **unit(17)))
        assert rr.registers == [1100, 1101, 1102]
        ok(c.write_register(150, 4242, **unit(17)))
        assert ok(c.read_holding_registers(150, count=1, **unit(17))).registers == [4242]
        ok(c.write_registers(160, [7, 8, 65535], **unit(17)))
        assert ok(c.read_holding_registers(160, count=3, **unit(17))).registers == [7, 8, 65535]


def test_the_field_devices_exceptions_pass_through(pymodbus_chain):
    with pymodbus_client(pymodbus_chain) as c:
        assert exception_code(c.read_holding_registers(300, count=1, **unit(17))) == 2
        assert exception_code(c.read_input_registers(0, count=1, **unit(17))) == 2


def test_own_unit_is_answered_by_the_device_itself(pymodbus_chain):
    pymodbus_chain.io_cmd("set ao 0x10 77")
    with pymodbus_client(pymodbus_chain) as c:
        assert ok(c.read_holding_registers(0x10, count=1, **unit(1))).registers == [77]


def test_no_answer_is_exception_0b_and_the_next_request_is_served(pymodbus_chain):
    with pymodbus_client(pymodbus_chain, timeout=5) as c:
        assert exception_code(c.read_holding_registers(100, count=1, **unit(99))) == 0x0B
        assert ok(c.read_holding_registers(101, count=1, **unit(17))).registers == [1101]


def test_the_original_mbap_header_comes_back(pymodbus_chain):
    """Transaction id and unit id as the client sent them; the length field of the answer."""
    s = socket.create_connection((pymodbus_chain.host, pymodbus_chain.port), timeout=5)
    try:
        for tid in (0, 1, 0x1234, 0xFFFF):
            s.sendall(mbap(tid, 17, bytes([3, 0, 100, 0, 2])))
            rtid, runit, pdu = read_adu(s, timeout=5)
            assert (rtid, runit) == (tid, 17)
            assert pdu == bytes([3, 4]) + struct.pack(">HH", 1100, 1101)
    finally:
        s.close()


def test_mbpoll_reads_through_the_gateway(pymodbus_chain):
    import shutil
    import subprocess

    exe = shutil.which("mbpoll")
    need("mbpoll (apt install mbpoll)", exe)
    r = subprocess.run([exe, "-m", "tcp", "-a", "17", "-r", "111", "-c", "2", "-1", "-0", "-t", "4",
                        "-p", str(pymodbus_chain.port), pymodbus_chain.host],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[111]: \t1111" in r.stdout.replace(" ", "") or "[111]:\t1111" in r.stdout.replace(" ", ""), r.stdout


def test_clients_share_the_bus_and_every_request_gets_its_own_answer(pymodbus_chain):
    """4 clients at once, 40 requests each, every one for other registers: all 160 answered
    with the values of the registers each asked for."""
    errors = []
    counts = [0] * 4

    def client(k):
        try:
            s = socket.create_connection((pymodbus_chain.host, pymodbus_chain.port), timeout=10)
            try:
                for i in range(40):
                    first = 100 + (k * 40 + i) % 90
                    s.sendall(mbap(i, 17, bytes([3, 0, first, 0, 2])))
                    rtid, runit, pdu = read_adu(s, timeout=10)
                    assert (rtid, runit) == (i, 17)
                    assert pdu[2:] == struct.pack(">HH", 1000 + first, 1000 + first + 1), (first, pdu)
                    counts[k] += 1
            finally:
                s.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((k, e))

    with pymodbus_client(pymodbus_chain) as c:  # registers 100..191 back to 1000 + a first
        for a in range(100, 192, 60):
            ok(c.write_registers(a, [1000 + r for r in range(a, min(a + 60, 192))], **unit(17)))
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert counts == [40] * 4


# ---- emulated field devices: late answers, missed requests, broadcasts -----------------------


def test_a_late_answer_is_never_taken_for_the_next_request(tmp_path):
    """Unit 5 answers its 1st, 3rd, 5th... request 450 ms late (after the 300 ms timeout), the
    others at once. Each late request gets 0x0B; the request after it, sent by the client as
    soon as it has its 0x0B, gets the registers it asked for, not the late answer."""
    setting = Setting(19200, parity="N", stopbits=2)
    slave = EmulatedSlave(setting, unit=5, holding=[(0, 99)],
                          reply_delay=lambda n: 0.450 if n % 2 else 0.002)
    with LineEmulator([PtyEnd(), slave]) as line:
        sim = gateway_sim(tmp_path, line.url(0))
        try:
            with pymodbus_client(sim, timeout=5) as c:
                for i in range(6):
                    first = 10 * i
                    if i % 2 == 0:
                        assert exception_code(c.read_holding_registers(first, count=2, **unit(5))) == 0x0B
                    else:
                        rr = ok(c.read_holding_registers(first, count=2, **unit(5)))
                        assert rr.registers == [1000 + first, 1001 + first], (i, rr.registers)
        finally:
            sim.stop()
    assert [state for _, _, state in slave.log] == ["answered"] * 6
    assert slave.spoiled == 0  # no request was sent into a late answer on the line


def test_a_device_that_misses_requests_gets_0b_each_time_others_are_served(tmp_path):
    setting = Setting(19200, parity="N", stopbits=2)
    flaky = EmulatedSlave(setting, unit=6, holding=[(0, 9)], miss=lambda n: n % 3 == 0, name="flaky")
    steady = EmulatedSlave(setting, unit=7, holding=[(0, 9)], name="steady")
    with LineEmulator([PtyEnd(), flaky, steady]) as line:
        sim = gateway_sim(tmp_path, line.url(0))
        try:
            got = []
            with pymodbus_client(sim, timeout=5) as c:
                for i in range(9):
                    rr = c.read_holding_registers(i, count=1, **unit(6))
                    got.append(exception_code(rr) if rr.isError() else rr.registers[0])
                    assert ok(c.read_holding_registers(i, count=1, **unit(7))).registers == [1000 + i]
        finally:
            sim.stop()
    assert got == [1000, 1001, 0x0B, 1003, 1004, 0x0B, 1006, 1007, 0x0B]
    assert len(flaky.log) == 9 and len(steady.log) == 9


def test_only_listed_units_are_forwarded(tmp_path):
    setting = Setting(19200, parity="N", stopbits=2)
    a = EmulatedSlave(setting, unit=8, holding=[(0, 9)])
    b = EmulatedSlave(setting, unit=9, holding=[(0, 9)])
    with LineEmulator([PtyEnd(), a, b]) as line:
        sim = gateway_sim(tmp_path, line.url(0), units=[8])
        try:
            assert "gateway 8" in sim.ready
            with pymodbus_client(sim, timeout=5) as c:
                assert ok(c.read_holding_registers(3, count=1, **unit(8))).registers == [1003]
            s = socket.create_connection((sim.host, sim.port), timeout=5)
            try:
                s.sendall(mbap(1, 9, bytes([3, 0, 3, 0, 1])))
                assert silent_for(s, 1.0)  # unit 9 is neither this device nor listed: no answer
            finally:
                s.close()
        finally:
            sim.stop()
    assert len(a.log) == 1 and b.log == []


@pytest.mark.parametrize("broadcast", [False, True])
def test_broadcast_goes_out_only_when_configured_and_is_never_answered(tmp_path, broadcast):
    setting = Setting(19200, parity="N", stopbits=2)
    dev = EmulatedSlave(setting, unit=10, holding=[(0, 9)])
    with LineEmulator([PtyEnd(), dev]) as line:
        sim = gateway_sim(tmp_path, line.url(0), broadcast=broadcast)
        try:
            s = socket.create_connection((sim.host, sim.port), timeout=5)
            try:
                s.sendall(mbap(1, 0, bytes([6, 0, 4, 0, 99])))
                assert silent_for(s, 1.0)
                # The connection is served again afterwards.
                s.sendall(mbap(2, 10, bytes([3, 0, 4, 0, 1])))
                rtid, _, pdu = read_adu(s, timeout=5)
                assert (rtid, pdu) == (2, bytes([3, 2]) + struct.pack(">H", 1004))
            finally:
                s.close()
        finally:
            sim.stop()
    assert dev.broadcasts == ([bytes([6, 0, 4, 0, 99]).hex()] if broadcast else [])
