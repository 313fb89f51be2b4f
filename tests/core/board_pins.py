"""The ESP32/RP2 pin boards on the unix port with fake machine/network modules (tests/fakes):
Modbus writes drive output pins, input pins and ADCs show up in Modbus reads, Wi-Fi is joined
before the TCP slave starts, and the RS-485 UART answers RTU with its driver enable raised
around the write and its own echo dropped. Run with MICROPYPATH=fakes:boards/<board>:firmware."""

import json
import socket
import struct
import sys

import board
import machine
import network
from mbnode import app, config

PORT = int(sys.argv[1])
CONFIG = sys.argv[2]
DO, DI, AI, AO = board._board.pins

failures = []


def check(what, got, want):
    if got != want:
        failures.append("%s: got %r, want %r" % (what, got, want))


def rtu_frame(pdu):
    from mbnode.crc import crc16

    f = bytearray(b"\x01" + pdu)
    c = crc16(f, 0, len(f))
    return bytes(f + bytearray([c & 0xFF, c >> 8]))


def serve_until_sent(loop, limit_ms=2000):
    """Run the loop until the UART has sent a frame (its flush is logged), at most limit_ms."""
    import time

    deadline = time.ticks_add(time.ticks_ms(), limit_ms)
    while ("flush",) not in machine.LOG and time.ticks_diff(deadline, time.ticks_ms()) > 0:
        loop.step(10)


def check_rtu(loop, given):
    from mbnode.crc import crc16

    schema = board.CONFIG_SCHEMA
    uart_id, de = schema["rtu_uart"][0], schema["rtu_de"][0]
    uart = machine.UARTS[uart_id]
    s = uart.settings
    check("UART settings", (s["baudrate"], s["bits"], s["parity"], s["stop"], s["txbuf"], s["rxbuf"], s["timeout"]),
          (9600, 8, 1, 1, 512, 512, 0))
    check("DE idle low", machine.PINS[de].level, 0)
    uart.echo = True
    del machine.LOG[:]
    uart.feed(rtu_frame(b"\x03\x00\x01\x00\x01"))  # AO 1, set to 0x03FF over TCP above
    serve_until_sent(loop)
    events = [e for e in machine.LOG if e[0] != "pin" or e[1] == de]
    check("DE up, one write, flush (last stop bit out), DE down",
          [e[0] if e[0] != "pin" else "de%d" % e[2] for e in events], ["de1", "write", "flush", "de0"])
    reply = events[1][1] if len(events) > 1 else b""
    check("RTU reply", reply[:5], b"\x01\x03\x02\x03\xff")
    check("reply CRC", crc16(reply, 0, len(reply)), 0)
    check("echo drained", uart.any(), 0)
    # 49 bytes at 9600 baud (57 ms on the wire): read in blocks, not as they trickle in. The
    # interrupt wakes the loop at 4 bytes, the length is known at 7, the rest is read when due:
    # three reads, and one for the echo (a byte landing between two reads of a look may add
    # one). Waking per interrupt would take 13.
    del machine.LOG[:]
    uart.reads = 0
    uart.feed(rtu_frame(b"\x10\x10\x00\x00\x14\x28" + bytes(range(40))))
    serve_until_sent(loop)
    writes = [e[1] for e in machine.LOG if e[0] == "write"]
    check("FC16 x20 answered", writes[0][:6] if writes else b"", b"\x01\x10\x10\x00\x00\x14")
    check("FC16 x20 read in a few blocks", uart.reads <= 6, True)
    check("no read asked for more than any() said", [e for e in machine.LOG if e[0] == "read waits"], [])


def main():
    with open(CONFIG) as f:
        given = json.load(f)
    given["tcp"]["host"] = "127.0.0.1"
    given["tcp"]["port"] = PORT
    given["board"]["wifi_ssid"] = "plant"
    given["board"]["wifi_password"] = "secret"
    given["rtu"] = {"enabled": True, "baud": 9600, "parity": "O"}
    loop, ready = app.build(config.validate(given, board.CONFIG_SCHEMA), board)
    check("wifi joined", network.joined, [("plant", "secret")])
    check("ready line names board and ip", ready.endswith("board %s ip 10.0.0.5" % board._board.name), True)
    c = socket.socket()
    c.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    tid = [0]

    def request(pdu):
        tid[0] += 1
        c.write(struct.pack(">HHHB", tid[0], 0, len(pdu) + 1, 1) + pdu)
        for _ in range(5):
            loop.step(20)
        return c.recv(300)[7:]

    loop.step(20)
    check("coil 2 on", request(b"\x05\x00\x02\xff\x00"), b"\x05\x00\x02\xff\x00")
    check("DO pin of coil 2", machine.PINS[DO[2]].level, 1)
    check("DO pin of coil 1 untouched", machine.PINS[DO[1]].level, 0)
    request(b"\x0f\x00\x00\x00\x08\x01\x81")
    check("FC15 drives pins", [machine.PINS[p].level for p in DO], [1, 0, 0, 0, 0, 0, 0, 1])
    check("AO 1 full scale", request(b"\x06\x00\x01\x03\xff"), b"\x06\x00\x01\x03\xff")
    check("PWM duty of AO 1", machine.PINS[AO[1]].pwm.duty, 65535)
    request(b"\x06\x00\x00\x02\x00")
    check("PWM duty of AO 0", machine.PINS[AO[0]].pwm.duty, 512 * 65535 // 1023)
    check("coil 8 absent on this board", request(b"\x05\x00\x08\xff\x00"), b"\x85\x02")
    machine.PINS[DI[0]].level = 1
    machine.PINS[DI[3]].level = 1
    # ADC objects are held by the firmware's PinIO; reach them through the loop's timers.
    io = [t for t in loop.timers if hasattr(t, "ai")][0]
    for adc, raw in zip(io.ai, (100, 40000, 65535)):
        adc.raw = raw
    import time

    time.sleep_ms(30)  # let the input scan come due, then let the loop run it
    loop.step(0)
    check("DI pins in FC02", request(b"\x02\x00\x00\x00\x04"), b"\x02\x01\x09")
    check("ADC in FC04", request(b"\x04\x00\x00\x00\x03"), b"\x04\x06" + struct.pack(">3H", 100, 40000, 65535))
    check_rtu(loop, given)
    for f in failures:
        print("FAIL", f)
    print("%d passed, %d failed" % (1 if not failures else 0, 1 if failures else 0))
    return len(failures)


sys.exit(1 if main() else 0)
