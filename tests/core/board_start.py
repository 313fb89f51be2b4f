"""A pin board keeps serving when something optional fails at start (docs/boards.md), on the unix
port with the fake machine/network modules (tests/fakes).

    board_start.py wifi PORT          Wi-Fi refused twice, then joined; later lost and joined
                                      again: RTU answers all along, TCP once joined
    board_start.py wifi_timeout PORT  an attempt that never ends is given up after wifi_timeout
    board_start.py broker PORT BROKER the MQTT broker refuses connections: RTU and TCP serve
    board_start.py no_umqtt PORT      mqtt enabled but umqtt.simple missing: the bridge stays off
    board_start.py bad_config FILE    a broken config file: one line, then the board's defaults (0x200F: 1)
    board_start.py mqtt_checks FILE   an "mqtt" section that is off: checked, its modules unloaded
    board_start.py system PORT NTP    the system registers: MAC, IPv4 once joined, NTP, temperature, reboot

The pytest side (tests/test_board_start.py) checks the printed lines; this script checks the
serving and prints "1 passed, 0 failed" or the failures."""

import struct
import sys

import board
import machine
import network
from boardtest import Tcp, check, report, rtu, run_until
from mbnode import startup

READ_MEM = struct.pack(">BHH", 3, 0x1000, 1)


def build(given):
    from mbnode import config

    cfg = config.validate(given, *board.config_rules())
    loop, ready = startup.build(cfg, board)
    print(ready)
    return cfg, loop, ready


def uart_of(cfg):
    return machine.UARTS[cfg["board"]["rtu_uart"]]


def wifi(port):
    network.ATTEMPTS[:] = ["no_ap", "wrong_password", "ok"]
    cfg, loop, ready = build({"tcp": {"host": "127.0.0.1", "port": port},
                              "board": {"wifi_ssid": "plant", "wifi_password": "secret", "wifi_timeout": 1}})
    check("ready while joining", "wifi connecting" in ready and "tcp 127.0.0.1:%d" % port in ready, True)
    uart = uart_of(cfg)
    check("RTU answers before Wi-Fi is up", rtu(loop, uart, READ_MEM), b"\x03\x02\x00\x00")
    check("joined on the third attempt", run_until(loop, lambda: board.addresses() == ["10.0.0.5"], 10000), True)
    check("attempts", network.joined, [("plant", "secret")] * 3)
    check("RTU still answers", rtu(loop, uart, READ_MEM), b"\x03\x02\x00\x00")
    check("TCP answers", Tcp(loop, port).request(b"\x06\x10\x00\x00\x07"), b"\x06\x10\x00\x00\x07")
    network.WLAN(network.STA_IF).drop()
    check("address gone when the link is lost", run_until(loop, lambda: board.addresses() == [], 5000), True)
    check("RTU answers while rejoining", rtu(loop, uart, READ_MEM), b"\x03\x02\x00\x07")
    check("joined again", run_until(loop, lambda: board.addresses() == ["10.0.0.5"], 5000), True)


def wifi_timeout(port):
    network.ATTEMPTS[:] = ["hang", "ok"]
    cfg, loop, ready = build({"tcp": {"host": "127.0.0.1", "port": port},
                              "board": {"wifi_ssid": "plant", "wifi_timeout": 1}})
    check("RTU answers while the attempt hangs", rtu(loop, uart_of(cfg), READ_MEM), b"\x03\x02\x00\x00")
    check("joined after the timeout", run_until(loop, lambda: board.addresses() == ["10.0.0.5"], 10000), True)
    check("two attempts", len(network.joined), 2)


def broker(port, broker_port):
    cfg, loop, ready = build({"tcp": {"host": "127.0.0.1", "port": port},
                              "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker_port},
                              "board": {"wifi_ssid": "plant"}})
    check("ready names the broker", ("mqtt 127.0.0.1:%d" % broker_port) in ready, True)
    uart = uart_of(cfg)
    for i in range(3):  # the bridge's first connect and its retry fall into this time
        check("RTU answers %d" % i, rtu(loop, uart, READ_MEM), b"\x03\x02\x00\x00")
        run_until(loop, lambda: False, 700)
    check("TCP answers", Tcp(loop, port).request(b"\x03\x10\x00\x00\x01"), b"\x03\x02\x00\x00")


def no_umqtt(port):
    cfg, loop, ready = build({"tcp": {"host": "127.0.0.1", "port": port}, "mqtt": {"enabled": True, "host": "127.0.0.1"},
                              "board": {"wifi_ssid": "plant"}})
    check("ready says the bridge is off", "mqtt off" in ready, True)
    check("RTU answers", rtu(loop, uart_of(cfg), READ_MEM), b"\x03\x02\x00\x00")


