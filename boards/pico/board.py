"""Raspberry Pi Pico (RP2040, no radio): a Modbus RTU slave on RS-485 with the Pico's own I/O.

Pin map (the defaults; board_config.py, config.json's "board" section moves any of them):
  DO  GP2 3 6 7 8 9 10 11          -> coils 0x0000-0x0007
  DI  GP12 13 14 15 (pull-up)      -> discrete inputs 0x0000-0x0003
  AI  GP26 27 28 (ADC0-2)          -> input registers 0x0000-0x0002 (read_u16, 0-65535)
  AO  GP20 21 (PWM + RC filter)    -> holding registers 0x0000-0x0001 (10-bit)
  RS-485  UART0: TX GP0 -> DI, RX GP1 <- RO, DE+/RE GP22 (docs/rs485-wiring.md)
GP4/5 (UART1) and GP16-19 stay free. The board itself uses GP23 (SMPS mode), GP24 (VBUS
sense), GP25 (LED) and GP29 (VSYS/3). Default configuration: RTU slave unit 1 at 19200 8E1 with
these channels and the memory registers; no Modbus TCP (no network).
"""

from pinboard import PinBoard

NAME = "pico"
PORT = "rp2"  # the MicroPython port
MICROPYTHON_BOARD = "RPI_PICO"  # the MicroPython firmware this board runs
CHIP = "rp2040"  # pin facts: chip_rp2040.py
MPY_ARCH = "armv6m"  # mpy-cross -march (fast.py and crc.py hold viper code)
WIFI = False
KEEP_SERVING = True  # a broken config.json: one line, then the defaults (docs/boards.md)

_board = PinBoard(NAME, CHIP, WIFI)
config_rules, start, describe, open_rtu, addresses, watch, field = _board.board_api()
reboot, temperature, mac = _board.system_api()
