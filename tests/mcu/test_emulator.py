"""The emulated Pico itself (tests/mcu/emu/pico.mjs), with MicroPython's stock rp2 firmware.

What the runner must model for the firmware tests to mean something: the flash (littlefs,
mpremote cp, a power cycle from a saved image), the USB CDC REPL, UART0 on the wire (character
times, FIFO and receive-timeout interrupts, flush, line settings), GPIO both ways with an edge
log, machine.reset(), and its own time limit. Timing facts are asserted in simulated time (the
runner's trace), which is deterministic; wall time is only ever a timeout.
"""

import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import IN_CI
from mbnode_host import uf2
from pico import RUNNER, Pico, bootrom_path, require, stock_firmware

FIRMWARE = stock_firmware()
FS_BYTES = 1408 * 1024  # MicroPython's littlefs at the end of the Pico's 2 MB flash
FLASH_BYTES = 2 * 1024 * 1024

UART_SETUP = """
from machine import UART, Pin
u = UART(0, {baud}, bits=8, parity={parity}, stop=1, tx=Pin(0), rx=Pin(1))
"""

ECHO = UART_SETUP + """
print('echo ready')
while True:
    n = u.any()
    if n:
        u.write(u.read(n))
"""

# One block written at once, flush(), then the DE pin low: the RS-485 turnaround.
FLUSH = UART_SETUP + """
de = Pin(22, Pin.OUT, value=0)
de.value(1)
u.write(bytes(range(40)))
u.flush()
de.value(0)
print('flushed')
"""

# The UART's raw interrupt status as the firmware sees it, with MicroPython's own handler off
# (NVIC), so nothing reads the FIFO behind this loop's back. Pin 21 toggles at each event.
RX_EVENTS = UART_SETUP + """
import machine
mem = machine.mem32
mark = Pin(21, Pin.OUT, value=0)
mem[0xe000e180] = 1 << 20          # NVIC_ICER: UART0 IRQ off
u.any()
print('rx events ready')
events = []
while len(events) < 3:
    ris = mem[0x4003403c]          # UARTRIS
    if ris & 0x50:                 # RXRIS or RTRIS
        mark.toggle()
        n = 0
        while not mem[0x40034018] & 0x10:   # UARTFR.RXFE
            mem[0x40034000]
            n += 1
        mem[0x40034044] = 0x50     # UARTICR
        events.append(('rt' if ris & 0x40 else 'rx', n))
print('events', events)
"""

# Nobody reads: the 32-entry FIFO fills, the rest is lost with the overrun flag.
OVERRUN = UART_SETUP + """
import machine
mem = machine.mem32
mem[0xe000e180] = 1 << 20
u.any()
mem[0x40034044] = 0x7ff
print('overrun ready')
while not mem[0x4003403c] & 0x400:   # UARTRIS.OERIS
    pass
while not mem[0x4003403c] & 0x40:    # then the receive timeout: the line is quiet
    pass
stored = []
while not mem[0x40034018] & 0x10:
    stored.append(mem[0x40034000])
print('stored', len(stored), 'flags', sum(1 for v in stored if v & 0xf00))
"""

GPIO = """
from machine import Pin
import time
out = Pin(15, Pin.OUT, value=1)
inp = Pin(14, Pin.IN)
print('out high')
t = time.ticks_ms()
while inp.value() != 1 and time.ticks_diff(time.ticks_ms(), t) < 60000:
    pass
print('in', inp.value())
out.value(0)
t = time.ticks_ms()
while inp.value() != 0 and time.ticks_diff(time.ticks_ms(), t) < 60000:
    pass
print('in', inp.value())
print('pulls', Pin(13, Pin.IN, Pin.PULL_UP).value(), Pin(12, Pin.IN, Pin.PULL_DOWN).value())
"""

