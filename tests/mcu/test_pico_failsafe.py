"""Fail-safe outputs, the status LED and the watchdog on the emulated Pico (docs/mcu-emulation.md):
mbnode deployed with `mbnode deploy` onto the stock MicroPython firmware, a counting pymodbus
master on UART0, the pin levels read from the runner's GPIO pad model (edges in simulated time),
the watchdog the runner's (a watchdog reboot counts as a boot).

One board runs the whole story in order: the master commands every DO on, goes quiet, the DO
pins take their safe values timeout_ms (simulated) after the request left the wire, held pins
keep theirs, the LED flashes the fail-safe pattern; a read ends fail-safe and the pins stay; the
watchdog, started wdt_delay_s after boot, is fed while mbnode runs (no reboot), and resets the
board once the loop stops (Ctrl-C on the REPL); after that reboot a Ctrl-C within the delay
leaves the board at its REPL, no watchdog started.
"""

import pytest

from picotest import DO_PINS, Master, deployed, line_settings, wait_ready

LED_PIN = 25
TIMEOUT_MS = 500
WDT_MS = 2000
DELAY_S = 10
CFG = {
    "rtu": {"baud": 115200, "parity": "N"},
    "failsafe": {"timeout_ms": TIMEOUT_MS, "do": {"1": "on", "2": "hold"}},
    "board": {"wdt_ms": WDT_MS, "wdt_delay_s": DELAY_S},
}
SAFE = [0, 1, 1, 0, 0, 0, 0, 0]  # coil 1 on, coil 2 held (it was on), the rest off
MS = 1000000  # ns


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    pico, r = deployed(tmp_path_factory.mktemp("failsafe"), CFG)
    started = pico.sim_ns()  # mbnode printed its ready line before this
    pico.watch([LED_PIN])
    master = Master(pico, *line_settings(CFG))
    yield pico, master, r, started
    master.close()
    pico.stop()


def levels(pico, pins):
    return [p["level"] for p in pico.gpio(pins)]


def ctrl_c(pico):
    """Ctrl-C twice on the USB CDC REPL, as mpremote sends before it takes over."""
    import serial

    port = serial.serial_for_url(pico.repl_url, timeout=2)
    try:
        port.write(b"\x03\x03")
        port.flush()
    finally:
        port.close()


def test_failsafe_led_and_watchdog(node):
    pico, master, r, started = node
    ready = r.stdout.strip().splitlines()[-1]
    assert "failsafe %dms" % TIMEOUT_MS in ready and "wdt %dms-after-%ds" % (WDT_MS, DELAY_S) in ready, ready
    boots = pico.status()["boots"]

    # The master commands every DO on.
    _, since = pico.uart_trace()
    assert not master.write_coils(0, [True] * 8, device_id=1).isError()
    assert levels(pico, DO_PINS) == [1] * 8
    entries, _ = pico.uart_trace(since)
    request_end = max(e["end_ns"] for e in entries if e["dir"] == "host")
    _, edge_since = pico.edges(pins=DO_PINS)

    # Quiet: the pins go safe, not before timeout_ms of simulated time after the request.
    pico.wait_for(lambda: levels(pico, DO_PINS) == SAFE, 60, "DO pins at their safe values")
    edges, _ = pico.edges(since=edge_since, pins=DO_PINS)
    falls = [e for e in edges if e["level"] == 0]
    assert {e["pin"] for e in falls} == {DO_PINS[i] for i in (0, 3, 4, 5, 6, 7)}, edges
    assert not [e for e in edges if e["pin"] in (DO_PINS[1], DO_PINS[2])], edges  # on, and held: no edge
    assert min(e["t_ns"] for e in falls) - request_end >= TIMEOUT_MS * MS, (falls, request_end)

    # The LED in fail-safe: a short flash, then dark (the fault pattern is 100 ms on, 100 off).
    _, led_since = pico.edges(pins=[LED_PIN])
    pico.wait_for(lambda: len(pico.edges(since=led_since, pins=[LED_PIN])[0]) >= 5, 60, "LED flashes")
    led, _ = pico.edges(since=led_since, pins=[LED_PIN])
    spans = [(a["level"], b["t_ns"] - a["t_ns"]) for a, b in zip(led, led[1:])]
    on = [d for lvl, d in spans if lvl == 1]
    off = [d for lvl, d in spans if lvl == 0]
    assert on and off and max(on) < 300 * MS and min(off) > 600 * MS, spans

    # A read ends fail-safe; the pins stay until written; the LED is steadily on again.
    rr = master.read_coils(0, count=8, device_id=1)
    assert not rr.isError() and list(rr.bits[:8]) == [bool(v) for v in SAFE]
    pico.wait_for(lambda: pico.level(LED_PIN) == 1, 30, "LED on")
    t = pico.sim_ns()
    pico.wait_for(lambda: pico.sim_ns() - t > 3 * TIMEOUT_MS * MS, 60, "1.5 s of simulated time")
    assert levels(pico, DO_PINS) == SAFE
    assert not master.write_coils(0, [True] * 8, device_id=1).isError()
    assert levels(pico, DO_PINS) == [1] * 8

    # The watchdog runs (wdt_delay_s after boot) and is fed: no reboot well past delay + timeout.
    pico.wait_for(lambda: pico.sim_ns() - started > (DELAY_S * 1000 + 3 * WDT_MS) * MS, 120,
                  "simulated time past the watchdog's delay and three timeouts")
    assert pico.status()["boots"] == boots
    assert master.sent == master.answered

    # The loop stopped (Ctrl-C: mbnode returns to the REPL): the watchdog resets the board.
    stopped = pico.sim_ns()
    mark = pico.cdc_mark()
    ctrl_c(pico)
    pico.wait_for(lambda: pico.status()["boots"] == boots + 1, 120, "a watchdog reboot")
    wait_ready(pico, mark)
    booted = pico.status()["cdc_opened_ns"]  # 13.5 ms after the reboot
    assert booted - stopped < (WDT_MS + 500) * MS, (stopped, booted)

    # Within the delay, Ctrl-C leaves the board at its REPL: no watchdog was started yet.
    mark = pico.cdc_mark()
    ctrl_c(pico)
    pico.wait_cdc(rb">>> ", timeout=60, start=mark)
    interrupted = pico.sim_ns()
    assert interrupted - booted < DELAY_S * 1000 * MS, "Ctrl-C came after the watchdog's delay: nothing proven"
    pico.wait_for(lambda: pico.sim_ns() - booted > (DELAY_S * 1000 + 2 * WDT_MS) * MS, 120,
                  "simulated time past the delay and two timeouts")
    assert pico.status()["boots"] == boots + 1
