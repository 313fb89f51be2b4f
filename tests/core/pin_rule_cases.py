"""What the pin rules (boards/common/pinrules.py) refuse, per rule and board, with the exact
one-line message; None: the configuration is accepted. Plain data, read by tests/test_pin_rules.py
on CPython and by tests/core/pin_rules.py on the unix port."""

_RP_OUT = "allowed output pins GP0-22, 26-28"
_RP_IN = "allowed input pins GP0-22, 26-28"
_E32_OUT = "allowed output pins GPIO0, 2, 4, 5, 12-19, 21-23, 25-27, 32, 33"
_E32_IN = "allowed input pins GPIO0, 2, 4, 5, 12-19, 21-23, 25-27, 32-36, 39"
_S3_OUT = "allowed output pins GPIO0-18, 21, 38-42, 45-48"
_C3_OUT = "allowed output pins GPIO0-10"
_WIFI = {"wifi_ssid": "plant"}

# (case id, rule, board, configuration, expected message or None: accepted)
CASES = [
    # --- GPIO numbers the chip lacks
    ("pico-no-gpio", "no-gpio", "pico", {"board": {"do_pins": [2, 3, 30]}},
     "config: board.do_pins = [2, 3, 30]: GP30 does not exist on the RP2040; " + _RP_OUT),
    ("pico-w-no-gpio", "no-gpio", "pico-w", {"board": {"rtu_de": 31}},
     "config: board.rtu_de = 31: GP31 does not exist on the RP2040; " + _RP_OUT),
    ("esp32-no-gpio-20", "no-gpio", "esp32", {"board": {"do_pins": [20]}},
     "config: board.do_pins = [20]: GPIO20 does not exist on the ESP32; " + _E32_OUT),
    ("esp32-no-gpio-24", "no-gpio", "esp32", {"board": {"di_pins": [24]}},
     "config: board.di_pins = [24]: GPIO24 does not exist on the ESP32; " + _E32_IN),
    ("esp32-no-gpio-40", "no-gpio", "esp32", {"board": {"rtu_rx": 40}},
     "config: board.rtu_rx = 40: GPIO40 does not exist on the ESP32; " + _E32_IN),
    ("esp32-s3-no-gpio-22", "no-gpio", "esp32-s3", {"board": {"do_pins": [22]}},
     "config: board.do_pins = [22]: GPIO22 does not exist on the ESP32-S3; " + _S3_OUT),
    ("esp32-s3-no-gpio-49", "no-gpio", "esp32-s3", {"board": {"rtu_tx": 49}},
     "config: board.rtu_tx = 49: GPIO49 does not exist on the ESP32-S3; " + _S3_OUT),
    ("esp32-c3-no-gpio", "no-gpio", "esp32-c3", {"board": {"do_pins": [4, 22]}},
     "config: board.do_pins = [4, 22]: GPIO22 does not exist on the ESP32-C3; " + _C3_OUT),
    # --- flash (and on the S3 octal flash/PSRAM) pins
    ("esp32-flash", "flash", "esp32", {"board": {"do_pins": [6]}},
     "config: board.do_pins = [6]: GPIO6 is wired to the SPI flash; " + _E32_OUT),
    ("esp32-flash-11", "flash", "esp32", {"board": {"di_pins": [11]}},
     "config: board.di_pins = [11]: GPIO11 is wired to the SPI flash; " + _E32_IN),
    ("esp32-s3-flash", "flash", "esp32-s3", {"board": {"rtu_de": 26}},
     "config: board.rtu_de = 26: GPIO26 is wired to the SPI flash and PSRAM; " + _S3_OUT),
    ("esp32-s3-octal-psram", "octal-psram", "esp32-s3", {"board": {"do_pins": [35]}},
     "config: board.do_pins = [35]: GPIO35 is wired to octal flash or PSRAM; " + _S3_OUT),
    ("esp32-c3-flash", "flash", "esp32-c3", {"board": {"do_pins": [12]}},
     "config: board.do_pins = [12]: GPIO12 is wired to the SPI flash; " + _C3_OUT),
    ("esp32-c3-flash-supply", "flash", "esp32-c3", {"board": {"di_pins": [11]}},
     "config: board.di_pins = [11]: GPIO11 is VDD_SPI, the flash supply; allowed input pins GPIO0-10"),
    # --- input-only pins (ESP32 34-39) as outputs, DE or UART TX
    ("esp32-input-only-do", "input-only", "esp32", {"board": {"do_pins": [13, 34]}},
     "config: board.do_pins = [13, 34]: GPIO34 is input-only; " + _E32_OUT),
    ("esp32-input-only-ao", "input-only", "esp32", {"board": {"ao_pins": [39]}},
     "config: board.ao_pins = [39]: GPIO39 is input-only; " + _E32_OUT),
    ("esp32-input-only-de", "input-only", "esp32", {"board": {"rtu_de": 35}},
     "config: board.rtu_de = 35: GPIO35 is input-only; " + _E32_OUT),
    ("esp32-input-only-tx", "input-only", "esp32", {"board": {"rtu_tx": 36}},
     "config: board.rtu_tx = 36: GPIO36 is input-only; " + _E32_OUT),
    ("esp32-input-only-as-input", "allowed", "esp32", {"board": {"rtu_rx": 34, "ai_pins": [35, 36, 39]}}, None),
    # --- ADC pins that are not ADC-capable
    ("pico-no-adc", "no-adc", "pico", {"board": {"ai_pins": [26, 16]}},
     "config: board.ai_pins = [26, 16]: GP16 has no ADC; allowed ADC pins GP26-28"),
    ("pico-w-no-adc", "no-adc", "pico-w", {"board": {"ai_pins": [3]}},
     "config: board.ai_pins = [3]: GP3 has no ADC; allowed ADC pins GP26-28"),
    ("esp32-no-adc", "no-adc", "esp32", {"board": {"ai_pins": [21]}},
     "config: board.ai_pins = [21]: GPIO21 has no ADC; allowed ADC pins GPIO0, 2, 4, 12-15, 25-27, 32-36, 39"),
    ("esp32-s3-no-adc", "no-adc", "esp32-s3", {"board": {"ai_pins": [21]}},
     "config: board.ai_pins = [21]: GPIO21 has no ADC; allowed ADC pins GPIO1-18"),
    ("esp32-c3-no-adc", "no-adc", "esp32-c3", {"board": {"ai_pins": [9]}},
     "config: board.ai_pins = [9]: GPIO9 has no ADC; allowed ADC pins GPIO0-4"),
    # --- ADC2 pins while Wi-Fi is on (the C3's ADC2 never)
    ("esp32-adc2-wifi", "adc2-wifi", "esp32", {"board": dict(_WIFI, ai_pins=[34, 25])},
     "config: board.ai_pins = [34, 25]: GPIO25 is on ADC2, which Wi-Fi takes over (board.wifi_ssid is set); "
     "allowed ADC pins GPIO32-36, 39"),
    ("esp32-adc2-no-wifi", "allowed", "esp32", {"board": {"ai_pins": [34, 4], "ao_pins": [18]}}, None),
    ("esp32-s3-adc2-wifi", "adc2-wifi", "esp32-s3", {"board": dict(_WIFI, ai_pins=[11])},
     "config: board.ai_pins = [11]: GPIO11 is on ADC2, which Wi-Fi takes over (board.wifi_ssid is set); "
     "allowed ADC pins GPIO1-10"),
    ("esp32-s3-adc2-no-wifi", "allowed", "esp32-s3", {"board": {"ai_pins": [4, 5, 6, 7, 17], "rtu_tx": 21}}, None),
    ("esp32-c3-adc2-wifi", "adc2-wifi", "esp32-c3", {"board": dict(_WIFI, ai_pins=[3, 5], do_pins=[4])},
     "config: board.ai_pins = [3, 5]: GPIO5 is on ADC2, which the ESP32-C3 cannot read reliably (chip errata) "
     "and Wi-Fi takes over; allowed ADC pins GPIO0-4"),
    # --- pins the board uses itself
    ("pico-gp23", "board-pin", "pico", {"board": {"do_pins": [23]}},
     "config: board.do_pins = [23]: GP23 switches the Pico's power supply mode (SMPS PS); " + _RP_OUT),
    ("pico-gp24", "board-pin", "pico", {"board": {"di_pins": [24]}},
     "config: board.di_pins = [24]: GP24 senses VBUS on the Pico; " + _RP_IN),
    ("pico-gp25", "board-pin", "pico", {"board": {"rtu_de": 25}},
     "config: board.rtu_de = 25: GP25 drives the Pico's LED; " + _RP_OUT),
    ("pico-gp29", "board-pin", "pico", {"board": {"ai_pins": [29]}},
     "config: board.ai_pins = [29]: GP29 measures VSYS on the Pico; allowed ADC pins GP26-28"),
    ("pico-w-gp23", "board-pin", "pico-w", {"board": {"do_pins": [23]}},
     "config: board.do_pins = [23]: GP23 powers the Pico W's Wi-Fi chip (WL_ON); " + _RP_OUT),
    ("pico-w-gp24", "board-pin", "pico-w", {"board": {"di_pins": [24]}},
     "config: board.di_pins = [24]: GP24 is the Pico W's Wi-Fi data line; " + _RP_IN),
    ("pico-w-gp25", "board-pin", "pico-w", {"board": {"ao_pins": [25]}},
     "config: board.ao_pins = [25]: GP25 is the Pico W's Wi-Fi chip select; " + _RP_OUT),
    ("pico-w-gp29", "board-pin", "pico-w", {"board": {"ai_pins": [29]}},
     "config: board.ai_pins = [29]: GP29 is the Pico W's Wi-Fi clock; allowed ADC pins GP26-28"),
    ("esp32-repl-pin", "board-pin", "esp32", {"board": {"rtu_tx": 1}},
     "config: board.rtu_tx = 1: GPIO1 is UART0 TX, the REPL's USB bridge; " + _E32_OUT),
    ("esp32-not-on-headers", "board-pin", "esp32", {"board": {"ai_pins": [37]}},
     "config: board.ai_pins = [37]: GPIO37 is not on the DevKitC's headers; "
     "allowed ADC pins GPIO0, 2, 4, 12-15, 25-27, 32-36, 39"),
    ("esp32-s3-usb", "board-pin", "esp32-s3", {"board": {"do_pins": [19]}},
     "config: board.do_pins = [19]: GPIO19 is the USB port (the REPL); " + _S3_OUT),
    ("esp32-s3-repl", "board-pin", "esp32-s3", {"board": {"rtu_rx": 44}},
     "config: board.rtu_rx = 44: GPIO44 is UART0, the REPL's USB bridge; allowed input pins GPIO0-18, 21, 38-42, 45-48"),
    ("esp32-c3-usb", "board-pin", "esp32-c3", {"board": {"do_pins": [18]}},
     "config: board.do_pins = [18]: GPIO18 is USB Serial/JTAG (the REPL); " + _C3_OUT),
    ("esp32-c3-repl", "board-pin", "esp32-c3", {"board": {"rtu_tx": 21}},
     "config: board.rtu_tx = 21: GPIO21 is UART0, the REPL's USB bridge; " + _C3_OUT),
    # --- UART ids the chip lacks (or that are the REPL)
    ("pico-uart2", "uart-id", "pico", {"board": {"rtu_uart": 2}},
     "config: board.rtu_uart = 2: the RP2040 has UART0 and UART1; allowed 0, 1"),
    ("pico-w-uart3", "uart-id", "pico-w", {"board": {"rtu_uart": 3}},
     "config: board.rtu_uart = 3: the RP2040 has UART0 and UART1; allowed 0, 1"),
    ("esp32-uart0", "uart-id", "esp32", {"board": {"rtu_uart": 0}},
     "config: board.rtu_uart = 0: UART0 is MicroPython's REPL on the ESP32; allowed 1, 2"),
    ("esp32-uart3", "uart-id", "esp32", {"board": {"rtu_uart": 3}},
     "config: board.rtu_uart = 3: UART0 is MicroPython's REPL on the ESP32; allowed 1, 2"),
    ("esp32-s3-uart0", "uart-id", "esp32-s3", {"board": {"rtu_uart": 0}},
     "config: board.rtu_uart = 0: UART0 is MicroPython's REPL on the ESP32-S3; allowed 1, 2"),
    ("esp32-c3-uart2", "uart-id", "esp32-c3", {"board": {"rtu_uart": 2}},
     "config: board.rtu_uart = 2: the ESP32-C3 has UART0 and UART1, and UART0 is MicroPython's REPL; allowed 1"),
    ("esp32-c3-uart0", "uart-id", "esp32-c3", {"board": {"rtu_uart": 0}},
     "config: board.rtu_uart = 0: the ESP32-C3 has UART0 and UART1, and UART0 is MicroPython's REPL; allowed 1"),
    ("esp32-uart1-any-pins", "allowed", "esp32", {"board": {"rtu_uart": 1, "rtu_tx": 16, "rtu_rx": 17, "rtu_de": -1}}, None),
    # --- RP2040: TX/RX pins the chosen UART cannot reach
    ("pico-uart0-tx", "uart-route", "pico", {"board": {"rtu_tx": 4}},
     "config: board.rtu_tx = 4: UART0 cannot send on GP4; allowed UART0 TX pins GP0, 12, 16, 28"),
    ("pico-uart1-rx", "uart-route", "pico", {"board": {"rtu_uart": 1, "rtu_tx": 4, "rtu_rx": 1}},
     "config: board.rtu_rx = 1: UART1 cannot receive on GP1; allowed UART1 RX pins GP5, 9, 21"),
    ("pico-w-uart1-tx", "uart-route", "pico-w", {"board": {"rtu_uart": 1, "rtu_tx": 0, "rtu_rx": 5}},
     "config: board.rtu_tx = 0: UART1 cannot send on GP0; allowed UART1 TX pins GP4, 8, 20"),
    ("pico-w-uart0-rx", "uart-route", "pico-w", {"board": {"rtu_rx": 5}},
     "config: board.rtu_rx = 5: UART0 cannot receive on GP5; allowed UART0 RX pins GP1, 13, 17"),
    ("pico-uart1-moved", "allowed", "pico", {"board": {"rtu_uart": 1, "rtu_tx": 4, "rtu_rx": 5, "rtu_de": 16}}, None),
    ("pico-uart0-gp16", "allowed", "pico", {"board": {"rtu_tx": 16, "rtu_rx": 17, "rtu_de": 18}}, None),
    # --- a pin used twice
    ("pico-twice", "twice", "pico", {"board": {"di_pins": [12, 13, 14, 22]}},
     "config: board.di_pins = [12, 13, 14, 22]: GP22 is also board.rtu_de; allowed each pin once"),
    ("pico-w-twice-in-list", "twice", "pico-w", {"board": {"do_pins": [2, 3, 2]}},
     "config: board.do_pins = [2, 3, 2]: GP2 is also board.do_pins; allowed each pin once"),
    ("esp32-twice", "twice", "esp32", {"board": {"rtu_de": 23}},
     "config: board.rtu_de = 23: GPIO23 is also board.rtu_tx; allowed each pin once"),
    ("esp32-s3-twice", "twice", "esp32-s3", {"board": {"ao_pins": [1, 9]}},
     "config: board.ao_pins = [1, 9]: GPIO9 is also board.do_pins; allowed each pin once"),
    ("esp32-c3-twice", "twice", "esp32-c3", {"board": {"ai_pins": [0]}},
     "config: board.ai_pins = [0]: GPIO0 is also board.di_pins; allowed each pin once"),
    ("pico-w-rtu-off-frees-its-pins", "allowed", "pico-w", {"rtu": {"enabled": False}, "board": {"do_pins": [0, 1, 22]}},
     None),
    ("pico-pins-off-frees-the-map", "allowed", "pico", {"board": {"pins": False, "rtu_de": 2}}, None),
    # --- network: the Pico has none; a Wi-Fi board needs the SSID for MQTT
    ("pico-no-tcp", "network", "pico", {"tcp": {"enabled": True}},
     "config: tcp.enabled = true: board pico has no network; allowed false"),
    ("pico-no-mqtt", "network", "pico", {"mqtt": {"enabled": True}},
     "config: mqtt.enabled = true: board pico has no network; allowed false"),
    ("pico-needs-rtu", "network", "pico", {"rtu": {"enabled": False}},
     "config: rtu.enabled = false: board pico has no network, Modbus RTU is all it can serve; allowed true"),
    ("pico-w-mqtt-needs-wifi", "network", "pico-w", {"mqtt": {"enabled": True}},
     "config: mqtt.enabled = true: allowed only with board.wifi_ssid set (board pico-w reaches a broker over Wi-Fi)"),
    # --- the master role's Modbus TCP peers need the network too
    ("pico-no-tcp-module", "network", "pico", {"extension": {"modules": [{"unit": 2, "di": 4, "tcp": "10.0.0.5:502"}]}},
     'config: extension.modules[0].tcp = "10.0.0.5:502": board pico has no network; allowed "" (a module on a '
     'serial line)'),
    ("pico-w-tcp-server-needs-wifi", "network", "pico-w",
     {"poller": {"enabled": True, "servers": [{"name": "s", "host": "10.0.0.5",
                                               "requests": [{"name": "r", "first": 1, "memory": 1}]}]}},
     'config: poller.servers[0].host = "10.0.0.5": board pico-w has no Wi-Fi configured (board.wifi_ssid); allowed '
     'a server on a serial line ("line")'),
    # --- a second serial line (rtu2): a UART of its own, its pins
    ("esp32-c3-one-uart", "rtu2", "esp32-c3", {"rtu2": {"enabled": True}},
     "config: rtu2.enabled = true: board esp32-c3 has one UART for RS-485 (UART1), so one serial line, either "
     "slave or master (rtu.mode); allowed false"),
    ("pico-rtu2-same-uart", "rtu2", "pico", {"rtu2": {"enabled": True}, "board": {"rtu2_uart": 0, "rtu2_tx": 4,
                                                                                  "rtu2_rx": 5}},
     "config: board.rtu2_uart = 0: board.rtu_uart has it; allowed 1"),
    ("pico-rtu2-needs-pins", "rtu2", "pico", {"rtu2": {"enabled": True}, "board": {"rtu2_uart": 1}},
     "config: board.rtu2_tx = -1: rtu2.enabled is true; allowed a GPIO number"),
    ("pico-rtu2-route", "rtu2", "pico", {"rtu2": {"enabled": True}, "board": {"rtu2_uart": 1, "rtu2_tx": 6,
                                                                               "rtu2_rx": 9, "pins": False}},
     "config: board.rtu2_tx = 6: UART1 cannot send on GP6; allowed UART1 TX pins GP4, 8, 20"),
    ("pico-rtu2-served", "allowed", "pico", {"rtu2": {"enabled": True}, "board": {"rtu2_uart": 1, "rtu2_tx": 8,
                                                                                   "rtu2_rx": 9, "pins": False}}, None),
    # --- the status LED (board.led_pin) and the watchdog (board.wdt_ms)
    ("pico-led-default", "allowed", "pico", {"board": {"led_pin": 25}}, None),
    ("pico-led-moved", "allowed", "pico", {"board": {"led_pin": 16}}, None),
    ("pico-led-taken", "led", "pico", {"board": {"led_pin": 2}},
     "config: board.led_pin = 2: GP2 is also board.do_pins; allowed each pin once"),
    ("pico-w-led-reserved", "led", "pico-w", {"board": {"led_pin": 25}},
     "config: board.led_pin = 25: GP25 is the Pico W's Wi-Fi chip select; " + _RP_OUT),
    ("esp32-led-input-only", "led", "esp32", {"board": {"led_pin": 34}},
     "config: board.led_pin = 34: GPIO34 is input-only; " + _E32_OUT),
    ("pico-wdt-default-line", "allowed", "pico", {"board": {"wdt_ms": 1192}}, None),
    ("pico-wdt-short", "wdt", "pico", {"board": {"wdt_ms": 1191}},
     "config: board.wdt_ms = 1191: the loop can be held up to 894 ms (two 256-byte frames on rtu at 19200 baud, "
     "a save to flash) plus the feed interval (wdt_ms / 4); allowed 0 (off) or 1192..8000"),
    ("pico-wdt-slow-line", "wdt", "pico", {"rtu": {"baud": 1200}, "board": {"wdt_ms": 7058}},
     "config: board.wdt_ms = 7058: the loop can be held up to 5294 ms (two 256-byte frames on rtu at 1200 baud, "
     "a save to flash) plus the feed interval (wdt_ms / 4); allowed 0 (off) or 7059..8000"),
    ("pico-wdt-too-slow", "wdt", "pico", {"rtu": {"baud": 600}, "board": {"wdt_ms": 8000}},
     "config: board.wdt_ms = 8000: the loop can be held up to 9988 ms (two 256-byte frames on rtu at 600 baud, "
     "a save to flash); allowed 0 (off): no timeout up to 8000 ms covers that (lower the load: faster baud rates, "
     "no MQTT)"),
    ("esp32-wdt-mqtt", "wdt", "esp32", {"board": dict(_WIFI, wdt_ms=3000),
                                        "mqtt": {"enabled": True, "host": "10.0.0.2"}},
     "config: board.wdt_ms = 3000: the loop can be held up to 2894 ms (the MQTT bridge's budget, twice, a save "
     "to flash) plus the feed interval (wdt_ms / 4); allowed 0 (off) or 3859..8000"),
    ("esp32-wdt-broker-by-name", "wdt", "esp32", {"board": dict(_WIFI, wdt_ms=8000),
                                                  "mqtt": {"enabled": True, "host": "broker.lan"}},
     'config: board.wdt_ms = 8000: mqtt.host "broker.lan" is looked up by name, which blocks the loop outside any '
     'bound (seconds when the DNS server does not answer); allowed 0 (off), or mqtt.host as an IPv4 address'),
]
