"""The Pico board on the unix port with the fake machine module (tests/fakes): fail-safe drives
the DO and AO pins to their safe values, the status LED (GP25) shows traffic and fail-safe by
its pattern, and the watchdog starts after its delay and is fed while the loop turns.

Run with MICROPYPATH=.frozen:tests/fakes:tests/core:boards/pico:boards/common:firmware. Prints
"1 passed, 0 failed" or the failures."""

import struct
import time

import board
import machine
from boardtest import check, report, rtu, run_until
from mbnode import startup, config

TIMEOUT_MS = 600


def led_edges(first):
    return [e[2] for e in machine.LOG[first:] if e[0] == "pin" and e[1] == 25]


def main():
    given = {"board": {"wdt_ms": 1200, "wdt_delay_s": 1},
             "failsafe": {"timeout_ms": TIMEOUT_MS, "do": {"1": "on", "2": "hold"}, "ao": {"1": 500}}}
    cfg = config.validate(given, *board.config_rules())
    b = cfg["board"]
    check("LED pin", b["led_pin"], 25)
    started = time.ticks_ms()
    loop, ready = startup.build(cfg, board)
    print(ready)
    check("ready line", ("failsafe %dms" % TIMEOUT_MS in ready, "wdt 1200ms-after-1s" in ready), (True, True))
    uart = machine.UARTS[b["rtu_uart"]]
    DO, AO = b["do_pins"], b["ao_pins"]
    check("LED on at start", machine.PINS[25].level, 1)
    check("no watchdog before its delay", machine.WDT.made, [])

    # A master writes every DO on and both AO; the LED flickers for it.
    first = len(machine.LOG)
    n = len(DO)
    sent = time.ticks_ms()  # fail-safe counts from the last request, served after this
    check("FC15", rtu(loop, uart, struct.pack(">BHHBB", 15, 0, n, 1, 0xFF)), struct.pack(">BHH", 15, 0, n))
    sent = time.ticks_ms()
    check("FC16", rtu(loop, uart, struct.pack(">BHHBHH", 16, 0, 2, 4, 700, 800)), struct.pack(">BHH", 16, 0, 2))
    check("DO pins on", [machine.PINS[p].level for p in DO], [1] * n)
    run_until(loop, lambda: led_edges(first)[-1:] == [1], 1000)
    check("LED flickers off and on for traffic", led_edges(first)[:2], [0, 1])

    # Silence: the pins go to their safe values; the LED flashes once a second.
    run_until(loop, lambda: machine.PINS[DO[0]].level == 0, 3000)
    waited = time.ticks_diff(time.ticks_ms(), sent)
    check("DO pins safe (off, on, held, off...)", [machine.PINS[p].level for p in DO], [0, 1, 1] + [0] * (n - 3))
    check("AO pins safe (0, 500)", [machine.PINS[p].pwm.duty for p in AO], [0, 500 * 65535 // 1023])
    check("not before the timeout", waited >= TIMEOUT_MS, True)
    first = len(machine.LOG)
    run_until(loop, lambda: len(led_edges(first)) >= 4, 3000)
    check("LED in fail-safe: short flash, long dark", led_edges(first)[:4] in ([1, 0, 1, 0], [0, 1, 0, 1]), True)

    # The watchdog started after its delay and is fed while the loop turns.
    run_until(loop, lambda: machine.WDT.made and machine.WDT.made[0].feeds >= 3, 4000)
    dog = machine.WDT.made[0] if machine.WDT.made else None
    check("watchdog started with wdt_ms", dog and dog.timeout, 1200)
    check("watchdog fed", dog and dog.feeds >= 3, True)
    check("watchdog started after wdt_delay_s", time.ticks_diff(time.ticks_ms(), started) >= 1000, True)

    # A read ends fail-safe; the pins stay until written.
    check("FC01", rtu(loop, uart, struct.pack(">BHH", 1, 0, n)), struct.pack(">BBB", 1, 1, 0b110))
    check("DO pins stay safe", [machine.PINS[p].level for p in DO], [0, 1, 1] + [0] * (n - 3))
    run_until(loop, lambda: machine.PINS[25].level == 1, 1000)
    check("LED back on", machine.PINS[25].level, 1)
    return report()


main()
