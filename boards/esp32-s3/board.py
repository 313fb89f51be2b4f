"""ESP32-S3-DevKitC-1 (ESP32-S3): Modbus RTU on RS-485, Modbus TCP over Wi-Fi.

Pin map (the defaults; board_config.py, config.json's "board" section moves any of them):
  DO  GPIO9 10 11 12 13 14 15 16   -> coils 0x0000-0x0007
  DI  GPIO39 40 41 42 (pull-up)    -> discrete inputs 0x0000-0x0003
  AI  GPIO4 5 6 7 (ADC1_CH3-6)     -> input registers 0x0000-0x0003 (read_u16, 0-65535)
  AO  GPIO1 2 (PWM + RC filter)    -> holding registers 0x0000-0x0001 (10-bit)
  RS-485  UART1: TX GPIO17 -> DI, RX GPIO18 <- RO, DE+/RE GPIO8 (docs/rs485-wiring.md)
UART1's own pins (17/18); GPIO4-18 are one run on the left header, 39-42 on the right. Never
used: the strapping pins 0, 3, 45, 46, the USB pins 19/20 and UART0 43/44 (the REPL), flash and
PSRAM 26-37 (35-37 on the octal-PSRAM modules N8R8, N16R8, N32R8V) and the RGB LED (GPIO48 on
v1.0, GPIO38 on v1.1). ADC1 only, so AI works with Wi-Fi on.
Default configuration: RTU slave unit 1 at 19200 8E1 with these channels and the memory
registers; Modbus TCP on port 502 once board.wifi_ssid is set (Wi-Fi joins in the background).
"""

from pinboard import PinBoard

NAME = "esp32-s3"
PORT = "esp32"  # the MicroPython port
MICROPYTHON_BOARD = "ESP32_GENERIC_S3"  # the MicroPython firmware this board runs
CHIP = "esp32s3"  # pin facts: chip_esp32s3.py
MPY_ARCH = "xtensawin"  # mpy-cross -march (fast.py and crc.py hold viper code)
WIFI = True
KEEP_SERVING = True  # a broken config.json: one line, then the defaults (docs/boards.md)

_board = PinBoard(NAME, CHIP, WIFI)
config_rules, start, describe, open_rtu, addresses, watch, field = _board.board_api()
reboot, temperature, mac = _board.system_api()
