"""The running simulator over Modbus TCP, driven by pymodbus (a real master library) and by raw
sockets where the bytes on the wire are the point.

Tests that only read and write their own addresses share one simulator per word size
(`sim_pool`); tests that need a special configuration start their own.
"""

import struct
import threading
import time

import pytest

from conftest import need
from mbnode import VERSION
from mbtest import (
    cli,
    closed_within,
    connect,
    exception_code,
    fc03,
    mbap,
    ok,
    pymodbus,
    pymodbus_client,
    read_adu,
    request,
    silent_for,
    unit,
)


@pytest.fixture(autouse=True)
def _need_pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


@pytest.fixture
def shared(sim_pool):
    """The module's default 32-bit simulator."""
    return sim_pool(32)


@pytest.fixture
def shared_bits(sim_pool, bits):
    """The module's default simulator of the `bits` word size (both builds)."""
    return sim_pool(bits)


def io_values(sim, line):
    reply = sim.io_cmd(line)
    assert reply.startswith("ok"), reply
    return [int(v) for v in reply.split()[1:]]


# --- every range and its edges -------------------------------------------------------------


def test_coil_edges(shared_bits):
    sim = shared_bits
    sim.io_cmd("set do 0x3e 0 0 0")
    sim.io_cmd("set do 0x23e 0 0")
    with pymodbus_client(sim) as c:
        for a in (0x3F, 0x40, 0x23F):
            rr = ok(c.write_coil(a, True, **unit()))
            assert rr.bits[0] is True
        assert ok(c.read_coils(0x3E, count=3, **unit())).bits[:3] == [False, True, True]
        assert ok(c.read_coils(0x23E, count=2, **unit())).bits[:2] == [False, True]
        assert io_values(sim, "get do 0x3e 3") == [0, 1, 1]
        assert io_values(sim, "get do 0x23e 2") == [0, 1]
        assert len(ok(c.read_coils(0, count=0x240, **unit())).bits) >= 0x240
        assert exception_code(c.write_coil(0x240, True, **unit())) == 2
        assert exception_code(c.read_coils(0x240, count=1, **unit())) == 2
        assert exception_code(c.read_coils(0x23F, count=2, **unit())) == 2
        assert exception_code(c.write_coils(0x23F, [True, True], **unit())) == 2


def test_discrete_input_edges(shared_bits):
    sim = shared_bits
    assert sim.io_cmd("set di 0x3e 0 1 0") == "ok"
    assert sim.io_cmd("set di 0x23e 0 1") == "ok"
    with pymodbus_client(sim) as c:
        assert ok(c.read_discrete_inputs(0x3E, count=3, **unit())).bits[:3] == [False, True, False]
        assert ok(c.read_discrete_inputs(0x23E, count=2, **unit())).bits[:2] == [False, True]
        assert ok(c.read_discrete_inputs(0x23F, count=1, **unit())).bits[0] is True
        assert exception_code(c.read_discrete_inputs(0x240, count=1, **unit())) == 2
        assert exception_code(c.read_discrete_inputs(0x23F, count=2, **unit())) == 2


def test_holding_register_edges(shared_bits):
    sim = shared_bits
    with pymodbus_client(sim) as c:
        for a, v in ((0x3F, 0x3FF), (0x40, 0xFFFF), (0x13F, 0xABCD), (0x1000, 0x1111), (0x17FF, 0x2222)):
            ok(c.write_register(a, v, **unit()))
        assert ok(c.read_holding_registers(0x3F, count=2, **unit())).registers == [0x3FF, 0xFFFF]
        assert ok(c.read_holding_registers(0x13F, count=1, **unit())).registers == [0xABCD]
        assert ok(c.read_holding_registers(0x1000, count=1, **unit())).registers == [0x1111]
        assert ok(c.read_holding_registers(0x17FF, count=1, **unit())).registers == [0x2222]
        assert io_values(sim, "get ao 0x3f 2") == [0x3FF, 0xFFFF]
        assert io_values(sim, "get ao 0x13f") == [0xABCD]
        for a in (0x140, 0x0FFF, 0x1800):
            assert exception_code(c.write_register(a, 1, **unit())) == 2, hex(a)
            assert exception_code(c.read_holding_registers(a, count=1, **unit())) == 2, hex(a)
        for a in (0x13F, 0x0FFF, 0x17FF):
            assert exception_code(c.read_holding_registers(a, count=2, **unit())) == 2, hex(a)
        assert exception_code(c.write_registers(0x13F, [1, 2], **unit())) == 2
        assert exception_code(c.write_registers(0x17FF, [1, 2], **unit())) == 2


