"""The "protect" section of the configuration (write protection, docs/configuration.md): its
schema and the check that involves more than one key. mbnode.config imports this module only
when a configuration has a "protect" object, and the firmware unloads it with config after
start-up; the running guard is mbnode.protect.

Ranges are per writable table: coils inside the coil map (0x0000-0x023F), holding registers
anywhere 0x0000-0xFFFF, so that a register block outside the map (the settings registers, the
custom register block) can be protected like the map's own registers and memory positions.
A checked range is [first, last] (lists, so a checked configuration checks again unchanged).
"""

from mbnode.config import ConfigError, refused
from mbnode.datamodel import BIT_CHANNELS
from mbnode.rangeitem import bounds


def _ranges(limit):
    """A "call" rule's function: the checked list of [first, last] ranges inside 0..limit."""
    allowed = "allowed a list of [first, last] or \"0xFIRST-0xLAST\" ranges inside 0x0000-0x%04X" % limit

    def check(key, v):
        if type(v) is not list:
            raise refused(key, v, allowed)
        out = []
        for item in v:
            first, last = bounds(item)
            if not 0 <= first <= last <= limit:
                raise refused(key, v, allowed)
            out.append([first, last])
        return out

    return check


def _tables():
    return {"coils": ([], "call", _ranges(BIT_CHANNELS - 1)),
            "holding_registers": ([], "call", _ranges(0xFFFF))}


SCHEMA = {
    "read_only": _tables(),  # no Modbus or MQTT write, from anyone (exception 02)
    "trusted_only": _tables(),  # written only by the trusted sources below
    "trusted_clients": ([], "ipv4_list"),  # Modbus TCP clients' addresses that may write trusted_only
    "rtu_trusted": (False, "bool"),  # the slave's serial line may write trusted_only
    "mqtt_trusted": (False, "bool"),  # MQTT /set and gateway writes may write trusted_only
}


def check(cfg):
    """trusted_only ranges that nobody could write are a mistake: say so."""
    p = cfg["protect"]
    t = p["trusted_only"]
    if (t["coils"] or t["holding_registers"]) and not (p["trusted_clients"] or p["rtu_trusted"]
                                                        or p["mqtt_trusted"]):
        raise ConfigError("config: protect.trusted_clients = []: nobody could write protect.trusted_only; allowed "
                          "at least one IPv4 address, or rtu_trusted or mqtt_trusted true (or use read_only)")
