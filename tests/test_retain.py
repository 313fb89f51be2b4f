"""Retained memory and the router's custom register block on the running simulator (32-bit unix
port), with pymodbus as the master (docs/configuration.md, docs/register-map.md,
docs/reliability.md "Power loss").

Power loss is a SIGKILL of the simulator's process group: after an answered write (custom
block), and at every step of a save of retained memory, where the unix board's test hook
(MBNODE_STOP_AT) holds the process at the named step until it is killed. Files are also cut
short and damaged by hand. Each restart must come up with the old or the new state, say which
in one line, and serve it.
"""

import os
import signal
import socket
import struct
import time

import pytest

from conftest import Sim, need
from mbnode import config
from mbtest import cli, exception_code, ok, pymodbus, pymodbus_client, unit
from rtutest import sim_refusal

if pymodbus is not None:
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient

# 100 positions: 406 bytes of data, so a save writes it in two chunks and has a "data" step (the
# write cut in the middle).
RETAINED = [[1, 100], [200, 200]]
STEPS = ["opened", "header", "data", "closed", "renamed"]


@pytest.fixture(autouse=True)
def _need_pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


class LoggedSim(Sim):
    """A Sim with its start-up lines as .log and a power cut."""

    @property
    def log(self):
        return self.early

    def kill(self):
        """Power cut: SIGKILL to the wrapper and the MicroPython process alike."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def boot(tmp_path, monkeypatch):
    """boot(cfg, stop_at=None, **sim keywords) -> LoggedSim; every simulator killed at the end."""
    sims = []

    def start(cfg, stop_at=None, **kw):
        if stop_at:
            monkeypatch.setenv("MBNODE_STOP_AT", stop_at)
        try:
            s = LoggedSim(tmp_path=tmp_path, config=cfg, **kw)
        finally:
            monkeypatch.delenv("MBNODE_STOP_AT", raising=False)
        sims.append(s)
        return s

    yield start
    for s in sims:
        if s.proc.poll() is None:
            s.kill()


def retain_cfg(tmp_path, every_s=3600):
    return {"retain": {"positions": RETAINED, "file": str(tmp_path / "retain.dat"), "every_s": every_s}}


def block_cfg(tmp_path, first=1025, count=300):
    return {"custom_block": {"file": str(tmp_path / "regfile.dat"), "first": first, "count": count}}


def retain_lines(sim):
    return [line for line in sim.log if "retain" in line]


def save(sim, timeout=10):
    """Ask for a save (control channel) and wait, bounded, until it is complete; (saved, flash writes)."""
    reply = sim.io_cmd("save").split()
    assert reply[0] == "ok", reply
    want = int(reply[1])
    deadline = time.monotonic() + timeout
    while True:
        saved, writes = (int(v) for v in sim.io_cmd("saved").split()[1:])
        if saved >= want:
            return saved, writes
        assert time.monotonic() < deadline, "save %d not complete after %d s (last: %d)" % (want, timeout, saved)
        time.sleep(0.02)


def saved(sim):
    return tuple(int(v) for v in sim.io_cmd("saved").split()[1:])


def write_memory(sim, values, position=1):
    """32-bit values into memory positions from `position` (lower half first) with FC16."""
    regs = []
    for v in values:
        regs += [v & 0xFFFF, v >> 16]
    with pymodbus_client(sim) as c:
        for i in range(0, len(regs), 120):
            ok(c.write_registers(0x1000 + 2 * (position - 1) + i, regs[i:i + 120], **unit()))


def read_memory(sim, position, count):
    with pymodbus_client(sim) as c:
        regs = []
        for i in range(0, 2 * count, 120):
            n = min(120, 2 * count - i)
            regs += ok(c.read_holding_registers(0x1000 + 2 * (position - 1) + i, count=n, **unit())).registers
    return [regs[2 * k] | regs[2 * k + 1] << 16 for k in range(count)]


# --- the custom register block ---------------------------------------------------------------


def test_custom_block_every_function_and_its_edges(boot, tmp_path):
    sim = boot(block_cfg(tmp_path))
    assert "mbnode: custom_block %s: missing; created with 300 registers of 0" % (tmp_path / "regfile.dat") in sim.log
    first, last = 1024, 1024 + 299  # register numbers 1025..1324, as the router counts
    with pymodbus_client(sim) as c:
        ok(c.write_registers(first, list(range(1, 11)), **unit()))
        assert ok(c.read_holding_registers(first, count=10, **unit())).registers == list(range(1, 11))
        ok(c.write_register(last, 0xBEEF, **unit()))
        assert ok(c.read_holding_registers(last - 124, count=125, **unit())).registers[-1] == 0xBEEF
        ok(c.mask_write_register(address=first + 1, and_mask=0x00FF, or_mask=0x1200, **unit()))
        rr = ok(c.readwrite_registers(read_address=first, read_count=3, write_address=first + 2, values=[77],
                                      **unit()))
        assert rr.registers == [1, 0x1202, 77]
        # One past each edge, and the input table: exception 02.
        assert exception_code(c.read_holding_registers(first - 1, count=1, **unit())) == 2
        assert exception_code(c.read_holding_registers(last, count=2, **unit())) == 2
        assert exception_code(c.write_register(last + 1, 1, **unit())) == 2
        assert exception_code(c.write_registers(first - 1, [1, 2], **unit())) == 2
        assert exception_code(c.read_input_registers(first, count=1, **unit())) == 2
    # What the file holds (read independently of the firmware): wire format, big-endian registers.
    regs = struct.unpack(">300H", (tmp_path / "regfile.dat").read_bytes())
    assert regs[:10] == (1, 0x1202, 77, 4, 5, 6, 7, 8, 9, 10) and regs[299] == 0xBEEF and not any(regs[10:299])
    # A power cut right after the answer: the write is kept, and the file is not created anew.
    sim.kill()
    sim = boot(block_cfg(tmp_path))
    assert not [line for line in sim.log if "custom_block" in line], sim.log
    with pymodbus_client(sim) as c:
        assert ok(c.read_holding_registers(first, count=3, **unit())).registers == [1, 0x1202, 77]
    sim.kill()
    # A file of the wrong size (cut short): created anew with zeros, said in one line.
    with open(tmp_path / "regfile.dat", "r+b") as f:
        f.truncate(10)
    sim = boot(block_cfg(tmp_path))
    assert [line for line in sim.log if "custom_block" in line] == [
        "mbnode: custom_block %s: 10 bytes, not 600; created with 300 registers of 0" % (tmp_path / "regfile.dat")]
    with pymodbus_client(sim) as c:
        assert ok(c.read_holding_registers(first, count=3, **unit())).registers == [0, 0, 0]


def test_custom_block_turned_off(boot, tmp_path):
    cfg = block_cfg(tmp_path)
    cfg["custom_block"]["enabled"] = False
    sim = boot(cfg)
    with pymodbus_client(sim) as c:
        assert exception_code(c.read_holding_registers(1024, count=1, **unit())) == 2
    assert not (tmp_path / "regfile.dat").exists() and "custom_block" not in sim.ready
    # Without a retain section `mbnode sim-io save` is refused on one line.
    r = cli("sim-io", "--io", "%s:%d" % sim.io, "save")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "mbnode sim-io: no retain section in the configuration\n")


@pytest.mark.parametrize("first, count, refused", [
    (1025, 3072, None),  # ends at 0x0FFF, below the memory registers
    (1025, 3073, "overlap the memory registers"),
    (6145, 2048, None),  # 0x1800-0x1FFF: between memory and the system registers
    (6144, 1, "overlap the memory registers"),
    (6145, 2049, "overlap the system registers"),
    (8705, 56832, None),  # 0x2200-0xFFFF: the last register number is 65536
    (8704, 1, "overlap the system registers"),
    (8705, 56833, "allowed 1..56832 with custom_block.first 8705"),
    (65536, 1, None),
    (65536, 2, "allowed 1..1 with custom_block.first 65536"),
    (1024, 1, "custom_block.first = 1024: allowed an integer 1025..65536"),
    (1025, 0, "custom_block.count = 0: allowed an integer 1..64512"),
    (1025, 64513, "custom_block.count = 64513: allowed an integer 1..64512"),
])
def test_custom_block_placement(first, count, refused):
    given = {"custom_block": {"first": first, "count": count, "enabled": count % 2 == 0}}  # off: checked too
    if refused is None:
        cfg = config.validate(given)
        assert cfg["custom_block"]["first"] == first and "retain" not in cfg
        return
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert refused in str(e.value) and "\n" not in str(e.value)


def test_retain_positions_refused_on_one_line(tmp_path):
    for positions, shown in (([[0, 3]], "[[0, 3]]"), ([[1, 1025]], "[[1, 1025]]"), (["5-4"], '["5-4"]'),
                             ([[1, 1]] * 33, None)):
        with pytest.raises(config.ConfigError) as e:
            config.validate({"retain": {"positions": positions}})
        assert "allowed a list of at most 32 memory position ranges" in str(e.value)
        if shown:
            assert str(e.value).startswith("config: retain.positions = %s: " % shown)
    assert config.validate({"retain": {"positions": ["0x10-0x20", [1, 1024], [3, 4]]}})["retain"]["positions"] == \
        [[1, 1024]]
    # The simulator refuses the same on one line, before it starts.
    code, err = sim_refusal([], config={"custom_block": {"first": 4097}}, tmp_path=tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert "custom_block.first = 4097: its registers 0x1000-0x107F overlap the memory registers" in err


# --- retained memory -------------------------------------------------------------------------


def test_retained_positions_survive_a_power_cut(boot, tmp_path):
    sim = boot(retain_cfg(tmp_path))
    assert retain_lines(sim) == ["mbnode: retain %s: no intact saved state, starting from the configuration"
                                 % (tmp_path / "retain.dat")]
    write_memory(sim, [0xDEADBEEF, 7, 8], 1)
    write_memory(sim, [123456], 100)
    write_memory(sim, [42], 200)
    write_memory(sim, [99], 150)  # not retained
    assert save(sim) == (1, 1)
    sim.kill()
    sim = boot(retain_cfg(tmp_path))
    assert retain_lines(sim) == ["mbnode: retain %s: restored save 1" % (tmp_path / "retain.dat")]
    assert read_memory(sim, 1, 3) == [0xDEADBEEF, 7, 8]
    assert read_memory(sim, 100, 1) == [123456]
    assert read_memory(sim, 199, 2) == [0, 42]
    assert read_memory(sim, 150, 1) == [0]


def test_a_stop_saves_what_changed(boot, tmp_path):
    # SIGTERM (mbnode sim makes it SIGINT): the firmware's normal way out saves first.
    sim = boot(retain_cfg(tmp_path))
    write_memory(sim, [31337], 7)
    r = cli("sim-io", "--io", "%s:%d" % sim.io, "saved")
    assert (r.returncode, r.stdout) == (0, "0 0\n")  # no save yet: every_s is an hour
    assert sim.stop() == 0
    sim = boot(retain_cfg(tmp_path))
    assert retain_lines(sim) == ["mbnode: retain %s: restored save 1" % (tmp_path / "retain.dat")]
    assert read_memory(sim, 7, 1) == [31337]
    # Nothing changed: a stop writes nothing.
    assert sim.stop() == 0
    sim = boot(retain_cfg(tmp_path))
    assert retain_lines(sim) == ["mbnode: retain %s: restored save 1" % (tmp_path / "retain.dat")]


def test_saves_follow_changes_at_most_every_n_seconds(boot, tmp_path):
    sim = boot(retain_cfg(tmp_path, every_s=1))
    began = time.monotonic()
    # Writes to positions that are not retained never make a save.
    write_memory(sim, [5], 150)
    time.sleep(1.5)  # longer than every_s: proves the absence of a save
    assert saved(sim) == (0, 0)
    # Many writes to retained positions: saves, but not one per write.
    writes = 0
    deadline = time.monotonic() + 20
    while saved(sim)[0] < 2:
        assert time.monotonic() < deadline, "no second save in 20 s"
        write_memory(sim, [writes], 2)
        writes += 1
    elapsed = time.monotonic() - began
    generation, flash = saved(sim)
    assert flash == generation and generation <= 1 + elapsed / 1.0, (generation, elapsed)
    assert writes > generation
    sim.kill()
    sim = boot(retain_cfg(tmp_path, every_s=1))
    line = retain_lines(sim)[0]
    assert line.startswith("mbnode: retain %s: restored save " % (tmp_path / "retain.dat"))
    kept = read_memory(sim, 2, 1)[0]
    assert 0 <= kept < writes  # the last save's value: one of those written


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_every_step_of_a_save(boot, tmp_path, step):
    path = tmp_path / "retain.dat"
    old = list(range(1000, 1100))
    new = list(range(5000, 5100))
    sim = boot(retain_cfg(tmp_path))
    write_memory(sim, old, 1)
    assert save(sim)[0] == 1
    sim.kill()
    sim = boot(retain_cfg(tmp_path), stop_at=step)
    write_memory(sim, new, 1)
    # The save starts in the same loop step as the request, before its reply could go out.
    ask = socket.create_connection(sim.io, timeout=5)
    ask.sendall(b"save\n")
    assert sim.next_line(20, lambda s: "stopped at save step" in s) == \
        "mbnode: test hook: stopped at save step %s" % step
    sim.kill()
    ask.close()
    sim = boot(retain_cfg(tmp_path))
    lines = retain_lines(sim)
    if step in ("opened", "header", "data"):  # .new incomplete: the old state
        assert lines == ["mbnode: retain %s: restored save 1" % path]
        assert read_memory(sim, 1, 100) == old
    elif step == "closed":  # .new complete, the rename never happened: the new state
        assert lines == ["mbnode: retain %s: restored save 2 (its rename was cut short; the newer state)" % path]
        assert read_memory(sim, 1, 100) == new
    else:
        assert lines == ["mbnode: retain %s: restored save 2" % path]
        assert read_memory(sim, 1, 100) == new
    # And the device saves on from there.
    write_memory(sim, [77], 1)
    assert save(sim)[0] == (2 if step in ("opened", "header", "data") else 3)


def test_damaged_and_cut_files(boot, tmp_path):
    path = tmp_path / "retain.dat"
    new_path = tmp_path / "retain.dat.new"
    sim = boot(retain_cfg(tmp_path))
    write_memory(sim, [11], 1)
    save(sim)
    first = path.read_bytes()
    write_memory(sim, [22], 1)
    save(sim)
    second = path.read_bytes()
    sim.kill()

    def restart():
        s = boot(retain_cfg(tmp_path))
        lines = retain_lines(s)
        value = read_memory(s, 1, 1)[0]
        s.kill()
        return lines, value

    # The newer save damaged (one byte of its data changed) beside an intact older one: the older.
    path.write_bytes(first)
    new_path.write_bytes(second[:20] + bytes([second[20] ^ 0xFF]) + second[21:])
    assert restart() == (["mbnode: retain %s: restored save 1" % path], 11)
    # The newer save cut short beside the older one: the older.
    new_path.write_bytes(second[:-1])
    assert restart() == (["mbnode: retain %s: restored save 1" % path], 11)
    # The saved file cut short, a complete .new beside it: the .new.
    path.write_bytes(second[:10])
    new_path.write_bytes(second)
    assert restart() == (["mbnode: retain %s: restored save 2 (its rename was cut short; the newer state)" % path],
                         22)
    # Only a file cut short (and a longer one): nothing intact, the configuration's zeros.
    new_path.unlink()
    path.write_bytes(second[:-1])
    assert restart() == (["mbnode: retain %s: no intact saved state, starting from the configuration" % path], 0)
    path.write_bytes(second + b"\0")
    assert restart()[1] == 0


def test_saves_wait_for_the_rtu_lines_quiet_moments(boot, tmp_path):
    """Over RTU, a master polling without pause: every request answered, and saves still
    complete (a step right after each reply). Then the line idle: the timer's own steps."""
    sim = boot(retain_cfg(tmp_path, every_s=1), rtu="pty")
    c = ModbusSerialClient(port=sim.rtu_path, framer=FramerType.RTU, baudrate=19200, parity="N", stopbits=1,
                           timeout=1.0, retries=0)
    assert c.connect()
    try:
        answered = 0
        deadline = time.monotonic() + 30
        while saved(sim)[0] < 2:
            assert time.monotonic() < deadline, "no two saves in 30 s of polling"
            ok(c.write_registers(0x1000, [answered & 0xFFFF, 0], **unit()))
            assert ok(c.read_holding_registers(0x1000, count=2, **unit())).registers == [answered & 0xFFFF, 0]
            answered += 1
    finally:
        c.close()
    # The line idle from now on: a save asked for completes without any request.
    write_memory(sim, [4242], 1)  # over TCP
    assert save(sim)[0] >= 3
    sim.kill()
    sim = boot(retain_cfg(tmp_path), rtu="pty")
    assert read_memory(sim, 1, 1) == [4242]