def test_input_register_edges(shared_bits):
    sim = shared_bits
    assert sim.io_cmd("set ai 0x3f 7 8") == "ok"
    assert sim.io_cmd("set ai 0x13f 9") == "ok"
    assert sim.io_cmd("set mem 1 0x00050006") == "ok"
    assert sim.io_cmd("set mem 1024 0x000A000B") == "ok"
    with pymodbus_client(sim) as c:
        assert ok(c.read_input_registers(0x3F, count=2, **unit())).registers == [7, 8]
        assert ok(c.read_input_registers(0x13F, count=1, **unit())).registers == [9]
        assert ok(c.read_input_registers(0x1000, count=2, **unit())).registers == [6, 5]
        assert ok(c.read_input_registers(0x17FE, count=2, **unit())).registers == [0xB, 0xA]
        for a in (0x140, 0x0FFF, 0x1800):
            assert exception_code(c.read_input_registers(a, count=1, **unit())) == 2, hex(a)
        for a in (0x13F, 0x0FFF, 0x17FF):
            assert exception_code(c.read_input_registers(a, count=2, **unit())) == 2, hex(a)


def test_quantity_limits_raw(shared_bits):
    """Quantity exceptions (03) with the bytes written out, so no client library can refuse
    to send them; the largest legal quantities answer."""
    cases = [
        ("01 0000 0000", "81 03"), ("01 0000 0241", "81 03"), ("02 0000 0241", "82 03"),
        ("03 0000 007E", "83 03"), ("04 0000 0000", "84 03"), ("03 0300 0000", "83 03"),
        ("10 0040 007C F8" + "0000" * 120, "90 03"), ("0F 0000 0241 49" + "00" * 73, "8F 03"),
        ("17 0000 007E 0040 0001 02 0000", "97 03"),
    ]
    with connect(shared_bits) as s:
        for i, (req, expected) in enumerate(cases):
            got = request(s, bytes.fromhex(req.replace(" ", "")), tid=i + 1)
            assert got.hex() == expected.replace(" ", "").lower(), req
        got = request(s, fc03(0, 0x7D), tid=99)
        assert got[:2] == b"\x03\xfa" and len(got) == 2 + 250


def test_onboard_ao_is_10_bit(shared_bits):
    sim = shared_bits
    with pymodbus_client(sim) as c:
        ok(c.write_registers(0x3E, [1, 2, 3], **unit()))
        assert exception_code(c.write_register(0x3F, 0x400, **unit())) == 3
        assert ok(c.write_register(0x3F, 0x3FF, **unit())).registers == [0x3FF]
        ok(c.write_register(0x3E, 1, **unit()))
        # FC16: one onboard value too big -> 03, nothing written.
        assert exception_code(c.write_registers(0x3E, [0x3FF, 0x400], **unit())) == 3
        assert io_values(sim, "get ao 0x3e 3") == [1, 0x3FF, 3]
        # ...while the extension half of the same request takes 16 bits.
        ok(c.write_registers(0x3F, [0x3FE, 0xFFFF], **unit()))
        assert io_values(sim, "get ao 0x3f 2") == [0x3FE, 0xFFFF]
        # FC22: the result (0x3FE & 0xFBFF) | (0x400 & 0x400) = 0x7FE is checked, not the masks.
        assert exception_code(c.mask_write_register(address=0x3F, and_mask=0xFBFF, or_mask=0x0400, **unit())) == 3
        assert io_values(sim, "get ao 0x3f") == [0x3FE]
        # FC23: write part checked before anything is written or read.
        rr = c.readwrite_registers(read_address=0x3E, read_count=2, write_address=0x3E, values=[0x400], **unit())
        assert exception_code(rr) == 3
        assert io_values(sim, "get ao 0x3e") == [1]


# --- write function codes round trip -------------------------------------------------------


