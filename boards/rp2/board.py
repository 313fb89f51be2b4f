"""Raspberry Pi Pico / Pico W board: pin map (defaults in boards/rp2/config.json).

DO: GP 2 3 6 7 8 9 10 11      -> coils 0x0000-0x0007
DI: GP 12 13 14 15 (pull-up)  -> discrete inputs 0x0000-0x0003
AI: GP 26 27 28 (ADC0-2)      -> input registers 0x0000-0x0002 (read_u16, 0-65535)
AO: GP 20 21 (PWM + RC filter) -> holding registers 0x0000-0x0001 (10-bit)
RS-485: UART0, TX GP0 -> DI, RX GP1 <- RO, DE+/RE GP22 -- docs/rs485-wiring.md.
GP4/5 (UART1) stay free for a second line.
"""

from mbnode.hw import PinBoard

_board = PinBoard("rp2", (2, 3, 6, 7, 8, 9, 10, 11), (12, 13, 14, 15), (26, 27, 28), (20, 21),
                  rtu_pins=(0, 0, 1, 22))
CONFIG_SCHEMA = _board.CONFIG_SCHEMA
start = _board.start
describe = _board.describe
open_rtu = _board.open_rtu
addresses = _board.addresses
