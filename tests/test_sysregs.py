"""The system registers (docs/register-map.md, "System status" and "Settings") on the unix port,
read and written by independent clients: pymodbus, mbpoll, raw MBAP and RTU frames.

Every status register is checked against what it must be: uptime against the wall clock, the
request and exception counters exactly, the RTU CRC errors after a broken frame on the pty, the
TCP clients connected, the texts decoded. The settings are written, read back, refused (03 for a
bad value, 02 where a switch forbids the write, each at its edge and one past it), saved (rate
limit: 06 inside it), restored by a restarted simulator, and the reboot command ends the
simulator with status 4.
"""

import inspect
import os
import socket
import struct
import threading
import time

import pytest

import mbnode
from conftest import Sim, need, need_tool
from mbtest import connect, pymodbus, pymodbus_client, request, unit, wait_for
from rtutest import RtuPort, adu

STATUS = 0x2000
SETTINGS = 0x2100
HEAP = int(inspect.signature(Sim).parameters["heap"].default[:-1]) * 1024  # the Sim fixture's --heap


def system(tmp_path, **keys):
    keys.setdefault("settings", str(tmp_path / "settings.bin"))
    return {"system": keys}


def read(sock, fc, first, count):
    """The registers, or the exception code (an int) of the answer."""
    pdu = request(sock, struct.pack(">BHH", fc, first, count))
    if pdu[0] & 0x80:
        return pdu[1]
    assert pdu[0] == fc and pdu[1] == 2 * count, pdu.hex()
    return list(struct.unpack(">%dH" % count, pdu[2:]))


def write(sock, first, values):
    """FC16 (FC06 for one value): 0 or the exception code."""
    if len(values) == 1:
        pdu = request(sock, struct.pack(">BHH", 6, first, values[0]))
    else:
        pdu = request(sock, struct.pack(">BHHB%dH" % len(values), 16, first, len(values), 2 * len(values), *values))
    return pdu[1] if pdu[0] & 0x80 else 0


def u32(r, i):
    return r[i] | (r[i + 1] << 16)


def text(r):
    return b"".join(struct.pack(">H", v) for v in r).rstrip(b"\0").decode()


def regs_of(s, n=16):
    b = s.encode().ljust(2 * n, b"\0")
    return list(struct.unpack(">%dH" % n, b))


# --- status block


def test_status_block_values_fc04_and_fc03(start_sim, tmp_path):
    t0 = time.monotonic()
    sim = start_sim(config=system(tmp_path))
    t1 = time.monotonic()
    assert "system 0x2000" in sim.ready and "ntp" not in sim.ready  # ntp "auto": none on the simulator
    assert any("no intact saved state" in line for line in sim.early), sim.early
    with connect(sim) as s:
        for fc in (4, 3):
            r = read(s, fc, STATUS, 0x50)
            up = u32(r, 0)
            assert time.monotonic() - t1 - 1 <= up <= time.monotonic() - t0 + 1
            free, least = u32(r, 2), u32(r, 4)
            used, unused = (int(v) for v in sim.io_cmd("heap").split()[1:])  # after a collection
            assert 0 < least <= free <= used + unused <= HEAP  # the heap's size
            assert r[0x0C] == 1  # this connection
            assert r[0x0D] == 0  # fail-safe: normal
            assert r[0x0E] == 0x8000  # the simulator has no temperature sensor
            assert u32(r, 0x10) == 0  # unix time: not known yet
            assert r[0x12:0x16] == [0, 0, 0, 0]  # the simulator has no network interface of its own
            assert u32(r, 0x16) == 0  # flash writes
            assert r[0x0F] == 0  # faults: none
            assert r[0x18:0x20] == [0] * 8  # reserved
            assert u32(r, 0x0A) == 0  # no RTU line
            assert text(r[0x20:0x30]) == "mbnode"  # identity.device_name
            assert text(r[0x30:0x40]) == mbnode.VERSION
            assert r[0x40:0x50] == [0] * 16  # MAC: none without a network
        # Uptime grows, one second at a time.
        first = u32(read(s, 4, STATUS, 2), 0)
        wait_for("uptime to grow", lambda: u32(read(s, 4, STATUS, 2), 0) > first)