def test_fc05_fc15_roundtrip(shared_bits):
    sim = shared_bits
    pattern = [True, False, True, True, False, False, True, True, True, False]
    with pymodbus_client(sim) as c:
        ok(c.write_coils(0x3C, [False] * 10, **unit()))
        ok(c.write_coils(0x3C, pattern, **unit()))
        assert ok(c.read_coils(0x3C, count=10, **unit())).bits[:10] == pattern
        assert io_values(sim, "get do 0x3c 10") == [int(b) for b in pattern]
        ok(c.write_coil(0x3D, True, **unit()))
        ok(c.write_coil(0x3E, False, **unit()))
        assert io_values(sim, "get do 0x3c 4") == [1, 1, 0, 1]


def test_fc16_roundtrip_123_registers(shared_bits):
    sim = shared_bits
    values = [(0x100 * i + 7) & 0xFFFF for i in range(123)]
    with pymodbus_client(sim) as c:
        ok(c.write_registers(0x60, values, **unit()))
        assert ok(c.read_holding_registers(0x60, count=123, **unit())).registers == values
    assert io_values(sim, "get ao 0x60 3") == values[:3]
    assert io_values(sim, "get ao 0xda") == [values[-1]]


def test_fc22_mask_write(shared):
    sim = shared
    assert sim.io_cmd("set ao 0x70 0x12") == "ok"
    with pymodbus_client(sim) as c:
        ok(c.mask_write_register(address=0x70, and_mask=0xF2, or_mask=0x25, **unit()))
        assert io_values(sim, "get ao 0x70") == [0x17]  # spec example
        ok(c.write_register(0x1010, 0xFF00, **unit()))
        ok(c.mask_write_register(address=0x1010, and_mask=0x0F0F, or_mask=0x1234, **unit()))
        # (0xFF00 & 0x0F0F) | (0x1234 & ~0x0F0F) = 0x0F00 | 0x1030
        assert ok(c.read_holding_registers(0x1010, count=1, **unit())).registers == [0x1F30]
        assert exception_code(c.mask_write_register(address=0x140, and_mask=0, or_mask=0, **unit())) == 2


def test_fc23_write_before_read(shared_bits):
    sim = shared_bits
    assert sim.io_cmd("set ao 0x80 11 22 33 44") == "ok"
    with pymodbus_client(sim) as c:
        rr = ok(c.readwrite_registers(read_address=0x80, read_count=4, write_address=0x81,
                                      values=[0xAAAA, 0xBBBB], **unit()))
        assert rr.registers == [11, 0xAAAA, 0xBBBB, 44]
        assert exception_code(c.readwrite_registers(read_address=0x140, read_count=1, write_address=0x80,
                                                    values=[1], **unit())) == 2
    assert io_values(sim, "get ao 0x80 4") == [11, 0xAAAA, 0xBBBB, 44]


def test_fc43_device_identification(shared_bits):
    with pymodbus_client(shared_bits) as c:
        basic = ok(c.read_device_information(read_code=1, object_id=0, **unit()))
        assert basic.information == {0: b"mbnode", 1: b"MBN-1", 2: VERSION.encode()}
        assert basic.conformity == 0x82
        assert basic.more_follows == 0
        regular = ok(c.read_device_information(read_code=2, object_id=0, **unit()))
        assert regular.information == {0: b"mbnode", 1: b"MBN-1", 2: VERSION.encode(),
                                       4: b"mbnode Modbus slave"}
        one = ok(c.read_device_information(read_code=4, object_id=4, **unit()))
        assert one.information == {4: b"mbnode Modbus slave"}
        assert exception_code(c.read_device_information(read_code=4, object_id=3, **unit())) == 2


# --- 32-bit memory positions ----------------------------------------------------------------


def test_memory_positions_lower_half_first(shared_bits):
    sim = shared_bits
    tcp = "%s:%d" % (sim.host, sim.port)
    r = cli("mem", "--tcp", tcp, "set", "1", "0x12345678")
    assert r.returncode == 0, r.stderr
    with pymodbus_client(sim) as c:
        assert ok(c.read_holding_registers(0x1000, count=2, **unit())).registers == [0x5678, 0x1234]
        assert ok(c.read_input_registers(0x1000, count=2, **unit())).registers == [0x5678, 0x1234]
        ok(c.write_registers(0x1002, [0xFFFE, 0xFFFF], **unit()))
    assert io_values(sim, "get mem 1 2") == [0x12345678, 0xFFFFFFFE]
    r = cli("mem", "--tcp", tcp, "get", "2", "--signed")
    assert (r.returncode, r.stdout.strip()) == (0, "-2"), r.stderr
    r = cli("mem", "--tcp", tcp, "get", "2")
    assert (r.returncode, r.stdout.strip()) == (0, "4294967294"), r.stderr
    # The last position, set to the most negative value from the I/O channel.
    assert sim.io_cmd("set mem 1024 -2147483648") == "ok"
    with pymodbus_client(sim) as c:
        assert ok(c.read_holding_registers(0x17FE, count=2, **unit())).registers == [0x0000, 0x8000]
    assert io_values(sim, "get mem 1024") == [0x80000000]
    assert sim.io_cmd("set mem 1024 4294967295") == "ok"
    assert io_values(sim, "get mem 1024") == [0xFFFFFFFF]


