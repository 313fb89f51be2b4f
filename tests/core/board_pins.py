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


def check_rtu(loop, given):
    from mbnode.crc import crc16

    schema = board.CONFIG_SCHEMA
    uart_id, de = schema["rtu_uart"][0], schema["rtu_de"][0]
    uart = machine.UARTS[uart_id]
    s = uart.settings
    check("UART settings", (s["baudrate"], s["bits"], s["parity"], s["stop"], s["txbuf"], s["rxbuf"]),
          (9600, 8, 1, 1, 512, 512))
    check("DE idle low", machine.PINS[de].level, 0)
    uart.echo = True
    req = bytearray(b"\x01\x03\x00\x01\x00\x01")  # AO 1, set to 0x03FF over TCP above
    c = crc16(req, 0, 6)
    req += bytes([c & 0xFF, c >> 8])
    del machine.LOG[:]
    uart.rxq += req
    for _ in range(5):
        loop.step(10)
    events = [e for e in machine.LOG if e[0] != "pin" or e[1] == de]
    check("DE up, one write, flush, DE down",
          [e[0] if e[0] != "pin" else "de%d" % e[2] for e in events], ["de1", "write", "flush", "de0"])
    reply = events[1][1] if len(events) > 1 else b""
    check("RTU reply", reply[:5], b"\x01\x03\x02\x03\xff")
    check("reply CRC", crc16(reply, 0, len(reply)), 0)
    check("echo drained", len(uart.rxq), 0)


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