def bad_config(path):
    cfg = startup.load_config(path, board)  # prints the one line
    check("start-up modules unloaded", [m for m in ("mbnode.config", "pinrules", "board_config") if m in sys.modules],
          [])
    from mbnode import config

    refused = startup.config_refused
    # Refused: the board's defaults, and the system registers where 0x200F shows the fault.
    check("the board's defaults", {k: v for k, v in cfg.items() if k != "system"},
          config.validate({}, *board.config_rules()))
    check("the system registers when refused", "system" in cfg, refused)
    loop, ready = startup.build(cfg, board)
    print(ready)
    uart = uart_of(cfg)
    s = uart.settings
    check("19200 8E1", (s["baudrate"], s["bits"], s["parity"], s["stop"]), (19200, 8, 0, 1))
    n = len(cfg["board"]["do_pins"])
    check("RTU unit 1 answers for the onboard coils", rtu(loop, uart, struct.pack(">BHH", 1, 0, n)), b"\x01\x01\x00")
    if refused:  # faults: FAULT_CONFIG (mbnode.health), nothing else
        check("status register 0x200F", rtu(loop, uart, struct.pack(">BHH", 4, 0x200F, 1)), b"\x04\x02\x00\x01")


def mqtt_checks(path):
    """A file with an "mqtt" section that is off: its checks (mbnode.mqtt.config, pointsconfig,
    points) load for the check and go with config.py, the mbnode.mqtt package too."""
    import mbnode

    cfg = startup.load_config(path, board)
    check("the point checked", cfg["mqtt"]["points"][0]["type"], "uint16")
    check("nothing of mbnode.mqtt left", [m for m in sys.modules if m.startswith("mbnode.mqtt")]
          + [m for m in ("mbnode.config", "pinrules", "board_config") if m in sys.modules], [])
    check("nor on the package", hasattr(mbnode, "mqtt") or hasattr(mbnode, "config"), False)
    loop, ready = startup.build(cfg, board)
    check("serving, the bridge off", ("unit 1" in ready, "mqtt" in ready), (True, False))
    check("RTU answers", rtu(loop, uart_of(cfg), READ_MEM), b"\x03\x02\x00\x00")


def system(port, ntp_port):
    """The system registers on a pin board: the MAC text from the radio, the IPv4 address once
    Wi-Fi has joined, the RP2040's ADC4 temperature (pico-w) or the ESP32's none, and the reboot
    command calling machine.reset 1 s after its answer."""
    import socket
    import time

    from mbnode import sysregs
    from parts import made

    statuses = made(sysregs, "Status")
    network.ATTEMPTS[:] = ["ok"]
    cfg, loop, ready = build({"tcp": {"host": "127.0.0.1", "port": port}, "system": {"settings": "/nonexistent/s"},
                              "board": {"wifi_ssid": "plant", "wifi_password": "secret", "wifi_timeout": 5}})
    check("ready", "system 0x2000" in ready and "ntp pool.ntp.org" in ready, True)  # ntp "auto" with Wi-Fi
    # The NTP questions go to a socket of this script instead (tests never leave 127.0.0.1).
    ntp = statuses[0].ntp
    ntp.host = "127.0.0.1"
    ntp.port = ntp_port
    ntp_server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ntp_server.bind(socket.getaddrinfo("127.0.0.1", ntp.port)[0][-1])
    ntp_server.setblocking(False)
    tcp = Tcp(loop, port)
    loop.step(50)
    check("no NTP question before an address", ntp.sock, None)

    def status(first, count):
        r = tcp.request(struct.pack(">BHH", 4, first, count))
        return list(struct.unpack(">%dH" % count, r[2:])) if r and r[0] == 4 else r

    mac = b"".join(struct.pack(">H", v) for v in status(0x2040, 16)).rstrip(b"\0")
    check("MAC text", mac, b"28:CD:C1:0A:0B:FE")
    check("joined", run_until(loop, lambda: board.addresses() == ["10.0.0.5"], 10000), True)
    check("IPv4 within 1 s", run_until(loop, lambda: status(0x2012, 4) == [10, 0, 0, 5], 1500), True)
    asked = []

    def question():
        try:
            q = ntp_server.recv(100)
        except OSError:
            return False
        asked.append(q)
        return True

    check("NTP asked once joined", (run_until(loop, question, 1500), len(asked[0]) if asked else 0), (True, 48))
    if board.CHIP == "rp2040":
        board._board.adc.raw = 14021  # 0.706 V: 27.0 degC by the datasheet's formula
        run_until(loop, lambda: status(0x200E, 1) == [270], 1500)
        check("RP2040 temperature", status(0x200E, 1), [270])
    else:
        check("no temperature on the ESP32", status(0x200E, 1), [0x8000])
    resets = []
    machine.reset = lambda: resets.append(time.ticks_ms())
    t0 = time.ticks_ms()
    check("reboot answered", tcp.request(struct.pack(">BHH", 6, 0x2119, 1)), struct.pack(">BHH", 6, 0x2119, 1))
    check("machine.reset after 1 s", (run_until(loop, lambda: resets, 3000),
                                      resets and time.ticks_diff(resets[0], t0) >= 1000), (True, True))


def main():
    what = sys.argv[1]
    args = sys.argv[2:]
    if what == "bad_config":
        bad_config(args[0])
    elif what == "mqtt_checks":
        mqtt_checks(args[0])
    elif what == "no_umqtt":
        no_umqtt(int(args[0]))
    elif what == "system":
        system(int(args[0]), int(args[1]))
    elif what == "broker":
        broker(int(args[0]), int(args[1]))
    else:
        {"wifi": wifi, "wifi_timeout": wifi_timeout}[what](int(args[0]))
    return report()


sys.exit(main())