def test_mem_cli_limits_and_errors(shared):
    tcp = "%s:%d" % (shared.host, shared.port)
    assert cli("mem", "--tcp", tcp, "set", "3", "-2147483648").returncode == 0
    r = cli("mem", "--tcp", tcp, "get", "3", "--signed")
    assert (r.returncode, r.stdout.strip()) == (0, "-2147483648"), r.stderr
    r = cli("mem", "--tcp", tcp, "get", "3")
    assert (r.returncode, r.stdout.strip()) == (0, "2147483648"), r.stderr
    assert cli("mem", "--tcp", tcp, "set", "1024", "0xFFFFFFFF").returncode == 0
    r = cli("mem", "--tcp", tcp, "get", "1024")
    assert (r.returncode, r.stdout.strip()) == (0, "4294967295"), r.stderr
    for bad in (["set", "1", "4294967296"], ["set", "1", "-2147483649"], ["get", "0"], ["get", "1025"]):
        r = cli("mem", "--tcp", tcp, *bad)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)  # refused before anything is sent
        assert r.stderr.startswith("mbnode mem: "), r.stderr
    assert io_values(shared, "get mem 1024") == [0xFFFFFFFF], "a refused set must not write"
    r = cli("mem", "--tcp", tcp, "set", "1")
    assert r.returncode == 2 and "VALUE" in r.stderr


# --- the I/O control channel ----------------------------------------------------------------


def test_inputs_from_io_channel(shared_bits):
    sim = shared_bits
    assert sim.io_cmd("set di 0 0 0 0 0 0 0 0 0") == "ok"
    assert sim.io_cmd("set di 5 1") == "ok"
    assert sim.io_cmd("set ai 3 1000") == "ok"
    with pymodbus_client(sim) as c:
        assert ok(c.read_discrete_inputs(0, count=8, **unit())).bits[:8] == [i == 5 for i in range(8)]
        assert ok(c.read_input_registers(3, count=1, **unit())).registers == [1000]
        # Inputs are not outputs: coil 5 / holding 3 did not change.
        sim.io_cmd("set do 5 0")
        sim.io_cmd("set ao 3 0")
        assert ok(c.read_coils(5, count=1, **unit())).bits[0] is False
        assert ok(c.read_holding_registers(3, count=1, **unit())).registers == [0]


def test_outputs_to_io_channel(shared_bits):
    sim = shared_bits
    assert sim.io_cmd("set do 0 0 0 0 0 0 0 0 0") == "ok"
    with pymodbus_client(sim) as c:
        ok(c.write_coil(2, True, **unit()))
        ok(c.write_coil(7, True, **unit()))
        ok(c.write_register(5, 512, **unit()))
    assert sim.io_cmd("get do 0 8") == "ok 0 0 1 0 0 0 0 1"
    assert sim.io_cmd("get ao 5") == "ok 512"
    assert sim.io_cmd("get ao 0x140").startswith("err")
    assert sim.io_cmd("set do 0 2").startswith("err")
    assert sim.io_cmd("get nosuch 0").startswith("err")
    # The channel stays usable after errors (io_cmd opens a new connection; check one socket too).
    import socket

    with socket.create_connection(sim.io, timeout=3) as s:
        f = s.makefile("rwb")
        for line in (b"get ao 0x140\n", b"set ao 5 513\n", b"get ao 5\n"):
            f.write(line)
            f.flush()
        assert f.readline().startswith(b"err")
        assert f.readline() == b"ok\n"
        assert f.readline() == b"ok 513\n"


