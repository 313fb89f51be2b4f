"""ESP32-S3-DevKitC-1: the default configuration and the pins the board uses itself.

Start-up only (startup.load_config unloads it); `mbnode build --board esp32-s3` writes DEFAULTS,
every board key filled in, as the bundle's config.json, and a firmware without config.json runs it.
"""

from pinrules import channels

_PINS = {"do_pins": [9, 10, 11, 12, 13, 14, 15, 16], "di_pins": [39, 40, 41, 42], "ai_pins": [4, 5, 6, 7],
         "ao_pins": [1, 2]}

DEFAULTS = {
    "unit_id": 1,
    "rtu": {"enabled": True},
    "channels": channels(_PINS),
    "identity": {"model_name": "ESP32-S3-DevKitC-1"},
    "board": {"do_pins": _PINS["do_pins"], "di_pins": _PINS["di_pins"], "ai_pins": _PINS["ai_pins"],
              "ao_pins": _PINS["ao_pins"], "rtu_uart": 1, "rtu_tx": 17, "rtu_rx": 18, "rtu_de": 8},
}

# (first, last, what the board does with them): ESP32-S3-DevKitC-1 user guide, "Header Block";
# MicroPython's ESP32_GENERIC_S3 runs its REPL on USB and on UART0.
RESERVED = (
    (19, 20, "is the USB port (the REPL)"),
    (43, 44, "is UART0, the REPL's USB bridge"),
)