def test_system_enabled_false_leaves_the_addresses_absent(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path, enabled=False))
    assert "system" not in sim.ready
    with connect(sim) as s:
        assert read(s, 4, STATUS, 1) == 2
        assert read(s, 3, SETTINGS, 1) == 2


def test_requests_and_exceptions_counted_exactly(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path))
    with connect(sim) as s:
        r = read(s, 4, STATUS + 6, 4)
        req, exc = u32(r, 0), u32(r, 2)
        for _ in range(5):
            assert read(s, 3, 0, 1) != 2
        assert read(s, 3, 0x140, 1) == 2  # exception 02
        assert read(s, 1, 0, 0) == 3  # exception 03
        assert request(s, bytes([0x41, 0, 0]))[1] == 1  # exception 01
        r = read(s, 3, STATUS + 6, 4)
        assert u32(r, 0) == req + 1 + 8  # the first read, then 8 more (the read itself not yet)
        assert u32(r, 2) == exc + 3


def test_tcp_clients_connected(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path))
    with connect(sim) as s:
        a, b = connect(sim), connect(sim)
        for c in (a, b):
            read(c, 3, 0, 1)  # served: accepted
        assert read(s, 4, STATUS + 0x0C, 1) == [3]
        a.close()
        wait_for("2 clients", lambda: read(s, 4, STATUS + 0x0C, 1) == [2])
        b.close()
        wait_for("1 client", lambda: read(s, 4, STATUS + 0x0C, 1) == [1])


def test_rtu_crc_errors_and_rtu_requests(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path), rtu="pty")
    with connect(sim) as s, RtuPort(sim.rtu_path) as port:
        before = read(s, 4, STATUS, 0x0C)
        assert u32(before, 0x0A) == 0
        port.write(adu(1, bytes.fromhex("0300000001"), bad_crc=True))
        wait_for("the CRC error counted", lambda: u32(read(s, 4, STATUS + 0x0A, 2), 0) == 1)
        # RTU requests count like TCP ones; the status block answers on RTU too.
        counted = u32(read(s, 4, STATUS + 6, 2), 0)
        pdu = port.request(bytes.fromhex("0420060002"))
        assert pdu[:2] == b"\x04\x04"
        rtu_req = struct.unpack(">HH", pdu[2:])
        assert rtu_req[0] | rtu_req[1] << 16 == counted + 1  # the TCP read just before it
        port.write(adu(1, bytes.fromhex("0300000001"), bad_crc=True))
        wait_for("the second CRC error", lambda: u32(read(s, 4, STATUS + 0x0A, 2), 0) == 2)


def test_addresses_outside_the_blocks_are_02(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path))
    with connect(sim) as s:
        for fc in (3, 4):
            assert read(s, fc, 0x1FFF, 1) == 2
            assert read(s, fc, 0x1FFF, 2) == 2  # starts outside, ends inside
            assert isinstance(read(s, fc, 0x204F, 1), list)  # the last register
            assert read(s, fc, 0x204F, 2) == 2  # starts inside, ends outside
            assert read(s, fc, 0x2050, 1) == 2
            assert read(s, fc, 0x20FF, 2) == 2  # across the gap into the settings
        assert isinstance(read(s, 3, 0x2119, 1), list)
        assert read(s, 3, 0x2119, 2) == 2
        assert read(s, 3, 0x211A, 1) == 2
        assert read(s, 4, SETTINGS, 1) == 2  # settings are holding registers only
        assert write(s, STATUS, [1]) == 2  # the status block is read-only
        assert write(s, 0x204F, [1, 2]) == 2
        assert write(s, 0x20FF, [1, 2]) == 2
        assert write(s, 0x2119, [0, 0]) == 2


# --- settings block