def test_sim_io_cli(shared):
    sim = shared
    io = "%s:%d" % sim.io
    assert sim.io_cmd("set di 0 1 0 1 1") == "ok"
    r = cli("sim-io", "--io", io, "get", "di", "0", "4")
    assert (r.returncode, r.stdout.strip()) == (0, "1 0 1 1"), r.stderr
    r = cli("sim-io", "--io", io, "set", "ai", "0x10", "4321", "0x10")
    assert (r.returncode, r.stdout.strip()) == (0, ""), r.stderr
    with pymodbus_client(sim) as c:
        assert ok(c.read_input_registers(0x10, count=2, **unit())).registers == [4321, 16]
    r = cli("sim-io", "--io", io, "get", "di", "0x240")
    assert r.returncode == 1
    assert "outside" in r.stderr
    r = cli("sim-io", "--io", io, "set", "do", "0", "2")
    assert r.returncode == 1
    assert "allowed 0 or 1" in r.stderr
    r = cli("sim-io", "--io", "127.0.0.1:1", "get", "di", "0")
    assert r.returncode == 1
    assert r.stderr.startswith("mbnode sim-io: "), r.stderr


# --- unit id and transaction id ------------------------------------------------------------


def test_other_unit_gets_no_reply(shared_bits):
    with connect(shared_bits) as s:
        s.sendall(mbap(0x0101, 2, fc03(0, 1)))
        assert silent_for(s, 0.4), "unit 2 must get no reply from unit 1"
        # The same connection still serves unit 1.
        assert request(s, fc03(0, 1), tid=0x0102, unit=1)[:2] == b"\x03\x02"
        s.sendall(mbap(0x0103, 247, fc03(0, 1)) + mbap(0x0104, 1, fc03(0, 1)))
        assert read_adu(s)[:2] == (0x0104, 1), "only the unit-1 frame of the pair is answered"
    with pymodbus_client(shared_bits) as c:
        ok(c.read_holding_registers(0, count=1, **unit(1)))


def test_unit_zero_answers_every_unit(start_sim):
    sim = start_sim(unit=0)
    assert sim.fields["unit"] == "0"
    with connect(sim) as s:
        for i, u in enumerate((1, 2, 17, 247, 255, 0)):
            assert request(s, fc03(0, 1), tid=i + 1, unit=u)[:2] == b"\x03\x02"
    with pymodbus_client(sim) as c:
        ok(c.read_holding_registers(0, count=1, **unit(7)))


def test_transaction_id_echoed(shared_bits):
    with connect(shared_bits) as s:
        for tid in (0, 1, 0x00FF, 0x7FFF, 0x8000, 0xBEEF, 0xFFFF):
            s.sendall(mbap(tid, 1, fc03(0, 1)))
            got_tid, got_unit, pdu = read_adu(s)
            assert (got_tid, got_unit) == (tid, 1)
            assert pdu[:2] == b"\x03\x02"


# --- several masters at once ----------------------------------------------------------------


