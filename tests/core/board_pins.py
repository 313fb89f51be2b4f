"""A pin board on the unix port with fake machine/network modules (tests/fakes), from its
default configuration: Modbus writes drive the output pins, input pins and ADCs show up in
Modbus reads, the RS-485 UART answers RTU with its driver enable raised around the write and its
own echo dropped, and on Wi-Fi boards Modbus TCP serves once Wi-Fi has joined.

Run with MICROPYPATH=.frozen:tests/fakes:tests/core:boards/<board>:boards/common:firmware, argument: a free
TCP port. Prints "1 passed, 0 failed" or the failures."""

import struct
import sys

import board
import machine
import network
import pinio
from boardtest import Tcp, check, report, rtu, run_until
from mbnode import startup, config
from parts import made

PORT = int(sys.argv[1])


def main():
    rules = board.config_rules()
    given = {"rtu": {"baud": 9600, "parity": "O"}, "tcp": {"host": "127.0.0.1", "port": PORT}}
    if board.WIFI:
        given["board"] = {"wifi_ssid": "plant", "wifi_password": "secret"}
    else:
        del given["tcp"]
    cfg = config.validate(given, *rules)
    b = cfg["board"]
    DO, DI, AI, AO = b["do_pins"], b["di_pins"], b["ai_pins"], b["ao_pins"]
    pin_io = made(pinio, "PinIO")
    loop, ready = startup.build(cfg, board)
    print(ready)
    check("ready line names the board", ("board %s" % board.NAME) in ready, True)
    uart = machine.UARTS[b["rtu_uart"]]
    s = uart.settings
    # timeout 0: a read never waits on the line (docs/rtu.md)
    check("UART settings", (s["baudrate"], s["bits"], s["parity"], s["stop"], s["txbuf"], s["rxbuf"], s["timeout"]),
          (9600, 8, 1, 1, 256, 512, 0))
    check("UART pins", (s["tx"].id, s["rx"].id), (b["rtu_tx"], b["rtu_rx"]))
    de = b["rtu_de"]
    check("DE idle low", machine.PINS[de].level, 0)

    # Outputs: FC15 over every DO, FC05 on the last one, FC06 on the AOs.
    n = len(DO)
    pattern = [(i + 1) % 2 for i in range(n)]
    bits = sum(v << i for i, v in enumerate(pattern))
    nbytes = (n + 7) // 8
    check("FC15", rtu(loop, uart, struct.pack(">BHHB", 15, 0, n, nbytes) + bits.to_bytes(nbytes, "little")),
          struct.pack(">BHH", 15, 0, n))
    check("DO pins follow FC15", [machine.PINS[p].level for p in DO], pattern)
    last = 0 if pattern[-1] else 1
    rtu(loop, uart, struct.pack(">BHH", 5, n - 1, 0xFF00 if last else 0))
    check("DO pin of the last coil follows FC05", machine.PINS[DO[-1]].level, last)
    check("coil past the pin map absent", rtu(loop, uart, struct.pack(">BHH", 5, n, 0xFF00)), b"\x85\x02")
    for i, p in enumerate(AO):
        value = 0x3FF if i == len(AO) - 1 else 0x200
        check("FC06 AO %d" % i, rtu(loop, uart, struct.pack(">BHH", 6, i, value)), struct.pack(">BHH", 6, i, value))
        check("PWM duty of AO %d" % i, machine.PINS[p].pwm.duty, value * 65535 // 1023)
    if not AO:
        check("no AO: holding 0 absent", rtu(loop, uart, struct.pack(">BHH", 6, 0, 1)), b"\x86\x02")

    # Inputs: DI levels and ADC readings reach FC02 / FC04 at the next scan.
    levels = [i % 2 for i in range(len(DI))]
    for p, v in zip(DI, levels):
        machine.PINS[p].level = v
    io = pin_io[0]
    raws = [100 + 20000 * i for i in range(len(AI))]
    for adc, raw in zip(io.ai, raws):
        adc.raw = raw
    # The input scan runs every scan_ms for as long as the board runs: it must not allocate.
    import micropython
    import time

    now = time.ticks_ms()
    io.next = now
    micropython.heap_lock()
    try:
        io.tick(now)
        scanned = True
    except MemoryError:
        scanned = False
    finally:
        micropython.heap_unlock()
    check("input scan allocation-free", scanned, True)
    want = sum(v << i for i, v in enumerate(levels))
    check("DI pins in FC02", rtu(loop, uart, struct.pack(">BHH", 2, 0, len(DI))), bytes([2, 1, want]))
    check("ADC in FC04", rtu(loop, uart, struct.pack(">BHH", 4, 0, len(AI))),
          bytes([4, 2 * len(AI)]) + struct.pack(">%dH" % len(AI), *raws))

    # The RS-485 line discipline: DE up, one write, flush, DE down; the echo is drained.
    uart.echo = True
    del machine.LOG[:]
    check("RTU memory register", rtu(loop, uart, struct.pack(">BHH", 3, 0x1000, 1)), b"\x03\x02\x00\x00")
    events = [e for e in machine.LOG if e[0] != "pin" or e[1] == de]
    check("DE up, one write, flush (last stop bit out), DE down",
          [e[0] if e[0] != "pin" else "de%d" % e[2] for e in events], ["de1", "write", "flush", "de0"])
    check("echo drained", uart.any(), 0)
    uart.echo = False
    # 49 bytes at 9600 baud (57 ms on the wire): read in blocks, not as they trickle in. The
    # interrupt wakes the loop at 4 bytes, the length is known at 7, the rest is read when due:
    # three reads (a byte landing between two reads of a look may add one). Waking per
    # interrupt would take 13.
    del machine.LOG[:]
    uart.reads = 0
    check("FC16 x20 answered", rtu(loop, uart, b"\x10\x10\x00\x00\x14\x28" + bytes(range(40))),
          b"\x10\x10\x00\x00\x14")
    check("FC16 x20 read in a few blocks", uart.reads <= 5, True)
    check("no read asked for more than any() said", [e for e in machine.LOG if e[0] == "read waits"], [])

    if board.WIFI:
        check("ready line while joining", ready.endswith("board %s wifi connecting" % board.NAME), True)
        check("Wi-Fi joined", run_until(loop, lambda: board.addresses() == ["10.0.0.5"], 5000), True)
        check("joined with the configured credentials", network.joined, [("plant", "secret")])
        check("ready words now", board.describe(), ["board " + board.NAME, "ip 10.0.0.5"])
        c = Tcp(loop, PORT)
        check("TCP FC06 memory", c.request(b"\x06\x10\x00\x12\x34"), b"\x06\x10\x00\x12\x34")
        check("RTU sees it", rtu(loop, uart, struct.pack(">BHH", 3, 0x1000, 1)), b"\x03\x02\x12\x34")
    else:
        check("no TCP on a board without network", "tcp" in ready, False)
    return report()


sys.exit(main())
