"""ESP32-DevKitC: the default configuration and the pins the board uses itself.

Start-up only (startup.load_config unloads it); `mbnode build --board esp32` writes DEFAULTS, every
board key filled in, as the bundle's config.json, and a firmware without config.json runs it.
"""

from pinrules import channels

_PINS = {"do_pins": [13, 19, 21, 25, 26, 27, 32, 33], "di_pins": [5, 12, 14, 15], "ai_pins": [34, 35, 36, 39],
         "ao_pins": [4, 18]}

DEFAULTS = {
    "unit_id": 1,
    "rtu": {"enabled": True},
    "channels": channels(_PINS),
    "identity": {"model_name": "ESP32-DevKitC"},
    "board": {"do_pins": _PINS["do_pins"], "di_pins": _PINS["di_pins"], "ai_pins": _PINS["ai_pins"],
              "ao_pins": _PINS["ao_pins"], "rtu_uart": 2, "rtu_tx": 23, "rtu_rx": 22, "rtu_de": 2},
}

# (first, last, what the board does with them): ESP32-DevKitC user guide, "Header Block".
RESERVED = (
    (1, 1, "is UART0 TX, the REPL's USB bridge"),
    (3, 3, "is UART0 RX, the REPL's USB bridge"),
    (37, 38, "is not on the DevKitC's headers"),
)
