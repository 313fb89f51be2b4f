"""The "system" section of the configuration (docs/configuration.md, "system"): the status and
settings registers (mbnode.sysregs, mbnode.settings) and NTP (mbnode.ntp). mbnode.config imports
this module only when a configuration has a "system" object; the firmware unloads it with
config after start-up."""

from mbnode.config import ConfigError

SCHEMA = {
    "enabled": (True, "bool"),  # the status block at 0x2000 and the settings block at 0x2100
    "settings": ("settings.bin", "text", 200),  # the file the settings are saved to (with a .new beside it)
    "save_interval": (60, "int", 1, 86400),  # s: at most one save of the settings this often
    "reboot": (True, "bool"),  # the settings block's reboot command may be used
    "unit_id_writes": (True, "bool"),  # the settings block's unit id register may be written
    "ntp": ("auto", "text", 100),  # "HOST[:PORT]", "" (none) or "auto" (pool.ntp.org on a board with Wi-Fi)
    "ntp_interval": (3600, "int", 60, 86400),  # s between two questions (at most a day: ticks_ms arithmetic)
}


def check(cfg):
    s = cfg["system"]
    if not s["settings"]:
        raise ConfigError("config: system.settings = \"\": allowed a file path such as \"settings.bin\"")
    ntp = s["ntp"]
    if ":" in ntp:
        port = ntp.rsplit(":", 1)[1]
        if not port or [c for c in port if c not in "0123456789"] or not 0 < int(port) <= 65535:
            raise ConfigError("config: system.ntp = \"%s\": allowed \"HOST\", \"HOST:PORT\" (port 1..65535), \"auto\" "
                              "or \"\"" % ntp)
