"""The "failsafe" section of the configuration (docs/configuration.md, "Fail-safe outputs"): its
schema and checks. mbnode.config imports this module only when a configuration has a
"failsafe" object, and the firmware unloads it with config after start-up.

Safe values are given per channel or range, in an object whose keys are an address ("3",
"0x0040") or a range ("0-7", "0x0040-0x004F"), decimal or 0x hex:
  do: "off", "on" or "hold" per coil (do_default for the present coils not named);
  ao: a register value or "hold" per AO holding register (ao_default likewise);
  memory: a 32-bit value per memory position 1..1024 (positions not named are left alone).
The checked section is the given one with its defaults filled in (a checked configuration
checks again unchanged); mbnode.failsafebuild reads the keys again with its span().
"""

from mbnode.config import ConfigError, _number, refused
from mbnode.datamodel import AO_MAX, BIT_CHANNELS, MEM_BASE, MEM_POSITIONS, ONBOARD, REG_CHANNELS


def _do_value(key, v):
    if type(v) is str and v in ("off", "on", "hold"):
        return v
    raise refused(key, v, "allowed \"off\", \"on\" or \"hold\"")


def _ao_value(key, v):
    if type(v) is str and v == "hold" or type(v) is int and 0 <= v <= 0xFFFF:
        return v
    raise refused(key, v, "allowed \"hold\" or a register value 0..65535")


def _mem_value(key, v):
    if type(v) is int and -0x80000000 <= v <= 0xFFFFFFFF:
        return v
    raise refused(key, v, "allowed a 32-bit value -2147483648..4294967295")


def _span(key, k, v, low, high):
    # "ADDRESS" or "FIRST-LAST" -> (first, last) inside low..high, else the one-line refusal.
    nums = [_number(p.strip(), True) for p in k.split("-")] if type(k) is str else []
    if 1 <= len(nums) <= 2 and min(nums) >= low and nums[0] <= nums[-1] <= high:
        return nums[0], nums[-1]
    from mbnode.quote import name

    where = "%d..%d" % (low, high) if low else "0x0000-0x%04X" % high
    raise refused("%s.%s" % (key, name(k)), v,
                  "allowed keys \"ADDRESS\" or \"FIRST-LAST\" (decimal or 0x hex) inside " + where)


def _table(value, low, high):
    def check(key, v):
        if type(v) is not dict:
            raise refused(key, v, "allowed an object {\"ADDRESS\" or \"FIRST-LAST\": value}")
        for k in v:
            _span(key, k, v[k], low, high)
            value("%s.%s" % (key, k), v[k])
        return v
    return check


SCHEMA = {
    "enabled": (True, "bool"),
    "timeout_ms": (5000, "int", 100, 3600000),  # no valid request for this long: outputs safe
    "do_default": ("off", "call", _do_value),
    "ao_default": (0, "call", _ao_value),
    "do": ({}, "call", _table(_do_value, 0, BIT_CHANNELS - 1)),
    "ao": ({}, "call", _table(_ao_value, 0, REG_CHANNELS - 1)),
    "memory": ({}, "call", _table(_mem_value, 1, MEM_POSITIONS)),
}


def _present(ranges, first, last):
    return any(lo <= first and last <= hi for lo, hi in ranges)


def check(cfg):
    """The rules that involve other sections: every channel named is present (channels.*, with
    extension modules' channels), onboard AO values fit 10 bits, memory positions are present."""
    fs = cfg["failsafe"]
    ch = cfg["channels"]
    for key, table in (("do", "coils"), ("ao", "holding_registers")):
        for k, v in fs[key].items():
            first, last = _span("", k, v, 0, 0xFFFF)
            if not _present(ch[table], first, last):
                raise ConfigError("config: failsafe.%s.%s: channels 0x%04X-0x%04X are not all present in channels.%s; "
                                  "allowed present channels" % (key, k, first, last, table))
            if key == "ao" and first < ONBOARD and v != "hold" and v > AO_MAX:
                raise ConfigError("config: failsafe.ao.%s = %d: onboard AO (0x0000-0x%04X) is 10-bit; allowed "
                                  "\"hold\" or 0..%d" % (k, v, ONBOARD - 1, AO_MAX))
    v = fs["ao_default"]
    if v != "hold" and v > AO_MAX and [1 for lo, hi in ch["holding_registers"] if lo < ONBOARD]:
        raise ConfigError("config: failsafe.ao_default = %d: onboard AO channels are present, and they are 10-bit; "
                          "allowed \"hold\" or 0..%d (larger values for extension AO in failsafe.ao)" % (v, AO_MAX))
    for k, v in fs["memory"].items():
        first, last = _span("", k, v, 1, MEM_POSITIONS)
        if not _present(ch["holding_registers"], MEM_BASE + 2 * (first - 1), MEM_BASE + 2 * last - 1):
            raise ConfigError("config: failsafe.memory.%s: positions %d-%d are not present in "
                              "channels.holding_registers; allowed present memory positions" % (k, first, last))