def test_settings_read_write_and_bad_values(start_sim, tmp_path):
    need("pymodbus", pymodbus)
    sim = start_sim(config=system(tmp_path))
    with pymodbus_client(sim) as c:
        r = c.read_holding_registers(SETTINGS, count=0x1A, **unit()).registers
        assert text(r[0:16]) == "mbnode"
        assert r[0x10] == 1 and u32(r, 0x11) == 19200 and r[0x13] == 2 and r[0x14] == 1  # 8E1
        assert r[0x15] == 0 and u32(r, 0x16) == 0 and r[0x18:0x1A] == [0, 0]
        # The name: at once in the status block.
        assert not c.write_registers(SETTINGS, regs_of("cabinet-7 pump"), **unit()).isError()
        assert text(c.read_holding_registers(SETTINGS, count=16, **unit()).registers) == "cabinet-7 pump"
        assert text(c.read_input_registers(STATUS + 0x20, count=16, **unit()).registers) == "cabinet-7 pump"
        # Unit id, baud (both halves: 115200), parity odd, 2 stop bits, fail-safe 2.5 s.
        assert not c.write_register(SETTINGS + 0x10, 7, **unit()).isError()
        assert not c.write_registers(SETTINGS + 0x11, [115200 & 0xFFFF, 115200 >> 16, 1, 2, 25], **unit()).isError()
        r = c.read_holding_registers(SETTINGS + 0x10, count=6, **unit()).registers
        assert r == [7, 115200 & 0xFFFF, 1, 1, 2, 25]
        # The clock: set, read back in both blocks, running.
        t = 1700000000
        assert not c.write_registers(SETTINGS + 0x16, [t & 0xFFFF, t >> 16], **unit()).isError()
        got = u32(c.read_input_registers(STATUS + 0x10, count=2, **unit()).registers, 0)
        assert t <= got <= t + 2
        assert t <= u32(c.read_holding_registers(SETTINGS + 0x16, count=2, **unit()).registers, 0) <= t + 2
        wait_for("the clock to run", lambda: u32(
            c.read_input_registers(STATUS + 0x10, count=2, **unit()).registers, 0) > got)
        # Bad values: exception 03, nothing written.
        before = c.read_holding_registers(SETTINGS, count=0x16, **unit()).registers
        bad = [
            (SETTINGS, [0x4101]),  # a control character in the name
            (SETTINGS, [0x0041]),  # a character after the end of the name
            (SETTINGS + 0x0F, [0x41C3]),  # not ASCII
            (SETTINGS + 0x10, [0]),  # unit 0 is for Modbus TCP only... allowed here (no RTU slave): see below
            (SETTINGS + 0x10, [248]),
            (SETTINGS + 0x11, [299, 0]),
            (SETTINGS + 0x11, [4000001 & 0xFFFF, 4000001 >> 16]),
            (SETTINGS + 0x12, [0x3E]),  # baud's high half alone: 4 MBd + more
            (SETTINGS + 0x13, [3]),
            (SETTINGS + 0x14, [0]),
            (SETTINGS + 0x14, [3]),
            (SETTINGS + 0x18, [2]),
            (SETTINGS + 0x19, [2]),
            (SETTINGS + 0x10, [8, 256, 0]),  # a good value with a bad one (256 Bd): nothing written
        ]
        for first, values in bad:
            rr = c.write_registers(first, values, **unit()) if len(values) > 1 else c.write_register(
                first, values[0], **unit())
            if first == SETTINGS + 0x10 and values == [0]:
                assert not rr.isError()  # without an RTU slave line unit 0 (any) is allowed
                assert not c.write_register(SETTINGS + 0x10, 7, **unit()).isError()
                continue
            assert rr.isError() and rr.exception_code == 3, (hex(first), values, rr)
        assert c.read_holding_registers(SETTINGS, count=0x16, **unit()).registers == before
        # The edges of the baud range are good values.
        for baud in (300, 4000000, 19200):
            assert not c.write_registers(SETTINGS + 0x11, [baud & 0xFFFF, baud >> 16], **unit()).isError()