def test_concurrent_clients(shared_bits):
    sim = shared_bits
    n_clients, n_requests = 4, 200
    errors = []
    done = []

    def worker(k):
        try:
            addr = 0xA0 + k
            with pymodbus_client(sim) as c:
                for i in range(n_requests // 2):
                    value = (k << 12) | i
                    ok(c.write_register(addr, value, **unit()))
                    rr = ok(c.read_holding_registers(addr, count=1, **unit()))
                    assert rr.registers == [value], (k, i, rr.registers)
            done.append(k)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n_clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, 60 - (time.monotonic() - start)))
    assert not errors, errors
    assert sorted(done) == list(range(n_clients))
    assert io_values(sim, "get ao 0xa0 4") == [(k << 12) | (n_requests // 2 - 1) for k in range(n_clients)]


# --- connection management ------------------------------------------------------------------


def _served(sim, sock, tid=1):
    return request(sock, fc03(0, 1), tid=tid)[:2] == b"\x03\x02"


def test_max_clients_refuse(start_sim):
    sim = start_sim(config={"tcp": {"max_clients": 2}})
    c1, c2 = connect(sim), connect(sim)
    try:
        assert _served(sim, c1) and _served(sim, c2)
        c3 = connect(sim)
        t0 = time.monotonic()
        assert closed_within(c3, 2.0), "third connection must be closed"
        assert time.monotonic() - t0 < 1.0, "refusal must be at once"
        c3.close()
        assert _served(sim, c1, 2) and _served(sim, c2, 2)
        # A freed slot is usable again (the close may be seen after the next accept: retry).
        c1.close()
        deadline = time.monotonic() + 3
        while True:
            c4 = connect(sim)
            try:
                if _served(sim, c4, 3):
                    break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline, "freed slot never reused"
                time.sleep(0.05)
            finally:
                c4.close()
    finally:
        c1.close()
        c2.close()


def test_max_clients_close_idlest(start_sim):
    sim = start_sim(config={"tcp": {"max_clients": 2, "when_full": "close_idlest"}})
    c1 = connect(sim)
    assert _served(sim, c1, 1)
    time.sleep(0.03)
    c2 = connect(sim)
    assert _served(sim, c2, 1)
    time.sleep(0.03)
    assert _served(sim, c1, 2)  # c1 active again: c2 is now the idlest
    time.sleep(0.03)
    c3 = connect(sim)
    try:
        assert _served(sim, c3, 1), "a new connection is served when full (close_idlest)"
        assert closed_within(c2, 2.0), "the least recently active connection is closed"
        assert _served(sim, c1, 3)
        assert _served(sim, c3, 2)
    finally:
        for c in (c1, c2, c3):
            c.close()


def test_idle_timeout(start_sim):
    sim = start_sim(config={"tcp": {"idle_timeout": 1}})
    silent = connect(sim)
    t0 = time.monotonic()
    active = connect(sim)
    try:
        assert not closed_within(silent, 0.3), "closed before the idle timeout"
        closed_at = None
        tid = 1
        while time.monotonic() - t0 < 3.0:
            assert _served(sim, active, tid)
            tid += 1
            if closed_within(silent, 0.2):
                closed_at = time.monotonic() - t0
                break
        assert closed_at is not None, "silent connection not closed within 3 s"
        assert closed_at >= 0.8, closed_at
        # The active one survived past the timeout and still works after it.
        time.sleep(0.3)
        assert _served(sim, active, tid)
    finally:
        silent.close()
        active.close()


def test_not_persistent_closes_after_each_response(start_sim):
    sim = start_sim(config={"tcp": {"persistent": False}})
    for tid in (1, 2):
        with connect(sim) as s:
            assert _served(sim, s, tid)
            assert closed_within(s, 1.0)


def test_allow_list_refuses_other_addresses(start_sim):
    sim = start_sim(config={"tcp": {"allow": ["127.0.0.2"]}})
    with connect(sim) as s:
        s.sendall(mbap(1, 1, fc03(0, 1)))
        assert closed_within(s, 1.0), "a peer outside the allow list must be closed without reply"


def test_allow_list_serves_listed_address(start_sim):
    sim = start_sim(config={"tcp": {"allow": ["127.0.0.1"]}})
    with connect(sim) as s:
        s.sendall(mbap(1, 1, fc03(0, 1)))
        tid, u, pdu = read_adu(s)
        assert (tid, u, pdu[:2]) == (1, 1, b"\x03\x02")


def test_configured_presence(start_sim):
    sim = start_sim(config={"channels": {"coils": [[0, 7]], "holding_registers": [[0, 0x13F]]}})
    with pymodbus_client(sim) as c:
        ok(c.write_coil(7, True, **unit()))
        assert ok(c.read_coils(0, count=8, **unit())).bits[:8] == [False] * 7 + [True]
        assert exception_code(c.read_coils(8, count=1, **unit())) == 2
        assert exception_code(c.write_coil(8, True, **unit())) == 2
        assert exception_code(c.read_coils(0, count=9, **unit())) == 2
        assert exception_code(c.read_coils(0x40, count=1, **unit())) == 2
        # Other tables keep the full map.
        ok(c.read_discrete_inputs(0x23F, count=1, **unit()))
        ok(c.read_holding_registers(0x13F, count=1, **unit()))
        ok(c.read_input_registers(0x1000, count=1, **unit()))
        assert exception_code(c.read_holding_registers(0x1000, count=1, **unit())) == 2
    # Memory positions absent from the holding registers: the mem CLI reports the exception.
    r = cli("mem", "--tcp", "%s:%d" % (sim.host, sim.port), "get", "1")
    assert r.returncode == 1
    assert "exception 02" in r.stderr, r.stderr


def test_shared_simulators_still_alive(sim_pool):
    """Runs last in this module: every request above left the shared simulator serving."""
    for bits in (32, 64):
        sim = sim_pool(bits)
        with connect(sim) as s:
            assert request(s, struct.pack(">BHH", 1, 0, 1))[:2] == b"\x01\x01"