TOGGLES = """
from machine import Pin
import time
p = Pin(16, Pin.OUT, value=0)
for i in range(6):
    p.toggle()
    time.sleep_us(200)
print('toggled')
"""


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    """One board for the tests that leave nothing behind: each runs its own device script."""
    require(FIRMWARE)
    board = Pico(firmware=FIRMWARE, workdir=tmp_path_factory.mktemp("pico"), watch=(16, 21, 22))
    try:
        board.wait_cdc(rb">>> ")
        yield board
    finally:
        board.stop()


@pytest.fixture
def line(pico):
    """UART0's host side back to following the firmware's settings; the trace position now."""
    pico.uart_host(follow=True, gap_us="t3.5")
    return pico.uart_trace()[1]


def run_script(pico, script, ready):
    """Start a device script with mpremote (it keeps running after mpremote leaves); wait for
    the line it prints when ready. Returns the CDC log position before it started."""
    mark = pico.cdc_mark()
    pico.mpremote("exec", "--no-follow", script)
    pico.wait_cdc(ready, start=mark)
    return mark


def char_ns(settings):
    """One character's time on the line for the firmware's UART settings."""
    bits = 1 + settings["bits"] + (settings["parity"] != "N") + settings["stop"]
    return bits * 1e9 / settings["baud_exact"]


def read_exactly(port, n, timeout=60):
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += port.read(n - len(got))
    return got


def by_dir(entries, direction):
    return [e for e in entries if e["dir"] == direction]


def quiet_trace(pico, since, n_host, after_ns=5e6):
    """The trace from `since` once the host has put n_host bytes on the line and the line has
    then been quiet for after_ns of simulated time (everything that follows from them is in)."""
    def settled():
        entries = pico.uart_trace(since)[0]
        host = by_dir(entries, "host")
        if len(host) < n_host:
            return None
        last = max(e["end_ns"] for e in entries)
        return entries if pico.sim_ns() > last + after_ns else None

    return pico.wait_for(settled, what="%d host bytes and a quiet line" % n_host)


# --- boot, flash, REPL ------------------------------------------------------------------------


def test_boots_from_a_blank_flash_to_the_repl_and_formats_littlefs(tmp_path):
    require(FIRMWARE)
    image = tmp_path / "flash.bin"
    with Pico(firmware=FIRMWARE, save_flash=image, workdir=tmp_path) as board:
        board.wait_cdc(rb"MicroPython .*; Raspberry Pi Pico with RP2040[\s\S]*>>> ")
        out = board.exec("import os, sys; s = os.statvfs('/'); print(sys.implementation.version[:2], s[0] * s[2], os.listdir('/'))")
        assert out.strip() == "(1, 25) %d []" % FS_BYTES
        assert board.stop() == 0
    flash = image.read_bytes()
    assert len(flash) == FLASH_BYTES
    assert b"littlefs" in flash[FLASH_BYTES - FS_BYTES:]


@pytest.mark.parametrize("kind", ["uf2", "elf"])
def test_boots_a_uf2_or_elf_firmware_file(tmp_path, kind):
    require(FIRMWARE)
    if kind == "uf2":
        firmware = tmp_path / "firmware.uf2"
        firmware.write_bytes(uf2.from_bin(FIRMWARE.read_bytes()))
    else:
        firmware = FIRMWARE.with_suffix(".elf")
        require(firmware)
    with Pico(firmware=firmware, workdir=tmp_path) as board:
        board.wait_cdc(rb"Raspberry Pi Pico with RP2040[\s\S]*>>> ")


