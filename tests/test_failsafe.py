"""Fail-safe outputs (mbnode.failsafe, docs/configuration.md "Fail-safe outputs") on the unix
port: the real firmware (`mbnode sim`, .mpy files) with Modbus TCP, RTU on a pty and the MQTT
bridge on a mosquitto of the module's own; pymodbus, mbpoll and the MQTT gateway/`/set` as the
masters; sim-io reads the outputs, `<root>/failsafe` shows the state.

The rule under test (docs/configuration.md): no valid request from a transport for timeout_ms
-> each output takes its safe value ("hold" channels keep theirs), the state is 1; the next
valid request (a read as much as a write, from TCP, RTU, the MQTT gateway or /set) ends it, and
the outputs stay at their safe values until a master writes them. The device's own requests
(telemetry scans) keep nothing alive.
"""

import os
import struct
import subprocess
import time

import pytest

from conftest import ROOT, micropython_or_fail
from mbnode import config
from mbtest import ok, pymodbus_client, unit
from mqtttest import WAIT, Topics, broker, needs_bridge_tools, sim_output, start_device  # noqa: F401
from test_mbpoll import mbpoll, values

TIMEOUT_MS = 1500  # long enough that a busy machine never stalls the test between two of its requests
FAILSAFE = {
    "timeout_ms": TIMEOUT_MS,
    "do_default": "off",
    "do": {"1": "on", "2-3": "hold", "0x0041": "on"},
    "ao_default": 0,
    "ao": {"1": "hold", "2": 77, "0x0040": 40000},
    "memory": {"5": -2},
}
SAFE_DO = [0, 1, None, None, 0, 0, 0, 0]  # None: held
SAFE_AO = [0, None, 77, 0]


