"""The running simulator over Modbus RTU on a pty: pymodbus's serial client (a real master
library) for every function code, raw frames where the bytes on the line are the point
(broadcast, foreign addresses, bad CRCs, diagnostics counters, listen-only mode), and the
shared PDU cases of tests/core/pdu_cases.py wrapped in address + CRC.

Expectations follow the Modbus Application Protocol V1.1b3 and Modbus over Serial Line V1.02.
Counter tests clear the counters first and run alone on the line, so they can share the
module's simulator with the others.
"""

import os
import re
import struct
import time
from contextlib import contextmanager

import pytest

import pdu_cases
from conftest import need
from mbnode import VERSION
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT
from mbtest import connect, exception_code, ok, pymodbus, request
from rtutest import IoChannel, RtuPort, adu, crc_ok, hx, sim_refusal

if pymodbus is not None:
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient
    from pymodbus.exceptions import ModbusIOException

SILENCE = 0.1  # seconds a frame the slave must not answer is given to prove it


@pytest.fixture(autouse=True)
def _need_pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


@pytest.fixture
def sim(rtu_sim):
    return rtu_sim


@contextmanager
def rtu_client(sim, trace=None, timeout=1.0):
    """pymodbus serial master on the simulator's pty at 19200 baud.

    Parity "N": a pty carries bytes, not bits, so parity means nothing on it. Worse, a pty
    drops PARENB from any tcsetattr, and the kernel here then fails the call with EINVAL when
    nothing else changed: pyserial opens the pty with parity "E" once (that open also changes
    the speed), and every later open fails. Raw clients and libmodbus are not affected."""
    kw = {"trace_packet": trace} if trace else {}
    c = ModbusSerialClient(port=sim.rtu_path, framer=FramerType.RTU, baudrate=19200, parity="N",
                           stopbits=1, timeout=timeout, retries=0, **kw)
    assert c.connect(), "pymodbus could not open %s" % sim.rtu_path
    try:
        yield c
    finally:
        c.close()


@contextmanager
def raw_port(sim):
    with RtuPort(sim.rtu_path, 19200, "E") as p:
        yield p


@contextmanager
def leaves_listen_only(sim):
    """For tests that put the line in listen-only mode: whatever happens, a broadcast restart
    (08/01, executed, never answered) afterwards, so that a failure does not silence the
    shared simulator for the tests after it."""
    try:
        yield
    finally:
        with raw_port(sim) as p:
            p.wait_quiet()
            p.write(adu(0, hx("08 0001 0000")))
            p.collect(SILENCE)


def io_values(sim, line):
    reply = sim.io_cmd(line)
    assert reply.startswith("ok"), reply
    return [int(v) for v in reply.split()[1:]]


# --- the simulator and its line --------------------------------------------------------------


def test_ready_line_names_pty_and_line_settings(sim):
    assert sim.serial == "19200-8E1"
    assert sim.rtu_path.startswith("/dev/"), sim.ready
    fd = os.open(sim.rtu_path, os.O_RDWR | os.O_NOCTTY)
    try:
        assert os.isatty(fd), "%s is not a terminal" % sim.rtu_path
    finally:
        os.close(fd)
    assert sim.port is not None, "TCP is served beside RTU by default: %s" % sim.ready


def test_line_settings_without_parity_use_two_stop_bits(start_sim):
    sim = start_sim(rtu="pty", baud=9600, parity="N")
    assert sim.serial == "9600-8N2", sim.ready
    with RtuPort(sim.rtu_path, 9600, "N") as p:
        assert p.request(hx("03 0000 0001")) == hx("03 02 0000")


def test_explicit_stop_bits_and_rtu_only(start_sim):
    sim = start_sim(rtu="pty", baud=38400, parity="O", stopbits=2, tcp=False)
    assert sim.serial == "38400-8O2", sim.ready
    assert "tcp" not in sim.fields, "--no-tcp must not serve TCP: %s" % sim.ready
    with RtuPort(sim.rtu_path, 38400, "O", 2) as p:
        assert p.request(hx("06 0010 0102")) == hx("06 0010 0102")
    assert io_values(sim, "get ao 0x10") == [0x102]


def test_line_settings_from_config_and_command_line(start_sim):
    """rtu.* from the configuration file; a command-line option overrides its key only."""
    cfg = {"rtu": {"enabled": True, "baud": 9600, "parity": "O", "stopbits": 2}}
    sim = start_sim(rtu="pty", config=cfg, baud=2400)
    assert sim.serial == "2400-8O2", sim.ready
    with RtuPort(sim.rtu_path, 2400, "O", 2) as p:
        assert p.request(hx("08 0000 0102")) == hx("08 0000 0102")


