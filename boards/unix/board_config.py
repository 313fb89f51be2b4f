"""The unix board's configuration rules, which board.config_rules() hands to mbnode.config: the
schema of the board section (docs/simulator.md), the check that needs the whole configuration
and, with `mbnode sim --keep-serving`, the defaults (rules()). Imported by config_rules() only, so it is unloaded again with config.py once the
configuration is checked (startup.load_config), as a pin board's board_config.py is.
"""

SCHEMA = {
    "io": ("", "host_port", "empty allowed"),
    "rtu_device": ("/dev/ttyUSB0", "text", 200),
    "rtu_peer": ("", "text", 200),
    "rtu2_device": ("", "text", 200),  # the second serial line (rtu2), when enabled
    "rtu2_peer": ("", "text", 200),
}


def check(cfg):
    if cfg["rtu2"]["enabled"] and not cfg["board"]["rtu2_device"]:
        return ("config: rtu2.enabled = true: allowed only with board.rtu2_device set (the tty the second "
                "serial line is on)")
    return None


def rules():
    """(KEEP_SERVING, (SCHEMA, defaults, check)): the global defaults (None) and False; with
    `mbnode sim --keep-serving`, the defaults in the file MBNODE_DEFAULTS names and True."""
    import os

    path = os.getenv("MBNODE_DEFAULTS")
    if not path:
        return False, (SCHEMA, None, check)
    import json

    with open(path) as f:
        return True, (SCHEMA, json.load(f), check)
