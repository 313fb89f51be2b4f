"""Raspberry Pi Pico W: the default configuration and the pins the board uses itself.

Start-up only (startup.load_config unloads it); `mbnode build --board pico-w` writes DEFAULTS, every
board key filled in, as the bundle's config.json, and a firmware without config.json runs it.
"""

from pinrules import channels

_PINS = {"do_pins": [2, 3, 6, 7, 8, 9, 10, 11], "di_pins": [12, 13, 14, 15], "ai_pins": [26, 27, 28],
         "ao_pins": [20, 21]}

DEFAULTS = {
    "unit_id": 1,
    "tcp": {"max_clients": 3},  # lwIP on the Pico W has 5 TCP PCBs
    "rtu": {"enabled": True},
    "channels": channels(_PINS),
    "identity": {"model_name": "Raspberry Pi Pico W"},
    "board": {"do_pins": _PINS["do_pins"], "di_pins": _PINS["di_pins"], "ai_pins": _PINS["ai_pins"],
              "ao_pins": _PINS["ao_pins"], "rtu_uart": 0, "rtu_tx": 0, "rtu_rx": 1, "rtu_de": 22},
}

# (first, last, what the board does with them): Raspberry Pi Pico W datasheet, "Pinout".
RESERVED = (
    (23, 23, "powers the Pico W's Wi-Fi chip (WL_ON)"),
    (24, 24, "is the Pico W's Wi-Fi data line"),
    (25, 25, "is the Pico W's Wi-Fi chip select"),
    (29, 29, "is the Pico W's Wi-Fi clock"),
)