def test_unit_0_refused_with_an_rtu_slave_line(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path), rtu="pty")
    with connect(sim) as s:
        assert write(s, SETTINGS + 0x10, [0]) == 3
        assert write(s, SETTINGS + 0x10, [247]) == 0


def test_save_rate_limit_restore_after_restart(start_sim, tmp_path):
    cfg = system(tmp_path, save_interval=3)
    sim = start_sim(config=cfg, rtu="pty")
    assert "serial 19200-8E1" in sim.ready
    with connect(sim) as s:
        assert write(s, SETTINGS, regs_of("saved-name")) == 0
        assert write(s, SETTINGS + 0x10, [9, 9600, 0, 0, 2, 50]) == 0  # unit 9, 9600 8N2, fail-safe 5 s
        assert write(s, SETTINGS + 0x18, [1]) == 0  # save
        assert (tmp_path / "settings.bin").exists()
        assert u32(read(s, 4, STATUS + 0x16, 2), 0) == 1  # flash writes
        # Inside the rate limit a save is refused with 06 (busy), and so is the rest of its write.
        assert write(s, SETTINGS, regs_of("other") + [9]) == 0
        assert write(s, SETTINGS + 0x17, [0, 1]) == 6
        assert u32(read(s, 4, STATUS + 0x16, 2), 0) == 1
        # ... and taken once the limit has passed (3 to 4 s after the first).
        wait_for("a save after the limit", lambda: write(s, SETTINGS + 0x18, [1]) == 0)
        assert u32(read(s, 4, STATUS + 0x16, 2), 0) == 2
        assert write(s, SETTINGS, regs_of("saved-name")) == 0  # changed, not saved: lost at the restart
    assert sim.stop() == 0
    sim = start_sim(config=cfg, rtu="pty", baud=19200)
    # Saved settings win over the configuration (and the command line's --baud).
    assert "unit 9" in sim.ready and "serial 9600-8N2" in sim.ready, sim.ready
    assert any(line.endswith("settings.bin: restored save 2") for line in sim.early), sim.early
    with connect(sim) as s:
        request(s, struct.pack(">BHH", 3, 0, 1), unit=9)
        r = read_unit(s, 9, SETTINGS, 0x18)
        assert text(r[0:16]) == "other"
        assert r[0x10:0x16] == [9, 9600, 0, 0, 2, 50]
        assert u32(r, 0x16) == 0  # the clock is not saved
        assert text(read_unit(s, 9, STATUS + 0x20, 16)) == "other"
        assert u32(read_unit(s, 9, STATUS + 0x16, 2), 0) == 0  # flash writes since boot
        assert request(s, bytes([17]), unit=9).endswith(b"other")  # FC17: identity.device_name replaced
    with RtuPort(sim.rtu_path, baud=9600, parity="N", stopbits=2) as port:
        assert port.request(bytes.fromhex("0321100001"), addr=9) == b"\x03\x02\x00\x09"


def test_a_save_the_filesystem_refuses_is_04(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path, settings=str(tmp_path / "missing-dir" / "settings.bin")))
    with connect(sim) as s:
        assert write(s, SETTINGS + 0x10, [5, 19200, 0, 2, 1, 0, 0, 0, 1]) == 4  # unit 5 and a save
        assert read(s, 3, SETTINGS + 0x10, 1) == [5]  # written, not saved
        assert u32(read(s, 4, STATUS + 0x16, 2), 0) == 0
        assert read(s, 4, STATUS + 0x0F, 1) == [2]  # faults: the last save to flash failed
        assert write(s, SETTINGS + 0x18, [1]) == 4  # not rate-limited: nothing was saved
        os.mkdir(tmp_path / "missing-dir")
        assert write(s, SETTINGS + 0x18, [1]) == 0  # the directory is there now: saved
        assert read(s, 4, STATUS + 0x0F, 1) == [0]  # and the fault is over
    assert sim.stop() == 0
    assert "settings not saved to" in sim.proc.stdout.read()


