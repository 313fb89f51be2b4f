"""Raspberry Pi Pico: the default configuration and the pins the board uses itself.

Start-up only (startup.load_config unloads it); `mbnode build --board pico` writes DEFAULTS, every
board key filled in, as the bundle's config.json, and a firmware without config.json runs it.
"""

from pinrules import channels

_PINS = {"do_pins": [2, 3, 6, 7, 8, 9, 10, 11], "di_pins": [12, 13, 14, 15], "ai_pins": [26, 27, 28],
         "ao_pins": [20, 21]}

DEFAULTS = {
    "unit_id": 1,
    "tcp": {"enabled": False},
    "rtu": {"enabled": True},
    "channels": channels(_PINS),
    "identity": {"model_name": "Raspberry Pi Pico"},
    "board": {"do_pins": _PINS["do_pins"], "di_pins": _PINS["di_pins"], "ai_pins": _PINS["ai_pins"],
              "ao_pins": _PINS["ao_pins"], "rtu_uart": 0, "rtu_tx": 0, "rtu_rx": 1, "rtu_de": 22, "led_pin": 25},
}

# (first, last, what the board does with them): Raspberry Pi Pico datasheet, "Pinout".
RESERVED = (
    (23, 23, "switches the Pico's power supply mode (SMPS PS)"),
    (24, 24, "senses VBUS on the Pico"),
    (25, 25, "drives the Pico's LED"),
    (29, 29, "measures VSYS on the Pico"),
)