def test_a_bad_firmware_file_is_one_line_on_stderr(tmp_path):
    require(FIRMWARE)
    bad = tmp_path / "firmware.uf2"
    bad.write_bytes(b"not a uf2 file")
    proc = subprocess.run(["node", str(RUNNER), "--bootrom", str(bootrom_path()), "--firmware", str(bad)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr == "pico: %s: a UF2 file is a whole number of 512-byte blocks\n" % bad


def test_mpremote_exec_over_the_usb_cdc(pico):
    assert pico.exec("print(6 * 7)").strip() == "42"
    # the flash chip's unique id (command 4Bh through the SSI), the runner's default
    assert pico.exec("import machine; print(machine.unique_id().hex())").strip() == "e6605838833a2b2c"
    # another client later: the host keeps the CDC open between clients
    assert pico.exec("import sys; print(sys.implementation._machine)").strip() == "Raspberry Pi Pico with RP2040"


def test_the_usb_host_holds_out_transfers_while_it_has_nothing_to_send(pico):
    before = pico.stats()
    pico.wait_for(lambda: pico.sim_ns() > before["sim_ns"] + 200e6, what="200 ms of simulated time")
    after = pico.stats()
    assert after["usb"]["out_transfers"] == before["usb"]["out_transfers"]
    assert after["busy_ns"] + after["wait_ns"] == pytest.approx(after["sim_ns"], abs=1000)


def test_mpremote_cp_survives_a_power_cycle_from_the_saved_flash(tmp_path):
    require(FIRMWARE)
    payload = os.urandom(3000)
    (tmp_path / "data.bin").write_bytes(payload)
    image = tmp_path / "flash.bin"
    with Pico(firmware=FIRMWARE, save_flash=image, workdir=tmp_path) as board:
        board.wait_cdc(rb">>> ")
        board.mpremote("cp", str(tmp_path / "data.bin"), ":data.bin")
        assert board.stop() == 0
        assert board.exit_info["exit"] == "stdin closed"
    with Pico(flash=image, workdir=tmp_path) as board:  # no firmware file: the flash alone
        board.wait_cdc(rb">>> ")
        board.mpremote("cp", ":data.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == payload
        board.reset()  # power cycle through the control channel: same flash
        board.wait_for(lambda: board.status()["boots"] == 2, what="second boot")
        assert board.exec("import os; print(os.stat('data.bin')[6])").strip() == str(len(payload))


def test_machine_reset_and_the_watchdog_reboot_and_the_board_comes_back(tmp_path):
    require(FIRMWARE)
    with Pico(firmware=FIRMWARE, workdir=tmp_path) as board:
        board.wait_cdc(rb">>> ")
        host, port = board.repl_url.rsplit("//", 1)[1].split(":")
        mark = board.cdc_mark()
        with socket.create_connection((host, int(port)), timeout=60) as repl:
            repl.sendall(b"\r\nimport machine; machine.reset()\r\n")
            while repl.recv(4096):  # the USB device goes away: the host's port closes
                pass
        board.wait_for(lambda: board.status()["boots"] == 2, what="reboot")
        board.wait_cdc(rb"Raspberry Pi Pico with RP2040", start=mark)
        assert board.exec("import machine; print(machine.reset_cause() == machine.WDT_RESET)").strip() == "True"
        # A watchdog nobody feeds resets the chip the same way.
        board.mpremote("exec", "--no-follow", "import machine; wdt = machine.WDT(timeout=100)")
        board.wait_for(lambda: board.status()["boots"] == 3, what="watchdog reboot")
        assert board.exec("import machine; print(machine.reset_cause() == machine.WDT_RESET)").strip() == "True"


def test_the_runner_stops_by_itself_at_its_time_limit(tmp_path):
    require(FIRMWARE)
    board = Pico(firmware=FIRMWARE, workdir=tmp_path, time_limit=3)
    try:
        assert board.wait_exit(120)["exit"] == "time limit 3 s"
        assert board.proc.returncode == 124
    finally:
        board.kill()


def test_the_runner_stops_when_its_parent_goes_away(tmp_path):
    require(FIRMWARE)
    # A parent that starts the runner with a pipe on its stdin, waits for it to listen, exits.
    parent = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,\n"
        "                     stderr=subprocess.DEVNULL, start_new_session=True)\n"
        "p.stdout.readline()\n"
        "print(p.pid)\n"
    )
    argv = ["node", str(RUNNER), "--bootrom", str(bootrom_path()), "--firmware", str(FIRMWARE)]
    out = subprocess.run([sys.executable, "-c", parent, *argv], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout)

    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 60
    while not gone():
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the runner kept running after its parent exited")
        time.sleep(0.1)


def test_a_missing_boot_rom_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MBNODE_RP2040_BOOTROM", str(tmp_path / "nowhere.bin"))
    outcome = pytest.fail.Exception if IN_CI else pytest.skip.Exception
    with pytest.raises(outcome) as info:
        require()
    assert "MBNODE_RP2040_BOOTROM" in str(info.value)


# --- UART0 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("baud,parity,name", [(19200, 0, "E"), (115200, None, "N")], ids=["19200-8E1", "115200-8N1"])
def test_uart_echo_with_bytes_one_character_time_apart(pico, line, baud, parity, name):
    run_script(pico, ECHO.format(baud=baud, parity=parity), rb"echo ready")
    device = pico.uart()["device"]
    assert abs(device["baud_exact"] - baud) < baud * 0.001  # the divisor's rounding: 115177 for 115200
    assert (device["bits"], device["parity"], device["stop"]) == (8, name, 1)
    char = char_ns(device)
    first, second = os.urandom(64), os.urandom(48)
    with pico.open_uart() as port:
        port.write(first)
        assert read_exactly(port, len(first)) == first
        port.write(second)
        assert read_exactly(port, len(second)) == second
    entries, _ = pico.uart_trace(line)
    host, rx, tx = by_dir(entries, "host"), by_dir(entries, "rx"), by_dir(entries, "tx")
    assert bytes(e["value"] for e in host) == first + second
    assert bytes(e["value"] for e in rx) == first + second
    assert all(e["result"] == "stored" and not (e.get("fe") or e.get("pe")) for e in rx)
    assert bytes(e["value"] for e in tx) == first + second
    for e in rx + tx:
        assert e["end_ns"] - e["start_ns"] == pytest.approx(char, abs=1)
    for i in range(1, len(rx)):
        if host[i]["burst"] == host[i - 1]["burst"]:  # one write: back to back on the wire
            assert rx[i]["end_ns"] - rx[i - 1]["end_ns"] == pytest.approx(char, abs=1)
    for a, b in zip(tx, tx[1:]):
        assert b["start_ns"] >= a["end_ns"] - 1  # one at a time, never faster than the line
    # A compliant master: the second request starts t3.5 after the echo of the first.
    t35 = 3.5 * char if baud <= 19200 else 1.75e6
    second_start = host[len(first)]["start_ns"]
    assert second_start >= tx[len(first) - 1]["end_ns"] + t35 - 1


def test_host_bytes_with_gaps_arrive_as_sent(pico, line):
    run_script(pico, ECHO.format(baud=19200, parity=0), rb"echo ready")
    char = char_ns(pico.uart()["device"])
    pico.uart_send(b"\x01\x02\x03", gap_us=500)
    rx = by_dir(quiet_trace(pico, line, 3), "rx")
    assert [e["value"] for e in rx] == [1, 2, 3]
    for a, b in zip(rx, rx[1:]):
        assert b["start_ns"] - a["start_ns"] == pytest.approx(char + 500e3, abs=1)


def test_flush_returns_after_the_last_stop_bit(pico, line):
    _, since = pico.edges()
    run_script(pico, FLUSH.format(baud=19200, parity=0), rb"flushed")
    char = char_ns(pico.uart()["device"])
    tx = by_dir(pico.uart_trace(line)[0], "tx")
    assert [e["value"] for e in tx] == list(range(40))
    for a, b in zip(tx, tx[1:]):
        assert b["start_ns"] - a["start_ns"] == pytest.approx(char, abs=1)  # the FIFO kept the line busy
    de = [e for e in pico.edges(since, pins=[22])[0]]
    assert [e["level"] for e in de] == [1, 0]
    assert de[0]["t_ns"] <= tx[0]["start_ns"]
    assert de[1]["t_ns"] >= tx[-1]["end_ns"]  # DE never falls before the last stop bit is out


def test_rx_interrupts_at_the_fifo_level_and_after_the_receive_timeout(pico, line):
    _, since = pico.edges()
    mark = run_script(pico, RX_EVENTS.format(baud=19200, parity=0), rb"rx events ready")
    with pico.open_uart() as port:
        port.write(bytes(range(10)))
        pico.wait_cdc(rb"events \[.*\]", start=mark)
    assert b"events [('rx', 4), ('rx', 4), ('rt', 2)]" in pico.cdc_bytes()[mark:]
    rx = by_dir(pico.uart_trace(line)[0], "rx")
    assert len(rx) == 10
    bit = 1e9 / pico.uart()["device"]["baud_exact"]
    marks = [e["t_ns"] for e in pico.edges(since, pins=[21])[0]]
    assert len(marks) == 3
    assert rx[3]["t_ns"] <= marks[0] < rx[4]["t_ns"]  # RXINTR once 4 characters are in the FIFO
    assert rx[7]["t_ns"] <= marks[1] < rx[8]["t_ns"]
    assert rx[9]["t_ns"] + 32 * bit <= marks[2] < rx[9]["t_ns"] + 32 * bit + 11 * bit  # RTINTR: 32 bit periods


def test_rx_fifo_overrun_loses_what_does_not_fit(pico, line):
    mark = run_script(pico, OVERRUN.format(baud=115200, parity=None), rb"overrun ready")
    pico.uart_send(bytes(range(40)))
    pico.wait_cdc(rb"stored \d+ flags \d+", start=mark)
    assert b"stored 32 flags 0" in pico.cdc_bytes()[mark:]
    rx = by_dir(pico.uart_trace(line)[0], "rx")
    assert [e["result"] for e in rx] == ["stored"] * 32 + ["overrun"] * 8


def test_a_host_with_other_line_settings_gets_garbled_bytes(pico, line):
    run_script(pico, ECHO.format(baud=19200, parity=0), rb"echo ready")  # the firmware: 19200 8E1
    sent = b"hello world"
    pico.uart_host(baud=19200, parity="N")  # the host: 8N1, one bit shorter per character
    since = pico.uart_trace()[1]
    pico.uart_send(sent)
    rx = by_dir(quiet_trace(pico, since, len(sent)), "rx")
    assert bytes(e["value"] for e in rx) != sent
    assert any(e.get("fe") for e in rx) and any(e.get("pe") for e in rx)

    pico.uart_host(baud=19200, parity="O")  # same length, wrong parity: right values, all flagged
    since = pico.uart_trace()[1]
    pico.uart_send(sent)
    rx = by_dir(quiet_trace(pico, since, len(sent)), "rx")
    assert bytes(e["value"] for e in rx) == sent
    assert all(e.get("pe") and not e.get("fe") for e in rx)


# --- GPIO -------------------------------------------------------------------------------------


def test_gpio_levels_both_ways(pico):
    mark = run_script(pico, GPIO, rb"out high")
    pin15 = pico.gpio([15])[0]
    assert (pin15["level"], pin15["output"], pin15["function"]) == (1, True, "sio")
    pico.drive(14, 1)  # a switch to 3V3 on GP14
    pico.wait_cdc(rb"in 1", start=mark)
    pico.wait_for(lambda: pico.level(15) == 0, what="GP15 low")
    pico.drive(14, 0)
    pico.wait_cdc(rb"in 0", start=mark)
    pico.drive(14, None)
    pico.wait_cdc(rb"pulls 1 0", start=mark)  # released pins read their pull-up / pull-down


def test_edge_log_has_simulated_timestamps(pico):
    _, since = pico.edges()
    run_script(pico, TOGGLES, rb"toggled")
    edges = pico.edges(since, pins=[16])[0]
    assert [e["level"] for e in edges] == [1, 0, 1, 0, 1, 0]
    for a, b in zip(edges, edges[1:]):
        assert 200e3 <= b["t_ns"] - a["t_ns"] < 1e6  # sleep_us(200) between toggles