def read_unit(sock, unit_id, first, count):
    pdu = request(sock, struct.pack(">BHH", 3, first, count), unit=unit_id)
    assert pdu[0] == 3, pdu.hex()
    return list(struct.unpack(">%dH" % count, pdu[2:]))


@pytest.mark.parametrize("damage", ["garbage", "bad unit id", "short"])
def test_damaged_or_bad_settings_file_is_not_used(start_sim, tmp_path, damage):
    from mbnode import store

    path = tmp_path / "settings.bin"
    good = bytes([1]) + bytes(regs_bytes("x")) + struct.pack(">HHHHHH", 9, 9600, 0, 0, 2, 0)
    if damage == "garbage":
        path.write_bytes(b"MBS1garbage")
        says = "no intact saved state"
    elif damage == "bad unit id":
        store.save(str(path), good[:33] + struct.pack(">H", 248) + good[35:], 3)
        says = "saved settings not used (unit id)"
    else:
        store.save(str(path), good[:-2], 3)
        says = "saved settings not used (43 bytes; allowed 45)"
    sim = start_sim(config=system(tmp_path))
    assert "unit 1" in sim.ready and "serial" not in sim.ready
    assert any(says in line for line in sim.early), sim.early
    with connect(sim) as s:
        assert text(read(s, 3, SETTINGS, 16)) == "mbnode"


def regs_bytes(name):
    return name.encode().ljust(32, b"\0")


def test_reboot_command_ends_the_simulator_with_status_4(start_sim, tmp_path):
    sim = start_sim(config=system(tmp_path))
    with connect(sim) as s:
        assert write(s, SETTINGS + 0x19, [1]) == 0  # answered before the reboot
        code = sim.proc.wait(timeout=15)
    assert code == 4
    assert "reboot requested" in sim.proc.stdout.read()


@pytest.mark.parametrize("allowed", [True, False])
def test_reboot_switch_at_its_edge(start_sim, tmp_path, allowed):
    sim = start_sim(config=system(tmp_path, reboot=allowed, save_interval=1))
    with connect(sim) as s:
        assert write(s, SETTINGS + 0x18, [0]) == 0  # one before: the save register, writable
        if not allowed:
            assert write(s, SETTINGS + 0x19, [1]) == 2
            assert write(s, SETTINGS + 0x18, [0, 1]) == 2  # a write that reaches it
            assert write(s, SETTINGS + 0x19, [0]) == 2
            assert sim.proc.poll() is None
            assert read(s, 3, SETTINGS + 0x19, 1) == [0]  # reading it is fine
        else:
            assert write(s, SETTINGS + 0x18, [0, 1]) == 0
            assert sim.proc.wait(timeout=15) == 4


@pytest.mark.parametrize("allowed", [True, False])
def test_unit_id_switch_at_its_edge(start_sim, tmp_path, allowed):
    sim = start_sim(config=system(tmp_path, unit_id_writes=allowed))
    with connect(sim) as s:
        assert write(s, SETTINGS + 0x0F, [0]) == 0  # one before: the name's last register
        assert write(s, SETTINGS + 0x11, [19200]) == 0  # one past: the baud's lower half
        assert write(s, SETTINGS + 0x10, [5]) == (0 if allowed else 2)
        assert write(s, SETTINGS + 0x0F, [0, 6]) == (0 if allowed else 2)
        assert write(s, SETTINGS + 0x10, [7, 19200]) == (0 if allowed else 2)
        assert read(s, 3, SETTINGS + 0x10, 1) == [7 if allowed else 1]


# --- NTP


