"""The io section's modes on a pin board (PinIO as the field side) on the unix port with fake
machine modules (tests/fakes): a counter fed by the pin's interrupt (Pin.irq, hard), an
inverted level, inverted and pulse outputs on their pins, a power-on AO with its PWM frequency,
a scaled AI, and on the RP2040 boards the temperature sensor (ADC 4). Read over RTU through the
fake UART.

Run with MICROPYPATH=.frozen:tests/fakes:tests/core:boards/<board>:boards/common:firmware.
Prints "1 passed, 0 failed" or the failures."""

import struct
import sys

import board
import machine
from boardtest import check, report, rtu, run_until
from mbnode import startup, config


def main():
    rp2040 = board.CHIP == "rp2040"
    io = {
        "di": [{"channel": 0, "mode": "counter", "position": 1}, {"channel": 1, "invert": True}],
        "ai": [{"channel": 0, "period_ms": 1, "high": 1000}],
        "do": [{"channel": 0, "power_on": 1, "invert": True}, {"channel": 1, "pulse_ms": 30}],
        "ao": [{"channel": 0, "power_on": 300, "freq": 5000}] if board.NAME != "esp32-c3" else [],
    }
    given = {"rtu": {"baud": 115200}, "io": io}
    if rp2040:
        given["channels"] = {"input_registers": ["0x0000-0x0003"]}
        io["ai"].append({"channel": 3, "source": "temp", "period_ms": 1})
    cfg = config.validate(given, *board.config_rules())
    b = cfg["board"]
    DO, DI, AI, AO = b["do_pins"], b["di_pins"], b["ai_pins"], b["ao_pins"]
    loop, ready = startup.build(cfg, board)
    uart = machine.UARTS[b["rtu_uart"]]
    check("ready line", "io_modes %d" % (6 + rp2040 - (board.NAME == "esp32-c3")) in ready, True)
    check("power-on DO 1, inverted: pin low", machine.PINS[DO[0]].level, 0)
    check("power-on coils", rtu(loop, uart, struct.pack(">BHH", 1, 0, 2)), b"\x01\x01\x01")
    if AO:
        pwm = machine.PINS[AO[0]].pwm
        check("power-on AO on its PWM, frequency", (pwm.duty, pwm.freq_hz), (300 * 65535 // 1023, 5000))
    # Edges: the fake pin runs its interrupt handler on a level change, as the chip would.
    pin = machine.PINS[DI[0]]
    for _ in range(5):
        pin.value(0)
        pin.value(1)
    check("5 rising edges counted",
          run_until(loop, lambda: rtu(loop, uart, struct.pack(">BHH", 3, 0x1000, 2)) == b"\x03\x04\x00\x05\x00\x00",
                    2000), True)
    machine.PINS[DI[1]].level = 1
    check("inverted DI", run_until(loop, lambda: rtu(loop, uart, struct.pack(">BHH", 2, 1, 1)) == b"\x02\x01\x00",
                                   2000), True)
    pin_io = board.field()
    pin_io.ai[0].raw = 65535
    check("scaled AI", run_until(loop, lambda: rtu(loop, uart, struct.pack(">BHH", 4, 0, 1)) == b"\x04\x02\x03\xe8",
                                 2000), True)
    if rp2040:
        temp = [c.adc for c in _ai_channels(loop) if c.off == 2 * 320 + 6][0]
        temp.raw = 14016  # 0.7058 V: 27.1 degC
        check("temperature sensor in 0.1 degC (27.1)",
              run_until(loop, lambda: rtu(loop, uart, struct.pack(">BHH", 4, 3, 1)) == b"\x04\x02\x01\x0f", 2000), True)
    # A pulse output: on at the write, off on its own.
    rtu(loop, uart, struct.pack(">BHH", 5, 1, 0xFF00))
    check("pulse DO on", machine.PINS[DO[1]].level, 1)
    check("pulse DO falls back", run_until(loop, lambda: machine.PINS[DO[1]].level == 0, 2000), True)
    check("its coil reads 0", rtu(loop, uart, struct.pack(">BHH", 1, 1, 1)), b"\x01\x01\x00")
    return report()


def _ai_channels(loop):
    from mbnode.iomodes import IoModes

    return [t for t in loop.timers if isinstance(t, IoModes)][0].ai


sys.exit(main())