# --- the configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("given,message", [
    ({"failsafe": {"timeout": 5}}, "config: failsafe.timeout = 5: unknown key; allowed keys: ao, ao_default, do, "
                                   "do_default, enabled, memory, timeout_ms"),
    ({"failsafe": {"timeout_ms": 99}}, "config: failsafe.timeout_ms = 99: allowed an integer 100..3600000"),
    ({"failsafe": {"do_default": "low"}}, 'config: failsafe.do_default = "low": allowed "off", "on" or "hold"'),
    ({"failsafe": {"ao_default": -1}}, "config: failsafe.ao_default = -1: allowed \"hold\" or a register value "
                                       "0..65535"),
    ({"failsafe": {"do": {"0x0240": "on"}}}, 'config: failsafe.do.0x0240 = "on": allowed keys "ADDRESS" or '
                                             '"FIRST-LAST" (decimal or 0x hex) inside 0x0000-0x023F'),
    ({"failsafe": {"do": {"3-1": "on"}}}, 'config: failsafe.do."3-1" = "on": allowed keys'),
    ({"failsafe": {"do": {"1": 1}}}, 'config: failsafe.do.1 = 1: allowed "off", "on" or "hold"'),
    ({"failsafe": {"do": ["1"]}}, 'config: failsafe.do = ["1"]: allowed an object'),
    ({"failsafe": {"memory": {"0": 1}}}, "config: failsafe.memory.0 = 1: allowed keys \"ADDRESS\" or \"FIRST-LAST\" "
                                         "(decimal or 0x hex) inside 1..1024"),
    ({"failsafe": {"memory": {"7": 1 << 32}}}, "config: failsafe.memory.7 = 4294967296: allowed a 32-bit value"),
    ({"failsafe": {"ao": {"0x3f": 1024}}}, "config: failsafe.ao.0x3f = 1024: onboard AO (0x0000-0x003F) is 10-bit; "
                                           "allowed \"hold\" or 0..1023"),
    ({"failsafe": {"ao_default": 1024}}, "config: failsafe.ao_default = 1024: onboard AO channels are present"),
    ({"channels": {"coils": ["0-7"]}, "failsafe": {"do": {"6-8": "on"}}},
     "config: failsafe.do.6-8: channels 0x0006-0x0008 are not all present in channels.coils; allowed present "
     "channels"),
    ({"channels": {"holding_registers": ["0-3"]}, "failsafe": {"memory": {"1": 0}}},
     "config: failsafe.memory.1: positions 1-1 are not present in channels.holding_registers"),
])
def test_refusals_are_one_line(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_checked_section_checks_again_unchanged():
    cfg = config.validate({"failsafe": FAILSAFE})
    assert cfg["failsafe"] == dict(FAILSAFE, enabled=True)
    assert config.validate({"failsafe": cfg["failsafe"]})["failsafe"] == cfg["failsafe"]
    assert "failsafe" not in config.validate({})  # no section, nothing loaded, nothing in the result


def test_safe_state_as_requests():
    """The PDUs fail-safe sends through the Engine: runs of consecutive channels that are not
    held, within the present ranges, FC15 for coils and FC16 for AO and memory."""
    from mbnode import failsafebuild
    from mbnode.datamodel import DataModel

    cfg = config.validate({"channels": {"coils": ["0-7", "0x40-0x41"], "holding_registers": ["0-3", "0x1000-0x17FF"]},
                           "failsafe": dict(FAILSAFE, ao={"1": "hold", "2": 77})})
    m = DataModel([cfg["channels"][n] for n in ("coils", "discrete_inputs", "holding_registers", "input_registers")])
    pdus = [bytes(p) for p in failsafebuild.requests(m.present, cfg["failsafe"])]
    assert pdus == [
        bytes([15, 0, 0, 0, 2, 1, 0b10]),  # coils 0-1: off, on (2-3 held)
        bytes([15, 0, 4, 0, 4, 1, 0]),  # coils 4-7 off
        bytes([15, 0, 0x40, 0, 2, 1, 0b10]),  # coils 0x40 off, 0x41 on
        struct.pack(">BHHB", 16, 0, 1, 2) + struct.pack(">H", 0),  # AO 0 (1 held)
        struct.pack(">BHHB", 16, 2, 2, 4) + struct.pack(">HH", 77, 0),  # AO 2-3
        struct.pack(">BHHB", 16, 0x1008, 2, 4) + struct.pack(">HH", 0xFFFE, 0xFFFF),  # memory 5, lower half first
    ]


def test_paths_allocate_nothing(bits):
    """tests/core/alloc_failsafe.py under micropython.heap_lock(): fail-safe's look, a request
    seen, fail-safe entered (the safe values through the Engine and the output subscribers) and
    ended; the status LED's patterns; the watchdog fed."""
    binary = micropython_or_fail(bits)
    path = [".frozen", str(ROOT / "tests" / "fakes"), str(ROOT / "tests" / "core"), str(ROOT / "boards" / "unix"),
            str(ROOT / "boards" / "common"), str(ROOT / "firmware")]
    out = subprocess.run([binary, "-X", "heapsize=256K", "alloc_failsafe.py"], cwd=ROOT / "tests" / "core",
                         env=dict(os.environ, MICROPYPATH=":".join(path)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "8 passed, 0 failed" in out.stdout, out.stdout + out.stderr


def test_pico_pins_led_and_watchdog():
    """tests/core/board_watch.py: the Pico board with the fake machine module: fail-safe drives
    the DO/AO pins (held ones keep their level), the LED flickers for traffic and flashes in
    fail-safe, the watchdog starts after wdt_delay_s and is fed; a read ends fail-safe and the
    pins stay until written."""
    from test_boards_unix import run_script

    out = run_script("pico", "board_watch.py")
    assert out.returncode == 0 and "1 passed, 0 failed" in out.stdout, out.stdout + out.stderr


# --- the running firmware ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory, broker):  # noqa: F811
    """The simulator (TCP, RTU on a pty, MQTT with a telemetry point scanned all the time), its
    test client on <root>/#. A device no master has talked to goes safe timeout_ms after it
    started: the fixture sees that ("0" at the connect, then "1"), then ends it with a read, so
    every test starts in the normal state with every state message so far taken."""
    topics = Topics(root="fs")
    tmp = tmp_path_factory.mktemp("failsafe")
    d = start_device(tmp, broker, topics, sim_kw={"rtu": "pty", "mpy": True, "heap": "192K"},
                     config={"failsafe": FAILSAFE, "system": {"settings": str(tmp / "settings.bin"), "ntp": ""}},
                     points=[{"name": "scanned", "table": "input", "address": 5, "every_s": 1},
                             {"name": "relay", "table": "coil", "address": 5}])
    try:
        assert d.sim.fields.get("failsafe") == "%dms" % TIMEOUT_MS, d.sim.ready
        state(d, b"0")  # published at the connect
        state(d, b"1")  # nobody asked anything since the boot
        with pymodbus_client(d.sim) as c:
            ok(c.read_holding_registers(0, count=1, **unit()))
        state(d, b"0")
    except BaseException:
        d.stop()
        raise
    yield d
    d.stop()


def state(dev, payload, timeout=WAIT):
    """The next message on <root>/failsafe, which must be `payload` (published retained: a live
    delivery carries no retain flag, a new subscriber's does, see the broker test)."""
    m = dev.client.wait(dev.topic("failsafe"), timeout=timeout)
    assert m.payload == payload, (m, sim_output(dev.sim))
    return m


def command(dev):
    """Every output given a value none of the safe values has (pymodbus over TCP, FC15/FC16);
    the monotonic time before the last request went out."""
    with pymodbus_client(dev.sim) as c:
        ok(c.write_coils(0, [True] * 8, **unit()))
        ok(c.write_coils(0x40, [True, False], **unit()))
        ok(c.write_registers(0x40, [123], **unit()))
        ok(c.write_registers(0x1008, [0x1234, 0x0001], **unit()))  # memory position 5
        t = time.monotonic()
        ok(c.write_registers(0, [11, 22, 33, 44], **unit()))
    return t


def outputs(dev):
    return dev.io("get do 0 8"), dev.io("get ao 0 4")


def check_safe(dev):
    do, ao = outputs(dev)
    assert do == [1 if s is None else s for s in SAFE_DO], do
    assert ao == [[11, 22, 33, 44][i] if s is None else s for i, s in enumerate(SAFE_AO)], ao
    assert dev.io("get do 0x40 2") == [0, 1]  # extension channels: do_default off, 0x0041 on
    assert dev.io("get ao 0x40") == [40000]
    assert dev.io("get mem 5") == [0xFFFFFFFE]


def test_outputs_go_safe_after_the_timeout_and_stay_after_a_read(dev):
    sent = command(dev)
    m = state(dev, b"1")
    # Not before the timeout: the device served the last write after `sent`, and went safe
    # timeout_ms after serving it.
    assert m.time - sent >= TIMEOUT_MS / 1000, m.time - sent
    check_safe(dev)
    # The next request, a read, ends fail-safe; the outputs stay until written.
    with pymodbus_client(dev.sim) as c:
        rr = ok(c.read_coils(0, count=8, **unit()))
        assert list(rr.bits[:8]) == [bool(1 if s is None else s) for s in SAFE_DO]
    state(dev, b"0")
    check_safe(dev)
    with pymodbus_client(dev.sim) as c:
        ok(c.write_coils(0, [True] * 8, **unit()))
    assert outputs(dev)[0] == [1] * 8


def test_status_register_shows_failsafe_to_the_request_that_ends_it(dev):
    # 0x200D (mbnode.sysregs) reads health.failsafe: the read that ends fail-safe is answered
    # while it still holds (1), the next one after it (0).
    command(dev)
    state(dev, b"1")
    with pymodbus_client(dev.sim) as c:
        assert ok(c.read_input_registers(0x200D, count=1, **unit())).registers == [1]
        assert ok(c.read_holding_registers(0x200D, count=1, **unit())).registers == [0]
    state(dev, b"0")


def test_state_is_retained_and_published_again_after_the_broker_restarts(dev, broker):  # noqa: F811
    from mqtttest import Client

    command(dev)
    state(dev, b"1")
    late = Client(broker, subscribe=[dev.topic("failsafe")])
    try:
        m = late.wait(dev.topic("failsafe"))
        assert (m.payload, m.retain) == (b"1", True), m
    finally:
        late.close()
    # A broker without persistence forgets retained messages: the device says it again.
    broker.restart()
    dev.client.wait_resubscribed()
    dev.client.wait_online()
    state(dev, b"1")
    with pymodbus_client(dev.sim) as c:
        ok(c.write_coils(0, [True] * 8, **unit()))
    state(dev, b"0")


def test_an_rtu_read_ends_failsafe(dev):
    command(dev)
    state(dev, b"1")
    r = mbpoll(dev.sim, "-t", "4", "-r", 0, "-c", 4)
    assert r.returncode == 0, r.stdout + r.stderr
    assert values(r) == {0: 0, 1: 22, 2: 77, 3: 0}
    state(dev, b"0")
    check_safe(dev)


def test_mqtt_gateway_request_and_set_end_failsafe(dev):
    command(dev)
    state(dev, b"1")
    assert dev.request(dev.local("3 1 1", "501")).startswith("501 OK")
    state(dev, b"0")
    check_safe(dev)
    state(dev, b"1")  # nothing asked since
    dev.client.publish(dev.topic("relay", "set"), "1")
    res = dev.client.wait(dev.topic("relay", "res")).json()
    assert res["ok"] is True, res
    state(dev, b"0")
    assert outputs(dev)[0][4:6] == [0, 1]  # coil 5 written by /set, coil 4 still safe


def test_reads_keep_it_alive_and_telemetry_does_not(dev):
    """A master reading every 50 ms for three timeouts: no fail-safe. Then silence with the
    telemetry scan still running (its point published every second): fail-safe comes."""
    command(dev)
    start = time.monotonic()
    gaps = []
    with pymodbus_client(dev.sim) as c:
        last = time.monotonic()
        while time.monotonic() - start < 3 * TIMEOUT_MS / 1000:
            ok(c.read_input_registers(0, count=1, **unit()))
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            time.sleep(0.05)
    # The master's requests came closer together than the timeout (else this machine stalled
    # the test itself for longer than timeout_ms, and it proves nothing).
    assert max(gaps) < TIMEOUT_MS / 1000, max(gaps)
    dev.client.absent(dev.topic("failsafe"), duration=0)
    assert outputs(dev) == ([1] * 8, [11, 22, 33, 44])
    dev.client.clear(dev.topic("scanned"))
    state(dev, b"1")
    dev.client.wait(dev.topic("scanned"))  # the scans went on meanwhile (every_s 1)
    check_safe(dev)
    with pymodbus_client(dev.sim) as c:
        ok(c.read_input_registers(0, count=1, **unit()))
    state(dev, b"0")