def test_ntp_sets_the_clock(start_sim, tmp_path):
    t = 1800000000
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.2)
    asked = []
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                q, addr = srv.recvfrom(100)
            except socket.timeout:
                continue
            asked.append(q)
            a = bytearray(48)
            a[0] = 0x24  # version 4, mode 4 (server)
            a[1] = 1  # stratum
            a[40:44] = struct.pack(">I", t + 2208988800)
            srv.sendto(bytes(a), addr)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        sim = start_sim(config=system(tmp_path, ntp="127.0.0.1:%d" % srv.getsockname()[1]))
        assert "ntp 127.0.0.1:" in sim.ready
        with connect(sim) as s:
            got = wait_for("the clock set by NTP", lambda: u32(read(s, 4, STATUS + 0x10, 2), 0))
            assert t <= got <= t + 3
            assert len(asked) == 1 and len(asked[0]) == 48 and asked[0][0] & 7 == 3
            # Modbus was served throughout (this test's reads); the status block has the time too
            # in the settings block's clock registers.
            assert t <= u32(read(s, 3, SETTINGS + 0x16, 2), 0) <= t + 3
    finally:
        done.set()
        th.join(2)
        srv.close()


# --- mbpoll (libmodbus)


def test_mbpoll_reads_status_and_writes_settings(start_sim, tmp_path):
    import subprocess

    exe = need_tool("mbpoll")
    sim = start_sim(config=system(tmp_path))

    def mbpoll(*args):
        argv = [exe, "-m", "tcp", "-p", str(sim.port), "-a", "1", "-0", "-1", "-o", "2"]
        vals = [a for a in args if isinstance(a, list)]
        argv += [str(a) for a in args if not isinstance(a, list)] + [sim.host]
        if vals:
            argv += ["--"] + [str(v) for v in vals[0]]
        return subprocess.run(argv, capture_output=True, text=True, timeout=20)

    import re

    def values(r):
        return [int(m.group(1)) for m in re.finditer(r"^\[\d+\]:\s+(-?\d+)", r.stdout, re.M)]

    r = mbpoll("-t", "3", "-r", STATUS + 0x30, "-c", 16)  # FC04: firmware version
    assert r.returncode == 0, r.stdout + r.stderr
    assert text(values(r)) == mbnode.VERSION
    r = mbpoll("-t", "4", "-r", STATUS + 0x0E, "-c", 1)  # FC03: temperature, signed: -32768
    assert values(r) == [-32768] or values(r) == [32768], r.stdout
    r = mbpoll("-t", "4", "-r", SETTINGS, regs_of("mbpoll-name", 6))
    assert r.returncode == 0, r.stdout + r.stderr
    r = mbpoll("-t", "4", "-r", SETTINGS, "-c", 16)
    assert text([v & 0xFFFF for v in values(r)]) == "mbpoll-name"
    r = mbpoll("-t", "4", "-r", SETTINGS + 0x13, [5])  # bad parity
    assert r.returncode != 0 and "Illegal data value" in (r.stdout + r.stderr), r.stdout + r.stderr


# --- configuration


def test_system_section_errors_are_one_line():
    from mbnode import config

    cfg = config.validate({})
    assert "system" not in cfg
    cfg = config.validate({"system": {}})
    assert cfg["system"] == {"enabled": True, "settings": "settings.bin", "save_interval": 60, "reboot": True,
                             "unit_id_writes": True, "ntp": "auto", "ntp_interval": 3600}
    for bad, says in [
        ({"save_interval": 0}, "config: system.save_interval = 0: allowed an integer 1..86400"),
        ({"save_interval": 86401}, "config: system.save_interval = 86401: allowed an integer 1..86400"),
        ({"reboot": 1}, "config: system.reboot = 1: allowed true or false"),
        ({"settings": ""}, "config: system.settings = \"\": allowed a file path"),
        ({"ntp": "host:0"}, "config: system.ntp = \"host:0\": allowed"),
        ({"ntp": "host:x"}, "config: system.ntp = \"host:x\": allowed"),
        ({"ntp_interval": 59}, "config: system.ntp_interval = 59: allowed an integer 60..86400"),
        ({"nope": 1}, "config: system.nope = 1: unknown key"),
    ]:
        with pytest.raises(config.ConfigError) as e:
            config.validate({"system": bad})
        assert str(e.value).startswith(says) and "\n" not in str(e.value), str(e.value)
    assert config.validate({"system": {"save_interval": 1, "ntp": "10.0.0.1:65535"}})["system"]["ntp"] == \
        "10.0.0.1:65535"