def test_store_steps_on_cpython(tmp_path):
    """mbnode.store on CPython (the host tools' side): a save in steps, cut after any of them
    (the generator dropped), leaves the old state or the new one."""
    from mbnode import store

    path = str(tmp_path / "s.dat")
    store.save(path, b"old" * 200, 1)
    data = bytes(range(256)) * 3
    steps = list(store.saving(path, data, 2))
    assert steps == ["opened", "header", "data", "data", "closed"]
    got = store.load(path)
    assert (got.data, got.generation, got.describe()) == (data, 2, "%s: restored save 2" % path)
    names = ["opened", "header", "data", "data", "data", "closed"]  # 900 bytes: four chunks
    for cut, name in enumerate(names):
        steps = store.saving(path, b"new" * 300, 3)
        for _ in range(cut + 1):
            last = next(steps)
        assert last == name
        steps.close()  # the power goes: nothing more is written, nothing renamed
        got = store.load(path)
        if name != "closed":
            assert (got.data, got.which) == (data, "saved"), name
        else:  # .new complete, not renamed
            assert (got.data, got.which, got.generation) == (b"new" * 300, "new", 3)


def test_the_settings_save_command_saves_retained_memory_too(boot, tmp_path):
    # The settings block's save command (0x2118 = 1, mbnode.settings) asks retained memory for a
    # save as well (health.retain.save_now): after it, the retained values survive a power cut
    # although every_s (an hour) has not passed.
    cfg = retain_cfg(tmp_path)
    cfg["system"] = {"settings": str(tmp_path / "settings.bin"), "ntp": ""}
    sim = boot(cfg, mpy=True)
    write_memory(sim, [0x12345678, 7])
    before = saved(sim)
    with pymodbus_client(sim) as c:
        ok(c.write_register(0x2118, 1, **unit()))
    deadline = time.monotonic() + 10
    while saved(sim)[0] == before[0]:
        assert time.monotonic() < deadline, "no save of retained memory after the settings' save command"
        time.sleep(0.02)
    sim.kill()
    sim = boot(cfg, mpy=True)
    assert read_memory(sim, 1, 2) == [0x12345678, 7]
