"""ESP32-C3-DevKitM-1 (ESP32-C3, RISC-V): Modbus RTU on RS-485, Modbus TCP over Wi-Fi.

Pin map (the defaults; board_config.py, config.json's "board" section moves any of them):
  DO  GPIO4 5                      -> coils 0x0000-0x0001
  DI  GPIO0 1 (pull-up)            -> discrete inputs 0x0000-0x0001
  AI  GPIO3 (ADC1_CH3)             -> input register 0x0000 (read_u16, 0-65535)
  AO  none
  RS-485  UART1: TX GPIO6 -> DI, RX GPIO7 <- RO, DE+/RE GPIO10 (docs/rs485-wiring.md)
The C3 has two UARTs (UART0 is the REPL) and few free pins: the DevKitM-1's headers carry
GPIO0-10 and 18-21, of which 18/19 (USB) and 20/21 (UART0) are the REPL's, 2, 8 and 9 are
strapping pins (8 drives the RGB LED, 9 is the BOOT button) and 5 is ADC2, which this chip
cannot read reliably. What is left is used above.
Default configuration: RTU slave unit 1 at 19200 8E1 with these channels and the memory
registers; Modbus TCP on port 502 once board.wifi_ssid is set (Wi-Fi joins in the background).
"""

from pinboard import PinBoard

NAME = "esp32-c3"
PORT = "esp32"  # the MicroPython port
MICROPYTHON_BOARD = "ESP32_GENERIC_C3"  # the MicroPython firmware this board runs
CHIP = "esp32c3"  # pin facts: chip_esp32c3.py
MPY_ARCH = "rv32imc"  # mpy-cross -march (fast.py and crc.py hold viper code)
WIFI = True
KEEP_SERVING = True  # a broken config.json: one line, then the defaults (docs/boards.md)

_board = PinBoard(NAME, CHIP, WIFI)
config_rules, start, describe, open_rtu, addresses, watch, field = _board.board_api()
reboot, temperature, mac = _board.system_api()
