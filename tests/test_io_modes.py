"""The io section's input and output modes on the simulator (docs/configuration.md, "Input and
output modes"): raw inputs driven through the control channel (`mbnode sim-io`: set, pulse),
what a master sees read with pymodbus (and mbpoll): counters, latches, frequencies, debounced
and inverted levels, scaled AI; DO power-on, invert and pulse; AO power-on and PWM frequency.
Every wait is on a condition with a bound; nothing asserts a speed."""

import json
import time

import pytest

from conftest import Sim
from mbtest import cli, ok, pymodbus_client, unit, wait_for
from test_mbpoll import Values, mbpoll, values

DEBOUNCE = 20
PULSE_MS = 300

CONFIG = {
    "io": {
        "scan_ms": 5,
        "di": [
            {"channel": 0, "mode": "counter", "position": 1},
            {"channel": 1, "mode": "counter", "edge": "falling", "position": 2},
            {"channel": 2, "mode": "latch", "position": 3},
            {"channel": 3, "mode": "frequency", "position": 4, "gate_ms": 500},
            {"channel": 4, "mode": "counter", "debounce_ms": DEBOUNCE, "position": 5},
            {"channel": 5, "mode": "level", "invert": True},
            {"channel": 6, "mode": "level", "debounce_ms": DEBOUNCE},
            {"channel": 7, "mode": "counter", "invert": True, "position": 6},
            {"channel": 8, "mode": "latch", "debounce_ms": DEBOUNCE, "position": 7},
        ],
        "ai": [
            {"channel": 0, "period_ms": 5, "average": 4, "high": 1000},
            {"channel": 1, "period_ms": 5, "raw_low": 1000, "raw_high": 2000, "low": -500, "high": 500},
            {"channel": 2, "period_ms": 5, "source": "temp"},
        ],
        "do": [
            {"channel": 0, "power_on": 1},
            {"channel": 1, "pulse_ms": PULSE_MS},
            {"channel": 2, "invert": True},
            {"channel": 3, "invert": True, "power_on": 1},
        ],
        "ao": [{"channel": 0, "power_on": 512, "freq": 500}, {"channel": 1, "freq": 20000}],
    }
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = Sim(config=CONFIG, tmp_path=tmp_path_factory.mktemp("io"), mpy=True)
    try:
        with pymodbus_client(s) as c:
            yield s, c
    finally:
        s.stop()


def io(sim, line):
    reply = sim.io_cmd(line)
    assert reply == "ok" or reply.startswith("ok "), (line, reply)
    return [int(v) for v in reply.split()[1:]]


def sim_io(sim, *words):
    """`mbnode sim-io` as a user runs it: the values it prints."""
    r = cli("sim-io", "--io", "%s:%d" % sim.io, *words)
    assert r.returncode == 0, r.stderr
    return [int(v) for v in r.stdout.split()]


def position(c, p):
    lo, hi = ok(c.read_holding_registers(0x1000 + 2 * (p - 1), count=2, **unit())).registers
    return lo | hi << 16


def di_bit(c, n):
    return ok(c.read_discrete_inputs(n, count=1, **unit())).bits[0]


def signed(v):
    return v - 0x10000 if v & 0x8000 else v


def test_power_on_values_before_any_write(node):
    sim, c = node
    assert sim.fields["io_modes"] == "18", sim.ready  # 9 DI, 3 AI, 4 DO, 2 AO channels
    assert ok(c.read_coils(0, count=4, **unit())).bits[:4] == [True, False, False, True]
    assert sim_io(sim, "field", "do", "0", "4") == [1, 0, 1, 0]  # channels 2 and 3 inverted
    assert ok(c.read_holding_registers(0, count=2, **unit())).registers == [512, 0]
    assert sim_io(sim, "field", "ao", "0", "2") == [500, 20000]


def test_do_invert_follows_writes(node):
    sim, c = node
    ok(c.write_coil(2, True, **unit()))
    assert io(sim, "field do 2") == [0]
    ok(c.write_coil(2, False, **unit()))
    assert io(sim, "field do 2") == [1]


def test_pulse_output_falls_back(node):
    sim, c = node
    sent = time.monotonic()
    ok(c.write_coil(1, True, **unit()))
    wait_for("fall back", lambda: not ok(c.read_coils(1, count=1, **unit())).bits[0])
    # Never before pulse_ms: the firmware took the write after it was sent.
    assert time.monotonic() - sent >= PULSE_MS / 1000
    assert io(sim, "field do 1") == [0]
    # A write of 0 during the pulse ends it at once.
    ok(c.write_coil(1, True, **unit()))
    ok(c.write_coil(1, False, **unit()))
    assert ok(c.read_coils(1, count=1, **unit())).bits[0] is False


def test_counter_counts_resets_and_presets(node):
    sim, c = node
    assert sim_io(sim, "pulse", "di", "0", "50", "1", "1") == []
    wait_for("50 edges", lambda: position(c, 1) == 50)
    ok(c.write_registers(0x1000, [0, 0], **unit()))  # reset
    assert position(c, 1) == 0
    io(sim, "pulse di 0 5 0 0")
    wait_for("5 edges after the reset", lambda: position(c, 1) == 5)
    ok(c.write_registers(0x1000, [0xFFFE, 0xFFFF], **unit()))  # preset near the top: it wraps
    io(sim, "pulse di 0 3 0 0")
    wait_for("the wrap", lambda: position(c, 1) == 1)
    assert position(c, 1) == 1
    # FC04 reads the same position.
    assert ok(c.read_input_registers(0x1000, count=2, **unit())).registers == [1, 0]


def test_counter_edges_and_invert(node):
    sim, c = node
    io(sim, "set di 1 1")  # a rising edge: channel 1 counts falling ones
    io(sim, "set di 1 0")
    wait_for("one falling edge", lambda: position(c, 2) == 1)
    io(sim, "set di 7 1")  # inverted: the raw rising edge is a falling one
    io(sim, "set di 7 0")  # the counted edge
    wait_for("one inverted edge", lambda: position(c, 6) == 1)
    io(sim, "pulse di 1 4 0 0")
    io(sim, "pulse di 7 4 0 0")
    wait_for("4 more each", lambda: (position(c, 2), position(c, 6)) == (5, 5))


def test_level_invert(node):
    sim, c = node
    io(sim, "set di 5 1")
    wait_for("the inverted level 0", lambda: di_bit(c, 5) is False)
    io(sim, "set di 5 0")
    wait_for("the inverted level 1", lambda: di_bit(c, 5) is True)


def test_latch_keeps_a_short_pulse_until_cleared(node):
    sim, c = node
    assert position(c, 3) == 0 and di_bit(c, 2) is False
    io(sim, "pulse di 2 1 0 0")  # a pulse of no length: both edges in one step
    wait_for("the latch", lambda: position(c, 3) == 1)
    assert io(sim, "field di 2") == [0]
    assert di_bit(c, 2) is True
    ok(c.write_registers(0x1004, [0, 0], **unit()))  # cleared by the master
    assert position(c, 3) == 0 and di_bit(c, 2) is False
    io(sim, "pulse di 2 1 0 0")
    wait_for("the latch again", lambda: position(c, 3) == 1)
    ok(c.write_register(0x1004, 0, **unit()))  # FC06 of the lower half clears it too
    assert position(c, 3) == 0


def test_debounce(node):
    sim, c = node
    # Bounces shorter than the debounce (no length, then 1 ms), the level held after them: one count.
    io(sim, "pulse di 4 5 0 0")
    io(sim, "pulse di 4 5 1 1")
    io(sim, "set di 4 1")
    wait_for("the held edge counted", lambda: position(c, 5) >= 1)
    assert di_bit(c, 4) is True
    io(sim, "set di 4 0")
    wait_for("the debounced level 0", lambda: di_bit(c, 4) is False)
    assert position(c, 5) == 1
    # A pulse longer than the debounce counts.
    io(sim, "pulse di 4 1 %d %d" % (3 * DEBOUNCE, 3 * DEBOUNCE))
    wait_for("the long pulse counted", lambda: position(c, 5) == 2)
    # Level mode: a glitch does not show; a held level does.
    io(sim, "pulse di 6 3 0 0")
    io(sim, "set di 6 1")
    wait_for("the debounced level", lambda: di_bit(c, 6) is True)
    # Latch with a debounce: a glitch is no pulse, a held one is.
    io(sim, "pulse di 8 3 0 0")
    io(sim, "set di 8 1")
    wait_for("the debounced latch", lambda: position(c, 7) == 1)
    io(sim, "set di 8 0")


def test_frequency(node):
    sim, c = node
    io(sim, "pulse di 3 300 5 5")  # 100 Hz for 3 s
    readings = []

    def near_100():
        readings.append(position(c, 4))
        return 95 <= readings[-1] <= 105

    wait_for("about 100 Hz (readings %s)" % readings, near_100)
    wait_for("0 Hz once the pulses end", lambda: position(c, 4) == 0)


def test_ai_scaling_and_averaging(node):
    sim, c = node
    io(sim, "set ai 0 65535")
    wait_for("full scale", lambda: ok(c.read_input_registers(0, count=1, **unit())).registers == [1000])
    io(sim, "set ai 0 99")  # 1.51 -> 2 once the average of 4 is all 99
    wait_for("the average of 99s", lambda: ok(c.read_input_registers(0, count=1, **unit())).registers == [2])
    io(sim, "set ai 1 1501")
    wait_for("1", lambda: ok(c.read_input_registers(1, count=1, **unit())).registers == [1])
    io(sim, "set ai 1 0")  # -1500, below low: still inside int16
    wait_for("-1500", lambda: signed(ok(c.read_input_registers(1, count=1, **unit())).registers[0]) == -1500)
    io(sim, "set ai 1 65535")  # clamped
    wait_for("32767", lambda: ok(c.read_input_registers(1, count=1, **unit())).registers == [32767])
    assert io(sim, "field ai 1") == [65535]
    # The temperature channel: 14000 is 0.70497 V, 27.6 degC.
    io(sim, "set ai 2 14000")
    want = round((27 - (14000 * 3.3 / 65535 - 0.706) / 0.001721) * 10)
    wait_for("27.6 degC", lambda: ok(c.read_input_registers(2, count=1, **unit())).registers == [want])


def test_mbpoll_presets_and_reads_a_counter(node):
    sim, c = node
    r = mbpoll(sim, "-t", "4:int", "-r", 0x1000, Values([100000]))  # a preset as a 32-bit value
    assert r.returncode == 0, r.stdout + r.stderr
    io(sim, "pulse di 0 7 0 0")
    wait_for("7 edges", lambda: position(c, 1) == 100007)
    r = mbpoll(sim, "-t", "3:int", "-r", 0x1000, "-c", 1)  # FC04
    assert values(r) == {0x1000: 100007}, r.stdout + r.stderr


def test_control_channel_refusals(node):
    sim, _ = node
    assert sim.io_cmd("pulse di 9 1 1").startswith("err di 9 has no io mode")
    assert sim.io_cmd("set di 0 2").startswith("err bit value 2")
    assert sim.io_cmd("field mem 1").startswith("err allowed")
    r = cli("sim-io", "--io", "%s:%d" % sim.io, "pulse", "di", "0", "0", "1")
    assert r.returncode == 2 and "COUNT 0: allowed 1 or more" in r.stderr


@pytest.mark.parametrize("io_section, message", [
    ({"di": [{"channel": 0, "mode": "counter"}]}, "io.di[0].position = 0: allowed a memory position 1..1024"),
    ({"di": [{"channel": 0, "mode": "level", "position": 3}]}, "io.di[0].position = 3: allowed 0 in mode"),
    ({"di": [{"channel": 0, "mode": "counter", "position": 3}, {"channel": 1, "mode": "latch", "position": 3}]},
     "io.di[1].position = 3: io.di[0] has it"),
    ({"di": [{"channel": 0}, {"channel": 0}]}, "io.di[1].channel = 0: allowed each channel once"),
    ({"di": [{"channel": 0, "mode": "count"}]}, "io.di[0].mode = \"count\": allowed one of"),
    ({"ai": [{"channel": 0, "raw_low": 5, "raw_high": 5}]}, "io.ai[0].raw_high = 5: allowed a value other"),
    ({"do": [{"channel": 0, "pulse_ms": 10, "power_on": 1}]}, "io.do[0].power_on = 1: allowed 0 for a pulse"),
    ({"ao": [{"channel": 0, "power_on": 1024}]}, "io.ao[0].power_on = 1024: allowed an integer 0..1023"),
    ({"ao": [{"channel": 99}]}, "io.ao[0].channel = 99: allowed an integer 0..63"),
    ({"scan_ms": 0}, "io.scan_ms = 0: allowed an integer 1..1000"),
])
def test_config_refusals(io_section, message):
    from mbnode import config

    with pytest.raises(config.ConfigError) as e:
        config.validate({"io": io_section})
    assert message in str(e.value)


def test_absent_channel_and_position_refused():
    from mbnode import config

    cfg = {"channels": {"discrete_inputs": ["0x0000-0x0003"], "holding_registers": ["0x0000-0x0003"]},
           "io": {"di": [{"channel": 5}]}}
    with pytest.raises(config.ConfigError, match="io.di\\[0\\].channel = 5: allowed a channel of channels.discrete_inputs"):
        config.validate(cfg)
    cfg["io"] = {"di": [{"channel": 1, "mode": "counter", "position": 1}]}
    with pytest.raises(config.ConfigError, match="io.di\\[0\\].position = 1: its registers 0x1000-0x1001 are absent"):
        config.validate(cfg)
    assert json.dumps(config.validate({"io": {}})["io"]) == json.dumps(
        {"scan_ms": 20, "di": [], "ai": [], "do": [], "ao": []})
