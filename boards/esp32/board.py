"""ESP32 DevKit board: pin map (defaults in boards/esp32/config.json).

DO: GPIO 16 17 18 19 21 22 23 25 -> coils 0x0000-0x0007
DI: GPIO 26 27 32 33 (pull-up)    -> discrete inputs 0x0000-0x0003
AI: GPIO 34 35 36 39 (ADC1)       -> input registers 0x0000-0x0003 (read_u16, 0-65535)
AO: GPIO 4 5 (PWM + RC filter)    -> holding registers 0x0000-0x0001 (10-bit)
RS-485: UART2, TX GPIO 14 -> DI, RX GPIO 13 <- RO, DE+/RE GPIO 2 (the DevKit LED lights while
the slave transmits; the chip pulls GPIO 2 low during reset, so the driver stays off) --
docs/rs485-wiring.md.
GPIO 1/3 stay the USB REPL; flash pins 6-11 are never used.
"""

from mbnode.hw import PinBoard

_board = PinBoard("esp32", (16, 17, 18, 19, 21, 22, 23, 25), (26, 27, 32, 33), (34, 35, 36, 39), (4, 5),
                  rtu_pins=(2, 14, 13, 2))
CONFIG_SCHEMA = _board.CONFIG_SCHEMA
start = _board.start
describe = _board.describe
open_rtu = _board.open_rtu
addresses = _board.addresses
