"""The "io" section of the configuration (docs/configuration.md, "Input and output modes"): per
channel modes of the onboard DI, AI, DO and AO. mbnode.config imports this module only when a
configuration has an "io" object, and the firmware unloads it with config after start-up.
"""

from mbnode.config import ConfigError, _apply, refused
from mbnode.datamodel import MEM_BASE, MEM_POSITIONS, ONBOARD

# The RP2040's temperature sensor (datasheet 4.9.5: T = 27 - (V - 0.706) / 0.001721, V = 3.3 V
# * reading / 65535) in 0.1 degC: reading 0 is 437.2 degC, 65535 is -1480.3 degC.
TEMP_SCALE = {"raw_low": 0, "raw_high": 65535, "low": 4372, "high": -14803}

DI = {
    "channel": (0, "int", 0, ONBOARD - 1),
    "mode": ("level", "choice", "level", "counter", "latch", "frequency"),
    "edge": ("rising", "choice", "rising", "falling"),  # which edge counts, latches or is measured
    "invert": (False, "bool"),
    "debounce_ms": (0, "int", 0, 10000),
    "position": (0, "int", 0, MEM_POSITIONS),  # the 32-bit memory position of counter/latch/frequency
    "gate_ms": (1000, "int", 100, 60000),  # frequency: edges counted over this long
}
AI = {
    "channel": (0, "int", 0, ONBOARD - 1),
    "source": ("pin", "choice", "pin", "temp"),  # temp: the RP2040's sensor (ADC 4)
    "period_ms": (100, "int", 1, 3600000),
    "average": (1, "int", 1, 64),
    "raw_low": (0, "int", 0, 65535),
    "raw_high": (65535, "int", 0, 65535),
    "low": (0, "int", -32768, 32767),
    "high": (32767, "int", -32768, 32767),
}
DO = {
    "channel": (0, "int", 0, ONBOARD - 1),
    "power_on": (0, "int", 0, 1),
    "pulse_ms": (0, "int", 0, 3600000),  # >0: a write of 1 turns it on for this long
    "invert": (False, "bool"),
}
AO = {
    "channel": (0, "int", 0, ONBOARD - 1),
    "power_on": (0, "int", 0, 1023),
    "freq": (1000, "int", 10, 1000000),  # PWM frequency, Hz
}
KINDS = (("di", DI, "discrete_inputs"), ("ai", AI, "input_registers"), ("do", DO, "coils"),
         ("ao", AO, "holding_registers"))


def _entries(rules):
    def check(key, v):
        if type(v) is not list or len(v) > ONBOARD:
            raise refused(key, v, "allowed a list of at most %d channel objects" % ONBOARD)
        out = []
        for i, d in enumerate(v):
            if rules is AI and type(d) is dict and d.get("source") == "temp":
                d = dict(TEMP_SCALE, **d)
            out.append(_apply(rules, d, "%s[%d]." % (key, i)))
        return out
    return check


SCHEMA = {
    "scan_ms": (20, "int", 1, 1000),  # inputs sampled and counts published this often (board.scan_ms's default)
    "di": ([], "call", _entries(DI)),
    "ai": ([], "call", _entries(AI)),
    "do": ([], "call", _entries(DO)),
    "ao": ([], "call", _entries(AO)),
}


def _present(ranges, first, last):
    return any(lo <= first and last <= hi for lo, hi in ranges)


def check(cfg):
    """The rules between entries and other sections: each channel once and present, each
    memory position once and present."""
    io = cfg["io"]
    board = cfg["board"]
    used = {}
    for kind, _, table in KINDS:
        seen = set()
        pins = board.get(kind + "_pins")  # a pin board: channel n is the n-th pin of the list
        for i, e in enumerate(io[kind]):
            where = "io.%s[%d]" % (kind, i)
            n = e["channel"]
            if n in seen:
                raise ConfigError("config: %s.channel = %d: allowed each channel once" % (where, n))
            seen.add(n)
            if not _present(cfg["channels"][table], n, n):
                raise ConfigError("config: %s.channel = %d: allowed a channel of channels.%s (this one is absent)"
                                  % (where, n, table))
            if pins is not None and n >= len(pins) and e.get("source") != "temp":
                raise ConfigError("config: %s.channel = %d: board.%s_pins has %d pins; allowed 0..%d"
                                  % (where, n, kind, len(pins), len(pins) - 1))
            if kind == "ai" and e["raw_low"] == e["raw_high"]:
                raise ConfigError("config: %s.raw_high = %d: allowed a value other than raw_low" % (where, e["raw_high"]))
            if kind == "do" and e["pulse_ms"] and e["power_on"]:
                raise ConfigError("config: %s.power_on = 1: allowed 0 for a pulse output (pulse_ms > 0)" % where)
            if kind != "di":
                continue
            p = e["position"]
            if e["mode"] == "level":
                if p:
                    raise ConfigError("config: %s.position = %d: allowed 0 in mode \"level\" (it publishes no "
                                      "count)" % (where, p))
                continue
            if not p:
                raise ConfigError("config: %s.position = 0: allowed a memory position 1..%d for mode \"%s\""
                                  % (where, MEM_POSITIONS, e["mode"]))
            if p in used:
                raise ConfigError("config: %s.position = %d: io.di[%d] has it; allowed each position once"
                                  % (where, p, used[p]))
            used[p] = i
            reg = MEM_BASE + 2 * (p - 1)
            if not _present(cfg["channels"]["holding_registers"], reg, reg + 1):
                raise ConfigError("config: %s.position = %d: its registers 0x%04X-0x%04X are absent from "
                                  "channels.holding_registers; allowed a present position" % (where, p, reg, reg + 1))