REFUSALS = [
    # (id, command-line arguments, configuration, key the message must name, words it must offer)
    ("parity X", ["--rtu", "pty", "--parity", "X"], None, "parity", ["N", "E", "O"]),
    ("baud 0", ["--rtu", "pty", "--baud", "0"], None, "baud", []),
    ("stopbits 3 on the command line", ["--rtu", "pty", "--stopbits", "3"], None, "stopbits", ["1", "2"]),
    ("stopbits 3 in config", ["--rtu", "pty"], {"rtu": {"enabled": True, "stopbits": 3}}, "stopbits",
     ["1", "2"]),
    ("parity in config", ["--rtu", "pty"], {"rtu": {"enabled": True, "parity": "even"}}, "parity",
     ["N", "E", "O"]),
    ("baud in config", ["--rtu", "pty"], {"rtu": {"enabled": True, "baud": -9600}}, "baud", []),
    ("unit 0 with RTU", ["--rtu", "pty", "--unit", "0"], None, "unit", ["1", "247"]),
    ("unit 248 with RTU", ["--rtu", "pty"], {"unit_id": 248}, "unit", ["1", "247"]),
]


@pytest.mark.parametrize("args, config, key, offered", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_invalid_line_settings_refused(tmp_path, args, config, key, offered):
    code, err = sim_refusal(args, config, tmp_path)
    assert code == 2, "expected exit status 2, got %r: %s" % (code, err)
    assert "Traceback" not in err, err
    # argparse prints its usage (indented continuation lines) before the message: skip it.
    lines = [line for line in err.splitlines()
             if key in line.lower() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, "expected one line naming %r, got:\n%s" % (key, err)
    line = lines[0]
    assert "allowed" in line or "choose from" in line, "the message must say what is allowed: %s" % line
    for word in offered:
        assert re.search(r"\b%s\b" % word, line), "%r not offered in: %s" % (word, line)


def test_line_option_without_line_is_a_usage_error(tmp_path):
    """--baud without --rtu: refused like argparse's own usage errors, with status 2."""
    code, err = sim_refusal(["--baud", "9600"], None, tmp_path)
    assert code == 2, "expected exit status 2, got %r: %s" % (code, err)
    assert "--rtu" in err and "Traceback" not in err, err


# --- the shared PDU cases, each request in an RTU frame --------------------------------------


def _sim_step(step):
    """Steps the simulator answers as the engine does in pdu_cases: not the ones whose answer
    shows the identity strings of the pdu_cases fixture (FC43, FC17), nor the serial-line
    functions, which the engine refuses (TCP) and the RTU line answers (tested below)."""
    req, resp = hx(step[0]), hx(step[1])
    if resp[0] in (0x2B, 0x11):
        return False
    return req[0] not in (7, 11, 12) and not (req[0] == 8 and req[1:3] != b"\0\0" and len(req) >= 3)


SIM_CASES = [(name, setup, [s for s in steps if _sim_step(s)])
             for name, setup, steps, options in pdu_cases.CASES
             if not options and any(_sim_step(s) for s in steps)]


def _apply_setup(io, setup):
    for op in setup:
        if op[0] == "bit":
            io.cmd("set %s %d %d" % ({COILS: "do", DISCRETE_INPUTS: "di"}[op[1]], op[2], op[3]))
        elif op[0] == "reg" and op[2] < 0x1000:
            io.cmd("set %s %d %d" % ({HOLDING: "ao", INPUT: "ai"}[op[1]], op[2], op[3]))
        elif op[0] == "reg":
            # A memory register: half of a 32-bit position, lower half at the even address.
            pos, high = (op[2] - 0x1000) // 2 + 1, (op[2] - 0x1000) & 1
            (v,) = io.cmd("get mem %d" % pos)
            v = (v & 0xFFFF) | (op[3] << 16) if high else (v & 0xFFFF0000) | op[3]
            io.cmd("set mem %d %d" % (pos, v))
        else:
            io.cmd("set mem %d %d" % (op[1], op[2] & 0xFFFFFFFF))


def test_shared_cases_cover_every_function_code():
    fcs = {hx(req)[0] for _, _, steps in SIM_CASES for req, _ in steps}
    assert {1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43} <= fcs
    assert len(SIM_CASES) >= 40


@pytest.mark.parametrize("case", SIM_CASES, ids=[c[0] for c in SIM_CASES])
def test_shared_pdu_case_over_rtu(sim, case):
    """Same answers as the engine gives over TCP. A request too long for an RTU frame (more than
    256 bytes with address and CRC) cannot be sent on a serial line: it must go unanswered."""
    name, setup, steps = case
    with IoChannel(sim) as io:
        io.zero_all()
        _apply_setup(io, setup)
    with raw_port(sim) as p:
        for req, expected in steps:
            pdu = hx(req)
            if len(pdu) + 3 > 256:
                assert p.send_unanswered(adu(1, pdu), SILENCE)
                continue
            got = p.request(pdu)
            assert got.hex() == hx(expected).hex(), "%s: %s" % (name, req)


# --- pymodbus, every data function code ------------------------------------------------------


def test_pymodbus_bits(sim):
    pattern = [True, False, True, True, False, False, True, True, True, False]
    assert sim.io_cmd("set di 0x3e 0 1 0 1") == "ok"
    with rtu_client(sim) as c:
        ok(c.write_coils(0x3A, [False] * 10, device_id=1))
        ok(c.write_coils(0x3A, pattern, device_id=1))
        assert ok(c.read_coils(0x3A, count=10, device_id=1)).bits[:10] == pattern
        assert ok(c.write_coil(0x3B, True, device_id=1)).bits[0] is True
        ok(c.write_coil(0x3C, False, device_id=1))
        assert ok(c.read_coils(0x3A, count=4, device_id=1)).bits[:4] == [True, True, False, True]
        assert ok(c.read_discrete_inputs(0x3E, count=4, device_id=1)).bits[:4] == [False, True, False, True]
        assert len(ok(c.read_coils(0, count=0x240, device_id=1)).bits) >= 0x240
        assert exception_code(c.read_coils(0x240, count=1, device_id=1)) == 2
        assert exception_code(c.read_discrete_inputs(0x23F, count=2, device_id=1)) == 2
        assert exception_code(c.write_coil(0x240, True, device_id=1)) == 2
        assert exception_code(c.write_coils(0x23F, [True, True], device_id=1)) == 2
    assert io_values(sim, "get do 0x3a 10") == [1, 1, 0, 1, 0, 0, 1, 1, 1, 0]


def test_pymodbus_registers(sim):
    assert sim.io_cmd("set ai 0x13e 1000 2000") == "ok"
    assert sim.io_cmd("set mem 5 0x00050006") == "ok"
    values = [(0x101 * i + 3) & 0xFFFF for i in range(123)]
    with rtu_client(sim) as c:
        ok(c.write_register(0x3F, 0x3FF, device_id=1))
        assert exception_code(c.write_register(0x3F, 0x400, device_id=1)) == 3
        ok(c.write_registers(0x40, values, device_id=1))
        assert ok(c.read_holding_registers(0x40, count=123, device_id=1)).registers == values
        assert ok(c.read_holding_registers(0x3F, count=1, device_id=1)).registers == [0x3FF]
        assert len(ok(c.read_holding_registers(0, count=125, device_id=1)).registers) == 125
        assert ok(c.read_input_registers(0x13E, count=2, device_id=1)).registers == [1000, 2000]
        assert ok(c.read_input_registers(0x1008, count=2, device_id=1)).registers == [6, 5]
        for a in (0x140, 0x0FFF, 0x1800):
            assert exception_code(c.read_holding_registers(a, count=1, device_id=1)) == 2, hex(a)
            assert exception_code(c.read_input_registers(a, count=1, device_id=1)) == 2, hex(a)
        assert exception_code(c.write_registers(0x13F, [1, 2], device_id=1)) == 2
    assert io_values(sim, "get ao 0x40 2") == values[:2]
    assert io_values(sim, "get ao 0xba") == [values[-1]]


def test_pymodbus_fc22_fc23(sim):
    assert sim.io_cmd("set ao 0x100 0x12 11 22 33") == "ok"
    with rtu_client(sim) as c:
        ok(c.mask_write_register(address=0x100, and_mask=0xF2, or_mask=0x25, device_id=1))
        assert io_values(sim, "get ao 0x100") == [0x17]  # the spec's example
        assert exception_code(c.mask_write_register(address=0x140, and_mask=0, or_mask=0, device_id=1)) == 2
        rr = ok(c.readwrite_registers(read_address=0x100, read_count=4, write_address=0x102,
                                      values=[0xAAAA, 0xBBBB], device_id=1))
        assert rr.registers == [0x17, 11, 0xAAAA, 0xBBBB]
        rr = c.readwrite_registers(read_address=0x140, read_count=1, write_address=0x100, values=[1], device_id=1)
        assert exception_code(rr) == 2
    assert io_values(sim, "get ao 0x100 4") == [0x17, 11, 0xAAAA, 0xBBBB]


def test_pymodbus_fc43_device_identification(sim):
    with rtu_client(sim) as c:
        basic = ok(c.read_device_information(read_code=1, object_id=0, device_id=1))
        assert basic.information == {0: b"mbnode", 1: b"MBN-1", 2: VERSION.encode()}
        regular = ok(c.read_device_information(read_code=2, object_id=0, device_id=1))
        assert regular.information[4] == b"mbnode Modbus slave"
        one = ok(c.read_device_information(read_code=4, object_id=1, device_id=1))
        assert one.information == {1: b"MBN-1"}
        assert exception_code(c.read_device_information(read_code=4, object_id=3, device_id=1)) == 2


def test_pymodbus_unsupported_function_is_exception_01(sim):
    with rtu_client(sim) as c:
        assert exception_code(c.read_fifo_queue(address=0, device_id=1)) == 1  # FC24


# --- serial-line function codes (7, 8, 11, 12, 17) -------------------------------------------


def test_fc07_is_low_byte_of_diagnostic_register(sim):
    with rtu_client(sim) as c:
        ok(c.diag_clear_counters(device_id=1))
        assert ok(c.read_exception_status(device_id=1)).status == 0
        with raw_port(sim) as p:
            assert p.send_unanswered(adu(1, hx("03 0000 0001"), bad_crc=True))
        time.sleep(SILENCE)
        assert ok(c.diag_read_diagnostic_register(device_id=1)).message == 0x0001
        assert ok(c.read_exception_status(device_id=1)).status == 0x01


def test_diagnostic_register_bits(sim):
    """Bit 0 CRC error, 1 overrun, 2 exception sent, 3 broadcast received (docs/rtu.md); FC07
    shows the low byte; 08/14 clears bit 1, 08/0A all."""
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        assert p.request(hx("07")) == hx("07 00")
        assert p.send_unanswered(adu(1, hx("03 0000 0001"), bad_crc=True))
        assert p.request(hx("07")) == hx("07 01")
        assert p.send_unanswered(adu(1, b"\x08\x00\x00" + bytes(251)))  # 257 bytes: overrun
        assert p.request(hx("03 0140 0001")) == hx("83 02")
        assert p.send_unanswered(adu(0, hx("06 00B8 0001")))
        assert p.diag(0x02) == 0x0F
        assert p.request(hx("07")) == hx("07 0F")
        assert p.diag(0x14) == 0
        assert p.diag(0x02) == 0x0D
        assert p.diag(0x0A) == 0
        assert p.diag(0x02) == 0


ECHO_DATA = [b"", b"\x5a", b"\x12\x34", b"\xff\x00\x01", bytes(range(7)), bytes(range(100)),
             bytes((i * 7) & 0xFF for i in range(250))]


@pytest.mark.parametrize("data", ECHO_DATA, ids=["%d bytes" % len(d) for d in ECHO_DATA])
def test_fc08_00_echoes_any_data(sim, data):
    """The whole frame comes back; 250 data bytes make the largest RTU frame (256 bytes)."""
    frame = adu(1, b"\x08\x00\x00" + data)
    with raw_port(sim) as p:
        resp, _ = p.request_frame(frame)
    assert resp == frame, "echo of %s came back as %s" % (frame.hex(), resp.hex())


def test_fc08_00_echo_with_pymodbus(sim):
    with rtu_client(sim) as c:
        rr = ok(c.diag_query_data(b"\xa5\x5a", device_id=1))
    assert rr.message == b"\xa5\x5a"


def test_fc08_constant_and_bad_sub_functions(sim):
    with rtu_client(sim) as c:
        assert ok(c.diag_read_device_nak_count(device_id=1)).message == 0
        assert ok(c.diag_read_device_busy_count(device_id=1)).message == 0
    with raw_port(sim) as p:
        # Data other than 0000 -> 03 (nothing executed: 04 would have entered listen-only).
        for sub in (0x02, 0x04, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x14):
            assert p.request(struct.pack(">BHH", 8, sub, 0x0001)) == hx("88 03"), "08/%02X data 0001" % sub
            assert p.request(struct.pack(">BHH", 8, sub, 0xFF00)) == hx("88 03"), "08/%02X data FF00" % sub
        # Restart communications takes only 0000 or FF00.
        assert p.request(hx("08 0001 1234")) == hx("88 03")
        # Sub-functions this slave does not have -> 01.
        for sub in (0x03, 0x05, 0x09, 0x13, 0x15, 0x16, 0x100, 0xFFFF):
            assert p.request(struct.pack(">BHH", 8, sub, 0)) == hx("88 01"), "08/%04X" % sub
        assert p.diag(0x10) == 0 and p.diag(0x11) == 0
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02"), "still answering, not listen-only"


def test_counters_follow_the_traffic(sim):
    """0B correct-CRC frames whatever the address, 0C bad CRC, 0D exceptions sent, 0E frames for
    us or broadcast, 0F of those unanswered; a counter read is counted before it executes."""
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        assert p.counters() == {0x0B: 1, 0x0C: 0, 0x0D: 0, 0x0E: 4, 0x0F: 0, 0x12: 0}
        assert p.diag(0x0A) == 0
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")  # for us
        assert p.request(hx("03 0140 0001")) == hx("83 02")  # exception
        assert p.request(hx("2B 0E 04 03")) == hx("AB 02")  # exception
        assert p.send_unanswered(adu(2, hx("03 0000 0001")), SILENCE)  # another slave
        assert p.send_unanswered(adu(247, hx("03 0000 0001")), SILENCE)
        assert p.send_unanswered(adu(0, hx("06 0090 0007")), SILENCE)  # broadcast write
        for _ in range(3):
            assert p.send_unanswered(adu(1, hx("03 0000 0001"), bad_crc=True), SILENCE)
        assert p.send_unanswered(adu(0, hx("06 0090 0008"), bad_crc=True), SILENCE)
        assert p.diag(0x0B) == 3 + 2 + 1 + 1  # answered, foreign, broadcast, this read
        assert p.diag(0x0C) == 4
        assert p.diag(0x0D) == 2
        assert p.diag(0x0E) == 3 + 1 + 4  # answered, broadcast, the reads of 0B, 0C, 0D, 0E
        assert p.diag(0x0F) == 1
        assert p.diag(0x12) == 0
    assert io_values(sim, "get ao 0x90") == [7]


def test_counters_with_pymodbus(sim):
    with rtu_client(sim) as c:
        ok(c.diag_clear_counters(device_id=1))
        ok(c.read_holding_registers(0, count=1, device_id=1))
        assert exception_code(c.read_coils(0x240, count=1, device_id=1)) == 2
        c.write_register(0x91, 5, device_id=0, no_response_expected=True)
        time.sleep(SILENCE)
        got = [ok(f(device_id=1)).message for f in (
            c.diag_read_bus_message_count, c.diag_read_bus_comm_error_count,
            c.diag_read_bus_exception_error_count, c.diag_read_device_message_count,
            c.diag_read_device_no_response_count, c.diag_read_bus_char_overrun_count)]
    assert got == [4, 0, 1, 3 + 4, 1, 0]
    assert io_values(sim, "get ao 0x91") == [5]


def test_overrun_counted_and_cleared(sim):
    """A frame longer than 256 bytes is dropped and counted in 08/12; 08/14 clears it."""
    assert sim.io_cmd("set ao 0x40 0x5555") == "ok"
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        long_write = adu(1, hx("10 0040 007C F8") + bytes(248))  # 257 bytes
        assert len(long_write) == 257
        assert p.send_unanswered(long_write, SILENCE)
        assert p.send_unanswered(adu(1, b"\x08\x00\x00" + bytes(251)), SILENCE)  # 257-byte echo
        assert p.diag(0x12) == 2
        assert p.diag(0x0C) == 0, "an overrun is not a CRC error"
        assert p.diag(0x14) == 0
        assert p.diag(0x12) == 0
        # Broadcast 08/14 is executed too.
        assert p.send_unanswered(long_write)
        assert p.diag(0x12) == 1
        assert p.send_unanswered(adu(0, hx("08 0014 0000")))
        assert p.diag(0x12) == 0
    assert io_values(sim, "get ao 0x40") == [0x5555], "the overrun frame must not be executed"


def test_fc11_event_counter(sim):
    """Incremented once per successful message completion; not for exception responses nor
    for FC11 itself (Application Protocol 6.10). A broadcast write completes (no reply is its
    normal end); a broadcast read is not executed, so it does not."""
    with rtu_client(sim) as c:
        before = ok(c.diag_get_comm_event_counter(device_id=1))
        assert before.status is True, "status word must be 0000 (not busy)"
        ok(c.read_holding_registers(0, count=1, device_id=1))
        ok(c.write_register(0x92, 1, device_id=1))
        assert exception_code(c.read_holding_registers(0x140, count=1, device_id=1)) == 2
        ok(c.diag_query_data(b"\x00\x01", device_id=1))
        after = ok(c.diag_get_comm_event_counter(device_id=1))
        again = ok(c.diag_get_comm_event_counter(device_id=1))
        c.write_register(0x92, 2, device_id=0, no_response_expected=True)
        time.sleep(SILENCE)
        broadcast_write = ok(c.diag_get_comm_event_counter(device_id=1))
        c.read_holding_registers(0x92, count=1, device_id=0, no_response_expected=True)
        time.sleep(SILENCE)
        broadcast_read = ok(c.diag_get_comm_event_counter(device_id=1))
    # 3 requests completed normally; the exception and the FC11 polls are not counted.
    assert after.count == (before.count + 3) & 0xFFFF
    assert again.count == after.count
    assert broadcast_write.count == (after.count + 1) & 0xFFFF
    assert io_values(sim, "get ao 0x92") == [2]
    assert broadcast_read.count == broadcast_write.count, "an ignored broadcast read is no completion"


def _event_log(p):
    """(status, event count, message count, events newest first) from FC12."""
    pdu = p.request(hx("0C"))
    assert pdu[0] == 0x0C and pdu[1] == len(pdu) - 2, pdu.hex()
    status, events, messages = struct.unpack(">HHH", pdu[2:8])
    return status, events, messages, list(pdu[8:])


def test_fc12_event_log(sim):
    """Receive events (0x80, +0x40 broadcast) are logged as a frame arrives, send events
    (0x40, +0x01 exception 1-3) once the request is finished, whether a normal response, an
    exception response or no response went out (Application Protocol 6.9), so a broadcast has
    one too; 0x00 on a restart. Newest first."""
    with raw_port(sim) as p:
        assert p.request(hx("08 0001 FF00")) == hx("08 0001 FF00")  # restart, clear the log
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")
        assert p.request(hx("03 0140 0001")) == hx("83 02")
        assert p.send_unanswered(adu(0, hx("06 0093 0009")), SILENCE)
        assert p.send_unanswered(adu(5, hx("03 0000 0001")), SILENCE)  # not for us: not logged
        status, events, messages, log = _event_log(p)
    assert status == 0
    assert log == [0x80, 0x40, 0xC0, 0x41, 0x80, 0x40, 0x80, 0x40, 0x00], ["%02X" % e for e in log]
    assert messages == 5, "message count = bus message count (0B), FC12 included"
    assert io_values(sim, "get ao 0x93") == [9]
    with rtu_client(sim) as c:
        counter = ok(c.diag_get_comm_event_counter(device_id=1)).count
        rr = ok(c.diag_get_comm_event_log(device_id=1))
    assert rr.status is True
    assert rr.event_count == counter, "FC12's event count is FC11's counter"
    assert rr.message_count == messages + 2, "the FC11 and this FC12 are on the line too"
    # The first FC12's send event, FC11's rx and send, this FC12's rx on top of the old log.
    assert rr.events == [0x80, 0x40, 0x80, 0x40] + log, ["%02X" % e for e in rr.events]


def test_fc12_logs_dropped_frames(sim):
    """A bad CRC logs 0x82 (receive, communication error), an overrun 0x90 (receive, overrun)."""
    with raw_port(sim) as p:
        assert p.request(hx("08 0001 FF00")) == hx("08 0001 FF00")
        assert p.send_unanswered(adu(1, hx("03 0000 0001"), bad_crc=True))
        assert p.send_unanswered(adu(1, b"\x08\x00\x00" + bytes(251)))
        _, _, messages, log = _event_log(p)
    assert log == [0x80, 0x90, 0x82, 0x40, 0x00], ["%02X" % e for e in log]
    assert messages == 1


def test_fc12_keeps_the_newest_64_events(sim):
    with raw_port(sim) as p:
        assert p.request(hx("08 0001 FF00")) == hx("08 0001 FF00")
        for _ in range(40):
            assert p.request(hx("03 0140 0001")) == hx("83 02")
        _, _, _, log = _event_log(p)
    assert len(log) == 64
    assert log == [0x80] + [0x41, 0x80] * 31 + [0x41], ["%02X" % e for e in log]


def test_listen_only_mode(sim):
    assert sim.io_cmd("set ao 0x94 1") == "ok"
    with leaves_listen_only(sim), raw_port(sim) as p:
        assert p.request(hx("08 0001 FF00")) == hx("08 0001 FF00")
        assert p.send_unanswered(adu(1, hx("08 0004 0000")), SILENCE)
        assert p.send_unanswered(adu(1, hx("03 0000 0001")), SILENCE)
        # Frames are monitored but not acted on (Application Protocol 6.8.1, sub-function 04).
        assert p.send_unanswered(adu(1, hx("06 0094 0002")), SILENCE)
        assert p.send_unanswered(adu(1, hx("08 0000 1234")), SILENCE)
        assert p.send_unanswered(adu(0, hx("06 0094 0003")), SILENCE)
        assert io_values(sim, "get ao 0x94") == [1], "a write executed in listen-only mode"
        # Restart leaves listen-only mode without a reply (data 0000: the log is kept).
        assert p.send_unanswered(adu(1, hx("08 0001 0000")), SILENCE)
        assert p.request(hx("03 0094 0001")) == hx("03 02 0001")
        _, _, messages, log = _event_log(p)
    # Newest first: FC12 rx; FC03 send, rx; the restart's send, restart, rx (0x20: in listen-
    # only mode); 5 monitored frames, each rx and a send event without a reply (0x60; 0x40:
    # broadcast); the 08/04's send, listen-only entered, its rx; the first restart.
    expected = [0x80, 0x40, 0x80, 0x40, 0x00, 0xA0, 0x60, 0xE0, 0x60, 0xA0, 0x60, 0xA0, 0x60, 0xA0,
                0x60, 0x04, 0x80, 0x40, 0x00]
    assert log == expected, ["%02X" % e for e in log]
    assert messages == 2, "counters restart at 08/01: the FC03 and the FC12"


def test_listen_only_with_pymodbus(sim):
    with leaves_listen_only(sim), rtu_client(sim, timeout=0.3) as c:
        assert c.diag_force_listen_only(device_id=1, no_response_expected=True) is None
        # pymodbus sends its next frame at once; a master must leave the line quiet for t3.5
        # at least, else both frames run together into one bad one.
        time.sleep(SILENCE)
        with pytest.raises(ModbusIOException):
            c.read_holding_registers(0, count=1, device_id=1)
        assert c.diag_restart_communication(False, device_id=1, no_response_expected=True) is None
        time.sleep(SILENCE)
        ok(c.read_holding_registers(0, count=1, device_id=1))
        # Not in listen-only mode, a restart is answered (FF00: the event log is cleared too).
        assert ok(c.diag_restart_communication(True, device_id=1)).message == 0xFF00
        assert ok(c.diag_clear_overrun_counter(device_id=1)).message == 0
        assert ok(c.diag_get_comm_event_log(device_id=1)).events == [0x80, 0x40, 0x80, 0x40, 0x00]


def test_broadcast_listen_only_and_restart(sim):
    with leaves_listen_only(sim), raw_port(sim) as p:
        assert p.send_unanswered(adu(0, hx("08 0004 0000")), SILENCE)
        assert p.send_unanswered(adu(1, hx("03 0000 0001")), SILENCE)
        assert p.send_unanswered(adu(0, hx("08 0001 0000")), SILENCE)
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")


def test_broadcast_clear_counters(sim):
    with raw_port(sim) as p:
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")
        assert p.send_unanswered(adu(1, hx("03 0000 0001"), bad_crc=True), SILENCE)
        assert p.diag(0x0C) >= 1
        assert p.send_unanswered(adu(0, hx("08 000A 0000")), SILENCE)
        assert p.diag(0x0C) == 0
        assert p.diag(0x0B) == 2


BROADCAST_WRITES = [
    ("fc05", "05 0150 FF00", "get do 0x150", [1]),
    ("fc06", "06 00A0 1234", "get ao 0xa0", [0x1234]),
    ("fc15", "0F 0160 000A 02 FF 01", "get do 0x160 10", [1] * 9 + [0]),
    ("fc16", "10 00A1 0003 06 0001 0002 FFFF", "get ao 0xa1 3", [1, 2, 0xFFFF]),
    ("fc22", "16 00A4 00F2 0025", "get ao 0xa4", [0x17]),  # the spec's example, from 0x12
    ("fc23", "17 00A5 0001 00A6 0002 04 ABCD 0102", "get ao 0xa6 2", [0xABCD, 0x0102]),
]


@pytest.mark.parametrize("req, check, expected", [b[1:] for b in BROADCAST_WRITES],
                         ids=[b[0] for b in BROADCAST_WRITES])
def test_broadcast_write_executed_unanswered(sim, req, check, expected):
    with IoChannel(sim) as io:
        io.set_many("do", 0x150, [0] * 0x20)
        io.set_many("ao", 0xA0, [0] * 8)
        io.cmd("set ao 0xa4 0x12")
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        assert p.send_unanswered(adu(0, hx(req)), SILENCE)
        assert io_values(sim, check) == expected
        assert p.diag(0x0F) == 1, "the broadcast is a frame for us left unanswered"


def test_broadcast_write_with_pymodbus(sim):
    with rtu_client(sim) as c:
        assert c.write_registers(0xA8, [7, 8], device_id=0, no_response_expected=True) is None
        time.sleep(SILENCE)
        assert ok(c.read_holding_registers(0xA8, count=2, device_id=1)).registers == [7, 8]


@pytest.mark.parametrize("req", ["03 0000 0001", "01 0000 0008", "04 0000 0001", "2B 0E 01 00", "11", "07",
                                 "0B", "0C", "08 0000 1234", "08 000B 0000", "08 0002 0000"])
def test_broadcast_reads_unanswered(sim, req):
    """Reads and the FC08 sub-functions that only report are not executed for a broadcast."""
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        assert p.send_unanswered(adu(0, hx(req)), SILENCE)
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02")
        # 0E: the clear is cleared; the broadcast, the FC03 and this read. 0F: the broadcast.
        assert (p.diag(0x0E), p.diag(0x0F), p.diag(0x0D)) == (3, 1, 0)


def test_broadcast_write_failing_is_silent(sim):
    """A broadcast that would raise an exception sends none, so 0D does not count it; the
    address check happens before anything is written."""
    assert sim.io_cmd("set ao 0x13f 9") == "ok"
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        for req in ("06 0140 0001", "10 013F 0002 04 0001 0002", "06 003F 0400", "0F 0000 0241 49" + "00" * 73):
            assert p.send_unanswered(adu(0, hx(req)), SILENCE)
        assert p.diag(0x0D) == 0
        assert p.diag(0x0F) == 4
        assert p.diag(0x02) & 0x04 == 0, "no exception was sent"
    assert io_values(sim, "get ao 0x13f") == [9]


@pytest.mark.parametrize("addr", [2, 17, 246, 247, 248, 255])
def test_foreign_addresses_ignored(sim, addr):
    """Another slave's frames (and the reserved addresses 248-255) are neither answered nor
    executed, only counted as bus messages."""
    assert sim.io_cmd("set ao 0xb0 0") == "ok"
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        assert p.send_unanswered(adu(addr, hx("06 00B0 4321")), SILENCE)
        assert p.send_unanswered(adu(addr, hx("03 0000 0001")), SILENCE)
        assert p.request(hx("03 00B0 0001")) == hx("03 02 0000")
        assert (p.diag(0x0B), p.diag(0x0E)) == (2 + 2, 1 + 2)


def test_bad_crc_ignored(sim):
    assert sim.io_cmd("set ao 0xb1 0") == "ok"
    with raw_port(sim) as p:
        good = adu(1, hx("06 00B1 0001"))
        for bad in (adu(1, hx("06 00B1 0001"), bad_crc=True), good[:-1] + bytes([good[-1] ^ 1]),
                    good[:3] + bytes([good[3] ^ 0x10]) + good[4:]):
            assert not crc_ok(bad)
            assert p.send_unanswered(bad, SILENCE)
        assert io_values(sim, "get ao 0xb1") == [0]
        assert p.request(hx("06 00B1 0001")) == hx("06 00B1 0001")


def test_fc17_report_server_id(sim):
    packets = []

    def trace(sending, data):
        packets.append((sending, bytes(data)))
        return data

    with rtu_client(sim, trace=trace) as c:
        ok(c.report_device_id(device_id=1))
    received = [d for s, d in packets if not s]
    name = b"mbnode"
    assert received[-1] == adu(1, bytes([0x11, 2 + len(name), 1, 0xFF]) + name), received[-1].hex()


def test_fc17_names_configured_device_and_unit(start_sim):
    sim = start_sim(rtu="pty", unit=17, config={"identity": {"device_name": "pump-7"}})
    with RtuPort(sim.rtu_path) as p:
        assert p.request(hx("11"), addr=17) == hx("11 08 11 FF") + b"pump-7"
        assert p.send_unanswered(adu(1, hx("11")), SILENCE)
    with connect(sim) as s:
        assert request(s, hx("11"), unit=17) == hx("11 08 11 FF") + b"pump-7"


# --- the same slave over TCP ------------------------------------------------------------------


def test_tcp_serial_line_functions(sim):
    with connect(sim) as s:
        assert request(s, hx("08 0000 1234 56"), tid=1) == hx("08 0000 1234 56")
        assert request(s, hx("11"), tid=2) == hx("11 08 01 FF") + b"mbnode"
        for i, req in enumerate(["07", "0B", "0C", "08 0001 0000", "08 0002 0000", "08 0004 0000",
                                 "08 000A 0000", "08 000B 0000", "08 0012 0000", "08 0014 0000"]):
            fc = hx(req)[0]
            assert request(s, hx(req), tid=10 + i) == bytes([fc | 0x80, 1]), req
    with raw_port(sim) as p:
        assert p.request(hx("03 0000 0001"))[:2] == hx("03 02"), "08/04 over TCP must not silence the line"


def test_tcp_traffic_is_not_counted_on_the_line(sim):
    with raw_port(sim) as p:
        assert p.diag(0x0A) == 0
        with connect(sim) as s:
            for tid in range(5):
                request(s, hx("03 0000 0001"), tid=tid)
        assert p.diag(0x0B) == 1
        assert p.diag(0x0E) == 2


def test_rtu_and_tcp_share_the_data(sim):
    with raw_port(sim) as p:
        assert p.request(hx("10 00C0 0002 04 CAFE BEEF")) == hx("10 00C0 0002")
        with connect(sim) as s:
            assert request(s, hx("03 00C0 0002")) == hx("03 04 CAFE BEEF")
            assert request(s, hx("06 00C1 0001")) == hx("06 00C1 0001")
        assert p.request(hx("03 00C0 0002")) == hx("03 04 CAFE 0001")


def test_64_bit_build_over_rtu(rtu_pool):
    sim = rtu_pool(64)
    with raw_port(sim) as p:
        assert p.request(hx("10 1000 0002 04 5678 1234")) == hx("10 1000 0002")
        assert p.request(hx("04 1000 0002")) == hx("04 04 5678 1234")
        frame = adu(1, hx("08 0000") + bytes(range(200)))
        assert p.request_frame(frame)[0] == frame
        assert p.diag(0x0A) == 0 and p.diag(0x0B) == 1
    assert io_values(sim, "get mem 1") == [0x12345678]


def test_shared_simulator_still_alive(sim):
    """Runs last: everything above left the shared simulator serving on both transports."""
    with raw_port(sim) as p:
        assert p.request(hx("01 0000 0001"))[:1] == hx("01")
    with connect(sim) as s:
        assert request(s, hx("01 0000 0001"))[:1] == hx("01")
