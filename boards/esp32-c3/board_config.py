"""ESP32-C3-DevKitM-1: the default configuration and the pins the board uses itself.

Start-up only (startup.load_config unloads it); `mbnode build --board esp32-c3` writes DEFAULTS,
every board key filled in, as the bundle's config.json, and a firmware without config.json runs it.
"""

from pinrules import channels

_PINS = {"do_pins": [4, 5], "di_pins": [0, 1], "ai_pins": [3], "ao_pins": []}

DEFAULTS = {
    "unit_id": 1,
    "rtu": {"enabled": True},
    "channels": channels(_PINS),
    "identity": {"model_name": "ESP32-C3-DevKitM-1"},
    "board": {"do_pins": _PINS["do_pins"], "di_pins": _PINS["di_pins"], "ai_pins": _PINS["ai_pins"],
              "ao_pins": _PINS["ao_pins"], "rtu_uart": 1, "rtu_tx": 6, "rtu_rx": 7, "rtu_de": 10},
}

# (first, last, what the board does with them): ESP32-C3-DevKitM-1 user guide, "Header Block";
# MicroPython's ESP32_GENERIC_C3 runs its REPL on USB (Serial/JTAG) and on UART0.
RESERVED = (
    (18, 19, "is USB Serial/JTAG (the REPL)"),
    (20, 21, "is UART0, the REPL's USB bridge"),
)
