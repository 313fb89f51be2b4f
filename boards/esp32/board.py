"""ESP32-DevKitC (ESP32, WROOM-32 or WROVER module): Modbus RTU on RS-485, Modbus TCP over Wi-Fi.

Pin map (the defaults; board_config.py, config.json's "board" section moves any of them):
  DO  GPIO13 19 21 25 26 27 32 33  -> coils 0x0000-0x0007
  DI  GPIO5 12 14 15 (pull-up)     -> discrete inputs 0x0000-0x0003
  AI  GPIO34 35 36 39 (ADC1)       -> input registers 0x0000-0x0003 (read_u16, 0-65535)
  AO  GPIO4 18 (PWM + RC filter)   -> holding registers 0x0000-0x0001 (10-bit)
  RS-485  UART2: TX GPIO23 -> DI, RX GPIO22 <- RO, DE+/RE GPIO2 (docs/rs485-wiring.md)
Every pin works on all DevKitC modules: GPIO16/17 (PSRAM on WROVER) stay free, flash pins 6-11
and the REPL's GPIO1/3 are never used. DE is on GPIO2, which the chip pulls low during reset, so
the transceiver stays off until the firmware drives it. DO and AO sit on pins without a role at
boot; the DI pins are strapping or boot-noisy pins, harmless for contacts that switch to GND
(never pull GPIO12 up externally: high at reset selects 1.8 V flash). ADC1 only, so AI works
with Wi-Fi on.
Default configuration: RTU slave unit 1 at 19200 8E1 with these channels and the memory
registers; Modbus TCP on port 502 once board.wifi_ssid is set (Wi-Fi joins in the background).
"""

from pinboard import PinBoard

NAME = "esp32"
PORT = "esp32"  # the MicroPython port
MICROPYTHON_BOARD = "ESP32_GENERIC"  # the MicroPython firmware this board runs
CHIP = "esp32"  # pin facts: chip_esp32.py
MPY_ARCH = "xtensawin"  # mpy-cross -march (fast.py and crc.py hold viper code)
WIFI = True
KEEP_SERVING = True  # a broken config.json: one line, then the defaults (docs/boards.md)

_board = PinBoard(NAME, CHIP, WIFI)
config_rules, start, describe, open_rtu, addresses, watch, field = _board.board_api()
reboot, temperature, mac = _board.system_api()
